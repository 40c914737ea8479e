//! A Feast push (or write) request invoked directly, answered through the same router as an
//! API Gateway event (`larder_apigw` adapts those).

use larder::api::{ApiRequest, Caller, Router};
use serde_json::{Value as Json, json};

/// `{"statusCode", "body"}` with the body as JSON (`null` when empty).
pub async fn direct(router: &Router, write: bool, body: &[u8]) -> Json {
    let path = if write { "/write-to-online-store" } else { "/push" };
    // Invoking the function directly takes IAM's lambda:InvokeFunction: a trusted caller, as the
    // stream triggers are.
    let r = router.handle(ApiRequest::new("POST", path, "", body).from_caller(&Caller::Invoker)).await;
    let body: Json = serde_json::from_slice(&r.body).unwrap_or(Json::Null);
    json!({ "statusCode": r.status, "body": body })
}
