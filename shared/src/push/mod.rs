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

use std::sync::Arc;

pub use frame::Frame;
pub use request::{Destination, Push, PushRequest, PushTo, WriteRequest};
pub use settings::PushSettings;

use crate::error::Result;
pub use crate::online::WriteOptions;
use crate::online::{OnlineStore, ViewWrite, WriteRow};
use crate::registry::{FeatureView, Registry, RegistryCache};
use crate::telemetry;
use crate::time::EventTime;

/// A push converted for every view it writes: rows per view, in push order.
#[derive(Debug, Default)]
pub struct Prepared {
    pub views: Vec<(Arc<FeatureView>, Vec<WriteRow>)>,
}

impl Prepared {
    /// Rows to write, over all views.
    pub fn rows(&self) -> usize {
        self.views.iter().map(|(_, r)| r.len()).sum()
    }

    /// Appends another push's rows, keeping one entry per view (a batch of records becomes one
    /// write per view).
    pub fn merge(&mut self, other: Prepared) {
        for (view, rows) in other.views {
            match self.views.iter_mut().find(|(v, _)| Arc::ptr_eq(v, &view) || v.name == view.name) {
                Some((_, existing)) => existing.extend(rows),
                None => self.views.push((view, rows)),
            }
        }
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
                    prepared.views.push((Arc::clone(view), rows));
                }
            }
        }
        Destination::View(name) => {
            let view = registry.view(name)?;
            let target = convert::Target { push_source: None, view: &view.name };
            if let Some(rows) = convert::rows_for_view(view, &push.frame, &registry.project, target)? {
                prepared.views.push((Arc::clone(view), rows));
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
}

impl std::ops::AddAssign for PushStats {
    fn add_assign(&mut self, o: PushStats) {
        self.rows += o.rows;
        self.written += o.written;
        self.skipped += o.skipped;
    }
}

/// Writes prepared rows: every view in one store call (views of one entity share its hash, so
/// Redis writes a key's views in one script call).
pub async fn write(store: &dyn OnlineStore, prepared: Prepared, options: WriteOptions) -> Result<PushStats> {
    let mut stats = PushStats { rows: prepared.rows(), ..Default::default() };
    let (views, rows): (Vec<Arc<FeatureView>>, Vec<Vec<WriteRow>>) = prepared.views.into_iter().unzip();
    // The newest event of each view's rows: its lag behind the write is how far behind the
    // stream is (one sample per view and write, not per row: a batch has thousands of rows).
    let newest: Vec<Option<EventTime>> = rows.iter().map(|r| r.iter().map(|r| r.event_time).max()).collect();
    let batches: Vec<ViewWrite<'_>> = views
        .iter()
        .zip(rows)
        .map(|(view, rows)| ViewWrite::for_view(view, rows, options.mode, options.key_ttl_seconds))
        .collect();
    let started = std::time::Instant::now();
    let written = store.write_views(&batches).await?;
    telemetry::redis("write", started.elapsed());
    let now = EventTime::now().as_secs_f64();
    for ((view, w), newest) in views.iter().zip(written).zip(newest) {
        stats.written += w.written;
        stats.skipped += w.skipped;
        if let Some(t) = newest {
            telemetry::push_lag(&view.name, now - t.as_secs_f64());
        }
    }
    Ok(stats)
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
    let prepared = prepare(&registry.get(), push)?;
    write(store, prepared, options).await
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
