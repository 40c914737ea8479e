//! Where Larder's stored files live, behind two small traits with a local and an S3
//! implementation each (as the online store is behind [`crate::online::OnlineStore`]):
//!
//! - [`VersionedObject`]: one object read and replaced whole, each write conditional on the
//!   version read (the registry, `registry.db`);
//! - [`FileTree`]: a file or a folder of files, listed and read by byte ranges (parquet sources).
//!
//! [`Storage`] turns a [`Location`] into the implementation for it, once; code above it never
//! matches on where a file lives. It holds the process's S3 client, which `main` creates and
//! which is built on first use (see [`crate::aws`]).

mod local;
mod s3;

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use crate::aws;
use crate::error::{Error, Result};

/// A local path or an S3 object (or prefix): where a registry or a parquet source lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Location {
    Local(PathBuf),
    S3 { bucket: String, key: String },
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Local(p) => write!(f, "{}", p.display()),
            Location::S3 { bucket, key } => write!(f, "s3://{bucket}/{key}"),
        }
    }
}

impl Location {
    /// Parses a source path: `s3://bucket/key`, `file:///abs/path`, or a local path, relative
    /// paths being relative to `repo_dir` (Feast stores them relative to the repo).
    pub fn parse(path: &str, repo_dir: &Path) -> Result<Location> {
        let path = path.trim();
        if path.is_empty() {
            return Err(Error::Config("a file source has an empty path".into()));
        }
        if let Some(rest) = path.strip_prefix("s3://").or_else(|| path.strip_prefix("s3a://")) {
            let (bucket, key) = parse_s3_url(&format!("s3://{rest}"))
                .ok_or_else(|| Error::Config(format!("source path '{path}' is not an s3://bucket/key URL")))?;
            return Ok(Location::S3 { bucket, key });
        }
        if let Some(local) = path.strip_prefix("file://") {
            return Ok(Location::Local(PathBuf::from(local)));
        }
        if path.contains("://") {
            return Err(Error::Unsupported(format!(
                "source path '{path}': Larder reads parquet from local paths and s3:// only"
            )));
        }
        let p = Path::new(path);
        Ok(Location::Local(if p.is_absolute() { p.to_path_buf() } else { repo_dir.join(p) }))
    }

    /// Parses a registry path: a local path (as given) or `s3://bucket/key`.
    pub fn parse_registry(path: &str) -> Result<Location> {
        if path.starts_with("s3://") {
            let (bucket, key) = parse_s3_url(path)
                .filter(|(_, k)| !k.is_empty())
                .ok_or_else(|| Error::Config(format!("registry path '{path}' is not an s3://bucket/key URL")))?;
            Ok(Location::S3 { bucket, key })
        } else if path.contains("://") {
            Err(Error::Config(format!("registry path '{path}': only local paths and s3:// are supported")))
        } else {
            Ok(Location::Local(PathBuf::from(path)))
        }
    }

    /// Whether `self` is `root` or lies below it (same file system or bucket).
    pub fn is_under(&self, root: &Location) -> bool {
        match (root, self) {
            (Location::Local(r), Location::Local(f)) => f.starts_with(r),
            (Location::S3 { bucket: rb, key: rk }, Location::S3 { bucket: fb, key: fk }) => {
                rb == fb && fk.starts_with(rk.as_str())
            }
            _ => false,
        }
    }
}

/// Splits `s3://bucket/key` into its parts.
pub fn parse_s3_url(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("s3://")?;
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    (!bucket.is_empty()).then(|| (bucket.to_string(), key.to_string()))
}

/// Object bytes with the version they were read at (an S3 ETag, or a content fingerprint).
#[derive(Debug, Clone)]
pub struct Versioned {
    pub bytes: Vec<u8>,
    pub version: String,
}

/// What a read of a [`VersionedObject`] found.
#[derive(Debug)]
pub enum Read {
    Found(Versioned),
    Missing,
    /// The object is still at the version the caller already has.
    Unchanged,
}

/// What a conditional write found.
#[derive(Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    Written {
        version: String,
    },
    /// Someone else changed (or created) the object since it was read.
    Conflict,
}

/// One object read and written whole, every write conditional on the version last read: S3
/// `If-Match` on the ETag (`If-None-Match: *` to create), or for a local file the same check
/// under an exclusive lock, replaced by rename so readers never see half a file.
#[async_trait]
pub trait VersionedObject: Send + Sync {
    fn location(&self) -> &Location;

    /// Reads the object; with `known`, only if its version differs from it (on S3 one
    /// conditional GET: an unchanged object costs a 304 and no transfer).
    async fn read(&self, known: Option<&str>) -> Result<Read>;

    /// Writes `bytes` if the stored version is still `expected` (`None`: only if absent).
    async fn write_if(&self, bytes: Vec<u8>, expected: Option<&str>) -> Result<WriteOutcome>;
}

/// One data file, with its size from the listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFile {
    pub location: Location,
    pub size: u64,
}

/// A file, or a folder (S3 prefix) of files, read by byte ranges.
#[async_trait]
pub trait FileTree: Send + Sync {
    /// The data files at the root, sorted by location: the file itself, or every file below the
    /// folder, skipping empty files and names pyarrow treats as not data (a component starting
    /// with `.` or `_`: `_SUCCESS`, `.crc` files, `_temporary/`). May be empty.
    async fn list(&self) -> Result<Vec<StoredFile>>;

    /// Opens one file for ranged reads.
    async fn open(&self, file: &StoredFile) -> Result<Arc<dyn RangeRead>>;
}

/// Byte ranges of one opened file.
#[async_trait]
pub trait RangeRead: Send + Sync {
    /// The bytes of each range, in order. Every range lies inside the file.
    async fn read_ranges(&self, ranges: &[Range<u64>]) -> Result<Vec<Bytes>>;
}

/// pyarrow's rule for datasets: files and folders whose name starts with `.` or `_` are not
/// data (`_SUCCESS`, `_metadata`, `.part-0.crc`, `_temporary/`).
fn ignored(component: &str) -> bool {
    component.starts_with('.') || component.starts_with('_')
}

/// How this process reaches stored files: local disk always, S3 through its client.
/// `Storage::default()` has an S3 client of its own (tests, and tools that may never use S3).
#[derive(Clone)]
pub struct Storage {
    s3: aws::S3,
}

impl Default for Storage {
    fn default() -> Self {
        Storage::new(&aws::Aws::new())
    }
}

impl Storage {
    pub fn new(aws: &aws::Aws) -> Storage {
        Storage { s3: aws.s3() }
    }

    /// The versioned object at `location`.
    pub fn object(&self, location: &Location) -> Arc<dyn VersionedObject> {
        match location {
            Location::Local(path) => Arc::new(local::LocalObject::new(path.clone())),
            Location::S3 { bucket, key } => Arc::new(s3::S3Object::new(self.s3.clone(), bucket, key)),
        }
    }

    /// The file or folder at `location`.
    pub fn files(&self, location: &Location) -> Arc<dyn FileTree> {
        match location {
            Location::Local(path) => Arc::new(local::LocalTree::new(path.clone())),
            Location::S3 { bucket, key } => Arc::new(s3::S3Tree::new(self.s3.clone(), bucket, key)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_urls() {
        assert_eq!(parse_s3_url("s3://b/k/x.db"), Some(("b".into(), "k/x.db".into())));
        assert_eq!(parse_s3_url("s3://b"), Some(("b".into(), String::new())));
        assert_eq!(parse_s3_url("s3:///k"), None);
        assert_eq!(parse_s3_url("/local"), None);
    }

    #[test]
    fn parses_paths_relative_to_the_repo() {
        let repo = Path::new("/repo");
        assert_eq!(Location::parse("data/x.parquet", repo).unwrap(), Location::Local("/repo/data/x.parquet".into()));
        assert_eq!(Location::parse("/abs/x.parquet", repo).unwrap(), Location::Local("/abs/x.parquet".into()));
        assert_eq!(Location::parse("file:///abs/x", repo).unwrap(), Location::Local("/abs/x".into()));
        assert_eq!(
            Location::parse("s3://b/p/x.parquet", repo).unwrap(),
            Location::S3 { bucket: "b".into(), key: "p/x.parquet".into() }
        );
        assert!(Location::parse("gs://b/x", repo).unwrap_err().to_string().contains("gs://b/x"));
        assert!(Location::parse("", repo).is_err());
    }

    #[test]
    fn registry_paths() {
        assert!(Location::parse_registry("gs://b/k").is_err());
        assert!(Location::parse_registry("s3://bucket-only").is_err());
        assert_eq!(
            Location::parse_registry("s3://b/r.db").unwrap(),
            Location::S3 { bucket: "b".into(), key: "r.db".into() }
        );
        assert_eq!(Location::parse_registry("data/r.db").unwrap(), Location::Local("data/r.db".into()));
    }

    #[test]
    fn files_under_a_root() {
        let root = Location::S3 { bucket: "b".into(), key: "t/".into() };
        assert!(Location::S3 { bucket: "b".into(), key: "t/x".into() }.is_under(&root));
        assert!(!Location::S3 { bucket: "c".into(), key: "t/x".into() }.is_under(&root));
        assert!(!Location::Local("t/x".into()).is_under(&root));
        assert!(Location::Local("/d/a/b".into()).is_under(&Location::Local("/d".into())));
        assert!(!Location::Local("/da/b".into()).is_under(&Location::Local("/d".into())));
    }
}
