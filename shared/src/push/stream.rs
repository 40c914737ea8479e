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

use std::sync::Arc;

use futures::StreamExt;
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

/// Chunks of a lane written at once: Redis runs one chunk's scripts while the next is encoded
/// and sent, instead of waiting for each chunk's answers before sending the next.
pub const CHUNKS_IN_FLIGHT: usize = 3;

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
    ///
    /// Rows are first reduced to one per view and key over the whole lane (the newest event,
    /// the earliest record on ties: what applying the records in order leaves), so chunks
    /// share no key and [`CHUNKS_IN_FLIGHT`] of them can be written at once in any order. The
    /// failure point is still exact: the first chunk (in lane order) that failed, and every
    /// record after it, is retried; a row dropped here in favour of a later record is covered
    /// by that record's retry, and one dropped for an earlier record was already written or
    /// is retried with it.
    async fn write_lane(&self, lane: &mut [Converted]) -> (Option<usize>, PushStats, Option<Error>) {
        // Chunk boundaries count rows as converted, so a retry repeats at most one chunk's
        // worth of records whatever the reduction drops.
        let mut bounds = Vec::new();
        let (mut start, mut rows) = (0, 0);
        for (i, c) in lane.iter().enumerate() {
            if let Converted::Good(p) = c {
                rows += p.rows();
            }
            if rows >= CHUNK_ROWS || i + 1 == lane.len() {
                bounds.push(start..i + 1);
                start = i + 1;
                rows = 0;
            }
        }
        let mut stats = PushStats::default();
        let superseded = keep_newest_per_key(lane);
        stats.rows += superseded;
        stats.skipped += superseded;

        let chunks = bounds.into_iter().filter_map(|range| {
            let mut chunk = Prepared::default();
            for c in &mut lane[range.clone()] {
                if let Converted::Good(p) = c {
                    chunk.merge(std::mem::take(p));
                }
            }
            (chunk.rows() > 0).then_some((range.start, chunk))
        });
        let chunks: Vec<(usize, Prepared)> = chunks.collect();
        let mut writes = futures::stream::iter(chunks)
            .map(|(first, chunk)| async move { (first, write(self.store, chunk, self.options).await) })
            .buffered(CHUNKS_IN_FLIGHT);
        while let Some((first, result)) = writes.next().await {
            match result {
                Ok(s) => stats += s,
                Err(e) => {
                    tracing::warn!(
                        first_record = first,
                        records = lane.len() - first,
                        error = %e,
                        "online store write failed; these records will be retried"
                    );
                    // A store failure is never the record's fault: retry, never dead-letter.
                    let e = if e.is_transient() {
                        e
                    } else {
                        Error::Unavailable(format!("online store write failed: {e}"))
                    };
                    return (Some(first), stats, Some(e));
                }
            }
        }
        (None, stats, None)
    }
}

/// Keeps, per view and key, only the lane's newest row (the earliest record's on ties) and
/// drops the others. Returns how many rows were dropped.
fn keep_newest_per_key(lane: &mut [Converted]) -> usize {
    use std::collections::HashMap;
    /// A row of the lane: (record, view entry of its `Prepared`, row).
    type RowId = (usize, usize, usize);
    let mut losers: Vec<RowId> = Vec::new();
    {
        let mut newest: HashMap<(&str, &[u8]), (RowId, crate::time::EventTime)> = HashMap::new();
        for (r, c) in lane.iter().enumerate() {
            let Converted::Good(p) = c else { continue };
            for (v, (view, rows)) in p.views.iter().enumerate() {
                for (i, row) in rows.iter().enumerate() {
                    match newest.entry((view.name.as_str(), row.key.as_slice())) {
                        std::collections::hash_map::Entry::Vacant(e) => {
                            e.insert(((r, v, i), row.event_time));
                        }
                        std::collections::hash_map::Entry::Occupied(mut e) => {
                            let best = e.get_mut();
                            if row.event_time > best.1 {
                                losers.push(best.0);
                                *best = ((r, v, i), row.event_time);
                            } else {
                                losers.push((r, v, i));
                            }
                        }
                    }
                }
            }
        }
    }
    if losers.is_empty() {
        return 0;
    }
    losers.sort_unstable();
    let dropped = losers.len();
    let mut losers = losers.into_iter().peekable();
    while let Some(&(r, v, _)) = losers.peek() {
        let Converted::Good(p) = &mut lane[r] else { unreachable!("losers are rows of good records") };
        let rows = &mut p.views[v].1;
        let mut i = 0;
        rows.retain(|_| {
            let lost = losers.next_if(|&(lr, lv, li)| (lr, lv, li) == (r, v, i)).is_some();
            i += 1;
            !lost
        });
    }
    dropped
}
