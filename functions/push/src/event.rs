//! Which trigger invoked the function: one cheap pass over the payload looks at the top-level
//! keys only, then the payload is parsed once into the trigger's own type.

use std::borrow::Cow;

use aws_lambda_events::kafka::KafkaEvent;
use aws_lambda_events::kinesis::KinesisEvent;
use serde::Deserialize;
use serde::de::IgnoredAny;

use larder_apigw::HttpEvent;

/// An invocation of the push function.
#[derive(Debug)]
pub enum Event {
    /// A Kinesis event source mapping.
    Kinesis(KinesisEvent),
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

/// Classifies and parses a payload. An error names what the payload looked like.
pub fn parse(payload: &str) -> Result<Event, String> {
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
