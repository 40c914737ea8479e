//! What the in-process benchmarks share: the get-online-features router over the in-memory
//! store, holding the driver example's view, and the request body they send; a Kinesis event
//! run through the push function's handler.

use std::sync::Arc;
use std::time::{Duration, Instant};

use larder::api::{Health, Retrieval, Router, Services};
use larder::config::RepoConfig;
use larder::online::memory::MemoryStore;
use larder::online::{OnlineStore, ViewWrite, WriteMode, WriteRow};
use larder::registry::{RegistryCache, yaml};
use larder::time::EventTime;
use serde_json::json;

const FEATURES_YAML: &str = include_str!("../../examples/driver/features.yaml");
const FEATURES: [&str; 7] = ["conv_rate", "acc_rate", "avg_daily_trips", "miles_driven", "rating", "city", "is_active"];

/// The shared router (health and retrieval) over an in-memory store holding drivers 1000-1099
/// of `driver_hourly_stats`, no network.
pub fn in_memory_router(rt: &tokio::runtime::Runtime) -> Router {
    let config =
        RepoConfig::parse("project: driver_demo\n", std::path::Path::new("/tmp"), "bench", &|_| None).expect("config");
    let registry = yaml::parse(FEATURES_YAML, "features.yaml", "driver_demo", 3).expect("features.yaml");
    let store = MemoryStore::new();
    let view = &registry.feature_views["driver_hourly_stats"];
    let rows: Vec<WriteRow> = (1000..1100)
        .map(|id| {
            let features = [json!(0.25), json!(0.9), json!(12), json!(33.5), json!(4.5), json!("sf"), json!(true)];
            WriteRow::from_json(view, "driver_demo", &[json!(id)], &features, EventTime::now()).expect("row")
        })
        .collect();
    rt.block_on(store.write(&ViewWrite::for_view(view, rows, WriteMode::NewestWins, None))).expect("write");
    Router::new(Services::new(config, RegistryCache::fixed(registry), Arc::new(store))).with(Health).with(Retrieval)
}

/// A get-online-features body: the 7 features of `driver_hourly_stats` for `n` drivers from 1000.
pub fn gof_body(n: i64) -> Vec<u8> {
    let features: Vec<String> = FEATURES.iter().map(|f| format!("driver_hourly_stats:{f}")).collect();
    serde_json::to_vec(&json!({"features": features, "entities": {"driver_id": (1000..1000 + n).collect::<Vec<_>>()}}))
        .expect("body")
}

/// Runs a Kinesis event through the push function's handler as the runtime would (bytes ->
/// RawValue -> handler) and times it; panics if any record failed.
pub async fn run_kinesis(app: &push_function::App, bytes: &[u8]) -> Duration {
    let start = Instant::now();
    let raw: Box<serde_json::value::RawValue> = serde_json::from_slice(bytes).unwrap();
    let out = app.handle_event(push_function::event::parse(raw.get()).unwrap()).await.unwrap();
    let elapsed = start.elapsed();
    assert_eq!(out["batchItemFailures"].as_array().map(Vec::len), Some(0), "the batch failed: {out}");
    elapsed
}
