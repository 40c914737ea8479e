//! The `get-online-features` Lambda: API Gateway (HTTP API payload 2.0, REST API 1.0) events
//! answered by Larder's router from the registry and Redis.
//!
//! `main` is the composition root: logging, configuration, the AWS clients, registry and
//! Redis client are set up once per process, outside the handler, and every invocation
//! borrows them. The router serves `GET /health` and `POST /get-online-features` only, so
//! no push or materialization code is linked into this binary.

mod handler;

use lambda_runtime::{Error, LambdaEvent, run, service_fn, tracing};
use larder::api::{Health, Retrieval, Router, Services};
use larder::aws::Aws;
use larder::telemetry::emf::Emf;
use serde_json::value::RawValue;

// One invocation at a time per process: a current-thread runtime avoids a cross-thread hop
// on every Redis round trip (measured in docs/benchmarks/online-store.md).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let aws = Aws::new();
    let services = Services::from_env(&aws).await.inspect_err(|e| {
        // Fail fast at init with a message CloudWatch shows, instead of failing every request.
        tracing::error!(error = %e.report(), "cannot start get-online-features");
    })?;
    let router = Router::new(services).with(Health).with(Retrieval);
    // Metrics as EMF lines on stdout, written after each invocation (no API call).
    let emf = Emf::from_env()?;
    run(service_fn(|event: LambdaEvent<Box<RawValue>>| async {
        let request_id = event.context.request_id.clone();
        let answer = handler::handle(&router, event).await;
        if let Some(emf) = &emf {
            router.services().observe();
            emf.flush(&request_id);
        }
        answer
    }))
    .await
}
