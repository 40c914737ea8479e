//! The router and the push routes, in process over an in-memory store.

use std::sync::Arc;

use serde_json::{Value as Json, json};

use super::*;
use crate::online::memory::MemoryStore;
use crate::online::testing::FaultyStore;
use crate::proto::types::Value;
use crate::proto::types::value::Val;
use crate::push::testing::{self, PROJECT};

/// Whether `view` holds a row for driver `id`.
fn stored(store: &MemoryStore, view: &str, id: i64) -> bool {
    let registry = testing::registry();
    let view = registry.view(view).unwrap();
    let key = view.layout.key_encoder.redis_key(&[&Value { val: Some(Val::Int64Val(id)) }], PROJECT).unwrap();
    store.hash(&key).is_some_and(|h| h.contains_key(&view.layout.ts_field))
}

/// A router like the push function's (health and push routes, no async stream).
fn services(store: Arc<dyn OnlineStore>) -> Router {
    let config = RepoConfig::load_with(None, &|name| match name {
        "LARDER_PROJECT" => Some(PROJECT.into()),
        "LARDER_REGISTRY" => Some("/nonexistent/registry.db".into()),
        _ => None,
    })
    .unwrap();
    Router::new(Services::new(config, testing::registry_cache(), store)).with(Health).with(PushRoutes::sync_only())
}

async fn call(s: &Router, method: &str, path: &str, query: &str, body: &[u8]) -> (u16, Json, Vec<u8>) {
    let r = s.handle(ApiRequest::new(method, path, query, body)).await;
    let json = serde_json::from_slice(&r.body).unwrap_or(Json::Null);
    (r.status, json, r.body)
}

#[tokio::test]
async fn http_push_and_write_answer_as_feast_does() {
    let store = Arc::new(MemoryStore::new());
    let s = services(store.clone());
    let body = json!({"push_source_name": "driver_push", "df": {"driver_id": [1], "event_timestamp": ["2024-01-01T00:00:00Z"], "conv_rate": [0.5], "trips": [1], "city": ["x"]}, "to": "online"});
    let (status, _, raw) = call(&s, "POST", "/push", "", body.to_string().as_bytes()).await;
    assert_eq!((status, raw.len()), (200, 0));
    assert!(stored(&store, "driver_fresh", 1));

    let w = json!({"feature_view_name": "driver_rates", "df": {"driver_id": [2], "event_timestamp": ["2024-01-01T00:00:00Z"], "conv_rate": [0.5]}});
    let (status, _, raw) = call(&s, "POST", "/write-to-online-store", "", w.to_string().as_bytes()).await;
    assert_eq!((status, raw.as_slice()), (200, b"null".as_slice()));

    let mut offline = body.clone();
    offline["to"] = json!("offline");
    let (status, err, _) = call(&s, "POST", "/push", "", offline.to_string().as_bytes()).await;
    assert_eq!((status, err["error"]["code"].as_str()), (422, Some("unsupported")));
    assert!(err["error"]["message"].as_str().unwrap().contains("offline push"), "{err}");

    let (status, err, _) = call(&s, "POST", "/push", "", b"{").await;
    assert_eq!((status, err["error"]["code"].as_str()), (400, Some("bad_request")));
    let (status, _, _) = call(&s, "GET", "/push", "", b"").await;
    assert_eq!(status, 405);
    let (status, err, _) = call(&s, "POST", "/push", "mode=async", body.to_string().as_bytes()).await;
    assert_eq!(status, 422);
    assert!(err["error"]["message"].as_str().unwrap().contains("LARDER_PUSH_STREAM"), "{err}");
    let (status, _, _) = call(&s, "POST", "/push", "mode=later", body.to_string().as_bytes()).await;
    assert_eq!(status, 400);
    let mut missing = body.clone();
    missing["df"].as_object_mut().unwrap().remove("city");
    let (status, err, _) = call(&s, "POST", "/push", "", missing.to_string().as_bytes()).await;
    assert_eq!((status, err["error"]["code"].as_str()), (422, Some("invalid_value")));
}

#[tokio::test]
async fn an_unavailable_store_is_a_503_not_a_client_error() {
    let store = Arc::new(FaultyStore::default());
    store.fail_after(0);
    let s = services(store);
    let body = json!({"push_source_name": "driver_push", "df": {"driver_id": [1], "event_timestamp": ["2024-01-01T00:00:00Z"], "conv_rate": [0.5], "trips": [1], "city": ["x"]}});
    let (status, err, _) = call(&s, "POST", "/push", "", body.to_string().as_bytes()).await;
    assert_eq!((status, err["error"]["code"].as_str()), (503, Some("unavailable")));
}

#[tokio::test]
async fn unknown_routes_list_what_this_router_serves() {
    let s = services(Arc::new(MemoryStore::new()));
    let (status, err, _) = call(&s, "POST", "/get-online-features", "", b"{}").await;
    assert_eq!((status, err["error"]["code"].as_str()), (404, Some("route_not_found")));
    assert_eq!(
        err["error"]["message"],
        "no route POST /get-online-features: Larder serves GET /health, POST /push, POST /write-to-online-store here"
    );
    // A trailing slash is the same route; another method on a known path is a 405.
    let (status, _, _) = call(&s, "GET", "/health/", "", b"").await;
    assert_eq!(status, 200);
    let (status, err, _) = call(&s, "DELETE", "/health", "", b"").await;
    assert_eq!((status, err["error"]["code"].as_str()), (405, Some("method_not_allowed")));
}

#[tokio::test]
async fn bodies_over_the_limit_are_refused_before_routing() {
    let config = RepoConfig::load_with(None, &|name| match name {
        "LARDER_PROJECT" => Some(PROJECT.into()),
        "LARDER_REGISTRY" => Some("/nonexistent/registry.db".into()),
        _ => None,
    })
    .unwrap();
    let mut services = Services::new(config, testing::registry_cache(), Arc::new(MemoryStore::new()));
    services.limits.max_body_bytes = 10;
    let s = Router::new(services).with(PushRoutes::sync_only());
    let (status, err, _) = call(&s, "POST", "/nowhere", "", &[b' '; 11]).await;
    assert_eq!((status, err["error"]["code"].as_str()), (413, Some("too_large")));
    assert!(err["error"]["message"].as_str().unwrap().contains("11 bytes; the limit is 10"), "{err}");
}

#[test]
fn query_parameters() {
    let req = ApiRequest::new("POST", "/push", "mode=async&flag&x=", b"");
    assert_eq!(req.query_param("mode"), Some("async"));
    assert_eq!(req.query_param("flag"), Some(""));
    assert_eq!(req.query_param("x"), Some(""));
    assert_eq!(req.query_param("missing"), None);
}

#[test]
fn limits_from_the_environment() {
    assert_eq!(Limits::from_lookup(&|_| None).unwrap(), Limits::default());
    let l = Limits::from_lookup(&|n| (n == "LARDER_MAX_ENTITY_ROWS").then(|| "7".to_string())).unwrap();
    assert_eq!(l.max_entity_rows, 7);
    for bad in ["0", "-1", "many"] {
        let e = Limits::from_lookup(&|n| (n == "LARDER_MAX_BODY_BYTES").then(|| bad.to_string())).unwrap_err();
        assert_eq!(e.to_string(), format!("LARDER_MAX_BODY_BYTES: '{bad}' is not a positive number"));
    }
}
