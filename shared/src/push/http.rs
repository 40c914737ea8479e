//! `POST /push` and `POST /write-to-online-store`, as Feast's feature server answers them:
//! 200 with an empty body for `/push`, 200 with `null` for `/write-to-online-store`.
//!
//! `?mode=async` (either route) checks the request, puts it on the Kinesis stream named by
//! `LARDER_PUSH_STREAM` and answers 202 `{"status": "accepted", "stream", "rows", "records"}`.

use super::{PushRequest, WriteOptions, WriteRequest, apply, enqueue, prepare, refresh_registry};
use crate::api::{ApiRequest, ApiResponse, Services};
use crate::aws;
use crate::error::{Error, Result};

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

pub async fn push(services: &Services, req: &ApiRequest<'_>) -> Result<ApiResponse> {
    let mode = mode(req)?;
    let push = PushRequest::parse(req.body)?.into_push()?;
    handle(
        services,
        push,
        mode,
        ApiResponse { status: 200, content_type: "text/plain; charset=utf-8", body: Vec::new() },
    )
    .await
}

pub async fn write_to_online_store(services: &Services, req: &ApiRequest<'_>) -> Result<ApiResponse> {
    let mode = mode(req)?;
    let push = WriteRequest::parse(req.body)?.into_push()?;
    handle(services, push, mode, ApiResponse::json(200, b"null".to_vec())).await
}

async fn handle(services: &Services, push: super::Push, mode: Mode, ok: ApiResponse) -> Result<ApiResponse> {
    let options = WriteOptions::from_config(&services.config);
    match mode {
        Mode::Sync => {
            let stats = apply(&services.registry, services.store.as_ref(), options, &push).await?;
            tracing::debug!(destination = %push.destination, rows = stats.rows, written = stats.written, skipped = stats.skipped, "pushed");
            Ok(ok)
        }
        Mode::Async => {
            let stream = services.push.async_stream.as_deref().ok_or_else(|| {
                Error::Unsupported(
                    "mode=async is not available here: no Kinesis stream is configured (LARDER_PUSH_STREAM)".into(),
                )
            })?;
            if push.fresh_registry {
                refresh_registry(&services.registry).await;
            }
            let prepared = prepare(&services.registry.get(), &push)?;
            let done = enqueue::enqueue(aws::kinesis().await, stream, &push, &prepared).await?;
            tracing::debug!(destination = %push.destination, rows = done.rows, records = done.records, stream, "enqueued");
            Ok(ApiResponse::json(202, done.to_json()))
        }
    }
}
