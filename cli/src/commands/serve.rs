//! `larder serve`: Larder's HTTP API on a local port, the same router the Lambda functions
//! use, so a laptop answers exactly what API Gateway would.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::extract::State;
use axum::http::{Request, Response, StatusCode, header};
use clap::Args;
use larder::access::Authenticator;
use larder::api::{self, ApiRequest, Caller, Health, Limits, Materialize, PushRoutes, Retrieval, Router, Services};
use larder::aws::Aws;
use larder::online::memory::MemoryStore;
use larder::push::PushSettings;
use larder::registry::RegistryCache;
use larder::storage::Storage;
use larder::{Error, Result};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use super::RepoArgs;

#[derive(Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (Feast's default is 6566).
    #[arg(long, default_value_t = 6566)]
    pub port: u16,
    /// Serve from an in-memory store instead of Redis (nothing persists; for trying things out).
    #[arg(long)]
    pub memory: bool,
    /// Do not record metrics, and do not serve GET /metrics.
    #[arg(long)]
    pub no_metrics: bool,
}

pub async fn run(a: ServeArgs, aws: &Aws) -> Result<()> {
    let config = a.repo.config()?;
    let push = PushSettings::from_env()?;
    let services = if a.memory {
        let storage = Storage::new(aws);
        Services {
            registry: RegistryCache::load(&config, &storage).await?,
            store: Arc::new(MemoryStore::new()),
            storage,
            limits: Limits::from_env()?,
            auth: Authenticator::new(&config.auth)?,
            config,
        }
    } else {
        Services::connect(config, aws).await?
    };
    // Every route Larder has: a laptop answers what the three functions answer between them.
    let router = Router::new(services).with(Health).with(Retrieval).with(PushRoutes::new(&push, aws)).with(Materialize);
    let addr: SocketAddr = format!("{}:{}", a.host, a.port)
        .parse()
        .map_err(|e| Error::Config(format!("--host {} --port {}: {e}", a.host, a.port)))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Error::Config(format!("cannot listen on {addr}: {e}")))?;
    let router = Arc::new(router);
    let mut app = axum::Router::new();
    if !a.no_metrics {
        let handle = install_prometheus()?;
        let router = Arc::clone(&router);
        app = app.route(
            "/metrics",
            axum::routing::get(move || {
                let (handle, router) = (handle.clone(), Arc::clone(&router));
                async move {
                    router.services().observe();
                    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], handle.render())
                }
            }),
        );
    }
    let app = app.fallback(route).with_state(router);
    eprintln!("larder serve: listening on http://{addr} ({})", if a.memory { "in-memory store" } else { "Redis" });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| Error::internal(format!("server error: {e}")))?;
    eprintln!("larder serve: stopped");
    Ok(())
}

/// Installs the Prometheus recorder: histograms with buckets (so `histogram_quantile` works
/// across instances), and an upkeep task that folds recorded samples into them between scrapes.
fn install_prometheus() -> Result<PrometheusHandle> {
    use larder::telemetry::names;
    const SECONDS: &[f64] =
        &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
    const ROWS: &[f64] = &[1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0];
    const LAG: &[f64] = &[0.01, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0];
    const RUN: &[f64] = &[0.1, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0];
    let bad = |e: metrics_exporter_prometheus::BuildError| Error::Config(format!("cannot set up metrics: {e}"));
    let mut builder = PrometheusBuilder::new();
    for (name, buckets) in [
        (names::REQUEST_SECONDS, SECONDS),
        (names::REDIS_SECONDS, SECONDS),
        (names::ENTITY_ROWS, ROWS),
        (names::PUSH_LAG_SECONDS, LAG),
        (names::STREAM_BATCH_AGE_SECONDS, LAG),
        (names::MATERIALIZE_SECONDS, RUN),
    ] {
        builder = builder.set_buckets_for_metric(Matcher::Full(name.to_string()), buckets).map_err(bad)?;
    }
    let handle = builder.install_recorder().map_err(bad)?;
    larder::telemetry::describe();
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

async fn route(State(router): State<Arc<Router>>, req: Request<Body>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let limits = router.services().limits;
    // Read one byte past the limit so an oversized body is answered by the router's 413.
    let limit = limits.max_body_bytes.saturating_add(1);
    let bytes = match to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) => {
            let e = Error::TooLarge(format!(
                "request body is over the limit of {} bytes (LARDER_MAX_BODY_BYTES)",
                limits.max_body_bytes
            ));
            return to_http(api::ApiResponse::error(&e));
        }
    };
    // A bearer token is verified by the router, when `auth:` asks for it.
    let caller = match parts.headers.get(header::AUTHORIZATION) {
        Some(value) => match larder::access::oidc::bearer(value.to_str().ok()) {
            Ok(token) => Caller::Bearer(token.to_string()),
            Err(e) => return to_http(api::ApiResponse::error(&e)),
        },
        None => Caller::Anonymous,
    };
    let req = ApiRequest::new(parts.method.as_str(), parts.uri.path(), parts.uri.query().unwrap_or(""), &bytes)
        .from_caller(&caller)
        .with_idempotency_key(parts.headers.get("idempotency-key").map(|v| v.as_bytes()));
    to_http(router.handle(req).await)
}

fn to_http(resp: api::ApiResponse) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(resp.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, resp.content_type)
        .body(Body::from(resp.body))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

/// Resolves on SIGTERM (how process managers and containers stop services) or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
