//! The `get-online-features` Lambda: API Gateway (HTTP API payload 2.0, REST API 1.0) events
//! answered by Larder's HTTP router from the registry and Redis.
//!
//! `main` is the composition root: logging, configuration, registry and Redis client are set
//! up once per process, outside the handler, and every invocation borrows them.

mod handler;

use std::sync::Arc;

use lambda_http::{Error, run, service_fn};

// One invocation at a time per process: a current-thread runtime avoids a cross-thread hop
// on every Redis round trip (measured in docs/benchmarks/online-store.md).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let services = Arc::new(larder::api::Services::from_env().await.inspect_err(|e| {
        // Fail fast at init with a message CloudWatch shows, instead of failing every request.
        lambda_http::tracing::error!(error = %e, "cannot start get-online-features");
    })?);
    run(service_fn(move |event| {
        let services = Arc::clone(&services);
        async move { handler::handle(&services, event).await }
    }))
    .await
}
