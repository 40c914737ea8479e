//! The handler on the sample events in `events/`, and a plan / item / commit run over an
//! in-memory store on the example repo.

use std::sync::Arc;
use std::time::{Duration, Instant};

use larder::config::RepoConfig;
use larder::online::memory::MemoryStore;
use larder::proto::types::value::Val;
use serde_json::{Value, json};

use super::*;

macro_rules! event {
    ($name:literal) => {
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/", $name))
    };
}

fn t(s: &str) -> EventTime {
    EventTime::parse(s).unwrap()
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

#[test]
fn sample_events_parse() {
    let now = t("2030-01-01T00:00:00Z");
    let views = |v: &[&str]| Some(v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    assert_eq!(
        parse(&json_of(event!("eventbridge-scheduled.json")), now).unwrap(),
        Invocation::Run(Request::Incremental { end: t("2026-11-20T06:00:00Z"), views: None })
    );
    assert_eq!(
        parse(&json_of(event!("eventbridge-scheduled-views.json")), now).unwrap(),
        Invocation::Run(Request::Incremental {
            end: t("2026-11-20T06:00:00Z"),
            views: views(&["driver_hourly_stats"])
        })
    );
    assert_eq!(
        parse(&json_of(event!("eventbridge-rule-input.json")), now).unwrap(),
        Invocation::Run(Request::Incremental { end: now, views: views(&["driver_hourly_stats", "driver_fresh"]) })
    );
    assert_eq!(
        parse(&json_of(event!("materialize-direct.json")), now).unwrap(),
        Invocation::Run(Request::Range {
            start: t("2026-11-19T00:00:00Z"),
            end: t("2026-11-20T00:00:00Z"),
            views: views(&["driver_hourly_stats"])
        })
    );
    assert_eq!(
        parse(&json_of(event!("materialize-incremental.json")), now).unwrap(),
        Invocation::Run(Request::Incremental { end: t("2026-11-20T00:00:00Z"), views: None })
    );
    assert_eq!(
        parse(&json_of(event!("materialize-plan.json")), now).unwrap(),
        Invocation::Plan {
            request: Request::Incremental { end: t("2026-11-20T00:00:00Z"), views: None },
            rows_per_item: Some(4_000_000)
        }
    );
    let Invocation::Item(item) = parse(&json_of(event!("materialize-item.json")), now).unwrap() else {
        panic!("an item")
    };
    assert_eq!(
        (item.file.as_str(), item.row_groups.start, item.row_groups.end),
        ("s3://larder-example/driver_stats/part-00000.parquet", 0, 8)
    );
    // Round trip: what the function answers for remaining work parses back to the same item.
    assert_eq!(parse(&invocable(&item), now).unwrap(), Invocation::Item(item.clone()));
    let Invocation::Commit { views: windows, results } =
        parse(&json_of(event!("materialize-commit.json")), now).unwrap()
    else {
        panic!("a commit")
    };
    assert_eq!(windows.len(), 2);
    assert_eq!(results.map(|r| r.len()), Some(2));
    let again = serde_json::to_value(&windows).unwrap();
    assert_eq!(again, json_of(event!("materialize-commit.json"))["views"]);
}

#[test]
fn bad_events_are_named() {
    let now = EventTime::now();
    let err = |v: Value| parse(&v, now).unwrap_err().to_string();
    assert!(err(json!({"end": "2026-01-01"})).contains("'start' is required"));
    assert!(err(json!({"start": "yesterday", "end": "2026-01-01"})).contains("'start'"));
    assert!(err(json!({"end": "2026-01-01", "feature_view": ["x"]})).contains("feature_view"));
    assert!(err(json!({"action": "explode"})).contains("explode"));
    assert!(err(json!({"action": "item", "file": "x"})).contains("work item"));
    assert!(err(json!({"incremental": true, "start": "2026-01-01"})).contains("no 'start'"));
    assert!(err(json!([1])).contains("JSON object"));
    // A scheduled event's own fields are named too.
    let bad_time = err(json_of(event!("eventbridge-bad-time.json")));
    assert!(
        bad_time.contains("'time'") && bad_time.contains("not a time") && bad_time.contains("RFC 3339"),
        "{bad_time}"
    );
    let mut e = json_of(event!("eventbridge-scheduled.json"));
    e["time"] = json!(1767225600);
    assert!(err(e.clone()).contains("'time'"), "{}", err(e));
    let mut e = json_of(event!("eventbridge-scheduled.json"));
    e["detail"] = json!({"feature_views": "driver_hourly_stats"});
    assert!(err(e.clone()).contains("'detail'"), "{}", err(e));
}

/// Per driver, the newest row's (event time in microseconds, conv_rate) of an example file.
fn newest_rows(path: &std::path::Path) -> std::collections::BTreeMap<i64, (i64, f32)> {
    use arrow_array::{Array, Float32Array, Int64Array, TimestampMicrosecondArray};
    let reader =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap())
            .unwrap()
            .build()
            .unwrap();
    let mut newest = std::collections::BTreeMap::new();
    for batch in reader {
        let batch = batch.unwrap();
        let col = |n: &str| batch.column_by_name(n).unwrap().clone();
        let (ids, ts, conv) = (col("driver_id"), col("event_timestamp"), col("conv_rate"));
        let ids = ids.as_any().downcast_ref::<Int64Array>().unwrap();
        let ts = ts.as_any().downcast_ref::<TimestampMicrosecondArray>().unwrap();
        let conv = conv.as_any().downcast_ref::<Float32Array>().unwrap();
        for i in 0..batch.num_rows() {
            let e = newest.entry(ids.value(i)).or_insert((i64::MIN, 0.0));
            if ts.value(i) > e.0 {
                *e = (ts.value(i), conv.value(i));
            }
        }
    }
    newest
}

fn write_repo(dir: &std::path::Path) -> RepoConfig {
    std::fs::write(
        dir.join("feature_store.yaml"),
        "project: driver_demo\nregistry: data/registry.db\nprovider: local\n",
    )
    .unwrap();
    // The source is a folder of two files, one day each: two work items.
    let yaml = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/driver/features.yaml"))
        .replace("data/driver_stats.parquet", "data/driver_stats/");
    std::fs::write(dir.join("features.yaml"), yaml).unwrap();
    for (name, end) in [("a.parquet", "2026-11-19T00:00:00Z"), ("b.parquet", "2026-11-20T00:00:00Z")] {
        larder::example_data::write_driver_stats(&dir.join("data/driver_stats").join(name), 50, 24, t(end), 3).unwrap();
    }
    RepoConfig::load_with(Some(dir), &|_| None).unwrap()
}

#[tokio::test]
async fn plan_items_commit_and_deadlines() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_repo(dir.path());
    larder::registry::apply(&config, &larder::storage::Storage::default(), false).await.unwrap();
    let store = Arc::new(MemoryStore::new());
    let services =
        Services { config: config.clone(), store: store.clone(), storage: Default::default(), rows_per_item: 500 };
    let window = json!({"start": "2026-11-18T00:00:00Z", "end": "2026-11-20T00:00:00Z"});

    // A run with no time left: nothing read, nothing recorded, the rest handed back.
    let soon = Some(Instant::now() + Duration::from_millis(100));
    let out = handle(&services, window.clone(), soon).await.unwrap();
    assert_eq!((out["complete"].clone(), out["recorded"].clone()), (json!(false), json!(false)));
    let remaining = out["remaining"].as_array().unwrap().clone();
    assert_eq!(remaining.len(), 2, "one item per file left");
    assert_eq!(remaining[0]["action"], "item");
    assert!(store.is_empty());

    // Plan, run every item (last first), commit with the results.
    let mut plan_event = window.clone();
    plan_event["action"] = json!("plan");
    let plan = handle(&services, plan_event, None).await.unwrap();
    let items = plan["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 2, "{plan}");
    let mut results = Vec::new();
    for item in items.iter().rev() {
        let r = handle(&services, item.clone(), None).await.unwrap();
        assert_eq!(r["recorded"], json!(false));
        results.push(r);
    }
    assert_eq!(store.len(), 50);
    let reg = larder::registry::load(&config, &larder::storage::Storage::default()).await.unwrap();
    assert!(reg.view("driver_hourly_stats").unwrap().materialization_intervals.is_empty());
    // Each driver's newest row of the window (file b's last hour), as the parquet crate reads it.
    let newest = newest_rows(&dir.path().join("data/driver_stats/b.parquet"));
    assert_eq!(newest.len(), 50);
    let view = reg.view("driver_hourly_stats").unwrap();
    for (driver, (micros, conv_rate)) in &newest {
        let id = larder::proto::types::Value { val: Some(Val::Int64Val(*driver)) };
        let key = view.layout.key_encoder.redis_key(&[&id], "driver_demo").unwrap();
        let hash = store.hash(&key).unwrap_or_else(|| panic!("driver {driver} not written"));
        let at = EventTime::from_proto_bytes(&hash[&larder::keys::ts_field("driver_hourly_stats")]).unwrap();
        assert_eq!(at, EventTime::from_micros(*micros), "driver {driver}");
        let conv = larder::value::encode(&larder::proto::types::Value { val: Some(Val::FloatVal(*conv_rate)) });
        assert_eq!(hash[&larder::keys::feature_field("driver_hourly_stats", "conv_rate")[..]], conv, "driver {driver}");
    }

    let mut commit = plan["commit"].clone();
    commit["results"] = json!([{"complete": false}]);
    assert!(handle(&services, commit.clone(), None).await.unwrap_err().to_string().contains("did not complete"));
    commit["results"] = Value::Array(results);
    let done = handle(&services, commit, None).await.unwrap();
    assert_eq!(done["recorded"], json!(true));
    let reg = larder::registry::load(&config, &larder::storage::Storage::default()).await.unwrap();
    for v in ["driver_hourly_stats", "driver_fresh"] {
        assert_eq!(
            reg.view(v).unwrap().materialization_intervals,
            vec![(t("2026-11-18T00:00:00Z"), t("2026-11-20T00:00:00Z"))],
            "{v}"
        );
    }

    // A scheduled event then goes on from there.
    let out = handle(&services, json_of(event!("eventbridge-scheduled.json")), None).await.unwrap();
    assert_eq!(out["complete"], json!(true));
    assert_eq!(out["views"][0]["start"], json!("2026-11-20T00:00:00Z"));
    assert_eq!(out["views"][0]["rows_in_window"], json!(0), "the data ends before 2026-11-20");
}

#[test]
fn deadlines_in_epoch_ms_and_the_emulators_relative_ms() {
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let left = |d: Option<Instant>| d.unwrap().saturating_duration_since(Instant::now());
    let real = left(deadline(now_ms + 60_000));
    assert!(real > Duration::from_secs(55) && real <= Duration::from_secs(60), "{real:?}");
    // cargo lambda watch sends 600000: ten minutes from now, not 1970.
    let emulated = left(deadline(600_000));
    assert!(emulated > Duration::from_secs(595) && emulated <= Duration::from_secs(600), "{emulated:?}");
    assert_eq!(deadline(0), None);
}
