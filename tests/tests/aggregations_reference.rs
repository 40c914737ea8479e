//! Window aggregations against an independent reference. Readings of the `examples/sensors`
//! repo (a one-minute tumbling view and an hour sliding by five minutes, every function) go
//! through the push function's Kinesis handler into a real Redis, standalone and cluster; then
//! get-online-features answers every aggregated feature of every sensor at a fixed time, and
//! each answer must equal what pandas computes over the same events (within 1e-9 relative).
//!
//! The events: out of order within the allowed lateness, some later than it (dead-lettered,
//! not counted), nulls, sensors with huge (1e150), tiny (1e-150) and offset (1e12) readings,
//! a sensor with no events in the windows and one with none at all. The deliveries: a batch
//! delivered twice, and a batch whose first delivery fails partway (Redis write failures) and
//! is then delivered again split in two halves, as Lambda's bisect does. Every event must count
//! exactly once.

mod push_support;

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;

use larder::aws::Aws;
use larder::online::OnlineStore;
use larder::online::testing::FaultyStore;
use larder::push::PushSettings;
use larder::push::dead_letter::{MemorySink, Position};
use larder::registry::aggregation::Aggregation;
use larder::registry::{Registry, RegistryCache, yaml};
use larder::retrieval::{Request, Status, get_online_features};
use larder::time::EventTime;
use larder_tests::peers::venv_bin;
use larder_tests::{RedisCluster, RedisServer, Rng, repo_root, run};
use push_function::{App, event};
use push_support::kinesis_event;
use serde_json::{Value as Json, json};

const PROJECT: &str = "sensors";
const SENSORS: i64 = 12;
const BATCH: usize = 600;

/// The example's views, with the functions the example does not use added: every function in
/// both a tumbling and a sliding window.
fn sensors_registry() -> Registry {
    let text = std::fs::read_to_string(repo_root().join("examples/sensors/features.yaml")).unwrap();
    let mut reg = yaml::parse(&text, "features.yaml", PROJECT, 3).unwrap();
    for (view, functions) in [
        ("sensor_minute", &["sum", "var", "last", "count_distinct"][..]),
        ("sensor_hour", &["min", "std", "sum", "var", "last", "mean", "count_distinct"]),
    ] {
        let mut v = (*reg.feature_views[view]).clone();
        let model = v.aggregations[0].clone();
        for f in functions {
            v.aggregations.push(Aggregation { function: f.to_string(), name: String::new(), ..model.clone() });
        }
        reg.feature_views.insert(view.into(), Arc::new(v));
    }
    reg.reindex();
    reg
}

/// One reading, in stream order.
#[derive(Clone, Debug)]
struct Reading {
    sensor: i64,
    t_us: i64,
    value: Option<f64>,
}

/// Seventy minutes of readings before `now_us`, in stream order.
fn readings(now_us: i64) -> Vec<Reading> {
    let mut rng = Rng(0x0dd5_eed5_1234_5678);
    let start = now_us - 70 * 60_000_000;
    let mut all: Vec<Reading> = Vec::new();
    for sensor in 0..SENSORS {
        // Sensor 11 sends nothing; sensor 10 only in the first five minutes (outside the
        // hour that ends now, inside the tiles kept).
        let until = match sensor {
            11 => continue,
            10 => start + 5 * 60_000_000,
            _ => now_us - 1_000_000,
        };
        let mut t = start + (rng.unit() * 30e6) as i64;
        while t < until {
            let r = rng.unit();
            let value = match sensor % 4 {
                _ if r < 0.04 => None,
                1 => Some(1e150 * (1.0 + r)),
                2 => Some(1e-150 * (1.0 + r)),
                3 => Some(1e12 + r * 1e9),
                // Quarters from 0 to 90: readings repeat, so count_distinct is not count.
                _ => Some((r * 360.0).round() / 4.0),
            };
            all.push(Reading { sensor, t_us: t, value });
            t += 3_000_000 + (rng.unit() * 20e6) as i64;
        }
    }
    // Stream order: by time, with readings moved up to 50 s earlier or later (within the
    // minute view's lateness of 60 s, mostly), and a few much later ones.
    let mut keyed: Vec<(i64, Reading)> = all
        .into_iter()
        .map(|r| {
            let u = rng.unit();
            let shift = if u < 0.02 {
                // Arrives 90 s late (late for the minute view) or 12 min late (late for both).
                if rng.unit() < 0.5 { 90_000_000 } else { 720_000_000 }
            } else {
                ((rng.unit() - 0.5) * 50e6) as i64
            };
            (r.t_us + shift, r)
        })
        .collect();
    keyed.sort_by_key(|(k, _)| *k);
    keyed.into_iter().map(|(_, r)| r).collect()
}

/// The Kinesis records of `readings`: (sequence number, partition key, data).
fn records(readings: &[Reading]) -> Vec<(String, String, Vec<u8>)> {
    readings
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let row = json!({"sensor_id": r.sensor, "event_timestamp": r.t_us, "reading": r.value});
            (format!("4965{:040}", i + 1), r.sensor.to_string(), serde_json::to_vec(&row).unwrap())
        })
        .collect()
}

/// The failed records' sequence numbers of a Kinesis answer.
fn failures(answer: &Json) -> Vec<String> {
    answer["batchItemFailures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap().to_string())
        .collect()
}

/// What pandas says: per view, per sensor, per output feature, the value (null for none).
fn reference(readings: &[Reading], now_us: i64, registry: &Registry) -> Json {
    let views: Vec<Json> = ["sensor_minute", "sensor_hour"]
        .iter()
        .map(|name| {
            let v = &registry.feature_views[*name];
            let lateness: Option<f64> = v.tags.get("larder:allowed_lateness").map(|t| t.parse().unwrap());
            json!({
                "name": name,
                "lateness_s": lateness,
                "aggregations": v.aggregations.iter().map(|a| json!({
                    "output": a.output(),
                    "function": a.function,
                    "window_s": a.window.as_secs(),
                    "slide_s": a.slide.map(|s| s.as_secs()),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let input = json!({
        "now_us": now_us,
        "sensors": (0..SENSORS).collect::<Vec<_>>(),
        "views": views,
        "events": readings.iter().map(|r| json!([r.sensor, r.t_us, r.value])).collect::<Vec<_>>(),
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("input.json");
    std::fs::write(&path, input.to_string()).unwrap();
    let script = repo_root().join("tests/reference/aggregations.py");
    let out = run(Command::new(venv_bin("python")).arg(script).arg(&path));
    serde_json::from_str(out.trim().lines().last().unwrap()).unwrap()
}

fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

/// Pushes the readings (with a duplicate and a failed-then-bisected delivery), reads every
/// aggregated feature at `now`, and checks it against the reference.
async fn pushes_and_reads_like_pandas(store: Arc<dyn OnlineStore>) {
    let now = EventTime::now();
    let now_us = now.as_micros();
    let registry = sensors_registry();
    let all = readings(now_us);
    let faulty = Arc::new(FaultyStore::new(store));
    let config = push_support::config(None);
    let services = larder::api::Services::new(config, RegistryCache::fixed(registry.clone()), faulty.clone());
    let sink = Arc::new(MemorySink::new());
    let settings = PushSettings { default_source: Some("readings".into()), ..Default::default() };
    let app = App::new(services, settings, &Aws::new(), sink.clone());
    let deliver = |recs: &[(String, String, Vec<u8>)]| {
        let e = event::parse(&kinesis_event("readings", recs)).unwrap();
        let app = &app;
        async move { app.handle_event(e).await.unwrap() }
    };

    let recs = records(&all);
    for (b, batch) in recs.chunks(BATCH).enumerate() {
        match b {
            // Delivered twice.
            1 => {
                assert!(failures(&deliver(batch).await).is_empty());
                assert!(failures(&deliver(batch).await).is_empty());
            }
            // The first delivery fails partway through applying the tiles (one view applied,
            // the other not); Lambda then bisects the batch. A lane's events (and the rows of
            // aggregating views, which travel with them) are applied at its end, so a failure
            // there fails it from its first event: the whole batch, of which the applied part
            // counts once on redelivery.
            3 => {
                faulty.fail_after(1);
                let before = faulty.writes();
                let failed = failures(&deliver(batch).await);
                // One store call went through (the first view's tiles, rows and final values)
                // before the second failed: the batch failed partway, not at its first call.
                assert_eq!(faulty.writes() - before, 1);
                faulty.heal();
                assert_eq!(failed.len(), batch.len(), "failed from the first record with an event");
                let (a, z) = batch.split_at(batch.len() / 2);
                assert!(failures(&deliver(a).await).is_empty());
                assert!(failures(&deliver(z).await).is_empty());
            }
            _ => assert!(failures(&deliver(batch).await).is_empty()),
        }
    }

    let want = reference(&all, now_us, &registry);
    // Late records are dead-lettered once each, with their reason.
    let mut late: Vec<i64> = sink
        .letters()
        .iter()
        .map(|l| {
            assert_eq!(l.code, "late_event", "{}", l.reason);
            match &l.position {
                Position::Kinesis { sequence_number, .. } => sequence_number[4..].parse::<i64>().unwrap() - 1,
                other => panic!("{other:?}"),
            }
        })
        .collect();
    late.sort();
    let want_late: Vec<i64> = want["late"].as_array().unwrap().iter().map(|i| i.as_i64().unwrap()).collect();
    assert!(!want_late.is_empty());
    assert_eq!(late, want_late, "late records");

    let mut features = Vec::new();
    for view in ["sensor_minute", "sensor_hour"] {
        for a in &registry.feature_views[view].aggregations {
            features.push(format!("{view}:{}", a.output()));
        }
    }
    let body = json!({"features": features, "entities": {"sensor_id": (0..SENSORS).collect::<Vec<_>>()},
                      "full_feature_names": true});
    let req = Request::parse(body.to_string().as_bytes()).unwrap();
    let answer = get_online_features(&registry, faulty.as_ref(), &req, 1000, now).await.unwrap();
    let mut checked = BTreeMap::new();
    for col in &answer.columns[1..] {
        let (view, output) = col.name.split_once("__").unwrap();
        for (s, ((value, status), ts)) in col.values.iter().zip(&col.statuses).zip(&col.event_timestamps).enumerate() {
            let expected = &want["views"][view][s.to_string()][output];
            let got = larder::value::to_json(value);
            match expected.as_f64() {
                None => {
                    assert_eq!(got, Json::Null, "{view}:{output}, sensor {s}: want null");
                    assert_eq!(*status, Status::NullValue, "{view}:{output}, sensor {s}");
                }
                Some(x) => {
                    let y = got.as_f64().unwrap_or_else(|| panic!("{view}:{output}, sensor {s}: {got}"));
                    assert!(close(x, y), "{view}:{output}, sensor {s}: got {y}, pandas {x}");
                    assert_eq!(*status, Status::Present);
                    *checked.entry(output.to_string()).or_insert(0) += 1;
                }
            }
            // The newest tile with data in the window ends the answer's timestamp.
            let newest = &want["views"][view][s.to_string()]["__newest_us"];
            match newest.as_i64() {
                Some(us) => assert_eq!(*ts, EventTime::from_micros(us), "{view}:{output}, sensor {s}"),
                None => assert_eq!(*ts, EventTime::EPOCH),
            }
        }
    }
    // Every output was compared on real numbers for most sensors.
    for (output, n) in &checked {
        assert!(*n >= 8, "{output}: {n} sensors with values");
    }
    assert_eq!(checked.len(), features.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_redis_answers_like_pandas() {
    let server = RedisServer::start();
    let store = larder::online::redis::RedisStore::open(
        &server.connection_string(),
        larder::config::RedisType::Redis,
        Default::default(),
    )
    .unwrap();
    pushes_and_reads_like_pandas(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_answers_like_pandas() {
    let cluster = RedisCluster::start();
    let store = larder::online::redis::RedisStore::open(
        &cluster.connection_string(),
        larder::config::RedisType::RedisCluster,
        Default::default(),
    )
    .unwrap();
    pushes_and_reads_like_pandas(Arc::new(store)).await;
}
