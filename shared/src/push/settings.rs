//! Push configuration, from the environment (every variable is listed in
//! [`crate::config::ENV_VARS`]):
//!
//! | variable | meaning |
//! |---|---|
//! | `LARDER_PUSH_SOURCE` | push source of a flat-row record that names none |
//! | `LARDER_PUSH_SOURCE_MAP` | per stream or topic: `orders=order_source,driver-events=driver_push` |
//! | `LARDER_PUSH_STREAM` | Kinesis stream (name or ARN) `POST /push?mode=async` enqueues to |
//! | `LARDER_DEAD_LETTER` | where poison records go: an SQS queue URL or `s3://bucket/prefix/` |
//! | `LARDER_KAFKA_PARTIAL_BATCH` | `true`: answer Kafka batches with `batchItemFailures` |
//!
//! A record's own `push_source_name` wins over the map, the map over the default.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::registry::Registry;
use crate::storage::parse_s3_url;

/// Where records that can never succeed are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeadLetterTarget {
    /// One message per record.
    Sqs { queue_url: String },
    /// One JSON-lines object per batch, under the prefix.
    S3 { bucket: String, prefix: String },
}

impl DeadLetterTarget {
    pub fn parse(text: &str) -> Result<DeadLetterTarget> {
        let t = text.trim();
        if t.starts_with("s3://") {
            let (bucket, prefix) = parse_s3_url(t)
                .ok_or_else(|| Error::Config(format!("LARDER_DEAD_LETTER: '{t}' is not an s3://bucket/prefix/ URL")))?;
            let prefix = if prefix.is_empty() || prefix.ends_with('/') { prefix } else { format!("{prefix}/") };
            Ok(DeadLetterTarget::S3 { bucket, prefix })
        } else if t.starts_with("https://") || t.starts_with("http://") {
            Ok(DeadLetterTarget::Sqs { queue_url: t.to_string() })
        } else {
            Err(Error::Config(format!(
                "LARDER_DEAD_LETTER: '{t}' is neither an SQS queue URL (https://sqs.<region>.amazonaws.com/<account>/<queue>) \
                 nor an s3://bucket/prefix/ URL"
            )))
        }
    }
}

impl std::fmt::Display for DeadLetterTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeadLetterTarget::Sqs { queue_url } => write!(f, "SQS queue {queue_url}"),
            DeadLetterTarget::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushSettings {
    /// The push source of a flat row that names none, on any stream or topic.
    pub default_source: Option<String>,
    /// Per stream name or topic: its push source.
    pub source_by_stream: BTreeMap<String, String>,
    /// The Kinesis stream `?mode=async` puts pushes on.
    pub async_stream: Option<String>,
    /// Where poison records go; `None`: the log (an error line carrying the whole record).
    pub dead_letter: Option<DeadLetterTarget>,
    /// Answer Kafka batches with per-partition `batchItemFailures` (the event source mapping
    /// must have `ReportBatchItemFailures`); otherwise a transient failure fails the invocation.
    pub kafka_partial_batch: bool,
}

impl PushSettings {
    pub fn from_env() -> Result<PushSettings> {
        Self::from_env_with(&|name| std::env::var(name).ok())
    }

    pub fn from_env_with(env: &dyn Fn(&str) -> Option<String>) -> Result<PushSettings> {
        let get = |name: &str| env(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let mut s = PushSettings {
            default_source: get("LARDER_PUSH_SOURCE"),
            async_stream: get("LARDER_PUSH_STREAM"),
            ..Default::default()
        };
        if let Some(map) = get("LARDER_PUSH_SOURCE_MAP") {
            for entry in map.split(',').map(str::trim).filter(|e| !e.is_empty()) {
                let (stream, source) = entry
                    .split_once('=')
                    .map(|(a, b)| (a.trim(), b.trim()))
                    .filter(|(a, b)| !a.is_empty() && !b.is_empty())
                    .ok_or_else(|| {
                        Error::Config(format!(
                            "LARDER_PUSH_SOURCE_MAP: '{entry}' is not stream=push_source (e.g. driver-events=driver_stats_push_source)"
                        ))
                    })?;
                if s.source_by_stream.insert(stream.to_string(), source.to_string()).is_some() {
                    return Err(Error::Config(format!("LARDER_PUSH_SOURCE_MAP names '{stream}' twice")));
                }
            }
        }
        if let Some(t) = get("LARDER_DEAD_LETTER") {
            s.dead_letter = Some(DeadLetterTarget::parse(&t)?);
        }
        if let Some(v) = get("LARDER_KAFKA_PARTIAL_BATCH") {
            s.kafka_partial_batch = match v.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => true,
                "false" | "0" | "no" => false,
                _ => {
                    return Err(Error::Config(format!("LARDER_KAFKA_PARTIAL_BATCH: '{v}' is not true or false")));
                }
            };
        }
        Ok(s)
    }

    /// The push source for flat rows from `stream` (a Kinesis stream name or ARN, or a Kafka
    /// topic): its map entry; else the Kafka or Kinesis source of `registry` whose options
    /// name the topic or stream (so a Feast stream view needs no setting); else the default.
    pub fn source_for<'a>(&'a self, stream: &str, registry: &'a Registry) -> Option<&'a str> {
        let name = stream_name(stream);
        self.source_by_stream
            .get(stream)
            .or_else(|| self.source_by_stream.get(name))
            .map(String::as_str)
            .or_else(|| registry.source_for_stream(name))
            .or(self.default_source.as_deref())
    }
}

/// The stream name of a Kinesis ARN (`arn:aws:kinesis:<region>:<account>:stream/<name>`),
/// or the text itself.
pub fn stream_name(stream: &str) -> &str {
    match stream.rsplit_once(":stream/") {
        Some((_, name)) => name.split('/').next().unwrap_or(name),
        None => stream,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    #[test]
    fn routing_prefers_the_stream_map_then_the_default() {
        let s = PushSettings::from_env_with(&env(&[
            ("LARDER_PUSH_SOURCE", "fallback"),
            ("LARDER_PUSH_SOURCE_MAP", " driver-events = driver_push , orders.v1=order_push"),
        ]))
        .unwrap();
        let mut reg = Registry::default();
        reg.stream_index.insert("driver-events".into(), "driver_kinesis".into());
        reg.stream_index.insert("readings".into(), "readings_kafka".into());
        let arn = "arn:aws:kinesis:us-east-1:123456789012:stream/driver-events";
        assert_eq!(s.source_for(arn, &reg), Some("driver_push"), "the map first");
        assert_eq!(s.source_for("orders.v1", &reg), Some("order_push"));
        assert_eq!(s.source_for("readings", &reg), Some("readings_kafka"), "then the registry's stream sources");
        assert_eq!(s.source_for("other", &reg), Some("fallback"));
        let none = PushSettings::from_env_with(&env(&[])).unwrap();
        assert_eq!(none.source_for("x", &reg), None);
        assert_eq!(
            none.source_for(arn, &reg),
            Some("driver_kinesis"),
            "a Kinesis source names the stream, not the ARN"
        );
        assert_eq!(none, PushSettings::default());
    }

    #[test]
    fn bad_settings_name_the_variable() {
        let e = PushSettings::from_env_with(&env(&[("LARDER_PUSH_SOURCE_MAP", "a=b,c")])).unwrap_err();
        assert!(e.to_string().contains("LARDER_PUSH_SOURCE_MAP: 'c'"), "{e}");
        let e = PushSettings::from_env_with(&env(&[("LARDER_DEAD_LETTER", "sqs:queue")])).unwrap_err();
        assert!(e.to_string().starts_with("LARDER_DEAD_LETTER"), "{e}");
        let e = PushSettings::from_env_with(&env(&[("LARDER_KAFKA_PARTIAL_BATCH", "maybe")])).unwrap_err();
        assert!(e.to_string().contains("maybe"), "{e}");
    }

    #[test]
    fn dead_letter_targets() {
        assert_eq!(
            DeadLetterTarget::parse("s3://bucket/dlq").unwrap(),
            DeadLetterTarget::S3 { bucket: "bucket".into(), prefix: "dlq/".into() }
        );
        assert_eq!(
            DeadLetterTarget::parse("s3://bucket").unwrap(),
            DeadLetterTarget::S3 { bucket: "bucket".into(), prefix: String::new() }
        );
        assert_eq!(
            DeadLetterTarget::parse("https://sqs.us-east-1.amazonaws.com/1/q").unwrap(),
            DeadLetterTarget::Sqs { queue_url: "https://sqs.us-east-1.amazonaws.com/1/q".into() }
        );
    }
}
