//! The registry on S3 (moto_server on loopback, the real AWS SDK): `apply` creates it with
//! If-None-Match, updates use If-Match on the ETag, concurrent writers lose nothing, and an
//! unchanged registry is a 304 on refresh.

use larder::config::RepoConfig;
use larder::registry::{self, Interval, RegistryCache, RegistryStore};
use larder::time::EventTime;
use larder_tests::feast::copy_dir;
use larder_tests::{MotoServer, repo_root, run, venv_bin};

#[tokio::test(flavor = "multi_thread")]
async fn registry_on_s3_is_updated_conditionally() {
    let moto = MotoServer::start();
    moto.export_env();
    run(std::process::Command::new(venv_bin("python"))
        .envs(moto.env())
        .args(["-c", "import boto3; boto3.client('s3').create_bucket(Bucket='reg')"]));
    let repo = tempfile::tempdir().unwrap();
    copy_dir(&repo_root().join("examples/driver"), repo.path());
    let env = |k: &str| match k {
        "LARDER_REGISTRY" => Some("s3://reg/prod/registry.db".to_string()),
        "REDIS_ADDR" => Some("127.0.0.1:1".to_string()),
        _ => None,
    };
    let cfg = RepoConfig::load_with(Some(repo.path()), &env).unwrap();
    assert_eq!(cfg.registry.path, "s3://reg/prod/registry.db");

    let plan = registry::apply(&cfg, &larder::storage::Storage::default(), false).await.unwrap();
    assert!(plan.has_changes());
    assert!(!registry::apply(&cfg, &larder::storage::Storage::default(), false).await.unwrap().has_changes());
    let cache = RegistryCache::load(&cfg, &larder::storage::Storage::default()).await.unwrap();
    assert_eq!(cache.get().feature_views.len(), 2);
    assert!(!cache.refresh().await.unwrap(), "unchanged registry: a 304, no reload");

    // Creating over an existing object with If-None-Match: * must conflict.
    let store = RegistryStore::new(&cfg.registry.path, &larder::storage::Storage::default()).unwrap();
    assert_eq!(store.write_if(b"x".to_vec(), None).await.unwrap(), registry::store::WriteOutcome::Conflict);
    // Another writer changes the object (S3's ETag is the content's MD5, so it must write
    // other bytes); a write against the ETag read before that conflicts, and a write against
    // the new one goes through (putting the registry back).
    let current = store.read().await.unwrap().unwrap();
    let stale = current.version.clone();
    let registry::store::WriteOutcome::Written { version: newer } =
        store.write_if(b"another writer".to_vec(), Some(&stale)).await.unwrap()
    else {
        panic!("a write with the current ETag must succeed")
    };
    assert_ne!(newer, stale);
    assert_eq!(
        store.write_if(current.bytes.clone(), Some(&stale)).await.unwrap(),
        registry::store::WriteOutcome::Conflict
    );
    assert!(matches!(
        store.write_if(current.bytes.clone(), Some(&newer)).await.unwrap(),
        registry::store::WriteOutcome::Written { .. }
    ));

    // Many materializations recorded at once: every interval lands.
    let mut tasks = Vec::new();
    for i in 0..6i64 {
        let cfg = cfg.clone();
        tasks.push(tokio::spawn(async move {
            let view = if i % 2 == 0 { "driver_hourly_stats" } else { "driver_fresh" };
            registry::record_materialization(
                &cfg,
                &larder::storage::Storage::default(),
                &[Interval {
                    view: view.into(),
                    start: EventTime::new(i * 100, 0),
                    end: EventTime::new(i * 100 + 50, 0),
                }],
            )
            .await
            .unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert!(cache.refresh().await.unwrap(), "the registry changed: reloaded");
    let reg = cache.get();
    assert_eq!(reg.feature_views["driver_hourly_stats"].materialization_intervals.len(), 3);
    assert_eq!(reg.feature_views["driver_fresh"].materialization_intervals.len(), 3);
}
