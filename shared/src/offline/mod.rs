//! Reading feature history from parquet, on local disk or S3, for materialization.
//!
//! - [`list_files`]: a file source's `path` names one parquet file or a directory / S3 prefix
//!   holding many (hive-style `key=value/` partition folders included); a relative path is
//!   relative to the feature repository, as Feast writes it ([`Location::parse`]). Where the
//!   files live is [`crate::storage`]'s business: this module sees a [`FileTree`].
//! - [`reader`]: parquet's async reader over ranged reads, so only the footer and the needed
//!   column chunks of the needed row groups are ever fetched.
//! - [`columns`]: which source columns a view needs (field mapping applied), and row-group
//!   pruning on the timestamp column's statistics.
//! - [`encode`]: Arrow columns to Feast's serialized `Value` bytes and to event times,
//!   column-wise, without building an intermediate value per cell.

pub mod columns;
pub mod encode;
pub mod reader;

use crate::error::{Error, Result};
use crate::storage::FileTree;

/// Where a parquet file (or a folder of them) lives.
pub use crate::storage::Location;
/// One parquet file of a source, with its size from the listing.
pub use crate::storage::StoredFile as ParquetFile;
pub use reader::{ObjectReader, open_metadata};

/// The parquet files of a source (its root in `tree`), in a stable order (sorted by path): the
/// file itself, or every data file below the folder or prefix, partition folders included.
pub async fn list_files(tree: &dyn FileTree, root: &Location) -> Result<Vec<ParquetFile>> {
    let files = tree.list().await?;
    if files.is_empty() {
        return Err(Error::storage(format!("no parquet files at {root}")));
    }
    Ok(files)
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
        .map(|(k, v)| (k.to_string(), crate::percent::decode(v).unwrap_or_else(|| v.to_string())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
