//! Reading and conditionally updating `registry.db`, wherever it lives ([`VersionedObject`]).
//!
//! Writes are conditional so two writers (a `larder apply` and a materialization, or two
//! materializations) never lose each other's changes: each update reads the registry and its
//! version, changes it, and writes only if the version is still the one read. On a lost race
//! the update is recomputed from the newer registry, a bounded number of times, after a
//! randomly jittered backoff so writers that keep colliding drift apart.

use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::retry::Backoff;
use crate::storage::{Location, Read, Storage, VersionedObject};

pub use crate::storage::{Versioned, WriteOutcome};

/// How many times an update is recomputed after losing a race before giving up.
pub const UPDATE_ATTEMPTS: u32 = 8;

#[derive(Clone)]
pub struct RegistryStore {
    object: Arc<dyn VersionedObject>,
}

impl RegistryStore {
    /// The registry at `path` (a local path or `s3://bucket/key`).
    pub fn new(path: &str, storage: &Storage) -> Result<Self> {
        Ok(RegistryStore { object: storage.object(&Location::parse_registry(path)?) })
    }

    pub fn location(&self) -> &Location {
        self.object.location()
    }

    /// Reads the registry; `None` if it does not exist yet.
    pub async fn read(&self) -> Result<Option<Versioned>> {
        match self.object.read(None).await? {
            Read::Found(v) => Ok(Some(v)),
            Read::Missing | Read::Unchanged => Ok(None),
        }
    }

    /// Reads the registry, failing with what to do when it does not exist yet.
    pub async fn read_existing(&self) -> Result<Versioned> {
        self.read().await?.ok_or_else(|| {
            Error::storage(format!(
                "registry {} does not exist yet: run `larder apply` (or `feast apply`) first",
                self.location()
            ))
        })
    }

    /// Reads the registry only if its version differs from `known`. `Ok(None)` means unchanged.
    pub async fn read_if_changed(&self, known: &str) -> Result<Option<Versioned>> {
        match self.object.read(Some(known)).await? {
            Read::Found(v) => Ok(Some(v)),
            Read::Unchanged => Ok(None),
            Read::Missing => Err(Error::storage(format!("registry {} has disappeared", self.location()))),
        }
    }

    /// Writes `bytes` if the stored version is still `expected` (`None`: only if absent).
    pub async fn write_if(&self, bytes: Vec<u8>, expected: Option<&str>) -> Result<WriteOutcome> {
        self.object.write_if(bytes, expected).await
    }

    /// Read-modify-write with retry on conflict. `change` gets the current bytes (`None` if the
    /// registry does not exist) and returns the new bytes, or `None` to write nothing.
    /// Returns what was written, if anything.
    pub async fn update<F>(&self, mut change: F) -> Result<Option<Vec<u8>>>
    where
        F: FnMut(Option<&[u8]>) -> Result<Option<Vec<u8>>>,
    {
        let mut backoff = Backoff::new(Duration::from_millis(20), Duration::from_millis(500));
        for attempt in 1..=UPDATE_ATTEMPTS {
            let current = self.read().await?;
            let Some(new) = change(current.as_ref().map(|v| v.bytes.as_slice()))? else {
                return Ok(None);
            };
            match self.write_if(new.clone(), current.as_ref().map(|v| v.version.as_str())).await? {
                WriteOutcome::Written { .. } => return Ok(Some(new)),
                WriteOutcome::Conflict => {
                    tracing::info!(registry = %self.location(), attempt, "registry changed while updating it; retrying on the newer version");
                    backoff.wait().await;
                }
            }
        }
        Err(Error::Conflict(format!(
            "registry {} kept changing while it was being updated ({UPDATE_ATTEMPTS} attempts); try again",
            self.location()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn concurrent_updates_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.db");
        let store = RegistryStore::new(path.to_str().unwrap(), &Storage::default()).unwrap();
        let mut tasks = Vec::new();
        for i in 0..6u8 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .update(|cur| {
                        let mut v = cur.map(<[u8]>::to_vec).unwrap_or_default();
                        v.push(i);
                        Ok(Some(v))
                    })
                    .await
                    .unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let mut bytes = store.read().await.unwrap().unwrap().bytes;
        bytes.sort();
        assert_eq!(bytes, vec![0, 1, 2, 3, 4, 5]);
    }

    #[tokio::test]
    async fn a_missing_registry_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.db");
        let store = RegistryStore::new(path.to_str().unwrap(), &Storage::default()).unwrap();
        let e = store.read_existing().await.unwrap_err();
        assert!(e.to_string().contains("does not exist yet: run `larder apply`"), "{e}");
        assert!(store.read_if_changed("v").await.unwrap_err().to_string().contains("has disappeared"));
    }
}
