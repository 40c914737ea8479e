//! Timeouts, bounded retries, and what a Redis failure means to the rest of Larder.
//!
//! Every round trip runs under [`Policy::run`]: one attempt is bounded by the timeout (connect
//! included, when the attempt has to connect); a lost or refused connection is retried after a
//! short backoff, at most `retries` times; a timeout is not retried, so a call answers within
//! the timeout when Redis is silent, and within a few backoffs when it refuses connections.
//! Whatever is left becomes [`Error::Unavailable`] (HTTP 503, "transient") with a message that
//! says which Redis and what happened.
//!
//! Retrying is safe for everything the store sends: reads are reads; a newest-wins write is a
//! script that compares event times, so applying the same row twice leaves the same hash (the
//! second application finds an equal time and skips); an overwrite (`skip_dedup`) writes the
//! same bytes again. The one visible trace of a retried write is in `WriteStats`: a row the
//! lost attempt had already applied is counted as skipped by the attempt that succeeded.

use std::future::Future;
use std::time::Duration;

use ::redis::{ErrorKind, RedisError, ServerErrorKind};

use crate::config::number_from_env;
use crate::error::{Error, Result};
use crate::retry::Backoff;

pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(1000);
pub const DEFAULT_RETRIES: u32 = 2;
/// First backoff; doubled for each further retry (plus jitter, see [`Backoff`]).
const BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_millis(1000);

/// How the store talks to Redis, beyond where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct RedisOptions {
    /// Bound on one attempt (connect included). `None`: the connection string's
    /// `socket_timeout`, else [`DEFAULT_TIMEOUT`].
    pub timeout: Option<Duration>,
    /// Retries after a lost or refused connection.
    pub retries: u32,
    /// Rows per write pipeline: bounds the memory a large batch holds in flight.
    pub write_chunk_rows: usize,
    /// Write pipelines in flight at once (per store), so Redis never waits for the client
    /// to encode the next chunk.
    pub write_concurrency: usize,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions { timeout: None, retries: DEFAULT_RETRIES, write_chunk_rows: 1000, write_concurrency: 4 }
    }
}

impl RedisOptions {
    /// Defaults, with `LARDER_REDIS_TIMEOUT_MS` and `LARDER_REDIS_RETRIES` applied.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(&|name| std::env::var(name).ok())
    }

    /// [`RedisOptions::from_env`] with an explicit environment, for tests.
    pub fn from_lookup(env: &dyn Fn(&str) -> Option<String>) -> Result<Self> {
        let mut o = RedisOptions::default();
        if let Some(ms) =
            number_from_env(env, "LARDER_REDIS_TIMEOUT_MS", 1..=u64::MAX, "a positive number of milliseconds")?
        {
            o.timeout = Some(Duration::from_millis(ms));
        }
        if let Some(r) = number_from_env(env, "LARDER_REDIS_RETRIES", 0..=10, "a number of retries (0 to 10)")? {
            o.retries = r;
        }
        Ok(o)
    }
}

/// The retry loop around round trips to one store.
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    pub timeout: Duration,
    pub retries: u32,
    /// The store, as [`super::connection::RedisTarget::describe`] gives it, for messages.
    pub store: String,
}

impl Policy {
    /// Runs `attempt` until it succeeds, fails for good, times out, or runs out of retries.
    /// `op` names the operation in messages ("read", "write").
    pub async fn run<T, F, Fut>(&self, op: &str, mut attempt: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = std::result::Result<T, RedisError>>,
    {
        let mut retry = 0;
        let mut backoff = Backoff::new(BACKOFF, MAX_BACKOFF);
        loop {
            let err = match tokio::time::timeout(self.timeout, attempt()).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) => e,
                Err(_) => {
                    return Err(Error::unavailable(format!(
                        "Redis {}: {op} timed out after {} ms (LARDER_REDIS_TIMEOUT_MS)",
                        self.store,
                        self.timeout.as_millis()
                    )));
                }
            };
            if retry >= self.retries || !is_retryable(&err) {
                return Err(self.error(op, &err, retry));
            }
            retry += 1;
            tracing::warn!(store = %self.store, op, retry, error = %err, "Redis round trip failed; retrying");
            backoff.wait().await;
        }
    }

    /// The Larder error for a Redis failure.
    pub fn error(&self, op: &str, e: &RedisError, retries: u32) -> Error {
        let store = &self.store;
        let after = if retries > 0 { format!(" (after {retries} retries)") } else { String::new() };
        if e.is_timeout() {
            return Error::unavailable(format!(
                "Redis {store}: {op} timed out after {} ms (LARDER_REDIS_TIMEOUT_MS){after}",
                self.timeout.as_millis()
            ));
        }
        if is_auth_failure(e) {
            return Error::unavailable(format!(
                "Redis {store} refused the credentials: check password and username in the connection_string ({e})"
            ));
        }
        match e.kind() {
            ErrorKind::Io | ErrorKind::ClusterConnectionNotFound => {
                Error::unavailable(format!("Redis {store} cannot be reached{after}: {e}"))
            }
            ErrorKind::Server(
                ServerErrorKind::BusyLoading
                | ServerErrorKind::TryAgain
                | ServerErrorKind::ClusterDown
                | ServerErrorKind::MasterDown
                | ServerErrorKind::ReadOnly
                | ServerErrorKind::Moved
                | ServerErrorKind::Ask,
            ) => Error::unavailable(format!("Redis {store} is not ready to serve{after}: {e}")),
            ErrorKind::InvalidClientConfig => Error::Config(format!("Redis {store}: {e}")),
            _ if e.code() == Some("OOM") => {
                Error::unavailable(format!("Redis {store} is out of memory (maxmemory) and refuses writes: {e}"))
            }
            _ if e.code() == Some("WRONGTYPE") => Error::storage(format!(
                "Redis {store}: {op} found a key that is not a hash; something other than a feature store wrote it ({e})"
            )),
            _ => Error::storage(format!("Redis {store}: {op} failed: {e}")),
        }
    }
}

/// A lost, refused or reset connection, or a cluster in transition: another attempt may work.
pub(crate) fn is_retryable(e: &RedisError) -> bool {
    if e.is_timeout() || is_auth_failure(e) {
        return false;
    }
    if e.is_connection_dropped() || e.is_connection_refusal() {
        return true;
    }
    match e.kind() {
        ErrorKind::ClusterConnectionNotFound => true,
        ErrorKind::Server(k) => matches!(
            k,
            ServerErrorKind::BusyLoading
                | ServerErrorKind::TryAgain
                | ServerErrorKind::ClusterDown
                | ServerErrorKind::MasterDown
                | ServerErrorKind::ReadOnly
        ),
        _ => false,
    }
}

fn is_auth_failure(e: &RedisError) -> bool {
    e.kind() == ErrorKind::AuthenticationFailed
        || matches!(e.code(), Some("WRONGPASS" | "NOAUTH" | "NOPERM"))
        || e.kind() == ErrorKind::Server(ServerErrorKind::NoPerm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn policy(retries: u32) -> Policy {
        Policy { timeout: Duration::from_millis(200), retries, store: "127.0.0.1:1".into() }
    }

    fn refused() -> RedisError {
        RedisError::from(std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused"))
    }

    #[test]
    fn options_from_env() {
        let o = RedisOptions::from_lookup(&|_| None).unwrap();
        assert_eq!(o, RedisOptions::default());
        let env = |n: &str| match n {
            "LARDER_REDIS_TIMEOUT_MS" => Some("250".to_string()),
            "LARDER_REDIS_RETRIES" => Some("0".to_string()),
            _ => None,
        };
        let o = RedisOptions::from_lookup(&env).unwrap();
        assert_eq!((o.timeout, o.retries), (Some(Duration::from_millis(250)), 0));
        for (name, value) in
            [("LARDER_REDIS_TIMEOUT_MS", "0"), ("LARDER_REDIS_TIMEOUT_MS", "1s"), ("LARDER_REDIS_RETRIES", "-1")]
        {
            let env = |n: &str| (n == name).then(|| value.to_string());
            let err = RedisOptions::from_lookup(&env).unwrap_err();
            assert!(err.to_string().contains(name) && matches!(err, Error::Config(_)), "{err}");
        }
    }

    #[tokio::test]
    async fn refused_connections_are_retried_then_unavailable() {
        let calls = AtomicU32::new(0);
        let started = std::time::Instant::now();
        let r: Result<()> = policy(2)
            .run("read", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(refused())
            })
            .await;
        let err = r.unwrap_err();
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert!(matches!(err, Error::Unavailable { .. }) && err.is_transient());
        assert!(err.to_string().contains("cannot be reached (after 2 retries)"), "{err}");
        // Two backoffs: 50 + 100 ms.
        assert!(started.elapsed() >= Duration::from_millis(150));
    }

    #[tokio::test]
    async fn a_retry_that_succeeds_is_invisible() {
        let calls = AtomicU32::new(0);
        let v = policy(2)
            .run("read", || async { if calls.fetch_add(1, Ordering::SeqCst) == 0 { Err(refused()) } else { Ok(7) } })
            .await
            .unwrap();
        assert_eq!(v, 7);
    }

    #[tokio::test]
    async fn a_silent_server_times_out_without_retries() {
        let calls = AtomicU32::new(0);
        let started = std::time::Instant::now();
        let r: Result<()> = policy(2)
            .run("write", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                std::future::pending().await
            })
            .await;
        let err = r.unwrap_err();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(err.to_string().contains("write timed out after 200 ms"), "{err}");
        assert!(started.elapsed() < Duration::from_millis(1000));
    }

    #[test]
    fn errors_are_classified() {
        let p = policy(0);
        let auth = RedisError::from((ErrorKind::AuthenticationFailed, "bad"));
        assert!(!is_retryable(&auth));
        assert!(p.error("read", &auth, 0).to_string().contains("refused the credentials"));
        let cfg = RedisError::from((ErrorKind::InvalidClientConfig, "nope"));
        assert!(matches!(p.error("read", &cfg, 0), Error::Config(_)));
        let loading = RedisError::from((ErrorKind::Server(ServerErrorKind::BusyLoading), "loading"));
        assert!(is_retryable(&loading));
        assert!(matches!(p.error("read", &loading, 0), Error::Unavailable { .. }));
        let tls = RedisError::from(std::io::Error::new(std::io::ErrorKind::InvalidData, "invalid peer certificate"));
        assert!(!is_retryable(&tls), "a certificate problem does not go away by retrying");
    }
}
