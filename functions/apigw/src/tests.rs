//! The adapter on the sample events in `events/` and on malformed ones, over a router whose
//! one route echoes what it was given.

use std::sync::Arc;

use async_trait::async_trait;
use larder::api::{ApiResponse, Call, Routes, Services};
use larder::config::RepoConfig;
use larder::online::memory::MemoryStore;
use larder::registry::{Registry, RegistryCache};
use serde_json::{Value, json};

use super::*;

macro_rules! event {
    ($name:literal) => {
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/", $name))
    };
}

/// Answers what it received, as JSON.
struct Echo;

#[async_trait]
impl Routes for Echo {
    fn routes(&self) -> &'static [(&'static str, &'static str)] {
        &[("POST", "/get-online-features"), ("POST", "/push"), ("GET", "/health"), ("POST", "/bytes")]
    }

    async fn answer(&self, call: &Call<'_>) -> larder::Result<ApiResponse> {
        let req = call.req;
        if call.path == "/bytes" {
            return Ok(ApiResponse { status: 201, content_type: "application/octet-stream", body: vec![0xff, 0, 1] });
        }
        let body = json!({
            "method": req.method, "path": req.path, "query": req.query,
            "body": String::from_utf8_lossy(req.body), "caller": format!("{:?}", req.caller),
            "idempotency_key": req.idempotency_key.map(String::from_utf8_lossy),
        });
        Ok(ApiResponse::json(200, body.to_string().into_bytes()))
    }
}

fn router() -> Router {
    let config =
        RepoConfig::parse("project: p\nregistry: unused.db\n", std::path::Path::new("/tmp"), "test", &|_| None)
            .unwrap();
    let registry = RegistryCache::fixed(Registry { project: "p".into(), ..Default::default() });
    Router::new(Services::new(config, registry, Arc::new(MemoryStore::new()))).with(Echo)
}

/// The event's answer as JSON, and its body parsed.
async fn answer_json(event: &str) -> (Value, Value) {
    let response = answer(&router(), HttpEvent::parse(event).expect("an API Gateway event")).await;
    let out = serde_json::to_value(&response).unwrap();
    let body = serde_json::from_str(out["body"].as_str().unwrap()).unwrap_or(Value::Null);
    (out, body)
}

#[tokio::test]
async fn http_api_events_become_router_requests() {
    let (out, body) = answer_json(event!("apigw-http-get-online-features.json")).await;
    assert_eq!(
        (out["statusCode"].clone(), out["headers"]["content-type"].clone()),
        (json!(200), json!("application/json"))
    );
    assert_eq!(out["isBase64Encoded"], false);
    assert_eq!((body["method"].as_str(), body["path"].as_str()), (Some("POST"), Some("/get-online-features")));
    let plain = body["body"].clone();
    assert!(plain.as_str().unwrap().contains("driver_hourly_stats"), "{plain}");
    // The same request with its body base64-encoded.
    let (_, body) = answer_json(event!("apigw-http-get-online-features-base64.json")).await;
    assert_eq!(body["body"], plain);
}

#[tokio::test]
async fn rest_api_events_route_without_their_stage() {
    let (out, body) = answer_json(event!("apigw-rest-get-online-features.json")).await;
    assert_eq!(out["statusCode"], 200, "{out}");
    assert_eq!(body["path"], "/get-online-features");
    let (_, body) = answer_json(event!("push-apigw-rest.json")).await;
    assert_eq!(body["path"], "/push");
}

#[tokio::test]
async fn a_body_marked_base64_that_is_not_is_a_400() {
    for e in [event!("apigw-http-get-online-features.json"), event!("apigw-rest-get-online-features.json")] {
        let mut bad: Value = serde_json::from_str(e).unwrap();
        bad["body"] = json!("!!! not base64 !!!");
        bad["isBase64Encoded"] = json!(true);
        let (out, body) = answer_json(&bad.to_string()).await;
        assert_eq!(out["statusCode"], 400, "{out}");
        assert_eq!(body["error"]["code"], "bad_request");
        assert!(body["error"]["message"].as_str().unwrap().contains("marked base64 but is not"), "{body}");
    }
}

#[tokio::test]
async fn binary_answers_are_base64() {
    let mut e: Value = serde_json::from_str(event!("apigw-http-health.json")).unwrap();
    e["rawPath"] = json!("/bytes");
    e["requestContext"]["http"]["method"] = json!("POST");
    let out = serde_json::to_value(answer(&router(), HttpEvent::parse(&e.to_string()).unwrap()).await).unwrap();
    assert_eq!((out["statusCode"].clone(), out["isBase64Encoded"].clone()), (json!(201), json!(true)));
    assert_eq!(out["body"], B64.encode([0xff, 0, 1]));
    assert_eq!(out["headers"]["content-type"], "application/octet-stream");
}

#[tokio::test]
async fn queries_reach_the_router() {
    let mut e: Value = serde_json::from_str(event!("push-apigw-http.json")).unwrap();
    e["rawQueryString"] = json!("mode=async");
    let (_, body) = answer_json(&e.to_string()).await;
    assert_eq!(body["query"], "mode=async");
    let mut e: Value = serde_json::from_str(event!("push-apigw-rest.json")).unwrap();
    e["queryStringParameters"] = json!({"mode": "sync"});
    let (_, body) = answer_json(&e.to_string()).await;
    assert_eq!(body["query"], "mode=sync");
}

#[tokio::test]
async fn the_idempotency_key_header_reaches_the_router() {
    // Header names are case-insensitive: an HTTP API lowercases them, a REST API keeps the
    // client's spelling.
    for (event, name) in
        [(event!("push-apigw-http.json"), "idempotency-key"), (event!("push-apigw-rest.json"), "Idempotency-Key")]
    {
        let mut e: Value = serde_json::from_str(event).unwrap();
        let (_, body) = answer_json(&e.to_string()).await;
        assert_eq!(body["idempotency_key"], Value::Null);
        e["headers"][name] = json!("order-42");
        let (_, body) = answer_json(&e.to_string()).await;
        assert_eq!(body["idempotency_key"], "order-42", "{name}");
    }
}

#[test]
fn events_are_told_apart_by_their_shape() {
    assert!(matches!(HttpEvent::parse(event!("apigw-http-health.json")), Ok(HttpEvent::V2(_))));
    assert!(matches!(HttpEvent::parse(event!("apigw-rest-get-online-features.json")), Ok(HttpEvent::V1(_))));
    assert!(is_http_event(event!("push-apigw-http.json")));
    assert!(!is_http_event(event!("kinesis.json")) && !is_http_event("[]"));
    let e = HttpEvent::parse(event!("kinesis.json")).unwrap_err();
    assert!(e.contains("no requestContext"), "{e}");
    let e = HttpEvent::parse(r#"{"requestContext": {}, "version": "2.0", "rawPath": 7}"#).unwrap_err();
    assert!(e.starts_with("not a valid HTTP API event"), "{e}");
}

#[test]
fn stages_are_stripped() {
    assert_eq!(strip_stage("/prod/push", Some("prod")), "/push");
    assert_eq!(strip_stage("/push", Some("$default")), "/push");
    assert_eq!(strip_stage("/production/push", Some("prod")), "/production/push");
    assert_eq!(strip_stage("/prod", Some("prod")), "/");
    assert_eq!(strip_stage("/push", None), "/push");
}

#[tokio::test]
async fn the_authorizers_caller_reaches_the_router() {
    // The sample event is what the default stack (ApiAuth=AWS_IAM) delivers: the IAM signer.
    let (_, body) = answer_json(event!("apigw-http-health.json")).await;
    assert!(body["caller"].as_str().unwrap().contains("assumed-role/feature-client/ci"), "{body}");
    // No authorizer: anonymous.
    let mut e: Value = serde_json::from_str(event!("apigw-http-health.json")).unwrap();
    e["requestContext"].as_object_mut().unwrap().remove("authorizer");
    let (_, body) = answer_json(&e.to_string()).await;
    assert_eq!(body["caller"], "Anonymous");
    // An HTTP API JWT authorizer: its claims and scopes.
    let mut e: Value = serde_json::from_str(event!("push-apigw-http.json")).unwrap();
    e["requestContext"]["authorizer"] = json!({"jwt": {
        "claims": {"sub": "1234", "preferred_username": "ana", "groups": "[analysts writers]"},
        "scopes": ["features.read"]}});
    let (_, body) = answer_json(&e.to_string()).await;
    let caller = body["caller"].as_str().unwrap();
    assert!(caller.starts_with("Jwt {") && caller.contains(r#""preferred_username": "ana""#), "{caller}");
    assert!(caller.contains(r#""groups": "[analysts writers]""#) && caller.contains("features.read"), "{caller}");
    // HTTP API IAM authorization: the signer.
    e["requestContext"]["authorizer"] = json!({"iam": {"accessKey": "AKIA", "accountId": "123456789012",
        "callerId": "AIDA", "userArn": "arn:aws:iam::123456789012:user/ana", "userId": "AIDA"}});
    let (_, body) = answer_json(&e.to_string()).await;
    assert!(body["caller"].as_str().unwrap().contains(r#"user_arn: "arn:aws:iam::123456789012:user/ana""#), "{body}");
    // REST API IAM authorization puts the signer in the identity.
    let mut e: Value = serde_json::from_str(event!("push-apigw-rest.json")).unwrap();
    e["requestContext"]["identity"]["userArn"] = json!("arn:aws:sts::123456789012:assumed-role/app/session");
    let (_, body) = answer_json(&e.to_string()).await;
    assert!(body["caller"].as_str().unwrap().contains("assumed-role/app/session"), "{body}");
}
