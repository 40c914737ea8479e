//! The get-online-features handler alone: the shared router over the in-memory store, no
//! network. Issue target: <= 20 us for 1 entity x 7 features.
//!
//!     cargo bench --workspace --profile bench-fast --bench handler

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use larder::api::{ApiRequest, Health, Retrieval, Router, Services};
use larder::config::RepoConfig;
use larder::online::memory::MemoryStore;
use larder::online::{OnlineStore, ViewWrite, WriteMode, WriteRow};
use larder::registry::{RegistryCache, yaml};
use larder::time::EventTime;
use serde_json::json;

const FEATURES_YAML: &str = include_str!("../../examples/driver/features.yaml");

fn services(rt: &tokio::runtime::Runtime) -> Router {
    let config = RepoConfig::parse("project: driver_demo\n", std::path::Path::new("/tmp"), "bench", &|_| None).unwrap();
    let registry = yaml::parse(FEATURES_YAML, "features.yaml", "driver_demo", 3).unwrap();
    let store = MemoryStore::new();
    let view = &registry.feature_views["driver_hourly_stats"];
    let rows: Vec<WriteRow> = (1000..1100)
        .map(|id| {
            let features = [json!(0.25), json!(0.9), json!(12), json!(33.5), json!(4.5), json!("sf"), json!(true)];
            WriteRow::from_json(view, "driver_demo", &[json!(id)], &features, EventTime::now()).unwrap()
        })
        .collect();
    rt.block_on(store.write(&ViewWrite::for_view(view, rows, WriteMode::NewestWins, None))).unwrap();
    Router::new(Services::new(config, RegistryCache::fixed(registry), Arc::new(store))).with(Health).with(Retrieval)
}

fn body(n: i64) -> Vec<u8> {
    let features: Vec<String> =
        ["conv_rate", "acc_rate", "avg_daily_trips", "miles_driven", "rating", "city", "is_active"]
            .iter()
            .map(|f| format!("driver_hourly_stats:{f}"))
            .collect();
    serde_json::to_vec(&json!({"features": features, "entities": {"driver_id": (1000..1000 + n).collect::<Vec<_>>()}}))
        .unwrap()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let services = services(&rt);
    for n in [1, 100] {
        let body = body(n);
        c.bench_function(&format!("handler {n}x7 (in-memory store)"), |b| {
            b.iter(|| {
                let req = ApiRequest::new("POST", "/get-online-features", "", &body);
                let resp = rt.block_on(services.handle(req));
                assert_eq!(resp.status, 200);
                resp
            })
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
