//! Materialization: the latest row per entity in a window, from parquet into the online store,
//! with Feast's semantics (docs/compatibility.md §5.5):
//!
//! - rows with `start <= event time <= end`, both ends inclusive;
//! - per entity key, the row with the latest event time, then the latest created time (a
//!   complete tie goes to the row later in the files);
//! - written newest-wins, so a row older than what the store holds changes nothing;
//! - `materialize_incremental`: each view starts at its last materialized end, else
//!   `now - ttl`, else `now - 52 weeks`;
//! - the window is recorded in the registry only after every write succeeded, with a
//!   conditional update ([`registry::record_materialization`]), so a concurrent `apply` or
//!   materialization is never lost.
//!
//! Where Larder differs: views are not put in the MATERIALIZING state while they load (Feast
//! does, which stops them being served meanwhile); a view with nothing new (its last end is at
//! or after the requested end) is left alone instead of recording an empty interval.
//!
//! Memory grows with distinct entities, not rows: row groups stream through workers that keep
//! only the current winner per entity ([`select`]). Row groups whose timestamp statistics fall
//! outside every window are never fetched. Views reading the same file share the reading.
//!
//! A view with window aggregations is backfilled instead ([`backfill`]): every row of its
//! window is an event for its tiles.
//!
//! Three entry points: [`materialize`] does everything in this process; [`plan`],
//! [`run_item`] and [`commit`] split a run across invocations (see [`plan`](mod@plan)).

pub mod backfill;
pub mod plan;
mod progress;
mod scan;
mod select;
mod write;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use serde::{Deserialize, Serialize};

pub use plan::{Plan, RowGroups, WorkItem};
pub use progress::Progress;

use crate::config::RepoConfig;
use crate::error::{Error, Result};
use crate::offline::{Location, ParquetFile};
use crate::online::{OnlineStore, WriteStats};
use crate::registry::{self, FeatureView, Interval, Registry};
use crate::storage::Storage;
use crate::telemetry;
use crate::time::EventTime;
use scan::{Group, OpenFile, Task};

/// Feast's fallback start for a view with no TTL and no earlier materialization.
pub const DEFAULT_LOOKBACK_SECS: i64 = 52 * 7 * 86_400;

/// One view and the window of event times to load for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewWindow {
    pub view: String,
    #[serde(serialize_with = "plan::ser_time", deserialize_with = "plan::de_time")]
    pub start: EventTime,
    #[serde(serialize_with = "plan::ser_time", deserialize_with = "plan::de_time")]
    pub end: EventTime,
}

/// What to materialize.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Feast's `materialize(start, end, feature_views)`: the same window for every view.
    Range { start: EventTime, end: EventTime, views: Option<Vec<String>> },
    /// Feast's `materialize_incremental(end, feature_views)`.
    Incremental { end: EventTime, views: Option<Vec<String>> },
}

impl Request {
    /// The views named, if any (none: every online view).
    pub fn views(&self) -> Option<&[String]> {
        match self {
            Request::Range { views, .. } | Request::Incremental { views, .. } => views.as_deref(),
        }
    }
}

/// The views a request covers and their windows; views with nothing new (incremental, already
/// materialized up to `end`) are listed apart.
pub fn windows(registry: &Registry, req: &Request, now: EventTime) -> Result<(Vec<ViewWindow>, Vec<String>)> {
    let views: Vec<&Arc<FeatureView>> = match req.views() {
        Some(names) => {
            let mut out = Vec::with_capacity(names.len());
            for name in names {
                let v = registry.view(name)?;
                if v.disabled {
                    return Err(Error::BadRequest(format!(
                        "feature view '{name}' is disabled and cannot be materialized"
                    )));
                }
                if !v.online {
                    return Err(Error::BadRequest(format!(
                        "feature view '{name}' is not online (online: false); nothing to materialize"
                    )));
                }
                if !out.iter().any(|o: &&Arc<FeatureView>| o.name == v.name) {
                    out.push(v);
                }
            }
            out
        }
        None => registry.feature_views.values().filter(|v| v.online && !v.disabled).collect(),
    };
    let mut windows = Vec::with_capacity(views.len());
    let mut up_to_date = Vec::new();
    match req {
        Request::Range { start, end, .. } => {
            if start > end {
                return Err(Error::BadRequest(format!("start {start} is after end {end}")));
            }
            windows.extend(views.iter().map(|v| ViewWindow { view: v.name.clone(), start: *start, end: *end }));
        }
        Request::Incremental { end, .. } => {
            for v in views {
                let start = match (v.last_materialized_end(), v.ttl) {
                    (Some(last), _) => last,
                    (None, Some(ttl)) => now.add_secs(-(ttl.as_secs().min(i64::MAX as u64) as i64)),
                    (None, None) => now.add_secs(-DEFAULT_LOOKBACK_SECS),
                };
                if start >= *end {
                    up_to_date.push(v.name.clone());
                } else {
                    windows.push(ViewWindow { view: v.name.clone(), start, end: *end });
                }
            }
        }
    }
    Ok((windows, up_to_date))
}

/// How a run is carried out.
#[derive(Debug, Clone)]
pub struct Options {
    /// Stop starting row groups when the rest would not finish (with the writes and the
    /// registry update) by then; what is left is returned as work items.
    pub deadline: Option<Instant>,
    /// Row groups fetched and decoded at once (default: the CPUs available).
    pub parallelism: usize,
    /// Entity rows per online-store write.
    pub write_batch: usize,
    /// Writes in flight at once.
    pub write_concurrency: usize,
    /// `plan`: rows per work item (an item never spans files).
    pub rows_per_item: u64,
    pub progress: Arc<Progress>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            deadline: None,
            parallelism: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
            write_batch: 1000,
            write_concurrency: 4,
            rows_per_item: 8_000_000,
            progress: Arc::new(Progress::default()),
        }
    }
}

/// What one view got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ViewReport {
    pub view: String,
    #[serde(serialize_with = "plan::ser_time")]
    pub start: EventTime,
    #[serde(serialize_with = "plan::ser_time")]
    pub end: EventTime,
    /// Rows with an event time in the window.
    pub rows_in_window: u64,
    /// Distinct entities found, one row each written.
    pub entities: u64,
    /// Rows the store took, and rows it kept its own (same or newer event time).
    pub written: u64,
    pub not_newer: u64,
    /// Rows left out because a join key was null.
    pub rows_null_key: u64,
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Every row group of every view was read and written.
    pub complete: bool,
    /// The windows were recorded in the registry.
    pub recorded: bool,
    pub views: Vec<ViewReport>,
    pub up_to_date: Vec<String>,
    pub files: usize,
    pub row_groups: usize,
    pub row_groups_skipped: usize,
    pub rows_read: u64,
    pub seconds: f64,
    /// What was not read because the deadline came: run these, then record the windows.
    pub remaining: Vec<WorkItem>,
}

/// Materializes in this process: every file of every view, then records the windows.
pub async fn materialize(
    cfg: &RepoConfig,
    storage: &Storage,
    store: &dyn OnlineStore,
    req: &Request,
    opts: &Options,
) -> Result<Report> {
    let started = Instant::now();
    let run = async {
        let registry = registry::load(cfg, storage).await?;
        let (windows, up_to_date) = windows(&registry, req, EventTime::now())?;
        // Views with window aggregations are backfilled (every row an event), the rest scanned
        // for their newest rows.
        let (backfills, newest): (Vec<ViewWindow>, Vec<ViewWindow>) =
            windows.iter().cloned().partition(|w| registry.view(&w.view).is_ok_and(|v| backfill::aggregates(v)));
        let groups = scan::build_groups(cfg, storage, &registry, &newest)?;
        let mut prepared = Vec::with_capacity(groups.len());
        for g in groups {
            let files = scan::open_group(&g).await?;
            let tasks = all_tasks(&files, None);
            prepared.push((g, files, tasks));
        }
        let mut report = execute(cfg, store, prepared, opts, started).await?;
        for w in &backfills {
            let done = backfill::backfill(cfg, storage, store, registry.view(&w.view)?, w).await?;
            report.files += done.files;
            report.rows_read += done.rows_read;
            report.views.push(done.report);
        }
        report.up_to_date = up_to_date;
        if report.complete && !windows.is_empty() {
            record(cfg, storage, &windows).await?;
            report.recorded = true;
        }
        Ok::<_, Error>(report)
    };
    let report = run.await.inspect_err(|_| telemetry::materialize_run("failed", started.elapsed()))?;
    log_report(&report);
    let outcome = match (report.recorded, report.complete) {
        (true, _) => "recorded",
        (false, true) => "up_to_date",
        (false, false) => "incomplete",
    };
    observe(&report, outcome, started);
    Ok(report)
}

/// Plans a run as work items (see [`plan`](mod@plan)); nothing is written.
pub async fn plan(cfg: &RepoConfig, storage: &Storage, req: &Request, opts: &Options) -> Result<Plan> {
    let registry = registry::load(cfg, storage).await?;
    let (windows, up_to_date) = windows(&registry, req, EventTime::now())?;
    refuse_backfills(&registry, &windows)?;
    let groups = scan::build_groups(cfg, storage, &registry, &windows)?;
    let mut plan =
        Plan { views: windows, items: Vec::new(), files: 0, row_groups: 0, row_groups_skipped: 0, rows: 0, up_to_date };
    for g in &groups {
        let files = scan::open_group(g).await?;
        plan.files += files.len();
        let views: Vec<ViewWindow> = g.views.iter().map(|v| v.window.clone()).collect();
        for f in &files {
            let mut current: Option<WorkItem> = None;
            for rg in 0..f.keep.len() {
                if !f.keep[rg] {
                    plan.row_groups_skipped += 1;
                    continue;
                }
                plan.row_groups += 1;
                plan.rows += f.rows(rg);
                let item = current.get_or_insert_with(|| WorkItem {
                    views: views.clone(),
                    file: f.file.location.to_string(),
                    size: f.file.size,
                    row_groups: RowGroups { start: rg, end: rg },
                    rows: 0,
                });
                item.row_groups.end = rg + 1;
                item.rows += f.rows(rg);
                if item.rows >= opts.rows_per_item {
                    plan.items.extend(current.take());
                }
            }
            plan.items.extend(current);
        }
    }
    tracing::info!(
        views = plan.views.len(),
        files = plan.files,
        items = plan.items.len(),
        rows = plan.rows,
        "materialization planned"
    );
    Ok(plan)
}

/// Materializes one work item. Records nothing: [`commit`] does, once every item is done.
pub async fn run_item(
    cfg: &RepoConfig,
    storage: &Storage,
    store: &dyn OnlineStore,
    item: &WorkItem,
    opts: &Options,
) -> Result<Report> {
    let started = Instant::now();
    let registry = registry::load(cfg, storage).await?;
    refuse_backfills(&registry, &item.views)?;
    let mut groups = scan::build_groups(cfg, storage, &registry, &item.views)?;
    if groups.len() != 1 {
        return Err(Error::BadRequest(format!(
            "the views of a work item must read one source; {} read {} different ones",
            item.views.iter().map(|v| v.view.as_str()).collect::<Vec<_>>().join(", "),
            groups.len()
        )));
    }
    let group = groups.remove(0);
    let location = Location::parse(&item.file, &cfg.repo_dir)?;
    if !location.is_under(&group.root) {
        return Err(Error::BadRequest(format!(
            "work item file {} is not under the views' source {}",
            item.file, group.root
        )));
    }
    let file = scan::open_file(&group, ParquetFile { location, size: item.size }).await?;
    let n = file.keep.len();
    if item.row_groups.start > item.row_groups.end || item.row_groups.end > n {
        return Err(Error::BadRequest(format!(
            "work item row groups {}..{} are outside {} ({n} row groups)",
            item.row_groups.start, item.row_groups.end, item.file
        )));
    }
    let files = vec![file];
    let tasks = all_tasks(&files, Some(item.row_groups.start..item.row_groups.end));
    let report = execute(cfg, store, vec![(group, files, tasks)], opts, started).await?;
    log_report(&report);
    observe(&report, "item", started);
    Ok(report)
}

/// A view's batch source and the path of its parquet files; refused for a view without one or
/// with a source of another kind.
fn parquet_source(view: &FeatureView) -> Result<(&registry::DataSource, &str)> {
    let source = view.offline_source().ok_or_else(|| {
        Error::Unsupported(format!("feature view '{}' has no batch source to materialize from", view.name))
    })?;
    match &source.kind {
        registry::SourceKind::File { path, .. } => Ok((source, path)),
        _ => Err(Error::Unsupported(format!(
            "feature view '{}' reads from a {} source ('{}'); Larder materializes from parquet files (type: file)",
            view.name,
            source.kind_name(),
            source.name
        ))),
    }
}

/// A backfill of window aggregations sorts its whole window, so it cannot be split into work
/// items (yet): a plan naming such a view is refused.
fn refuse_backfills(registry: &Registry, windows: &[ViewWindow]) -> Result<()> {
    match windows.iter().find(|w| registry.view(&w.view).is_ok_and(|v| backfill::aggregates(v))) {
        Some(w) => Err(Error::Unsupported(format!(
            "feature view '{}' has window aggregations: its backfill applies every row of the window in time              order, in one run, so it cannot be split into work items; materialize it in one run (larder              materialize, or the materialize function without plan/item/commit)",
            w.view
        ))),
        None => Ok(()),
    }
}

/// A run's or item's metrics: what it read and wrote, how long it took, how it ended.
fn observe(report: &Report, outcome: &'static str, started: Instant) {
    telemetry::materialize_run(outcome, started.elapsed());
    telemetry::materialize_read(report.rows_read, report.row_groups_skipped as u64);
    for v in &report.views {
        telemetry::materialize_keys(&v.view, v.written);
    }
}

/// Records the windows of a completed run in the registry (conditional, retried).
pub async fn commit(cfg: &RepoConfig, storage: &Storage, windows: &[ViewWindow]) -> Result<()> {
    if windows.is_empty() {
        return Err(Error::BadRequest("commit lists no views".into()));
    }
    record(cfg, storage, windows).await
}

async fn record(cfg: &RepoConfig, storage: &Storage, windows: &[ViewWindow]) -> Result<()> {
    let intervals: Vec<Interval> =
        windows.iter().map(|w| Interval { view: w.view.clone(), start: w.start, end: w.end }).collect();
    registry::record_materialization(cfg, storage, &intervals).await?;
    tracing::info!(views = windows.len(), "materialization recorded in the registry");
    for w in windows {
        telemetry::materialized_until(&w.view, w.end.as_secs_f64());
    }
    Ok(())
}

fn all_tasks(files: &[OpenFile], range: Option<std::ops::Range<usize>>) -> Vec<Task> {
    let mut tasks = Vec::new();
    for (fi, f) in files.iter().enumerate() {
        let r = range.clone().unwrap_or(0..f.keep.len());
        tasks.extend(r.filter(|&rg| f.keep[rg]).map(|rg| Task { file: fi, row_group: rg }));
    }
    tasks
}

/// Scans and writes each group in turn.
async fn execute(
    cfg: &RepoConfig,
    store: &dyn OnlineStore,
    prepared: Vec<(Group, Vec<OpenFile>, Vec<Task>)>,
    opts: &Options,
    started: Instant,
) -> Result<Report> {
    let progress = &opts.progress;
    let mut report = Report {
        complete: true,
        recorded: false,
        views: Vec::new(),
        up_to_date: Vec::new(),
        files: 0,
        row_groups: 0,
        row_groups_skipped: 0,
        rows_read: 0,
        seconds: 0.0,
        remaining: Vec::new(),
    };
    for (_, files, tasks) in &prepared {
        report.files += files.len();
        report.row_groups_skipped += files.iter().map(|f| f.keep.iter().filter(|k| !**k).count()).sum::<usize>();
        let rows: u64 = tasks.iter().map(|t| files[t.file].rows(t.row_group)).sum();
        progress.rows_total.fetch_add(rows, Ordering::Relaxed);
    }
    for (group, files, tasks) in prepared {
        let group = Arc::new(group);
        let files = Arc::new(files);
        let planned = tasks.len();
        // Views reading through one selection share its winners: written together.
        let members = group.members();
        let views: Vec<Vec<&FeatureView>> =
            members.iter().map(|m| m.iter().map(|&i| &*group.views[i].view).collect()).collect();
        let (outcome, per_selection) = if report.complete {
            // The writer takes winners while the scan still reads (see `scan`).
            let (tx, rx) = tokio::sync::mpsc::channel(opts.write_concurrency.max(1) * 2);
            let scanning = scan::scan(group.clone(), files.clone(), tasks, opts, &cfg.project, tx);
            let writing = write::write_settled(cfg, store, &views, rx, opts, progress);
            tokio::try_join!(scanning, writing)?
        } else {
            // An earlier group ran out of time: this one is left whole.
            (scan::ScanOutcome { winners: Vec::new(), stats: Vec::new(), rows_read: 0, remaining: tasks }, Vec::new())
        };
        report.row_groups += planned - outcome.remaining.len();
        report.rows_read += outcome.rows_read;
        if !outcome.remaining.is_empty() {
            report.complete = false;
            report.remaining.extend(remaining_items(&group, &files, &outcome.remaining));
        }
        if outcome.winners.is_empty() {
            continue;
        }
        let mut written: Vec<Option<WriteStats>> = vec![None; group.views.len()];
        for (m, stats) in members.iter().zip(per_selection) {
            for (&i, s) in m.iter().zip(stats) {
                written[i] = Some(s);
            }
        }
        for (v, written) in group.views.iter().zip(written) {
            let winners = &outcome.winners[v.selection];
            let stats = outcome.stats[v.selection];
            let written = written.unwrap_or_default();
            tracing::info!(
                feature_view = %v.view.name,
                rows_in_window = stats.rows_in_window,
                entities = winners.len(),
                written = written.written,
                not_newer = written.skipped,
                "materialized"
            );
            if stats.rows_null_key > 0 {
                tracing::warn!(feature_view = %v.view.name, rows = stats.rows_null_key, source = %group.root, "rows with a null join key were left out");
            }
            report.views.push(ViewReport {
                view: v.view.name.clone(),
                start: v.window.start,
                end: v.window.end,
                rows_in_window: stats.rows_in_window,
                entities: winners.len() as u64,
                written: written.written as u64,
                not_newer: written.skipped as u64,
                rows_null_key: stats.rows_null_key,
            });
        }
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Tasks left over, as work items: one per run of consecutive row groups of a file.
fn remaining_items(group: &Group, files: &[OpenFile], tasks: &[Task]) -> Vec<WorkItem> {
    let views: Vec<ViewWindow> = group.views.iter().map(|v| v.window.clone()).collect();
    let mut items: Vec<(usize, WorkItem)> = Vec::new();
    for t in tasks {
        let f = &files[t.file];
        match items.last_mut() {
            // Only across row groups no view needs: one that was read stays out of the item.
            Some((fi, item))
                if *fi == t.file
                    && item.row_groups.end <= t.row_group
                    && (item.row_groups.end..t.row_group).all(|rg| !f.keep[rg]) =>
            {
                item.row_groups.end = t.row_group + 1;
                item.rows += f.rows(t.row_group);
            }
            _ => items.push((
                t.file,
                WorkItem {
                    views: views.clone(),
                    file: f.file.location.to_string(),
                    size: f.file.size,
                    row_groups: RowGroups { start: t.row_group, end: t.row_group + 1 },
                    rows: f.rows(t.row_group),
                },
            )),
        }
    }
    items.into_iter().map(|(_, i)| i).collect()
}

fn log_report(r: &Report) {
    if r.complete {
        tracing::info!(
            views = r.views.len(),
            files = r.files,
            row_groups = r.row_groups,
            row_groups_skipped = r.row_groups_skipped,
            rows_read = r.rows_read,
            seconds = r.seconds,
            recorded = r.recorded,
            "materialization finished"
        );
    } else {
        let rows: u64 = r.remaining.iter().map(|i| i.rows).sum();
        tracing::warn!(
            remaining_items = r.remaining.len(),
            remaining_rows = rows,
            remaining = %serde_json::to_string(&r.remaining).unwrap_or_default(),
            "materialization stopped before its deadline with work left; nothing was recorded in the registry"
        );
    }
}

#[cfg(test)]
mod tests;
