//! Redis killed in the middle of a Kinesis batch, then restarted: the push function reports
//! every record from the first one not written, the event source's retry from there completes
//! the batch, every valid record lands as if applied once, in order (newest event wins, a tie
//! keeps the first), and every poison record is in the SQS dead-letter queue exactly once.
//!
//! Redis runs with `appendfsync always`, so what it acknowledged before the kill survives the
//! restart. The kill is triggered by the store wrapper after a fixed number of writes went
//! through, so it always lands mid-batch; what fails afterwards is the real Redis store against
//! a real dead server.

mod push_support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use larder::online::testing::FaultyStore;
use larder::proto::types::value::Val;
use larder::push::dead_letter::SqsSink;
use larder::value::Value;
use larder_tests::{MotoServer, RedisServer};
use push_function::event;
use push_support::*;
use redis::Commands;
use serde_json::{Value as Json, json};

const DRIVERS: usize = 1_500;
const HOURS: usize = 6;

/// The batch: every driver once per hour, even drivers in hour order, odd ones newest first
/// (so each driver's newest row sits in the first or the last part of the batch, and the
/// rows in between lose to them); a second record with the same time as the last hour for
/// some drivers (a tie: the first must win); poison records sprinkled in.
fn batch() -> Vec<(String, String, Vec<u8>)> {
    let mut records = Vec::new();
    let mut push = |data: Vec<u8>, pk: String| {
        let seq = format!("4965{:040}", records.len());
        records.push((seq, pk, data));
    };
    for block in 0..HOURS {
        for d in 0..DRIVERS {
            let hour = if d % 2 == 0 { block } else { HOURS - 1 - block };
            let ts = format!("2026-01-01T{hour:02}:00:00Z");
            let rate = (hour * 10_000 + d) as f64;
            push(serde_json::to_vec(&row(d as i64, &ts, rate)).unwrap(), d.to_string());
            if d % 250 == 0 {
                push(format!("{{\"driver_id\": {d}, \"broken").into_bytes(), d.to_string());
            }
            if hour == HOURS - 1 && (d % 100 == 7 || d % 100 == 8) {
                push(serde_json::to_vec(&row(d as i64, &ts, -1.0)).unwrap(), d.to_string());
            }
        }
    }
    records
}

fn key(view: &larder::registry::FeatureView, d: i64) -> Vec<u8> {
    view.layout.key_encoder.redis_key(&[&Value { val: Some(Val::Int64Val(d)) }], PROJECT).unwrap()
}

#[tokio::test]
async fn redis_killed_mid_batch_then_restarted_loses_nothing() {
    let moto = MotoServer::start();
    moto.export_env();
    let sqs = larder_tests::aws::sqs().await;
    let url = sqs.create_queue().queue_name("dlq").send().await.unwrap().queue_url().unwrap().to_string();

    let redis = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let cfg = config(Some(&redis.addr()));
    let real = larder::online::connect(&cfg, &larder::aws::Aws::new()).await.unwrap();
    let redis = Arc::new(Mutex::new(redis));
    // The first chunk with rows to write (odd drivers' newest rows) lands, then Redis dies.
    // Writes run one at a time, in the order they were called (the push function keeps a few
    // chunks in flight), so which writes land before the kill does not depend on timing.
    let killer = redis.clone();
    let store = Arc::new(FaultyStore::new(real).before_each_write(move |written| {
        if written == 1 {
            killer.lock().unwrap().kill();
        }
        Box::pin(async {})
    }));
    let app = app(cfg, store, default_source(), Arc::new(SqsSink::new(sqs.clone(), &url)));

    let records = batch();
    let poison = records.iter().filter(|r| r.2.ends_with(b"broken")).count();
    let out = app.handle_event(event::parse(&kinesis_event("drivers", &records)).unwrap()).await.unwrap();
    let failed: Vec<String> = out["batchItemFailures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap().to_string())
        .collect();
    assert!(!failed.is_empty(), "the kill happened mid-batch, so records must be retried");
    let from = records.iter().position(|r| r.0 == failed[0]).unwrap();
    assert!(from > 0, "the records before the kill were written");
    let expected: Vec<&String> = records[from..].iter().map(|r| &r.0).collect();
    assert_eq!(failed.iter().collect::<Vec<_>>(), expected, "every record from the first failed one is reported");

    // Redis comes back with what it acknowledged; the event source retries from the checkpoint.
    redis.lock().unwrap().restart();
    let reg = driver_registry();
    let view = reg.view("driver_fresh").unwrap();
    let present_after_restart: bool = redis.lock().unwrap().client().exists(key(view, 1)).unwrap();
    assert!(present_after_restart, "writes acknowledged before the kill survived it");
    let retry = &records[from..];
    let out = app.handle_event(event::parse(&kinesis_event("drivers", retry)).unwrap()).await.unwrap();
    assert_eq!(out, json!({"batchItemFailures": []}));

    // Every driver holds its last hour's first record: as if each record were applied once, in order.
    let mut want: HashMap<usize, f32> = HashMap::new();
    for d in 0..DRIVERS {
        want.insert(d, ((HOURS - 1) * 10_000 + d) as f32);
    }
    let mut c = redis.lock().unwrap().client();
    for d in 0..DRIVERS {
        let k = key(view, d as i64);
        let ts: Vec<u8> = c.hget(&k, &view.layout.ts_field[..]).unwrap();
        assert_eq!(
            larder::time::EventTime::from_proto_bytes(&ts).unwrap().to_rfc3339(),
            format!("2026-01-01T{:02}:00:00Z", HOURS - 1),
            "driver {d}"
        );
        let rate: Vec<u8> = c.hget(&k, &view.layout.feature_fields[0][..]).unwrap();
        assert_eq!(larder::value::decode(&rate).unwrap().val, Some(Val::FloatVal(want[&d])), "driver {d}");
    }

    // Each poison record in the dead-letter queue exactly once.
    let mut seen: HashMap<String, usize> = HashMap::new();
    loop {
        let got = sqs.receive_message().queue_url(&url).max_number_of_messages(10).send().await.unwrap();
        if got.messages().is_empty() {
            break;
        }
        for m in got.messages() {
            let letter: Json = serde_json::from_str(m.body().unwrap()).unwrap();
            assert_eq!(letter["error"]["code"], "bad_request");
            *seen.entry(letter["source"]["sequence_number"].as_str().unwrap().to_string()).or_default() += 1;
            sqs.delete_message().queue_url(&url).receipt_handle(m.receipt_handle().unwrap()).send().await.unwrap();
        }
    }
    assert_eq!(seen.len(), poison);
    assert!(seen.values().all(|n| *n == 1), "{seen:?}");
    let expected: Vec<&String> = records.iter().filter(|r| r.2.ends_with(b"broken")).map(|r| &r.0).collect();
    let mut got: Vec<&String> = seen.keys().collect();
    got.sort();
    assert_eq!(got, expected);
}
