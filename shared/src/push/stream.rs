//! A batch of stream records (a Kinesis batch, a Kafka batch), with nothing lost and nothing
//! stuck:
//!
//! 1. Every record is parsed and converted on its own (its own tracing span). One that can
//!    never succeed (bad JSON, unknown source or view, missing column, wrong type) is *poison*.
//!    A record naming an unknown source or view first gets one registry reload per batch, in
//!    case it was just applied.
//! 2. The good records of each *lane* (records that must apply in order: a Kinesis shard's
//!    batch, a Kafka partition) are reduced to the newest row per view and key (what applying
//!    them in order leaves), then written in chunks of about [`CHUNK_ROWS`] converted rows,
//!    one store call per chunk, a few chunks in flight. The first chunk that fails (Redis
//!    down: the store is the problem, not the record) fails its lane from the chunk's first
//!    record on.
//! 3. Poison records before that point go to the dead-letter destination with their position
//!    and reason. If the destination fails, the lane fails from the first letter not kept.
//!
//! Everything from a lane's failure point on is reported for retry ([`BatchOutcome::lanes`]);
//! replaying records that were in fact written is harmless (the store keeps the newest event
//! and an equal time keeps the stored row). With [`OnFailure::RetryWholeBatch`] (Kafka without
//! partial batch responses), poison records are only dead-lettered when the rest of the batch
//! succeeded, so the retry does not dead-letter them twice.

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt;
use futures::future::join_all;

use super::dead_letter::{DeadLetter, DeadLetterSink, Position};
use super::request::parse_record;
use super::{
    LateEvent, Prepared, PushSettings, PushStats, WriteOptions, aggregate, prepare, refresh_registry,
    write_and_aggregate,
};
use crate::error::{Error, ObjectKind};
use crate::online::OnlineStore;
use crate::registry::{Registry, RegistryCache};
use crate::telemetry;
use crate::time::EventTime;

/// Rows per chunk: one store write per view per chunk. A failed write fails its chunk's records
/// and every later record of the lane, so this bounds what a retry repeats. Small, so that
/// Redis starts after the first few hundred records and has little left once the last one
/// is converted: 500 rows with 6 in flight took a 10,000-record batch end to end in 0.71-0.97
/// of the time 2,000 with 3 did (push-bench, alternated, 2026-12-04).
pub const CHUNK_ROWS: usize = 500;

/// Chunks of a lane in flight at once: Redis runs one chunk's scripts while the next is
/// converted, encoded and sent, instead of waiting for each chunk's answers.
pub const CHUNKS_IN_FLIGHT: usize = 6;

/// Records converted between two yields to the runtime while chunks are in flight.
const YIELD_EVERY: usize = 64;

/// One record: its bytes and where it came from.
#[derive(Debug, Clone)]
pub struct StreamRecord {
    pub position: Position,
    pub data: Vec<u8>,
    /// Why the record's bytes could not be taken out of the event (a Kinesis `data` or Kafka
    /// `value` that is not base64): then `data` is the text as it came, and the record is
    /// poison, dead-lettered with this reason, while the rest of the batch is written.
    pub encoding_error: Option<String>,
}

impl StreamRecord {
    pub fn new(position: Position, data: Vec<u8>) -> StreamRecord {
        StreamRecord { position, data, encoding_error: None }
    }

    /// A record whose payload was not valid base64: `text` as it came, and why.
    pub fn undecodable(position: Position, text: String, reason: String) -> StreamRecord {
        StreamRecord { position, data: text.into_bytes(), encoding_error: Some(reason) }
    }
}

/// Records that must be applied in order.
#[derive(Debug, Clone)]
pub struct Lane {
    /// The stream (Kinesis stream ARN or name) or Kafka topic: picks the default push source.
    pub stream: String,
    pub records: Vec<StreamRecord>,
}

/// How the event source retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// It retries each lane from the first record reported (Kinesis `batchItemFailures`).
    RetryFromFirstFailure,
    /// It retries the whole batch.
    RetryWholeBatch,
}

/// What happened to one lane.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LaneOutcome {
    /// The index of the first record to retry; every later record must be retried too.
    pub failed_from: Option<usize>,
}

#[derive(Debug, Default)]
pub struct BatchOutcome {
    /// Parallel to the lanes given.
    pub lanes: Vec<LaneOutcome>,
    pub records: usize,
    pub stats: PushStats,
    pub dead_lettered: usize,
    /// The first failure that needs a retry.
    pub error: Option<Error>,
}

impl BatchOutcome {
    pub fn succeeded(&self) -> bool {
        self.error.is_none()
    }
}

/// What a batch is processed with, all built once per process.
pub struct Processor<'a> {
    pub registry: &'a Arc<RegistryCache>,
    pub store: &'a dyn OnlineStore,
    pub settings: &'a PushSettings,
    pub options: WriteOptions,
    pub dead_letters: &'a dyn DeadLetterSink,
}

fn is_unknown_target(e: &Error) -> bool {
    matches!(e, Error::NotFound { kind: ObjectKind::PushSource | ObjectKind::FeatureView, .. })
}

/// What happened to one lane: its poison records (index and reason, up to the failure point),
/// the first record to retry, the stats and the error.
#[derive(Default)]
struct LaneRun {
    /// Records that can never succeed, and records with late events (dead-lettered alike).
    poison: Vec<(usize, Error)>,
    failed_from: Option<usize>,
    stats: PushStats,
    error: Option<Error>,
}

/// Dead letters sent, counted by reason (the error code).
fn count_dead_letters(letters: &[DeadLetter]) {
    let mut by_code: Vec<(&'static str, u64)> = Vec::new();
    for l in letters {
        match by_code.iter_mut().find(|(c, _)| *c == l.code) {
            Some((_, n)) => *n += 1,
            None => by_code.push((l.code, 1)),
        }
    }
    for (code, n) in by_code {
        telemetry::dead_letters(code, n);
    }
}

impl Processor<'_> {
    pub async fn process(&self, lanes: &[Lane], on_failure: OnFailure) -> BatchOutcome {
        let records: usize = lanes.iter().map(|l| l.records.len()).sum();
        // Steps 1 and 2, lane by lane in order; lanes concurrently. At most one registry reload
        // per batch, shared by the lanes.
        let reloaded = tokio::sync::OnceCell::new();
        let mut runs = join_all(lanes.iter().map(|lane| self.run_lane(lane, &reloaded))).await;
        let mut outcome = BatchOutcome { records, ..Default::default() };
        for run in &mut runs {
            outcome.lanes.push(LaneOutcome { failed_from: run.failed_from });
            outcome.stats += run.stats;
            if outcome.error.is_none() {
                outcome.error = run.error.take();
            }
        }

        // 3. Poison records before each lane's failure point.
        let mut letters = Vec::new();
        let mut owners = Vec::new();
        let any_failed = outcome.lanes.iter().any(|l| l.failed_from.is_some());
        if !(on_failure == OnFailure::RetryWholeBatch && any_failed) {
            for (l, (lane, run)) in lanes.iter().zip(&runs).enumerate() {
                for (i, e) in &run.poison {
                    letters.push(DeadLetter::new(lane.records[*i].position.clone(), e, lane.records[*i].data.clone()));
                    owners.push((l, *i));
                }
            }
        }
        if !letters.is_empty() {
            match self.dead_letters.send(&letters).await {
                Ok(()) => {
                    outcome.dead_lettered = letters.len();
                    count_dead_letters(&letters);
                }
                Err(failure) => {
                    tracing::error!(
                        destination = %self.dead_letters.describe(),
                        kept = failure.kept,
                        of = letters.len(),
                        error = %failure.error,
                        "dead-letter destination failed; the records from the first one not kept will be retried"
                    );
                    outcome.dead_lettered = failure.kept;
                    count_dead_letters(&letters[..failure.kept]);
                    for &(l, i) in &owners[failure.kept..] {
                        let f = &mut outcome.lanes[l].failed_from;
                        *f = Some(f.map_or(i, |f| f.min(i)));
                    }
                    if outcome.error.is_none() {
                        outcome.error = Some(failure.error);
                    }
                }
            }
        }
        let retried: usize =
            outcome.lanes.iter().zip(lanes).map(|(o, lane)| o.failed_from.map_or(0, |f| lane.records.len() - f)).sum();
        tracing::info!(
            records,
            rows = outcome.stats.rows,
            written = outcome.stats.written,
            skipped = outcome.stats.skipped,
            dead_lettered = outcome.dead_lettered,
            retried,
            "batch processed"
        );
        outcome
    }

    /// Converts one record. A record that names a source or view this process does not know,
    /// or that asks for the newest registry (`allow_registry_cache: false`), gets the batch's
    /// one registry reload first (in case it was just applied); `registry` is then the new one.
    async fn convert(
        &self,
        record: &StreamRecord,
        default: Option<&str>,
        origin: &str,
        registry: &mut Arc<Registry>,
        reloaded: &tokio::sync::OnceCell<bool>,
    ) -> Result<Prepared, Error> {
        if let Some(reason) = &record.encoding_error {
            return Err(Error::BadRequest(reason.clone()));
        }
        let span = tracing::debug_span!("record", position = %record.position, bytes = record.data.len());
        let push = span.in_scope(|| parse_record(&record.data, default, origin))?;
        let mut converted = span.in_scope(|| prepare(registry, &push));
        let needs_newer = push.fresh_registry || matches!(&converted, Err(e) if is_unknown_target(e));
        if needs_newer && *reloaded.get_or_init(|| refresh_registry(self.registry)).await {
            let newest = self.registry.get();
            if !Arc::ptr_eq(&newest, registry) {
                *registry = newest;
                converted = span.in_scope(|| prepare(registry, &push));
            }
        }
        converted
    }

    /// Steps 1 and 2 for one lane, streamed: records are converted in order into chunks of
    /// about [`CHUNK_ROWS`] rows, and each chunk is sent as soon as it is complete, with up to
    /// [`CHUNKS_IN_FLIGHT`] in flight, so Redis runs one chunk while the next is converted.
    ///
    /// Chunks in flight together may land in any order. That is safe because a row is only
    /// sent if its event time is strictly later than every earlier row of the lane for its view
    /// and key ([`Newest`]): it would win in Redis whatever landed before it, and a row that
    /// would lose (older, or a tie, which the earlier record wins) is dropped here instead.
    /// The failure point stays exact: the first chunk (in lane order) that failed, and every
    /// record after it, is retried; a row dropped for an earlier record lost to a row that was
    /// written or is retried with it.
    ///
    /// Window aggregation events are gathered over the whole lane and applied once its rows
    /// are written (or, after a failed chunk, those of the records before it): one script call
    /// per key then applies all of the lane's events for it, mostly as one run, instead of one
    /// call per chunk with an event or two per key. In stream order, as exactly-once needs.
    /// An aggregating view's rows travel with its events (the same call writes the entity
    /// hash's row, final values and `_ts`), so they are written then too.
    async fn run_lane(&self, lane: &Lane, reloaded: &tokio::sync::OnceCell<bool>) -> LaneRun {
        let mut run = LaneRun::default();
        let mut registry = self.registry.get();
        let origin = format!("stream or topic '{}'", super::settings::stream_name(&lane.stream));
        let default = self.settings.source_for(&lane.stream, &registry).map(str::to_string);
        let mut newest = Newest::default();
        // The lane's aggregation events, in record order (applied at the end).
        let mut events = Prepared::default();
        let mut in_flight = futures::stream::FuturesOrdered::new();
        let (mut chunk, mut chunk_start, mut chunk_rows) = (Prepared::default(), 0, 0);
        let last = lane.records.len().saturating_sub(1);
        for (i, record) in lane.records.iter().enumerate() {
            // On a one-thread runtime the Redis connection only sends and receives while this
            // task waits: let it move the chunks in flight along every few records, or Redis
            // sits idle once it has run what the socket buffer held.
            if i % YIELD_EVERY == YIELD_EVERY - 1 && !in_flight.is_empty() {
                tokio::task::yield_now().await;
            }
            match self.convert(record, default.as_deref(), &origin, &mut registry, reloaded).await {
                Ok(mut prepared) => {
                    let lane_position = lane_of(&record.position);
                    for v in &mut prepared.events {
                        for e in &mut v.events {
                            e.record = i;
                            e.origin = lane_position.as_ref().and_then(|(lane, seq)| {
                                Some((Arc::clone(lane), crate::aggregate::position(seq, e.row)?))
                            });
                        }
                    }
                    chunk_rows += prepared.rows();
                    let dropped = newest.keep_newer(&mut prepared);
                    run.stats.rows += dropped;
                    run.stats.skipped += dropped;
                    events.merge(Prepared { views: Vec::new(), events: std::mem::take(&mut prepared.events) });
                    chunk.merge(prepared);
                }
                Err(e) => {
                    let span = tracing::warn_span!("record", position = %record.position, bytes = record.data.len());
                    span.in_scope(|| tracing::warn!(code = e.code(), reason = %e, "poison record"));
                    run.poison.push((i, e));
                }
            }
            if chunk_rows < CHUNK_ROWS && i < last {
                continue;
            }
            if chunk.rows() > 0 {
                let rows = std::mem::take(&mut chunk);
                let first = chunk_start;
                in_flight.push_back(async move { (first, write_and_aggregate(self.store, rows, self.options).await) });
                // Start it now: the first poll encodes the chunk and queues it on the
                // connection, and yielding lets the connection send it while the next chunk
                // is converted.
                if let std::task::Poll::Ready(Some(done)) = futures::poll!(in_flight.next())
                    && self.settle(&mut run, lane, done)
                {
                    return self.aggregate_lane(run, lane, events).await;
                }
                tokio::task::yield_now().await;
            }
            (chunk_start, chunk_rows) = (i + 1, 0);
            while in_flight.len() >= CHUNKS_IN_FLIGHT {
                let done = in_flight.next().await.expect("a chunk is in flight");
                if self.settle(&mut run, lane, done) {
                    return self.aggregate_lane(run, lane, events).await;
                }
            }
        }
        while let Some(done) = in_flight.next().await {
            if self.settle(&mut run, lane, done) {
                return self.aggregate_lane(run, lane, events).await;
            }
        }
        self.aggregate_lane(run, lane, events).await
    }

    /// Applies the lane's aggregation events of the records before the failure point (all of
    /// them when nothing failed). If that fails, the lane is failed from the first record with
    /// an event: a retry applies what is missing, and the lane positions make whatever was
    /// applied already count once.
    async fn aggregate_lane(&self, mut run: LaneRun, lane: &Lane, mut events: Prepared) -> LaneRun {
        let until = run.failed_from.unwrap_or(usize::MAX);
        for v in &mut events.events {
            v.events.retain(|e| e.record < until);
        }
        events.events.retain(|v| !v.events.is_empty());
        if events.events.is_empty() {
            return run;
        }
        // Before any failure point (the events were cut there), so the lane retries from here.
        let first = events.events.iter().flat_map(|v| v.events.iter().map(|e| e.record)).min().unwrap_or(0);
        let result = aggregate(self.store, &events.events, self.options.key_ttl_seconds).await.map(|(a, late)| {
            let stats = PushStats {
                rows: a.rows,
                written: a.rows_written,
                skipped: a.rows - a.rows_written,
                aggregated: a.applied,
                duplicates: a.duplicates,
                late: late.len(),
            };
            (stats, late)
        });
        if let Err(e) = &result
            && run.failed_from.is_some()
        {
            // Already failing: the earlier failure stands, retried from the earlier record.
            tracing::warn!(error = %e, "window aggregation of the records before the failure failed too");
        }
        self.settle(&mut run, lane, (first, result));
        run
    }

    /// Takes a chunk's result; on failure, marks the lane failed from the chunk's first record
    /// (its poison records from there on are retried, not dead-lettered) and returns true.
    fn settle(
        &self,
        run: &mut LaneRun,
        lane: &Lane,
        (first, result): (usize, crate::Result<(PushStats, Vec<LateEvent>)>),
    ) -> bool {
        match result {
            Ok((s, late)) => {
                run.stats += s;
                for l in late {
                    if !run.poison.iter().any(|(i, _)| *i == l.record) {
                        run.poison.push((l.record, l.error()));
                    }
                }
                false
            }
            Err(e) => {
                tracing::warn!(
                    first_record = first,
                    records = lane.records.len() - first,
                    error = %e,
                    "online store write failed; these records will be retried"
                );
                // A store failure is never the record's fault: retry, never dead-letter.
                let e =
                    if e.is_transient() { e } else { Error::unavailable(format!("online store write failed: {e}")) };
                run.poison.retain(|(i, _)| *i < first);
                run.failed_from = Some(first);
                run.error = Some(e);
                true
            }
        }
    }
}

/// The lane (`kinesis:<stream>:<shard>`, `kafka:<topic>-<partition>`) and the sequence number
/// or offset of a record, for exactly-once aggregation; `None` for a record without one (a
/// line of a file), which is applied at least once.
fn lane_of(position: &Position) -> Option<(Arc<str>, String)> {
    match position {
        Position::Kinesis { stream, shard_id, sequence_number, .. } => {
            let name = super::settings::stream_name(stream);
            let lane = format!("kinesis:{name}:{}", shard_id.as_deref().unwrap_or(""));
            Some((Arc::from(lane), sequence_number.clone()))
        }
        Position::Kafka { topic, partition, offset, .. } => {
            Some((Arc::from(format!("kafka:{topic}-{partition}")), u64::try_from(*offset).ok()?.to_string()))
        }
        Position::File { .. } => None,
    }
}

/// The newest event time sent so far per view and key of a lane.
#[derive(Default)]
struct Newest(HashMap<String, HashMap<Vec<u8>, EventTime>>);

impl Newest {
    /// Drops the rows of `prepared` whose event time is not strictly later than an earlier
    /// row's for the same view and key (they lose whatever order chunks land in: an older
    /// event, or a tie, which the earlier record wins), and remembers the rest. Returns how
    /// many rows were dropped.
    fn keep_newer(&mut self, prepared: &mut Prepared) -> usize {
        let mut dropped = 0;
        for (view, rows) in &mut prepared.views {
            if !self.0.contains_key(&view.name) {
                self.0.insert(view.name.clone(), HashMap::new());
            }
            let seen = self.0.get_mut(&view.name).expect("inserted above");
            rows.retain(|row| {
                let keep = match seen.get_mut(row.key.as_slice()) {
                    Some(t) if row.event_time <= *t => false,
                    Some(t) => {
                        *t = row.event_time;
                        true
                    }
                    None => {
                        seen.insert(row.key.clone(), row.event_time);
                        true
                    }
                };
                dropped += usize::from(!keep);
                keep
            });
        }
        dropped
    }
}
