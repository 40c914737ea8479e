//! `larder materialize START END` and `larder materialize-incremental END`: parquet history into
//! the online store, as `feast materialize` / `feast materialize-incremental` do.
//!
//! On a terminal a progress bar shows rows read, rows per second and keys written; otherwise
//! (CI, logs) a plain line every few seconds. The summary goes to stdout (`--json` for the full
//! report).

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use larder::aws::Aws;
use larder::materialize::{self, Options, Progress, Report, Request};
use larder::storage::Storage;
use larder::time::EventTime;
use larder::{Error, Result};

use super::RepoArgs;

#[derive(Args)]
pub struct CommonArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// Only these feature views (comma-separated); default: every online view.
    #[arg(long, value_delimiter = ',')]
    pub views: Option<Vec<String>>,
    /// Row groups read at once (default: the number of CPUs).
    #[arg(long)]
    pub parallelism: Option<usize>,
    /// Print the full report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct MaterializeArgs {
    /// Start of the window (inclusive), e.g. 2024-01-01T00:00:00 (UTC unless an offset is given).
    pub start: String,
    /// End of the window (inclusive), or `now`.
    pub end: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Args)]
pub struct IncrementalArgs {
    /// End of the window (inclusive), or `now`; each view starts where its last run ended.
    pub end: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

fn time(field: &str, text: &str) -> Result<EventTime> {
    if text.eq_ignore_ascii_case("now") {
        return Ok(EventTime::now());
    }
    EventTime::parse(text).map_err(|e| Error::BadRequest(format!("{field}: {e}")))
}

pub async fn run(a: MaterializeArgs, aws: &Aws) -> Result<()> {
    let req =
        Request::Range { start: time("START", &a.start)?, end: time("END", &a.end)?, views: a.common.views.clone() };
    execute(&a.common, aws, req).await
}

pub async fn run_incremental(a: IncrementalArgs, aws: &Aws) -> Result<()> {
    let req = Request::Incremental { end: time("END", &a.end)?, views: a.common.views.clone() };
    execute(&a.common, aws, req).await
}

async fn execute(common: &CommonArgs, aws: &Aws, req: Request) -> Result<()> {
    let cfg = common.repo.config()?;
    let store = larder::online::connect(&cfg, aws).await?;
    let mut opts = Options::default();
    if let Some(p) = common.parallelism {
        opts.parallelism = p.max(1);
    }
    let reporter = tokio::spawn(watch(opts.progress.clone()));
    let result = materialize::materialize(&cfg, &Storage::new(aws), store.as_ref(), &req, &opts).await;
    reporter.abort();
    let _ = reporter.await;
    let report = result?;
    if common.json {
        println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
    } else {
        print!("{}", summary(&report));
    }
    if !report.complete {
        return Err(Error::unavailable("materialization stopped early; nothing was recorded"));
    }
    Ok(())
}

/// Shows progress until aborted: a bar on a terminal, a line every 5 s otherwise.
async fn watch(progress: Arc<Progress>) {
    let started = Instant::now();
    let snapshot = || {
        let read = progress.rows_read.load(Ordering::Relaxed);
        let rate = read as f64 / started.elapsed().as_secs_f64().max(1e-3);
        (progress.rows_total.load(Ordering::Relaxed), read, rate, progress.keys_written.load(Ordering::Relaxed))
    };
    if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} rows  {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        // Dropped with the task when aborted: clears the line.
        struct Clear(ProgressBar);
        impl Drop for Clear {
            fn drop(&mut self) {
                self.0.finish_and_clear();
            }
        }
        let bar = Clear(bar);
        loop {
            let (total, read, rate, written) = snapshot();
            bar.0.set_length(total);
            bar.0.set_position(read);
            bar.0.set_message(format!("{:.0} rows/s  {written} keys written", rate));
            bar.0.tick();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    } else {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            let (total, read, rate, written) = snapshot();
            eprintln!("materialize: read {read} of {total} rows ({rate:.0} rows/s), {written} keys written");
        }
    }
}

fn summary(r: &Report) -> String {
    let mut out = String::new();
    for v in &r.views {
        out.push_str(&format!(
            "{}: {} to {}: {} rows in window, {} entities, {} written, {} not newer than stored\n",
            v.view, v.start, v.end, v.rows_in_window, v.entities, v.written, v.not_newer
        ));
        if v.rows_null_key > 0 {
            out.push_str(&format!("  {} rows left out: null join key\n", v.rows_null_key));
        }
    }
    for name in &r.up_to_date {
        out.push_str(&format!("{name}: already materialized up to the end given; nothing to do\n"));
    }
    out.push_str(&format!(
        "{} rows read from {} files ({} row groups, {} skipped on statistics) in {:.2}s; {}\n",
        r.rows_read,
        r.files,
        r.row_groups,
        r.row_groups_skipped,
        r.seconds,
        if r.recorded { "recorded in the registry" } else { "not recorded" }
    ));
    out
}
