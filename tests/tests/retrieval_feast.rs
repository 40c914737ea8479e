//! The same get-online-features requests to `feast serve` (Feast 0.67) and `larder serve`, over
//! the same Redis (filled by `feast materialize`) and the same registry (`feast apply`): the
//! answers agree on names, values, statuses and timestamps, except where Feast is wrong and
//! README's compatibility table says so (an entity with no row: Feast says PRESENT, Larder
//! NOT_FOUND).

use std::process::Stdio;
use std::time::Duration;

use larder::time::EventTime;
use larder_tests::http::{LarderServe, post_json};
use larder_tests::{FeastRepo, Peer, RedisServer, free_port, run, wait_for_port};
use serde_json::{Value, json};

/// Column name -> (values, statuses, event_timestamps).
fn columns(answer: &Value) -> Vec<(String, Value, Value, Value)> {
    let names = answer["metadata"]["feature_names"].as_array().expect("feature_names");
    names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let r = &answer["results"][i];
            (n.as_str().unwrap().to_string(), r["values"].clone(), r["statuses"].clone(), r["event_timestamps"].clone())
        })
        .collect()
}

const RECENT_VIEW: &str = r#"

recent_file = FileSource(name="recent_source", path="data/recent.parquet", timestamp_field="event_timestamp")
driver_recent = FeatureView(
    name="driver_recent",
    entities=[driver],
    ttl=timedelta(minutes=40),
    schema=[Field(name="conv_rate", dtype=Float32)],
    online=True,
    source=recent_file,
)
"#;

const WRITE_RECENT: &str = r#"
import pandas as pd
now = pd.Timestamp.now(tz="UTC").floor("s")
pd.DataFrame({
    "driver_id": [2000 + i for i in range(6)],
    "event_timestamp": [now - pd.Timedelta(minutes=15 * i) for i in range(6)],
    "conv_rate": pd.Series([0.5 + i / 8 for i in range(6)], dtype="float32"),
}).to_parquet("data/recent.parquet")
"#;

#[test]
fn larder_answers_like_feast_serve() {
    let redis = RedisServer::start();
    let repo = FeastRepo::from_fixture("feast_driver_repo", &redis.addr());
    let end = EventTime::parse("2026-11-20T00:00:00Z").unwrap();
    larder::example_data::write_driver_stats(&repo.path().join("data/driver_stats.parquet"), 20, 3, end, 5).unwrap();
    // A view with a 40-minute ttl over rows 0, 15, ..., 75 minutes old (written by pandas,
    // materialized by Feast): Feast's Python server answers them all PRESENT, Larder the older
    // half OUTSIDE_MAX_AGE, as Feast's Go server's rule does (docs/compatibility.md §8).
    let mut defs = std::fs::read_to_string(repo.path().join("features.py")).unwrap();
    defs.push_str(RECENT_VIEW);
    std::fs::write(repo.path().join("features.py"), defs).unwrap();
    repo.python(WRITE_RECENT);
    run(&mut repo.feast(&["apply"]));
    run(&mut repo.feast(&["materialize", "2026-01-01T00:00:00", "2026-12-01T00:00:00"]));
    let now = EventTime::now().secs;
    let (from, to) = (EventTime::new(now - 3 * 3600, 0), EventTime::new(now + 3600, 0));
    run(&mut repo.feast(&["materialize", "--views", "driver_recent", &from.to_rfc3339(), &to.to_rfc3339()]));

    let feast_port = free_port();
    // A gunicorn master and its worker, in the peer's process group: both stop with it.
    let _feast = Peer::spawn(
        "feast serve",
        repo.feast(&["serve", "-h", "127.0.0.1", "-p", &feast_port.to_string(), "--no-access-log"])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let env = vec![("REDIS_ADDR".to_string(), redis.addr())];
    let larder = LarderServe::start(repo.path(), &env, &[]);
    assert!(wait_for_port(feast_port, Duration::from_secs(120)), "feast serve did not start");
    // Feast answers /health once its registry is loaded.
    for _ in 0..120 {
        if larder_tests::http::request(feast_port, "GET", "/health", b"").is_ok_and(|(s, _)| s == 200) {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }

    let all = ["conv_rate", "acc_rate", "avg_daily_trips", "miles_driven", "rating", "city", "is_active"];
    let refs: Vec<String> = all.iter().map(|f| format!("driver_hourly_stats:{f}")).collect();
    let requests = [
        json!({"features": refs, "entities": {"driver_id": [1000, 1005, 1019, 1005]}}),
        json!({"features": refs, "entities": {"driver_id": [1003]}, "full_feature_names": true}),
        json!({"feature_service": "driver_model_v1", "entities": {"driver_id": [1001, 1002]}}),
        json!({"features": ["driver_hourly_stats:city", "driver_hourly_stats:conv_rate"], "entities": {"driver_id": [1007], "unused_request_column": ["x"]}}),
    ];
    for req in &requests {
        let (fs, feast) = post_json(feast_port, "/get-online-features", req);
        let (ls, ours) = post_json(larder.port, "/get-online-features", req);
        assert_eq!((fs, ls), (200, 200), "{req}\nfeast: {feast}\nlarder: {ours}");
        let (mut f, mut l) = (columns(&feast), columns(&ours));
        // Join-key columns come first in both; Feast's order of features within a view is a
        // set's order, so compare by name.
        assert_eq!(f[0].0, l[0].0);
        f.sort_by(|a, b| a.0.cmp(&b.0));
        l.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(f, l, "{req}");
    }

    // The view's ttl: the same values and times; statuses by Feast's Python server (never
    // checked) and by Larder, which agrees with the Go server's rule on each row's time.
    let req = json!({"features": ["driver_recent:conv_rate"], "entities": {"driver_id": [2000, 2001, 2002, 2003, 2004, 2005]}});
    let (fs, feast) = post_json(feast_port, "/get-online-features", &req);
    let asked = EventTime::now();
    let (ls, ours) = post_json(larder.port, "/get-online-features", &req);
    assert_eq!((fs, ls), (200, 200), "feast: {feast}\nlarder: {ours}");
    assert_eq!(feast["results"][1]["values"], json!([0.5, 0.625, 0.75, 0.875, 1.0, 1.125]));
    assert_eq!(ours["results"][1]["values"], feast["results"][1]["values"]);
    assert_eq!(ours["results"][1]["event_timestamps"], feast["results"][1]["event_timestamps"]);
    assert_eq!(feast["results"][1]["statuses"], json!(vec!["PRESENT"; 6]));
    let go_rule: Vec<&str> = feast["results"][1]["event_timestamps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| EventTime::parse(t.as_str().unwrap()).unwrap())
        .map(|t| if asked.secs - t.secs > 40 * 60 { "OUTSIDE_MAX_AGE" } else { "PRESENT" })
        .collect();
    assert_eq!(go_rule, ["PRESENT", "PRESENT", "PRESENT", "OUTSIDE_MAX_AGE", "OUTSIDE_MAX_AGE", "OUTSIDE_MAX_AGE"]);
    assert_eq!(ours["results"][1]["statuses"], json!(go_rule));

    // An entity with no row: the one documented difference.
    let req = json!({"features": ["driver_hourly_stats:conv_rate"], "entities": {"driver_id": [1000, 999999]}});
    let (_, feast) = post_json(feast_port, "/get-online-features", &req);
    let (_, ours) = post_json(larder.port, "/get-online-features", &req);
    assert_eq!(feast["results"][1]["statuses"], json!(["PRESENT", "PRESENT"]));
    assert_eq!(ours["results"][1]["statuses"], json!(["PRESENT", "NOT_FOUND"]));
    assert_eq!(feast["results"][1]["values"][1], Value::Null);
    assert_eq!(ours["results"][1]["values"][1], Value::Null);
    assert_eq!(feast["results"][1]["event_timestamps"], ours["results"][1]["event_timestamps"]);
    assert_eq!(feast["results"][1]["values"][0], ours["results"][1]["values"][0]);
}
