//! Stream and batch agree: the same readings of the `examples/sensors` repo go through the push
//! function's Kinesis handler into one Redis, and from a parquet file through `larder
//! materialize` (a backfill of the stream views' tiles) into another. get-online-features
//! must then answer the same for every aggregated feature of every sensor (up to rounding: the
//! two paths merge the same values in different groupings), and the same plain feature. A
//! second materialization of the same window counts nothing twice.

mod push_support;

use std::process::Command;
use std::sync::Arc;

use larder::aws::Aws;
use larder::materialize::{self, Request};
use larder::online::OnlineStore;
use larder::online::redis::RedisStore;
use larder::push::PushSettings;
use larder::push::dead_letter::MemorySink;
use larder::registry::{Registry, RegistryCache};
use larder::retrieval::{Request as Read, Response, get_online_features};
use larder::time::EventTime;
use larder_tests::peers::venv_bin;
use larder_tests::{RedisServer, Rng, run};
use push_function::{App, event};
use push_support::kinesis_event;
use serde_json::json;

const SENSORS: i64 = 8;

fn open(server: &RedisServer) -> Arc<dyn OnlineStore> {
    Arc::new(
        RedisStore::open(&server.connection_string(), larder::config::RedisType::Redis, Default::default()).unwrap(),
    )
}

/// Every output of both views and the plain reading, for every sensor, at `now`.
async fn read_all(reg: &Registry, store: &dyn OnlineStore, now: EventTime) -> Response {
    let mut features = vec!["sensor_minute:reading".to_string()];
    for view in ["sensor_minute", "sensor_hour"] {
        features.extend(reg.feature_views[view].aggregations.iter().map(|a| format!("{view}:{}", a.output())));
    }
    let body = json!({"features": features, "entities": {"sensor_id": (0..SENSORS).collect::<Vec<_>>()},
                      "full_feature_names": true});
    get_online_features(reg, store, &Read::parse(body.to_string().as_bytes()).unwrap(), 100, now).await.unwrap()
}

/// The two answers agree: values within 1e-12 relative, statuses equal, and the timestamps of
/// aggregated features (the newest tile with data) equal.
fn assert_agree(stream: &Response, batch: &Response) -> usize {
    let mut compared = 0;
    for (s, b) in stream.columns.iter().zip(&batch.columns).skip(1) {
        assert_eq!(s.name, b.name);
        for i in 0..s.values.len() {
            let (x, y) = (larder::value::to_json(&s.values[i]), larder::value::to_json(&b.values[i]));
            match (x.as_f64(), y.as_f64()) {
                (Some(x), Some(y)) => {
                    assert!(
                        x == y || (x - y).abs() <= 1e-12 * x.abs().max(y.abs()),
                        "{}, sensor {i}: {x} vs {y}",
                        s.name
                    );
                    compared += 1;
                }
                _ => assert_eq!(x, y, "{}, sensor {i}", s.name),
            }
            assert_eq!(s.statuses[i], b.statuses[i], "{}, sensor {i}", s.name);
            if s.name != "sensor_minute__reading" {
                assert_eq!(s.event_timestamps[i], b.event_timestamps[i], "{}, sensor {i}", s.name);
            }
        }
    }
    compared
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kinesis_and_materialize_compute_the_same_windows() {
    let (stream_redis, batch_redis) = (RedisServer::start(), RedisServer::start());
    let (dir, cfg, reg) = larder_tests::example::applied("sensors", &batch_redis.addr()).await;
    let storage = larder::storage::Storage::default();

    // Ninety minutes of readings, some null, one sensor without any; pushed a little out of
    // order (within the allowed lateness), written to parquet in no order (the backfill sorts).
    let now = EventTime::now();
    let now_us = now.as_micros();
    let mut rng = Rng(0xbacf_111a_5eed);
    let mut readings: Vec<(i64, i64, Option<f64>)> = Vec::new();
    for step in 0..900 {
        let sensor = rng.below(SENSORS as u64 - 1) as i64;
        let t = now_us - 90 * 60_000_000 + step * 6_000_000 + rng.below(1_000_000) as i64;
        let value = (rng.below(10) != 0).then(|| rng.unit() * 100.0 - 30.0);
        readings.push((sensor, t, value));
    }
    let input = dir.path().join("readings.json");
    std::fs::write(&input, serde_json::to_string(&readings).unwrap()).unwrap();
    run(Command::new(venv_bin("python")).current_dir(dir.path()).arg("-c").arg(
        "import json, pandas as pd\n\
         rows = json.load(open('readings.json'))\n\
         df = pd.DataFrame(rows, columns=['sensor_id', 't', 'reading'])\n\
         df['event_timestamp'] = pd.to_datetime(df['t'], unit='us', utc=True)\n\
         df = df.sample(frac=1, random_state=7)\n\
         df[['sensor_id', 'event_timestamp', 'reading']].to_parquet('data/readings.parquet', index=False)\n",
    ));

    // The stream: Kinesis batches of 150 records, shuffled within runs of five (30 s, inside
    // the minute view's allowed lateness).
    let stream_store = open(&stream_redis);
    let services = larder::api::Services::new(
        push_support::config(None),
        RegistryCache::fixed(reg.clone()),
        Arc::clone(&stream_store),
    );
    let settings = PushSettings { default_source: Some("readings".into()), ..Default::default() };
    let app = App::new(services, settings, &Aws::new(), Arc::new(MemorySink::new()));
    let mut seq = 0;
    for batch in readings.chunks(150) {
        let mut batch = batch.to_vec();
        for five in batch.chunks_mut(5) {
            for i in (1..five.len()).rev() {
                five.swap(i, rng.below(i as u64 + 1) as usize);
            }
        }
        let records: Vec<(String, String, Vec<u8>)> = batch
            .iter()
            .map(|(sensor, t, value)| {
                seq += 1;
                let row = json!({"sensor_id": sensor, "event_timestamp": t, "reading": value});
                (format!("4965{seq:040}"), sensor.to_string(), serde_json::to_vec(&row).unwrap())
            })
            .collect();
        let answer = app.handle_event(event::parse(&kinesis_event("readings", &records)).unwrap()).await.unwrap();
        assert_eq!(answer["batchItemFailures"], json!([]), "nothing failed, nothing late");
    }

    // The batch: the same readings from parquet.
    let batch_store = open(&batch_redis);
    let window = Request::Range { start: now.add_secs(-2 * 3600), end: now, views: None };
    let report =
        materialize::materialize(&cfg, &storage, batch_store.as_ref(), &window, &Default::default()).await.unwrap();
    assert!(report.complete && report.recorded);
    for v in &report.views {
        // A row whose features are all null is no event (as for a push).
        let with_value = readings.iter().filter(|r| r.2.is_some()).count() as u64;
        assert_eq!(v.rows_in_window, with_value, "{}: every other row is an event", v.view);
        assert_eq!((v.entities, v.written), (SENSORS as u64 - 1, SENSORS as u64 - 1), "{}: one row per sensor", v.view);
    }

    let stream = read_all(&reg, stream_store.as_ref(), now).await;
    let batch = read_all(&reg, batch_store.as_ref(), now).await;
    let compared = assert_agree(&stream, &batch);
    assert!(compared >= 50, "{compared} of 63 values compared (the rest null in both)");

    // The same window again: every event is behind its lane's mark; nothing changes.
    let again =
        materialize::materialize(&cfg, &storage, batch_store.as_ref(), &window, &Default::default()).await.unwrap();
    assert!(again.views.iter().all(|v| v.written == 0), "{:?}", again.views);
    assert_agree(&stream, &read_all(&reg, batch_store.as_ref(), now).await);

    // A backfill sorts its whole window: it cannot be split into work items.
    let e = materialize::plan(&cfg, &storage, &window, &Default::default()).await.unwrap_err();
    assert_eq!(e.code(), "unsupported");
    assert!(
        e.to_string().contains("'sensor_hour' has window aggregations")
            || e.to_string().contains("'sensor_minute' has window aggregations"),
        "{e}"
    );
}
