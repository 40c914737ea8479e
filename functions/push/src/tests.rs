//! Handler tests on the sample events in `events/`, against the in-memory store and the
//! example driver repository's definitions.

use std::sync::Arc;

use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayV2httpRequest};
use aws_lambda_events::kafka::KafkaEvent;
use aws_lambda_events::kinesis::KinesisEvent;
use lambda_runtime::{Context, LambdaEvent};
use larder::api::Services;
use larder::aws::Aws;
use larder::config::RepoConfig;
use larder::online::testing::FaultyStore;
use larder::proto::types::value::Val;
use larder::push::PushSettings;
use larder::push::dead_letter::{MemorySink, Position};
use larder::registry::{Registry, RegistryCache, yaml};
use larder::time::EventTime;
use larder::value::{self, Value};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value as Json, json};

use larder_apigw::HttpEvent;

use super::*;

macro_rules! event {
    ($name:literal) => {
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/", $name))
    };
}

const KINESIS: &str = event!("kinesis.json");
const KINESIS_POISON: &str = event!("kinesis-poison.json");
const MSK: &str = event!("msk.json");
const KAFKA: &str = event!("kafka-self-managed.json");
const HTTP_PUSH: &str = event!("push-apigw-http.json");
const HTTP_PUSH_INVALID: &str = event!("push-apigw-http-invalid.json");
const HTTP_WRITE: &str = event!("push-apigw-http-write.json");
const REST_PUSH: &str = event!("push-apigw-rest.json");
const DIRECT: &str = event!("push-direct.json");

const PROJECT: &str = "driver_demo";

fn registry() -> Registry {
    let text = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/driver/features.yaml"));
    yaml::parse(text, "features.yaml", PROJECT, 3).unwrap()
}

struct Rig {
    app: App,
    store: Arc<FaultyStore>,
    sink: Arc<MemorySink>,
}

fn rig_with(settings: PushSettings) -> Rig {
    let config = RepoConfig::load_with(None, &|name| match name {
        "LARDER_PROJECT" => Some(PROJECT.into()),
        "LARDER_REGISTRY" => Some("/nonexistent/registry.db".into()),
        _ => None,
    })
    .unwrap();
    let store = Arc::new(FaultyStore::default());
    let sink = Arc::new(MemorySink::new());
    let services = Services::new(config, RegistryCache::fixed(registry()), store.clone());
    Rig { app: App::new(services, settings, &Aws::new(), sink.clone()), store, sink }
}

fn rig() -> Rig {
    rig_with(PushSettings { default_source: Some("driver_stats_push_source".into()), ..Default::default() })
}

fn invoke_payload(payload: &str) -> LambdaEvent<Box<serde_json::value::RawValue>> {
    LambdaEvent::new(serde_json::value::RawValue::from_string(payload.to_string()).unwrap(), Context::default())
}

impl Rig {
    async fn invoke(&self, payload: &str) -> Result<Json, lambda_runtime::Error> {
        self.app.handle(invoke_payload(payload)).await
    }

    /// driver_fresh's row for a driver: event time and feature values by name.
    fn driver(&self, id: i64) -> Option<(EventTime, Json)> {
        let reg = registry();
        let view = reg.view("driver_fresh").unwrap();
        let key = view.layout.key_encoder.redis_key(&[&Value { val: Some(Val::Int64Val(id)) }], PROJECT).unwrap();
        let hash = self.store.inner.hash(&key)?;
        let ts = EventTime::from_proto_bytes(hash.get(&view.layout.ts_field)?).unwrap();
        let mut features = serde_json::Map::new();
        for (f, field) in view.features.iter().zip(&view.layout.feature_fields) {
            let v = hash.get(&field[..]).map(|b| value::to_json(&value::decode(b).unwrap())).unwrap_or(Json::Null);
            features.insert(f.name.clone(), v);
        }
        Some((ts, Json::Object(features)))
    }
}

fn round_trip<T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug>(text: &str) {
    let parsed: T = serde_json::from_str(text).unwrap();
    let again: T = serde_json::from_str(&serde_json::to_string(&parsed).unwrap()).unwrap();
    assert_eq!(parsed, again);
}

#[test]
fn every_event_file_parses_and_round_trips() {
    round_trip::<KinesisEvent>(KINESIS);
    round_trip::<KinesisEvent>(KINESIS_POISON);
    round_trip::<KafkaEvent>(MSK);
    round_trip::<KafkaEvent>(KAFKA);
    round_trip::<ApiGatewayV2httpRequest>(HTTP_PUSH);
    round_trip::<ApiGatewayV2httpRequest>(HTTP_PUSH_INVALID);
    round_trip::<ApiGatewayV2httpRequest>(HTTP_WRITE);
    round_trip::<ApiGatewayProxyRequest>(REST_PUSH);
    round_trip::<Json>(DIRECT);
    // API Gateway events are also what lambda_http (and `sam local invoke`) take.
    for e in [HTTP_PUSH, HTTP_PUSH_INVALID, HTTP_WRITE, REST_PUSH] {
        let req = lambda_http::request::from_str(e).unwrap();
        assert_eq!(req.method(), "POST");
    }
}

#[test]
fn events_are_recognized_by_their_shape() {
    assert!(matches!(event::parse(KINESIS), Ok(Event::Kinesis(e)) if e.records.len() == 4));
    assert!(matches!(event::parse(MSK), Ok(Event::Kafka(e)) if e.event_source.as_deref() == Some("aws:kafka")));
    assert!(
        matches!(event::parse(KAFKA), Ok(Event::Kafka(e)) if e.event_source.as_deref() == Some("SelfManagedKafka"))
    );
    assert!(matches!(event::parse(HTTP_PUSH), Ok(Event::Http(HttpEvent::V2(_)))));
    assert!(matches!(event::parse(REST_PUSH), Ok(Event::Http(HttpEvent::V1(_)))));
    assert!(matches!(event::parse(DIRECT), Ok(Event::Direct { write: false, .. })));
    let e = event::parse(r#"{"Records": [{"messageId": "1", "body": "{}", "eventSource": "aws:sqs"}]}"#).unwrap_err();
    assert!(e.contains("not a Kinesis event"), "{e}");
    assert!(event::parse(r#"{"detail-type": "Scheduled Event"}"#).unwrap_err().starts_with("unrecognized event"));
    assert!(event::parse("[1]").is_err());
}

#[tokio::test]
async fn kinesis_batch_is_written_in_order() {
    let rig = rig();
    let out = rig.invoke(KINESIS).await.unwrap();
    assert_eq!(out, json!({"batchItemFailures": []}));
    for id in [1002, 1003, 1004] {
        assert!(rig.driver(id).is_some(), "driver {id}");
    }
    let (ts, f) = rig.driver(1001).unwrap();
    assert_eq!(ts, EventTime::parse("2026-01-01T11:00:00Z").unwrap(), "the later record of driver 1001 won");
    assert_eq!(
        (f["conv_rate"].clone(), f["avg_daily_trips"].clone(), f["city"].clone()),
        (json!(0.75), json!(11), json!("sf"))
    );
    let (_, f) = rig.driver(1004).unwrap();
    assert_eq!(
        (f["city"].clone(), f["is_active"].clone()),
        (json!("la"), json!(false)),
        "a broadcast scalar and a bool"
    );
    assert!(rig.sink.letters().is_empty());
}

#[tokio::test]
async fn kinesis_poison_records_are_dead_lettered_with_position_and_reason() {
    let rig = rig();
    let out = rig.invoke(KINESIS_POISON).await.unwrap();
    assert_eq!(out, json!({"batchItemFailures": []}), "poison records do not hold the shard back");
    assert!(rig.driver(1001).is_some() && rig.driver(1006).is_some());
    for id in [1002, 1003, 1004, 1005] {
        assert!(rig.driver(id).is_none(), "driver {id} was poison");
    }
    let event: KinesisEvent = serde_json::from_str(KINESIS_POISON).unwrap();
    let letters = rig.sink.letters();
    assert_eq!(letters.len(), 4);
    for (letter, record) in letters.iter().zip(&event.records[1..5]) {
        match &letter.position {
            Position::Kinesis { sequence_number, shard_id, stream, partition_key } => {
                assert_eq!(sequence_number, &record.kinesis.sequence_number);
                assert_eq!(shard_id.as_deref(), Some("shardId-000000000000"));
                assert_eq!(stream, "arn:aws:kinesis:us-east-1:123456789012:stream/driver-events");
                assert_eq!(partition_key, &record.kinesis.partition_key);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(letter.data, record.kinesis.data.0, "the record is kept as it came");
    }
    let reasons: Vec<&str> = letters.iter().map(|l| l.reason.as_str()).collect();
    assert!(reasons[0].starts_with("record is not valid JSON"), "{}", reasons[0]);
    assert_eq!(letters[1].code, "push_source_not_found");
    assert!(reasons[1].contains("no_such_source"), "{}", reasons[1]);
    assert!(
        reasons[2].contains("column 'conv_rate', row 0") && reasons[2].contains("expected Float32"),
        "{}",
        reasons[2]
    );
    assert!(reasons[3].contains("feature column 'city'") && reasons[3].contains("is missing"), "{}", reasons[3]);
}

#[tokio::test]
async fn a_kinesis_record_that_is_not_base64_is_poison_not_a_failed_batch() {
    // Before: "the event has Records but is not a Kinesis event (Invalid symbol ...)", and the
    // good records were retried with the bad one forever.
    let rig = rig();
    let out = rig.invoke(event!("kinesis-bad-base64.json")).await.unwrap();
    assert_eq!(out, json!({"batchItemFailures": []}));
    assert!(rig.driver(1001).is_some(), "the records around the poison one are written");
    let event: Json = serde_json::from_str(event!("kinesis-bad-base64.json")).unwrap();
    let bad = &event["Records"][1]["kinesis"];
    let letters = rig.sink.letters();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].code, "bad_request");
    assert!(letters[0].reason.contains("not base64"), "{}", letters[0].reason);
    assert_eq!(letters[0].data, bad["data"].as_str().unwrap().as_bytes(), "kept as it came");
    match &letters[0].position {
        Position::Kinesis { sequence_number, .. } => {
            assert_eq!(sequence_number, bad["sequenceNumber"].as_str().unwrap())
        }
        other => panic!("{other:?}"),
    }
    // The third record is written too (a push request for driver 1003 or later).
    let third: Json =
        serde_json::from_slice(&B64.decode(event["Records"][2]["kinesis"]["data"].as_str().unwrap()).unwrap()).unwrap();
    let id = third["driver_id"].as_i64().or_else(|| third["df"]["driver_id"][0].as_i64()).unwrap();
    assert!(rig.driver(id).is_some(), "driver {id}");
}

#[tokio::test]
async fn a_kafka_value_that_is_not_base64_is_poison() {
    let rig = rig();
    let mut event: Json = serde_json::from_str(MSK).unwrap();
    // Offset 40 holds a good record; make its value plain JSON text, not base64.
    let good = event["records"]["driver-events-0"][0]["value"].as_str().unwrap().to_string();
    let text = String::from_utf8(B64.decode(&good).unwrap()).unwrap();
    event["records"]["driver-events-0"][0]["value"] = json!(text);
    assert_eq!(rig.invoke(&event.to_string()).await.unwrap(), json!({"batchItemFailures": []}));
    let letters = rig.sink.letters();
    assert_eq!(letters.len(), 2, "the unencoded record and the sample's own poison record");
    let first = letters.iter().find(|l| matches!(l.position, Position::Kafka { offset: 40, .. })).unwrap();
    assert!(first.reason.contains("not base64"), "{}", first.reason);
    assert_eq!(first.data, text.as_bytes());
    assert!(rig.driver(2003).is_some(), "the rest of the batch is written");
}

#[tokio::test]
async fn payloads_that_are_not_objects_are_named_in_the_users_terms() {
    let rig = rig();
    for (payload, kind) in
        [(event!("push-empty-array.json"), "a JSON array"), (event!("push-not-an-object.json"), "a JSON string")]
    {
        let err = rig.invoke(payload).await.unwrap_err().to_string();
        assert!(err.contains(kind) && err.contains("Kinesis"), "{payload}: {err}");
        assert!(!err.contains("Probe") && !err.contains("struct"), "{err}");
    }
    // The same body over HTTP is a 400 naming it.
    let mut http: Json = serde_json::from_str(HTTP_PUSH).unwrap();
    http["body"] = json!("[]");
    let out = rig.invoke(&http.to_string()).await.unwrap();
    assert_eq!(out["statusCode"], 400);
    let body: Json = serde_json::from_str(out["body"].as_str().unwrap()).unwrap();
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(msg.contains("push request must be a JSON object") && msg.contains("a JSON array"), "{msg}");
}

#[tokio::test]
async fn kinesis_transient_failure_reports_every_record_from_the_first_affected() {
    let rig = rig();
    rig.store.go_down();
    let out = rig.invoke(KINESIS_POISON).await.unwrap();
    let event: KinesisEvent = serde_json::from_str(KINESIS_POISON).unwrap();
    let all: Vec<Json> = event.records.iter().map(|r| json!({"itemIdentifier": r.kinesis.sequence_number})).collect();
    assert_eq!(out, json!({"batchItemFailures": all}), "the whole batch is one chunk, which failed");
    assert!(rig.sink.letters().is_empty(), "poison records after the failure point wait for the retry");
    rig.store.heal();
    assert_eq!(rig.invoke(KINESIS_POISON).await.unwrap(), json!({"batchItemFailures": []}));
    assert_eq!(rig.sink.letters().len(), 4);
}

#[tokio::test]
async fn msk_batch_is_applied_per_partition_and_poison_dead_lettered() {
    let rig = rig();
    let out = rig.invoke(MSK).await.unwrap();
    assert_eq!(out, json!({"batchItemFailures": []}));
    let read = |id: i64| {
        let reg = registry();
        let view = reg.view("driver_fresh").unwrap();
        let key = view.layout.key_encoder.redis_key(&[&Value { val: Some(Val::Int64Val(id)) }], PROJECT).unwrap();
        rig.store.inner.hash(&key).map(|h| EventTime::from_proto_bytes(&h[&view.layout.ts_field]).unwrap())
    };
    assert_eq!(read(2001), Some(EventTime::parse("2026-01-01T12:00:00Z").unwrap()));
    assert!(read(2003).is_some());
    let letters = rig.sink.letters();
    assert_eq!(letters.len(), 1);
    assert_eq!(
        letters[0].position,
        Position::Kafka { topic: "driver-events".into(), partition: 0, offset: 41, key: Some("MjAwMg==".into()) }
    );
    assert_eq!(letters[0].data, b"not json at all");
}

#[tokio::test]
async fn kafka_transient_failure_fails_the_invocation_by_default() {
    let rig = rig();
    rig.store.go_down();
    let err = rig.invoke(MSK).await.unwrap_err().to_string();
    assert!(err.contains("driver-events-0 offset 40") && err.contains("retries the batch"), "{err}");
    assert!(rig.sink.letters().is_empty(), "dead letters wait until the batch succeeds");
    rig.store.heal();
    rig.invoke(MSK).await.unwrap();
    assert_eq!(rig.sink.letters().len(), 1);
}

#[tokio::test]
async fn kafka_partial_batch_names_each_partition_and_offset_to_resume_from() {
    let rig = rig_with(PushSettings {
        default_source: Some("driver_stats_push_source".into()),
        kafka_partial_batch: true,
        ..Default::default()
    });
    rig.store.go_down();
    let out = rig.invoke(MSK).await.unwrap();
    assert_eq!(
        out,
        json!({"batchItemFailures": [
            {"itemIdentifier": {"partition": "driver-events-0", "offset": 40}},
            {"itemIdentifier": {"partition": "driver-events-1", "offset": 7}},
        ]})
    );
}

#[tokio::test]
async fn self_managed_kafka_takes_rows_and_push_requests() {
    let rig = rig();
    assert_eq!(rig.invoke(KAFKA).await.unwrap(), json!({"batchItemFailures": []}));
    assert!(rig.driver(3001).is_some() && rig.driver(3002).is_some());
}

#[tokio::test]
async fn kafka_topics_route_to_their_push_source() {
    // No default: the topic map names the source; an unmapped topic's rows are dead-lettered.
    let rig = rig_with(
        PushSettings::from_env_with(&|n| {
            (n == "LARDER_PUSH_SOURCE_MAP").then(|| "driver-events=driver_stats_push_source".into())
        })
        .unwrap(),
    );
    rig.invoke(KAFKA).await.unwrap();
    assert!(rig.driver(3001).is_some());
    let rig = rig_with(PushSettings::default());
    rig.invoke(KAFKA).await.unwrap();
    assert!(rig.driver(3001).is_none() && rig.driver(3002).is_some(), "the push request names its source");
    assert!(rig.sink.letters()[0].reason.contains("no default push source"));
}

#[tokio::test]
async fn http_api_push_and_write_answer_through_the_router() {
    let rig = rig();
    let out = rig.invoke(HTTP_PUSH).await.unwrap();
    assert_eq!(out["statusCode"], 200);
    assert_eq!(out["body"], "");
    assert!(rig.driver(4001).is_some() && rig.driver(4002).is_some());

    let out = rig.invoke(HTTP_WRITE).await.unwrap();
    assert_eq!((out["statusCode"].clone(), out["body"].clone()), (json!(200), json!("null")));
    assert!(rig.driver(4003).is_some());

    let out = rig.invoke(REST_PUSH).await.unwrap();
    assert_eq!(out["statusCode"], 200, "{out}");
    assert!(rig.driver(4005).is_some(), "a base64 body on a REST API stage");

    let out = rig.invoke(DIRECT).await.unwrap();
    assert_eq!(out, json!({"statusCode": 200, "body": null}));
    assert!(rig.driver(4007).is_some());
}

#[tokio::test]
async fn http_client_mistakes_are_4xx_answers_never_function_errors() {
    let rig = rig();
    let out = rig.invoke(HTTP_PUSH_INVALID).await.unwrap();
    assert_eq!(out["statusCode"], 422);
    assert_eq!(out["headers"]["content-type"], "application/json");
    let body: Json = serde_json::from_str(out["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "invalid_value");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(msg.contains("driver_fresh") && msg.contains("column 'conv_rate', row 0"), "{msg}");
    assert!(rig.driver(4001).is_none(), "a rejected request writes nothing");

    let mut bad: Json = serde_json::from_str(HTTP_PUSH).unwrap();
    bad["body"] = json!("{\"push_source_name\": ");
    let out = rig.invoke(&bad.to_string()).await.unwrap();
    assert_eq!(out["statusCode"], 400);
    bad["body"] = json!("!!!");
    bad["isBase64Encoded"] = json!(true);
    assert_eq!(rig.invoke(&bad.to_string()).await.unwrap()["statusCode"], 400);

    rig.store.go_down();
    let out = rig.invoke(HTTP_PUSH).await.unwrap();
    assert_eq!(out["statusCode"], 503, "the store being down is not the client's fault, and not a 502");
}
