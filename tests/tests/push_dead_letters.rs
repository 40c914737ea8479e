//! Poison records land in a real dead-letter destination (SQS and S3 on a private
//! moto_server) with their position and reason, and a destination that fails holds the batch
//! back from the first letter it did not keep. One test function: the SDK clients (and so the
//! moto endpoint) are fixed once per process.

mod push_support;

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use larder::online::OnlineStore;
use larder::push::dead_letter::{DeadLetterSink, S3Sink, SqsSink};
use larder_tests::MotoServer;
use push_function::{App, event};
use push_support::*;
use serde_json::{Value as Json, json};

/// (sequence number, data) of each record of a Kinesis event.
fn kinesis_records(event: &str) -> Vec<(String, Vec<u8>)> {
    let e: Json = serde_json::from_str(event).unwrap();
    e["Records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let k = &r["kinesis"];
            (k["sequenceNumber"].as_str().unwrap().to_string(), B64.decode(k["data"].as_str().unwrap()).unwrap())
        })
        .collect()
}

const KINESIS_POISON: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../events/kinesis-poison.json"));
const MSK: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../events/msk.json"));

fn app_with(store: Arc<dyn OnlineStore>, sink: Arc<dyn DeadLetterSink>) -> App {
    app(config(None), store, default_source(), sink)
}

async fn invoke(app: &App, event: &str) -> Json {
    app.handle_event(event::parse(event).unwrap()).await.unwrap()
}

async fn queue_messages(url: &str) -> Vec<Json> {
    let sqs = larder_tests::aws::sqs().await;
    let mut out = Vec::new();
    loop {
        let got = sqs.receive_message().queue_url(url).max_number_of_messages(10).send().await.unwrap();
        if got.messages().is_empty() {
            break;
        }
        for m in got.messages() {
            out.push(serde_json::from_str(m.body().unwrap()).unwrap());
            sqs.delete_message().queue_url(url).receipt_handle(m.receipt_handle().unwrap()).send().await.unwrap();
        }
    }
    out
}

#[tokio::test]
async fn poison_records_reach_sqs_and_s3_dead_letter_destinations() {
    let moto = MotoServer::start();
    moto.export_env();
    let store: Arc<dyn OnlineStore> = Arc::new(larder::online::memory::MemoryStore::new());

    // SQS: one message per poison record, with where it came from and why.
    let sqs = larder_tests::aws::sqs().await;
    let url =
        sqs.create_queue().queue_name("larder-dead-letters").send().await.unwrap().queue_url().unwrap().to_string();
    let app = app_with(store.clone(), Arc::new(SqsSink::new(sqs.clone(), &url)));
    assert_eq!(invoke(&app, KINESIS_POISON).await, json!({"batchItemFailures": []}));
    let messages = queue_messages(&url).await;
    let records = kinesis_records(KINESIS_POISON);
    assert_eq!(messages.len(), 4);
    let mut messages = messages;
    messages.sort_by_key(|m| m["source"]["sequence_number"].as_str().unwrap().to_string());
    let codes: Vec<&str> = messages.iter().map(|m| m["error"]["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["bad_request", "push_source_not_found", "invalid_value", "invalid_value"]);
    for (m, (seq, data)) in messages.iter().zip(&records[1..5]) {
        assert_eq!(m["larder_dead_letter"], 1);
        assert_eq!(m["source"]["kind"], "kinesis");
        assert_eq!(m["source"]["sequence_number"].as_str(), Some(seq.as_str()));
        assert_eq!(m["source"]["stream"], "arn:aws:kinesis:us-east-1:123456789012:stream/driver-events");
        assert_eq!(m["record"]["data"].as_str().unwrap().as_bytes(), &data[..], "the record as it came");
    }
    assert!(messages[2]["error"]["message"].as_str().unwrap().contains("column 'conv_rate', row 0"));

    // S3: one JSON-lines object per batch under the prefix.
    let s3 = larder_tests::aws::s3().await;
    s3.create_bucket().bucket("larder-dlq").send().await.unwrap();
    let app = app_with(store.clone(), Arc::new(S3Sink::new(s3.clone(), "larder-dlq", "push/")));
    assert_eq!(invoke(&app, MSK).await, json!({"batchItemFailures": []}));
    let listed = s3.list_objects_v2().bucket("larder-dlq").prefix("push/").send().await.unwrap();
    assert_eq!(listed.contents().len(), 1);
    let key = listed.contents()[0].key().unwrap();
    assert!(key.ends_with(".jsonl"), "{key}");
    let body = s3.get_object().bucket("larder-dlq").key(key).send().await.unwrap().body.collect().await.unwrap();
    let lines: Vec<Json> =
        String::from_utf8(body.to_vec()).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(
        lines[0]["source"],
        json!({"kind": "kafka", "topic": "driver-events", "partition": 0, "offset": 41, "key": "MjAwMg=="})
    );
    assert_eq!(lines[0]["record"]["data"], "not json at all");

    // A destination that is not there: the batch is held from the first poison record on
    // (nothing is lost), and the good record before it is written.
    let missing = format!("{}/123456789012/no-such-queue", moto.endpoint());
    let app = app_with(store.clone(), Arc::new(SqsSink::new(sqs.clone(), missing)));
    let out = invoke(&app, KINESIS_POISON).await;
    let retried: Vec<&str> =
        out["batchItemFailures"].as_array().unwrap().iter().map(|f| f["itemIdentifier"].as_str().unwrap()).collect();
    let expected: Vec<&str> = records[1..].iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(retried, expected);
}
