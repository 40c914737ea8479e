//! Redis credentials that are not in the connection string, so none sits in an environment
//! variable (`LARDER_REDIS_AUTH`):
//!
//! - `iam`: ElastiCache IAM authentication. The password is a SigV4-presigned `connect` request
//!   for the cache and user, valid 15 minutes, signed here with the process's AWS credentials
//!   (by `aws-sigv4`, the SDK's own signer). Every new connection signs a fresh token, and open
//!   connections re-authenticate every [`IAM_REFRESH`], well before a token could lapse.
//! - `secret`: a password (and optionally a user) read once at start from Secrets Manager and
//!   kept in memory only; never logged (`RedisTarget`'s `Debug` redacts it).
//! - `none` (the default): whatever the connection string says.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ::redis::auth::{BasicAuth, StreamingCredentialsProvider};
use ::redis::{ErrorKind, RedisError, RedisResult};
use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign};
use aws_sigv4::sign::v4;
use futures::Stream;

use super::connection::RedisTarget;
use crate::aws::Aws;
use crate::error::{Error, Result};

/// How long an ElastiCache IAM token is valid (AWS's fixed limit).
pub const IAM_TOKEN_LIFETIME: Duration = Duration::from_secs(900);
/// How often an open connection re-authenticates with a fresh token: a third of the lifetime
/// left as margin, so a sandbox thawed late still re-authenticates before anything expires.
pub const IAM_REFRESH: Duration = Duration::from_secs(600);

/// `LARDER_REDIS_AUTH` and the settings it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthSetting {
    /// Only what the connection string says.
    None,
    /// ElastiCache IAM authentication as `user` to `cache` (a serverless cache, or a
    /// replication group).
    Iam { user: String, cache: String, serverless: bool },
    /// The password (or `{"password", "username"}`) in a Secrets Manager secret.
    Secret { secret_id: String },
}

impl AuthSetting {
    pub fn from_env() -> Result<AuthSetting> {
        Self::from_lookup(&|name| std::env::var(name).ok())
    }

    pub fn from_lookup(env: &dyn Fn(&str) -> Option<String>) -> Result<AuthSetting> {
        let get = |name: &str| env(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let need = |name: &str, mode: &str| {
            get(name).ok_or_else(|| Error::Config(format!("LARDER_REDIS_AUTH={mode} needs {name}")))
        };
        match get("LARDER_REDIS_AUTH").as_deref().map(str::to_ascii_lowercase).as_deref() {
            None | Some("none") => Ok(AuthSetting::None),
            Some("iam") => Ok(AuthSetting::Iam {
                user: need("LARDER_REDIS_USERNAME", "iam")?,
                cache: need("LARDER_REDIS_IAM_CACHE", "iam")?,
                serverless: match get("LARDER_REDIS_IAM_SERVERLESS").as_deref() {
                    None | Some("false") => false,
                    Some("true") => true,
                    Some(other) => {
                        return Err(Error::Config(format!(
                            "LARDER_REDIS_IAM_SERVERLESS: '{other}' is not true or false"
                        )));
                    }
                },
            }),
            Some("secret") => Ok(AuthSetting::Secret { secret_id: need("LARDER_REDIS_PASSWORD_SECRET", "secret")? }),
            Some(other) => Err(Error::Config(format!(
                "LARDER_REDIS_AUTH: '{other}' is not known: use iam, secret or none (the default)"
            ))),
        }
    }

    /// Applies the setting to `target`: a secret's password (and user) go into it; IAM gives
    /// the provider every connection takes its credentials from.
    pub async fn resolve(&self, target: &mut RedisTarget, aws: &Aws) -> Result<Option<IamTokens>> {
        match self {
            AuthSetting::None => Ok(None),
            AuthSetting::Secret { secret_id } => {
                let (username, password) = read_secret(aws, secret_id).await?;
                if username.is_some() {
                    target.username = username;
                }
                target.password = Some(password);
                Ok(None)
            }
            AuthSetting::Iam { user, cache, serverless } => {
                let (region, credentials) = aws.signing().await;
                let region = region.ok_or_else(|| {
                    Error::Config("LARDER_REDIS_AUTH=iam needs an AWS region (AWS_REGION) to sign tokens for".into())
                })?;
                let credentials = credentials.ok_or_else(|| {
                    Error::Config("LARDER_REDIS_AUTH=iam needs AWS credentials to sign tokens with".into())
                })?;
                target.username = Some(user.clone());
                target.password = None;
                let signer = IamSigner { user: user.clone(), cache: cache.clone(), serverless: *serverless, region };
                Ok(Some(IamTokens::new(signer, credentials)))
            }
        }
    }
}

/// Reads a Redis password from Secrets Manager: the secret string itself, or JSON with a
/// `password` (and optionally `username`) field, as RDS and ElastiCache rotation write it.
async fn read_secret(aws: &Aws, secret_id: &str) -> Result<(Option<String>, String)> {
    let out = aws.secrets_manager().get().await.get_secret_value().secret_id(secret_id).send().await.map_err(|e| {
        let text = crate::aws::describe(&e);
        Error::Config(format!("cannot read the Redis password from secret {secret_id}: {text}"))
    })?;
    let text = out.secret_string().ok_or_else(|| {
        Error::Config(format!("secret {secret_id} has no string value (a binary secret cannot be a Redis password)"))
    })?;
    parse_secret(text).map_err(|e| Error::Config(format!("secret {secret_id}: {e}")))
}

fn parse_secret(text: &str) -> std::result::Result<(Option<String>, String), String> {
    if !text.trim_start().starts_with('{') {
        return Ok((None, text.to_string()));
    }
    let json: serde_json::Value =
        serde_json::from_str(text).map_err(|_| "looks like JSON but does not parse".to_string())?;
    let field = |name: &str| json.get(name).and_then(|v| v.as_str()).map(str::to_string);
    let password = field("password").ok_or("is JSON without a \"password\" string")?;
    Ok((field("username"), password))
}

/// Signs ElastiCache IAM authentication tokens for one user and cache.
#[derive(Debug, Clone)]
pub struct IamSigner {
    pub user: String,
    pub cache: String,
    pub serverless: bool,
    pub region: String,
}

impl IamSigner {
    /// The token: `<cache>/?Action=connect&User=<user>[&ResourceType=ServerlessCache]` with the
    /// SigV4 query parameters of a GET presigned for `elasticache` at `now`, valid 15 minutes.
    pub fn token(&self, credentials: &Credentials, now: SystemTime) -> Result<String> {
        let mut url = format!("https://{}/?Action=connect&User={}", self.cache, query_escape(&self.user));
        if self.serverless {
            url.push_str("&ResourceType=ServerlessCache");
        }
        let identity = credentials.clone().into();
        let mut settings = SigningSettings::default();
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(IAM_TOKEN_LIFETIME);
        let signing_error =
            |e: &dyn std::fmt::Display| Error::Config(format!("cannot sign an ElastiCache IAM token: {e}"));
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("elasticache")
            .time(now)
            .settings(settings)
            .build()
            .map_err(|e| signing_error(&e))?
            .into();
        let request = SignableRequest::new("GET", &url, std::iter::empty(), SignableBody::Bytes(&[]))
            .map_err(|e| signing_error(&e))?;
        let (instructions, _) = sign(request, &params).map_err(|e| signing_error(&e))?.into_parts();
        let mut signed = http::Request::builder().uri(&url).body(()).map_err(|e| signing_error(&e))?;
        instructions.apply_to_request_http1x(&mut signed);
        let full = signed.uri().to_string();
        Ok(full.strip_prefix("https://").unwrap_or(&full).to_string())
    }
}

/// RFC 3986 unreserved characters pass; everything else is `%XX` (a user id is plain text).
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Fresh IAM tokens for connections: the first at once, then one every `refresh`.
#[derive(Clone)]
pub struct IamTokens {
    pub signer: IamSigner,
    pub credentials: SharedCredentialsProvider,
    pub refresh: Duration,
    /// The time tokens are signed at: the system clock, or a test's.
    pub clock: Arc<dyn Fn() -> SystemTime + Send + Sync>,
}

impl std::fmt::Debug for IamTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IamTokens").field("signer", &self.signer).field("refresh", &self.refresh).finish()
    }
}

impl IamTokens {
    pub fn new(signer: IamSigner, credentials: SharedCredentialsProvider) -> IamTokens {
        IamTokens { signer, credentials, refresh: IAM_REFRESH, clock: Arc::new(SystemTime::now) }
    }

    /// The token a connection made now would authenticate with.
    pub async fn next(&self) -> RedisResult<BasicAuth> {
        let credentials = self.credentials.provide_credentials().await.map_err(|e| {
            RedisError::from((
                ErrorKind::AuthenticationFailed,
                "no AWS credentials to sign a token with",
                e.to_string(),
            ))
        })?;
        let token = self.signer.token(&credentials, (self.clock)()).map_err(|e| {
            RedisError::from((ErrorKind::AuthenticationFailed, "cannot sign an ElastiCache IAM token", e.to_string()))
        })?;
        Ok(BasicAuth::new(self.signer.user.clone(), token))
    }
}

impl StreamingCredentialsProvider for IamTokens {
    fn subscribe(&self) -> Pin<Box<dyn Stream<Item = RedisResult<BasicAuth>> + Send + 'static>> {
        let tokens = Arc::new(self.clone());
        Box::pin(futures::stream::unfold(true, move |first| {
            let tokens = Arc::clone(&tokens);
            async move {
                if !first {
                    tokio::time::sleep(tokens.refresh).await;
                }
                Some((tokens.next().await, false))
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    #[test]
    fn settings_from_the_environment() {
        assert_eq!(AuthSetting::from_lookup(&env(&[])).unwrap(), AuthSetting::None);
        let iam = AuthSetting::from_lookup(&env(&[
            ("LARDER_REDIS_AUTH", "iam"),
            ("LARDER_REDIS_USERNAME", "larder"),
            ("LARDER_REDIS_IAM_CACHE", "features"),
            ("LARDER_REDIS_IAM_SERVERLESS", "true"),
        ]))
        .unwrap();
        assert_eq!(iam, AuthSetting::Iam { user: "larder".into(), cache: "features".into(), serverless: true });
        let e = AuthSetting::from_lookup(&env(&[("LARDER_REDIS_AUTH", "iam"), ("LARDER_REDIS_USERNAME", "u")]))
            .unwrap_err();
        assert_eq!(e.to_string(), "LARDER_REDIS_AUTH=iam needs LARDER_REDIS_IAM_CACHE");
        let e = AuthSetting::from_lookup(&env(&[("LARDER_REDIS_AUTH", "secret")])).unwrap_err();
        assert_eq!(e.to_string(), "LARDER_REDIS_AUTH=secret needs LARDER_REDIS_PASSWORD_SECRET");
        let e = AuthSetting::from_lookup(&env(&[("LARDER_REDIS_AUTH", "kerberos")])).unwrap_err();
        assert!(e.to_string().contains("'kerberos' is not known"), "{e}");
    }

    #[test]
    fn secrets_hold_a_password_or_json() {
        assert_eq!(parse_secret("s3cr3t{").unwrap(), (None, "s3cr3t{".to_string()));
        assert_eq!(parse_secret(r#"{"password": "pw"}"#).unwrap(), (None, "pw".to_string()));
        assert_eq!(parse_secret(r#"{"username": "u", "password": "pw"}"#).unwrap(), (Some("u".into()), "pw".into()));
        let e = parse_secret(r#"{"user": "u"}"#).unwrap_err();
        assert!(e.contains("without a \"password\""), "{e}");
        // The secret's text is never part of a message.
        assert!(!parse_secret(r#"{"password": hunter2}"#).unwrap_err().contains("hunter2"));
    }

    #[test]
    fn tokens_are_presigned_connect_requests() {
        let signer = IamSigner {
            user: "larder user".into(),
            cache: "features".into(),
            serverless: true,
            region: "eu-west-1".into(),
        };
        let credentials = Credentials::new("AKIDEXAMPLE", "secret", Some("session".into()), None, "test");
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000);
        let token = signer.token(&credentials, at).unwrap();
        assert!(
            token.starts_with("features/?Action=connect&User=larder%20user&ResourceType=ServerlessCache&"),
            "{token}"
        );
        for part in [
            "X-Amz-Algorithm=AWS4-HMAC-SHA256",
            "X-Amz-Credential=AKIDEXAMPLE%2F20260921%2Feu-west-1%2Felasticache%2Faws4_request",
            "X-Amz-Date=20260921T141320Z",
            "X-Amz-Expires=900",
            "X-Amz-SignedHeaders=host",
            "X-Amz-Security-Token=session",
            "X-Amz-Signature=",
        ] {
            assert!(token.contains(part), "{part} in {token}");
        }
        // Deterministic for one clock and identity; another minute signs differently.
        assert_eq!(token, signer.token(&credentials, at).unwrap());
        assert_ne!(token, signer.token(&credentials, at + Duration::from_secs(60)).unwrap());
    }

    #[tokio::test]
    async fn connections_get_a_token_at_once_then_a_fresh_one_each_refresh() {
        use futures::StreamExt;
        let signer = IamSigner { user: "u".into(), cache: "c".into(), serverless: false, region: "us-east-1".into() };
        let credentials = Credentials::new("AKID", "secret", None, None, "test");
        let now = Arc::new(std::sync::Mutex::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000)));
        let clock = now.clone();
        let tokens = IamTokens {
            signer: signer.clone(),
            credentials: SharedCredentialsProvider::new(credentials.clone()),
            refresh: Duration::from_millis(300),
            clock: Arc::new(move || *clock.lock().unwrap()),
        };
        let mut stream = tokens.subscribe();
        let started = std::time::Instant::now();
        let first = stream.next().await.unwrap().unwrap();
        assert!(started.elapsed() < Duration::from_millis(250), "the first token comes at once");
        assert_eq!(
            (first.username(), first.password()),
            ("u", signer.token(&credentials, *now.lock().unwrap()).unwrap().as_str())
        );
        let later = *now.lock().unwrap() + Duration::from_secs(600);
        *now.lock().unwrap() = later;
        let second = stream.next().await.unwrap().unwrap();
        assert!(started.elapsed() >= Duration::from_millis(300), "the next one after the refresh interval");
        assert_eq!(second.password(), signer.token(&credentials, later).unwrap());
        assert_ne!(first.password(), second.password());
    }
}
