//! The handler on the sample events in `events/`, over an in-memory store.

use std::sync::Arc;

use lambda_http::request::from_str;
use lambda_runtime::{Context, LambdaEvent};
use larder::api::{Health, Retrieval, Router, Services};
use larder::config::RepoConfig;
use larder::online::memory::MemoryStore;
use larder::online::{OnlineStore, ViewWrite, WriteMode, WriteRow};
use larder::registry::{RegistryCache, yaml};
use larder::time::EventTime;
use serde_json::{Value, json};

macro_rules! event {
    ($name:literal) => {
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/", $name))
    };
}

const FEATURES_YAML: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/driver/features.yaml"));

/// The function's router over the example registry and two drivers in memory.
async fn services() -> Router {
    let config =
        RepoConfig::parse("project: driver_demo\nregistry: unused.db\n", std::path::Path::new("/tmp"), "test", &|_| {
            None
        })
        .unwrap();
    let registry = yaml::parse(FEATURES_YAML, "features.yaml", "driver_demo", 3).unwrap();
    let store = MemoryStore::new();
    let view = &registry.feature_views["driver_hourly_stats"];
    let row = |id: i64, conv: f64| {
        let features = [json!(conv), json!(0.9), json!(12), json!(33.5), json!(4.5), json!("sf"), json!(true)];
        WriteRow::from_json(view, "driver_demo", &[json!(id)], &features, EventTime::now()).unwrap()
    };
    store
        .write(&ViewWrite::for_view(view, vec![row(1001, 0.25), row(1002, 0.5)], WriteMode::NewestWins, None))
        .await
        .unwrap();
    Router::new(Services::new(config, RegistryCache::fixed(registry), Arc::new(store))).with(Health).with(Retrieval)
}

async fn invoke(router: &Router, event: &str) -> (u16, Value) {
    let payload = serde_json::value::RawValue::from_string(event.to_string()).unwrap();
    let resp = super::handle(router, LambdaEvent::new(payload, Context::default())).await.unwrap();
    let resp = serde_json::to_value(resp).unwrap();
    let status = resp["statusCode"].as_u64().unwrap() as u16;
    assert_eq!(resp["headers"]["content-type"], "application/json");
    assert_eq!(resp["isBase64Encoded"], false, "expected a text body, got {resp}");
    let body = resp["body"].as_str().expect("a text body");
    (status, serde_json::from_str(body).expect("the body is JSON"))
}

#[tokio::test]
async fn http_api_event_answers_features() {
    let s = services().await;
    let (status, body) = invoke(&s, event!("apigw-http-get-online-features.json")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["metadata"]["feature_names"][0], "driver_id");
    assert_eq!(body["results"][1]["values"], json!([0.25, 0.5]));
    assert_eq!(body["results"][6]["values"], json!(["sf", "sf"]));
    assert_eq!(body["results"][1]["statuses"], json!(["PRESENT", "PRESENT"]));
}

#[tokio::test]
async fn base64_and_rest_api_events_answer_the_same() {
    let s = services().await;
    let (_, plain) = invoke(&s, event!("apigw-http-get-online-features.json")).await;
    let (status, b64) = invoke(&s, event!("apigw-http-get-online-features-base64.json")).await;
    assert_eq!(status, 200);
    assert_eq!(b64["results"], plain["results"]);
    // REST API events carry the stage in the path (/prod/...); routing ignores it.
    let (status, rest) = invoke(&s, event!("apigw-rest-get-online-features.json")).await;
    assert_eq!(status, 200, "{rest}");
    assert_eq!(rest["results"][1], plain["results"][1]);
}

#[tokio::test]
async fn health_and_errors() {
    let s = services().await;
    let (status, body) = invoke(&s, event!("apigw-http-health.json")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ok");
    assert_eq!(body["project"], "driver_demo");
    let (status, body) = invoke(&s, event!("apigw-http-get-online-features-bad-json.json")).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "bad_request");
    assert!(body["error"]["message"].as_str().unwrap().contains("not valid JSON"));
}

#[tokio::test]
async fn a_body_marked_base64_that_is_not_is_a_400_not_a_panic() {
    // lambda_http panicked on this event before the handler ran (a 502 and a sandbox restart).
    let s = services().await;
    let (status, body) = invoke(&s, event!("apigw-http-get-online-features-bad-base64.json")).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "bad_request");
    assert!(body["error"]["message"].as_str().unwrap().contains("marked base64 but is not"), "{body}");
}

#[tokio::test]
async fn a_payload_that_is_not_an_object_is_named() {
    let s = services().await;
    for (payload, kind) in [("[]", "a JSON array"), ("\"hello\"", "a JSON string"), ("42", "a JSON number")] {
        let raw = serde_json::value::RawValue::from_string(payload.to_string()).unwrap();
        let err = super::handle(&s, LambdaEvent::new(raw, Context::default())).await.unwrap_err().to_string();
        assert!(err.contains(kind) && err.contains("requestContext"), "{payload}: {err}");
        assert!(!err.contains("Probe"), "{err}");
    }
}

#[tokio::test]
async fn push_routes_belong_to_the_push_function() {
    // API Gateway sends /push to the push function; this one serves reads only.
    let s = services().await;
    let (status, body) = invoke(&s, include_str!("../../../../events/push-apigw-http.json")).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "route_not_found");
}

#[test]
fn every_sample_event_parses_as_an_api_gateway_request() {
    for e in [
        event!("apigw-http-get-online-features.json"),
        event!("apigw-http-get-online-features-base64.json"),
        event!("apigw-rest-get-online-features.json"),
        event!("apigw-http-health.json"),
        event!("apigw-http-get-online-features-bad-json.json"),
    ] {
        let req = from_str(e).expect("parses");
        assert!(matches!(req.method().as_str(), "GET" | "POST"));
    }
}

#[tokio::test]
async fn a_malformed_base64_body_is_a_400_not_a_crash() {
    let s = services().await;
    let mut bad: Value = serde_json::from_str(event!("apigw-http-get-online-features.json")).unwrap();
    bad["body"] = json!("%%% not base64 %%%");
    bad["isBase64Encoded"] = json!(true);
    let (status, body) = invoke(&s, &bad.to_string()).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "bad_request");
}

#[tokio::test]
async fn a_payload_that_is_not_an_http_event_is_a_function_error() {
    let s = services().await;
    let payload = serde_json::value::RawValue::from_string(r#"{"Records": []}"#.to_string()).unwrap();
    let err = super::handle(&s, LambdaEvent::new(payload, Context::default())).await.unwrap_err();
    assert!(err.to_string().contains("requestContext"), "{err}");
}
