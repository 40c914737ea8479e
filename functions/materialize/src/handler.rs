//! Events -> Larder's materialization -> a JSON answer.
//!
//! Accepted payloads (samples in `events/`):
//! - an EventBridge scheduled event (`"detail-type": "Scheduled Event"`): incremental up to the
//!   event's `time`, for every online view, or for `detail.feature_views` when the event
//!   carries them;
//! - a rule's constant input or a direct invoke: `{"start", "end", "feature_views"}` (one
//!   window), or `{"end", "incremental": true, "feature_views"}` (`end` defaults to now);
//!   Feast's `start_ts` / `end_ts` names are accepted too;
//! - `{"action": "plan", ...the same fields..., "rows_per_item"}`: work items, no writes;
//! - `{"action": "item", "views", "file", "size", "row_groups"}`: one work item;
//! - `{"action": "commit", "views", "results"?}`: records the windows once all items are done.
//!
//! A run or item that would not finish before the invocation's deadline stops at a row-group
//! boundary, writes what it read, records nothing, and answers `"complete": false` with the
//! rest as `remaining` work items (each invocable as is).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use larder::config::RepoConfig;
use larder::materialize::{self, Options, Request, ViewWindow, WorkItem};
use larder::online::OnlineStore;
use larder::storage::Storage;
use larder::time::EventTime;
use larder::{Error, Result};
use serde::Deserialize;
use serde_json::{Value, json};

/// What the function holds across invocations.
pub struct Services {
    pub config: RepoConfig,
    pub store: Arc<dyn OnlineStore>,
    /// Parquet sources and the registry, local or on S3.
    pub storage: Storage,
    /// Default rows per work item for `plan` (`LARDER_MATERIALIZE_ROWS_PER_ITEM`).
    pub rows_per_item: u64,
}

/// One parsed invocation.
#[derive(Debug, Clone, PartialEq)]
pub enum Invocation {
    Run(Request),
    Plan { request: Request, rows_per_item: Option<u64> },
    Item(WorkItem),
    Commit { views: Vec<ViewWindow>, results: Option<Vec<Value>> },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Direct {
    #[serde(default)]
    action: Option<String>,
    #[serde(default, alias = "start_ts")]
    start: Option<String>,
    #[serde(default, alias = "end_ts")]
    end: Option<String>,
    #[serde(default)]
    feature_views: Option<Vec<String>>,
    #[serde(default)]
    incremental: bool,
    #[serde(default)]
    rows_per_item: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Commit {
    #[allow(dead_code)]
    action: String,
    views: Vec<ViewWindow>,
    #[serde(default)]
    results: Option<Vec<Value>>,
}

#[derive(Deserialize, Default)]
struct ScheduledDetail {
    #[serde(default)]
    feature_views: Option<Vec<String>>,
}

fn time(field: &str, text: Option<&str>, now: EventTime) -> Result<EventTime> {
    match text {
        None => Err(Error::BadRequest(format!("'{field}' is required"))),
        Some(t) if t.eq_ignore_ascii_case("now") => Ok(now),
        Some(t) => EventTime::parse(t).map_err(|e| Error::BadRequest(format!("'{field}': {e}"))),
    }
}

/// Reads an event. `now` is the end of an incremental run that names none.
pub fn parse(event: &Value, now: EventTime) -> Result<Invocation> {
    let obj = event.as_object().ok_or_else(|| Error::BadRequest("the event must be a JSON object".into()))?;
    if obj.contains_key("detail-type") {
        // Only `time` and `detail` are read, each with an error naming it.
        let end = match obj.get("time") {
            None | Some(Value::Null) => now,
            Some(Value::String(t)) => {
                EventTime::parse(t).map_err(|e| Error::BadRequest(format!("EventBridge event, field 'time': {e}")))?
            }
            Some(other) => {
                return Err(Error::BadRequest(format!(
                    "EventBridge event, field 'time': expected an RFC 3339 time in a string, like \"2026-12-04T06:00:00Z\", got {other}"
                )));
            }
        };
        let detail: ScheduledDetail = match obj.get("detail") {
            None | Some(Value::Null) => ScheduledDetail::default(),
            Some(d) => serde_json::from_value(d.clone()).map_err(|e| {
                Error::BadRequest(format!(
                    "EventBridge event, field 'detail': expected an object, with 'feature_views' a list of view names if given ({e})"
                ))
            })?,
        };
        return Ok(Invocation::Run(Request::Incremental { end, views: detail.feature_views }));
    }
    match obj.get("action").and_then(Value::as_str) {
        Some("item") => {
            let mut v = event.clone();
            v.as_object_mut().map(|o| o.remove("action"));
            let item: WorkItem = serde_json::from_value(v).map_err(|e| Error::BadRequest(format!("work item: {e}")))?;
            return Ok(Invocation::Item(item));
        }
        Some("commit") => {
            let c: Commit =
                serde_json::from_value(event.clone()).map_err(|e| Error::BadRequest(format!("commit: {e}")))?;
            return Ok(Invocation::Commit { views: c.views, results: c.results });
        }
        Some("plan" | "run") | None => {}
        Some(other) => {
            return Err(Error::BadRequest(format!("unknown action '{other}' (use run, plan, item or commit)")));
        }
    }
    let d: Direct = serde_json::from_value(event.clone()).map_err(|e| {
        Error::BadRequest(format!(
            "{e}: a materialize event is {{\"start\", \"end\", \"feature_views\"}} or {{\"end\", \"incremental\": true}}"
        ))
    })?;
    let request = if d.incremental {
        if d.start.is_some() {
            return Err(Error::BadRequest(
                "an incremental run takes no 'start': each view starts where it last ended".into(),
            ));
        }
        Request::Incremental { end: time("end", d.end.as_deref().or(Some("now")), now)?, views: d.feature_views }
    } else {
        Request::Range {
            start: time("start", d.start.as_deref(), now)?,
            end: time("end", d.end.as_deref(), now)?,
            views: d.feature_views,
        }
    };
    Ok(match d.action.as_deref() {
        Some("plan") => Invocation::Plan { request, rows_per_item: d.rows_per_item },
        _ => Invocation::Run(request),
    })
}

/// The invocation's deadline as an `Instant` (`None` when the context has none, as in tests).
pub fn deadline(deadline_ms: u64) -> Option<Instant> {
    if deadline_ms == 0 {
        return None;
    }
    // Lambda sends epoch milliseconds. `cargo lambda watch` (the local emulator) sends a fixed
    // 600000, its invoke timeout: read as a time that would be 1970 and stop every run at
    // once. No real deadline is before 2001, so such a small value is a remaining duration.
    const EPOCH_MS_2001: u64 = 1_000_000_000_000;
    if deadline_ms < EPOCH_MS_2001 {
        return Some(Instant::now() + Duration::from_millis(deadline_ms));
    }
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64;
    Some(Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(now_ms)))
}

/// An item as a payload the function takes back.
fn invocable(item: &WorkItem) -> Value {
    let mut v = serde_json::to_value(item).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("action".into(), json!("item"));
    }
    v
}

fn report_json(report: &materialize::Report) -> Value {
    let mut v = serde_json::to_value(report).unwrap_or_default();
    v["remaining"] = Value::Array(report.remaining.iter().map(invocable).collect());
    v
}

/// Runs one invocation.
/// Keys sampled per run to find each view's newest event (one SCAN page per node, then one
/// read per key): enough to see a stream that stopped, cheap next to a materialization.
const FRESHNESS_SAMPLE: usize = 1000;

/// Sets each online view's freshness gauges (`larder_view_*_age_seconds`,
/// `larder_view_staleness_seconds`). Best effort: a failure is logged, never fails the run.
async fn observe_freshness(services: &Services) {
    let now = EventTime::now();
    let measured = async {
        let registry = larder::registry::load(&services.config, &services.storage).await?;
        larder::freshness::freshness(&registry, services.store.as_ref(), FRESHNESS_SAMPLE, now).await
    };
    match measured.await {
        Ok(views) => {
            for v in views {
                let newest = v.newest_age_secs().map(|s| s as f64);
                let materialized = v.materialized_age_secs().map(|s| s as f64);
                larder::telemetry::view_freshness(&v.view, newest, materialized);
                if let Some(until) = v.materialized_until {
                    larder::telemetry::materialized_until(&v.view, until.as_secs_f64());
                }
            }
        }
        Err(e) => tracing::warn!(error = %e.report(), "could not measure the views' freshness"),
    }
}

pub async fn handle(services: &Services, event: Value, deadline: Option<Instant>) -> Result<Value> {
    let invocation = parse(&event, EventTime::now())?;
    tracing::info!(invocation = ?invocation_kind(&invocation), "materialize invoked");
    let opts = Options { deadline, rows_per_item: services.rows_per_item, ..Options::default() };
    match invocation {
        Invocation::Run(request) => {
            let report =
                materialize::materialize(&services.config, &services.storage, services.store.as_ref(), &request, &opts)
                    .await;
            // Whether the run worked or not: the staleness alarm watches these gauges, and a
            // failing run is when it matters most.
            observe_freshness(services).await;
            Ok(report_json(&report?))
        }
        Invocation::Plan { request, rows_per_item } => {
            let opts = Options { rows_per_item: rows_per_item.unwrap_or(services.rows_per_item).max(1), ..opts };
            let plan = materialize::plan(&services.config, &services.storage, &request, &opts).await?;
            let mut v = serde_json::to_value(&plan).unwrap_or_default();
            v["items"] = Value::Array(plan.items.iter().map(invocable).collect());
            v["commit"] = json!({"action": "commit", "views": plan.views});
            Ok(v)
        }
        Invocation::Item(item) => {
            let report =
                materialize::run_item(&services.config, &services.storage, services.store.as_ref(), &item, &opts)
                    .await?;
            Ok(report_json(&report))
        }
        Invocation::Commit { views, results } => {
            if let Some(results) = &results {
                let unfinished = results.iter().filter(|r| r.get("complete") != Some(&Value::Bool(true))).count();
                if unfinished > 0 {
                    return Err(Error::Conflict(format!(
                        "{unfinished} of {} work items did not complete; run their 'remaining' items before committing",
                        results.len()
                    )));
                }
            }
            materialize::commit(&services.config, &services.storage, &views).await?;
            Ok(json!({"recorded": true, "views": views}))
        }
    }
}

fn invocation_kind(i: &Invocation) -> &'static str {
    match i {
        Invocation::Run(Request::Range { .. }) => "run",
        Invocation::Run(Request::Incremental { .. }) => "run-incremental",
        Invocation::Plan { .. } => "plan",
        Invocation::Item(_) => "item",
        Invocation::Commit { .. } => "commit",
    }
}

#[cfg(test)]
mod tests;
