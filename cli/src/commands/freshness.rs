//! `larder freshness [--sample N]`: per online feature view, the newest event found in a sample
//! of the online store's keys and the end of the last materialized interval, each with its age.
//! The two fall behind for different reasons (a stalled stream or push; a materialization that
//! did not run), so both are shown. `--json` for scripts and alarms.

use clap::Args;
use larder::Result;
use larder::aws::Aws;
use larder::freshness::{self, ViewFreshness, format_age};
use larder::storage::Storage;
use larder::time::EventTime;
use serde_json::json;

use super::RepoArgs;
use super::table::Table;

#[derive(Args)]
pub struct FreshnessArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// Keys of the online store to sample (at least 1).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub sample: u32,
    /// Print JSON: one object per view, ages in seconds.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(a: FreshnessArgs, aws: &Aws) -> Result<()> {
    let cfg = a.repo.config()?;
    let registry = larder::registry::load(&cfg, &Storage::new(aws)).await?;
    let store = larder::online::connect_now(&cfg, aws).await?;
    let report = freshness::freshness(&registry, store.as_ref(), a.sample as usize, EventTime::now()).await?;
    if a.json {
        let views: Vec<serde_json::Value> = report.iter().map(to_json).collect();
        println!("{}", serde_json::to_string_pretty(&views).unwrap_or_default());
        return Ok(());
    }
    if report.is_empty() {
        println!("no online feature views in project '{}'", registry.project);
        return Ok(());
    }
    let mut t = Table::new(["VIEW", "NEWEST EVENT", "AGE", "KEYS WITH VIEW", "MATERIALIZED UNTIL", "AGE"]);
    for f in &report {
        t.row([
            f.view.clone(),
            time_text(f.newest_event),
            f.newest_age_secs().map_or_else(|| "-".into(), format_age),
            format!("{} of {}", f.keys_with_view, f.sampled_keys),
            time_text(f.materialized_until),
            f.materialized_age_secs().map_or_else(|| "-".into(), format_age),
        ]);
    }
    print!("{}", t.render(0));
    Ok(())
}

fn time_text(t: Option<EventTime>) -> String {
    t.map_or_else(|| "-".into(), |t| t.to_string())
}

fn to_json(f: &ViewFreshness) -> serde_json::Value {
    json!({
        "view": f.view,
        "newest_event": f.newest_event.map(|t| t.to_string()),
        "newest_event_age_seconds": f.newest_age_secs(),
        "sampled_keys": f.sampled_keys,
        "keys_with_view": f.keys_with_view,
        "materialized_until": f.materialized_until.map(|t| t.to_string()),
        "materialized_age_seconds": f.materialized_age_secs(),
        "as_of": f.as_of.to_string(),
    })
}
