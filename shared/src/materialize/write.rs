//! Writing the winners of a scan to the online store as the scan settles them, in batches
//! with a few in flight. The store applies newest-wins per key, so batches may land in any
//! order, and a write repeated after a failure changes nothing.

use std::sync::atomic::Ordering;

use futures::{StreamExt, TryStreamExt};

use tokio::sync::mpsc;

use super::Options;
use super::progress::Progress;
use super::select::unpack;
use crate::config::RepoConfig;
use crate::error::Result;
use crate::online::{OnlineStore, ViewWrite, WriteOptions, WriteRow, WriteStats};
use crate::registry::FeatureView;
use crate::time::EventTime;

/// Winners handed to the writer: rows of one selection, at most `write_batch` of them.
pub struct Settled {
    pub selection: usize,
    pub rows: Vec<WriteRow>,
}

/// Feast writes event times through Python datetimes, which hold microseconds: the `_ts`
/// bytes it stores never carry finer digits. Larder stores the same bytes.
pub fn stored_time(t: EventTime) -> EventTime {
    EventTime::new(t.secs, t.nanos - t.nanos % 1000)
}

/// The row a winner writes: its entity key with the project appended (Feast's Redis key),
/// its event time as Feast stores it, its serialized features (`packed` as a winner holds them).
pub fn row(key: &[u8], event: EventTime, packed: &[u8], project: &str) -> WriteRow {
    let mut k = Vec::with_capacity(key.len() + project.len());
    k.extend_from_slice(key);
    k.extend_from_slice(project.as_bytes());
    WriteRow { key: k, event_time: stored_time(event), values: unpack(packed).map(<[u8]>::to_vec).collect() }
}

/// Writes the winners the scan settles, as they come, each batch as a row of every view of
/// its selection (`views[selection]`: views that read through one selection get the same
/// rows). All views of a key go in one store call, so Redis runs one script per key, not one
/// per key and view. A few batches are in flight at once. Returns stats parallel to `views`.
pub async fn write_settled(
    cfg: &RepoConfig,
    store: &dyn OnlineStore,
    views: &[Vec<&FeatureView>],
    settled: mpsc::Receiver<Settled>,
    opts: &Options,
    progress: &Progress,
) -> Result<Vec<Vec<WriteStats>>> {
    let WriteOptions { mode, key_ttl_seconds: ttl } = WriteOptions::from_config(cfg);
    let batches = futures::stream::unfold(settled, |mut rx| async move { rx.recv().await.map(|s| (s, rx)) });
    let zero: Vec<Vec<WriteStats>> = views.iter().map(|v| vec![WriteStats::default(); v.len()]).collect();
    batches
        .map(|Settled { selection, rows }| {
            let views = &views[selection];
            async move {
                let n = (rows.len() * views.len()) as u64;
                let mut per_view: Vec<Vec<WriteRow>> = vec![Vec::new(); views.len().saturating_sub(1)];
                per_view.iter_mut().for_each(|r| r.clone_from(&rows));
                per_view.push(rows);
                let batches: Vec<ViewWrite<'_>> =
                    views.iter().zip(per_view).map(|(view, rows)| ViewWrite::for_view(view, rows, mode, ttl)).collect();
                let stats = store.write_views(&batches).await?;
                progress.keys_written.fetch_add(n, Ordering::Relaxed);
                Ok::<_, crate::Error>((selection, stats))
            }
        })
        .buffer_unordered(opts.write_concurrency.max(1))
        .try_fold(zero, |mut acc, (selection, chunk)| async move {
            for (total, s) in acc[selection].iter_mut().zip(chunk) {
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
