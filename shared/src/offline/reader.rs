//! Parquet's async reader over ranged reads.
//!
//! [`ObjectReader`] implements [`AsyncFileReader`]: the footer is read with one ranged read at
//! the end of the file (its size is known from the listing), and the column chunks of a row
//! group with a few ranged reads, nearby ranges merged into one request and the requests sent
//! concurrently (on S3, `GetObject` with `Range: bytes=a-b`; locally, positioned reads).
//! Nothing reads a whole file.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::errors::ParquetError;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};

use super::ParquetFile;
use crate::error::{Error, Result};
use crate::storage::{FileTree, RangeRead};

/// Ranges closer than this are fetched in one request: a request costs more than the gap.
const MERGE_GAP: u64 = 1 << 20;
/// A merged request is not grown past this, so large column chunks still download in parallel.
const MAX_REQUEST: u64 = 32 << 20;
/// Bytes read from the end of the file for the footer in one go (most footers fit).
const FOOTER_HINT: usize = 64 << 10;

/// Reads byte ranges of one parquet file.
#[derive(Clone)]
pub struct ObjectReader {
    file: ParquetFile,
    ranges: Arc<dyn RangeRead>,
}

impl ObjectReader {
    /// Opens the file in `tree` (a local file is opened once and shared by the clones).
    pub async fn open(tree: &dyn FileTree, file: &ParquetFile) -> Result<ObjectReader> {
        Ok(ObjectReader { file: file.clone(), ranges: tree.open(file).await? })
    }

    async fn fetch(&self, ranges: Vec<Range<u64>>) -> parquet::errors::Result<Vec<Bytes>> {
        if ranges.is_empty() {
            return Ok(Vec::new());
        }
        let merged = merge_ranges(&ranges);
        crate::telemetry::parquet_bytes(merged.iter().map(|r| r.end - r.start).sum());
        let parts = self.ranges.read_ranges(&merged).await.map_err(|e| ParquetError::External(Box::new(e)))?;
        // Cut each requested range out of the merged buffer that holds it.
        Ok(ranges
            .iter()
            .map(|r| {
                let i = merged
                    .iter()
                    .position(|m| m.start <= r.start && r.end <= m.end)
                    .expect("every range is inside a merged one");
                let m = &merged[i];
                parts[i].slice((r.start - m.start) as usize..(r.end - m.start) as usize)
            })
            .collect())
    }
}

/// Sorted, merged ranges covering `ranges` (gaps up to [`MERGE_GAP`] filled).
fn merge_ranges(ranges: &[Range<u64>]) -> Vec<Range<u64>> {
    let mut sorted: Vec<Range<u64>> = ranges.to_vec();
    sorted.sort_by_key(|r| r.start);
    let mut out: Vec<Range<u64>> = Vec::with_capacity(sorted.len());
    for r in sorted {
        match out.last_mut() {
            Some(last) if r.start <= last.end + MERGE_GAP && r.end.max(last.end) - last.start <= MAX_REQUEST => {
                last.end = last.end.max(r.end);
            }
            _ => out.push(r),
        }
    }
    out
}

impl AsyncFileReader for ObjectReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        async move { Ok(self.fetch(vec![range]).await?.remove(0)) }.boxed()
    }

    fn get_byte_ranges(&mut self, ranges: Vec<Range<u64>>) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        async move { self.fetch(ranges).await }.boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let size = self.file.size;
            let meta = ParquetMetaDataReader::new()
                .with_arrow_reader_options(options)
                .with_prefetch_hint(Some(FOOTER_HINT))
                .load_and_finish(&mut *self, size)
                .await?;
            Ok(Arc::new(meta))
        }
        .boxed()
    }
}

/// Opens a file of `tree` and reads its footer: the schema and every row group's statistics.
pub async fn open_metadata(tree: &dyn FileTree, file: &ParquetFile) -> Result<(ObjectReader, ArrowReaderMetadata)> {
    let mut reader = ObjectReader::open(tree, file).await?;
    let meta = ArrowReaderMetadata::load_async(&mut reader, ArrowReaderOptions::new())
        .await
        .map_err(|e| Error::storage(format!("{} is not a readable parquet file: {e}", file.location)).because(e))?;
    Ok((reader, meta))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_close_ranges_only() {
        assert_eq!(merge_ranges(&[10..20, 0..5, 30..40]), vec![0..40]);
        let far = 5 + MERGE_GAP + 1;
        assert_eq!(merge_ranges(&[0..5, far..far + 1]), vec![0..5, far..far + 1]);
        let big = MAX_REQUEST;
        assert_eq!(merge_ranges(&[0..big, big..big + 10]), vec![0..big, big..big + 10]);
    }
}
