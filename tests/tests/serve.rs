//! `larder serve` as a process: limits, Redis outages, registry refresh, graceful shutdown.

use std::time::{Duration, Instant};

use larder::config::RepoConfig;
use larder::registry;
use larder_tests::feast::copy_dir;
use larder_tests::http::{LarderServe, post_json, request};
use larder_tests::{RedisServer, repo_root};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn serve_limits_outages_refresh_and_shutdown() {
    let mut redis = RedisServer::start();
    let repo = tempfile::tempdir().unwrap();
    copy_dir(&repo_root().join("examples/driver"), repo.path());
    let env: Vec<(String, String)> = vec![
        ("REDIS_ADDR".into(), redis.addr()),
        ("LARDER_REDIS_TIMEOUT_MS".into(), "300".into()),
        ("LARDER_REDIS_RETRIES".into(), "0".into()),
        ("LARDER_REGISTRY_CACHE_TTL_SECONDS".into(), "1".into()),
        ("LARDER_MAX_BODY_BYTES".into(), "4096".into()),
        ("LARDER_MAX_ENTITY_ROWS".into(), "50".into()),
    ];
    let lookup = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let cfg = RepoConfig::load_with(Some(repo.path()), &lookup).unwrap();
    registry::apply(&cfg, &larder::storage::Storage::default(), false).await.unwrap();
    let mut serve = LarderServe::start(repo.path(), &env, &[]);

    let (status, body) = request(serve.port, "GET", "/health", b"").unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));

    // Over the body limit: 413 from the router, not a dropped connection.
    let big = json!({"features": ["driver_hourly_stats:conv_rate"], "entities": {"driver_id": vec![1000; 2000]}});
    let (status, body) = post_json(serve.port, "/get-online-features", &big);
    assert_eq!((status, body["error"]["code"].as_str()), (413, Some("too_large")), "{body}");
    let rows =
        json!({"features": ["driver_hourly_stats:conv_rate"], "entities": {"driver_id": (0..51).collect::<Vec<_>>()}});
    let (status, body) = post_json(serve.port, "/get-online-features", &rows);
    assert_eq!(status, 413, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("51 entity rows"));

    // Redis down: 503 within the configured timeout, health says which part failed.
    redis.kill();
    let req = json!({"features": ["driver_hourly_stats:conv_rate"], "entities": {"driver_id": [1001]}});
    let started = Instant::now();
    let (status, body) = post_json(serve.port, "/get-online-features", &req);
    assert_eq!((status, body["error"]["code"].as_str()), (503, Some("unavailable")), "{body}");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    let (status, _) = request(serve.port, "GET", "/health", b"").unwrap();
    assert_eq!(status, 503);
    redis.restart();
    let (status, body) = post_json(serve.port, "/get-online-features", &req);
    assert_eq!(status, 200, "{body}");

    // A new view applied while serving is served after cache_ttl_seconds, without a restart.
    let (status, _) = post_json(
        serve.port,
        "/get-online-features",
        &json!({"features": ["late_view:x"], "entities": {"driver_id": [1]}}),
    );
    assert_eq!(status, 404);
    let defs = std::fs::read_to_string(repo.path().join("features.yaml")).unwrap() + "\n  # added while serving\n";
    let defs = defs.replace(
        "feature_services:",
        "  late_view:\n    entities: [driver]\n    source: driver_stats_source\n    features: {x: Int64}\n\nfeature_services:",
    );
    std::fs::write(repo.path().join("features.yaml"), defs).unwrap();
    registry::apply(&cfg, &larder::storage::Storage::default(), false).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = post_json(
            serve.port,
            "/get-online-features",
            &json!({"features": ["late_view:x"], "entities": {"driver_id": [1]}}),
        );
        if status == 200 {
            assert_eq!(body["results"][1]["statuses"], json!(["NOT_FOUND"]));
            break;
        }
        assert!(Instant::now() < deadline, "the new view was never served: {status} {body}");
        std::thread::sleep(Duration::from_millis(300));
    }

    // SIGTERM: a clean exit.
    let status = serve.stop();
    assert!(status.success(), "larder serve exited with {status}");
}
