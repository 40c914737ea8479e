//! Materialization on the example repo from local files, with a registry update racing it:
//! an `apply` that lands while the run is reading must survive the run's own update of the
//! registry, and the run's interval must be recorded on top of it.

use std::sync::atomic::Ordering;
use std::time::Duration;

use larder::config::RepoConfig;
use larder::materialize::{self, Options, Request};
use larder::online::memory::MemoryStore;
use larder::registry;
use larder::time::EventTime;
use larder_tests::repo_root;

fn example_repo(drivers: u64, hours: u64) -> (tempfile::TempDir, RepoConfig) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("feature_store.yaml"),
        "project: driver_demo\nregistry: data/registry.db\nprovider: local\n",
    )
    .unwrap();
    std::fs::copy(repo_root().join("examples/driver/features.yaml"), dir.path().join("features.yaml")).unwrap();
    let end = EventTime::parse("2026-11-20T00:00:00Z").unwrap();
    larder::example_data::write_driver_stats(&dir.path().join("data/driver_stats.parquet"), drivers, hours, end, 9)
        .unwrap();
    let cfg = RepoConfig::load_with(Some(dir.path()), &|_| None).unwrap();
    (dir, cfg)
}

#[tokio::test]
async fn an_apply_during_a_run_is_not_lost() {
    let (dir, cfg) = example_repo(2000, 200);
    registry::apply(&cfg, &larder::storage::Storage::default(), false).await.unwrap();
    let store = std::sync::Arc::new(MemoryStore::new());
    let opts = Options { parallelism: 1, ..Options::default() };
    let progress = opts.progress.clone();
    let run = {
        let (cfg, store) = (cfg.clone(), store.clone());
        tokio::spawn(async move {
            let req = Request::Range {
                start: EventTime::parse("2026-01-01T00:00:00Z").unwrap(),
                end: EventTime::parse("2026-11-20T00:00:00Z").unwrap(),
                views: Some(vec!["driver_hourly_stats".into()]),
            };
            materialize::materialize(&cfg, &larder::storage::Storage::default(), store.as_ref(), &req, &opts).await
        })
    };
    // Once the run has loaded the registry and is reading rows, change the registry under it.
    while progress.rows_read.load(Ordering::Relaxed) == 0 {
        assert!(!run.is_finished(), "the run ended before reading: {:?}", run.await);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let yaml = std::fs::read_to_string(dir.path().join("features.yaml")).unwrap();
    let added = yaml.replace(
        "feature_services:",
        "  driver_trips_only:\n    entities: [driver]\n    ttl: 1d\n    source: driver_stats_source\n    features: {avg_daily_trips: Int64}\n\nfeature_services:",
    );
    std::fs::write(dir.path().join("features.yaml"), added).unwrap();
    let plan = registry::apply(&cfg, &larder::storage::Storage::default(), false).await.unwrap();
    assert!(plan.has_changes());
    assert!(!run.is_finished(), "the apply must land while the run is still going for this test to mean anything");

    let report = run.await.unwrap().unwrap();
    assert!(report.complete && report.recorded);
    assert_eq!(report.views[0].entities, 2000);
    let reg = registry::load(&cfg, &larder::storage::Storage::default()).await.unwrap();
    assert!(reg.view("driver_trips_only").is_ok(), "the concurrent apply was lost");
    assert_eq!(
        reg.view("driver_hourly_stats").unwrap().materialization_intervals.len(),
        1,
        "the run's interval was lost"
    );
    assert_eq!(store.len(), 2000);
}
