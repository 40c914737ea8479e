//! Where `registry.db` lives: a local file or an S3 object, read and written whole.
//!
//! Writes are conditional so two writers (a `larder apply` and a materialization, or two
//! materializations) never lose each other's changes: each update reads the registry and its
//! version, changes it, and writes only if the version is still the one read (S3 `If-Match` on
//! the ETag, `If-None-Match: *` for a new object; for a local file, the same check under an
//! exclusive lock). On a lost race the update is recomputed from the newer registry, a bounded
//! number of times.

use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::time::Duration;

use crate::aws::{self, Location};
use crate::error::{Error, Result};

/// Registry bytes with the version they were read at (an S3 ETag, or a content fingerprint).
#[derive(Debug, Clone)]
pub struct Versioned {
    pub bytes: Vec<u8>,
    pub version: String,
}

/// What a conditional write found.
#[derive(Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    Written {
        version: String,
    },
    /// Someone else changed (or created) the registry since it was read.
    Conflict,
}

/// How many times an update is recomputed after losing a race before giving up.
pub const UPDATE_ATTEMPTS: usize = 8;

#[derive(Debug, Clone)]
pub struct RegistryStore {
    location: Location,
}

impl RegistryStore {
    pub fn new(path: &str) -> Result<Self> {
        let location = if path.starts_with("s3://") {
            let (bucket, key) = aws::parse_s3_url(path)
                .filter(|(_, k)| !k.is_empty())
                .ok_or_else(|| Error::Config(format!("registry path '{path}' is not an s3://bucket/key URL")))?;
            Location::S3 { bucket, key }
        } else if path.contains("://") {
            return Err(Error::Config(format!("registry path '{path}': only local paths and s3:// are supported")));
        } else {
            Location::Local(PathBuf::from(path))
        };
        Ok(RegistryStore { location })
    }

    pub fn location(&self) -> &Location {
        &self.location
    }

    /// Reads the registry; `None` if it does not exist yet.
    pub async fn read(&self) -> Result<Option<Versioned>> {
        match &self.location {
            Location::Local(path) => {
                let path = path.clone();
                tokio::task::spawn_blocking(move || read_local(&path))
                    .await
                    .map_err(|e| Error::Internal(format!("registry read task failed: {e}")))?
            }
            Location::S3 { bucket, key } => read_s3(bucket, key, None).await.map(|r| match r {
                S3Read::Found(v) => Some(v),
                S3Read::Missing | S3Read::NotModified => None,
            }),
        }
    }

    /// Reads the registry only if its version differs from `known`: one conditional GET on S3
    /// (`If-None-Match`), so an unchanged registry costs a 304 and no transfer.
    /// `Ok(None)` means unchanged.
    pub async fn read_if_changed(&self, known: &str) -> Result<Option<Versioned>> {
        match &self.location {
            Location::Local(_) => match self.read().await? {
                Some(v) if v.version == known => Ok(None),
                Some(v) => Ok(Some(v)),
                None => Err(Error::Storage(format!("registry {} has disappeared", self.location))),
            },
            Location::S3 { bucket, key } => match read_s3(bucket, key, Some(known)).await? {
                S3Read::Found(v) => Ok(Some(v)),
                S3Read::NotModified => Ok(None),
                S3Read::Missing => Err(Error::Storage(format!("registry {} has disappeared", self.location))),
            },
        }
    }

    /// Writes `bytes` if the stored version is still `expected` (`None`: only if absent).
    pub async fn write_if(&self, bytes: Vec<u8>, expected: Option<&str>) -> Result<WriteOutcome> {
        match &self.location {
            Location::Local(path) => {
                let (path, expected) = (path.clone(), expected.map(str::to_string));
                tokio::task::spawn_blocking(move || write_local(&path, &bytes, expected.as_deref()))
                    .await
                    .map_err(|e| Error::Internal(format!("registry write task failed: {e}")))?
            }
            Location::S3 { bucket, key } => write_s3(bucket, key, bytes, expected).await,
        }
    }

    /// Read-modify-write with retry on conflict. `change` gets the current bytes (`None` if the
    /// registry does not exist) and returns the new bytes, or `None` to write nothing.
    /// Returns what was written, if anything.
    pub async fn update<F>(&self, mut change: F) -> Result<Option<Vec<u8>>>
    where
        F: FnMut(Option<&[u8]>) -> Result<Option<Vec<u8>>>,
    {
        for attempt in 0..UPDATE_ATTEMPTS {
            let current = self.read().await?;
            let Some(new) = change(current.as_ref().map(|v| v.bytes.as_slice()))? else {
                return Ok(None);
            };
            match self.write_if(new.clone(), current.as_ref().map(|v| v.version.as_str())).await? {
                WriteOutcome::Written { .. } => return Ok(Some(new)),
                WriteOutcome::Conflict => {
                    tracing::info!(registry = %self.location, attempt, "registry changed while updating it; retrying on the newer version");
                    // Jittered backoff so two writers that keep colliding drift apart.
                    let jitter = (std::process::id() as u64 + attempt as u64 * 7919) % 37;
                    tokio::time::sleep(Duration::from_millis(20 * (attempt as u64 + 1) + jitter)).await;
                }
            }
        }
        Err(Error::Conflict(format!(
            "registry {} kept changing while it was being updated ({UPDATE_ATTEMPTS} attempts); try again",
            self.location
        )))
    }
}

fn fingerprint(bytes: &[u8]) -> String {
    // Not a security boundary: it only tells "changed" from "unchanged" between our own reads.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    format!("{:016x}-{}", h.finish(), bytes.len())
}

fn read_local(path: &std::path::Path) -> Result<Option<Versioned>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(Versioned { version: fingerprint(&bytes), bytes })),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::Storage(format!("cannot read registry {}: {e}", path.display()))),
    }
}

fn write_local(path: &std::path::Path, bytes: &[u8], expected: Option<&str>) -> Result<WriteOutcome> {
    let io = |what: &str, e: std::io::Error| Error::Storage(format!("cannot {what} {}: {e}", path.display()));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| io("create the directory of", e))?;
    }
    // A sidecar lock file serializes writers (across processes too); the registry itself is
    // replaced by rename so readers never see a half-written file.
    let lock_path = path.with_extension("db.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| io("open the lock file of", e))?;
    lock.lock().map_err(|e| io("lock", e))?;
    let current = read_local(path)?;
    let matches = match (&current, expected) {
        (None, None) => true,
        (Some(c), Some(e)) => c.version == e,
        _ => false,
    };
    if !matches {
        return Ok(WriteOutcome::Conflict);
    }
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(|e| io("write", e))?;
    std::fs::rename(&tmp, path).map_err(|e| io("replace", e))?;
    drop(lock);
    Ok(WriteOutcome::Written { version: fingerprint(bytes) })
}

enum S3Read {
    Found(Versioned),
    Missing,
    NotModified,
}

async fn read_s3(bucket: &str, key: &str, if_none_match: Option<&str>) -> Result<S3Read> {
    let client = aws::s3().await;
    let mut req = client.get_object().bucket(bucket).key(key);
    if let Some(etag) = if_none_match {
        req = req.if_none_match(etag);
    }
    match req.send().await {
        Ok(out) => {
            let version = out.e_tag().unwrap_or_default().to_string();
            let bytes = out
                .body
                .collect()
                .await
                .map_err(|e| Error::Unavailable(format!("reading registry s3://{bucket}/{key}: {e}")))?
                .into_bytes()
                .to_vec();
            Ok(S3Read::Found(Versioned { bytes, version }))
        }
        Err(err) => {
            let status = err.raw_response().map(|r| r.status().as_u16());
            match status {
                Some(304) => Ok(S3Read::NotModified),
                Some(404) => Ok(S3Read::Missing),
                Some(403) => Err(Error::Storage(format!(
                    "access denied reading registry s3://{bucket}/{key}: {}",
                    aws::describe(&err)
                ))),
                _ => Err(Error::Unavailable(format!(
                    "cannot read registry s3://{bucket}/{key}: {}",
                    aws::describe(&err)
                ))),
            }
        }
    }
}

async fn write_s3(bucket: &str, key: &str, bytes: Vec<u8>, expected: Option<&str>) -> Result<WriteOutcome> {
    let client = aws::s3().await;
    let mut req = client.put_object().bucket(bucket).key(key).body(bytes.into());
    req = match expected {
        Some(etag) => req.if_match(etag),
        None => req.if_none_match("*"),
    };
    match req.send().await {
        Ok(out) => Ok(WriteOutcome::Written { version: out.e_tag().unwrap_or_default().to_string() }),
        Err(err) => match err.raw_response().map(|r| r.status().as_u16()) {
            // 412: the ETag no longer matches (or the object now exists); 409: a concurrent
            // conditional write is in flight. Both mean "recompute and try again".
            Some(412 | 409) => Ok(WriteOutcome::Conflict),
            _ => Err(Error::Unavailable(format!("cannot write registry s3://{bucket}/{key}: {}", aws::describe(&err)))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_conditional_writes_detect_conflicts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data/registry.db");
        let store = RegistryStore::new(path.to_str().unwrap()).unwrap();
        assert!(store.read().await.unwrap().is_none());
        let WriteOutcome::Written { version: v1 } = store.write_if(b"one".to_vec(), None).await.unwrap() else {
            panic!("first write must succeed")
        };
        // Creating again must conflict: it exists now.
        assert_eq!(store.write_if(b"x".to_vec(), None).await.unwrap(), WriteOutcome::Conflict);
        // Writing against a stale version conflicts; against the current one succeeds.
        assert!(matches!(store.write_if(b"two".to_vec(), Some(&v1)).await.unwrap(), WriteOutcome::Written { .. }));
        assert_eq!(store.write_if(b"three".to_vec(), Some(&v1)).await.unwrap(), WriteOutcome::Conflict);
        let current = store.read().await.unwrap().unwrap();
        assert_eq!(current.bytes, b"two");
        assert!(store.read_if_changed(&current.version).await.unwrap().is_none());
        assert!(store.read_if_changed(&v1).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn concurrent_updates_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.db");
        let store = RegistryStore::new(path.to_str().unwrap()).unwrap();
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

    #[test]
    fn rejects_unsupported_urls() {
        assert!(RegistryStore::new("gs://b/k").is_err());
        assert!(RegistryStore::new("s3://bucket-only").is_err());
        assert_eq!(
            RegistryStore::new("s3://b/r.db").unwrap().location,
            Location::S3 { bucket: "b".into(), key: "r.db".into() }
        );
    }
}
