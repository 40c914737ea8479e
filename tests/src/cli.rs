//! Running the `larder` binary as a user does, in a directory, with a clean environment (no
//! `LARDER_*` variable of the caller's leaks in), and reading the example data it writes.

use std::path::Path;
use std::process::{Command, Output};

use arrow_array::{Array, Float32Array, Int64Array, TimestampMicrosecondArray};
use larder::time::EventTime;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::http::larder_bin;

/// Runs `larder ARGS` in `dir` with `env`, logging at the CLI's default level.
pub fn larder(dir: &Path, env: &[(&str, String)], args: &[&str]) -> Output {
    let mut cmd = Command::new(larder_bin());
    cmd.current_dir(dir).args(args);
    for var in ["LARDER_LOG", "LARDER_REPO", "LARDER_CONFIG", "LARDER_PROJECT", "LARDER_REGISTRY"] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    cmd.output().unwrap_or_else(|e| panic!("cannot run larder {args:?}: {e}"))
}

/// [`larder`], which must succeed; its stdout.
pub fn ok(dir: &Path, env: &[(&str, String)], args: &[&str]) -> String {
    let out = larder(dir, env, args);
    assert!(
        out.status.success(),
        "larder {args:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// [`larder`], which must fail with status 1 and one line `error: ...` on stderr; that line.
pub fn one_line_error(dir: &Path, env: &[(&str, String)], args: &[&str]) -> String {
    let out = larder(dir, env, args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "larder {args:?}: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "larder {args:?} must fail with one line:\n{stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(out.stdout.is_empty(), "nothing on stdout: {}", String::from_utf8_lossy(&out.stdout));
    lines[0].to_string()
}

/// One row of the example data (`larder example-data`): the columns the tests check.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ExampleRow {
    pub driver: i64,
    pub at: EventTime,
    pub conv_rate: f32,
    pub trips: i64,
    pub rating: f32,
}

/// Every row of an example data file, read with the parquet crate (not with Larder).
pub fn example_rows(parquet: &Path) -> Vec<ExampleRow> {
    let reader =
        ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(parquet).unwrap()).unwrap().build().unwrap();
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        let col = |name: &str| batch.column_by_name(name).unwrap_or_else(|| panic!("no column {name}")).clone();
        let (ids, ts, conv, trips, rating) =
            (col("driver_id"), col("event_timestamp"), col("conv_rate"), col("avg_daily_trips"), col("rating"));
        let ids = ids.as_any().downcast_ref::<Int64Array>().unwrap();
        let ts = ts.as_any().downcast_ref::<TimestampMicrosecondArray>().unwrap();
        let conv = conv.as_any().downcast_ref::<Float32Array>().unwrap();
        let trips = trips.as_any().downcast_ref::<Int64Array>().unwrap();
        let rating = rating.as_any().downcast_ref::<Float32Array>().unwrap();
        for i in 0..batch.num_rows() {
            rows.push(ExampleRow {
                driver: ids.value(i),
                at: EventTime::from_micros(ts.value(i)),
                conv_rate: conv.value(i),
                trips: trips.value(i),
                rating: rating.value(i),
            });
        }
    }
    rows
}

/// The example data's newest row of `driver` at or before `until`.
pub fn newest_row(parquet: &Path, driver: i64, until: EventTime) -> ExampleRow {
    example_rows(parquet)
        .into_iter()
        .filter(|r| r.driver == driver && r.at <= until)
        .max_by_key(|r| r.at)
        .unwrap_or_else(|| panic!("driver {driver} has no row before {until}"))
}

/// A view's materialized intervals as `larder describe VIEW --json` lists them: (start, end).
pub fn materialization_intervals(repo: &Path, env: &[(&str, String)], view: &str) -> Vec<(String, String)> {
    let v: serde_json::Value = serde_json::from_str(&ok(repo, env, &["describe", view, "--json"])).unwrap();
    v[0]["materialization_intervals"]
        .as_array()
        .unwrap_or_else(|| panic!("no intervals in {v}"))
        .iter()
        .map(|i| (i["start"].as_str().unwrap().to_string(), i["end"].as_str().unwrap().to_string()))
        .collect()
}
