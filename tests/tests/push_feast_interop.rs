//! Push interop with Feast 0.67, on a registry written by `feast apply`:
//! - what Larder's push function writes (Kinesis rows and push requests, an HTTP push) is what
//!   Feast's `get_online_features` reads back;
//! - the same rows pushed by Feast (`FeatureStore.push`) and by Larder leave byte-identical
//!   Redis hashes.

mod push_support;

use std::collections::BTreeMap;
use std::sync::Arc;

use larder::api::Services;
use larder::config::RepoConfig;
use larder::push::PushSettings;
use larder::push::dead_letter::MemorySink;
use larder::registry::RegistryCache;
use larder_tests::{FeastRepo, RedisServer, run};
use push_function::{App, event};
use push_support::PUSH_SOURCE;
use serde_json::{Value as Json, json};

const KINESIS: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../events/kinesis.json"));
const HTTP_PUSH: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../events/push-apigw-http.json"));

/// A Feast repo on `redis`, applied by Feast, and Larder's push function over it.
async fn feast_repo_and_app(redis: &RedisServer) -> (FeastRepo, App) {
    let repo = FeastRepo::from_fixture("feast_driver_repo", &redis.addr());
    let end = larder::time::EventTime::parse("2026-01-01T00:00:00Z").unwrap();
    larder::example_data::write_driver_stats(&repo.path().join("data/driver_stats.parquet"), 10, 1, end, 1).unwrap();
    run(&mut repo.feast(&["apply"]));
    let cfg = RepoConfig::load_with(Some(repo.path()), &|k| (k == "REDIS_ADDR").then(|| redis.addr())).unwrap();
    let registry = RegistryCache::load(&cfg, &larder::storage::Storage::default()).await.unwrap();
    let store = larder::online::connect(&cfg, &larder::aws::Aws::new()).await.unwrap();
    let services = Services::new(cfg, registry, store);
    let settings = PushSettings { default_source: Some(PUSH_SOURCE.into()), ..Default::default() };
    (repo, App::new(services, settings, &larder::aws::Aws::new(), Arc::new(MemorySink::new())))
}

const READ_WITH_FEAST: &str = r#"
import json, sys
from feast import FeatureStore
ids = [int(x) for x in sys.argv[1].split(",")]
feats = ["conv_rate", "acc_rate", "avg_daily_trips", "miles_driven", "rating", "city", "is_active"]
out = FeatureStore(repo_path=".").get_online_features(
    features=[f"driver_fresh:{f}" for f in feats], entity_rows=[{"driver_id": i} for i in ids]).to_dict()
print(json.dumps(out))
"#;

#[tokio::test]
async fn feast_reads_what_larder_pushed() {
    let redis = RedisServer::start();
    let (repo, app) = feast_repo_and_app(&redis).await;
    let out = app.handle_event(event::parse(KINESIS).unwrap()).await.unwrap();
    assert_eq!(out, json!({"batchItemFailures": []}));
    let out = app.handle_event(event::parse(HTTP_PUSH).unwrap()).await.unwrap();
    assert_eq!(out["statusCode"], 200);

    let text = run(std::process::Command::new(larder_tests::venv_bin("python"))
        .current_dir(repo.path())
        .env("REDIS_ADDR", redis.addr())
        .args(["-c", READ_WITH_FEAST, "1001,1002,1003,1004,4001,4002"]));
    let got: Json = serde_json::from_str(text.trim().lines().last().unwrap()).unwrap();
    assert_eq!(got["driver_id"], json!([1001, 1002, 1003, 1004, 4001, 4002]));
    // Float32 features come back as the float32 nearest the pushed value.
    let f32s = |v: &[f64]| json!(v.iter().map(|x| *x as f32 as f64).collect::<Vec<_>>());
    assert_eq!(got["conv_rate"], f32s(&[0.75, 0.25, 0.3, 0.4, 0.61, 0.62]), "driver 1001 has its newer record");
    assert_eq!(got["avg_daily_trips"], json!([11, 20, 30, 40, 7, 8]));
    assert_eq!(got["miles_driven"], json!([120.5, 120.5, 1.5, 2.5, 10.0, 20.0]));
    assert_eq!(got["city"], json!(["sf", "nyc", "la", "la", "sf", "la"]));
    assert_eq!(got["is_active"], json!([true, true, true, false, true, true]));
    assert_eq!(got["rating"], f32s(&[4.8, 4.8, 4.1, 4.2, 4.5, 4.6]));
}

const PUSH_WITH_FEAST: &str = r#"
import json, sys
import pandas as pd
from feast import FeatureStore
df = pd.DataFrame(json.loads(sys.argv[1]))
for c in ("event_timestamp", "created"):
    df[c] = pd.to_datetime(df[c], utc=True, format="ISO8601")
FeatureStore(repo_path=".").push("driver_stats_push_source", df)
"#;

/// Every field of every key in a Redis, hex-encoded.
fn dump(redis: &RedisServer) -> BTreeMap<String, BTreeMap<String, String>> {
    use redis::Commands;
    let mut c = redis.client();
    let keys: Vec<Vec<u8>> = c.keys("*").unwrap();
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    keys.iter()
        .map(|k| {
            let fields: BTreeMap<Vec<u8>, Vec<u8>> = c.hgetall(k).unwrap();
            (hex(k), fields.iter().map(|(f, v)| (hex(f), hex(v))).collect())
        })
        .collect()
}

#[tokio::test]
async fn larder_and_feast_pushes_leave_identical_redis_bytes() {
    let df = json!({
        "driver_id": [5001, 5002, 5003],
        "event_timestamp": ["2026-01-01T10:00:00Z", "2026-01-01T10:00:00.123456Z", "2026-01-02T00:00:00Z"],
        "created": ["2026-01-01T10:00:00Z", "2026-01-01T10:00:00Z", "2026-01-02T00:00:00Z"],
        "conv_rate": [0.1, 0.2, 0.3], "acc_rate": [0.5, 0.6, 0.7], "avg_daily_trips": [1, 2, 3],
        "miles_driven": [10.5, 20.25, 0.0], "rating": [4.0, 4.5, 5.0], "city": ["sf", "la", "nyc"],
        "is_active": [true, false, true],
    });
    let feast_redis = RedisServer::start();
    let (feast_repo, _) = feast_repo_and_app(&feast_redis).await;
    run(std::process::Command::new(larder_tests::venv_bin("python"))
        .current_dir(feast_repo.path())
        .env("REDIS_ADDR", feast_redis.addr())
        .args(["-c", PUSH_WITH_FEAST, &df.to_string()]));

    let larder_redis = RedisServer::start();
    let (_repo, app) = feast_repo_and_app(&larder_redis).await;
    let body = json!({"push_source_name": PUSH_SOURCE, "df": df});
    let out = app.handle_event(event::parse(&body.to_string()).unwrap()).await.unwrap();
    assert_eq!(out["statusCode"], 200, "{out}");

    let (feast, larder) = (dump(&feast_redis), dump(&larder_redis));
    assert_eq!(feast.len(), 3, "{feast:?}");
    assert_eq!(larder, feast);
}
