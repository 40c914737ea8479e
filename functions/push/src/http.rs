//! API Gateway events in and out of `larder::api`: method, path (without the stage), query and
//! body in; status, content type and body out. A client's mistake is always a 4xx answer,
//! never a function error (API Gateway would turn that into a 502).

use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayV2httpRequest};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use larder::Error;
use larder::api::{self, ApiRequest, ApiResponse, Services};
use serde_json::{Value as Json, json};

/// The API Gateway response for `r` (the same shape serves REST and HTTP APIs).
pub fn response(r: &ApiResponse) -> Json {
    match std::str::from_utf8(&r.body) {
        Ok(text) => json!({
            "statusCode": r.status,
            "headers": { "content-type": r.content_type },
            "body": text,
            "isBase64Encoded": false,
        }),
        Err(_) => json!({
            "statusCode": r.status,
            "headers": { "content-type": r.content_type },
            "body": B64.encode(&r.body),
            "isBase64Encoded": true,
        }),
    }
}

fn body_bytes(body: Option<String>, base64: bool) -> Result<Vec<u8>, ApiResponse> {
    let body = body.unwrap_or_default();
    if base64 {
        B64.decode(body.as_bytes()).map_err(|e| {
            ApiResponse::error(&Error::BadRequest(format!("the request body is marked base64 but is not: {e}")))
        })
    } else {
        Ok(body.into_bytes())
    }
}

/// `/prod/push` with stage `prod` is `/push`; the `$default` stage has no prefix.
fn strip_stage<'a>(path: &'a str, stage: Option<&str>) -> &'a str {
    match stage.filter(|s| !s.is_empty() && *s != "$default") {
        Some(stage) => path
            .strip_prefix('/')
            .and_then(|p| p.strip_prefix(stage))
            .filter(|rest| rest.is_empty() || rest.starts_with('/'))
            .map(|rest| if rest.is_empty() { "/" } else { rest })
            .unwrap_or(path),
        None => path,
    }
}

/// HTTP API (payload 2.0) and function URLs.
pub async fn v2(services: &Services, req: ApiGatewayV2httpRequest) -> Json {
    let method = req.request_context.http.method.as_str().to_string();
    let raw_path = req.raw_path.clone().unwrap_or_else(|| "/".into());
    let path = strip_stage(&raw_path, req.request_context.stage.as_deref());
    let query = req.raw_query_string.clone().unwrap_or_default();
    let r = match body_bytes(req.body, req.is_base64_encoded) {
        Ok(body) => api::handle(services, ApiRequest { method: &method, path, query: &query, body: &body }).await,
        Err(r) => r,
    };
    response(&r)
}

/// REST API, and HTTP API payload 1.0. `path` there is already without the stage.
pub async fn v1(services: &Services, req: ApiGatewayProxyRequest) -> Json {
    let method = req.http_method.as_str().to_string();
    let path = req.path.clone().unwrap_or_else(|| "/".into());
    let query = req.query_string_parameters.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
    let r = match body_bytes(req.body, req.is_base64_encoded) {
        Ok(body) => {
            api::handle(services, ApiRequest { method: &method, path: &path, query: &query, body: &body }).await
        }
        Err(r) => r,
    };
    response(&r)
}

/// A Feast push (or write) request invoked directly: `{"statusCode", "body"}` with the body
/// as JSON (`null` when empty).
pub async fn direct(services: &Services, write: bool, body: &[u8]) -> Json {
    let path = if write { "/write-to-online-store" } else { "/push" };
    let r = api::handle(services, ApiRequest { method: "POST", path, query: "", body }).await;
    let body: Json = serde_json::from_slice(&r.body).unwrap_or(Json::Null);
    json!({ "statusCode": r.status, "body": body })
}

#[cfg(test)]
mod tests {
    use super::strip_stage;

    #[test]
    fn stages_are_stripped() {
        assert_eq!(strip_stage("/prod/push", Some("prod")), "/push");
        assert_eq!(strip_stage("/push", Some("$default")), "/push");
        assert_eq!(strip_stage("/production/push", Some("prod")), "/production/push");
        assert_eq!(strip_stage("/prod", Some("prod")), "/");
        assert_eq!(strip_stage("/push", None), "/push");
    }
}
