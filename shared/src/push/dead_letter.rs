//! Dead letters: records that can never succeed (bad JSON, unknown source, a missing column, a
//! value of the wrong type), kept with where they came from and why, so the batch goes on and
//! nothing is lost.
//!
//! Each letter is one JSON document:
//!
//! ```json
//! {"larder_dead_letter": 1, "at": "2026-01-01T00:00:00.123Z", "function": "larder-push",
//!  "source": {"kind": "kinesis", "stream": "arn:...", "shard_id": "shardId-000000000000",
//!             "sequence_number": "4959...", "partition_key": "1001"},
//!  "error": {"code": "invalid_value", "message": "push source 'p' (feature view 'v'): column 'x', row 0: ..."},
//!  "record": {"encoding": "utf-8", "data": "{\"driver_id\": 1001, ...}"}}
//! ```
//!
//! `record.encoding` is `base64` when the record is not UTF-8 text. Sinks: an SQS queue (one
//! message per letter), an S3 prefix (one JSON-lines object per batch), or the log (an error
//! line per letter, when no destination is configured).

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Serialize;

use super::settings::DeadLetterTarget;
use crate::aws::{self, Aws};
use crate::error::Error;
use crate::time::EventTime;

/// Where a record came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Position {
    Kinesis {
        /// The stream ARN (`eventSourceARN`).
        stream: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        shard_id: Option<String>,
        sequence_number: String,
        partition_key: String,
    },
    Kafka {
        topic: String,
        partition: i64,
        offset: i64,
        /// The record key, base64 as Lambda delivers it.
        #[serde(skip_serializing_if = "Option::is_none")]
        key: Option<String>,
    },
    /// A line of a file or of stdin (`larder push`).
    File { path: String, line: usize },
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Position::Kinesis { stream, sequence_number, .. } => {
                write!(f, "Kinesis stream {} sequence {sequence_number}", super::settings::stream_name(stream))
            }
            Position::Kafka { topic, partition, offset, .. } => write!(f, "Kafka {topic}-{partition} offset {offset}"),
            Position::File { path, line } => write!(f, "{path}:{line}"),
        }
    }
}

/// A record that can never succeed, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub position: Position,
    /// The stable error code ([`Error::code`]) and the message.
    pub code: &'static str,
    pub reason: String,
    pub data: Vec<u8>,
}

#[derive(Serialize)]
struct Document<'a> {
    larder_dead_letter: u32,
    at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    function: Option<String>,
    source: &'a Position,
    error: ErrorDoc<'a>,
    record: RecordDoc,
}

#[derive(Serialize)]
struct ErrorDoc<'a> {
    code: &'a str,
    message: &'a str,
}

#[derive(Serialize)]
struct RecordDoc {
    encoding: &'static str,
    data: String,
    /// Set when the record did not fit the destination and only its start is kept here (the
    /// whole record is then in the function's log).
    #[serde(skip_serializing_if = "Option::is_none")]
    truncated_from_bytes: Option<usize>,
}

impl DeadLetter {
    pub fn new(position: Position, error: &Error, data: Vec<u8>) -> Self {
        DeadLetter { position, code: error.code(), reason: error.to_string(), data }
    }

    /// The letter as a JSON document, keeping at most `max_data` bytes of the record.
    pub fn to_json(&self, max_data: usize) -> Vec<u8> {
        let (data, truncated) = if self.data.len() > max_data {
            (&self.data[..max_data], Some(self.data.len()))
        } else {
            (&self.data[..], None)
        };
        let record = match std::str::from_utf8(data) {
            Ok(text) => RecordDoc { encoding: "utf-8", data: text.to_string(), truncated_from_bytes: truncated },
            // A cut in the middle of a UTF-8 character: keep the text up to it.
            Err(e) if truncated.is_some() && e.error_len().is_none() => RecordDoc {
                encoding: "utf-8",
                data: String::from_utf8_lossy(&data[..e.valid_up_to()]).into_owned(),
                truncated_from_bytes: truncated,
            },
            Err(_) => RecordDoc { encoding: "base64", data: B64.encode(data), truncated_from_bytes: truncated },
        };
        let doc = Document {
            larder_dead_letter: 1,
            at: EventTime::now().to_rfc3339(),
            function: std::env::var("AWS_LAMBDA_FUNCTION_NAME").ok(),
            source: &self.position,
            error: ErrorDoc { code: self.code, message: &self.reason },
            record,
        };
        serde_json::to_vec(&doc).unwrap_or_default()
    }
}

/// A send that stopped part-way: the first `kept` letters are stored, the rest are not.
#[derive(Debug)]
pub struct SendFailure {
    pub kept: usize,
    pub error: Error,
}

/// A dead-letter destination.
#[async_trait]
pub trait DeadLetterSink: Send + Sync {
    /// Stores `letters` in order. On failure, says how many leading letters are stored; the
    /// caller retries from the first one that is not.
    async fn send(&self, letters: &[DeadLetter]) -> Result<(), SendFailure>;

    /// Where letters go, for logs.
    fn describe(&self) -> String;
}

/// The sink configured by `LARDER_DEAD_LETTER`, or the log.
pub async fn from_target(target: Option<&DeadLetterTarget>, aws: &Aws) -> Arc<dyn DeadLetterSink> {
    match target {
        Some(DeadLetterTarget::Sqs { queue_url }) => {
            Arc::new(SqsSink { client: aws.sqs().get().await.clone(), queue_url: queue_url.clone() })
        }
        Some(DeadLetterTarget::S3 { bucket, prefix }) => {
            Arc::new(S3Sink { client: aws.s3().get().await.clone(), bucket: bucket.clone(), prefix: prefix.clone() })
        }
        None => Arc::new(LogSink),
    }
}

/// SQS's limit for one message and for one batch.
const SQS_MAX_BYTES: usize = 256 * 1024;
/// Room left in a message for everything but the record.
const SQS_ENVELOPE: usize = 8 * 1024;

/// One SQS message per letter, sent in batches of up to 10.
pub struct SqsSink {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsSink {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        SqsSink { client, queue_url: queue_url.into() }
    }
}

#[async_trait]
impl DeadLetterSink for SqsSink {
    async fn send(&self, letters: &[DeadLetter]) -> Result<(), SendFailure> {
        use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
        let max_data = (SQS_MAX_BYTES - SQS_ENVELOPE) * 3 / 4; // base64 may grow a record by 4/3
        let bodies: Vec<String> = letters
            .iter()
            .map(|l| {
                if l.data.len() > max_data {
                    log_whole(l, "the record is too large for an SQS message; the message keeps its start");
                }
                String::from_utf8(l.to_json(max_data)).unwrap_or_default()
            })
            .collect();
        let mut start = 0;
        while start < bodies.len() {
            let mut end = start;
            let mut bytes = 0;
            while end < bodies.len() && end - start < 10 && (end == start || bytes + bodies[end].len() <= SQS_MAX_BYTES)
            {
                bytes += bodies[end].len();
                end += 1;
            }
            let entries = (start..end)
                .map(|i| {
                    SendMessageBatchRequestEntry::builder().id(i.to_string()).message_body(bodies[i].clone()).build()
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| SendFailure {
                    kept: start,
                    error: Error::internal(format!("building an SQS message: {e}")),
                })?;
            let out = self
                .client
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| SendFailure {
                    kept: start,
                    error: Error::unavailable(format!("dead-letter queue {}: {}", self.queue_url, aws::describe(&e))),
                })?;
            if let Some(first) =
                out.failed().iter().filter_map(|f| f.id().parse::<usize>().ok().map(|i| (i, f))).min_by_key(|(i, _)| *i)
            {
                let (i, f) = first;
                return Err(SendFailure {
                    kept: i,
                    error: Error::unavailable(format!(
                        "dead-letter queue {} refused a message: {} {}",
                        self.queue_url,
                        f.code(),
                        f.message().unwrap_or_default()
                    )),
                });
            }
            start = end;
        }
        Ok(())
    }

    fn describe(&self) -> String {
        format!("SQS queue {}", self.queue_url)
    }
}

/// One S3 object of JSON lines per batch: `<prefix>YYYY/MM/DD/HH/<time>-<uuid>.jsonl`.
pub struct S3Sink {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
}

impl S3Sink {
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>, prefix: impl Into<String>) -> Self {
        S3Sink { client, bucket: bucket.into(), prefix: prefix.into() }
    }
}

#[async_trait]
impl DeadLetterSink for S3Sink {
    async fn send(&self, letters: &[DeadLetter]) -> Result<(), SendFailure> {
        if letters.is_empty() {
            return Ok(());
        }
        let mut body = Vec::new();
        for l in letters {
            body.extend_from_slice(&l.to_json(usize::MAX));
            body.push(b'\n');
        }
        let now = EventTime::now().to_rfc3339();
        // 2026-01-02T03:04:05.678Z -> 2026/01/02/03/
        let dir = format!("{}/{}/{}/{}/", &now[0..4], &now[5..7], &now[8..10], &now[11..13]);
        let key = format!("{}{dir}{}-{}.jsonl", self.prefix, now.replace([':', '.'], ""), uuid::Uuid::new_v4());
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .content_type("application/x-ndjson")
            .body(body.into())
            .send()
            .await
            .map_err(|e| SendFailure {
                kept: 0,
                error: Error::unavailable(format!(
                    "dead-letter bucket s3://{}/{key}: {}",
                    self.bucket,
                    aws::describe(&e)
                )),
            })?;
        Ok(())
    }

    fn describe(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }
}

fn log_whole(letter: &DeadLetter, why: &str) {
    let doc = String::from_utf8(letter.to_json(usize::MAX)).unwrap_or_default();
    tracing::error!(position = %letter.position, code = letter.code, reason = %letter.reason, dead_letter = %doc, "{why}");
}

/// No destination configured: each letter is an error line carrying the whole record, so
/// it can still be found and replayed from the logs.
pub struct LogSink;

#[async_trait]
impl DeadLetterSink for LogSink {
    async fn send(&self, letters: &[DeadLetter]) -> Result<(), SendFailure> {
        for l in letters {
            log_whole(l, "dead letter (no LARDER_DEAD_LETTER destination is configured)");
        }
        Ok(())
    }

    fn describe(&self) -> String {
        "the log (LARDER_DEAD_LETTER is not set)".into()
    }
}

/// Letters kept in memory, for tests and `larder push` (which reports them). Can be told to
/// fail after a number of letters, to exercise retries.
#[derive(Default)]
pub struct MemorySink {
    letters: Mutex<Vec<DeadLetter>>,
    fail_after: Mutex<Option<usize>>,
}

impl MemorySink {
    pub fn new() -> Self {
        Self::default()
    }

    /// Accepts `n` more letters, then fails every send until [`MemorySink::heal`].
    pub fn fail_after(&self, n: usize) {
        *self.fail_after.lock().unwrap_or_else(|p| p.into_inner()) = Some(n);
    }

    pub fn heal(&self) {
        *self.fail_after.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    pub fn letters(&self) -> Vec<DeadLetter> {
        self.letters.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[async_trait]
impl DeadLetterSink for MemorySink {
    async fn send(&self, letters: &[DeadLetter]) -> Result<(), SendFailure> {
        let mut budget = self.fail_after.lock().unwrap_or_else(|p| p.into_inner());
        let mut kept = self.letters.lock().unwrap_or_else(|p| p.into_inner());
        for (i, l) in letters.iter().enumerate() {
            if let Some(n) = budget.as_mut() {
                if *n == 0 {
                    return Err(SendFailure {
                        kept: i,
                        error: Error::unavailable("dead-letter destination is down (test)"),
                    });
                }
                *n -= 1;
            }
            kept.push(l.clone());
        }
        Ok(())
    }

    fn describe(&self) -> String {
        "memory".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(data: &[u8]) -> DeadLetter {
        let pos = Position::Kafka { topic: "t".into(), partition: 0, offset: 7, key: None };
        DeadLetter::new(pos, &Error::InvalidValue("bad".into()), data.to_vec())
    }

    #[test]
    fn documents_carry_position_reason_and_record() {
        let doc: serde_json::Value = serde_json::from_slice(&letter(br#"{"a":1}"#).to_json(usize::MAX)).unwrap();
        assert_eq!(doc["larder_dead_letter"], 1);
        assert_eq!(doc["source"], serde_json::json!({"kind": "kafka", "topic": "t", "partition": 0, "offset": 7}));
        assert_eq!(doc["error"]["code"], "invalid_value");
        assert_eq!(doc["error"]["message"], "bad");
        assert_eq!(doc["record"], serde_json::json!({"encoding": "utf-8", "data": "{\"a\":1}"}));
        assert!(EventTime::parse(doc["at"].as_str().unwrap()).is_ok());
    }

    #[test]
    fn binary_records_are_base64_and_large_ones_truncated() {
        let doc: serde_json::Value = serde_json::from_slice(&letter(&[0xff, 0x00, 0x01]).to_json(usize::MAX)).unwrap();
        assert_eq!(doc["record"]["encoding"], "base64");
        assert_eq!(B64.decode(doc["record"]["data"].as_str().unwrap()).unwrap(), vec![0xff, 0x00, 0x01]);
        let doc: serde_json::Value = serde_json::from_slice(&letter("héllo".as_bytes()).to_json(2)).unwrap();
        assert_eq!(doc["record"]["data"], "h");
        assert_eq!(doc["record"]["truncated_from_bytes"], 6);
    }

    #[tokio::test]
    async fn memory_sink_reports_what_it_kept() {
        let sink = MemorySink::new();
        sink.fail_after(1);
        let e = sink.send(&[letter(b"1"), letter(b"2")]).await.unwrap_err();
        assert_eq!(e.kept, 1);
        assert!(e.error.is_transient());
        sink.heal();
        sink.send(&[letter(b"2")]).await.unwrap();
        assert_eq!(
            sink.letters().iter().map(|l| l.data.clone()).collect::<Vec<_>>(),
            vec![b"1".to_vec(), b"2".to_vec()]
        );
    }
}
