//! What the fuzz targets share: the example driver repository's definitions, a configuration,
//! services over an in-memory store, and one single-threaded runtime per thread.
//!
//! Everything here is built from the files in the repository (no network, no Redis, no AWS):
//! a target must run the same code the functions run, but only on the fuzzer's bytes.

use std::future::Future;
use std::path::Path;
use std::sync::{Arc, LazyLock};

use larder::api::Services;
use larder::config::RepoConfig;
use larder::online::memory::MemoryStore;
use larder::registry::{Registry, RegistryCache, yaml};

/// The project of the example repository.
pub const PROJECT: &str = "driver_demo";

/// `examples/driver/features.yaml`: what the sample events and requests refer to.
pub const FEATURES_YAML: &str = include_str!("../../examples/driver/features.yaml");

/// The example repository's registry (parsed once).
pub fn registry() -> &'static Registry {
    static REGISTRY: LazyLock<Registry> =
        LazyLock::new(|| yaml::parse(FEATURES_YAML, "features.yaml", PROJECT, 3).expect("the example features.yaml"));
    &REGISTRY
}

/// A configuration for the example project whose registry file does not exist: anything that
/// tries to reload the registry fails fast instead of reaching for storage.
pub fn config() -> &'static RepoConfig {
    static CONFIG: LazyLock<RepoConfig> = LazyLock::new(|| {
        RepoConfig::parse(
            &format!("project: {PROJECT}\nregistry: /nonexistent/larder-fuzz/registry.db\nprovider: local\n"),
            Path::new("/nonexistent/larder-fuzz"),
            "feature_store.yaml",
            &|_| None,
        )
        .expect("the fuzz configuration")
    });
    &CONFIG
}

/// Services over the example registry and a fresh in-memory store: one per input, so nothing
/// an input writes grows the process or changes how the next input runs.
pub fn services() -> (Services, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::new());
    let services = Services::new(config().clone(), RegistryCache::fixed(registry().clone()), store.clone());
    (services, store)
}

/// Runs a future to completion on this thread's current-thread runtime (what a Lambda
/// invocation does, without the runtime's network loop).
pub fn block_on<F: Future>(future: F) -> F::Output {
    thread_local! {
        static RUNTIME: tokio::runtime::Runtime =
            tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
    }
    RUNTIME.with(|rt| rt.block_on(future))
}

/// The input as text, or `None` when it is not UTF-8 (the parsers take `&str`: a Lambda
/// payload is JSON text before it reaches them).
pub fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// A store holding the example drivers 1001 to 1005 in both views (`driver_hourly_stats` and
/// `driver_fresh`), for reads: written once, through a push and a write-to-online-store.
pub fn driver_store() -> Arc<MemoryStore> {
    static STORE: LazyLock<Arc<MemoryStore>> = LazyLock::new(|| {
        let store = Arc::new(MemoryStore::new());
        let cache = RegistryCache::fixed(registry().clone());
        let df = r#"{"driver_id": [1001, 1002, 1003, 1004, 1005],
            "event_timestamp": ["2024-01-01T00:00:00Z", "2024-01-01T01:00:00Z", "2024-01-01T02:00:00Z",
                                "2024-01-01T03:00:00Z", "2024-01-01T04:00:00.5Z"],
            "created": "2024-01-01T05:00:00Z",
            "conv_rate": [0.1, 0.2, 0.3, null, 0.5], "acc_rate": 0.9, "avg_daily_trips": [1, 2, 3, 4, 5],
            "miles_driven": 12.5, "rating": [4.5, 4.6, 4.7, 4.8, 4.9], "city": ["sf", "nyc", "la", "sea", "sf"],
            "is_active": [true, false, true, false, true]}"#;
        let bodies = [
            format!(r#"{{"push_source_name": "driver_stats_push_source", "df": {df}}}"#),
            format!(r#"{{"feature_view_name": "driver_hourly_stats", "df": {df}}}"#),
        ];
        for body in &bodies {
            let push = larder::push::request::parse_record(body.as_bytes(), None, "seed").expect("the seed rows");
            block_on(larder::push::apply(&cache, store.as_ref(), Default::default(), &push)).expect("written");
        }
        store
    });
    STORE.clone()
}

/// `features.yaml` of the second parquet repository: one view whose features take every Arrow
/// type materialization converts (narrow and unsigned integers, half floats, decimals, binary,
/// dates and timestamps, lists, dictionaries), with text event times and dictionary-encoded
/// created times.
pub const TYPED_FEATURES_YAML: &str = r#"
entities:
  item: {join_key: item_id, type: String}
sources:
  typed:
    type: file
    path: data/typed.parquet
    timestamp_field: ts
    created_timestamp_column: created
feature_views:
  typed:
    entities: [item]
    ttl: 0
    source: typed
    features:
      small: Int32
      unsigned: Int64
      half: Float64
      price: Decimal
      blob: Bytes
      at: UnixTimestamp
      day: UnixTimestamp
      tags: Array(String)
      scores: Array(Float64)
      doc: Json
      label: String
      flag: Bool
"#;

/// A feature repository in a temporary folder, applied: what materialization runs over.
pub struct ParquetRepo {
    _dir: tempfile::TempDir,
    pub config: RepoConfig,
    /// The one parquet file its source reads.
    pub data: std::path::PathBuf,
}

impl ParquetRepo {
    /// Writes `feature_store.yaml` and `features.yaml`, then applies them (the registry is
    /// written once; runs over it never record anything).
    pub fn new(project: &str, features_yaml: &str, data: &str) -> ParquetRepo {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let root = dir.path();
        std::fs::create_dir_all(root.join("data")).expect("data folder");
        std::fs::write(
            root.join("feature_store.yaml"),
            format!("project: {project}\nregistry: data/registry.db\nprovider: local\n"),
        )
        .expect("feature_store.yaml");
        std::fs::write(root.join("features.yaml"), features_yaml).expect("features.yaml");
        let config = RepoConfig::load_with(Some(root), &|_| None).expect("the repository's configuration");
        block_on(larder::registry::apply(&config, &larder::storage::Storage::default(), false)).expect("applied");
        ParquetRepo { data: root.join(data), _dir: dir, config }
    }
}

/// The two parquet repositories: the example driver repository (its `driver_stats.parquet`
/// feeds `driver_hourly_stats` and, through the push source's batch source, `driver_fresh`),
/// and the typed one.
pub fn parquet_repos() -> &'static [ParquetRepo] {
    static REPOS: LazyLock<Vec<ParquetRepo>> = LazyLock::new(|| {
        vec![
            ParquetRepo::new(PROJECT, FEATURES_YAML, "data/driver_stats.parquet"),
            ParquetRepo::new("typed", TYPED_FEATURES_YAML, "data/typed.parquet"),
        ]
    });
    &REPOS
}
