//! One Redis server (or a primary behind one endpoint, as ElastiCache's non-cluster mode
//! gives it): a single multiplexed connection, replaced when it breaks.
//!
//! The redis crate's `ConnectionManager` also reconnects, but it retries the connect inside the
//! command that noticed the failure, with its own backoff, so a call's duration would not be
//! bounded by our timeout. Here the connection is only swapped: the policy (`retry.rs`)
//! decides whether and when to try again, and every attempt is bounded.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ::redis::aio::MultiplexedConnection;
use ::redis::{AsyncConnectionConfig, Client, Cmd, Pipeline, RedisError, RedisResult, Value};

use super::Reply;
use super::auth::IamTokens;
use super::connection::RedisTarget;
use crate::error::Result;

pub(crate) struct Standalone {
    client: Client,
    config: AsyncConnectionConfig,
    /// The live connection and its generation, so a failure only discards the connection it
    /// happened on, not a newer one another task has already made.
    current: Mutex<Option<(u64, MultiplexedConnection)>>,
    /// Held while connecting, so concurrent callers wait for one connect instead of racing.
    connecting: tokio::sync::Mutex<()>,
    generation: AtomicU64,
}

impl Standalone {
    /// Uses the first node, as Feast does for `redis_type: redis`.
    /// With `tokens`, every connection authenticates with a fresh ElastiCache IAM token and
    /// re-authenticates as they are renewed.
    pub fn new(target: &RedisTarget, timeout: Duration, tokens: Option<IamTokens>) -> Result<Self> {
        let client = target.client(&target.nodes[0])?;
        let mut config =
            AsyncConnectionConfig::new().set_connection_timeout(Some(timeout)).set_response_timeout(Some(timeout));
        if let Some(tokens) = tokens {
            config = config.set_credentials_provider(tokens);
        }
        Ok(Standalone {
            client,
            config,
            current: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
            generation: AtomicU64::new(0),
        })
    }

    fn cached(&self) -> Option<(u64, MultiplexedConnection)> {
        self.current.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    async fn connection(&self) -> RedisResult<(u64, MultiplexedConnection)> {
        if let Some(c) = self.cached() {
            return Ok(c);
        }
        let _one_at_a_time = self.connecting.lock().await;
        if let Some(c) = self.cached() {
            return Ok(c);
        }
        let conn = self.client.get_multiplexed_async_connection_with_config(&self.config).await?;
        let id = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Some((id, conn.clone()));
        Ok((id, conn))
    }

    /// Forgets connection `id` after it failed; the next call connects again.
    fn discard(&self, id: u64, e: &RedisError) {
        if !(e.is_connection_dropped() || e.is_unrecoverable_error() || e.is_connection_refusal()) {
            return;
        }
        let mut cur = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if cur.as_ref().is_some_and(|(current, _)| *current == id) {
            tracing::info!(error = %e, "Redis connection lost; reconnecting on next use");
            *cur = None;
        }
    }

    /// Sends `pipe`: one round trip. One reply per command, in order (the pipeline is built
    /// with `ignore_errors`, so a command's error is its reply).
    pub async fn exec(&self, pipe: &Pipeline) -> RedisResult<Vec<Reply>> {
        let (id, mut conn) = self.connection().await?;
        match pipe.query_async::<Vec<Value>>(&mut conn).await {
            Ok(values) => Ok(values.into_iter().map(super::reply).collect()),
            Err(e) => {
                self.discard(id, &e);
                Err(e)
            }
        }
    }

    /// One command.
    pub async fn query(&self, cmd: &Cmd) -> RedisResult<Value> {
        let (id, mut conn) = self.connection().await?;
        match cmd.query_async::<Value>(&mut conn).await {
            Ok(v) => super::reply(v),
            Err(e) => {
                self.discard(id, &e);
                Err(e)
            }
        }
    }
}
