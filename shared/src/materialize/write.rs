//! Writing the winners of a selection to the online store, one view at a time, in batches
//! with a few in flight. The store applies newest-wins per key, so batches may land in any
//! order, and a write repeated after a failure changes nothing.

use std::sync::atomic::Ordering;

use futures::{StreamExt, TryStreamExt};

use super::Options;
use super::scan::Progress;
use super::select::Winners;
use crate::config::RepoConfig;
use crate::error::Result;
use crate::online::{OnlineStore, ViewWrite, WriteMode, WriteRow, WriteStats};
use crate::registry::FeatureView;
use crate::time::EventTime;

/// Feast writes event times through Python datetimes, which hold microseconds: the `_ts`
/// bytes it stores never carry finer digits. Larder stores the same bytes.
pub fn stored_time(t: EventTime) -> EventTime {
    EventTime::new(t.secs, t.nanos - t.nanos % 1000)
}

/// How writes treat stored rows, from `online_store.skip_dedup` and `key_ttl_seconds`.
pub fn write_mode(cfg: &RepoConfig) -> (WriteMode, Option<u64>) {
    match &cfg.online_store {
        Some(s) => (
            if s.skip_dedup { WriteMode::Overwrite } else { WriteMode::NewestWins },
            s.key_ttl_seconds.filter(|t| *t > 0),
        ),
        None => (WriteMode::NewestWins, None),
    }
}

/// Writes every winner as a row of each of `views` (views that read through one selection:
/// the same winners, the same feature columns). All views of a key go in one store call, so
/// Redis runs one script per key, not one per key and view. Returns stats parallel to `views`.
pub async fn write_views(
    cfg: &RepoConfig,
    store: &dyn OnlineStore,
    views: &[&FeatureView],
    winners: &Winners,
    opts: &Options,
    progress: &Progress,
) -> Result<Vec<WriteStats>> {
    let (mode, ttl) = write_mode(cfg);
    let project = cfg.project.as_bytes();
    let slots: Vec<(&[u8], &super::select::Slot)> = winners.iter().collect();
    let batch = opts.write_batch.max(1);
    // Rows are built before each write's future (which then owns them), so the futures hold
    // no borrow of a chunk: that keeps them `Send` for any caller (the HTTP router's too).
    let build = |range: std::ops::Range<usize>| -> Vec<WriteRow> {
        slots[range]
            .iter()
            .map(|(key, slot)| {
                let mut k = Vec::with_capacity(key.len() + project.len());
                k.extend_from_slice(key);
                k.extend_from_slice(project);
                WriteRow {
                    key: k,
                    event_time: stored_time(slot.event),
                    values: slot.values().map(<[u8]>::to_vec).collect(),
                }
            })
            .collect()
    };
    let ranges: Vec<std::ops::Range<usize>> =
        (0..slots.len()).step_by(batch).map(|s| s..(s + batch).min(slots.len())).collect();
    let zero = vec![WriteStats::default(); views.len()];
    futures::stream::iter(ranges)
        .map(|range| {
            let rows = build(range);
            async move {
                let n = (rows.len() * views.len()) as u64;
                let mut per_view: Vec<Vec<WriteRow>> = vec![Vec::new(); views.len().saturating_sub(1)];
                per_view.iter_mut().for_each(|r| r.clone_from(&rows));
                per_view.push(rows);
                let batches: Vec<ViewWrite<'_>> =
                    views.iter().zip(per_view).map(|(view, rows)| ViewWrite::for_view(view, rows, mode, ttl)).collect();
                let stats = store.write_views(&batches).await?;
                progress.keys_written.fetch_add(n, Ordering::Relaxed);
                Ok::<_, crate::Error>(stats)
            }
        })
        .buffer_unordered(opts.write_concurrency.max(1))
        .try_fold(zero, |mut acc, chunk| async move {
            for (total, s) in acc.iter_mut().zip(chunk) {
                *total += s;
            }
            Ok(acc)
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_times_are_microseconds() {
        assert_eq!(stored_time(EventTime::new(5, 123_456_789)), EventTime::new(5, 123_456_000));
        assert_eq!(stored_time(EventTime::new(-1, 999)), EventTime::new(-1, 0));
    }
}
