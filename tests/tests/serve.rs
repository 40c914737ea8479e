//! `larder serve` as a process: limits, Redis outages, registry refresh, graceful shutdown.

use std::time::{Duration, Instant};

use larder::config::RepoConfig;
use larder::registry;
use larder_tests::feast::copy_dir;
use larder_tests::http::{LarderServe, post_json, post_json_with, request};
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

/// `POST /materialize` and `/materialize-incremental` through `larder serve`'s router: Feast's
/// bodies, the interval recorded in the registry, the new values served by the running server
/// (no restart, and the registry cache is an hour), and what is refused.
#[test]
fn materialize_routes_record_and_serve_without_a_restart() {
    use larder_tests::cli::{materialization_intervals, newest_row, ok};
    let redis = RedisServer::start();
    let env = [("REDIS_ADDR", redis.addr())];
    let work = tempfile::tempdir().unwrap();
    ok(work.path(), &env, &["init", "repo"]);
    let repo = work.path().join("repo");
    ok(&repo, &env, &["example-data", "--drivers", "4", "--hours", "3", "--end", "2026-01-01T00:00:00Z"]);
    ok(&repo, &env, &["apply"]);
    let serve_env: Vec<(String, String)> =
        vec![("REDIS_ADDR".into(), redis.addr()), ("LARDER_REGISTRY_CACHE_TTL_SECONDS".into(), "3600".into())];
    let serve = LarderServe::start(&repo, &serve_env, &[]);
    let lookup = |view: &str| {
        let req = json!({"features": [format!("{view}:conv_rate")], "entities": {"driver_id": [1002]}});
        let (status, body) = post_json(serve.port, "/get-online-features", &req);
        assert_eq!(status, 200, "{body}");
        let r = &body["results"][1];
        (r["values"][0].clone(), r["statuses"][0].as_str().unwrap().to_string(), r["event_timestamps"][0].clone())
    };
    let intervals = |view: &str| materialization_intervals(&repo, &env, view);
    assert_eq!(lookup("driver_hourly_stats").1, "NOT_FOUND");

    // Refused: async runs, a missing field, a view that does not exist; nothing recorded.
    let body = json!({"start_ts": "2025-12-31T21:30:00", "end_ts": "2025-12-31T22:00:00"});
    let (status, answer) = post_json(serve.port, "/materialize?async=true", &body);
    assert_eq!((status, answer["error"]["code"].as_str()), (422, Some("unsupported")), "{answer}");
    assert!(answer["error"]["message"].as_str().unwrap().starts_with("async=true"), "{answer}");
    let (status, answer) = post_json(serve.port, "/materialize", &json!({"end_ts": "2025-12-31T22:00:00"}));
    assert_eq!((status, answer["error"]["message"].as_str()), (400, Some("start_ts is required")), "{answer}");
    let (status, answer) = post_json(
        serve.port,
        "/materialize-incremental",
        &json!({"end_ts": "2026-01-01T00:00:00", "feature_views": ["nope"]}),
    );
    assert_eq!((status, answer["error"]["code"].as_str()), (404, Some("feature_view_not_found")), "{answer}");
    assert!(intervals("driver_hourly_stats").is_empty());
    assert_eq!(redis::cmd("DBSIZE").query::<i64>(&mut redis.client()).unwrap(), 0);

    // A window: 200 with `null`, as Feast answers; recorded; served at once.
    let parquet = repo.join("data/driver_stats.parquet");
    let body = json!({"start_ts": "2025-12-31T21:30:00", "end_ts": "2025-12-31T22:00:00", "feature_views": ["driver_hourly_stats"]});
    let (status, answer) = post_json(serve.port, "/materialize", &body);
    assert_eq!((status, &answer), (200, &serde_json::Value::Null));
    assert_eq!(intervals("driver_hourly_stats"), [("2025-12-31T21:30:00Z".into(), "2025-12-31T22:00:00Z".into())]);
    assert!(intervals("driver_fresh").is_empty(), "only the view named");
    let at_22 = newest_row(&parquet, 1002, larder::time::EventTime::parse("2025-12-31T22:00:00Z").unwrap());
    let (value, status, time) = lookup("driver_hourly_stats");
    assert_eq!(
        (value.as_f64().unwrap() as f32, status.as_str(), time),
        (at_22.conv_rate, "PRESENT", json!("2025-12-31T22:00:00Z"))
    );
    assert_eq!(lookup("driver_fresh").1, "NOT_FOUND");

    // Incremental: each view from where it stopped (driver_fresh, never materialized, from its
    // ttl back), up to end_ts.
    let (status, answer) = post_json(serve.port, "/materialize-incremental", &json!({"end_ts": "2026-01-01T00:00:00"}));
    assert_eq!((status, &answer), (200, &serde_json::Value::Null));
    assert_eq!(
        intervals("driver_hourly_stats"),
        [
            ("2025-12-31T21:30:00Z".into(), "2025-12-31T22:00:00Z".into()),
            ("2025-12-31T22:00:00Z".into(), "2026-01-01T00:00:00Z".into())
        ]
    );
    assert_eq!(intervals("driver_fresh").len(), 1);
    assert_eq!(intervals("driver_fresh")[0].1, "2026-01-01T00:00:00Z");
    let at_23 = newest_row(&parquet, 1002, larder::time::EventTime::parse("2026-01-01T00:00:00Z").unwrap());
    for view in ["driver_hourly_stats", "driver_fresh"] {
        let (value, status, time) = lookup(view);
        assert_eq!(
            (value.as_f64().unwrap() as f32, status.as_str(), time),
            (at_23.conv_rate, "PRESENT", json!("2025-12-31T23:00:00Z")),
            "{view}"
        );
    }
}

/// The sensors example applied on a fresh Redis and served by `larder serve`, as its README
/// runs it.
async fn sensors_served() -> (RedisServer, tempfile::TempDir, LarderServe) {
    let redis = RedisServer::start();
    let (repo, _, _) = larder_tests::example::applied("sensors", &redis.addr()).await;
    let serve = LarderServe::start(repo.path(), &[("REDIS_ADDR".into(), redis.addr())], &[]);
    (redis, repo, serve)
}

/// The sensors example as its README runs it: `larder serve` on a Redis, then the generator
/// pushes readings over HTTP and checks the window aggregations against its own arithmetic.
#[tokio::test(flavor = "multi_thread")]
async fn the_sensors_example_generator_reads_back_its_own_windows() {
    let (_redis, repo, serve) = sensors_served().await;
    let out = std::process::Command::new("python3")
        .arg(repo.path().join("generate.py"))
        .args(["--url", &format!("http://127.0.0.1:{}", serve.port), "--sensors", "3", "--minutes", "2"])
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "generate.py failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("pushed 360 readings of 3 sensors"), "{stdout}");
    assert!(stdout.contains("match the readings' own"), "{stdout}");
}

/// An HTTP push retried with its `Idempotency-Key` counts once in window aggregations; without
/// one a retry counts again (at least once). A malformed key is a 400; with mode=async, a 422.
#[tokio::test(flavor = "multi_thread")]
async fn an_idempotency_key_makes_a_retried_push_count_once() {
    let (_redis, _repo, serve) = sensors_served().await;
    // Three readings of sensor 7, one to three minutes ago: inside the sliding hour.
    let now = larder::time::EventTime::now().as_micros();
    let times: Vec<String> =
        (1..=3).map(|m| larder::time::EventTime::from_micros(now - m * 60_000_000).to_rfc3339()).collect();
    let body = serde_json::json!({"push_source_name": "readings",
        "df": {"sensor_id": [7, 7, 7], "event_timestamp": times, "reading": [1.0, 2.0, 4.0]}});
    let push = |key: Option<&str>| {
        let headers: Vec<(&str, &str)> = key.map(|k| ("Idempotency-Key", k)).into_iter().collect();
        post_json_with(serve.port, "/push", &headers, &body)
    };
    let count = || {
        let read = serde_json::json!({"features": ["sensor_hour:readings_1h", "sensor_hour:avg_reading_3600s"],
                                      "entities": {"sensor_id": [7]}});
        let (status, answer) = post_json(serve.port, "/get-online-features", &read);
        assert_eq!(status, 200, "{answer}");
        let avg = answer["results"][2]["values"][0].as_f64().unwrap();
        (answer["results"][1]["values"][0].as_i64().unwrap(), (avg * 1e9).round() / 1e9)
    };
    assert_eq!(push(Some("batch-1")).0, 200);
    assert_eq!(count(), (3, 2.333333333));
    // The client did not see the answer and sends it again: nothing counts twice.
    assert_eq!(push(Some("batch-1")).0, 200);
    assert_eq!(count(), (3, 2.333333333));
    // A new key (another push of the same rows) counts, and so does a push without a key.
    assert_eq!(push(Some("batch-2")).0, 200);
    assert_eq!(count().0, 6);
    assert_eq!(push(None).0, 200);
    assert_eq!(count().0, 9);
    let (status, err) = push(Some("has space"));
    assert_eq!(status, 400, "{err}");
    assert!(
        err["error"]["message"].as_str().unwrap().contains("Idempotency-Key must be 1 to 128 visible ASCII"),
        "{err}"
    );
    let headers = [("Idempotency-Key", "batch-3")];
    let (status, err) = post_json_with(serve.port, "/push?mode=async", &headers, &body);
    assert_eq!(status, 422, "{err}");
    assert!(err["error"]["message"].as_str().unwrap().contains("synchronous pushes only"), "{err}");
    assert_eq!(count().0, 9, "nothing was written by the refused pushes");
}
