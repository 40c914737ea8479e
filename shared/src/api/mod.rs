//! The HTTP API, without an HTTP framework: a request is method, path, query and body bytes;
//! a response is status, content type and body bytes. The Lambda functions (API Gateway
//! events, through `functions/apigw`) and `larder serve` (a local HTTP server) all adapt to
//! this one [`Router`], so they answer byte for byte the same.
//!
//! A router serves the route groups it is built with ([`Health`], [`Retrieval`], [`PushRoutes`],
//! [`Materialize`]): each binary names only the groups its API Gateway routes reach, so it
//! links only their code (the get-online-features function carries no Kinesis, SQS or parquet
//! code). The operations below (`retrieval`, `push`, `materialize`) know nothing of HTTP.
//!
//! Every error is answered `{"error": {"code", "message"}}` with the status of its
//! [`Error`] variant; nothing here returns a 5xx for a client's mistake, and no internal
//! `Debug` text or error cause reaches a client.

mod health;
mod materialize;
mod push;
mod retrieval;

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use tracing::Instrument;

pub use crate::access::{Caller, User};
pub use health::Health;
pub use materialize::Materialize;
pub use push::PushRoutes;
pub use retrieval::Retrieval;

use crate::access::Authenticator;
use crate::aws::Aws;
use crate::config::{RepoConfig, number_from_env};
use crate::error::{Error, Result};
use crate::online::OnlineStore;
use crate::registry::RegistryCache;
use crate::storage::Storage;
use crate::telemetry;

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
        Self::from_lookup(&|name| std::env::var(name).ok())
    }

    pub fn from_lookup(env: &dyn Fn(&str) -> Option<String>) -> Result<Limits> {
        let mut l = Limits::default();
        let positive = "a positive number";
        if let Some(n) = number_from_env(env, "LARDER_MAX_BODY_BYTES", 1..=usize::MAX, positive)? {
            l.max_body_bytes = n;
        }
        if let Some(n) = number_from_env(env, "LARDER_MAX_ENTITY_ROWS", 1..=usize::MAX, positive)? {
            l.max_entity_rows = n;
        }
        Ok(l)
    }
}

/// What every route uses, built once per process.
pub struct Services {
    pub config: RepoConfig,
    pub registry: Arc<RegistryCache>,
    pub store: Arc<dyn OnlineStore>,
    /// Local files and S3, for the registry and parquet sources.
    pub storage: Storage,
    pub limits: Limits,
    /// Who callers are (`config.auth`).
    pub auth: Authenticator,
}

impl Services {
    /// Services over a registry and store already built, with default limits (tests, embedding).
    /// Callers are identified as `config.auth` says; a bad `auth` setting panics here (tests
    /// build their configuration in code).
    pub fn new(config: RepoConfig, registry: Arc<RegistryCache>, store: Arc<dyn OnlineStore>) -> Services {
        let auth = Authenticator::new(&config.auth).expect("a valid auth configuration");
        Services { config, registry, store, storage: Storage::new(&Aws::new()), limits: Limits::default(), auth }
    }

    /// Everything from the environment (and `feature_store.yaml` if there is one): what a
    /// Lambda function builds once at start.
    pub async fn from_env(aws: &Aws) -> Result<Services> {
        Self::connect(RepoConfig::load(None)?, aws).await
    }

    /// Sets the gauges read from state rather than events (the registry copy's age); called
    /// before metrics are exported (after each invocation, on each scrape).
    pub fn observe(&self) {
        telemetry::registry_age(self.registry.health().age);
    }

    /// Loads the registry and connects the online store named by `config`.
    pub async fn connect(config: RepoConfig, aws: &Aws) -> Result<Services> {
        let storage = Storage::new(aws);
        // Independent, so concurrent: a cold start pays for the slower of the two, not both.
        let auth = Authenticator::new(&config.auth)?;
        let (registry, store) =
            tokio::try_join!(RegistryCache::load(&config, &storage), crate::online::connect(&config, aws))?;
        Ok(Services { config, registry, store, storage, limits: Limits::from_env()?, auth })
    }
}

static ANONYMOUS: Caller = Caller::Anonymous;

#[derive(Debug, Clone, Copy)]
pub struct ApiRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    /// The raw query string, without `?`.
    pub query: &'a str,
    pub body: &'a [u8],
    pub caller: &'a Caller,
    /// The `Idempotency-Key` header, as sent.
    pub idempotency_key: Option<&'a [u8]>,
}

impl<'a> ApiRequest<'a> {
    /// A request from an anonymous caller.
    pub fn new(method: &'a str, path: &'a str, query: &'a str, body: &'a [u8]) -> Self {
        ApiRequest { method, path, query, body, caller: &ANONYMOUS, idempotency_key: None }
    }

    /// The same request, from `caller`.
    pub fn from_caller(self, caller: &'a Caller) -> Self {
        ApiRequest { caller, ..self }
    }

    /// The same request, with the `Idempotency-Key` header's value if it had one.
    pub fn with_idempotency_key(self, idempotency_key: Option<&'a [u8]>) -> Self {
        ApiRequest { idempotency_key, ..self }
    }
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
            tracing::error!(code = e.code(), error = %e.report(), "request failed");
        } else {
            tracing::debug!(code = e.code(), error = %e, "request rejected");
        }
        ApiResponse::json(e.status(), e.to_json_body())
    }
}

/// One request on its way to a route group.
pub struct Call<'a> {
    pub services: &'a Services,
    /// The route, one of the group's [`Routes::routes`].
    pub path: &'static str,
    pub req: &'a ApiRequest<'a>,
    /// The caller permissions are checked for; `None` when they are not checked (authentication
    /// off, a trusted invoker, or a route open to all).
    pub user: Option<std::sync::Arc<User>>,
}

impl Call<'_> {
    /// Checks the caller may do `actions` on `resources` (nothing to check without a user).
    pub fn authorize(
        &self,
        registry: &crate::registry::Registry,
        resources: &[crate::access::Resource<'_>],
        actions: &[crate::registry::AuthzAction],
    ) -> Result<()> {
        match &self.user {
            Some(user) => crate::access::check(registry, user, resources, actions),
            None => Ok(()),
        }
    }
}

/// A group of routes: the paths it serves and how it answers them.
#[async_trait]
pub trait Routes: Send + Sync {
    /// `(method, path)` of every route, as the 404 and 405 answers list them.
    fn routes(&self) -> &'static [(&'static str, &'static str)];

    /// Whether a caller must be identified before [`Routes::answer`] (when authentication is
    /// on). Only `/health` is open.
    fn needs_caller(&self) -> bool {
        true
    }

    /// Answers a request to one of [`Routes::routes`] (its method checked, its caller
    /// identified when [`Routes::needs_caller`]).
    async fn answer(&self, call: &Call<'_>) -> Result<ApiResponse>;
}

/// The route label of a request that matched no route.
pub const UNMATCHED: &str = "unmatched";

fn too_large(len: usize, limit: usize) -> Error {
    Error::TooLarge(format!("request body is {len} bytes; the limit is {limit} (LARDER_MAX_BODY_BYTES)"))
}

/// The routes one binary serves, over its services.
pub struct Router {
    services: Services,
    groups: Vec<Box<dyn Routes>>,
}

impl Router {
    pub fn new(services: Services) -> Router {
        Router { services, groups: Vec::new() }
    }

    /// Adds a group of routes.
    pub fn with(mut self, routes: impl Routes + 'static) -> Router {
        self.groups.push(Box::new(routes));
        self
    }

    pub fn services(&self) -> &Services {
        &self.services
    }

    /// Answers one request. Never fails: errors become responses. Every answer is counted by
    /// route and status, and timed (`larder_requests_total`, `larder_request_duration_seconds`).
    ///
    /// Logs inside a request carry its method and path (an `info` span: in the Lambda
    /// functions' JSON logs, next to the runtime's request id and trace id); one `debug` line
    /// per request gives route, status and time, and failures are logged by [`ApiResponse::error`].
    pub async fn handle(&self, req: ApiRequest<'_>) -> ApiResponse {
        let started = Instant::now();
        let span = tracing::info_span!("request", method = req.method, path = req.path);
        let (route, answer) = self.route(&req).instrument(span.clone()).await;
        let _entered = span.enter();
        let response = answer.unwrap_or_else(|e| ApiResponse::error(&e));
        let elapsed = started.elapsed();
        telemetry::request(route, response.status, elapsed);
        tracing::debug!(route, status = response.status, micros = elapsed.as_micros() as u64, "answered");
        response
    }

    /// The route matched (a path of a group, or [`UNMATCHED`]: metric labels stay bounded
    /// whatever paths clients send) and its answer.
    async fn route(&self, req: &ApiRequest<'_>) -> (&'static str, Result<ApiResponse>) {
        let limit = self.services.limits.max_body_bytes;
        let path = req.path.trim_end_matches('/');
        let mut path_known = None;
        for group in &self.groups {
            for (method, p) in group.routes() {
                if *p == path {
                    if *method == req.method {
                        if req.body.len() > limit {
                            return (p, Err(too_large(req.body.len(), limit)));
                        }
                        return (p, self.answer(group.as_ref(), p, req).await);
                    }
                    path_known = Some(*p);
                }
            }
        }
        if req.body.len() > limit {
            return (path_known.unwrap_or(UNMATCHED), Err(too_large(req.body.len(), limit)));
        }
        if let Some(p) = path_known {
            return (p, Err(Error::MethodNotAllowed(format!("{} is not allowed on {}", req.method, req.path))));
        }
        (UNMATCHED, Err(Error::NoRoute { route: format!("{} {}", req.method, req.path), served: self.served() }))
    }

    async fn answer(&self, group: &dyn Routes, path: &'static str, req: &ApiRequest<'_>) -> Result<ApiResponse> {
        let user = if group.needs_caller() { self.services.auth.user(req.caller).await? } else { None };
        group.answer(&Call { services: &self.services, path, req, user }).await
    }

    /// `GET /health, POST /get-online-features, ...`: what this router answers.
    fn served(&self) -> String {
        self.groups.iter().flat_map(|g| g.routes()).map(|(m, p)| format!("{m} {p}")).collect::<Vec<_>>().join(", ")
    }
}

#[cfg(test)]
mod tests;
