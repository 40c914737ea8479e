//! A batch of stream records (a Kinesis batch, a Kafka batch), with nothing lost and nothing
//! stuck:
//!
//! 1. Every record is parsed and converted on its own (its own tracing span). One that can
//!    never succeed (bad JSON, unknown source or view, missing column, wrong type) is *poison*.
//!    A record naming an unknown source or view first gets one registry reload per batch, in
//!    case it was just applied.
//! 2. The good records of each *lane* (records that must apply in order: a Kinesis shard's
//!    batch, a Kafka partition) are written in order, in chunks of about [`CHUNK_ROWS`] rows,
//!    one store write per view per chunk. The first chunk that fails (Redis down: the store
//!    is the problem, not the record) fails its lane from the chunk's first record on.
//! 3. Poison records before that point go to the dead-letter destination with their position
//!    and reason. If the destination fails, the lane fails from the first letter not kept.
//!
//! Everything from a lane's failure point on is reported for retry ([`BatchOutcome::lanes`]);
//! replaying records that were in fact written is harmless (the store keeps the newest event
//! and an equal time keeps the stored row). With [`OnFailure::RetryWholeBatch`] (Kafka without
//! partial batch responses), poison records are only dead-lettered when the rest of the batch
//! succeeded, so the retry does not dead-letter them twice.

use std::sync::Arc;

use futures::future::join_all;

use super::dead_letter::{DeadLetter, DeadLetterSink, Position};
use super::request::parse_record;
use super::{Prepared, PushSettings, PushStats, WriteOptions, prepare, refresh_registry, write};
use crate::error::{Error, ObjectKind};
use crate::online::OnlineStore;
use crate::registry::RegistryCache;

/// Rows per chunk: one store write per view per chunk. A failed write fails its chunk's records
/// and every later record of the lane, so this bounds what a retry repeats.
pub const CHUNK_ROWS: usize = 2_000;

/// One record: its bytes and where it came from.
#[derive(Debug, Clone)]
pub struct StreamRecord {
    pub position: Position,
    pub data: Vec<u8>,
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

/// A record after step 1.
enum Converted {
    Good(Prepared),
    Poison(Error),
}

fn is_unknown_target(e: &Error) -> bool {
    matches!(e, Error::NotFound { kind: ObjectKind::PushSource | ObjectKind::FeatureView, .. })
}

impl Processor<'_> {
    pub async fn process(&self, lanes: &[Lane], on_failure: OnFailure) -> BatchOutcome {
        let records: usize = lanes.iter().map(|l| l.records.len()).sum();
        let mut converted = self.convert(lanes).await;

        // 2. Good records, lane by lane in order; lanes concurrently.
        let writes = join_all(converted.iter_mut().map(|lane| self.write_lane(lane))).await;
        let mut outcome = BatchOutcome { records, ..Default::default() };
        for (failed_from, stats, error) in writes {
            outcome.lanes.push(LaneOutcome { failed_from });
            outcome.stats += stats;
            if outcome.error.is_none() {
                outcome.error = error;
            }
        }

        // 3. Poison records before each lane's failure point.
        let mut letters = Vec::new();
        let mut owners = Vec::new();
        let any_failed = outcome.lanes.iter().any(|l| l.failed_from.is_some());
        if !(on_failure == OnFailure::RetryWholeBatch && any_failed) {
            for (l, (lane, conv)) in lanes.iter().zip(&converted).enumerate() {
                let end = outcome.lanes[l].failed_from.unwrap_or(lane.records.len());
                for (i, (record, c)) in lane.records.iter().zip(conv).enumerate().take(end) {
                    if let Converted::Poison(e) = c {
                        letters.push(DeadLetter::new(record.position.clone(), e, record.data.clone()));
                        owners.push((l, i));
                    }
                }
            }
        }
        if !letters.is_empty() {
            match self.dead_letters.send(&letters).await {
                Ok(()) => outcome.dead_lettered = letters.len(),
                Err(failure) => {
                    tracing::error!(
                        destination = %self.dead_letters.describe(),
                        kept = failure.kept,
                        of = letters.len(),
                        error = %failure.error,
                        "dead-letter destination failed; the records from the first one not kept will be retried"
                    );
                    outcome.dead_lettered = failure.kept;
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

    /// Step 1: parse and convert every record, each in its own span.
    async fn convert(&self, lanes: &[Lane]) -> Vec<Vec<Converted>> {
        let registry = self.registry.get();
        let mut pushes: Vec<Vec<Option<super::Push>>> = Vec::with_capacity(lanes.len());
        let mut out: Vec<Vec<Converted>> = Vec::with_capacity(lanes.len());
        for lane in lanes {
            let origin = format!("stream or topic '{}'", super::settings::stream_name(&lane.stream));
            let default = self.settings.source_for(&lane.stream);
            let mut lane_pushes = Vec::with_capacity(lane.records.len());
            let mut lane_out = Vec::with_capacity(lane.records.len());
            for record in &lane.records {
                let span = tracing::debug_span!("record", position = %record.position, bytes = record.data.len());
                let _entered = span.enter();
                let (push, converted) = match parse_record(&record.data, default, &origin) {
                    Ok(push) => {
                        let c = match prepare(&registry, &push) {
                            Ok(p) => Converted::Good(p),
                            Err(e) => Converted::Poison(e),
                        };
                        (Some(push), c)
                    }
                    Err(e) => (None, Converted::Poison(e)),
                };
                lane_pushes.push(push);
                lane_out.push(converted);
            }
            pushes.push(lane_pushes);
            out.push(lane_out);
        }
        // Records that asked for the newest registry (`allow_registry_cache: false`), or that
        // name a source or view applied after this process loaded it: reload once, and convert
        // those records again if it changed.
        let needs_newer = |push: &Option<super::Push>, c: &Converted| {
            push.as_ref().is_some_and(|p| p.fresh_registry) || matches!(c, Converted::Poison(e) if is_unknown_target(e))
        };
        let any = pushes.iter().zip(&out).any(|(p, c)| p.iter().zip(c).any(|(p, c)| needs_newer(p, c)));
        if any && refresh_registry(self.registry).await {
            let registry = self.registry.get();
            for (lane_pushes, lane_out) in pushes.iter().zip(out.iter_mut()) {
                for (push, c) in lane_pushes.iter().zip(lane_out.iter_mut()) {
                    if let (true, Some(push)) = (needs_newer(push, c), push) {
                        *c = match prepare(&registry, push) {
                            Ok(p) => Converted::Good(p),
                            Err(e) => Converted::Poison(e),
                        };
                    }
                }
            }
        }
        for (lane, lane_out) in lanes.iter().zip(&out) {
            for (record, c) in lane.records.iter().zip(lane_out) {
                if let Converted::Poison(e) = c {
                    let span = tracing::warn_span!("record", position = %record.position, bytes = record.data.len());
                    let _entered = span.enter();
                    tracing::warn!(code = e.code(), reason = %e, "poison record");
                }
            }
        }
        out
    }

    /// Step 2 for one lane: returns the first record to retry, the stats and the error.
    async fn write_lane(&self, lane: &mut [Converted]) -> (Option<usize>, PushStats, Option<Error>) {
        let mut stats = PushStats::default();
        let mut start = 0;
        while start < lane.len() {
            let mut chunk = Prepared::default();
            let mut rows = 0;
            let mut end = start;
            while end < lane.len() && rows < CHUNK_ROWS {
                if let Converted::Good(p) = &mut lane[end] {
                    let p = std::mem::take(p);
                    rows += p.rows();
                    chunk.merge(p);
                }
                end += 1;
            }
            if rows > 0 {
                match write(self.store, chunk, self.options).await {
                    Ok(s) => stats += s,
                    Err(e) => {
                        tracing::warn!(
                            first_record = start,
                            records = lane.len() - start,
                            error = %e,
                            "online store write failed; these records will be retried"
                        );
                        // A store failure is never the record's fault: retry, never dead-letter.
                        let e = if e.is_transient() {
                            e
                        } else {
                            Error::Unavailable(format!("online store write failed: {e}"))
                        };
                        return (Some(start), stats, Some(e));
                    }
                }
            }
            start = end;
        }
        (None, stats, None)
    }
}
