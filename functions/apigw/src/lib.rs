//! API Gateway events in and out of Larder's router, for every HTTP function.
//!
//! In: an HTTP API (payload 2.0, also function URLs) or REST API / payload 1.0 event becomes
//! method, path (without the stage), query and body bytes, and the caller its authorizer
//! established (a JWT's claims, or the IAM signer): identity is taken from API Gateway, which
//! verified it, never re-verified here at a cost per request. Out: the router's status, content
//! type and body become the matching API Gateway response. A malformed event (a body marked
//! base64 that is not) is answered 400 with Larder's error shape: nothing here panics or
//! returns an error to the runtime for a client's mistake, because API Gateway would turn that
//! into a 502 (and a panic restarts the sandbox).

use aws_lambda_events::apigw::{
    ApiGatewayProxyRequest, ApiGatewayProxyResponse, ApiGatewayRequestAuthorizer, ApiGatewayV2httpRequest,
    ApiGatewayV2httpResponse,
};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::http::{HeaderMap, HeaderValue, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use larder::Error;
use larder::api::{ApiRequest, ApiResponse, Caller, Router};
use serde::{Deserialize, Serialize};

/// An API Gateway event.
#[derive(Debug)]
pub enum HttpEvent {
    /// HTTP API, payload format 2.0 (and Lambda function URLs).
    V2(Box<ApiGatewayV2httpRequest>),
    /// REST API, or HTTP API payload format 1.0.
    V1(Box<ApiGatewayProxyRequest>),
}

/// The answer to an [`HttpEvent`], in the same payload version.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum HttpResponse {
    V2(Box<ApiGatewayV2httpResponse>),
    V1(Box<ApiGatewayProxyResponse>),
}

#[derive(Deserialize)]
struct Probe<'a> {
    #[serde(rename = "requestContext")]
    request_context: Option<serde::de::IgnoredAny>,
    #[serde(borrow)]
    version: Option<std::borrow::Cow<'a, str>>,
}

/// Whether a payload is an API Gateway event (it has a `requestContext`).
pub fn is_http_event(payload: &str) -> bool {
    larder::error::not_an_object(payload.as_bytes()).is_none()
        && serde_json::from_str::<Probe<'_>>(payload).is_ok_and(|p| p.request_context.is_some())
}

impl HttpEvent {
    /// Parses an API Gateway event; `version: "2.0"` picks the HTTP API payload.
    pub fn parse(payload: &str) -> Result<HttpEvent, String> {
        if let Some(kind) = larder::error::not_an_object(payload.as_bytes()) {
            return Err(format!("the event is {kind}; an API Gateway event is a JSON object with a requestContext"));
        }
        let probe: Probe<'_> =
            serde_json::from_str(payload).map_err(|e| format!("the event is not a JSON object: {e}"))?;
        if probe.request_context.is_none() {
            return Err("not an API Gateway event: it has no requestContext".into());
        }
        if probe.version.as_deref() == Some("2.0") {
            serde_json::from_str(payload)
                .map(|r| HttpEvent::V2(Box::new(r)))
                .map_err(|e| format!("not a valid HTTP API event: {e}"))
        } else {
            serde_json::from_str(payload)
                .map(|r| HttpEvent::V1(Box::new(r)))
                .map_err(|e| format!("not a valid API Gateway event: {e}"))
        }
    }
}

/// The header that makes an HTTP push's aggregation events count once (docs/aggregations.md).
const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Answers an event with `router`. Never fails: a malformed event is a 400 answer.
pub async fn answer(router: &Router, event: HttpEvent) -> HttpResponse {
    match event {
        HttpEvent::V2(req) => {
            let method = req.request_context.http.method.as_str();
            let raw_path = req.raw_path.as_deref().unwrap_or("/");
            let path = strip_stage(raw_path, req.request_context.stage.as_deref());
            let query = req.raw_query_string.as_deref().unwrap_or("");
            let caller = req.request_context.authorizer.as_ref().map(caller).unwrap_or_default();
            let r = match body_bytes(req.body.as_deref(), req.is_base64_encoded) {
                Ok(body) => {
                    let key = req.headers.get(IDEMPOTENCY_KEY).map(|v| v.as_bytes());
                    router
                        .handle(
                            ApiRequest::new(method, path, query, &body).from_caller(&caller).with_idempotency_key(key),
                        )
                        .await
                }
                Err(r) => r,
            };
            HttpResponse::V2(Box::new(v2_response(r)))
        }
        HttpEvent::V1(req) => {
            let method = req.http_method.as_str();
            // A REST API's `path` is already without the stage.
            let path = req.path.as_deref().unwrap_or("/");
            let query =
                req.query_string_parameters.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
            let context = &req.request_context;
            let caller = match caller(&context.authorizer) {
                // A REST API's IAM authorization names the signer in `identity`.
                Caller::Anonymous => match &context.identity.user_arn {
                    Some(arn) => Caller::Iam {
                        user_arn: arn.clone(),
                        account_id: context.identity.account_id.clone(),
                        caller_id: context.identity.caller.clone(),
                    },
                    None => Caller::Anonymous,
                },
                known => known,
            };
            let r = match body_bytes(req.body.as_deref(), req.is_base64_encoded) {
                Ok(body) => {
                    let key = req.headers.get(IDEMPOTENCY_KEY).map(|v| v.as_bytes());
                    router
                        .handle(
                            ApiRequest::new(method, path, &query, &body).from_caller(&caller).with_idempotency_key(key),
                        )
                        .await
                }
                Err(r) => r,
            };
            HttpResponse::V1(Box::new(v1_response(r)))
        }
    }
}

/// Who API Gateway's authorizer says is calling: a JWT's claims, or the IAM signer.
fn caller(authorizer: &ApiGatewayRequestAuthorizer) -> Caller {
    if let Some(jwt) = &authorizer.jwt {
        return Caller::Jwt {
            claims: jwt.claims.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            scopes: jwt.scopes.clone().unwrap_or_default(),
        };
    }
    match authorizer.iam.as_ref().and_then(|iam| iam.user_arn.as_ref().map(|arn| (iam, arn))) {
        Some((iam, arn)) => {
            Caller::Iam { user_arn: arn.clone(), account_id: iam.account_id.clone(), caller_id: iam.caller_id.clone() }
        }
        None => Caller::Anonymous,
    }
}

fn body_bytes(body: Option<&str>, base64: bool) -> Result<Vec<u8>, ApiResponse> {
    let body = body.unwrap_or_default();
    if base64 {
        B64.decode(body.as_bytes()).map_err(|e| {
            ApiResponse::error(&Error::BadRequest(format!("the request body is marked base64 but is not: {e}")))
        })
    } else {
        Ok(body.as_bytes().to_vec())
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

/// Headers, body and base64 flag of an answer: text as is, anything else base64.
fn parts(r: ApiResponse) -> (HeaderMap, Body, bool) {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(r.content_type));
    match String::from_utf8(r.body) {
        Ok(text) => (headers, Body::Text(text), false),
        Err(e) => (headers, Body::Binary(e.into_bytes()), true),
    }
}

fn v2_response(r: ApiResponse) -> ApiGatewayV2httpResponse {
    let status = i64::from(r.status);
    let (headers, body, base64) = parts(r);
    let mut out = ApiGatewayV2httpResponse::default();
    out.status_code = status;
    out.headers = headers;
    out.body = Some(body);
    out.is_base64_encoded = base64;
    out
}

fn v1_response(r: ApiResponse) -> ApiGatewayProxyResponse {
    let status = i64::from(r.status);
    let (headers, body, base64) = parts(r);
    let mut out = ApiGatewayProxyResponse::default();
    out.status_code = status;
    out.headers = headers;
    out.body = Some(body);
    out.is_base64_encoded = base64;
    out
}

#[cfg(test)]
mod tests;
