//! The `materialize` function end to end under `cargo lambda watch`: source and registry on a
//! loopback `moto_server`, a private redis-server, the sample events from `events/`.

use std::sync::OnceLock;
use std::time::Duration;

use larder::config::RepoConfig;
use larder::time::EventTime;
use larder_tests::{LambdaWatch, MotoServer, RedisServer, repo_root};
use serde_json::{Value, json};

fn moto() -> &'static MotoServer {
    static MOTO: OnceLock<MotoServer> = OnceLock::new();
    MOTO.get_or_init(|| {
        let m = MotoServer::start();
        m.export_env();
        m
    })
}

const BUCKET: &str = "larder-lambda-mat";

fn dbsize(redis: &RedisServer) -> i64 {
    redis::cmd("DBSIZE").query(&mut redis.client()).unwrap()
}

#[test]
fn materialize_runs_under_cargo_lambda() {
    let moto = moto();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let repo = tempfile::tempdir().unwrap();
    let registry = format!("s3://{BUCKET}/registry.db");
    rt.block_on(async {
        let s3 = larder_tests::aws::s3().await;
        s3.create_bucket().bucket(BUCKET).send().await.unwrap();
        // 300 drivers x 48 hours ending 2026-11-20, in two files under a prefix.
        let end = EventTime::parse("2026-11-20T00:00:00Z").unwrap();
        for (i, e) in [(0, end.add_secs(-24 * 3600)), (1, end)] {
            let local = repo.path().join(format!("part-{i}.parquet"));
            larder::example_data::write_driver_stats(&local, 300, 24, e, i).unwrap();
            let body = std::fs::read(&local).unwrap();
            s3.put_object()
                .bucket(BUCKET)
                .key(format!("driver/part-{i}.parquet"))
                .body(body.into())
                .send()
                .await
                .unwrap();
        }
        let yaml = std::fs::read_to_string(repo_root().join("examples/driver/features.yaml"))
            .unwrap()
            .replace("data/driver_stats.parquet", &format!("s3://{BUCKET}/driver/"));
        std::fs::write(repo.path().join("features.yaml"), yaml).unwrap();
        std::fs::write(repo.path().join("feature_store.yaml"), format!("project: driver_demo\nregistry: {registry}\n"))
            .unwrap();
        let cfg = RepoConfig::load_with(Some(repo.path()), &|_| None).unwrap();
        larder::registry::apply(&cfg, &larder::storage::Storage::default(), false).await.unwrap();
    });

    let redis = RedisServer::start();
    let mut env = moto.env();
    env.push(("LARDER_PROJECT".into(), "driver_demo".into()));
    env.push(("LARDER_REGISTRY".into(), registry.clone()));
    env.push(("LARDER_REDIS_CONNECTION_STRING".into(), redis.addr()));
    env.push(("LARDER_MATERIALIZE_ROWS_PER_ITEM".into(), "5000".into()));
    let watch = LambdaWatch::start(&env);
    let invoke = |event: &str| -> Value {
        watch.invoke("materialize", event, Duration::from_secs(300)).unwrap_or_else(|e| panic!("{e}"))
    };

    // One window, one view, as in events/materialize-direct.json.
    let direct = invoke(include_str!("../../events/materialize-direct.json"));
    assert_eq!(direct["complete"], json!(true), "{direct}");
    assert_eq!(direct["views"][0]["view"], json!("driver_hourly_stats"));
    assert_eq!(direct["views"][0]["entities"], json!(300));
    assert_eq!(dbsize(&redis), 300);

    // Plan, every item, commit.
    let plan = invoke(r#"{"action": "plan", "start": "2026-11-18T00:00:00Z", "end": "2026-11-20T00:00:00Z"}"#);
    let items = plan["items"].as_array().unwrap().clone();
    assert!(items.len() >= 2, "{plan}");
    let mut results = Vec::new();
    for item in items.iter().rev() {
        let r = invoke(&item.to_string());
        assert_eq!(r["complete"], json!(true), "{r}");
        results.push(r);
    }
    let mut commit = plan["commit"].clone();
    commit["results"] = Value::Array(results);
    assert_eq!(invoke(&commit.to_string())["recorded"], json!(true));

    // The scheduled event goes on incrementally from the committed end.
    let scheduled = invoke(include_str!("../../events/eventbridge-scheduled.json"));
    assert_eq!(scheduled["complete"], json!(true), "{scheduled}");
    assert!(scheduled["views"].as_array().unwrap().iter().all(|v| v["start"] == json!("2026-11-20T00:00:00Z")));

    // A bad event is an error naming the problem.
    let err = watch.invoke("materialize", r#"{"end": "2026-11-20T00:00:00Z"}"#, Duration::from_secs(15)).unwrap_err();
    assert!(err.contains("'start' is required"), "{err}");

    let reg = rt.block_on(async {
        let cfg = RepoConfig::load_with(Some(repo.path()), &|_| None).unwrap();
        larder::registry::load(&cfg, &larder::storage::Storage::default()).await.unwrap()
    });
    // The direct run, the commit and the scheduled run.
    assert_eq!(reg.view("driver_hourly_stats").unwrap().materialization_intervals.len(), 3);
    assert_eq!(reg.view("driver_fresh").unwrap().materialization_intervals.len(), 2);
}
