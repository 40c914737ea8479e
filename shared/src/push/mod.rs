//! Push: rows written to the online store as they happen, newest event wins.
//!
//! Feast's semantics (`docs/compatibility.md` §5.6): a push names a push source and carries a
//! column-oriented `df`; its rows are written to every feature view whose stream source is that
//! push source, each typed by that view's schema, keyed by its join keys, timed by its batch
//! source's `timestamp_field`. `write-to-online-store` writes one named view the same way.
//!
//! - [`frame`]: the rows of a push (`df` with pandas' broadcasting, or a flat row);
//! - [`request`]: the bodies and records a push arrives as, turned into a [`Push`];
//! - [`convert`]: a frame's rows for one view (field mapping, typing, keys, times);
//! - [`stream`]: a batch of stream records (Kinesis, Kafka) in order, poison records to the
//!   dead-letter destination, transient failures reported from the first affected record;
//! - [`dead_letter`]: where records that can never succeed go (SQS, S3, or the log);
//! - [`enqueue`]: `?mode=async`: a push put on a Kinesis stream, one record per entity;
//! - [`settings`]: the `LARDER_PUSH_*` / `LARDER_DEAD_LETTER` configuration.
//!
//! Writes are idempotent: replaying a push or a batch leaves the store as it was (the stored
//! event time wins ties), so every failure can be retried whole.

pub mod convert;
pub mod dead_letter;
pub mod enqueue;
pub mod frame;
pub mod request;
pub mod settings;
pub mod stream;

use std::collections::HashSet;
use std::sync::Arc;

pub use frame::Frame;
pub use request::{Destination, Push, PushRequest, PushTo, WriteRequest};
pub use settings::PushSettings;

use crate::aggregate::ViewWindows;
use crate::aggregate::tiles::{self, AggregateStats, Event, FeastLayout, FeastTarget, KeyOutcome};
use crate::error::{Error, Result};
pub use crate::online::WriteOptions;
use crate::online::{OnlineStore, ViewWrite, WriteRow};
use crate::registry::{FeatureView, Registry, RegistryCache};
use crate::telemetry;
use crate::time::EventTime;

/// A push converted for every view it writes: rows per view, in push order; and for views
/// with window aggregations, their events.
#[derive(Debug, Default)]
pub struct Prepared {
    pub views: Vec<(Arc<FeatureView>, Vec<WriteRow>)>,
    pub events: Vec<ViewEvents>,
}

/// A stream view's events for its window aggregations, in push order.
#[derive(Debug)]
pub struct ViewEvents {
    pub view: Arc<FeatureView>,
    pub windows: Arc<ViewWindows>,
    pub events: Vec<Event>,
}

impl Prepared {
    /// Rows to write, over all views (an aggregating view's travel with its events).
    pub fn rows(&self) -> usize {
        self.views.iter().map(|(_, r)| r.len()).sum::<usize>() + self.events()
    }

    /// Events to aggregate, over all views.
    pub fn events(&self) -> usize {
        self.events.iter().map(|e| e.events.len()).sum()
    }

    /// Appends another push's rows and events, keeping one entry per view (a batch of records
    /// becomes one write per view).
    pub fn merge(&mut self, other: Prepared) {
        for (view, rows) in other.views {
            match self.views.iter_mut().find(|(v, _)| Arc::ptr_eq(v, &view) || v.name == view.name) {
                Some((_, existing)) => existing.extend(rows),
                None => self.views.push((view, rows)),
            }
        }
        for e in other.events {
            match self.events.iter_mut().find(|x| Arc::ptr_eq(&x.view, &e.view) || x.view.name == e.view.name) {
                Some(existing) => existing.events.extend(e.events),
                None => self.events.push(e),
            }
        }
    }

    /// Adds `view`'s rows, and its events when it aggregates.
    fn add(
        &mut self,
        view: &Arc<FeatureView>,
        frame: &Frame,
        rows: Vec<WriteRow>,
        target: convert::Target<'_>,
    ) -> Result<()> {
        if let Some(windows) = ViewWindows::of(view).filter(ViewWindows::any) {
            let mut events = convert::events_for_view(view, &windows, frame, &rows, target)?;
            // An aggregating view's rows go with its events: the tile script writes the entity
            // hash's plain row, final values and `_ts` together (docs/aggregations.md).
            for (e, row) in events.iter_mut().zip(rows) {
                e.plain = row.values;
            }
            self.events.push(ViewEvents { view: Arc::clone(view), windows: Arc::new(windows), events });
            return Ok(());
        }
        self.views.push((Arc::clone(view), rows));
        Ok(())
    }
}

/// Converts a push for the views it writes. Fails on an unknown destination and on any cell
/// that does not fit, naming the view, column and row; nothing is written then.
pub fn prepare(registry: &Registry, push: &Push) -> Result<Prepared> {
    let mut prepared = Prepared::default();
    match &push.destination {
        Destination::Source(source) => {
            for view in registry.views_for_push_source(source)? {
                let target = convert::Target { push_source: Some(source), view: &view.name };
                if let Some(rows) = convert::rows_for_view(view, &push.frame, &registry.project, target)? {
                    prepared.add(view, &push.frame, rows, target)?;
                }
            }
        }
        Destination::View(name) => {
            let view = registry.view(name)?;
            let target = convert::Target { push_source: None, view: &view.name };
            if let Some(rows) = convert::rows_for_view(view, &push.frame, &registry.project, target)? {
                prepared.add(view, &push.frame, rows, target)?;
            }
        }
    }
    Ok(prepared)
}

/// What a push did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PushStats {
    /// Rows converted, over all views written.
    pub rows: usize,
    /// Rows written, and rows skipped because the store already held a newer (or equally new)
    /// event for their key.
    pub written: usize,
    pub skipped: usize,
    /// Events applied to window aggregations, skipped as already applied (a redelivery), and
    /// not applied for arriving later than the allowed lateness.
    pub aggregated: usize,
    pub duplicates: usize,
    pub late: usize,
}

impl std::ops::AddAssign for PushStats {
    fn add_assign(&mut self, o: PushStats) {
        self.rows += o.rows;
        self.written += o.written;
        self.skipped += o.skipped;
        self.aggregated += o.aggregated;
        self.duplicates += o.duplicates;
        self.late += o.late;
    }
}

/// Records whose events came later than a view's allowed lateness: not aggregated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LateEvent {
    /// The event's record (its number in the batch or lane).
    pub record: usize,
    pub view: String,
    pub lateness_us: i64,
}

impl LateEvent {
    /// The reason a late record is dead-lettered with.
    pub fn error(&self) -> Error {
        Error::Late(format!(
            "an event is more than the allowed lateness ({}s) behind the newest event of its entity in stream \
             feature view '{}': its window aggregations were not updated (set the view's tag '{}' to allow more)",
            self.lateness_us as f64 / 1e6,
            self.view,
            crate::aggregate::LATENESS_TAG
        ))
    }
}

/// Applies a push's events to their views' window aggregations, with their rows and final
/// values for the entity hashes (`key_ttl_seconds` renewed on write): each view's events
/// grouped into tile keys and runs, one store call per view (and one more for the keys the
/// store asks to have again one event per run). Returns the events applied and skipped as
/// duplicates, the rows written, and the late events.
pub async fn aggregate(
    store: &dyn OnlineStore,
    events: &[ViewEvents],
    key_ttl_seconds: Option<u64>,
) -> Result<(AggregateStats, Vec<LateEvent>)> {
    let mut total = AggregateStats::default();
    let mut late = Vec::new();
    for v in events {
        let mut view_stats =
            AggregateStats { rows: v.events.iter().filter(|e| !e.plain.is_empty()).count(), ..Default::default() };
        let target =
            FeastTarget { layout: Arc::new(FeastLayout::of(&v.view, &v.windows)), ttl_seconds: key_ttl_seconds };
        let refs: Vec<&Event> = v.events.iter().collect();
        let writes = tiles::build_with(&v.view.name, &v.windows, &refs, false, Some(&target));
        let outcomes = store.aggregate(&writes).await?;
        let mut redo: HashSet<&[u8]> = HashSet::new();
        for (w, outcome) in writes.iter().zip(&outcomes) {
            match outcome {
                KeyOutcome::Done { runs, row_written } => {
                    view_stats += tiles::count(w, runs);
                    view_stats.rows_written += usize::from(*row_written);
                }
                KeyOutcome::Redo => {
                    redo.insert(w.key.as_slice());
                }
            }
        }
        if !redo.is_empty() {
            let again: Vec<&Event> =
                refs.into_iter().filter(|e| redo.contains(tiles::tile_key_of(&v.view.name, e).as_slice())).collect();
            let writes = tiles::build_with(&v.view.name, &v.windows, &again, true, Some(&target));
            for (w, outcome) in writes.iter().zip(store.aggregate(&writes).await?) {
                match outcome {
                    KeyOutcome::Done { runs, row_written } => {
                        view_stats += tiles::count(w, &runs);
                        view_stats.rows_written += usize::from(row_written);
                    }
                    KeyOutcome::Redo => {
                        return Err(Error::internal("the online store could not decide a run of a single event"));
                    }
                }
            }
        }
        late.extend(view_stats.late.drain(..).map(|record| LateEvent {
            record,
            view: v.view.name.clone(),
            lateness_us: v.windows.lateness_us,
        }));
        total += view_stats;
    }
    Ok((total, late))
}

/// Writes prepared rows: every view in one store call (views of one entity share its hash, so
/// Redis writes a key's views in one script call); and applies the events of aggregating views,
/// at the same time.
pub async fn write(store: &dyn OnlineStore, prepared: Prepared, options: WriteOptions) -> Result<PushStats> {
    Ok(write_and_aggregate(store, prepared, options).await?.0)
}

/// [`write`], also answering the late events.
pub(crate) async fn write_and_aggregate(
    store: &dyn OnlineStore,
    prepared: Prepared,
    options: WriteOptions,
) -> Result<(PushStats, Vec<LateEvent>)> {
    let mut stats = PushStats { rows: prepared.rows(), ..Default::default() };
    let prepared_events = prepared.events;
    let (views, rows): (Vec<Arc<FeatureView>>, Vec<Vec<WriteRow>>) = prepared.views.into_iter().unzip();
    // The newest event of each view's rows: its lag behind the write is how far behind the
    // stream is (one sample per view and write, not per row: a batch has thousands of rows).
    let newest: Vec<Option<EventTime>> = rows.iter().map(|r| r.iter().map(|r| r.event_time).max()).collect();
    let batches: Vec<ViewWrite<'_>> = views
        .iter()
        .zip(rows)
        .map(|(view, rows)| ViewWrite::for_view(view, rows, options.mode, options.key_ttl_seconds))
        .collect();
    let aggregation = aggregate(store, &prepared_events, options.key_ttl_seconds);
    let started = std::time::Instant::now();
    let (written, (aggregated, late)) = futures::future::try_join(store.write_views(&batches), aggregation).await?;
    telemetry::redis("write", started.elapsed());
    stats.written += aggregated.rows_written;
    stats.skipped += aggregated.rows - aggregated.rows_written;
    stats.aggregated = aggregated.applied;
    stats.duplicates = aggregated.duplicates;
    stats.late = late.len();
    let now = EventTime::now().as_secs_f64();
    for ((view, w), newest) in views.iter().zip(written).zip(newest) {
        stats.written += w.written;
        stats.skipped += w.skipped;
        if let Some(t) = newest {
            telemetry::push_lag(&view.name, now - t.as_secs_f64());
        }
    }
    Ok((stats, late))
}

/// Feast's `push` / `write_to_online_store` on the online store: converts, then writes.
/// `allow_registry_cache: false` reloads the registry first (a conditional read).
pub async fn apply(
    registry: &Arc<RegistryCache>,
    store: &dyn OnlineStore,
    options: WriteOptions,
    push: &Push,
) -> Result<PushStats> {
    if push.fresh_registry {
        refresh_registry(registry).await;
    }
    let mut prepared = prepare(&registry.get(), push)?;
    if let Some(key) = &push.idempotency_key {
        keyed(&mut prepared, key);
    }
    let (stats, late) = write_and_aggregate(store, prepared, options).await?;
    if let Some(first) = late.first() {
        tracing::warn!(late = late.len(), reason = %first.error(), "events were not aggregated");
    }
    Ok(stats)
}

/// Puts a keyed push's events on a lane of their own, `idem:<key>`, each at its row: a retry
/// with the same key finds every event it applied before at or before the lane's mark in each
/// tile key, and counts it once (a key's events are applied in one script call, all or none).
fn keyed(prepared: &mut Prepared, key: &str) {
    let lane: Arc<str> = Arc::from(format!("{}{key}", tiles::IDEM_PREFIX));
    for v in &mut prepared.events {
        for e in &mut v.events {
            e.origin = crate::aggregate::position("1", e.row).map(|p| (Arc::clone(&lane), p));
        }
    }
}

/// Reloads the registry if it changed. A cache built over a registry in memory (tests,
/// `--memory`) has no version and nothing to reload. A failed reload keeps the last good one
/// (the cache reports it in `/health`).
pub(crate) async fn refresh_registry(registry: &RegistryCache) -> bool {
    if registry.health().version.is_empty() {
        return false;
    }
    matches!(registry.refresh().await, Ok(true))
}

#[cfg(test)]
pub(crate) mod testing;

#[cfg(test)]
mod tests;
