//! Scanning a source's files: grouping views by source, opening footers, pruning row groups,
//! and a pool of workers that fetch and decode row groups while the scan merges what each
//! row group found into the [`Winners`] of every selection.
//!
//! Writing starts before the scan ends. An entity is settled when no row still to come can
//! beat its winner: when the winner is later than anything an unread row group may hold
//! within the window, or when no unread row group's join-key statistics cover its key (a
//! single integer join key). Row groups are read newest first (by their timestamp
//! statistics), so data appended over time (the usual event log) settles by time after the
//! first few row groups, and data sorted by entity settles by key as each row group is
//! merged. Settled winners are handed to the writer as the scan goes, so Redis works while
//! parquet is still decoded; data without statistics settles only at the end.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use parquet::arrow::ParquetRecordBatchStreamBuilder;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ParquetRecordBatchReader};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::progress::Progress;
use super::select::{SelectStats, Selection, SelectionSpec, Slot, Winners, seq};
use super::write::{self, Settled};
use super::{Options, ViewWindow};
use crate::config::RepoConfig;
use crate::error::{Error, Result};
use crate::offline::columns::{self, ColumnFrom, ColumnUse, FileColumns, Needed};
use crate::offline::reader::ObjectReader;
use crate::offline::{self, Location, ParquetFile};
use crate::online::WriteRow;
use crate::registry::{FeatureView, Registry};
use crate::storage::{FileTree, Storage};
use crate::time::EventTime;
use crate::value::ValueType;

/// Rows per decoded batch: large enough that per-batch work is noise.
const BATCH_ROWS: usize = 64 * 1024;
/// Footers read at once while planning.
const OPEN_CONCURRENCY: usize = 16;

/// One view being materialized, and the selection it reads through.
pub struct ViewScan {
    pub view: Arc<FeatureView>,
    pub window: ViewWindow,
    pub selection: usize,
}

/// Views that read the same source path: its files are read once for all of them.
pub struct Group {
    pub root: Location,
    /// The files at `root`, wherever they are stored.
    pub tree: Arc<dyn FileTree>,
    pub views: Vec<ViewScan>,
    pub needed: Vec<Needed>,
    pub selections: Vec<Selection>,
}

/// A file of a group, with its footer, projection and the row groups worth reading.
pub struct OpenFile {
    pub file: ParquetFile,
    pub reader: ObjectReader,
    pub meta: ArrowReaderMetadata,
    pub cols: FileColumns,
    /// First row of each row group within the file.
    pub first_row: Vec<u64>,
    /// Whether each row group may hold rows of some view's window.
    pub keep: Vec<bool>,
    /// Per selection, per row group: the latest event time it may hold in the window.
    pub latest: Vec<Vec<Latest>>,
    /// Per selection, per row group: the range of its join key when the key is a single
    /// integer column with statistics, else `None` (it may hold any entity).
    pub key_ranges: Vec<Vec<Option<(i64, i64)>>>,
}

/// The latest event time a row group may hold within a selection's window, from its
/// statistics. Ordered so that the maximum over unread row groups is the bar a winner must
/// clear to be settled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Latest {
    /// No row of the window (the statistics say so).
    #[default]
    Nothing,
    /// Rows up to this time (the statistics' maximum, capped at the window's end).
    At(EventTime),
    /// No statistics: any time.
    Unknown,
}

impl Latest {
    fn of(range: Option<(EventTime, EventTime)>, start: EventTime, end: EventTime) -> Latest {
        match range {
            None => Latest::Unknown,
            Some(_) if !columns::may_overlap(range, start, end) => Latest::Nothing,
            Some((_, hi)) => Latest::At(hi.min(end)),
        }
    }
}

impl OpenFile {
    pub fn rows(&self, rg: usize) -> u64 {
        self.meta.metadata().row_group(rg).num_rows() as u64
    }
}

/// One row group to read: `file` indexes the group's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Task {
    pub file: usize,
    pub row_group: usize,
}

impl Group {
    /// Per selection, the indexes of the views that read through it (they share its winners
    /// and are written together).
    pub fn members(&self) -> Vec<Vec<usize>> {
        (0..self.selections.len())
            .map(|sel| (0..self.views.len()).filter(|&i| self.views[i].selection == sel).collect())
            .collect()
    }
}

/// Groups views by their offline source and works out what each reads.
pub fn build_groups(
    cfg: &RepoConfig,
    storage: &Storage,
    registry: &Registry,
    windows: &[ViewWindow],
) -> Result<Vec<Group>> {
    let mut groups: Vec<Group> = Vec::new();
    for w in windows {
        let view = registry.view(&w.view)?.clone();
        let (source, path) = super::parquet_source(&view)?;
        if view.has_transformation {
            return Err(Error::Unsupported(format!(
                "feature view '{}' has a Python transformation, which Larder cannot run",
                view.name
            )));
        }
        let root = offline::Location::parse(path, &cfg.repo_dir)?;
        let gi = match groups.iter().position(|g| g.root == root) {
            Some(i) => i,
            None => {
                let tree = storage.files(&root);
                groups.push(Group { root, tree, views: Vec::new(), needed: Vec::new(), selections: Vec::new() });
                groups.len() - 1
            }
        };
        let group = &mut groups[gi];
        let mapping = view.field_mapping();
        let vname = &view.name;
        let mut need = |name: String, usage: ColumnUse, purpose: String| -> usize {
            match group.needed.iter().position(|n| n.name == name && n.usage == usage) {
                Some(i) => i,
                None => {
                    group.needed.push(Needed { name, usage, purpose });
                    group.needed.len() - 1
                }
            }
        };
        let ts = need(
            columns::source_column(mapping, &source.timestamp_field),
            ColumnUse::Time,
            format!("timestamp field of feature view '{vname}'"),
        );
        let created = source.created_timestamp_column.as_deref().filter(|c| !c.is_empty()).map(|c| {
            need(
                columns::source_column(mapping, c),
                ColumnUse::Time,
                format!("created timestamp column of feature view '{vname}'"),
            )
        });
        let keys = if view.is_entityless() {
            Vec::new()
        } else {
            view.entity_columns
                .iter()
                .map(|k| {
                    let i = need(
                        columns::source_column(mapping, &k.name),
                        ColumnUse::Value(k.dtype),
                        format!("join key '{}' of feature view '{vname}'", k.name),
                    );
                    (i, k.name.clone(), k.dtype)
                })
                .collect()
        };
        let features = view
            .features
            .iter()
            .map(|f| {
                let i = need(
                    columns::source_column(mapping, &f.name),
                    ColumnUse::Value(f.dtype),
                    format!("feature '{}' of feature view '{vname}'", f.name),
                );
                (i, f.dtype)
            })
            .collect();
        let spec = SelectionSpec { start: w.start, end: w.end, ts, created, keys, features };
        let selection = match group.selections.iter().position(|s| s.spec == spec) {
            Some(i) => i,
            None => {
                group.selections.push(Selection {
                    spec,
                    key_encoder: view.layout.key_encoder.clone(),
                    column_names: Vec::new(),
                });
                group.selections.len() - 1
            }
        };
        group.views.push(ViewScan { view, window: w.clone(), selection });
    }
    for g in &mut groups {
        let names: Vec<String> = g.needed.iter().map(|n| n.name.clone()).collect();
        for s in &mut g.selections {
            s.column_names = names.clone();
        }
    }
    Ok(groups)
}

/// Opens a file's footer, checks its columns and prunes its row groups.
pub async fn open_file(group: &Group, file: ParquetFile) -> Result<OpenFile> {
    let (reader, meta) = offline::open_metadata(group.tree.as_ref(), &file).await?;
    let partitions = offline::partition_values(&group.root, &file.location);
    let cols = columns::resolve(&meta, &group.needed, &partitions, &file.location)?;
    let groups = meta.metadata().row_groups();
    let mut first_row = Vec::with_capacity(groups.len());
    let mut at = 0u64;
    for rg in groups {
        first_row.push(at);
        at += rg.num_rows() as u64;
    }
    let latest: Vec<Vec<Latest>> = group
        .selections
        .iter()
        .map(|sel| {
            let ranges = columns::time_ranges(&meta, &group.needed[sel.spec.ts].name);
            ranges.into_iter().map(|r| Latest::of(r, sel.spec.start, sel.spec.end)).collect()
        })
        .collect();
    // A row group is read when some selection may find rows of its window in it.
    let keep = (0..groups.len()).map(|rg| latest.iter().any(|l| l[rg] != Latest::Nothing)).collect();
    let key_ranges = group
        .selections
        .iter()
        .map(|sel| match sel.spec.keys.as_slice() {
            [(c, _, ValueType::Int64 | ValueType::Int32)] => match &cols.from[*c] {
                ColumnFrom::File(name) => columns::int_ranges(&meta, name),
                // Every row of the file holds the path's value (one that does not parse fails
                // the decode anyway).
                ColumnFrom::Partition(text) => vec![text.parse::<i64>().ok().map(|v| (v, v)); groups.len()],
            },
            _ => vec![None; groups.len()],
        })
        .collect();
    Ok(OpenFile { file, reader, meta, cols, first_row, keep, latest, key_ranges })
}

/// Lists a group's files and opens them (footers read concurrently).
pub async fn open_group(group: &Group) -> Result<Vec<OpenFile>> {
    let files = offline::list_files(group.tree.as_ref(), &group.root).await?;
    futures::stream::iter(files.into_iter().map(|f| open_file(group, f)))
        .buffered(OPEN_CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

/// What a scan found.
pub struct ScanOutcome {
    /// Per selection.
    pub winners: Vec<Winners>,
    pub stats: Vec<SelectStats>,
    pub rows_read: u64,
    /// Tasks not started because the deadline would have been passed.
    pub remaining: Vec<Task>,
}

/// How long each row group has taken, to judge whether another fits before the deadline.
struct Timing {
    deadline: Option<Instant>,
    slowest_task: Mutex<Duration>,
    new_keys: AtomicU64,
    stop: AtomicBool,
}

/// Time kept back for writing what was found and recording it: per entity row written, plus
/// a fixed margin for the registry update and the response.
const WRITE_COST_PER_KEY: Duration = Duration::from_micros(20);
const FIXED_RESERVE: Duration = Duration::from_secs(2);

impl Timing {
    fn new(deadline: Option<Instant>) -> Timing {
        Timing {
            deadline,
            slowest_task: Mutex::new(Duration::ZERO),
            new_keys: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        }
    }

    fn may_start(&self, views_per_key: u64) -> bool {
        self.may_start_at(Instant::now(), views_per_key)
    }

    /// Whether a row group started at `now` would end, with the found rows written, before
    /// the deadline. The first `false` stops every worker for good.
    fn may_start_at(&self, now: Instant, views_per_key: u64) -> bool {
        if self.stop.load(Ordering::Acquire) {
            return false;
        }
        let Some(deadline) = self.deadline else {
            return true;
        };
        let task = *self.slowest_task.lock().unwrap_or_else(|p| p.into_inner());
        let keys = self.new_keys.load(Ordering::Relaxed) * views_per_key.max(1);
        let reserve = FIXED_RESERVE + WRITE_COST_PER_KEY * keys.min(u32::MAX as u64) as u32;
        let ok = now + task + reserve <= deadline;
        if !ok {
            self.stop.store(true, Ordering::Release);
        }
        ok
    }
}

/// What one row group found.
struct TaskOut {
    /// Position of the task in the scan's list.
    index: usize,
    winners: Vec<Winners>,
    stats: Vec<SelectStats>,
    rows: u64,
}

/// Stops the workers when dropped: by the scan if it ends early (the writer failed), by a
/// worker however it ends.
struct StopOnDrop(Arc<Timing>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop.store(true, Ordering::Release);
    }
}

/// Reads `tasks` (row groups of `files`) with `opts.parallelism` workers and returns the
/// winners of every selection of the group. Winners are sent to `settled` as soon as no
/// unread row group can beat them, and the rest at the end: each entity exactly once.
pub async fn scan(
    group: Arc<Group>,
    files: Arc<Vec<OpenFile>>,
    mut tasks: Vec<Task>,
    opts: &Options,
    project: &str,
    settled: mpsc::Sender<Settled>,
) -> Result<ScanOutcome> {
    let selections = group.selections.len();
    sort_newest_first(&mut tasks, &files, selections);
    let queue = Arc::new(Mutex::new(tasks.iter().copied().enumerate().collect::<VecDeque<_>>()));
    let timing = Arc::new(Timing::new(opts.deadline));
    let _stop = StopOnDrop(timing.clone());
    // Bounded, and small: a worker waits while the merge is behind (which waits for the
    // writer), so besides the merged winners memory holds one row group's per worker and one
    // waiting, never the file's.
    let (done_tx, done) = mpsc::channel::<TaskOut>(1);
    let handles = spawn_workers(&group, &files, &queue, &timing, opts, done_tx);
    let views = group.members().iter().map(|m| m.len() as u64).collect();
    let emitter = Emitter { project, batch: opts.write_batch.max(1), views, sent: 0, progress: &opts.progress };
    let mut merger = Merger::new(&tasks, &files, selections, emitter, settled);
    merger.merge_all(done, &timing).await?;
    join_workers(handles).await?;
    // Whatever was not settled on the way is the winner now (row groups left for a later run
    // are that run's to merge, newest-wins).
    let mut outcome = merger.finish().await?;
    outcome.remaining = unstarted(&queue);
    Ok(outcome)
}

/// The latest event time task `t` may hold in selection `sel`'s window.
fn latest(files: &[OpenFile], t: &Task, sel: usize) -> Latest {
    files[t.file].latest[sel][t.row_group]
}

/// Newest row groups first, so that winners settle early (a stable sort: ties keep file
/// order).
fn sort_newest_first(tasks: &mut [Task], files: &[OpenFile], selections: usize) {
    tasks.sort_by_key(|t| std::cmp::Reverse((0..selections).map(|s| latest(files, t, s)).max()));
}

/// Starts `opts.parallelism` workers taking row groups from `queue` and sending what each
/// found to `done`.
fn spawn_workers(
    group: &Arc<Group>,
    files: &Arc<Vec<OpenFile>>,
    queue: &Arc<Mutex<VecDeque<(usize, Task)>>>,
    timing: &Arc<Timing>,
    opts: &Options,
    done: mpsc::Sender<TaskOut>,
) -> Vec<JoinHandle<Result<()>>> {
    let views_per_key = group.views.len() as u64;
    let workers = opts.parallelism.max(1);
    let mut handles = Vec::with_capacity(workers);
    for _ in 0..workers {
        let (group, files, queue, timing, progress, done) =
            (group.clone(), files.clone(), queue.clone(), timing.clone(), opts.progress.clone(), done.clone());
        handles.push(tokio::spawn(async move {
            // However a worker ends (done, failed, panicked), the others stop at their next
            // row group: a failure fails the scan, and a worker that is done found the queue
            // empty or the deadline near, which holds for the others too.
            let _stop = StopOnDrop(timing.clone());
            worker(group, files, queue, timing, progress, views_per_key, done).await
        }));
    }
    handles
}

/// Waits for every worker; the first failure is the scan's.
async fn join_workers(handles: Vec<JoinHandle<Result<()>>>) -> Result<()> {
    let mut first_error = None;
    for h in handles {
        match h.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(e) => {
                first_error.get_or_insert(Error::internal(format!("scan worker failed: {e}")));
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// The tasks no worker started (the deadline came first), in file order.
fn unstarted(queue: &Mutex<VecDeque<(usize, Task)>>) -> Vec<Task> {
    let mut remaining: Vec<Task> = queue.lock().unwrap_or_else(|p| p.into_inner()).drain(..).map(|(_, t)| t).collect();
    remaining.sort_by_key(|t| (t.file, t.row_group));
    remaining
}

/// The scan's side: merges what each row group found into the winners, and hands the writer
/// those no unmerged row group can beat.
struct Merger<'a> {
    tasks: &'a [Task],
    files: &'a [OpenFile],
    /// Per task (in `tasks` order), whether what it found is merged.
    merged_tasks: Vec<bool>,
    merged: usize,
    /// Settling passes so far.
    passes: usize,
    outcome: ScanOutcome,
    emitter: Emitter<'a>,
    settled: mpsc::Sender<Settled>,
}

impl<'a> Merger<'a> {
    fn new(
        tasks: &'a [Task],
        files: &'a [OpenFile],
        selections: usize,
        emitter: Emitter<'a>,
        settled: mpsc::Sender<Settled>,
    ) -> Self {
        let outcome = ScanOutcome {
            winners: (0..selections).map(|_| Winners::default()).collect(),
            stats: vec![SelectStats::default(); selections],
            rows_read: 0,
            remaining: Vec::new(),
        };
        Merger { tasks, files, merged_tasks: vec![false; tasks.len()], merged: 0, passes: 0, outcome, emitter, settled }
    }

    /// Merges what the workers send until they are all done.
    async fn merge_all(&mut self, mut done: mpsc::Receiver<TaskOut>, timing: &Timing) -> Result<()> {
        while let Some(out) = done.recv().await {
            self.merge(out).await?;
            if self.pass_due() {
                self.settle_pass().await?;
            }
            // The deadline's write reserve: only what is still to be written.
            let found: u64 = self.outcome.winners.iter().map(|w| w.len() as u64).sum();
            timing.new_keys.store(found.saturating_sub(self.emitter.sent), Ordering::Relaxed);
        }
        Ok(())
    }

    async fn merge(&mut self, out: TaskOut) -> Result<()> {
        // Merging is CPU work (a hash lookup per entity of the row group): off this task, so
        // the writer, polled alongside, keeps Redis busy meanwhile.
        let mut all = std::mem::take(&mut self.outcome.winners);
        let found = out.winners;
        all = tokio::task::spawn_blocking(move || {
            for (mine, theirs) in all.iter_mut().zip(found) {
                mine.merge(theirs);
            }
            all
        })
        .await
        .map_err(|e| Error::internal(format!("merge task failed: {e}")))?;
        self.outcome.winners = all;
        for (total, st) in self.outcome.stats.iter_mut().zip(out.stats) {
            *total += st;
        }
        self.outcome.rows_read += out.rows;
        self.merged_tasks[out.index] = true;
        self.merged += 1;
        Ok(())
    }

    /// A pass looks at every winner (on this task, between the writer's polls): about 32
    /// passes over a scan at most, so a file of many row groups and many entities does not
    /// pay entities x row groups.
    fn pass_due(&mut self) -> bool {
        let due = self.merged * 32 >= (self.passes + 1) * self.tasks.len();
        if due {
            self.passes += 1;
        }
        due
    }

    /// Sends every selection's winners that no unmerged row group can beat.
    async fn settle_pass(&mut self) -> Result<()> {
        for sel in 0..self.outcome.winners.len() {
            let unmerged = Unmerged::new(
                self.tasks
                    .iter()
                    .zip(&self.merged_tasks)
                    .filter(|&(_, &done)| !done)
                    .map(|(t, _)| (latest(self.files, t, sel), self.files[t.file].key_ranges[sel][t.row_group])),
            );
            self.emitter.send(&self.settled, sel, &mut self.outcome.winners[sel], &unmerged).await?;
        }
        Ok(())
    }

    /// Sends the winners not sent yet: nothing is left to beat them.
    async fn finish(mut self) -> Result<ScanOutcome> {
        for sel in 0..self.outcome.winners.len() {
            self.emitter.send(&self.settled, sel, &mut self.outcome.winners[sel], &Unmerged::default()).await?;
        }
        Ok(self.outcome)
    }
}

/// What a selection's unmerged row groups may still hold: rows up to their latest event time
/// in the window (the bar a winner must clear), of entities within their join-key ranges.
/// The key ranges are kept sorted by their low ends, with the running maximum of their high
/// ends (a key is covered when some range starting at or below it reaches it). The default
/// is nothing unmerged: it holds nothing.
#[derive(Debug, Default)]
struct Unmerged {
    latest: Latest,
    lows: Vec<i64>,
    reach: Vec<i64>,
    /// Some row group's range is unknown: it may hold any entity.
    unknown: bool,
}

impl Unmerged {
    /// From each unmerged row group's latest time and key range; one that holds nothing of
    /// the window does not count.
    fn new(groups: impl Iterator<Item = (Latest, Option<(i64, i64)>)>) -> Unmerged {
        let (mut latest, mut known, mut unknown) = (Latest::Nothing, Vec::new(), false);
        for (l, range) in groups.filter(|(l, _)| *l != Latest::Nothing) {
            latest = latest.max(l);
            match range {
                Some(r) => known.push(r),
                None => unknown = true,
            }
        }
        known.sort_unstable();
        let lows = known.iter().map(|r| r.0).collect();
        let reach = known
            .iter()
            .scan(i64::MIN, |m, r| {
                *m = (*m).max(r.1);
                Some(*m)
            })
            .collect();
        Unmerged { latest, lows, reach, unknown }
    }

    /// Whether some row still to come may beat any winner at all.
    fn may_beat_all(&self) -> bool {
        self.latest == Latest::Unknown && self.unknown
    }

    /// Whether a row still to come may beat `slot`: a row as late or later, of its entity.
    fn may_beat(&self, slot: &Slot) -> bool {
        Latest::At(slot.event) <= self.latest && self.may_hold(slot.int_key)
    }

    fn may_hold(&self, key: i64) -> bool {
        if self.unknown {
            return true;
        }
        let below = self.lows.partition_point(|&lo| lo <= key);
        below > 0 && self.reach[below - 1] >= key
    }
}

/// Sends settled winners to the writer in batches.
struct Emitter<'a> {
    project: &'a str,
    batch: usize,
    /// Per selection, the views that read through it (each gets every row).
    views: Vec<u64>,
    /// Winners handed out so far, over all selections.
    sent: u64,
    progress: &'a Progress,
}

impl Emitter<'_> {
    /// Sends every unsent winner of `winners` that no row of `unmerged` may beat.
    async fn send(
        &mut self,
        settled: &mpsc::Sender<Settled>,
        selection: usize,
        winners: &mut Winners,
        unmerged: &Unmerged,
    ) -> Result<()> {
        if unmerged.may_beat_all() {
            return Ok(());
        }
        let mut rows = Vec::new();
        for (key, event, packed) in winners.take_settled(|slot| !unmerged.may_beat(slot)) {
            rows.push(write::row(key, event, &packed, self.project));
            self.sent += 1;
            if rows.len() == self.batch {
                self.flush(settled, selection, &mut rows).await?;
            }
        }
        self.flush(settled, selection, &mut rows).await
    }

    async fn flush(
        &mut self,
        settled: &mpsc::Sender<Settled>,
        selection: usize,
        rows: &mut Vec<WriteRow>,
    ) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        self.progress.keys_total.fetch_add(rows.len() as u64 * self.views[selection], Ordering::Relaxed);
        let rows = std::mem::take(rows);
        settled
            .send(Settled { selection, rows })
            .await
            .map_err(|_| Error::internal("the materialization writer stopped before the scan"))?;
        // Building rows is CPU work too: let the writer send what it has between batches.
        tokio::task::yield_now().await;
        Ok(())
    }
}

type Fetched = Option<(usize, Task, ParquetRecordBatchReader, Instant)>;

async fn worker(
    group: Arc<Group>,
    files: Arc<Vec<OpenFile>>,
    queue: Arc<Mutex<VecDeque<(usize, Task)>>>,
    timing: Arc<Timing>,
    progress: Arc<Progress>,
    views_per_key: u64,
    done: mpsc::Sender<TaskOut>,
) -> Result<()> {
    let next = || {
        let (files, queue, timing) = (files.clone(), queue.clone(), timing.clone());
        async move {
            let (index, task) = {
                let mut q = queue.lock().unwrap_or_else(|p| p.into_inner());
                if q.is_empty() || !timing.may_start(views_per_key) {
                    return Ok::<Fetched, Error>(None);
                }
                q.pop_front().expect("not empty")
            };
            let started = Instant::now();
            let reader = fetch(&files[task.file], task.row_group).await?;
            Ok(Some((index, task, reader, started)))
        }
    };
    // Fetch the next row group while this one decodes.
    let mut current = next().await?;
    while let Some((index, task, reader, started)) = current {
        let (g, f, progress2) = (group.clone(), files.clone(), progress.clone());
        let decode = tokio::task::spawn_blocking(move || {
            let mut winners: Vec<Winners> = g.selections.iter().map(|_| Winners::default()).collect();
            let mut stats = vec![SelectStats::default(); g.selections.len()];
            let rows = decode(&g, &f[task.file], task, reader, &mut winners, &mut stats, &progress2)?;
            Ok::<_, Error>(TaskOut { index, winners, stats, rows })
        });
        let (decoded, fetched) = tokio::join!(decode, next());
        let out = decoded.map_err(|e| Error::internal(format!("decode task failed: {e}")))??;
        {
            let mut slowest = timing.slowest_task.lock().unwrap_or_else(|p| p.into_inner());
            *slowest = (*slowest).max(started.elapsed());
        }
        if done.send(out).await.is_err() {
            // The scan is gone (it failed): nothing more to do.
            return Ok(());
        }
        current = fetched?;
    }
    Ok(())
}

async fn fetch(file: &OpenFile, rg: usize) -> Result<ParquetRecordBatchReader> {
    let storage = |e: parquet::errors::ParquetError| {
        Error::storage(format!("reading row group {rg} of {}: {e}", file.file.location))
    };
    let mut stream = ParquetRecordBatchStreamBuilder::new_with_metadata(file.reader.clone(), file.meta.clone())
        .with_projection(file.cols.mask.clone())
        .with_row_groups(vec![rg])
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(storage)?;
    stream
        .next_row_group()
        .await
        .map_err(storage)?
        .ok_or_else(|| Error::internal(format!("row group {rg} of {} yielded nothing", file.file.location)))
}

fn decode(
    group: &Group,
    file: &OpenFile,
    task: Task,
    reader: ParquetRecordBatchReader,
    winners: &mut [Winners],
    stats: &mut [SelectStats],
    progress: &Progress,
) -> Result<u64> {
    let location = &file.file.location;
    let mut row = file.first_row[task.row_group];
    let mut rows = 0u64;
    for batch in reader {
        let batch =
            batch.map_err(|e| Error::storage(format!("decoding row group {} of {location}: {e}", task.row_group)))?;
        let n = batch.num_rows();
        let cols = file.cols.columns(&batch, &group.needed, location)?;
        for (i, sel) in group.selections.iter().enumerate() {
            sel.absorb(&cols, n, seq(task.file, row), &mut winners[i], &mut stats[i], location)?;
        }
        row += n as u64;
        rows += n as u64;
        progress.rows_read.fetch_add(n as u64, Ordering::Relaxed);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unmerged(ranges: &[Option<(i64, i64)>]) -> Unmerged {
        Unmerged::new(ranges.iter().map(|&r| (Latest::At(EventTime::new(10, 0)), r)))
    }

    #[test]
    fn unmerged_key_ranges_cover_exactly_their_keys() {
        let bar = unmerged(&[Some((10, 20)), Some((5, 8)), Some((30, 30)), Some((12, 14))]);
        let covered: Vec<i64> = (0..40).filter(|&k| bar.may_hold(k)).collect();
        let want: Vec<i64> = (5..=8).chain(10..=20).chain([30]).collect();
        assert_eq!(covered, want);
        assert!(!bar.may_hold(i64::MIN) && !bar.may_hold(i64::MAX));
        // A range inside an earlier, longer one does not shorten its reach.
        assert!(unmerged(&[Some((0, 100)), Some((1, 2))]).may_hold(50));
        // Nothing unread: nothing covered; an unknown range: everything.
        assert!(!unmerged(&[]).may_hold(0));
        assert!(unmerged(&[Some((1, 2)), None]).may_hold(99));
        // A row group with nothing of the window counts for neither time nor keys.
        let nothing = Unmerged::new([(Latest::Nothing, None)].into_iter());
        assert!(nothing.latest == Latest::Nothing && !nothing.may_hold(1));
    }

    /// A deadline `ms` milliseconds after `now`, with `keys` found and not written yet and the
    /// slowest row group so far taking `task_ms`.
    fn timing(now: Instant, ms: u64, task_ms: u64, keys: u64) -> Timing {
        let t = Timing::new(Some(now + Duration::from_millis(ms)));
        *t.slowest_task.lock().unwrap() = Duration::from_millis(task_ms);
        t.new_keys.store(keys, Ordering::Relaxed);
        t
    }

    #[test]
    fn a_row_group_starts_only_if_it_and_the_writes_fit_before_the_deadline() {
        let now = Instant::now();
        // Without a deadline anything may start.
        assert!(Timing::new(None).may_start_at(now, 1));
        // 2 s kept for recording, plus the slowest row group: 2.1 s fits in 2.1 s, not in 2.099.
        assert!(timing(now, 2100, 100, 0).may_start_at(now, 1));
        assert!(!timing(now, 2099, 100, 0).may_start_at(now, 1));
        // A slow row group alone can be what does not fit.
        assert!(!timing(now, 2500, 1000, 0).may_start_at(now, 1));
        // 20 us per entity row to write, for each view reading it: 1000 keys x 10 views = 0.2 s.
        assert!(timing(now, 2200, 0, 1000).may_start_at(now, 10));
        assert!(!timing(now, 2199, 0, 1000).may_start_at(now, 10));
        // No views counts as one.
        assert!(!timing(now, 2019, 0, 1000).may_start_at(now, 0));
        // Later is closer to the deadline.
        assert!(!timing(now, 2100, 100, 0).may_start_at(now + Duration::from_millis(1), 1));
    }

    #[test]
    fn the_first_refusal_or_a_dropped_worker_stops_every_worker() {
        let now = Instant::now();
        let t = timing(now, 2100, 100, 0);
        assert!(t.may_start_at(now, 1) && t.may_start_at(now, 1), "a yes does not stop anyone");
        assert!(!t.may_start_at(now + Duration::from_secs(1), 1));
        assert!(!t.may_start_at(now, 1), "once refused, never again, though it would fit");

        let t = Arc::new(Timing::new(None));
        drop(StopOnDrop(t.clone()));
        assert!(!t.may_start_at(now, 1));
    }

    #[tokio::test]
    async fn a_failed_or_panicked_worker_fails_the_scan() {
        let ok = || tokio::spawn(async { Ok(()) });
        assert!(join_workers(vec![ok(), ok()]).await.is_ok());
        let failed = tokio::spawn(async { Err(Error::storage("row group 3 unreadable")) });
        let err = join_workers(vec![ok(), failed]).await.unwrap_err();
        assert_eq!(err.to_string(), Error::storage("row group 3 unreadable").to_string());
        let panicked = tokio::spawn(async { panic!("decoder bug") });
        let err = join_workers(vec![panicked, ok()]).await.unwrap_err();
        assert!(err.to_string().contains("scan worker failed"), "{err}");
    }

    #[test]
    fn winners_are_passed_on_about_32_times_a_scan() {
        for tasks in [1usize, 5, 32, 100, 1000] {
            let list = vec![Task { file: 0, row_group: 0 }; tasks];
            let progress = Progress::default();
            let emitter = Emitter { project: "p", batch: 1, views: vec![1], sent: 0, progress: &progress };
            let (tx, _rx) = mpsc::channel(1);
            let mut m = Merger::new(&list, &[], 1, emitter, tx);
            let mut due_at = Vec::new();
            for merged in 1..=tasks {
                m.merged = merged;
                if m.pass_due() {
                    due_at.push(merged);
                }
            }
            // A pass each time another 1/32 of the row groups is merged, so always at the end.
            let want: Vec<usize> = (1..=tasks).filter(|&n| (n * 32 / tasks) > ((n - 1) * 32 / tasks)).collect();
            assert_eq!(due_at, want, "{tasks} row groups");
            assert_eq!(m.passes, want.len());
            assert_eq!(due_at.last(), Some(&tasks));
        }
    }

    #[test]
    fn only_an_unread_group_without_statistics_of_any_kind_holds_back_everything() {
        let at = Latest::At(EventTime::new(10, 0));
        assert!(Unmerged::new([(Latest::Unknown, None)].into_iter()).may_beat_all());
        assert!(!Unmerged::new([(Latest::Unknown, Some((1, 2)))].into_iter()).may_beat_all());
        assert!(!Unmerged::new([(at, None)].into_iter()).may_beat_all());
        assert!(Unmerged::new([(at, Some((1, 2))), (Latest::Unknown, None)].into_iter()).may_beat_all());
        assert!(!Unmerged::default().may_beat_all());
    }

    #[tokio::test]
    async fn settled_winners_go_out_in_batches_counted_once_per_view() {
        // Five entities, keys 1..=5, all at t=10; a value packed as length 1, byte k.
        let keys: Vec<[u8; 1]> = (1..=5u8).map(|k| [k]).collect();
        let packed: Vec<[u8; 5]> = (1..=5u8).map(|k| [1, 0, 0, 0, k]).collect();
        let rows: Vec<(&[u8], i64, i64, &[u8])> =
            (0..5).map(|i| (&keys[i][..], 10, i as i64 + 1, &packed[i][..])).collect();
        let mut winners = Winners::of(&rows);
        let progress = Progress::default();
        let mut emitter = Emitter { project: "p", batch: 2, views: vec![1, 3], sent: 0, progress: &progress };
        let (tx, mut rx) = mpsc::channel(8);
        // An unread row group at t=10 holding keys 4..=6: entities 4 and 5 must wait.
        let unmerged = Unmerged::new([(Latest::At(EventTime::new(10, 0)), Some((4, 6)))].into_iter());
        emitter.send(&tx, 1, &mut winners, &unmerged).await.unwrap();
        // Nothing unread: the rest go out; a second send finds nothing left.
        emitter.send(&tx, 1, &mut winners, &Unmerged::default()).await.unwrap();
        emitter.send(&tx, 1, &mut winners, &Unmerged::default()).await.unwrap();
        drop(tx);
        let mut batches = Vec::new();
        while let Some(s) = rx.recv().await {
            assert_eq!(s.selection, 1);
            let mut ks: Vec<u8> = s.rows.iter().map(|r| r.key[0]).collect();
            ks.sort();
            batches.push(ks);
        }
        // At most two rows a batch; 1..=3 first (any order within), then 4 and 5.
        assert_eq!(batches.iter().map(Vec::len).collect::<Vec<_>>(), [2, 1, 2]);
        let mut first: Vec<u8> = batches[..2].concat();
        first.sort();
        assert_eq!((first, batches[2].clone()), (vec![1, 2, 3], vec![4, 5]));
        assert_eq!(emitter.sent, 5);
        // Each row is written to the selection's three views.
        assert_eq!(progress.keys_total.load(Ordering::Relaxed), 15);
        // An unread row group without statistics holds everything back.
        let mut more = Winners::of(&[(b"k", 1, 0, b"")]);
        let all = Unmerged::new([(Latest::Unknown, None)].into_iter());
        let (tx, mut rx) = mpsc::channel(8);
        emitter.send(&tx, 0, &mut more, &all).await.unwrap();
        drop(tx);
        assert!(rx.recv().await.is_none());
    }
}
