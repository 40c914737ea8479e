//! Reading feature history from parquet, on local disk or S3, for materialization.
//!
//! - [`Location`] and [`list_files`]: a file source's `path` names one parquet file or a
//!   directory / S3 prefix holding many (hive-style `key=value/` partition folders included);
//!   a relative path is relative to the feature repository, as Feast writes it.
//! - [`reader`]: parquet's async reader over ranged reads (S3 `GetObject` with `Range`, or
//!   positioned reads of a local file), so only the footer and the needed column chunks of the
//!   needed row groups are ever fetched.
//! - [`columns`]: which source columns a view needs (field mapping applied), and row-group
//!   pruning on the timestamp column's statistics.
//! - [`encode`]: Arrow columns to Feast's serialized `Value` bytes and to event times,
//!   column-wise, without building an intermediate value per cell.

pub mod columns;
pub mod encode;
pub mod reader;

use std::path::{Path, PathBuf};

use crate::aws;
use crate::error::{Error, Result};

pub use reader::{ParquetFile, open_metadata};

/// Where a parquet file (or a folder of them) lives.
pub use crate::aws::Location;

impl Location {
    /// Parses a source path: `s3://bucket/key`, `file:///abs/path`, or a local path, relative
    /// paths being relative to `repo_dir` (Feast stores them relative to the repo).
    pub fn parse(path: &str, repo_dir: &Path) -> Result<Location> {
        let path = path.trim();
        if path.is_empty() {
            return Err(Error::Config("a file source has an empty path".into()));
        }
        if let Some(rest) = path.strip_prefix("s3://").or_else(|| path.strip_prefix("s3a://")) {
            let (bucket, key) = aws::parse_s3_url(&format!("s3://{rest}"))
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
}

/// pyarrow's rule for datasets: files and folders whose name starts with `.` or `_` are not
/// data (`_SUCCESS`, `_metadata`, `.part-0.crc`, `_temporary/`).
fn ignored(component: &str) -> bool {
    component.starts_with('.') || component.starts_with('_')
}

/// The parquet files a source path names, in a stable order (sorted by path): the file
/// itself, or every data file below the folder or prefix, partition folders included.
pub async fn list_files(location: &Location) -> Result<Vec<ParquetFile>> {
    let files = match location {
        Location::Local(path) => {
            let path = path.clone();
            tokio::task::spawn_blocking(move || list_local(&path))
                .await
                .map_err(|e| Error::Internal(format!("listing task failed: {e}")))??
        }
        Location::S3 { bucket, key } => list_s3(bucket, key).await?,
    };
    if files.is_empty() {
        return Err(Error::Storage(format!("no parquet files at {location}")));
    }
    Ok(files)
}

fn list_local(path: &Path) -> Result<Vec<ParquetFile>> {
    let meta = std::fs::metadata(path).map_err(|e| {
        Error::Storage(if e.kind() == std::io::ErrorKind::NotFound {
            format!("source path {} does not exist", path.display())
        } else {
            format!("cannot read {}: {e}", path.display())
        })
    })?;
    if meta.is_file() {
        return Ok(vec![ParquetFile { location: Location::Local(path.to_path_buf()), size: meta.len() }]);
    }
    let mut out = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries =
            std::fs::read_dir(&dir).map_err(|e| Error::Storage(format!("cannot list {}: {e}", dir.display())))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::Storage(format!("cannot list {}: {e}", dir.display())))?;
            let name = entry.file_name();
            if ignored(&name.to_string_lossy()) {
                continue;
            }
            let p = entry.path();
            let m = std::fs::metadata(&p).map_err(|e| Error::Storage(format!("cannot read {}: {e}", p.display())))?;
            if m.is_dir() {
                stack.push(p);
            } else if m.is_file() && m.len() > 0 {
                out.push(ParquetFile { location: Location::Local(p), size: m.len() });
            }
        }
    }
    out.sort_by(|a, b| a.location.cmp(&b.location));
    Ok(out)
}

async fn list_s3(bucket: &str, key: &str) -> Result<Vec<ParquetFile>> {
    let client = aws::s3().await;
    // One listing answers both questions: is `key` an object, or a prefix of objects?
    let folder = if key.is_empty() || key.ends_with('/') { key.to_string() } else { format!("{key}/") };
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut req = client.list_objects_v2().bucket(bucket).prefix(key);
        if let Some(t) = &token {
            req = req.continuation_token(t);
        }
        let page = req.send().await.map_err(|e| {
            let msg = format!("cannot list s3://{bucket}/{key}: {}", aws::describe(&e));
            match e.raw_response().map(|r| r.status().as_u16()) {
                Some(403 | 404) => Error::Storage(msg),
                _ => Error::Unavailable(msg),
            }
        })?;
        for obj in page.contents() {
            let Some(k) = obj.key() else { continue };
            let size = obj.size().unwrap_or(0).max(0) as u64;
            if k == key && !k.ends_with('/') {
                // The path names one object: that is the source, whatever else shares the prefix.
                return Ok(vec![ParquetFile { location: Location::S3 { bucket: bucket.into(), key: k.into() }, size }]);
            }
            let Some(rel) = k.strip_prefix(folder.as_str()) else {
                continue;
            };
            if rel.is_empty() || k.ends_with('/') || size == 0 || rel.split('/').any(ignored) {
                continue;
            }
            out.push(ParquetFile { location: Location::S3 { bucket: bucket.into(), key: k.into() }, size });
        }
        match page.next_continuation_token() {
            Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_string()),
            _ => break,
        }
    }
    out.sort_by(|a, b| a.location.cmp(&b.location));
    Ok(out)
}

/// Hive-style partition values in a file's path below the source root: `date=2024-01-01/`
/// gives `("date", "2024-01-01")`. Used to fill a needed column the file itself lacks.
pub fn partition_values(root: &Location, file: &Location) -> Vec<(String, String)> {
    let rel = match (root, file) {
        (Location::Local(r), Location::Local(f)) => f.strip_prefix(r).ok().map(|p| p.to_string_lossy().into_owned()),
        (Location::S3 { key: r, .. }, Location::S3 { key: f, .. }) => f.strip_prefix(r.as_str()).map(str::to_string),
        _ => None,
    };
    let Some(rel) = rel else { return Vec::new() };
    let parts: Vec<&str> = rel.split('/').filter(|s| !s.is_empty()).collect();
    // The last component is the file name, never a partition.
    parts[..parts.len().saturating_sub(1)]
        .iter()
        .filter_map(|c| c.split_once('='))
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.to_string(), percent_decode(v)))
        .collect()
}

/// Hive escapes special characters in partition values as `%XX`.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if let Some(v) =
            (b[i] == b'%').then(|| s.get(i + 1..i + 3)).flatten().and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn finds_hive_partition_values() {
        let root = Location::S3 { bucket: "b".into(), key: "t/".into() };
        let file = Location::S3 { bucket: "b".into(), key: "t/date=2024-01-01/city=new%20york/part-0.parquet".into() };
        assert_eq!(
            partition_values(&root, &file),
            vec![("date".into(), "2024-01-01".into()), ("city".into(), "new york".into())]
        );
        let root = Location::Local("/d".into());
        assert!(partition_values(&root, &Location::Local("/d/x=1.parquet".into())).is_empty());
        assert_eq!(partition_values(&root, &Location::Local("/d/x=1/f".into())), vec![("x".into(), "1".into())]);
    }

    #[test]
    fn lists_local_folders_like_pyarrow() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for f in ["a.parquet", "date=1/b.parquet", "date=2/c.parquet", "_SUCCESS", ".a.parquet.crc", "_tmp/x.parquet"] {
            let p = d.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, b"x").unwrap();
        }
        std::fs::write(d.join("empty.parquet"), b"").unwrap();
        let files = list_local(d).unwrap();
        let names: Vec<String> = files
            .iter()
            .map(|f| f.location.to_string().trim_start_matches(&d.display().to_string()).to_string())
            .collect();
        assert_eq!(names, vec!["/a.parquet", "/date=1/b.parquet", "/date=2/c.parquet"]);
        assert_eq!(list_local(&d.join("a.parquet")).unwrap().len(), 1);
        assert!(list_local(&d.join("missing")).unwrap_err().to_string().contains("does not exist"));
    }
}
