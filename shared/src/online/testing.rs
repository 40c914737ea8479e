//! Online stores for tests (this crate's, and other crates' through the `testing` feature):
//! a wrapper whose writes can fail or be held back, and a store that keeps nothing.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use futures::future::BoxFuture;

use super::memory::MemoryStore;
use super::{KeyRead, OnlineStore, ViewWrite, WriteStats};
use crate::aggregate::tiles::{KeyOutcome, KeyWrite, RunStatus};
use crate::error::{Error, Result};

/// What runs before a write, given how many writes came before it.
type Hook = Box<dyn Fn(usize) -> BoxFuture<'static, ()> + Send + Sync>;

/// Another store, whose writes can be made to fail like a Redis that went away
/// ([`FaultyStore::fail_after`]), and before each of which a hook can run
/// ([`FaultyStore::before_each_write`]: hold a write back, stop a server at the n-th write).
/// Only `write` is wrapped: a several-view write goes through it once per view, as the
/// default [`OnlineStore::write_views`] does.
pub struct FaultyStore<S = MemoryStore> {
    pub inner: S,
    /// Writes left before every write fails; `None`: never fail.
    budget: Mutex<Option<usize>>,
    writes: AtomicUsize,
    hook: Option<Hook>,
    /// With a hook, writes run one at a time, in the order they were called, so which writes a
    /// hook sees first does not depend on timing.
    one_at_a_time: tokio::sync::Mutex<()>,
}

impl Default for FaultyStore<MemoryStore> {
    fn default() -> Self {
        FaultyStore::new(MemoryStore::new())
    }
}

impl<S> FaultyStore<S> {
    pub fn new(inner: S) -> Self {
        FaultyStore {
            inner,
            budget: Mutex::new(None),
            writes: AtomicUsize::new(0),
            hook: None,
            one_at_a_time: tokio::sync::Mutex::new(()),
        }
    }

    /// Runs `hook(n)` before the write that has `n` writes before it.
    pub fn before_each_write(mut self, hook: impl Fn(usize) -> BoxFuture<'static, ()> + Send + Sync + 'static) -> Self {
        self.hook = Some(Box::new(hook));
        self
    }

    /// Lets `writes` more writes through, then fails every write with [`Error::Unavailable`].
    pub fn fail_after(&self, writes: usize) {
        *self.budget.lock().unwrap_or_else(|p| p.into_inner()) = Some(writes);
    }

    /// Fails every write from now on.
    pub fn go_down(&self) {
        self.fail_after(0);
    }

    /// Lets every write through again.
    pub fn heal(&self) {
        *self.budget.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Writes that reached the inner store.
    pub fn writes(&self) -> usize {
        self.writes.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl<S: OnlineStore> OnlineStore for FaultyStore<S> {
    async fn read(&self, reads: &[KeyRead<'_>]) -> Result<Vec<Vec<Option<Bytes>>>> {
        self.inner.read(reads).await
    }

    async fn write(&self, batch: &ViewWrite<'_>) -> Result<WriteStats> {
        let _turn = self.admit().await?;
        self.inner.write(batch).await
    }

    /// Counted and failed like a write.
    async fn aggregate(&self, keys: &[KeyWrite]) -> Result<Vec<KeyOutcome>> {
        let _turn = self.admit().await?;
        self.inner.aggregate(keys).await
    }

    /// Passed through: only writes fail here.
    async fn sample_keys(&self, project: &str, limit: usize) -> Result<Vec<Vec<u8>>> {
        self.inner.sample_keys(project, limit).await
    }

    async fn ping(&self) -> Result<()> {
        self.inner.ping().await
    }

    fn describe(&self) -> String {
        format!("{} (faulty, for tests)", self.inner.describe())
    }
}

impl<S> FaultyStore<S> {
    /// Before a write: the hook, then the budget (an error once it is spent); holds the write's
    /// turn while it runs when there is a hook.
    async fn admit(&self) -> Result<Option<tokio::sync::MutexGuard<'_, ()>>> {
        let turn = match &self.hook {
            Some(hook) => {
                let turn = self.one_at_a_time.lock().await;
                hook(self.writes()).await;
                Some(turn)
            }
            None => None,
        };
        {
            let mut budget = self.budget.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(n) = budget.as_mut() {
                if *n == 0 {
                    return Err(Error::unavailable("connection refused (test)"));
                }
                *n -= 1;
            }
        }
        self.writes.fetch_add(1, Ordering::SeqCst);
        Ok(turn)
    }
}

/// A store that accepts every write and keeps nothing: every read finds nothing.
pub struct NullStore;

#[async_trait]
impl OnlineStore for NullStore {
    async fn read(&self, reads: &[KeyRead<'_>]) -> Result<Vec<Vec<Option<Bytes>>>> {
        Ok(reads.iter().map(|r| vec![None; r.fields.len()]).collect())
    }

    async fn write(&self, batch: &ViewWrite<'_>) -> Result<WriteStats> {
        Ok(WriteStats { written: batch.rows.len(), skipped: 0 })
    }

    /// Nothing is kept: every run counts as applied.
    async fn aggregate(&self, keys: &[KeyWrite]) -> Result<Vec<KeyOutcome>> {
        Ok(keys
            .iter()
            .map(|k| KeyOutcome::Done { runs: vec![RunStatus::Applied; k.runs.len()], row_written: false })
            .collect())
    }

    /// Nothing is kept, so there is nothing to sample.
    async fn sample_keys(&self, _project: &str, _limit: usize) -> Result<Vec<Vec<u8>>> {
        Ok(Vec::new())
    }

    async fn ping(&self) -> Result<()> {
        Ok(())
    }

    fn describe(&self) -> String {
        "null store".into()
    }
}
