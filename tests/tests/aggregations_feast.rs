//! Feast reads Larder's window aggregations. `larder apply` of the `examples/sensors` repo
//! declares every aggregation's output in its stream views' schemas; pushes of readings then
//! store, beside the tiles, each output's value over the window ending with the sensor's newest
//! event as an ordinary feature of the view. Feast 0.67's own SDK, on the same Redis, must
//! answer exactly what Larder's get-online-features answers for those windows (Larder's answers
//! are checked against pandas in aggregations_reference.rs), and the plain feature too.

use std::collections::BTreeMap;
use std::sync::Arc;

use larder::online::WriteOptions;
use larder::push::PushRequest;
use larder::registry::RegistryCache;
use larder::retrieval::{Request, get_online_features};
use larder::time::EventTime;
use larder_tests::feast::FeastRepo;
use larder_tests::{RedisServer, Rng};
use serde_json::{Value as Json, json};

const SENSORS: i64 = 6;
const MINUTE: i64 = 60_000_000;
const FIVE_MINUTES: i64 = 5 * MINUTE;

fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-12 * a.abs().max(b.abs())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feast_serves_the_final_values_larder_computes() {
    let redis = RedisServer::start();
    let (dir, _, reg) = larder_tests::example::applied("sensors", &redis.addr()).await;
    let store = larder::online::redis::RedisStore::open(
        &redis.connection_string(),
        larder::config::RedisType::Redis,
        Default::default(),
    )
    .unwrap();
    let cache = Arc::new(RegistryCache::fixed(reg.clone()));

    // Readings over the last two hours, out of order, some null; sensor 5 gets none.
    let now = EventTime::now().as_micros();
    let mut rng = Rng(0x00fe_a570_0042);
    let mut newest: BTreeMap<i64, i64> = BTreeMap::new();
    let mut pushes = 0;
    for batch in 0..8 {
        let (mut ids, mut times, mut values) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..60 {
            let sensor = (rng.next() % (SENSORS as u64 - 1)) as i64;
            // Batches move forward in time; within one, up to a minute out of order.
            let t = now - 2 * 3600 * 1_000_000 + batch * 15 * MINUTE + (rng.next() % (15 * MINUTE as u64)) as i64;
            let v = match rng.next() % 10 {
                0 => Json::Null,
                _ => json!((rng.next() % 10_000) as f64 / 100.0 - 20.0),
            };
            let at = newest.entry(sensor).or_insert(i64::MIN);
            *at = (*at).max(t);
            ids.push(sensor);
            times.push(EventTime::from_micros(t).to_rfc3339());
            values.push(v);
        }
        let body = json!({"push_source_name": "readings", "to": "online",
                          "df": {"sensor_id": ids, "event_timestamp": times, "reading": values}});
        let push = PushRequest::parse(body.to_string().as_bytes()).unwrap().into_push().unwrap();
        let stats = larder::push::apply(&cache, &store, WriteOptions::default(), &push).await.unwrap();
        assert!(stats.aggregated > 0 && stats.written > 0, "{stats:?}");
        pushes += 1;
    }
    assert_eq!(pushes, 8);

    // What Larder answers for the window ending with each sensor's newest event: the sliding
    // hour as of that event, the minute holding it once it closes.
    let outputs =
        |view: &str| -> Vec<String> { reg.feature_views[view].outputs.iter().map(|f| f.name.clone()).collect() };
    let mut larder_says: BTreeMap<(String, i64), (Json, i64)> = BTreeMap::new();
    for (view, at) in [("sensor_minute", true), ("sensor_hour", false)] {
        for (&sensor, &m) in &newest {
            let (as_of, end) = if at {
                let end = (m.div_euclid(MINUTE) + 1) * MINUTE;
                (end, end)
            } else {
                (m, (m.div_euclid(FIVE_MINUTES) + 1) * FIVE_MINUTES)
            };
            let features: Vec<String> = outputs(view).iter().map(|o| format!("{view}:{o}")).collect();
            let body = json!({"features": features, "entities": {"sensor_id": [sensor]}, "full_feature_names": true});
            let req = Request::parse(body.to_string().as_bytes()).unwrap();
            let answer = get_online_features(&reg, &store, &req, 10, EventTime::from_micros(as_of)).await.unwrap();
            let mut values = serde_json::Map::new();
            for col in &answer.columns[1..] {
                values.insert(col.name.split_once("__").unwrap().1.to_string(), larder::value::to_json(&col.values[0]));
            }
            larder_says.insert((view.to_string(), sensor), (Json::Object(values), end));
        }
    }

    // Feast's SDK on the same Redis (Feast does not read the example's `${VAR:-default}`).
    let yaml_path = dir.path().join("feature_store.yaml");
    let yaml = std::fs::read_to_string(&yaml_path).unwrap().replace("${REDIS_ADDR:-localhost:6379}", &redis.addr());
    std::fs::write(&yaml_path, yaml).unwrap();
    let repo = FeastRepo { dir, redis_addr: redis.addr() };
    let features: Vec<String> = ["sensor_minute", "sensor_hour"]
        .iter()
        .flat_map(|v| outputs(v).into_iter().map(move |o| format!("{v}:{o}")))
        .chain(["sensor_minute:reading".to_string()])
        .collect();
    let out = repo.python(&format!(
        r#"
import json
from feast import FeatureStore
fs = FeatureStore(repo_path=".")
resp = fs.get_online_features(features={features}, entity_rows=[{{"sensor_id": s}} for s in range({SENSORS})],
                              full_feature_names=True)
print(json.dumps(resp.to_dict(include_event_timestamps=True), default=str))
"#,
        features = serde_json::to_string(&features).unwrap()
    ));
    let feast: Json = serde_json::from_str(out.trim().lines().last().unwrap()).unwrap();
    let mut compared = 0;
    for ((view, sensor), (values, end)) in &larder_says {
        for o in outputs(view) {
            let got = &feast[format!("{view}__{o}")][*sensor as usize];
            let want = &values[&o];
            match (want.as_f64(), got.as_f64()) {
                (Some(a), Some(b)) => assert!(close(a, b), "{view}:{o}, sensor {sensor}: Feast {b}, Larder {a}"),
                _ => assert_eq!(got, want, "{view}:{o}, sensor {sensor}: {feast}"),
            }
            compared += usize::from(!want.is_null());
        }
        // The view's event timestamp (Feast gives whole seconds): the window's end, moved on a
        // microsecond per later write to the same window (it only ever increases).
        for o in outputs(view) {
            let ts = &feast[format!("{view}__{o}__ts")][*sensor as usize];
            assert_eq!(ts.as_i64(), Some(end / 1_000_000), "{view}:{o}, sensor {sensor}: {ts} vs window end {end}");
        }
    }
    assert!(compared >= 30, "{compared} of 40 values compared (the rest null in both)");
    // The plain feature is the newest reading, as newest-wins keeps it; the sensor without
    // readings answers nothing.
    assert!(feast["sensor_minute__reading"][5].is_null());
    assert!(feast["sensor_minute__avg_reading_60s"][5].is_null());
    let plain = larder_plain(&reg, &store, now).await;
    for s in 0..SENSORS - 1 {
        assert_eq!(feast["sensor_minute__reading"][s as usize], plain[s as usize], "sensor {s}");
    }
}

/// Larder's answer for the plain feature of every sensor.
async fn larder_plain(
    reg: &larder::registry::Registry,
    store: &dyn larder::online::OnlineStore,
    now: i64,
) -> Vec<Json> {
    let body =
        json!({"features": ["sensor_minute:reading"], "entities": {"sensor_id": (0..SENSORS).collect::<Vec<_>>()}});
    let req = Request::parse(body.to_string().as_bytes()).unwrap();
    let answer = get_online_features(reg, store, &req, 10, EventTime::from_micros(now)).await.unwrap();
    answer.columns[1].values.iter().map(larder::value::to_json).collect()
}
