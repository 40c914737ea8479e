//! The push function: Kinesis, Kafka (MSK and self-managed) and API Gateway events, all
//! handled by `larder::push`. This crate only adapts events and responses.
//!
//! - Kinesis: the batch is one lane, applied in order; the answer is `batchItemFailures` with
//!   the sequence number of the first record to retry and of every later one (the event source
//!   mapping needs `FunctionResponseTypes: [ReportBatchItemFailures]`).
//! - Kafka: one lane per topic-partition. By default a transient failure fails the invocation
//!   and the event source mapping retries the whole batch (safe with any mapping; replays are
//!   harmless and poison records are dead-lettered only once the batch succeeds). With
//!   `LARDER_KAFKA_PARTIAL_BATCH=true` (a provisioned-mode mapping with
//!   `ReportBatchItemFailures`), the answer names, per failed topic-partition, the offset to
//!   resume from.
//! - API Gateway (HTTP API 2.0, REST/1.0) and direct invocations: the push routes of Larder's
//!   router (`larder_apigw` adapts the events), so the answer is byte for byte what
//!   `larder serve` gives.

pub mod event;
pub mod http;

use std::sync::Arc;

use aws_lambda_events::kafka::KafkaEvent;
use aws_lambda_events::streams::KinesisEventResponse;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use lambda_runtime::{Error, LambdaEvent};
use larder::api::{Health, PushRoutes, Router, Services};
use larder::aws::Aws;
use larder::push::dead_letter::{DeadLetterSink, Position};
use larder::push::stream::{BatchOutcome, Lane, OnFailure, Processor, StreamRecord};
use larder::push::{PushSettings, WriteOptions};
use larder::telemetry;
use serde_json::value::RawValue;
use serde_json::{Value as Json, json};
use tracing::Instrument;

pub use event::{Event, KinesisBatch};

/// What every invocation uses, built once per process.
pub struct App {
    /// `GET /health`, `POST /push` and `POST /write-to-online-store`, over the services.
    pub router: Router,
    pub settings: PushSettings,
    pub dead_letters: Arc<dyn DeadLetterSink>,
}

impl App {
    /// The push function over `services`; `aws` gives `?mode=async` its Kinesis client.
    pub fn new(services: Services, settings: PushSettings, aws: &Aws, dead_letters: Arc<dyn DeadLetterSink>) -> App {
        let router = Router::new(services).with(Health).with(PushRoutes::new(&settings, aws));
        App { router, settings, dead_letters }
    }

    pub fn services(&self) -> &Services {
        self.router.services()
    }

    /// The Lambda handler.
    pub async fn handle(&self, event: LambdaEvent<Box<RawValue>>) -> Result<Json, Error> {
        let parsed = event::parse(event.payload.get()).map_err(|e| {
            tracing::error!(error = %e, "cannot handle this event");
            Error::from(e)
        })?;
        self.handle_event(parsed).await
    }

    pub async fn handle_event(&self, event: Event) -> Result<Json, Error> {
        match event {
            Event::Kinesis(e) => Ok(self.kinesis(e).await),
            Event::Kafka(e) => self.kafka(e).await,
            Event::Http(e) => Ok(serde_json::to_value(larder_apigw::answer(&self.router, e).await)?),
            Event::Direct { write, body } => Ok(http::direct(&self.router, write, body.as_bytes()).await),
        }
    }

    fn processor(&self) -> Processor<'_> {
        let services = self.services();
        Processor {
            registry: &services.registry,
            store: services.store.as_ref(),
            settings: &self.settings,
            options: WriteOptions::from_config(&services.config),
            dead_letters: self.dead_letters.as_ref(),
        }
    }

    /// A Kinesis batch (one shard): `{"batchItemFailures": [{"itemIdentifier": seq}, ...]}`.
    pub async fn kinesis(&self, event: KinesisBatch) -> Json {
        let stream = event.records.first().and_then(|r| r.event_source_arn.clone()).unwrap_or_default();
        let shard = event.records.first().and_then(|r| r.event_id.as_deref()).and_then(|id| id.split_once(':'));
        let span = tracing::info_span!(
            "batch",
            trigger = "kinesis",
            stream = %larder::push::settings::stream_name(&stream),
            shard = shard.map_or("", |(s, _)| s)
        );
        // How long the oldest record waited in the stream: the stream's lag as this function
        // sees it (Kinesis' own IteratorAge, per batch).
        if let Some(oldest) =
            event.records.iter().filter_map(|r| r.kinesis.approximate_arrival_timestamp).min_by(f64::total_cmp)
        {
            let age = now_millis() as f64 / 1000.0 - oldest;
            telemetry::stream_batch_age("kinesis", age.max(0.0));
        }
        self.kinesis_batch(event, stream).instrument(span).await
    }

    async fn kinesis_batch(&self, event: KinesisBatch, stream: String) -> Json {
        let mut sequence_numbers = Vec::with_capacity(event.records.len());
        let records = event
            .records
            .into_iter()
            .map(|r| {
                sequence_numbers.push(r.kinesis.sequence_number.clone());
                let shard_id =
                    r.event_id.as_deref().and_then(|id| id.split_once(':')).map(|(shard, _)| shard.to_string());
                let position = Position::Kinesis {
                    stream: r.event_source_arn.unwrap_or_default(),
                    shard_id,
                    sequence_number: r.kinesis.sequence_number,
                    partition_key: r.kinesis.partition_key,
                };
                match B64.decode(&r.kinesis.data) {
                    Ok(data) => StreamRecord::new(position, data),
                    Err(e) => StreamRecord::undecodable(
                        position,
                        r.kinesis.data,
                        format!("the record's Kinesis data is not base64 ({e}); Lambda delivers base64 data"),
                    ),
                }
            })
            .collect();
        let lane = Lane { stream, records };
        let outcome = self.processor().process(std::slice::from_ref(&lane), OnFailure::RetryFromFirstFailure).await;
        record_batch("kinesis", &outcome);
        let mut answer = KinesisEventResponse::default();
        if let Some(from) = outcome.lanes.first().and_then(|l| l.failed_from) {
            answer.set_failures(sequence_numbers.drain(from..));
        }
        serde_json::to_value(answer).unwrap_or_else(|_| json!({ "batchItemFailures": [] }))
    }

    /// A Kafka batch: one lane per topic-partition.
    pub async fn kafka(&self, event: KafkaEvent) -> Result<Json, Error> {
        let mut partitions: Vec<(String, Vec<aws_lambda_events::kafka::KafkaRecord>)> =
            event.records.into_iter().collect();
        partitions.sort_by(|a, b| a.0.cmp(&b.0));
        let mut offsets: Vec<Vec<i64>> = Vec::with_capacity(partitions.len());
        let mut keys = Vec::with_capacity(partitions.len());
        let mut lanes = Vec::with_capacity(partitions.len());
        for (key, mut records) in partitions {
            records.sort_by_key(|r| r.offset);
            let topic = records
                .first()
                .and_then(|r| r.topic.clone())
                .unwrap_or_else(|| key.rsplit_once('-').map_or(key.clone(), |(t, _)| t.to_string()));
            offsets.push(records.iter().map(|r| r.offset).collect());
            let records = records
                .into_iter()
                .map(|r| {
                    let position =
                        Position::Kafka { topic: topic.clone(), partition: r.partition, offset: r.offset, key: r.key };
                    // Lambda delivers values base64-encoded; anything else is a poison record,
                    // dead-lettered as it came.
                    match r.value {
                        None => StreamRecord::new(position, Vec::new()),
                        Some(v) => match B64.decode(&v) {
                            Ok(data) => StreamRecord::new(position, data),
                            Err(e) => StreamRecord::undecodable(
                                position,
                                v,
                                format!("the record's Kafka value is not base64 ({e}); Lambda delivers base64 values"),
                            ),
                        },
                    }
                })
                .collect();
            keys.push(key);
            lanes.push(Lane { stream: topic, records });
        }
        let partial = self.settings.kafka_partial_batch;
        let on_failure = if partial { OnFailure::RetryFromFirstFailure } else { OnFailure::RetryWholeBatch };
        let span = tracing::info_span!(
            "batch",
            trigger = "kafka",
            topic = lanes.first().map_or("", |l| l.stream.as_str()),
            partitions = lanes.len()
        );
        let outcome = self.processor().process(&lanes, on_failure).instrument(span).await;
        record_batch("kafka", &outcome);
        let failed: Vec<(usize, usize)> =
            outcome.lanes.iter().enumerate().filter_map(|(l, o)| o.failed_from.map(|f| (l, f))).collect();
        if failed.is_empty() {
            return Ok(json!({ "batchItemFailures": [] }));
        }
        if partial {
            let failures: Vec<Json> = failed
                .iter()
                .map(|&(l, f)| json!({ "itemIdentifier": { "partition": keys[l], "offset": offsets[l][f] } }))
                .collect();
            return Ok(json!({ "batchItemFailures": failures }));
        }
        let (l, f) = failed[0];
        let reason = outcome.error.map(|e| e.to_string()).unwrap_or_default();
        Err(Error::from(format!(
            "{} of {} records must be retried (first: {} offset {}): {reason}; failing the invocation so the event source \
             mapping retries the batch (replays are harmless)",
            failed.iter().map(|&(l, f)| offsets[l].len() - f).sum::<usize>(),
            outcome.records,
            keys[l],
            offsets[l][f]
        )))
    }
}

/// A stream batch's counts (`larder_push_*_total{trigger}`).
fn record_batch(trigger: &'static str, outcome: &BatchOutcome) {
    let s = &outcome.stats;
    telemetry::push(trigger, outcome.records as u64, s.rows as u64, s.written as u64, s.skipped as u64);
}

/// Milliseconds since the Unix epoch, now.
fn now_millis() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests;
