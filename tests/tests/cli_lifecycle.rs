//! The commands that set a repository up and load it, as a user runs them: `init`,
//! `example-data`, `plan`, `apply`, `materialize`, `materialize-incremental` and `push`, the
//! built binary in a temp directory over a real redis-server. Each is checked by what it prints
//! (exact lines, with counts computed here from the parquet file the parquet crate reads) and by
//! what it leaves behind: files, the registry (`describe --json`), Redis keys and the values
//! `larder get` answers. `cli_operator.rs` covers `get`, `list`, `describe` and `freshness`.

use std::path::Path;

use larder::time::EventTime;
use larder_tests::RedisServer;
use larder_tests::cli::{example_rows, larder, materialization_intervals, newest_row, ok, one_line_error};
use serde_json::{Value, json};

const EXAMPLE_STORE_YAML: &str = include_str!("../../examples/driver/feature_store.yaml");
const EXAMPLE_FEATURES_YAML: &str = include_str!("../../examples/driver/features.yaml");

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn init_writes_the_example_and_never_overwrites_unasked() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let out = ok(dir, &[], &["init", "repo"]);
    assert_eq!(out, "Created a feature repository in repo.\nNext: cd repo && larder example-data && larder apply\n");
    let repo = dir.join("repo");
    assert_eq!(read(&repo.join("feature_store.yaml")), EXAMPLE_STORE_YAML);
    assert_eq!(read(&repo.join("features.yaml")), EXAMPLE_FEATURES_YAML);
    assert!(repo.join("data").is_dir());

    // Either file already there: refused, and neither is touched.
    std::fs::write(repo.join("features.yaml"), "# mine\n").unwrap();
    std::fs::remove_file(repo.join("feature_store.yaml")).unwrap();
    let e = one_line_error(dir, &[], &["init", "repo"]);
    assert_eq!(e, "error: repo/features.yaml already exists (use --force to overwrite)");
    assert_eq!(read(&repo.join("features.yaml")), "# mine\n");
    assert!(!repo.join("feature_store.yaml").exists(), "a refused init writes nothing");

    ok(dir, &[], &["init", "repo", "--force"]);
    assert_eq!(read(&repo.join("features.yaml")), EXAMPLE_FEATURES_YAML);
    assert_eq!(read(&repo.join("feature_store.yaml")), EXAMPLE_STORE_YAML);
}

#[test]
fn example_data_is_the_grid_asked_for_and_reproducible() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let end = "2026-01-01T00:00:00Z";
    let out = ok(dir, &[], &["example-data", "--drivers", "4", "--hours", "3", "--end", end]);
    assert_eq!(out, "wrote 12 rows (4 drivers x 3 hours, ending 2026-01-01T00:00:00Z) to data/driver_stats.parquet\n");
    let rows = example_rows(&dir.join("data/driver_stats.parquet"));
    let mut grid: Vec<(i64, String)> = rows.iter().map(|r| (r.driver, r.at.to_rfc3339())).collect();
    grid.sort();
    let mut want = Vec::new();
    for d in 1000..1004 {
        for t in ["2025-12-31T21:00:00Z", "2025-12-31T22:00:00Z", "2025-12-31T23:00:00Z"] {
            want.push((d, t.to_string()));
        }
    }
    assert_eq!(grid, want, "drivers 1000.., hourly rows ending before --end");

    // The same seed writes the same values; another seed other values on the same grid.
    ok(dir, &[], &["example-data", "--drivers", "4", "--hours", "3", "--end", end, "--out", "same.parquet"]);
    assert_eq!(example_rows(&dir.join("same.parquet")), rows);
    ok(
        dir,
        &[],
        &["example-data", "--drivers", "4", "--hours", "3", "--end", end, "--out", "b.parquet", "--seed", "7"],
    );
    let other = example_rows(&dir.join("b.parquet"));
    assert_eq!(
        other.iter().map(|r| (r.driver, r.at)).collect::<Vec<_>>(),
        rows.iter().map(|r| (r.driver, r.at)).collect::<Vec<_>>()
    );
    assert_ne!(
        other.iter().map(|r| r.conv_rate).collect::<Vec<_>>(),
        rows.iter().map(|r| r.conv_rate).collect::<Vec<_>>()
    );

    let e = one_line_error(dir, &[], &["example-data", "--end", "yesterday"]);
    assert!(e.contains("yesterday"), "{e}");
}

const CREATE_ALL: &str = "+ create data source driver_stats_push_source
+ create data source driver_stats_source
+ create entity __dummy
+ create entity driver
+ create feature service driver_model_v1
+ create feature service driver_model_v2
+ create feature view driver_fresh
+ create feature view driver_hourly_stats
8 to create, 0 to update, 0 to delete.
";
const NO_CHANGES: &str = "No changes: the registry already matches the definitions.\n";

/// A repo from `init` with 4 drivers x 3 hours of example data ending 2026-01-01, applied.
fn applied_repo(work: &Path, env: &[(&str, String)]) -> std::path::PathBuf {
    ok(work, env, &["init", "repo"]);
    let repo = work.join("repo");
    ok(&repo, env, &["example-data", "--drivers", "4", "--hours", "3", "--end", "2026-01-01T00:00:00Z"]);
    ok(&repo, env, &["apply"]);
    repo
}

#[test]
fn plan_shows_and_apply_makes_each_change_once() {
    let work = tempfile::tempdir().unwrap();
    ok(work.path(), &[], &["init", "repo"]);
    let repo = work.path().join("repo");
    let registry = repo.join("data/registry.db");

    assert_eq!(ok(&repo, &[], &["plan"]), CREATE_ALL);
    assert!(!registry.exists(), "plan writes nothing");
    let out = ok(&repo, &[], &["apply"]);
    assert_eq!(
        out,
        format!("{CREATE_ALL}Registry {} updated for project 'driver_demo'.\n", registry.display()),
        "apply prints its plan, then where it wrote"
    );
    let written = std::fs::read(&registry).unwrap();
    assert_eq!(ok(&repo, &[], &["plan"]), NO_CHANGES);
    assert_eq!(ok(&repo, &[], &["apply"]), NO_CHANGES);
    assert_eq!(std::fs::read(&registry).unwrap(), written, "an apply with nothing to change leaves the bytes");

    // One view's ttl changed and one service removed: exactly those, and the registry has them.
    let defs = read(&repo.join("features.yaml"));
    let edited = defs.replacen("ttl: 3650d", "ttl: 30d", 1);
    let cut = edited.find("  driver_model_v2:").unwrap();
    std::fs::write(repo.join("features.yaml"), &edited[..cut]).unwrap();
    let plan = "~ update feature view driver_hourly_stats\n- delete feature service driver_model_v2\n0 to create, 1 to update, 1 to delete.\n";
    assert_eq!(ok(&repo, &[], &["plan"]), plan);
    assert_eq!(std::fs::read(&registry).unwrap(), written);
    ok(&repo, &[], &["apply"]);
    let view: Value = serde_json::from_str(&ok(&repo, &[], &["describe", "driver_hourly_stats", "--json"])).unwrap();
    assert_eq!(view[0]["ttl_seconds"], 30 * 86400);
    let fresh: Value = serde_json::from_str(&ok(&repo, &[], &["describe", "driver_fresh", "--json"])).unwrap();
    assert_eq!(fresh[0]["ttl_seconds"], 3650 * 86400);
    let e = one_line_error(&repo, &[], &["describe", "driver_model_v2"]);
    assert!(e.contains("driver_model_v2"), "{e}");
    assert_eq!(ok(&repo, &[], &["plan"]), NO_CHANGES);

    // A definition that cannot be read: one line naming the file, nothing written.
    std::fs::write(repo.join("features.yaml"), "feature_views:\n  v: [unclosed\n").unwrap();
    let before = std::fs::read(&registry).unwrap();
    let e = one_line_error(&repo, &[], &["apply"]);
    assert!(e.contains("features.yaml"), "{e}");
    assert_eq!(std::fs::read(&registry).unwrap(), before);
}

/// `larder get --json` of driver_id=`driver`: (value, status, event time) of each feature.
fn get(repo: &Path, env: &[(&str, String)], features: &str, driver: i64) -> Vec<(Value, String, String)> {
    let answer: Value = serde_json::from_str(&ok(
        repo,
        env,
        &["get", "--features", features, "--entity", &format!("driver_id={driver}"), "--json"],
    ))
    .unwrap();
    answer["results"].as_array().unwrap()[1..]
        .iter()
        .map(|r| {
            (
                r["values"][0].clone(),
                r["statuses"][0].as_str().unwrap().into(),
                r["event_timestamps"][0].as_str().unwrap().into(),
            )
        })
        .collect()
}

#[test]
fn materialize_then_incremental_load_the_window_and_record_it() {
    let redis = RedisServer::start();
    let env = [("REDIS_ADDR", redis.addr())];
    let work = tempfile::tempdir().unwrap();
    let repo = applied_repo(work.path(), &env);
    let parquet = repo.join("data/driver_stats.parquet");
    let rows = example_rows(&parquet);
    let (start, end) =
        (EventTime::parse("2025-12-31T21:30:00Z").unwrap(), EventTime::parse("2025-12-31T23:00:00Z").unwrap());
    let in_window = rows.iter().filter(|r| r.at >= start && r.at <= end).count();
    assert_eq!(in_window, 8);

    let out = ok(&repo, &env, &["materialize", "2025-12-31T21:30:00Z", "2025-12-31T23:00:00Z"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    for (line, view) in lines.iter().zip(["driver_fresh", "driver_hourly_stats"]) {
        assert_eq!(
            *line,
            format!(
                "{view}: 2025-12-31T21:30:00Z to 2025-12-31T23:00:00Z: {in_window} rows in window, 4 entities, 4 written, 0 not newer than stored"
            )
        );
    }
    assert!(lines[2].starts_with("12 rows read from 1 files (1 row groups, 0 skipped on statistics) in "), "{out}");
    assert!(lines[2].ends_with("; recorded in the registry"), "{out}");
    let keys: i64 = redis::cmd("DBSIZE").query(&mut redis.client()).unwrap();
    assert_eq!(keys, 4, "one hash per driver, holding both views");
    for driver in 1000..1004 {
        let want = newest_row(&parquet, driver, end);
        let got = get(&repo, &env, "driver_hourly_stats:conv_rate,driver_hourly_stats:avg_daily_trips", driver);
        assert_eq!(got[0].0.as_f64().unwrap() as f32, want.conv_rate, "driver {driver}");
        assert_eq!(got[1].0, json!(want.trips), "driver {driver}");
        assert_eq!(got[0].2, "2025-12-31T23:00:00Z");
        assert_eq!(got[0].1, "PRESENT");
    }
    let first = ("2025-12-31T21:30:00Z".to_string(), "2025-12-31T23:00:00Z".to_string());
    assert_eq!(materialization_intervals(&repo, &env, "driver_hourly_stats"), vec![first.clone()]);

    // Incremental: from where the last run ended; the row at that end is read again, not newer.
    let out = ok(&repo, &env, &["materialize-incremental", "2026-01-01T00:00:00Z", "--views", "driver_hourly_stats"]);
    let next = rows.iter().filter(|r| r.at >= end && r.at <= EventTime::parse("2026-01-01T00:00:00Z").unwrap()).count();
    assert_eq!(
        out.lines().next().unwrap(),
        format!(
            "driver_hourly_stats: 2025-12-31T23:00:00Z to 2026-01-01T00:00:00Z: {next} rows in window, 4 entities, 0 written, 4 not newer than stored"
        )
    );
    assert_eq!(out.lines().count(), 2, "--views: only that view: {out}");
    let second = ("2025-12-31T23:00:00Z".to_string(), "2026-01-01T00:00:00Z".to_string());
    assert_eq!(materialization_intervals(&repo, &env, "driver_hourly_stats"), vec![first.clone(), second]);
    assert_eq!(materialization_intervals(&repo, &env, "driver_fresh"), vec![first], "a view not named is not recorded");

    let out = ok(&repo, &env, &["materialize-incremental", "2026-01-01T00:00:00Z", "--views", "driver_hourly_stats"]);
    assert_eq!(
        out.lines().collect::<Vec<_>>()[..2],
        [
            "driver_hourly_stats: already materialized up to the end given; nothing to do",
            "0 rows read from 0 files (0 row groups, 0 skipped on statistics) in 0.00s; not recorded"
        ]
    );

    // Times that cannot be read, and a view that does not exist: one line each, naming them.
    let e = one_line_error(&repo, &env, &["materialize", "2025-12-31", "soon"]);
    assert!(e.starts_with("error: END: ") && e.contains("soon"), "{e}");
    let e = one_line_error(&repo, &env, &["materialize-incremental", "now", "--views", "no_such_view"]);
    assert!(e.contains("no_such_view"), "{e}");
    assert_eq!(redis::cmd("DBSIZE").query::<i64>(&mut redis.client()).unwrap(), 4);
}

fn push_line(driver: i64, at: &str, conv_rate: f64, source: &str) -> String {
    json!({"push_source_name": source, "df": {
        "driver_id": [driver], "event_timestamp": [at], "conv_rate": [conv_rate], "acc_rate": [0.5],
        "avg_daily_trips": [9], "miles_driven": [1.5], "rating": [4.5], "city": ["x"], "is_active": [true]}})
    .to_string()
}

#[test]
fn push_writes_newer_rows_and_reports_every_rejected_one() {
    let redis = RedisServer::start();
    let env = [("REDIS_ADDR", redis.addr())];
    let work = tempfile::tempdir().unwrap();
    let repo = applied_repo(work.path(), &env);
    ok(&repo, &env, &["materialize", "2025-12-31T00:00:00Z", "2026-01-01T00:00:00Z"]);
    let src = "driver_stats_push_source";
    let lines = [
        push_line(1000, "2026-01-01T05:00:00Z", 0.125, src), // newer than the stored 23:00 row
        push_line(1001, "2025-12-01T05:00:00Z", 0.25, src),  // older: not written
        "not json".to_string(),
        push_line(1002, "2026-01-01T06:00:00Z", 0.375, "nope"),
    ];
    std::fs::write(repo.join("rows.jsonl"), lines.join("\n")).unwrap();
    let before_1001 = get(&repo, &env, "driver_fresh:conv_rate", 1001);

    let out = larder(&repo, &env, &["push", "rows.jsonl", "--dead-letters", "dl.jsonl"]);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "some records were rejected: {stderr}");
    assert_eq!(stdout, "pushed: 2 records, 2 rows; 1 written, 1 not newer than the stored event\n");
    assert!(stderr.contains("rejected rows.jsonl:3: record is not valid JSON"), "{stderr}");
    assert_eq!(stderr.matches("record is not valid JSON").count(), 1, "each rejection is listed once: {stderr}");
    assert!(
        stderr.contains("rejected rows.jsonl:4: push source 'nope' does not exist in project 'driver_demo'"),
        "{stderr}"
    );
    assert!(stderr.trim_end().ends_with("error: 2 of 4 records were rejected (listed above)"), "{stderr}");
    // The dead letters: one JSON line per rejected record, with where it was, why, and itself.
    let letters: Vec<Value> = read(&repo.join("dl.jsonl")).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(letters.len(), 2);
    assert_eq!(letters[0]["source"], json!({"kind": "file", "path": "rows.jsonl", "line": 3}));
    assert_eq!(letters[0]["error"]["code"], "bad_request");
    assert_eq!(letters[0]["record"]["data"], "not json");
    assert_eq!(letters[1]["error"]["code"], "push_source_not_found");
    assert_eq!(letters[1]["record"]["data"], lines[3]);

    // Values: 1000 has the pushed row (only in the push source's view), 1001 kept its own.
    let got = get(&repo, &env, "driver_fresh:conv_rate", 1000);
    assert_eq!((got[0].0.clone(), got[0].2.as_str()), (json!(0.125), "2026-01-01T05:00:00Z"));
    let hourly = get(&repo, &env, "driver_hourly_stats:conv_rate", 1000);
    assert_eq!(hourly[0].2, "2025-12-31T23:00:00Z", "a push source feeds only its own views");
    assert_eq!(get(&repo, &env, "driver_fresh:conv_rate", 1001), before_1001);

    // --dry-run checks and writes nothing; standard input works as a file does.
    let newer = push_line(1003, "2026-01-02T00:00:00Z", 0.5, src);
    std::fs::write(repo.join("one.json"), &newer).unwrap();
    let before = get(&repo, &env, "driver_fresh:conv_rate", 1003);
    let out = ok(&repo, &env, &["push", "--dry-run", "one.json"]);
    assert_eq!(out, "checked (nothing written): 1 records, 1 rows valid\n");
    assert_eq!(get(&repo, &env, "driver_fresh:conv_rate", 1003), before);
    let mut child = std::process::Command::new(larder_tests::http::larder_bin())
        .current_dir(&repo)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .args(["push", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(newer.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "pushed: 1 records, 1 rows; 1 written, 0 not newer than the stored event\n"
    );
    assert_eq!(get(&repo, &env, "driver_fresh:conv_rate", 1003)[0].0, json!(0.5));
}

/// `larder push` into stream views: the rows are written newest-wins, their events feed the
/// window aggregations, and an event later than a view's allowed lateness is reported.
#[test]
fn push_into_stream_views_reports_window_events_and_late_ones() {
    let redis = RedisServer::start();
    let env = [("REDIS_ADDR", redis.addr())];
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("sensors");
    larder_tests::feast::copy_dir(&larder_tests::repo_root().join("examples/sensors"), &repo);
    ok(&repo, &env, &["apply"]);
    let line = |t: &str, x: f64| json!({"sensor_id": 7, "event_timestamp": t, "reading": x}).to_string();
    // The third is 260 s behind the second: late for the minute view (lateness 60 s), not for
    // the hour view (600 s).
    let lines =
        [line("2026-01-01T10:00:30Z", 1.0), line("2026-01-01T10:05:00Z", 2.0), line("2026-01-01T10:00:40Z", 3.0)];
    std::fs::write(repo.join("readings.jsonl"), lines.join("\n")).unwrap();
    let out = larder(&repo, &env, &["push", "readings.jsonl", "--source", "readings"]);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "the late event is reported: {stderr}");
    // Per view, only the 10:05 row is the newest: the other two are not newer. Every event but
    // the late one feeds the windows.
    assert_eq!(
        stdout,
        "pushed: 2 records, 6 rows; 2 written, 4 not newer than the stored event; window aggregations: 5 events \
         applied, 1 late\n"
    );
    assert!(stderr.contains("rejected readings.jsonl:3:") && stderr.contains("sensor_minute"), "{stderr}");
}
