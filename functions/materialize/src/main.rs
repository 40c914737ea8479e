//! The `materialize` Lambda: scheduled (EventBridge) and direct invocations load feature
//! history from parquet on S3 into Redis, and record it in the registry (see `handler` for the
//! event shapes, and `larder::materialize::plan` for the plan / item / commit contract a Step
//! Functions Distributed Map drives).
//!
//! `main` is the composition root: logging, configuration, the AWS clients and the Redis
//! client are set up once per process; every invocation borrows them.

mod handler;

use std::sync::Arc;

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let services = Arc::new(services().await.inspect_err(|e| {
        lambda_runtime::tracing::error!(error = %e.report(), "cannot start materialize");
    })?);
    // Metrics as EMF lines on stdout, written after each invocation (no API call).
    let emf = Arc::new(larder::telemetry::emf::Emf::from_env()?);
    run(service_fn(move |event: LambdaEvent<Value>| {
        let (services, emf) = (Arc::clone(&services), Arc::clone(&emf));
        async move {
            let deadline = handler::deadline(event.context.deadline);
            let answer = handler::handle(&services, event.payload, deadline).await.map_err(|e| {
                lambda_runtime::tracing::error!(code = e.code(), error = %e.report(), "materialize failed");
                Error::from(format!("{}: {e}", e.code()))
            });
            if let Some(emf) = emf.as_ref() {
                emf.flush(&event.context.request_id);
            }
            answer
        }
    }))
    .await
}

async fn services() -> larder::Result<handler::Services> {
    let config = larder::config::RepoConfig::load(None)?;
    let aws = larder::aws::Aws::new();
    let store = larder::online::connect(&config, &aws).await?;
    let storage = larder::storage::Storage::new(&aws);
    let env = |name: &str| std::env::var(name).ok();
    let rows_per_item =
        larder::config::number_from_env(&env, "LARDER_MATERIALIZE_ROWS_PER_ITEM", 1..=u64::MAX, "a positive number")?
            .unwrap_or(larder::materialize::Options::default().rows_per_item);
    Ok(handler::Services { config, store, storage, rows_per_item })
}
