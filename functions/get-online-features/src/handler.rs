//! API Gateway event -> Larder's router -> API Gateway response.

use std::convert::Infallible;

use lambda_http::{Body, Request, RequestExt, Response};
use larder::api::{self, ApiRequest, Services};

/// Answers one event. Never returns `Err`: API Gateway would turn it into a 502, so every
/// outcome, client mistakes included, is an HTTP response.
pub async fn handle(services: &Services, event: Request) -> Result<Response<Body>, Infallible> {
    let body: &[u8] = match event.body() {
        Body::Empty => &[],
        Body::Text(t) => t.as_bytes(),
        Body::Binary(b) => b,
        _ => &[],
    };
    // The path without the REST API stage prefix (`/prod/get-online-features` -> `/get-online-features`).
    let path = event.raw_http_path();
    let req = ApiRequest { method: event.method().as_str(), path, query: event.uri().query().unwrap_or(""), body };
    Ok(to_lambda(api::handle_serving(services, req).await))
}

pub fn to_lambda(resp: api::ApiResponse) -> Response<Body> {
    let body = match String::from_utf8(resp.body) {
        Ok(text) => Body::Text(text),
        Err(e) => Body::Binary(e.into_bytes()),
    };
    Response::builder()
        .status(resp.status)
        .header("content-type", resp.content_type)
        .body(body)
        .unwrap_or_else(|_| Response::new(Body::Empty))
}

#[cfg(test)]
mod tests;
