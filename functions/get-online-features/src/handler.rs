//! API Gateway event -> Larder's router -> API Gateway response.

use lambda_runtime::{Error, LambdaEvent, tracing};
use larder::api::Router;
use larder_apigw::{HttpEvent, HttpResponse};
use serde_json::value::RawValue;

/// Answers one event. A client's mistake, a malformed body included, is an HTTP answer (API
/// Gateway turns an `Err` into a 502); only a payload that is not an API Gateway event at all
/// is an error, since there is no HTTP caller to answer.
pub async fn handle(router: &Router, event: LambdaEvent<Box<RawValue>>) -> Result<HttpResponse, Error> {
    let http = HttpEvent::parse(event.payload.get()).map_err(|e| {
        tracing::error!(error = %e, "get-online-features takes API Gateway events");
        Error::from(e)
    })?;
    Ok(larder_apigw::answer(router, http).await)
}

#[cfg(test)]
mod tests;
