//! S3: the registry as one object written with `If-Match` / `If-None-Match`, and parquet
//! sources listed with `ListObjectsV2` and read with ranged `GetObject`s.

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use super::{FileTree, Location, RangeRead, Read, StoredFile, Versioned, VersionedObject, WriteOutcome, ignored};
use crate::aws::{self, S3};
use crate::error::{Error, Result};

pub struct S3Object {
    s3: S3,
    location: Location,
    bucket: String,
    key: String,
}

impl S3Object {
    pub fn new(s3: S3, bucket: &str, key: &str) -> Self {
        S3Object {
            s3,
            location: Location::S3 { bucket: bucket.into(), key: key.into() },
            bucket: bucket.into(),
            key: key.into(),
        }
    }
}

#[async_trait]
impl VersionedObject for S3Object {
    fn location(&self) -> &Location {
        &self.location
    }

    async fn read(&self, known: Option<&str>) -> Result<Read> {
        let (bucket, key) = (&self.bucket, &self.key);
        let mut req = self.s3.get().await.get_object().bucket(bucket).key(key);
        if let Some(etag) = known {
            req = req.if_none_match(etag);
        }
        match req.send().await {
            Ok(out) => {
                let version = out.e_tag().unwrap_or_default().to_string();
                let bytes = out
                    .body
                    .collect()
                    .await
                    .map_err(|e| Error::unavailable(format!("reading registry s3://{bucket}/{key}: {e}")).because(e))?
                    .into_bytes()
                    .to_vec();
                Ok(Read::Found(Versioned { bytes, version }))
            }
            Err(err) => {
                let status = err.raw_response().map(|r| r.status().as_u16());
                let text = aws::describe(&err);
                match status {
                    Some(304) => Ok(Read::Unchanged),
                    Some(404) => Ok(Read::Missing),
                    Some(403) => {
                        Err(Error::storage(format!("access denied reading registry s3://{bucket}/{key}: {text}"))
                            .because(err))
                    }
                    _ => {
                        Err(Error::unavailable(format!("cannot read registry s3://{bucket}/{key}: {text}"))
                            .because(err))
                    }
                }
            }
        }
    }

    async fn write_if(&self, bytes: Vec<u8>, expected: Option<&str>) -> Result<WriteOutcome> {
        let (bucket, key) = (&self.bucket, &self.key);
        let mut req = self.s3.get().await.put_object().bucket(bucket).key(key).body(bytes.into());
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
                _ => {
                    let text = aws::describe(&err);
                    Err(Error::unavailable(format!("cannot write registry s3://{bucket}/{key}: {text}")).because(err))
                }
            },
        }
    }
}

pub struct S3Tree {
    s3: S3,
    bucket: String,
    key: String,
}

impl S3Tree {
    pub fn new(s3: S3, bucket: &str, key: &str) -> Self {
        S3Tree { s3, bucket: bucket.into(), key: key.into() }
    }
}

#[async_trait]
impl FileTree for S3Tree {
    async fn list(&self) -> Result<Vec<StoredFile>> {
        let (bucket, key) = (self.bucket.as_str(), self.key.as_str());
        let client = self.s3.get().await;
        // One listing answers both questions: is `key` an object, or a prefix of objects?
        let folder = if key.is_empty() || key.ends_with('/') { key.to_string() } else { format!("{key}/") };
        let file =
            |k: &str, size: u64| StoredFile { location: Location::S3 { bucket: bucket.into(), key: k.into() }, size };
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
                    Some(403 | 404) => Error::storage(msg),
                    _ => Error::unavailable(msg),
                }
                .because(e)
            })?;
            for obj in page.contents() {
                let Some(k) = obj.key() else { continue };
                let size = obj.size().unwrap_or(0).max(0) as u64;
                if k == key && !k.ends_with('/') {
                    // The path names one object: that is the source, whatever else shares the prefix.
                    return Ok(vec![file(k, size)]);
                }
                let Some(rel) = k.strip_prefix(folder.as_str()) else {
                    continue;
                };
                if rel.is_empty() || k.ends_with('/') || size == 0 || rel.split('/').any(ignored) {
                    continue;
                }
                out.push(file(k, size));
            }
            match page.next_continuation_token() {
                Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_string()),
                _ => break,
            }
        }
        out.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(out)
    }

    async fn open(&self, file: &StoredFile) -> Result<Arc<dyn RangeRead>> {
        let Location::S3 { bucket, key } = &file.location else {
            return Err(Error::internal(format!("{} is not an S3 object", file.location)));
        };
        Ok(Arc::new(S3File { s3: self.s3.clone(), bucket: bucket.clone(), key: key.clone() }))
    }
}

/// An S3 object read by ranges; S3 needs no connection per object.
struct S3File {
    s3: S3,
    bucket: String,
    key: String,
}

impl S3File {
    async fn range(&self, r: Range<u64>) -> Result<Bytes> {
        let (bucket, key) = (&self.bucket, &self.key);
        let want = r.end - r.start;
        let out = self
            .s3
            .get()
            .await
            .get_object()
            .bucket(bucket)
            .key(key)
            .range(format!("bytes={}-{}", r.start, r.end - 1))
            .send()
            .await
            .map_err(|e| {
                let text = aws::describe(&e);
                Error::storage(format!("GetObject s3://{bucket}/{key} bytes {}..{}: {text}", r.start, r.end)).because(e)
            })?;
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| Error::storage(format!("reading s3://{bucket}/{key}: {e}")).because(e))?
            .into_bytes();
        if body.len() as u64 != want {
            return Err(Error::storage(format!(
                "s3://{bucket}/{key}: asked for {want} bytes at {}, got {} (did the object change?)",
                r.start,
                body.len()
            )));
        }
        Ok(body)
    }
}

#[async_trait]
impl RangeRead for S3File {
    async fn read_ranges(&self, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        futures::future::try_join_all(ranges.iter().map(|r| self.range(r.clone()))).await
    }
}
