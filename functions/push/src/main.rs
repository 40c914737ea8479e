//! The `push` Lambda: Kinesis, MSK / self-managed Kafka and API Gateway events written to the
//! online store by `larder::push` (see the library for how each trigger is answered).
//!
//! `main` is the composition root: logging, configuration, the AWS clients, registry, Redis
//! and the dead-letter destination are set up once per process, and every invocation borrows
//! them.

use std::sync::Arc;

use lambda_runtime::{Error, LambdaEvent, run, service_fn, tracing};
use larder::api::Services;
use larder::aws::Aws;
use larder::push::PushSettings;
use larder::telemetry::emf::Emf;
use push_function::App;
use serde_json::value::RawValue;

// One thread: Lambda hands a function one event at a time, and the Redis connection's task
// then runs on the thread that waits for it (no cross-thread wake-up per round trip), as in
// get-online-features and in push-bench's measurements.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let aws = Aws::new();
    let started = async {
        let settings = PushSettings::from_env()?;
        let services = Services::from_env(&aws).await?;
        Ok::<_, larder::Error>((settings, services))
    };
    let (settings, services) = started.await.inspect_err(|e| {
        // Fail fast at init with a message CloudWatch shows, instead of failing every batch.
        tracing::error!(error = %e.report(), "cannot start push");
    })?;
    let dead_letters = larder::push::dead_letter::from_target(settings.dead_letter.as_ref(), &aws).await;
    tracing::info!(
        project = %services.config.project,
        store = %services.store.describe(),
        dead_letters = %dead_letters.describe(),
        async_stream = settings.async_stream.as_deref().unwrap_or("-"),
        "push ready"
    );
    let app = Arc::new(App::new(services, settings, &aws, dead_letters));
    // Metrics as EMF lines on stdout, written after each invocation (no API call).
    let emf = Arc::new(Emf::from_env()?);
    run(service_fn(move |event: LambdaEvent<Box<RawValue>>| {
        let (app, emf) = (Arc::clone(&app), Arc::clone(&emf));
        async move {
            let request_id = event.context.request_id.clone();
            let answer = app.handle(event).await;
            if let Some(emf) = emf.as_ref() {
                app.services().observe();
                emf.flush(&request_id);
            }
            answer
        }
    }))
    .await
}
