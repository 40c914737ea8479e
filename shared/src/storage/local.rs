//! Local files: the registry as a file replaced by rename under a sidecar lock, and parquet
//! sources read with positioned reads on a blocking thread.

use std::hash::{Hash, Hasher};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use super::{FileTree, Location, RangeRead, Read, StoredFile, Versioned, VersionedObject, WriteOutcome, ignored};
use crate::error::{Error, Result};

/// Runs blocking file work off the async threads.
async fn blocking<T: Send + 'static>(what: &str, f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| Error::internal(format!("{what} task failed")).because(e))?
}

pub struct LocalObject {
    location: Location,
    path: PathBuf,
}

impl LocalObject {
    pub fn new(path: PathBuf) -> Self {
        LocalObject { location: Location::Local(path.clone()), path }
    }
}

#[async_trait]
impl VersionedObject for LocalObject {
    fn location(&self) -> &Location {
        &self.location
    }

    async fn read(&self, known: Option<&str>) -> Result<Read> {
        let path = self.path.clone();
        let current = blocking("registry read", move || read_file(&path)).await?;
        Ok(match current {
            Some(v) if Some(v.version.as_str()) == known => Read::Unchanged,
            Some(v) => Read::Found(v),
            None => Read::Missing,
        })
    }

    async fn write_if(&self, bytes: Vec<u8>, expected: Option<&str>) -> Result<WriteOutcome> {
        let (path, expected) = (self.path.clone(), expected.map(str::to_string));
        blocking("registry write", move || write_file(&path, &bytes, expected.as_deref())).await
    }
}

fn fingerprint(bytes: &[u8]) -> String {
    // Not a security boundary: it only tells "changed" from "unchanged" between our own reads.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    format!("{:016x}-{}", h.finish(), bytes.len())
}

fn read_file(path: &Path) -> Result<Option<Versioned>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(Versioned { version: fingerprint(&bytes), bytes })),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::storage(format!("cannot read registry {}: {e}", path.display())).because(e)),
    }
}

fn write_file(path: &Path, bytes: &[u8], expected: Option<&str>) -> Result<WriteOutcome> {
    let io =
        |what: &str, e: std::io::Error| Error::storage(format!("cannot {what} {}: {e}", path.display())).because(e);
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
    let current = read_file(path)?;
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

pub struct LocalTree {
    root: PathBuf,
}

impl LocalTree {
    pub fn new(root: PathBuf) -> Self {
        LocalTree { root }
    }
}

#[async_trait]
impl FileTree for LocalTree {
    async fn list(&self) -> Result<Vec<StoredFile>> {
        let root = self.root.clone();
        blocking("listing", move || list(&root)).await
    }

    async fn open(&self, file: &StoredFile) -> Result<Arc<dyn RangeRead>> {
        let Location::Local(path) = &file.location else {
            return Err(Error::internal(format!("{} is not a local file", file.location)));
        };
        let path = path.clone();
        let opened = path.clone();
        let f = blocking("open", move || {
            std::fs::File::open(&opened)
                .map_err(|e| Error::storage(format!("cannot open {}: {e}", opened.display())).because(e))
        })
        .await?;
        Ok(Arc::new(LocalFile { file: Arc::new(f), path }))
    }
}

fn list(path: &Path) -> Result<Vec<StoredFile>> {
    let meta = std::fs::metadata(path).map_err(|e| {
        Error::storage(if e.kind() == std::io::ErrorKind::NotFound {
            format!("source path {} does not exist", path.display())
        } else {
            format!("cannot read {}: {e}", path.display())
        })
        .because(e)
    })?;
    if meta.is_file() {
        return Ok(vec![StoredFile { location: Location::Local(path.to_path_buf()), size: meta.len() }]);
    }
    let mut out = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    let cannot_list =
        |dir: &Path, e: std::io::Error| Error::storage(format!("cannot list {}: {e}", dir.display())).because(e);
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).map_err(|e| cannot_list(&dir, e))? {
            let entry = entry.map_err(|e| cannot_list(&dir, e))?;
            if ignored(&entry.file_name().to_string_lossy()) {
                continue;
            }
            let p = entry.path();
            let m = std::fs::metadata(&p)
                .map_err(|e| Error::storage(format!("cannot read {}: {e}", p.display())).because(e))?;
            if m.is_dir() {
                stack.push(p);
            } else if m.is_file() && m.len() > 0 {
                out.push(StoredFile { location: Location::Local(p), size: m.len() });
            }
        }
    }
    out.sort_by(|a, b| a.location.cmp(&b.location));
    Ok(out)
}

/// An open local file, shared by every read of it.
struct LocalFile {
    file: Arc<std::fs::File>,
    path: PathBuf,
}

#[async_trait]
impl RangeRead for LocalFile {
    async fn read_ranges(&self, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        let (f, path, ranges) = (Arc::clone(&self.file), self.path.clone(), ranges.to_vec());
        blocking("read", move || {
            use std::os::unix::fs::FileExt;
            ranges
                .iter()
                .map(|r| {
                    let mut buf = vec![0u8; (r.end - r.start) as usize];
                    f.read_exact_at(&mut buf, r.start).map(|_| Bytes::from(buf)).map_err(|e| {
                        Error::storage(format!("reading {} at {}..{}: {e}", path.display(), r.start, r.end)).because(e)
                    })
                })
                .collect()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn conditional_writes_detect_conflicts() {
        let dir = tempfile::tempdir().unwrap();
        let object = LocalObject::new(dir.path().join("data/registry.db"));
        assert!(matches!(object.read(None).await.unwrap(), Read::Missing));
        let WriteOutcome::Written { version: v1 } = object.write_if(b"one".to_vec(), None).await.unwrap() else {
            panic!("first write must succeed")
        };
        // Creating again must conflict: it exists now.
        assert_eq!(object.write_if(b"x".to_vec(), None).await.unwrap(), WriteOutcome::Conflict);
        // Writing against a stale version conflicts; against the current one succeeds.
        assert!(matches!(object.write_if(b"two".to_vec(), Some(&v1)).await.unwrap(), WriteOutcome::Written { .. }));
        assert_eq!(object.write_if(b"three".to_vec(), Some(&v1)).await.unwrap(), WriteOutcome::Conflict);
        let Read::Found(current) = object.read(None).await.unwrap() else { panic!("written") };
        assert_eq!(current.bytes, b"two");
        assert!(matches!(object.read(Some(&current.version)).await.unwrap(), Read::Unchanged));
        assert!(matches!(object.read(Some(&v1)).await.unwrap(), Read::Found(_)));
    }

    #[test]
    fn lists_folders_like_pyarrow() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for f in ["a.parquet", "date=1/b.parquet", "date=2/c.parquet", "_SUCCESS", ".a.parquet.crc", "_tmp/x.parquet"] {
            let p = d.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, b"x").unwrap();
        }
        std::fs::write(d.join("empty.parquet"), b"").unwrap();
        let files = list(d).unwrap();
        let names: Vec<String> = files
            .iter()
            .map(|f| f.location.to_string().trim_start_matches(&d.display().to_string()).to_string())
            .collect();
        assert_eq!(names, vec!["/a.parquet", "/date=1/b.parquet", "/date=2/c.parquet"]);
        assert_eq!(list(&d.join("a.parquet")).unwrap().len(), 1);
        assert!(list(&d.join("missing")).unwrap_err().to_string().contains("does not exist"));
    }

    #[tokio::test]
    async fn reads_ranges_of_an_open_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.bin");
        std::fs::write(&path, b"0123456789").unwrap();
        let tree = LocalTree::new(path.clone());
        let files = tree.list().await.unwrap();
        assert_eq!(files, vec![StoredFile { location: Location::Local(path), size: 10 }]);
        let file = tree.open(&files[0]).await.unwrap();
        assert_eq!(file.read_ranges(&[2..4, 0..1]).await.unwrap(), vec![Bytes::from("23"), Bytes::from("0")]);
        let beyond_the_end = std::slice::from_ref(&(8..12));
        let e = file.read_ranges(beyond_the_end).await.unwrap_err();
        assert!(e.to_string().contains("at 8..12"), "{e}");
    }
}
