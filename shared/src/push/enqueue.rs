//! `?mode=async`: a push is checked, then put on a Kinesis stream for the push function to
//! apply, and answered 202 at once.
//!
//! The push is converted first (so a bad request is a 4xx now, not a dead letter later), then
//! split by entity: each entity's rows become one record (a Feast push or write request with
//! just those rows), whose partition key is derived from the entity key. One entity's rows
//! therefore stay in one record on one shard, in order; Kinesis does not order the records of
//! one `PutRecords` call, so nothing else could keep them ordered. Entries `PutRecords` refuses
//! (throttling, internal errors) are retried with backoff, then reported as a 503: sending the
//! whole request again is harmless.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use serde_json::{Map, Value as Json};

use super::{Destination, Prepared, Push};
use crate::aws;
use crate::error::{Error, Result};
use crate::retry::Backoff;

/// Kinesis's limits: one record (data and partition key), one `PutRecords` call.
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;
const MAX_CALL_RECORDS: usize = 500;
const MAX_CALL_BYTES: usize = 5 * 1024 * 1024;
/// Attempts for entries `PutRecords` refuses, with exponential backoff from 50 ms.
pub const PUT_ATTEMPTS: u32 = 5;

/// One record to put.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedRecord {
    pub partition_key: String,
    pub data: Vec<u8>,
    pub rows: usize,
}

/// What `?mode=async` accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueued {
    pub stream: String,
    pub rows: usize,
    pub records: usize,
}

impl Enqueued {
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "status": "accepted", "stream": self.stream, "rows": self.rows, "records": self.records,
        }))
        .unwrap_or_default()
    }
}

/// The partition key of a row: a hash of its entity keys in every view the push writes (one
/// view's key in the usual case where they share the entity), as 32 hex digits.
fn partition_key(keys: &[&[u8]]) -> String {
    let mut bytes = Vec::with_capacity(keys.iter().map(|k| k.len() + 1).sum());
    for (i, k) in keys.iter().enumerate() {
        if keys[..i].contains(k) {
            continue;
        }
        bytes.extend_from_slice(k);
        bytes.push(0);
    }
    let h = murmur3::murmur3_x64_128(&mut std::io::Cursor::new(bytes), 0).unwrap_or_default();
    format!("{h:032x}")
}

/// Splits a checked push into one record per entity, in order of first appearance.
pub fn records_for(push: &Push, prepared: &Prepared) -> Result<Vec<QueuedRecord>> {
    let rows = prepared.views.first().map_or(0, |(_, r)| r.len());
    if rows == 0 {
        return Ok(Vec::new());
    }
    if prepared.views.iter().any(|(_, r)| r.len() != rows) {
        return Err(Error::internal("views of one push converted different numbers of rows"));
    }
    let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut keys = Vec::with_capacity(prepared.views.len());
    for row in 0..rows {
        keys.clear();
        keys.extend(prepared.views.iter().map(|(_, r)| r[row].key.as_slice()));
        let pk = partition_key(&keys);
        match index.get(&pk) {
            Some(&g) => groups[g].1.push(row),
            None => {
                index.insert(pk.clone(), groups.len());
                groups.push((pk, vec![row]));
            }
        }
    }
    groups
        .into_iter()
        .map(|(partition_key, rows)| {
            let mut body = Map::new();
            match &push.destination {
                Destination::Source(s) => {
                    body.insert("push_source_name".into(), Json::String(s.clone()));
                    body.insert("to".into(), Json::String("online".into()));
                }
                Destination::View(v) => {
                    body.insert("feature_view_name".into(), Json::String(v.clone()));
                }
            }
            body.insert("df".into(), Json::Object(push.frame.select_rows(&rows)));
            let data = serde_json::to_vec(&body).map_err(|e| Error::internal(format!("encoding a record: {e}")))?;
            if data.len() + partition_key.len() > MAX_RECORD_BYTES {
                return Err(Error::TooLarge(format!(
                    "the {} rows of one entity (first row {}) make a {} byte record; Kinesis takes at most {MAX_RECORD_BYTES}: \
                     push them in smaller requests",
                    rows.len(),
                    rows[0],
                    data.len()
                )));
            }
            Ok(QueuedRecord { partition_key, data, rows: rows.len() })
        })
        .collect()
}

/// Puts records on `stream` (a name or an ARN): calls of at most 500 records and 5 MiB;
/// refused entries retried [`PUT_ATTEMPTS`] times in all, then reported.
pub async fn put_records(client: &aws_sdk_kinesis::Client, stream: &str, records: &[QueuedRecord]) -> Result<()> {
    let mut start = 0;
    while start < records.len() {
        let mut end = start;
        let mut bytes = 0;
        while end < records.len() && end - start < MAX_CALL_RECORDS {
            let size = records[end].data.len() + records[end].partition_key.len();
            if end > start && bytes + size > MAX_CALL_BYTES {
                break;
            }
            bytes += size;
            end += 1;
        }
        put_call(client, stream, &records[start..end]).await?;
        start = end;
    }
    Ok(())
}

async fn put_call(client: &aws_sdk_kinesis::Client, stream: &str, records: &[QueuedRecord]) -> Result<()> {
    let mut pending: Vec<usize> = (0..records.len()).collect();
    let mut last_error = String::new();
    let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_millis(1000));
    for attempt in 0..PUT_ATTEMPTS {
        if attempt > 0 {
            backoff.wait().await;
        }
        let entries = pending
            .iter()
            .map(|&i| {
                PutRecordsRequestEntry::builder()
                    .data(Blob::new(records[i].data.clone()))
                    .partition_key(&records[i].partition_key)
                    .build()
                    .map_err(|e| Error::internal(format!("building a Kinesis record: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut call = client.put_records().set_records(Some(entries));
        call = if stream.starts_with("arn:") { call.stream_arn(stream) } else { call.stream_name(stream) };
        match call.send().await {
            Ok(out) => {
                let failed: Vec<usize> = out
                    .records()
                    .iter()
                    .zip(&pending)
                    .filter(|(r, _)| r.error_code().is_some())
                    .map(|(r, &i)| {
                        last_error = format!(
                            "{}: {}",
                            r.error_code().unwrap_or_default(),
                            r.error_message().unwrap_or_default()
                        );
                        i
                    })
                    .collect();
                if out.records().len() != pending.len() {
                    last_error = format!("Kinesis answered {} entries for {}", out.records().len(), pending.len());
                } else {
                    pending = failed;
                }
            }
            Err(e) => {
                let text = aws::describe(&e);
                // A stream that does not exist, or no permission: retrying will not help.
                if text.contains("ResourceNotFoundException") || text.contains("AccessDenied") {
                    return Err(Error::Config(format!("cannot put records on Kinesis stream '{stream}': {text}")));
                }
                last_error = text;
            }
        }
        if pending.is_empty() {
            return Ok(());
        }
        tracing::warn!(stream, attempt = attempt + 1, refused = pending.len(), error = %last_error, "PutRecords refused entries; retrying");
    }
    Err(Error::unavailable(format!(
        "{} of {} records could not be put on Kinesis stream '{stream}' after {PUT_ATTEMPTS} attempts ({last_error}); \
         nothing is lost by sending the whole request again",
        pending.len(),
        records.len()
    )))
}

/// Checks a push and puts it on `stream`.
pub async fn enqueue(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
    push: &Push,
    prepared: &Prepared,
) -> Result<Enqueued> {
    let records = records_for(push, prepared)?;
    put_records(client, stream, &records).await?;
    Ok(Enqueued { stream: stream.to_string(), rows: records.iter().map(|r| r.rows).sum(), records: records.len() })
}
