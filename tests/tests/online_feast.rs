//! Byte compatibility with Feast 0.67 (from the test virtualenv), both ways, on real Redis:
//! - what `feast materialize` and Feast's `write_to_online_store` write, Larder reads back
//!   value for value;
//! - what Larder writes, Feast's `get_online_features` reads back value for value;
//! - Feast writing to one Redis and Larder writing the same rows to another leave the same
//!   keys, the same fields and the same bytes.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use larder::config::RedisType;
use larder::online::redis::{RedisOptions, RedisStore};
use larder::online::{Cell, OnlineStore, ViewRead, ViewWrite, WriteMode, WriteRow, read_views};
use larder::proto::types::{Value, value::Val};
use larder::registry::{FeatureView, Registry};
use larder::time::EventTime;
use larder::value;
use larder_tests::{RedisServer, run, venv_bin};

const PROJECT: &str = "interop";

const FEATURE_STORE_YAML: &str = "project: interop
registry: data/registry.db
provider: local
online_store:
  type: redis
  connection_string: ${REDIS_ADDR}
offline_store:
  type: file
entity_key_serialization_version: 3
";

/// The driver-stats repo Larder's benchmarks use: one view materialized from parquet, one fed
/// through a push source.
const FEATURES_PY: &str = r#"
from datetime import timedelta
from feast import Entity, FeatureView, Field, FileSource, PushSource
from feast.types import Float32, Float64, Int64, String, Bool

driver = Entity(name="driver", join_keys=["driver_id"])
source = FileSource(name="driver_stats_source", path="data/driver_stats.parquet",
                    timestamp_field="event_timestamp", created_timestamp_column="created")
push = PushSource(name="driver_stats_push_source", batch_source=source)
SCHEMA = [
    Field(name="conv_rate", dtype=Float32),
    Field(name="acc_rate", dtype=Float32),
    Field(name="avg_daily_trips", dtype=Int64),
    Field(name="miles_driven", dtype=Float64),
    Field(name="rating", dtype=Float32),
    Field(name="city", dtype=String),
    Field(name="is_active", dtype=Bool),
]
driver_hourly_stats = FeatureView(name="driver_hourly_stats", entities=[driver], ttl=timedelta(days=3650),
                                  schema=SCHEMA, online=True, source=source)
driver_fresh = FeatureView(name="driver_fresh", entities=[driver], ttl=timedelta(days=3650),
                           schema=SCHEMA, online=True, source=push)
"#;

/// Feast's side: `latest` prints the newest parquet row per driver; `read VIEW IDS` prints what
/// get_online_features answers (each Value re-serialized, statuses, timestamps); `write VIEW
/// FILE` writes rows with write_to_online_store.
const INTEROP_PY: &str = r#"
import json, sys
import numpy as np, pandas as pd
from feast import FeatureStore

FEATS = ["conv_rate", "acc_rate", "avg_daily_trips", "miles_driven", "rating", "city", "is_active"]

# Floats travel as repr() text: exact, whatever the JSON reader's float parsing does.
def plain(v):
    if isinstance(v, np.bool_): return bool(v)
    if isinstance(v, np.integer): return int(v)
    if isinstance(v, (float, np.floating)): return None if np.isnan(v) else repr(float(v))
    return v

store = FeatureStore(repo_path=".")
mode = sys.argv[1]
if mode == "latest":
    df = pd.read_parquet("data/driver_stats.parquet")
    df = df.loc[df.groupby("driver_id")["event_timestamp"].idxmax()]
    rows = [{"driver_id": int(r["driver_id"]), "micros": int(r["event_timestamp"].value // 1000),
             **{f: plain(r[f]) for f in FEATS}} for _, r in df.iterrows()]
    print(json.dumps(rows))
elif mode == "read":
    view, ids = sys.argv[2], json.loads(sys.argv[3])
    resp = store.get_online_features(features=[f"{view}:{f}" for f in FEATS],
                                     entity_rows=[{"driver_id": i} for i in ids])
    p = resp.proto
    out = {}
    for name, vec in zip(p.metadata.feature_names.val, p.results):
        out[name] = {"values": [v.SerializeToString().hex() for v in vec.values],
                     "statuses": [int(s) for s in vec.statuses],
                     "ts": [[t.seconds, t.nanos] for t in vec.event_timestamps]}
    print(json.dumps(out))
elif mode == "write":
    view, rows = sys.argv[2], json.load(open(sys.argv[3]))
    df = pd.DataFrame(rows)
    df["event_timestamp"] = pd.to_datetime(df["micros"], unit="us", utc=True)
    df["created"] = df["event_timestamp"]
    df = df.drop(columns=["micros"])
    for c in ["conv_rate", "acc_rate", "rating"]:
        df[c] = df[c].astype("float32")
    df["avg_daily_trips"] = df["avg_daily_trips"].astype("int64")
    store.write_to_online_store(view, df)
"#;

fn feast(repo: &Path, redis: &RedisServer, args: &[&str]) -> String {
    run(Command::new(venv_bin("feast")).args(args).current_dir(repo).env("REDIS_ADDR", redis.addr()))
}

fn python(repo: &Path, redis: &RedisServer, args: &[&str]) -> String {
    run(Command::new(venv_bin("python")).arg("interop.py").args(args).current_dir(repo).env("REDIS_ADDR", redis.addr()))
}

fn store(redis: &RedisServer) -> RedisStore {
    RedisStore::open(&redis.connection_string(), RedisType::Redis, RedisOptions::default()).unwrap()
}

fn int64(i: i64) -> Value {
    Value { val: Some(Val::Int64Val(i)) }
}

fn key(v: &FeatureView, id: i64) -> Vec<u8> {
    v.layout.key_encoder.redis_key(&[&int64(id)], PROJECT).unwrap()
}

/// Typed values of a JSON row, in the view's feature order.
fn values(v: &FeatureView, row: &serde_json::Value) -> Vec<Value> {
    v.features
        .iter()
        .map(|f| value::from_json(&row[&f.name], f.dtype).unwrap_or_else(|e| panic!("{}: {e}", f.name)))
        .collect()
}

fn write_rows(v: &FeatureView, rows: &[serde_json::Value]) -> Vec<WriteRow> {
    rows.iter()
        .map(|r| {
            let id = r["driver_id"].as_i64().unwrap();
            WriteRow::encode(key(v, id), EventTime::from_micros(r["micros"].as_i64().unwrap()), &values(v, r))
        })
        .collect()
}

/// Every hash of a server: key -> field -> bytes.
fn dump(redis: &RedisServer) -> BTreeMap<Vec<u8>, BTreeMap<Vec<u8>, Vec<u8>>> {
    let mut c = redis.client();
    let keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg("*").query(&mut c).unwrap();
    keys.into_iter()
        .map(|k| {
            let h: BTreeMap<Vec<u8>, Vec<u8>> = redis::cmd("HGETALL").arg(&k).query(&mut c).unwrap();
            (k, h)
        })
        .collect()
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// Checks what Larder reads for `ids` against `rows` (one per id, in order).
async fn larder_reads(store: &RedisStore, v: &FeatureView, rows: &[serde_json::Value]) {
    let keys: Vec<Vec<u8>> = rows.iter().map(|r| key(v, r["driver_id"].as_i64().unwrap())).collect();
    let features: Vec<usize> = (0..v.features.len()).collect();
    let got = read_views(store, &[ViewRead { view: v, features: &features, keys: &keys }]).await.unwrap().remove(0);
    for (r, got) in rows.iter().zip(got) {
        let got = got.unwrap_or_else(|| panic!("{}: no row for driver {}", v.name, r["driver_id"]));
        assert_eq!(got.event_time, EventTime::from_micros(r["micros"].as_i64().unwrap()), "{r}");
        for ((f, cell), want) in v.features.iter().zip(&got.cells).zip(values(v, r)) {
            let want = if value::is_null(&want) { Cell::Null } else { Cell::Value(want) };
            assert_eq!(*cell, want, "{}.{} of {r}", v.name, f.name);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feast_and_larder_read_each_others_writes_byte_for_byte() {
    let feast_redis = RedisServer::start();
    let larder_redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path();
    std::fs::write(repo.join("feature_store.yaml"), FEATURE_STORE_YAML).unwrap();
    std::fs::write(repo.join("features.py"), FEATURES_PY).unwrap();
    std::fs::write(repo.join("interop.py"), INTEROP_PY).unwrap();
    let end = EventTime::parse("2026-11-20T00:00:00Z").unwrap();
    larder::example_data::write_driver_stats(&repo.join("data/driver_stats.parquet"), 40, 3, end, 7).unwrap();

    feast(repo, &feast_redis, &["apply"]);
    feast(
        repo,
        &feast_redis,
        &["materialize", "-v", "driver_hourly_stats", "2000-01-01T00:00:00", "2030-01-01T00:00:00"],
    );
    let reg: Registry = larder::registry::convert::registry_from_bytes(
        &std::fs::read(repo.join("data/registry.db")).unwrap(),
        PROJECT,
        3,
    )
    .unwrap();
    let hourly = reg.view("driver_hourly_stats").unwrap().clone();
    let fresh = reg.view("driver_fresh").unwrap().clone();

    // 1. What Feast materialized, Larder reads: the newest parquet row of every driver.
    let latest: Vec<serde_json::Value> = serde_json::from_str(&python(repo, &feast_redis, &["latest"])).unwrap();
    assert_eq!(latest.len(), 40);
    let on_feast = store(&feast_redis);
    larder_reads(&on_feast, &hourly, &latest).await;

    // 2. Larder writes the same rows to its own Redis: the same bytes.
    let on_larder = store(&larder_redis);
    let stats = on_larder
        .write(&ViewWrite::for_view(&hourly, write_rows(&hourly, &latest), WriteMode::NewestWins, None))
        .await
        .unwrap();
    assert_eq!(stats.written, 40);
    let (a, b) = (dump(&feast_redis), dump(&larder_redis));
    assert_eq!(a.len(), 40);
    assert_eq!(a, b, "materialized by Feast vs written by Larder");

    // 3. Rows with microsecond times, a negative count, non-ASCII text and nulls, written by
    //    Feast's write_to_online_store to one Redis and by Larder to the other.
    let fresh_rows: Vec<serde_json::Value> = (0..25)
        .map(|i| {
            serde_json::json!({
                "driver_id": if i == 24 { 9_000_000_000i64 } else { 1000 + i },
                "micros": 1_763_596_800_123_456i64 + i * 1_000_001,
                "conv_rate": if i == 3 { serde_json::Value::Null } else { serde_json::json!(i as f32 / 7.0) },
                "acc_rate": 0.5,
                "avg_daily_trips": -i * 1_000_000_007,
                "miles_driven": i as f64 * 1.1e10,
                "rating": 4.25,
                "city": if i == 5 { serde_json::Value::Null } else { serde_json::json!(format!("São Paulo {i}")) },
                "is_active": i % 2 == 0,
            })
        })
        .collect();
    let rows_file = repo.join("fresh_rows.json");
    std::fs::write(&rows_file, serde_json::to_vec(&fresh_rows).unwrap()).unwrap();
    python(repo, &feast_redis, &["write", "driver_fresh", rows_file.to_str().unwrap()]);
    let stats = on_larder
        .write(&ViewWrite::for_view(&fresh, write_rows(&fresh, &fresh_rows), WriteMode::NewestWins, None))
        .await
        .unwrap();
    assert_eq!(stats.written, 25);
    let (a, b) = (dump(&feast_redis), dump(&larder_redis));
    assert_eq!(a.len(), 41, "one new driver");
    assert_eq!(a, b, "written by Feast vs written by Larder");
    larder_reads(&on_feast, &fresh, &fresh_rows).await;

    // 4. What Larder wrote, Feast's get_online_features reads: values, statuses, timestamps.
    let mut ids: Vec<i64> = fresh_rows.iter().map(|r| r["driver_id"].as_i64().unwrap()).collect();
    ids.push(424_242); // never written
    let answer: serde_json::Value = serde_json::from_str(&python(
        repo,
        &larder_redis,
        &["read", "driver_fresh", &serde_json::to_string(&ids).unwrap()],
    ))
    .unwrap();
    for (fi, f) in fresh.features.iter().enumerate() {
        let col = &answer[&f.name];
        for (j, r) in fresh_rows.iter().enumerate() {
            let want = &values(&fresh, r)[fi];
            let got = value::decode(&hex(col["values"][j].as_str().unwrap())).unwrap();
            assert_eq!(value::is_null(&got), value::is_null(want), "{}.{} of {r}", f.name, j);
            if !value::is_null(want) {
                assert_eq!(&got, want, "{} of {r}", f.name);
            }
            // PRESENT = 1. Feast's Python reader also says PRESENT for a stored null (an
            // empty Value), where NULL_VALUE (2) would be more exact; both are accepted there.
            let status = col["statuses"][j].as_i64().unwrap();
            if value::is_null(want) {
                assert!(status == 1 || status == 2, "{} of {r}: status {status}", f.name);
            } else {
                assert_eq!(status, 1, "{} of {r}", f.name);
            }
            let micros = r["micros"].as_i64().unwrap();
            let ts = &col["ts"][j];
            assert_eq!(
                (ts[0].as_i64().unwrap(), ts[1].as_i64().unwrap()),
                (micros.div_euclid(1_000_000), micros.rem_euclid(1_000_000) * 1000)
            );
        }
        // Feast's Python server reports a missing entity as PRESENT with no value (a Feast
        // quirk, see docs/compatibility.md §1.5); what matters here is that it found nothing.
        let missing = value::decode(&hex(col["values"][ids.len() - 1].as_str().unwrap())).unwrap();
        assert!(value::is_null(&missing), "{}: {missing:?}", f.name);
    }
}
