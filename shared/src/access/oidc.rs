//! Bearer tokens verified against an OpenID Connect provider, as Feast's OIDC token parser
//! does: the discovery document names the JWKS; a token's signature must verify with the key
//! its `kid` names (RS256/384/512, PS256/384/512 or ES256/384; never `none` or a shared-secret
//! algorithm, whatever the token's header says); it must not be expired (10 s of leeway); `aud`
//! and `iss` are checked when configured.
//!
//! Keys are cached for `jwks_cache_lifespan`; a token signed with a key the cache does not have
//! refetches the set once (a rotation takes effect at once). A verified token's user is cached
//! until the token expires, so a client reusing its token costs one hash lookup per request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use super::User;
use super::claims::user_from_claims;
use crate::config::TokenAuth;
use crate::error::{Error, Result};

/// Algorithms a token may be signed with: asymmetric only, so a public key can never be used as
/// an HMAC secret.
const ALGORITHMS: [Algorithm; 8] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
];
/// Seconds of clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY_SECS: u64 = 10;
/// Verified tokens remembered at most; past it, expired ones are dropped, then all.
pub const TOKEN_CACHE_ENTRIES: usize = 10_000;
/// The largest token accepted (a JWT is a few KB at most).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// The most a discovery document or key set may weigh.
const MAX_DOCUMENT_BYTES: usize = 1 << 20;

struct Keys {
    set: JwkSet,
    fetched: Instant,
}

/// Verifies bearer tokens for one provider.
pub struct Verifier {
    settings: TokenAuth,
    http: reqwest::Client,
    keys: tokio::sync::Mutex<Option<Keys>>,
    /// Only verified tokens go in, so callers cannot fill it with junk. Hashed with foldhash
    /// (seeded per process) rather than SipHash, the user shared rather than cloned: with both,
    /// a reused token costs nothing bench/auth.sh can see (12% of 1x7 throughput before them).
    verified: Mutex<TokenCache>,
}

/// Verified token -> (its user, its expiry in seconds since the epoch).
type TokenCache = HashMap<Box<str>, (Arc<User>, u64), foldhash::fast::RandomState>;

fn unauthenticated(why: impl std::fmt::Display) -> Error {
    Error::Unauthenticated(format!("the bearer token is not accepted: {why}"))
}

impl Verifier {
    pub fn new(settings: TokenAuth) -> Result<Verifier> {
        let mut http = reqwest::Client::builder().timeout(settings.jwks_request_timeout);
        if !settings.verify_ssl {
            http = http.tls_danger_accept_invalid_certs(true);
        }
        if let Some(path) = &settings.ca_cert_path {
            let pem =
                std::fs::read(path).map_err(|e| Error::Config(format!("auth.ca_cert_path {}: {e}", path.display())))?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| Error::Config(format!("auth.ca_cert_path {}: {e}", path.display())))?
            {
                http = http.add_root_certificate(cert);
            }
        }
        let http = http.build().map_err(|e| Error::Config(format!("auth: cannot build an HTTP client: {e}")))?;
        Ok(Verifier { settings, http, keys: tokio::sync::Mutex::new(None), verified: Mutex::new(HashMap::default()) })
    }

    /// The user a bearer token names, once it verifies.
    pub async fn user(&self, token: &str) -> Result<Arc<User>> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(unauthenticated(format!("it is over {MAX_TOKEN_BYTES} bytes")));
        }
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        if let Some((user, exp)) = self.verified.lock().unwrap_or_else(|p| p.into_inner()).get(token)
            && *exp + LEEWAY_SECS > now
        {
            return Ok(Arc::clone(user));
        }
        let claims = self.verify(token).await?;
        let user = Arc::new(user_from_claims(&claims, self.settings.client_id.as_deref())?);
        let exp = claims.get("exp").and_then(Value::as_u64).unwrap_or(now);
        let mut cache = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= TOKEN_CACHE_ENTRIES {
            cache.retain(|_, (_, e)| *e + LEEWAY_SECS > now);
            if cache.len() >= TOKEN_CACHE_ENTRIES {
                cache.clear();
            }
        }
        cache.insert(token.into(), (Arc::clone(&user), exp));
        Ok(user)
    }

    /// The token's claims, once its signature, expiry, audience and issuer check out.
    async fn verify(&self, token: &str) -> Result<Map<String, Value>> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| unauthenticated(format!("malformed ({e})")))?;
        if !ALGORITHMS.contains(&header.alg) {
            return Err(unauthenticated(format!("algorithm {:?} is not accepted", header.alg)));
        }
        let kid = header.kid.ok_or_else(|| unauthenticated("its header names no key (kid)"))?;
        let key = self.key(&kid).await?;
        let mut validation = Validation::new(header.alg);
        validation.algorithms = vec![header.alg];
        validation.leeway = LEEWAY_SECS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp"]);
        match &self.settings.audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        if let Some(iss) = &self.settings.issuer {
            validation.set_issuer(&[iss]);
        }
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            unauthenticated(match e.kind() {
                K::ExpiredSignature => "it has expired".to_string(),
                K::InvalidAudience => "its audience is not this service's".to_string(),
                K::InvalidIssuer => "its issuer is not the one configured".to_string(),
                K::InvalidSignature => "its signature does not verify".to_string(),
                K::ImmatureSignature => "it is not valid yet".to_string(),
                K::MissingRequiredClaim(c) => format!("it has no '{c}' claim"),
                other => format!("{other:?}"),
            })
        })?;
        Ok(data.claims)
    }

    /// The key `kid` names, refetching the set once when it is stale or does not have it.
    async fn key(&self, kid: &str) -> Result<DecodingKey> {
        let mut keys = self.keys.lock().await;
        let fresh = keys.as_ref().is_some_and(|k| k.fetched.elapsed() < self.settings.jwks_cache_lifespan);
        let known = keys.as_ref().and_then(|k| k.set.find(kid)).is_some();
        if !fresh || !known {
            match self.fetch_keys().await {
                Ok(set) => *keys = Some(Keys { set, fetched: Instant::now() }),
                // A provider briefly away: keep serving with the keys already known.
                Err(e) if keys.is_some() && known => {
                    tracing::warn!(error = %e.report(), "cannot refresh the JWKS; using the cached keys")
                }
                Err(e) => return Err(e),
            }
        }
        let jwk = keys
            .as_ref()
            .and_then(|k| k.set.find(kid))
            .ok_or_else(|| unauthenticated(format!("no key '{kid}' in the provider's key set")))?;
        DecodingKey::from_jwk(jwk).map_err(|e| unauthenticated(format!("key '{kid}' is unusable ({e})")))
    }

    async fn fetch_keys(&self) -> Result<JwkSet> {
        let discovery: Value = self.get_json(&self.settings.discovery_url).await?;
        let jwks_uri = discovery.get("jwks_uri").and_then(Value::as_str).ok_or_else(|| {
            Error::unavailable(format!("OIDC discovery document {} has no jwks_uri", self.settings.discovery_url))
        })?;
        let set: Value = self.get_json(jwks_uri).await?;
        serde_json::from_value(set)
            .map_err(|e| Error::unavailable(format!("the key set at {jwks_uri} is not a JWKS: {e}")).because(e))
    }

    async fn get_json(&self, url: &str) -> Result<Value> {
        let fail = |what: String| Error::unavailable(format!("cannot read {url}: {what}"));
        let resp = self.http.get(url).send().await.map_err(|e| fail(e.to_string()).because(e))?;
        if !resp.status().is_success() {
            return Err(fail(format!("HTTP {}", resp.status())));
        }
        let body = resp.bytes().await.map_err(|e| fail(e.to_string()).because(e))?;
        if body.len() > MAX_DOCUMENT_BYTES {
            return Err(fail(format!("over {MAX_DOCUMENT_BYTES} bytes")));
        }
        serde_json::from_slice(&body).map_err(|e| fail(format!("not JSON ({e})")))
    }
}

/// The token of an `Authorization: Bearer <token>` header value.
pub fn bearer(header: Option<&str>) -> Result<&str> {
    let value = header.ok_or_else(|| {
        Error::Unauthenticated("this endpoint needs a bearer token: send Authorization: Bearer <token>".into())
    })?;
    let (scheme, token) = value.trim().split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(Error::Unauthenticated("the Authorization header is not 'Bearer <token>'".into()));
    }
    Ok(token.trim())
}
