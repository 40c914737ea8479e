//! The get-online-features function binary under the Lambda Runtime API (`cargo lambda watch`),
//! invoked with the sample events, over a real Redis and a registry written by `larder apply`.

use std::time::{Duration, Instant};

use larder::config::RepoConfig;
use larder::online::{ViewWrite, WriteMode, WriteRow};
use larder::registry;
use larder::time::EventTime;
use larder_tests::feast::copy_dir;
use larder_tests::{LambdaWatch, RedisServer, repo_root};
use serde_json::{Value, json};

fn event(name: &str) -> String {
    std::fs::read_to_string(repo_root().join("events").join(name)).unwrap()
}

fn answer(resp: &Value) -> (u16, Value) {
    let status = resp["statusCode"].as_u64().unwrap_or(0) as u16;
    let body = serde_json::from_str(resp["body"].as_str().unwrap_or("null")).unwrap_or(Value::Null);
    (status, body)
}

#[tokio::test(flavor = "multi_thread")]
async fn get_online_features_function_under_cargo_lambda() {
    let mut redis = RedisServer::start();
    let repo = tempfile::tempdir().unwrap();
    copy_dir(&repo_root().join("examples/driver"), repo.path());
    let env: Vec<(String, String)> = vec![
        ("LARDER_REPO".into(), repo.path().display().to_string()),
        ("REDIS_ADDR".into(), redis.addr()),
        ("LARDER_REDIS_TIMEOUT_MS".into(), "300".into()),
        ("LARDER_REDIS_RETRIES".into(), "0".into()),
        ("LARDER_LOG".into(), "info".into()),
    ];
    let lookup = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let cfg = RepoConfig::load_with(Some(repo.path()), &lookup).unwrap();
    registry::apply(&cfg, &larder::storage::Storage::default(), false).await.unwrap();
    let reg = registry::load(&cfg, &larder::storage::Storage::default()).await.unwrap();
    let store = larder::online::connect(&cfg, &larder::aws::Aws::new()).await.unwrap();
    let view = &reg.feature_views["driver_hourly_stats"];
    let rows: Vec<WriteRow> = [(1001, 0.25), (1002, 0.5)]
        .iter()
        .map(|(id, conv)| {
            let features = [json!(conv), json!(0.9), json!(12), json!(33.5), json!(4.5), json!("sf"), json!(true)];
            WriteRow::from_json(view, "driver_demo", &[json!(id)], &features, EventTime::now()).unwrap()
        })
        .collect();
    store.write(&ViewWrite::for_view(view, rows, WriteMode::NewestWins, None)).await.unwrap();

    let watch = LambdaWatch::start(&env);
    let resp = watch
        .invoke("get-online-features", &event("apigw-http-get-online-features.json"), Duration::from_secs(60))
        .unwrap();
    let (status, body) = answer(&resp);
    assert_eq!(status, 200, "{resp}");
    assert_eq!(body["metadata"]["feature_names"][1], "conv_rate");
    assert_eq!(body["results"][1]["values"], json!([0.25, 0.5]));
    assert_eq!(body["results"][1]["statuses"], json!(["PRESENT", "PRESENT"]));

    let (status, body) = answer(
        &watch
            .invoke("get-online-features", &event("apigw-rest-get-online-features.json"), Duration::from_secs(60))
            .unwrap(),
    );
    assert_eq!(status, 200);
    assert_eq!(body["results"][6]["values"], json!(["sf", "sf"]));

    let (status, body) = answer(
        &watch.invoke("get-online-features", &event("apigw-http-health.json"), Duration::from_secs(60)).unwrap(),
    );
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")), "{body}");

    let (status, body) = answer(
        &watch
            .invoke(
                "get-online-features",
                &event("apigw-http-get-online-features-bad-json.json"),
                Duration::from_secs(60),
            )
            .unwrap(),
    );
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("bad_request")));

    // Redis gone: 503 from the same process, quickly, and health says so.
    redis.kill();
    let started = Instant::now();
    let (status, body) = answer(
        &watch
            .invoke("get-online-features", &event("apigw-http-get-online-features.json"), Duration::from_secs(60))
            .unwrap(),
    );
    assert_eq!((status, body["error"]["code"].as_str()), (503, Some("unavailable")), "{body}");
    assert!(started.elapsed() < Duration::from_secs(30));
    let (status, body) = answer(
        &watch.invoke("get-online-features", &event("apigw-http-health.json"), Duration::from_secs(60)).unwrap(),
    );
    assert_eq!((status, body["status"].as_str()), (503, Some("unavailable")), "{body}");

    // And back: the function recovers without a restart.
    redis.restart();
    let (status, body) = answer(
        &watch
            .invoke("get-online-features", &event("apigw-http-get-online-features.json"), Duration::from_secs(60))
            .unwrap(),
    );
    assert_eq!(status, 200, "{body}");
    // Redis restarted empty (no persistence): the entities are gone, and say so.
    assert_eq!(body["results"][1]["statuses"], json!(["NOT_FOUND", "NOT_FOUND"]));
}
