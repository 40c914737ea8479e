//! `POST /push?mode=async` against Kinesis on a private moto_server: the push is checked, split
//! into one record per entity (partition key = entity), answered 202; the records read back
//! from the stream and handed to the push function land in Redis. One test function, because
//! the SDK clients (and so the moto endpoint) are fixed once per process.

mod push_support;

use std::sync::Arc;

use aws_sdk_kinesis::types::ShardIteratorType;
use larder::api::ApiRequest;
use larder::online::OnlineStore;
use larder::push::PushSettings;
use larder::push::dead_letter::MemorySink;
use larder_tests::{MotoServer, RedisServer};
use push_function::{App, event};
use push_support::*;
use serde_json::{Value as Json, json};

/// Every record on the stream, per shard in order: (sequence number, partition key, data).
async fn read_stream(stream: &str) -> Vec<Vec<(String, String, Vec<u8>)>> {
    let k = larder_tests::aws::kinesis().await;
    let shards = k.list_shards().stream_name(stream).send().await.unwrap();
    let mut out = Vec::new();
    for shard in shards.shards() {
        let it = k
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(shard.shard_id())
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap();
        let records = k.get_records().shard_iterator(it.shard_iterator().unwrap()).send().await.unwrap();
        out.push(
            records
                .records()
                .iter()
                .map(|r| {
                    (
                        r.sequence_number().to_string(),
                        r.partition_key().unwrap_or_default().to_string(),
                        r.data().as_ref().to_vec(),
                    )
                })
                .collect(),
        );
    }
    out
}

async fn post(app: &App, path: &str, query: &str, body: &Json) -> (u16, Json) {
    let r = app.router.handle(ApiRequest::new("POST", path, query, body.to_string().as_bytes())).await;
    (r.status, serde_json::from_slice(&r.body).unwrap_or(Json::Null))
}

async fn stored_rate(store: &dyn OnlineStore, driver: i64) -> Option<(String, Json)> {
    let reg = driver_registry();
    let view = reg.view("driver_fresh").unwrap();
    let key = larder::value::Value { val: Some(larder::proto::types::value::Val::Int64Val(driver)) };
    let redis_key = view.layout.key_encoder.redis_key(&[&key], PROJECT).unwrap();
    let fields = vec![&view.layout.feature_fields[0][..], &view.layout.ts_field[..]];
    let got = store.read(&[larder::online::KeyRead { key: &redis_key, fields }]).await.unwrap();
    let ts = got[0][1].as_ref()?;
    let rate = larder::value::decode(got[0][0].as_ref()?).unwrap();
    Some((larder::time::EventTime::from_proto_bytes(ts).unwrap().to_rfc3339(), larder::value::to_json(&rate)))
}

#[tokio::test]
async fn async_push_enqueues_one_record_per_entity_and_the_stream_applies_them() {
    let moto = MotoServer::start();
    moto.export_env();
    let redis = RedisServer::start();
    let stream = "driver-events";
    let k = larder_tests::aws::kinesis().await;
    k.create_stream().stream_name(stream).shard_count(2).send().await.unwrap();

    let cfg = config(Some(&redis.addr()));
    let store = larder::online::connect(&cfg, &larder::aws::Aws::new()).await.unwrap();
    let settings = PushSettings { async_stream: Some(stream.into()), ..default_source() };
    let app = app(cfg, store.clone(), settings, Arc::new(MemorySink::new()));

    // Three rows, two entities: driver 1 twice (its rows stay together, in order).
    let body = json!({"push_source_name": PUSH_SOURCE, "df": {
        "driver_id": [1, 2, 1],
        "event_timestamp": ["2026-01-01T10:00:00Z", "2026-01-01T10:00:00Z", "2026-01-01T11:00:00Z"],
        "conv_rate": [0.1, 0.2, 0.3], "acc_rate": 0.5, "avg_daily_trips": [1, 2, 3], "miles_driven": 1.0,
        "rating": 4.0, "city": "sf", "is_active": true}});
    let (status, answer) = post(&app, "/push", "mode=async", &body).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer, json!({"status": "accepted", "stream": stream, "rows": 3, "records": 2}));
    assert!(stored_rate(store.as_ref(), 1).await.is_none(), "async: nothing is written before the stream is read");

    let shards = read_stream(stream).await;
    let records: Vec<&(String, String, Vec<u8>)> = shards.iter().flatten().collect();
    assert_eq!(records.len(), 2);
    let by_driver = |d: i64| {
        records
            .iter()
            .find(|r| serde_json::from_slice::<Json>(&r.2).unwrap()["df"]["driver_id"][0] == json!(d))
            .unwrap()
    };
    let one: Json = serde_json::from_slice(&by_driver(1).2).unwrap();
    assert_eq!(one["push_source_name"], PUSH_SOURCE);
    assert_eq!(one["df"]["conv_rate"], json!([0.1, 0.3]), "one entity's rows in one record, in order");
    assert_ne!(by_driver(1).1, by_driver(2).1, "one partition key per entity");

    // Wrong pushes are refused now, and nothing more is enqueued.
    let mut bad = body.clone();
    bad["df"]["conv_rate"] = json!([0.1, "x", 0.3]);
    let (status, err) = post(&app, "/push", "mode=async", &bad).await;
    assert_eq!(status, 422, "{err}");
    assert!(err["error"]["message"].as_str().unwrap().contains("column 'conv_rate', row 1"), "{err}");
    let mut unknown = body.clone();
    unknown["push_source_name"] = json!("nope");
    assert_eq!(post(&app, "/push", "mode=async", &unknown).await.0, 422);

    // write-to-online-store works the same way.
    let write = json!({"feature_view_name": "driver_fresh", "df": {
        "driver_id": [3], "event_timestamp": ["2026-01-01T10:00:00Z"], "conv_rate": [0.7], "acc_rate": [0.5],
        "avg_daily_trips": [1], "miles_driven": [1.0], "rating": [4.0], "city": ["sf"], "is_active": [true]}});
    let (status, answer) = post(&app, "/write-to-online-store", "mode=async", &write).await;
    assert_eq!((status, answer["records"].clone()), (202, json!(1)));
    let shards = read_stream(stream).await;
    assert_eq!(shards.iter().map(Vec::len).sum::<usize>(), 3);

    // The push function consumes the stream: each shard's batch lands in Redis.
    for records in shards.iter().filter(|s| !s.is_empty()) {
        let out = app.handle_event(event::parse(&kinesis_event(stream, records)).unwrap()).await.unwrap();
        assert_eq!(out, json!({"batchItemFailures": []}));
    }
    assert_eq!(stored_rate(store.as_ref(), 1).await, Some(("2026-01-01T11:00:00Z".into(), json!(0.30000001192092896))));
    assert_eq!(stored_rate(store.as_ref(), 2).await.map(|r| r.1), Some(json!(0.20000000298023224)));
    assert_eq!(stored_rate(store.as_ref(), 3).await.map(|r| r.1), Some(json!(0.699999988079071)));

    // A stream that does not exist is the server's misconfiguration, said plainly.
    let wrong_settings = PushSettings { async_stream: Some("no-such-stream".into()), ..default_source() };
    let wrong = push_support::app(
        app.services().config.clone(),
        app.services().store.clone(),
        wrong_settings,
        Arc::new(MemorySink::new()),
    );
    let r = wrong.router.handle(ApiRequest::new("POST", "/push", "mode=async", body.to_string().as_bytes())).await;
    let err: Json = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(r.status, 500, "{err}");
    assert!(err["error"]["message"].as_str().unwrap().contains("no-such-stream"), "{err}");
}
