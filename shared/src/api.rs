//! The HTTP API, without an HTTP framework: a request is method, path, query and body bytes;
//! a response is status, content type and body bytes. The Lambda functions (API Gateway
//! events) and `larder serve` (a local HTTP server) both adapt to this one router, so they
//! answer byte for byte the same.
//!
//! Every error is answered `{"error": {"code", "message"}}` with the status of its
//! [`Error`] variant; nothing here returns a 5xx for a client's mistake, and no internal
//! `Debug` text reaches a client.

use std::sync::Arc;

use crate::config::RepoConfig;
use crate::error::{Error, ObjectKind, Result};
use crate::online::OnlineStore;
use crate::registry::RegistryCache;

/// Request limits, from the environment (`LARDER_MAX_BODY_BYTES`, `LARDER_MAX_ENTITY_ROWS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest body accepted (API Gateway's own limit is 6 MB, which is the default).
    pub max_body_bytes: usize,
    /// Most entity rows one get-online-features request may ask for.
    pub max_entity_rows: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_body_bytes: 6 * 1024 * 1024, max_entity_rows: 10_000 }
    }
}

impl Limits {
    pub fn from_env() -> Result<Limits> {
        let mut l = Limits::default();
        let read = |name: &str, into: &mut usize| -> Result<()> {
            if let Ok(v) = std::env::var(name) {
                *into = v
                    .trim()
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| Error::Config(format!("{name}: '{v}' is not a positive number")))?;
            }
            Ok(())
        };
        read("LARDER_MAX_BODY_BYTES", &mut l.max_body_bytes)?;
        read("LARDER_MAX_ENTITY_ROWS", &mut l.max_entity_rows)?;
        Ok(l)
    }
}

/// Everything a request needs, built once per process.
pub struct Services {
    pub config: RepoConfig,
    pub registry: Arc<RegistryCache>,
    pub store: Arc<dyn OnlineStore>,
    pub limits: Limits,
    /// Push options (`LARDER_PUSH_STREAM` for `?mode=async`, ...); the default has none.
    pub push: crate::push::PushSettings,
}

impl Services {
    /// Services with default limits and push settings (tests, embedding).
    pub fn new(config: RepoConfig, registry: Arc<RegistryCache>, store: Arc<dyn OnlineStore>) -> Services {
        Services { config, registry, store, limits: Limits::default(), push: Default::default() }
    }

    /// Everything from the environment (and `feature_store.yaml` if there is one): what a
    /// Lambda function builds once at start.
    pub async fn from_env() -> Result<Services> {
        Self::connect(RepoConfig::load(None)?).await
    }

    /// Loads the registry and connects the online store named by `config`.
    pub async fn connect(config: RepoConfig) -> Result<Services> {
        // Independent, so concurrent: a cold start pays for the slower of the two, not both.
        let (registry, store) = tokio::try_join!(RegistryCache::load(&config), crate::online::connect(&config))?;
        let push = crate::push::PushSettings::from_env()?;
        Ok(Services { config, registry, store, limits: Limits::from_env()?, push })
    }
}

#[derive(Debug, Clone, Copy)]
pub struct ApiRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    /// The raw query string, without `?`.
    pub query: &'a str,
    pub body: &'a [u8],
}

impl ApiRequest<'_> {
    /// The value of a query parameter (no percent-decoding is needed for Larder's options).
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .split('&')
            .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiResponse {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl ApiResponse {
    pub fn json(status: u16, body: Vec<u8>) -> Self {
        ApiResponse { status, content_type: "application/json", body }
    }

    pub fn error(e: &Error) -> Self {
        if e.status() >= 500 {
            tracing::error!(code = e.code(), error = %e, "request failed");
        } else {
            tracing::debug!(code = e.code(), error = %e, "request rejected");
        }
        ApiResponse::json(e.status(), e.to_json_body())
    }
}

/// Routes one request to every route Larder has (`larder serve`). Never fails: errors become
/// responses.
pub async fn handle(services: &Services, req: ApiRequest<'_>) -> ApiResponse {
    let result = match check_body(services, &req) {
        Err(e) => Err(e),
        Ok(()) => match (req.method, req.path.trim_end_matches('/')) {
            ("POST", "/push") => crate::push::http::push(services, &req).await,
            ("POST", "/write-to-online-store") => crate::push::http::write_to_online_store(services, &req).await,
            (_, "/push" | "/write-to-online-store") => Err(method_not_allowed(&req)),
            ("POST", "/materialize") => crate::materialize::http::handle(services, &req, false).await,
            ("POST", "/materialize-incremental") => crate::materialize::http::handle(services, &req, true).await,
            (_, "/materialize" | "/materialize-incremental") => Err(method_not_allowed(&req)),
            _ => serving_routes(services, &req).await,
        },
    };
    result.unwrap_or_else(|e| ApiResponse::error(&e))
}

/// Routes one request to the serving routes only (`GET /health`, `POST /get-online-features`):
/// the get-online-features function, which API Gateway sends nothing else. Not referring to
/// push and materialization keeps their code (Kinesis, SQS, parquet) out of that binary.
pub async fn handle_serving(services: &Services, req: ApiRequest<'_>) -> ApiResponse {
    let result = match check_body(services, &req) {
        Err(e) => Err(e),
        Ok(()) => serving_routes(services, &req).await,
    };
    result.unwrap_or_else(|e| ApiResponse::error(&e))
}

fn check_body(services: &Services, req: &ApiRequest<'_>) -> Result<()> {
    if req.body.len() > services.limits.max_body_bytes {
        return Err(Error::TooLarge(format!(
            "request body is {} bytes; the limit is {} (LARDER_MAX_BODY_BYTES)",
            req.body.len(),
            services.limits.max_body_bytes
        )));
    }
    Ok(())
}

async fn serving_routes(services: &Services, req: &ApiRequest<'_>) -> Result<ApiResponse> {
    match (req.method, req.path.trim_end_matches('/')) {
        ("GET", "/health") => health(services).await,
        ("POST", "/get-online-features") => crate::retrieval::http::get_online_features(services, req).await,
        (_, "/health" | "/get-online-features") => Err(method_not_allowed(req)),
        _ => Err(Error::not_found(ObjectKind::Route, format!("{} {}", req.method, req.path), &services.config.project)),
    }
}

fn method_not_allowed(req: &ApiRequest<'_>) -> Error {
    Error::MethodNotAllowed(format!("{} is not allowed on {}", req.method, req.path))
}

/// `GET /health`: 200 when the registry is loaded and the online store answers; 503 otherwise,
/// saying which. A registry refresh that failed is reported while the last good one serves.
async fn health(services: &Services) -> Result<ApiResponse> {
    let registry = services.registry.health();
    let store = services.store.ping().await;
    let healthy = store.is_ok();
    let body = serde_json::json!({
        "status": if healthy { "ok" } else { "unavailable" },
        "project": services.config.project,
        "registry": {
            "version": registry.version,
            "checked_seconds_ago": registry.age.as_secs(),
            "last_refresh_error": registry.last_error,
        },
        "online_store": {
            "kind": services.store.describe(),
            "error": store.err().map(|e| e.to_string()),
        },
    });
    Ok(ApiResponse::json(if healthy { 200 } else { 503 }, serde_json::to_vec(&body).unwrap_or_default()))
}
