//! `feature_store.yaml` with Feast's keys, plus `LARDER_*` environment overrides.
//!
//! Loading follows Feast: environment variables are expanded in the text, then the YAML is
//! parsed. Larder adds `${VAR:-default}` and `${VAR:"default"}` (the form Feast's docs show),
//! and is stricter where Feast is silent: an undefined variable without a default, an unknown
//! key or a wrong type is an error naming the variable or key and the line.
//!
//! A Lambda function usually has no file at all: every setting can come from the environment
//! (see [`ENV_VARS`]), which also overrides the file when both are present.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

use crate::error::{Error, Result};

/// Every environment variable Larder reads, with what it sets. README's table mirrors this.
pub const ENV_VARS: &[(&str, &str)] = &[
    ("LARDER_REPO", "directory holding feature_store.yaml (default: current directory)"),
    ("LARDER_CONFIG", "path of feature_store.yaml, when it is not in LARDER_REPO"),
    ("LARDER_PROJECT", "project"),
    ("LARDER_REGISTRY", "registry path: a local path or s3://bucket/key"),
    ("LARDER_REGISTRY_CACHE_TTL_SECONDS", "registry.cache_ttl_seconds (0: never refresh)"),
    ("LARDER_REDIS_TYPE", "online_store.redis_type: redis or redis_cluster"),
    ("LARDER_REDIS_CONNECTION_STRING", "online_store.connection_string"),
    ("LARDER_REDIS_KEY_TTL_SECONDS", "online_store.key_ttl_seconds (0: no expiry)"),
    ("LARDER_REDIS_SKIP_DEDUP", "online_store.skip_dedup (true/false)"),
    ("LARDER_ENTITY_KEY_SERIALIZATION_VERSION", "entity_key_serialization_version (3, or 2)"),
    (
        "LARDER_REDIS_AUTH",
        "Redis credentials beyond the connection string: iam (ElastiCache IAM tokens), secret (Secrets Manager) or none",
    ),
    ("LARDER_REDIS_USERNAME", "with LARDER_REDIS_AUTH=iam: the ElastiCache user id"),
    ("LARDER_REDIS_IAM_CACHE", "with LARDER_REDIS_AUTH=iam: the cache name (serverless cache or replication group id)"),
    ("LARDER_REDIS_IAM_SERVERLESS", "with LARDER_REDIS_AUTH=iam: true for an ElastiCache Serverless cache"),
    (
        "LARDER_REDIS_PASSWORD_SECRET",
        "with LARDER_REDIS_AUTH=secret: Secrets Manager secret (ARN or name): a password or {\"username\", \"password\"}",
    ),
    (
        "LARDER_AUTH",
        "who callers are: none (no permission checks), oidc or kubernetes (verify bearer tokens), apigateway (API Gateway's authorizer); overrides auth:",
    ),
    ("LARDER_AUTH_DISCOVERY_URL", "with oidc or kubernetes: the OpenID discovery document's URL"),
    ("LARDER_AUTH_CLIENT_ID", "the client whose resource_access.<client_id>.roles are the caller's roles"),
    ("LARDER_AUTH_AUDIENCE", "with oidc or kubernetes: the aud a token must carry"),
    ("LARDER_AUTH_ISSUER", "with oidc or kubernetes: the iss a token must carry"),
    (
        "LARDER_IAM_ROLES",
        "with apigateway: roles of IAM principals, principal-pattern=role role,... (* matches anything)",
    ),
    ("LARDER_REDIS_TIMEOUT_MS", "timeout of one Redis round trip, connect included (default 1000)"),
    ("LARDER_REDIS_RETRIES", "retries after a lost Redis connection, with backoff (default 2)"),
    ("LARDER_MAX_ENTITY_ROWS", "most entity rows one get-online-features request may ask for (default 10000)"),
    ("LARDER_MAX_BODY_BYTES", "largest HTTP body accepted, in bytes (default 6291456, API Gateway's limit)"),
    ("LARDER_S3_ENDPOINT", "S3 endpoint URL override (S3-compatible stores, tests)"),
    ("LARDER_KINESIS_ENDPOINT", "Kinesis endpoint URL override (tests)"),
    ("LARDER_SQS_ENDPOINT", "SQS endpoint URL override (tests)"),
    ("LARDER_SECRETSMANAGER_ENDPOINT", "Secrets Manager endpoint URL override (tests)"),
    ("LARDER_PUSH_SOURCE", "push: push source of a flat-row stream record that names none (any stream or topic)"),
    ("LARDER_PUSH_SOURCE_MAP", "push: per Kinesis stream or Kafka topic, its push source: stream=source,topic=source"),
    ("LARDER_PUSH_STREAM", "push: Kinesis stream (name or ARN) that POST /push?mode=async enqueues to"),
    ("LARDER_DEAD_LETTER", "push: where poison records go: an SQS queue URL or s3://bucket/prefix/ (default: the log)"),
    ("LARDER_KAFKA_PARTIAL_BATCH", "push: true: Kafka batches answer batchItemFailures (default: fail the invocation)"),
    ("LARDER_MATERIALIZE_ROWS_PER_ITEM", "materialize: most rows in one work item of a plan request (default 8000000)"),
    (
        "LARDER_LOG",
        "larder CLI log filter, tracing syntax (default `warn,larder::push::stream=error`: `larder push` lists rejected records itself); the functions use AWS_LAMBDA_LOG_LEVEL",
    ),
];

/// The parsed, validated `feature_store.yaml` with overrides applied.
#[derive(Debug, Clone, PartialEq)]
pub struct RepoConfig {
    pub project: String,
    pub provider: String,
    pub registry: RegistryConfig,
    /// `None` when the file names no Redis online store (Feast's default is sqlite).
    pub online_store: Option<OnlineStoreConfig>,
    /// The `type` of a non-Redis online store, kept to explain why it cannot be used.
    pub unsupported_online_store: Option<String>,
    pub offline_store: OfflineStoreConfig,
    pub entity_key_serialization_version: u32,
    /// The feature repository directory; relative paths in the config are relative to it.
    pub repo_dir: PathBuf,
    /// Who callers are and whether permissions are enforced (`auth:`, `LARDER_AUTH`).
    pub auth: AuthConfig,
}

/// `feature_store.yaml`'s `auth:` as Feast writes it, plus API Gateway's own authorization for
/// the Lambda functions (`LARDER_AUTH=apigateway`).
#[derive(Debug, Clone, Default, PartialEq)]
pub enum AuthConfig {
    /// `no_auth` (Feast's default): callers are not identified and permissions are not
    /// enforced, as in Feast.
    #[default]
    None,
    /// `oidc` or `kubernetes`: a bearer token on every request, verified here.
    Tokens(TokenAuth),
    /// Behind API Gateway: its authorizer verified the caller (a JWT's claims, or the IAM
    /// principal mapped to roles by `iam_roles`); nothing is verified again per request.
    ApiGateway { client_id: Option<String>, iam_roles: String },
}

/// Where bearer tokens are verified: an OIDC provider's discovery document and JWKS.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenAuth {
    /// `kubernetes`: service-account tokens, verified against the cluster's own issuer
    /// discovery (a TokenReview is out of reach from Larder); the namespace is read from the
    /// token's `kubernetes.io` claim.
    pub kubernetes: bool,
    pub discovery_url: String,
    /// The client whose `resource_access.<client_id>.roles` are the caller's roles.
    pub client_id: Option<String>,
    /// Checked against `aud` / `iss` when set.
    pub audience: Option<String>,
    pub issuer: Option<String>,
    pub jwks_cache_lifespan: std::time::Duration,
    pub jwks_request_timeout: std::time::Duration,
    pub verify_ssl: bool,
    pub ca_cert_path: Option<PathBuf>,
}

/// The Kubernetes API server's service-account issuer discovery, from inside a pod.
pub const KUBERNETES_DISCOVERY_URL: &str = "https://kubernetes.default.svc/.well-known/openid-configuration";

#[derive(Debug, Clone, PartialEq)]
pub struct RegistryConfig {
    /// An absolute local path or an `s3://bucket/key` URL.
    pub path: String,
    pub registry_type: String,
    /// How long a loaded registry is served before it is checked for changes; 0 = forever.
    pub cache_ttl_seconds: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisType {
    Redis,
    RedisCluster,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OnlineStoreConfig {
    pub redis_type: RedisType,
    pub connection_string: String,
    /// EXPIRE set on the entity hash after each write; `None` (or 0 in the file) = no expiry.
    pub key_ttl_seconds: Option<u64>,
    pub skip_dedup: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OfflineStoreConfig {
    pub kind: String,
}

impl RepoConfig {
    /// Loads `feature_store.yaml` from `repo_dir` (or `LARDER_CONFIG` / `LARDER_REPO`), then
    /// applies `LARDER_*` overrides. Without a file, the configuration comes from the
    /// environment alone, and `LARDER_PROJECT` and `LARDER_REGISTRY` are required.
    pub fn load(repo_dir: Option<&Path>) -> Result<RepoConfig> {
        Self::load_with(repo_dir, &|name| std::env::var(name).ok())
    }

    /// [`RepoConfig::load`] with an explicit environment, for tests.
    pub fn load_with(repo_dir: Option<&Path>, env: &dyn Fn(&str) -> Option<String>) -> Result<RepoConfig> {
        let repo_dir = match repo_dir {
            Some(d) => d.to_path_buf(),
            None => env("LARDER_REPO").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(".")),
        };
        // Absolute, so paths in messages and in the registry resolve the same from anywhere.
        let repo_dir = std::path::absolute(&repo_dir).unwrap_or(repo_dir);
        let file = match env("LARDER_CONFIG") {
            Some(p) => Some(PathBuf::from(p)),
            None => Some(repo_dir.join("feature_store.yaml")).filter(|p| p.exists()),
        };
        let mut cfg = match &file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| Error::Config(format!("cannot read {}: {e}", path.display())))?;
                let dir = path.parent().map(Path::to_path_buf).unwrap_or(repo_dir.clone());
                Self::parse(&text, &dir, &path.display().to_string(), env)?
            }
            None => Self::from_env_only(&repo_dir, env)?,
        };
        cfg.apply_env(env)?;
        Ok(cfg)
    }

    /// Parses the text of a `feature_store.yaml`. `origin` names the file in messages.
    pub fn parse(
        text: &str,
        repo_dir: &Path,
        origin: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<RepoConfig> {
        let expanded = expand_env(text, env).map_err(|e| Error::Config(format!("{origin}: {e}")))?;
        let raw: RawConfig = serde_yaml_ng::from_str(&expanded).map_err(|e| {
            let mut msg = format!("{origin}: {e}");
            if msg.contains("online_store") {
                msg.push_str(" (Larder serves from Redis: online_store takes type, redis_type, connection_string, key_ttl_seconds, skip_dedup)");
            }
            Error::Config(msg)
        })?;
        raw.resolve(repo_dir, origin)
    }

    fn from_env_only(repo_dir: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<RepoConfig> {
        let need = |name: &str| {
            env(name).ok_or_else(|| {
                Error::Config(format!(
                    "no feature_store.yaml in {} and {name} is not set: give a repo directory or set LARDER_PROJECT and LARDER_REGISTRY",
                    repo_dir.display()
                ))
            })
        };
        let project = need("LARDER_PROJECT")?;
        let registry = need("LARDER_REGISTRY")?;
        let online_store = env("LARDER_REDIS_CONNECTION_STRING").map(|cs| OnlineStoreConfig {
            redis_type: RedisType::Redis,
            connection_string: cs,
            key_ttl_seconds: None,
            skip_dedup: false,
        });
        let cfg = RepoConfig {
            project,
            provider: "aws".into(),
            registry: RegistryConfig {
                path: resolve_path(&registry, repo_dir),
                registry_type: "file".into(),
                cache_ttl_seconds: 600,
            },
            online_store,
            unsupported_online_store: None,
            offline_store: OfflineStoreConfig { kind: "file".into() },
            entity_key_serialization_version: 3,
            repo_dir: repo_dir.to_path_buf(),
            auth: AuthConfig::None,
        };
        validate_project(&cfg.project, "LARDER_PROJECT")?;
        Ok(cfg)
    }

    fn apply_env(&mut self, env: &dyn Fn(&str) -> Option<String>) -> Result<()> {
        if let Some(p) = env("LARDER_PROJECT") {
            validate_project(&p, "LARDER_PROJECT")?;
            self.project = p;
        }
        if let Some(r) = env("LARDER_REGISTRY") {
            self.registry.path = resolve_path(&r, &self.repo_dir);
        }
        if let Some(ttl) = number_from_env(env, "LARDER_REGISTRY_CACHE_TTL_SECONDS", 0..=u64::MAX, SECONDS)? {
            self.registry.cache_ttl_seconds = ttl;
        }
        if let Some(v) =
            number_from_env(env, "LARDER_ENTITY_KEY_SERIALIZATION_VERSION", 0..=u32::MAX, "a version number")?
        {
            self.entity_key_serialization_version = v;
            check_key_version(self.entity_key_serialization_version, "LARDER_ENTITY_KEY_SERIALIZATION_VERSION")?;
        }
        self.apply_auth_env(env)?;
        let redis_overrides = [
            "LARDER_REDIS_TYPE",
            "LARDER_REDIS_CONNECTION_STRING",
            "LARDER_REDIS_KEY_TTL_SECONDS",
            "LARDER_REDIS_SKIP_DEDUP",
        ];
        if redis_overrides.iter().any(|n| env(n).is_some()) {
            let store = self.online_store.get_or_insert_with(|| {
                self.unsupported_online_store = None;
                OnlineStoreConfig {
                    redis_type: RedisType::Redis,
                    connection_string: "localhost:6379".into(),
                    key_ttl_seconds: None,
                    skip_dedup: false,
                }
            });
            if let Some(v) = env("LARDER_REDIS_TYPE") {
                store.redis_type =
                    parse_redis_type(&v).map_err(|e| Error::Config(format!("LARDER_REDIS_TYPE: {e}")))?;
            }
            if let Some(v) = env("LARDER_REDIS_CONNECTION_STRING") {
                store.connection_string = v;
            }
            if let Some(ttl) = number_from_env(env, "LARDER_REDIS_KEY_TTL_SECONDS", 0..=u64::MAX, SECONDS)? {
                store.key_ttl_seconds = (ttl > 0).then_some(ttl);
            }
            if let Some(v) = env("LARDER_REDIS_SKIP_DEDUP") {
                store.skip_dedup = v
                    .trim()
                    .parse()
                    .map_err(|_| Error::Config(format!("LARDER_REDIS_SKIP_DEDUP: '{v}' is not true or false")))?;
            }
        }
        Ok(())
    }

    /// `LARDER_AUTH` and its settings override `auth:`.
    fn apply_auth_env(&mut self, env: &dyn Fn(&str) -> Option<String>) -> Result<()> {
        let get = |name: &str| env(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let Some(mode) = get("LARDER_AUTH") else { return Ok(()) };
        self.auth = match mode.as_str() {
            "none" | "no_auth" => AuthConfig::None,
            "apigateway" => AuthConfig::ApiGateway {
                client_id: get("LARDER_AUTH_CLIENT_ID"),
                iam_roles: get("LARDER_IAM_ROLES").unwrap_or_default(),
            },
            "oidc" | "kubernetes" => {
                let kubernetes = mode == "kubernetes";
                let discovery_url = get("LARDER_AUTH_DISCOVERY_URL")
                    .or_else(|| kubernetes.then(|| KUBERNETES_DISCOVERY_URL.to_string()))
                    .ok_or_else(|| Error::Config("LARDER_AUTH=oidc needs LARDER_AUTH_DISCOVERY_URL".into()))?;
                AuthConfig::Tokens(TokenAuth {
                    kubernetes,
                    discovery_url,
                    client_id: get("LARDER_AUTH_CLIENT_ID"),
                    audience: get("LARDER_AUTH_AUDIENCE"),
                    issuer: get("LARDER_AUTH_ISSUER"),
                    jwks_cache_lifespan: std::time::Duration::from_secs(300),
                    jwks_request_timeout: std::time::Duration::from_secs(10),
                    verify_ssl: true,
                    ca_cert_path: None,
                })
            }
            other => {
                return Err(Error::Config(format!(
                    "LARDER_AUTH: '{other}' is not known (none, oidc, kubernetes or apigateway)"
                )));
            }
        };
        Ok(())
    }

    /// The Redis configuration, or a clear error when the repo does not use Redis.
    pub fn redis(&self) -> Result<&OnlineStoreConfig> {
        self.online_store.as_ref().ok_or_else(|| {
            Error::Config(match &self.unsupported_online_store {
                Some(kind) => format!("online_store type '{kind}' is not supported: Larder serves from Redis (type: redis)"),
                None => "no online store configured: add `online_store: {type: redis, connection_string: host:port}` to feature_store.yaml or set LARDER_REDIS_CONNECTION_STRING".into(),
            })
        })
    }
}

const SECONDS: &str = "a number of seconds";

/// Parses a numeric setting (an environment variable): the one parser every numeric setting
/// goes through, so each fails alike, naming the variable, the value and what it takes.
pub fn parse_number<T>(name: &str, value: &str, valid: std::ops::RangeInclusive<T>, what: &str) -> Result<T>
where
    T: std::str::FromStr + PartialOrd,
{
    value
        .trim()
        .parse()
        .ok()
        .filter(|n| valid.contains(n))
        .ok_or_else(|| Error::Config(format!("{name}: '{value}' is not {what}")))
}

/// [`parse_number`] of the variable `name`, if it is set.
pub fn number_from_env<T>(
    env: &dyn Fn(&str) -> Option<String>,
    name: &str,
    valid: std::ops::RangeInclusive<T>,
    what: &str,
) -> Result<Option<T>>
where
    T: std::str::FromStr + PartialOrd,
{
    env(name).map(|v| parse_number(name, &v, valid, what)).transpose()
}

fn parse_redis_type(v: &str) -> std::result::Result<RedisType, String> {
    match v {
        "redis" => Ok(RedisType::Redis),
        "redis_cluster" => Ok(RedisType::RedisCluster),
        "redis_sentinel" => Err("redis_sentinel is not supported yet (use redis or redis_cluster)".into()),
        other => Err(format!("unknown redis_type '{other}' (use redis or redis_cluster)")),
    }
}

fn check_key_version(v: u32, origin: &str) -> Result<()> {
    if (1..=3).contains(&v) {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "{origin}: entity_key_serialization_version {v} is not supported (use 3, or 2 for old stores)"
        )))
    }
}

/// Feast's rule: word characters and `-`, not starting with `_` or `-`.
fn validate_project(p: &str, origin: &str) -> Result<()> {
    let ok =
        !p.is_empty() && !p.starts_with(['_', '-']) && p.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "{origin}: project '{p}' is not valid: use letters, digits, '_' and '-', not starting with '_' or '-'"
        )))
    }
}

/// Relative local paths are relative to the repo directory; URLs are kept as written.
fn resolve_path(path: &str, repo_dir: &Path) -> String {
    if path.contains("://") {
        return path.to_string();
    }
    let p = Path::new(path);
    let joined = if p.is_absolute() { p.to_path_buf() } else { repo_dir.join(p) };
    joined.to_string_lossy().into_owned()
}

// ---------------------------------------------------------------------------------------------
// The file format, as serde sees it.
// ---------------------------------------------------------------------------------------------

/// Feast's `OidcAuthConfig` / `KubernetesAuthConfig` keys (and the client-side ones a client
/// repo's file may carry, which a server has no use for).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    #[serde(rename = "type", default = "no_auth")]
    kind: String,
    auth_discovery_url: Option<String>,
    client_id: Option<String>,
    audience: Option<String>,
    issuer: Option<String>,
    jwks_cache_lifespan_seconds: Option<u64>,
    jwks_request_timeout_seconds: Option<f64>,
    verify_ssl: Option<bool>,
    ca_cert_path: Option<String>,
    #[serde(rename = "ui_client_id")]
    _ui_client_id: Option<String>,
    #[serde(rename = "username")]
    _username: Option<String>,
    #[serde(rename = "password")]
    _password: Option<String>,
    #[serde(rename = "client_secret")]
    _client_secret: Option<String>,
    #[serde(rename = "token")]
    _token: Option<String>,
    #[serde(rename = "token_env_var")]
    _token_env_var: Option<String>,
    #[serde(rename = "user_token")]
    _user_token: Option<String>,
}

fn no_auth() -> String {
    "no_auth".into()
}

impl RawAuth {
    fn resolve(self, repo_dir: &Path, origin: &str) -> Result<AuthConfig> {
        let kubernetes = match self.kind.as_str() {
            "no_auth" => return Ok(AuthConfig::None),
            "oidc" => false,
            "kubernetes" => true,
            other => {
                return Err(Error::Config(format!(
                    "{origin}: auth.type '{other}' is not known (no_auth, oidc or kubernetes)"
                )));
            }
        };
        let discovery_url = match (self.auth_discovery_url, kubernetes) {
            (Some(url), _) => url,
            (None, true) => KUBERNETES_DISCOVERY_URL.to_string(),
            (None, false) => {
                return Err(Error::Config(format!("{origin}: auth.type oidc needs auth.auth_discovery_url")));
            }
        };
        let lifespan = self.jwks_cache_lifespan_seconds.unwrap_or(300);
        let timeout = self.jwks_request_timeout_seconds.unwrap_or(10.0);
        if lifespan == 0 || !(timeout > 0.0 && timeout < 3600.0) {
            return Err(Error::Config(format!(
                "{origin}: auth.jwks_cache_lifespan_seconds and auth.jwks_request_timeout_seconds must be positive"
            )));
        }
        Ok(AuthConfig::Tokens(TokenAuth {
            kubernetes,
            discovery_url,
            client_id: self.client_id,
            audience: self.audience,
            issuer: self.issuer,
            jwks_cache_lifespan: std::time::Duration::from_secs(lifespan),
            jwks_request_timeout: std::time::Duration::from_secs_f64(timeout),
            verify_ssl: self.verify_ssl.unwrap_or(true),
            ca_cert_path: self
                .ca_cert_path
                .filter(|p| !p.is_empty())
                .map(|p| PathBuf::from(resolve_path(&p, repo_dir))),
        }))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    project: Option<String>,
    provider: Option<String>,
    registry: Option<RawRegistry>,
    online_store: Option<RawOnlineStore>,
    offline_store: Option<RawOfflineStore>,
    entity_key_serialization_version: Option<u32>,
    // Feast keys Larder accepts and does not act on (the Python SDK's own concerns).
    #[serde(rename = "batch_engine")]
    _batch_engine: Option<serde_yaml_ng::Value>,
    #[serde(rename = "feature_server")]
    _feature_server: Option<serde_yaml_ng::Value>,
    #[serde(rename = "materialization")]
    _materialization: Option<serde_yaml_ng::Value>,
    auth: Option<RawAuth>,
    #[serde(rename = "coerce_tz_aware")]
    _coerce_tz_aware: Option<bool>,
    #[serde(rename = "flags")]
    _flags: Option<serde_yaml_ng::Value>,
    #[serde(rename = "repo_path")]
    _repo_path: Option<serde_yaml_ng::Value>,
    #[serde(rename = "go_feature_serving")]
    _go_feature_serving: Option<serde_yaml_ng::Value>,
    #[serde(rename = "go_feature_retrieval")]
    _go_feature_retrieval: Option<serde_yaml_ng::Value>,
    #[serde(rename = "openlineage")]
    _openlineage: Option<serde_yaml_ng::Value>,
}

/// `registry:` is either a path or a map; a hand-written visitor keeps serde_yaml's line
/// numbers in errors (an untagged enum would replace them with "did not match any variant").
struct RawRegistry(RawRegistryMap);

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRegistryMap {
    path: Option<String>,
    registry_type: Option<String>,
    cache_ttl_seconds: Option<u64>,
    cache_mode: Option<String>,
    registry_store_type: Option<String>,
    #[serde(rename = "s3_additional_kwargs")]
    _s3_additional_kwargs: Option<BTreeMap<String, serde_yaml_ng::Value>>,
    #[serde(rename = "purge_feast_metadata")]
    _purge_feast_metadata: Option<bool>,
    enable_online_feature_view_versioning: Option<bool>,
}

impl<'de> Deserialize<'de> for RawRegistry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawRegistry;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a registry path or a map with path, registry_type, cache_ttl_seconds")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<RawRegistry, E> {
                Ok(RawRegistry(RawRegistryMap { path: Some(v.to_string()), ..Default::default() }))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> std::result::Result<RawRegistry, A::Error> {
                RawRegistryMap::deserialize(de::value::MapAccessDeserializer::new(map)).map(RawRegistry)
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOnlineStore {
    #[serde(rename = "type")]
    kind: String,
    redis_type: Option<String>,
    connection_string: Option<String>,
    key_ttl_seconds: Option<u64>,
    sentinel_master: Option<String>,
    #[serde(rename = "full_scan_for_deletion")]
    _full_scan_for_deletion: Option<bool>,
    skip_dedup: Option<bool>,
    /// sqlite and remote stores' key; accepted so such a file loads (for `apply`, `plan`).
    #[serde(rename = "path")]
    _path: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOfflineStore {
    #[serde(rename = "type")]
    kind: String,
}

impl RawConfig {
    fn resolve(self, repo_dir: &Path, origin: &str) -> Result<RepoConfig> {
        let project = self.project.ok_or_else(|| Error::Config(format!("{origin}: missing required key 'project'")))?;
        validate_project(&project, origin)?;
        let reg = self.registry.map(|r| r.0).unwrap_or_default();
        let registry_type = reg.registry_type.unwrap_or_else(|| "file".into());
        if registry_type != "file" {
            return Err(Error::Config(format!(
                "{origin}: registry_type '{registry_type}' is not supported: Larder reads file registries (a local path or s3://)"
            )));
        }
        if let Some(store) = reg
            .registry_store_type
            .as_deref()
            .filter(|s| !s.contains("S3") && !s.contains("Local") && !s.contains("File"))
        {
            return Err(Error::Config(format!(
                "{origin}: registry_store_type '{store}' is not supported (local files and S3 are)"
            )));
        }
        if let Some(mode) = reg.cache_mode.as_deref().filter(|m| !matches!(*m, "sync" | "thread")) {
            return Err(Error::Config(format!("{origin}: registry.cache_mode '{mode}' must be sync or thread")));
        }
        if reg.enable_online_feature_view_versioning == Some(true) {
            return Err(Error::Config(format!(
                "{origin}: registry.enable_online_feature_view_versioning is not supported by Larder yet"
            )));
        }
        let path = reg.path.unwrap_or_else(|| "data/registry.db".into());
        for scheme in ["gs://", "hdfs://", "postgresql", "mysql", "sqlite://", "snowflake"] {
            if path.starts_with(scheme) {
                return Err(Error::Config(format!(
                    "{origin}: registry path '{path}' is not supported: use a local path or s3://bucket/key"
                )));
            }
        }
        let (online_store, unsupported_online_store) = match self.online_store {
            None => (None, Some("sqlite".to_string())),
            Some(o) if o.kind == "redis" => {
                if o.sentinel_master.is_some() {
                    return Err(Error::Config(format!(
                        "{origin}: online_store.sentinel_master: Redis Sentinel is not supported yet"
                    )));
                }
                let redis_type = parse_redis_type(o.redis_type.as_deref().unwrap_or("redis"))
                    .map_err(|e| Error::Config(format!("{origin}: online_store.redis_type: {e}")))?;
                (
                    Some(OnlineStoreConfig {
                        redis_type,
                        connection_string: o.connection_string.unwrap_or_else(|| "localhost:6379".into()),
                        key_ttl_seconds: o.key_ttl_seconds.filter(|t| *t > 0),
                        skip_dedup: o.skip_dedup.unwrap_or(false),
                    }),
                    None,
                )
            }
            Some(o) => (None, Some(o.kind)),
        };
        let offline_kind = self.offline_store.map(|o| o.kind).unwrap_or_else(|| "file".into());
        let version = self.entity_key_serialization_version.unwrap_or(3);
        check_key_version(version, origin)?;
        Ok(RepoConfig {
            project,
            provider: self.provider.unwrap_or_else(|| "local".into()),
            registry: RegistryConfig {
                path: resolve_path(&path, repo_dir),
                registry_type,
                cache_ttl_seconds: reg.cache_ttl_seconds.unwrap_or(600),
            },
            online_store,
            unsupported_online_store,
            offline_store: OfflineStoreConfig { kind: offline_kind },
            entity_key_serialization_version: version,
            auth: self.auth.map(|a| a.resolve(repo_dir, origin)).transpose()?.unwrap_or_default(),
            repo_dir: repo_dir.to_path_buf(),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Environment variable expansion.
// ---------------------------------------------------------------------------------------------

/// Expands `$VAR`, `${VAR}`, `${VAR:-default}` and `${VAR:"default"}` (also `'default'`) in
/// `text`. Comments are left alone, so a commented-out `$VAR` never needs to be defined.
/// A `$` not followed by a name or `{` stays as written.
pub fn expand_env(text: &str, env: &dyn Fn(&str) -> Option<String>) -> std::result::Result<String, String> {
    let mut out = String::with_capacity(text.len());
    for (lineno, line) in text.split_inclusive('\n').enumerate() {
        let (body, comment) = split_comment(line);
        expand_line(body, lineno + 1, env, &mut out)?;
        out.push_str(comment);
    }
    Ok(out)
}

/// Splits a YAML line at a `#` that starts a comment: at the start or after whitespace, and
/// outside quotes.
fn split_comment(line: &str) -> (&str, &str) {
    let bytes = line.as_bytes();
    let (mut single, mut double) = (false, false);
    for (i, &c) in bytes.iter().enumerate() {
        match c {
            b'\'' if !double => single = !single,
            b'"' if !single => double = !double,
            b'#' if !single && !double && (i == 0 || bytes[i - 1].is_ascii_whitespace()) => {
                return (&line[..i], &line[i..]);
            }
            _ => {}
        }
    }
    (line, "")
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn expand_line(
    line: &str,
    lineno: usize,
    env: &dyn Fn(&str) -> Option<String>,
    out: &mut String,
) -> std::result::Result<(), String> {
    let mut rest = line;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(braced) = after.strip_prefix('{') {
            let end = braced.find('}').ok_or_else(|| format!("line {lineno}: '${{' without a closing '}}'"))?;
            let inner = &braced[..end];
            let (name, default) = match inner.find(':') {
                Some(i) => {
                    let spec = &inner[i + 1..];
                    let default = spec.strip_prefix('-').unwrap_or(spec);
                    let default = strip_quotes(default);
                    (&inner[..i], Some(default))
                }
                None => (inner, None),
            };
            if name.is_empty() || !name.starts_with(is_name_start) || !name.chars().all(is_name_char) {
                return Err(format!("line {lineno}: '${{{inner}}}' is not a valid variable reference"));
            }
            match env(name).or_else(|| default.map(str::to_string)) {
                Some(value) => out.push_str(&value),
                None => {
                    return Err(format!("line {lineno}: environment variable {name} is not set and has no default"));
                }
            }
            rest = &braced[end + 1..];
        } else if after.starts_with(is_name_start) {
            let len = after.find(|c: char| !is_name_char(c)).unwrap_or(after.len());
            let name = &after[..len];
            match env(name) {
                Some(value) => out.push_str(&value),
                None => {
                    return Err(format!("line {lineno}: environment variable {name} is not set and has no default"));
                }
            }
            rest = &after[len..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(())
}

fn strip_quotes(s: &str) -> &str {
    for q in ['"', '\''] {
        if s.len() >= 2 && s.starts_with(q) && s.ends_with(q) {
            return &s[1..s.len() - 1];
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// README's configuration table is the user's reference: it must name every variable.
    #[test]
    fn readme_documents_every_environment_variable() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
        for (name, _) in ENV_VARS {
            assert!(readme.contains(&format!("| `{name}` |")), "README.md has no table row for {name}");
        }
    }

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    fn parse(text: &str, env: &[(&str, &str)]) -> Result<RepoConfig> {
        RepoConfig::parse(text, Path::new("/repo"), "feature_store.yaml", &env_of(env))
    }

    #[test]
    fn expands_all_variable_forms() {
        let env = env_of(&[("A", "1"), ("B_2", "two")]);
        let text = "x: $A\ny: ${B_2}\nz: ${MISSING:-dflt}\nw: ${MISSING:\"quoted\"}\nv: ${A:-unused}\nu: cost$ 5 # $UNDEFINED in a comment\n";
        assert_eq!(
            expand_env(text, &env).unwrap(),
            "x: 1\ny: two\nz: dflt\nw: quoted\nv: 1\nu: cost$ 5 # $UNDEFINED in a comment\n"
        );
        assert_eq!(expand_env("a: '#notcomment $A'", &env).unwrap(), "a: '#notcomment 1'");
    }

    #[test]
    fn undefined_variable_names_variable_and_line() {
        let err =
            parse("project: p\nonline_store:\n  type: redis\n  connection_string: ${REDIS_ADDR}\n", &[]).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("REDIS_ADDR") && msg.contains("line 4"), "{msg}");
        assert!(expand_env("x: ${A", &env_of(&[])).unwrap_err().contains("line 1"));
        assert!(expand_env("x: ${1A}", &env_of(&[])).is_err());
    }

    #[test]
    fn parses_feast_file_with_defaults() {
        let cfg = parse(
            "project: anchor\nregistry: data/registry.db\nprovider: local\nonline_store:\n  type: redis\n  connection_string: ${REDIS_ADDR}\noffline_store:\n  type: file\nentity_key_serialization_version: 3\n",
            &[("REDIS_ADDR", "127.0.0.1:7000")],
        )
        .unwrap();
        assert_eq!(cfg.project, "anchor");
        assert_eq!(cfg.registry.path, "/repo/data/registry.db");
        assert_eq!(cfg.registry.cache_ttl_seconds, 600);
        let redis = cfg.redis().unwrap();
        assert_eq!(redis.connection_string, "127.0.0.1:7000");
        assert_eq!(redis.redis_type, RedisType::Redis);
        assert_eq!(redis.key_ttl_seconds, None);
        assert!(!redis.skip_dedup);
        assert_eq!(cfg.entity_key_serialization_version, 3);
    }

    #[test]
    fn registry_map_form_and_s3_paths() {
        let cfg = parse(
            "project: p\nregistry:\n  registry_type: file\n  path: s3://bucket/reg.db\n  cache_ttl_seconds: 30\nonline_store:\n  type: redis\n  redis_type: redis_cluster\n  connection_string: a:1,b:2\n  key_ttl_seconds: 3600\n  skip_dedup: true\n",
            &[],
        )
        .unwrap();
        assert_eq!(cfg.registry.path, "s3://bucket/reg.db");
        assert_eq!(cfg.registry.cache_ttl_seconds, 30);
        let r = cfg.redis().unwrap();
        assert_eq!((r.redis_type, r.key_ttl_seconds, r.skip_dedup), (RedisType::RedisCluster, Some(3600), true));
    }

    #[test]
    fn unknown_keys_and_wrong_types_name_key_and_line() {
        let err =
            parse("project: p\nonline_store:\n  type: redis\n  conection_string: x\n", &[]).unwrap_err().to_string();
        assert!(err.contains("conection_string") && err.contains("line 4"), "{err}");
        let err =
            parse("project: p\nonline_store:\n  type: redis\n  key_ttl_seconds: soon\n", &[]).unwrap_err().to_string();
        assert!(err.contains("key_ttl_seconds") && err.contains("line 4"), "{err}");
        let err = parse("project: p\nregistri: x\n", &[]).unwrap_err().to_string();
        assert!(err.contains("registri") && err.contains("line 2"), "{err}");
        let err = parse("project: p\nregistry:\n  path: x\n  cache_ttl: 5\n", &[]).unwrap_err().to_string();
        assert!(err.contains("cache_ttl") && err.contains("line 4"), "{err}");
        let err = parse("registry: x\n", &[]).unwrap_err().to_string();
        assert!(err.contains("project"), "{err}");
        let err = parse("project: _bad\n", &[]).unwrap_err().to_string();
        assert!(err.contains("_bad"), "{err}");
        let err = parse("project: p\nentity_key_serialization_version: 9\n", &[]).unwrap_err().to_string();
        assert!(err.contains("9"), "{err}");
        let err = parse("project: p\nonline_store:\n  type: redis\n  redis_type: redis_sentinel\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("redis_sentinel"), "{err}");
    }

    #[test]
    fn non_redis_online_store_is_explained_when_used() {
        let cfg = parse("project: p\nonline_store:\n  type: sqlite\n  path: data/online.db\n", &[]).unwrap();
        assert!(cfg.redis().unwrap_err().to_string().contains("sqlite"));
        let cfg = parse("project: p\n", &[]).unwrap();
        assert!(cfg.redis().is_err());
    }

    #[test]
    fn environment_overrides_file_and_stands_alone() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("feature_store.yaml"), "project: p\nonline_store:\n  type: redis\n").unwrap();
        let env = env_of(&[
            ("LARDER_REDIS_CONNECTION_STRING", "h:1"),
            ("LARDER_REDIS_KEY_TTL_SECONDS", "60"),
            ("LARDER_REGISTRY_CACHE_TTL_SECONDS", "5"),
        ]);
        let cfg = RepoConfig::load_with(Some(dir.path()), &env).unwrap();
        assert_eq!(cfg.redis().unwrap().connection_string, "h:1");
        assert_eq!(cfg.redis().unwrap().key_ttl_seconds, Some(60));
        assert_eq!(cfg.registry.cache_ttl_seconds, 5);

        let empty = tempfile::tempdir().unwrap();
        let err = RepoConfig::load_with(Some(empty.path()), &env_of(&[])).unwrap_err().to_string();
        assert!(err.contains("LARDER_PROJECT"), "{err}");
        let env = env_of(&[
            ("LARDER_PROJECT", "prod"),
            ("LARDER_REGISTRY", "s3://b/r.db"),
            ("LARDER_REDIS_TYPE", "redis_cluster"),
            ("LARDER_REDIS_CONNECTION_STRING", "c:1"),
        ]);
        let cfg = RepoConfig::load_with(Some(empty.path()), &env).unwrap();
        assert_eq!((cfg.project.as_str(), cfg.registry.path.as_str()), ("prod", "s3://b/r.db"));
        assert_eq!(cfg.redis().unwrap().redis_type, RedisType::RedisCluster);
        let bad =
            env_of(&[("LARDER_PROJECT", "p"), ("LARDER_REGISTRY", "r"), ("LARDER_REDIS_KEY_TTL_SECONDS", "soon")]);
        assert!(
            RepoConfig::load_with(Some(empty.path()), &bad)
                .unwrap_err()
                .to_string()
                .contains("LARDER_REDIS_KEY_TTL_SECONDS")
        );
    }
}
