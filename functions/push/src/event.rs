//! Which trigger invoked the function: one cheap pass over the payload looks at the top-level
//! keys only, then the payload is parsed once into the trigger's own type.

use std::borrow::Cow;

use aws_lambda_events::kafka::KafkaEvent;
use serde::Deserialize;
use serde::de::IgnoredAny;

use larder_apigw::HttpEvent;

/// An invocation of the push function.
#[derive(Debug)]
pub enum Event {
    /// A Kinesis event source mapping.
    Kinesis(KinesisBatch),
    /// An MSK (`aws:kafka`) or self-managed Kafka (`SelfManagedKafka`) event source mapping.
    Kafka(KafkaEvent),
    /// API Gateway (HTTP API, REST API) or a function URL.
    Http(HttpEvent),
    /// A direct invocation with a Feast push or write request as the payload.
    Direct { write: bool, body: String },
}

#[derive(Deserialize)]
struct Probe<'a> {
    #[serde(rename = "Records")]
    records: Option<IgnoredAny>,
    #[serde(rename = "eventSource", borrow)]
    event_source: Option<Cow<'a, str>>,
    #[serde(rename = "requestContext")]
    request_context: Option<IgnoredAny>,
    push_source_name: Option<IgnoredAny>,
    feature_view_name: Option<IgnoredAny>,
}

/// A Kinesis event, read leniently: a record's `data` stays text here, so one record that is
/// not base64 is a poison record of the batch (dead-lettered, the rest written) rather than an
/// event that fails to parse, which would retry the whole batch with it forever. Only the
/// fields Larder uses are read.
#[derive(Debug, Deserialize)]
pub struct KinesisBatch {
    #[serde(rename = "Records")]
    pub records: Vec<KinesisEventRecord>,
}

#[derive(Debug, Deserialize)]
pub struct KinesisEventRecord {
    /// `shardId-000000000000:4954...`: the shard, then the sequence number.
    #[serde(rename = "eventID", default)]
    pub event_id: Option<String>,
    #[serde(rename = "eventSourceARN", default)]
    pub event_source_arn: Option<String>,
    pub kinesis: KinesisPayload,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KinesisPayload {
    pub sequence_number: String,
    #[serde(default)]
    pub partition_key: String,
    /// Base64, as Lambda delivers it; decoded per record.
    pub data: String,
    /// Seconds since the epoch, with a fraction (`1733400000.123`).
    #[serde(default)]
    pub approximate_arrival_timestamp: Option<f64>,
}

/// Classifies and parses a payload. An error names what the payload looked like.
pub fn parse(payload: &str) -> Result<Event, String> {
    if let Some(kind) = larder::error::not_an_object(payload.as_bytes()) {
        return Err(format!(
            "the event is {kind}, not an object: the push function reads Kinesis, MSK and self-managed Kafka, \
             API Gateway events, and Feast push requests ({{\"push_source_name\", \"df\"}}) invoked directly"
        ));
    }
    let probe: Probe<'_> = serde_json::from_str(payload).map_err(|e| format!("the event is not a JSON object: {e}"))?;
    if probe.records.is_some() {
        return serde_json::from_str(payload).map(Event::Kinesis).map_err(|e| {
            format!("the event has Records but is not a Kinesis event ({e}); the push function reads Kinesis, Kafka and API Gateway events")
        });
    }
    if let Some(source) = probe.event_source.as_deref()
        && (source == "aws:kafka" || source == "SelfManagedKafka")
    {
        return serde_json::from_str(payload).map(Event::Kafka).map_err(|e| format!("not a valid {source} event: {e}"));
    }
    if probe.request_context.is_some() {
        return HttpEvent::parse(payload).map(Event::Http);
    }
    if probe.push_source_name.is_some() || probe.feature_view_name.is_some() {
        return Ok(Event::Direct { write: probe.push_source_name.is_none(), body: payload.to_string() });
    }
    Err("unrecognized event: the push function reads Kinesis, MSK and self-managed Kafka, API Gateway events, \
         and Feast push requests invoked directly"
        .into())
}
