//! The operator's commands (`larder get`, `list`, `describe`, `freshness`) as a user runs them:
//! the built binary, a real redis-server, and a registry made by `larder init` / `example-data`
//! / `apply` / `materialize` / `push`. Expected values come from what the test wrote (the pushed
//! row, the window given to `materialize`), from the parquet file read here, and from
//! `larder serve`'s answer to the same request.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use larder::time::EventTime;
use larder_tests::cli::{newest_row, ok, one_line_error};
use larder_tests::http::{LarderServe, post_json};
use larder_tests::{RedisServer, free_port};
use serde_json::{Value, json};

/// A table as printed: the header's columns start where its names do (names are two or more
/// spaces apart), and every row's cells are cut at those same offsets, so a misaligned row
/// shows as wrong cells.
fn parse_table(text: &str) -> Vec<Vec<String>> {
    let mut lines = text.lines();
    let header = lines.next().expect("a header line");
    let mut starts = vec![0];
    let bytes = header.as_bytes();
    for i in 2..bytes.len() {
        if bytes[i] != b' ' && bytes[i - 1] == b' ' && bytes[i - 2] == b' ' {
            starts.push(i);
        }
    }
    let cut = |line: &str| -> Vec<String> {
        (0..starts.len())
            .map(|c| {
                let end = starts.get(c + 1).copied().unwrap_or(usize::MAX).min(line.len());
                line.get(starts[c].min(line.len())..end).unwrap_or_else(|| panic!("{line:?}")).trim().to_string()
            })
            .collect()
    };
    std::iter::once(header).chain(lines).map(cut).collect()
}

/// A row of a parsed table by its first cell.
fn row<'t>(table: &'t [Vec<String>], first: &str) -> &'t [String] {
    table.iter().find(|r| r[0] == first).unwrap_or_else(|| panic!("no row {first} in {table:?}"))
}

/// The cell of `row` under column `name` (the first column so named).
fn cell<'t>(table: &[Vec<String>], row: &'t [String], name: &str) -> &'t str {
    let i = table[0].iter().position(|h| h == name).unwrap_or_else(|| panic!("no column {name} in {:?}", table[0]));
    &row[i]
}

fn hour_floor(t: EventTime) -> EventTime {
    EventTime::new(t.secs - t.secs.rem_euclid(3600), 0)
}

#[test]
fn operator_commands_against_redis_and_a_registry() {
    let redis = RedisServer::start();
    let env = [("REDIS_ADDR", redis.addr())];
    let work = tempfile::tempdir().unwrap();
    ok(work.path(), &env, &["init", "repo"]);
    let repo = work.path().join("repo");
    let repo = repo.as_path();

    // 20 drivers x 12 hourly rows ending at the last full hour; the window materialized ends
    // between two rows, and a pushed row for driver 1001 is newer than all of them.
    let data_end = hour_floor(EventTime::now());
    let (start, end) = (data_end.add_secs(-10 * 3600), data_end.add_secs(-2 * 3600 - 1800));
    ok(repo, &env, &["example-data", "--drivers", "20", "--hours", "12", "--end", &data_end.to_string()]);
    ok(repo, &env, &["apply"]);
    ok(repo, &env, &["materialize", &start.to_string(), &end.to_string()]);
    let pushed_at = EventTime::new(EventTime::now().secs - 60, 0);
    let push = json!({
        "push_source_name": "driver_stats_push_source",
        "df": {"driver_id": [1001], "event_timestamp": [pushed_at.to_string()], "created": [pushed_at.to_string()],
               "conv_rate": [0.5], "acc_rate": [0.75], "avg_daily_trips": [7], "miles_driven": [1.5],
               "rating": [4.25], "city": ["sea"], "is_active": [false]}
    });
    std::fs::write(repo.join("fresh.json"), push.to_string()).unwrap();
    ok(repo, &env, &["push", "fresh.json"]);

    let parquet = repo.join("data/driver_stats.parquet");
    let r1001 = newest_row(&parquet, 1001, end);
    let r1002 = newest_row(&parquet, 1002, end);
    let (t1001, conv1001, trips1001) = (r1001.at, r1001.conv_rate, r1001.trips);
    let (t1002, conv1002, trips1002, rating1002) = (r1002.at, r1002.conv_rate, r1002.trips, r1002.rating);

    // --- get: a table, one row per entity row, NOT_FOUND for a driver that has no row.
    let get = [
        "get",
        "--feature-service",
        "driver_model_v2",
        "--entity",
        "driver_id=1001",
        "--entity",
        "driver_id=1002",
        "--entity",
        "driver_id=999999",
        "--full-feature-names",
    ];
    let table = parse_table(&ok(repo, &env, &get));
    assert_eq!(
        table[0],
        [
            "driver_id",
            "driver_hourly_stats__conv_rate",
            "driver_hourly_stats__acc_rate",
            "driver_hourly_stats__avg_daily_trips",
            "driver_fresh__rating",
            "driver_fresh__is_active"
        ]
    );
    assert_eq!(table.len(), 4, "{table:?}");
    let r = row(&table, "1001");
    assert_eq!(cell(&table, r, "driver_hourly_stats__conv_rate"), conv1001.to_string());
    assert_eq!(cell(&table, r, "driver_hourly_stats__avg_daily_trips"), trips1001.to_string());
    assert_eq!(cell(&table, r, "driver_fresh__rating"), "4.25");
    assert_eq!(cell(&table, r, "driver_fresh__is_active"), "false");
    let r = row(&table, "1002");
    assert_eq!(cell(&table, r, "driver_hourly_stats__conv_rate"), conv1002.to_string());
    assert_eq!(cell(&table, r, "driver_hourly_stats__avg_daily_trips"), trips1002.to_string());
    assert_eq!(row(&table, "999999")[1..], ["NOT_FOUND"; 5]);

    // --- get --json: exactly what `larder serve` answers for the same request body.
    let body = json!({
        "feature_service": "driver_model_v2",
        "entities": {"driver_id": [1001, 1002, 999999]},
        "full_feature_names": true
    });
    let cli: Value = serde_json::from_str(&ok(repo, &env, &[&get[..], &["--json"]].concat())).unwrap();
    let serve_env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    let mut serve = LarderServe::start(repo, &serve_env, &[]);
    let (status, http) = post_json(serve.port, "/get-online-features", &body);
    assert_eq!(status, 200, "{http}");
    assert_eq!(cli, http);
    serve.stop();
    assert_eq!(cli["metadata"]["feature_names"][4], "driver_fresh__rating");
    assert_eq!(cli["results"][4]["values"][0], 4.25);
    assert_eq!(cli["results"][4]["values"][1].as_f64().map(|r| r as f32), Some(rating1002));
    assert_eq!(cli["results"][4]["values"][2], Value::Null);
    assert_eq!(cli["results"][4]["statuses"], json!(["PRESENT", "PRESENT", "NOT_FOUND"]));
    assert_eq!(cli["results"][4]["event_timestamps"][0], pushed_at.to_string());
    assert_eq!(cli["results"][1]["event_timestamps"][0], t1001.to_string());
    assert_eq!(cli["results"][1]["event_timestamps"][1], t1002.to_string());

    // Features by name, a string join key value, and columns of unequal length.
    let table = parse_table(&ok(
        repo,
        &env,
        &["get", "--features", "driver_fresh:city,driver_fresh:rating", "--entity", "driver_id=1001"],
    ));
    assert_eq!(table, [vec!["driver_id", "city", "rating"], vec!["1001", "sea", "4.25"]]);
    let e = one_line_error(
        repo,
        &env,
        &[
            "get",
            "--features",
            "driver_fresh:city",
            "--entity",
            "driver_id=1",
            "--entity",
            "driver_id=2",
            "--entity",
            "x=1",
        ],
    );
    assert!(e.contains("driver_id") && e.contains("2 times") && e.contains("x 1 times"), "{e}");
    let e = one_line_error(repo, &env, &["get", "--features", "no_such_view:x", "--entity", "driver_id=1"]);
    assert!(e.contains("no_such_view"), "{e}");

    // --- list: every kind, grouped; one kind; JSON.
    let listed = ok(repo, &env, &["list"]);
    for name in [
        "driver",
        "driver_stats_source",
        "driver_stats_push_source",
        "driver_hourly_stats",
        "driver_fresh",
        "driver_model_v1",
        "driver_model_v2",
    ] {
        assert!(listed.split_whitespace().any(|w| w == name), "{name} missing from:\n{listed}");
    }
    for group in ["entities", "sources", "views", "services"] {
        assert!(listed.lines().any(|l| l == group), "no group {group}:\n{listed}");
    }
    let views = parse_table(&ok(repo, &env, &["list", "views"]));
    assert_eq!(views.len(), 3, "{views:?}");
    for name in ["driver_hourly_stats", "driver_fresh"] {
        let r = row(&views, name);
        assert_eq!(cell(&views, r, "TTL"), "3650d");
        assert_eq!(cell(&views, r, "FEATURES"), "7");
        assert_eq!(cell(&views, r, "MATERIALIZED UNTIL"), end.to_string());
    }
    let json_views: Value = serde_json::from_str(&ok(repo, &env, &["list", "views", "--json"])).unwrap();
    let names: BTreeSet<&str> =
        json_views["views"].as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert_eq!(names, BTreeSet::from(["driver_fresh", "driver_hourly_stats"]));
    assert_eq!(json_views.as_object().unwrap().len(), 1, "only the kind asked for");

    // --- describe a view: TTL, join key, every field with its type, the interval materialized.
    let text = ok(repo, &env, &["describe", "driver_hourly_stats"]);
    let words: Vec<Vec<&str>> = text.lines().map(|l| l.split_whitespace().collect()).collect();
    let has = |line: &[&str]| words.iter().any(|w| w == line);
    assert!(has(&["ttl", "3650d"]), "{text}");
    assert!(has(&["join", "keys", "driver_id", "(Int64)"]), "{text}");
    assert!(has(&["online", "yes"]), "{text}");
    assert!(has(&["batch", "source", "driver_stats_source"]), "{text}");
    for (f, ty) in [
        ("conv_rate", "Float32"),
        ("acc_rate", "Float32"),
        ("avg_daily_trips", "Int64"),
        ("miles_driven", "Float64"),
        ("rating", "Float32"),
        ("city", "String"),
        ("is_active", "Bool"),
    ] {
        assert!(has(&[f, ty]), "{f}: {ty} missing:\n{text}");
    }
    assert!(has(&[&start.to_string(), &end.to_string()]), "interval missing:\n{text}");
    let described: Value =
        serde_json::from_str(&ok(repo, &env, &["describe", "driver_hourly_stats", "--json"])).unwrap();
    assert_eq!(described.as_array().unwrap().len(), 1);
    let v = &described[0];
    assert_eq!((v["kind"].as_str(), v["ttl_seconds"].as_u64()), (Some("feature_view"), Some(3650 * 86_400)));
    assert_eq!(v["materialization_intervals"], json!([{"start": start.to_string(), "end": end.to_string()}]));
    assert_eq!(v["join_keys"], json!([{"name": "driver_id", "type": "Int64"}]));
    let e = one_line_error(repo, &env, &["describe", "no_such_thing"]);
    assert!(e.contains("'no_such_thing'") && e.contains("driver_hourly_stats") && e.contains("driver_model_v2"), "{e}");

    // --- freshness: the pushed row is the newest of driver_fresh, the parquet's newest row in
    // the window that of driver_hourly_stats; both materialized up to the window's end.
    let drivers_t = (0..20).map(|d| newest_row(&parquet, 1000 + d, end).at).max().unwrap();
    let table = parse_table(&ok(repo, &env, &["freshness"]));
    assert_eq!(table[0], ["VIEW", "NEWEST EVENT", "AGE", "KEYS WITH VIEW", "MATERIALIZED UNTIL", "AGE"]);
    let fresh = row(&table, "driver_fresh");
    assert_eq!(
        (fresh[1].as_str(), fresh[3].as_str(), fresh[4].as_str()),
        (&*pushed_at.to_string(), "20 of 20", &*end.to_string())
    );
    let hourly = row(&table, "driver_hourly_stats");
    assert_eq!(
        (hourly[1].as_str(), hourly[3].as_str(), hourly[4].as_str()),
        (&*drivers_t.to_string(), "20 of 20", &*end.to_string())
    );
    // Ages: the push a minute ago reads as minutes; the window ended hours ago.
    assert!(fresh[2].ends_with('s') && fresh[2].contains('m') && !fresh[2].contains('h'), "{fresh:?}");
    assert!(hourly[5].contains('h'), "{hourly:?}");

    let before = EventTime::now();
    let json_fresh: Value = serde_json::from_str(&ok(repo, &env, &["freshness", "--json", "--sample", "5"])).unwrap();
    let after = EventTime::now();
    let views = json_fresh.as_array().unwrap();
    assert_eq!(views.len(), 2);
    for v in views {
        assert_eq!((v["sampled_keys"].as_u64(), v["keys_with_view"].as_u64()), (Some(5), Some(5)), "{v}");
        assert_eq!(v["materialized_until"], end.to_string());
        let age = v["materialized_age_seconds"].as_i64().unwrap();
        assert!((before.secs - end.secs - 1..=after.secs - end.secs).contains(&age), "{v}");
    }

    // --- one-line errors: no repo, a bad feature_store.yaml, Redis unreachable.
    let missing = work.path().join("no_such_repo");
    let e = one_line_error(work.path(), &env, &["list", "--repo", missing.to_str().unwrap()]);
    assert!(e.contains("no_such_repo"), "{e}");
    let bad = work.path().join("bad");
    std::fs::create_dir(&bad).unwrap();
    std::fs::write(bad.join("feature_store.yaml"), "project: [unclosed\n").unwrap();
    for args in [&["describe", "x"][..], &["freshness"], &["get", "--features", "a:b", "--entity", "k=1"]] {
        let e = one_line_error(&bad, &env, args);
        assert!(e.contains("feature_store.yaml"), "{args:?}: {e}");
    }
    let nowhere = [("REDIS_ADDR", format!("127.0.0.1:{}", free_port()))];
    for args in [&["freshness"][..], &["get", "--features", "driver_fresh:city", "--entity", "driver_id=1001"]] {
        let started = Instant::now();
        let e = one_line_error(repo, &nowhere, args);
        assert!(e.contains("cannot be reached"), "{args:?}: {e}");
        assert!(started.elapsed() < Duration::from_secs(10), "{args:?} took {:?}", started.elapsed());
    }
    // The registry alone needs no Redis.
    ok(repo, &nowhere, &["list", "services"]);
}
