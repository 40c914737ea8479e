//! `POST /push` and `POST /write-to-online-store`, as Feast's feature server answers them:
//! 200 with an empty body for `/push`, 200 with `null` for `/write-to-online-store`.
//!
//! `?mode=async` (either route) checks the request, puts it on the Kinesis stream named by
//! `LARDER_PUSH_STREAM` and answers 202 `{"status": "accepted", "stream", "rows", "records"}`.

use async_trait::async_trait;

use super::{ApiRequest, ApiResponse, Call, Routes, Services};
use crate::access::Resource;
use crate::aws::{Aws, Kinesis};
use crate::error::{Error, Result};
use crate::push::{self, Destination, PushRequest, PushSettings, WriteOptions, WriteRequest, enqueue};
use crate::registry::{AuthzAction, Registry};
use crate::telemetry;

/// The push routes, with the stream `?mode=async` enqueues to, if any.
pub struct PushRoutes {
    async_stream: Option<(String, Kinesis)>,
}

impl PushRoutes {
    pub fn new(settings: &PushSettings, aws: &Aws) -> PushRoutes {
        PushRoutes { async_stream: settings.async_stream.clone().map(|s| (s, aws.kinesis())) }
    }

    /// Push routes that only write synchronously (`?mode=async` answers 422).
    pub fn sync_only() -> PushRoutes {
        PushRoutes { async_stream: None }
    }

    async fn push(&self, services: &Services, push: push::Push, mode: Mode, ok: ApiResponse) -> Result<ApiResponse> {
        match mode {
            Mode::Sync => {
                let options = WriteOptions::from_config(&services.config);
                let stats = push::apply(&services.registry, services.store.as_ref(), options, &push).await?;
                telemetry::push("http", 1, stats.rows as u64, stats.written as u64, stats.skipped as u64);
                tracing::debug!(destination = %push.destination, rows = stats.rows, written = stats.written, skipped = stats.skipped, "pushed");
                Ok(ok)
            }
            Mode::Async => {
                let (stream, kinesis) = self.async_stream.as_ref().ok_or_else(|| {
                    Error::Unsupported(
                        "mode=async is not available here: no Kinesis stream is configured (LARDER_PUSH_STREAM)".into(),
                    )
                })?;
                if push.fresh_registry {
                    push::refresh_registry(&services.registry).await;
                }
                let prepared = push::prepare(&services.registry.get(), &push)?;
                let done = enqueue::enqueue(kinesis.get().await, stream, &push, &prepared).await?;
                tracing::debug!(destination = %push.destination, rows = done.rows, records = done.records, stream, "enqueued");
                Ok(ApiResponse::json(202, done.to_json()))
            }
        }
    }
}

enum Mode {
    Sync,
    Async,
}

fn mode(req: &ApiRequest<'_>) -> Result<Mode> {
    match req.query_param("mode") {
        None | Some("" | "sync") => Ok(Mode::Sync),
        Some("async") => Ok(Mode::Async),
        Some(other) => {
            Err(Error::BadRequest(format!("mode '{other}' is not known: use mode=sync (the default) or mode=async")))
        }
    }
}

#[async_trait]
impl Routes for PushRoutes {
    fn routes(&self) -> &'static [(&'static str, &'static str)] {
        &[("POST", "/push"), ("POST", "/write-to-online-store")]
    }

    async fn answer(&self, call: &Call<'_>) -> Result<ApiResponse> {
        let (services, req) = (call.services, call.req);
        let mode = mode(req)?;
        let (mut push, ok) = if call.path == "/push" {
            let ok = ApiResponse { status: 200, content_type: "text/plain; charset=utf-8", body: Vec::new() };
            (PushRequest::parse(req.body)?.into_push()?, ok)
        } else {
            (WriteRequest::parse(req.body)?.into_push()?, ApiResponse::json(200, b"null".to_vec()))
        };
        push.idempotency_key = idempotency_key(req.idempotency_key)?;
        if push.idempotency_key.is_some() && matches!(mode, Mode::Async) {
            return Err(Error::Unsupported(
                "Idempotency-Key is honoured by synchronous pushes only: mode=async puts the rows on Kinesis, where \
                 each record counts once but a repeated request is enqueued again; send it without mode=async"
                    .into(),
            ));
        }
        if call.user.is_some() {
            let registry = services.registry.get();
            call.authorize(&registry, &written(&registry, &push.destination)?, &[AuthzAction::WriteOnline])?;
        }
        self.push(services, push, mode, ok).await
    }
}

/// Longest `Idempotency-Key` taken: it becomes a hash field name in every tile key it reaches.
pub const MAX_IDEMPOTENCY_KEY: usize = 128;

/// The `Idempotency-Key` header, checked: 1 to [`MAX_IDEMPOTENCY_KEY`] visible ASCII
/// characters.
fn idempotency_key(header: Option<&[u8]>) -> Result<Option<String>> {
    let Some(bytes) = header else { return Ok(None) };
    if bytes.is_empty() || bytes.len() > MAX_IDEMPOTENCY_KEY || !bytes.iter().all(u8::is_ascii_graphic) {
        return Err(Error::BadRequest(format!(
            "header Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters (no spaces); got {} \
             bytes",
            bytes.len()
        )));
    }
    Ok(Some(String::from_utf8_lossy(bytes).into_owned()))
}

/// What a push writes, as Feast checks it: every view the push source feeds, or the one view.
fn written<'r>(registry: &'r Registry, destination: &Destination) -> Result<Vec<Resource<'r>>> {
    Ok(match destination {
        Destination::Source(source) => {
            registry.views_for_push_source(source)?.into_iter().map(|v| Resource::View(v)).collect()
        }
        Destination::View(view) => vec![Resource::View(registry.view(view)?)],
    })
}
