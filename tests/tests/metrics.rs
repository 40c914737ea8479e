//! The metrics are exact (issue 18 §5). A known workload goes through the real binaries and the
//! counters are read back:
//!
//! - from `larder serve`'s `GET /metrics`, parsed as Prometheus' text exposition format (a parser
//!   here, strict about the grammar and about histogram consistency), after a materialization of
//!   `r` rows, `k` pushed rows of which `j` are not newer than stored, `n` lookups with misses,
//!   and requests answered 400, 404 (matched and unmatched routes) and 405;
//! - from the EMF lines the `push` and `get-online-features` binaries print under the Lambda
//!   Runtime API emulator (`cargo lambda watch`, which runs the binaries themselves, so the flush
//!   in their `main` is what is exercised), each line validated against
//!   `tests/fixtures/emf-schema.json` (AWS's published EMF schema) and checked in code for what a
//!   schema cannot say (every referenced dimension and metric is a member of the root node).
//!
//! Every expected value comes from the workload: a model of what the online store holds (newest
//! event wins, an equal or older one is not written), the rows written to the parquet file, the
//! requests sent, and clocks read around each call. Nothing is computed by Larder's own code.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arrow_array::{
    ArrayRef, BooleanArray, Float32Array, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use larder::config::RepoConfig;
use larder::online::{ViewWrite, WriteMode, WriteRow};
use larder::registry;
use larder::storage::Storage;
use larder::telemetry::names;
use larder::time::EventTime;
use larder_tests::feast::copy_dir;
use larder_tests::http::{LarderServe, request, request_with_headers};
use larder_tests::{LambdaWatch, RedisServer, repo_root};
use parquet::arrow::ArrowWriter;
use parquet::file::reader::{FileReader, SerializedFileReader};
use serde_json::{Value, json};

const HOURLY: &str = "driver_hourly_stats";
const FRESH: &str = "driver_fresh";
const PUSH_SOURCE: &str = "driver_stats_push_source";
/// The TTL of both views in examples/driver/features.yaml (`3650d`).
const TTL_SECS: i64 = 3650 * 86_400;
/// `driver_model_v2` in examples/driver/features.yaml.
const MODEL_V2: &[(&str, &str)] = &[
    (HOURLY, "conv_rate"),
    (HOURLY, "acc_rate"),
    (HOURLY, "avg_daily_trips"),
    (FRESH, "rating"),
    (FRESH, "is_active"),
];

type Labels = BTreeMap<String, String>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

fn event(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(repo_root().join("events").join(name)).unwrap()).unwrap()
}

// ---------------------------------------------------------------------------------------------
// The workload's model: rows, pushes, lookups, and what the store holds.

/// One row of the driver schema. `city: None` is a null.
#[derive(Debug, Clone, Copy)]
struct Row {
    driver: i64,
    at: EventTime,
    city: Option<&'static str>,
}

fn row(driver: i64, at: EventTime) -> Row {
    Row { driver, at, city: Some("sf") }
}

/// What the online store holds per view and driver, as the workload wrote it: the event time
/// and whether `city` is null.
#[derive(Default)]
struct Store {
    views: BTreeMap<&'static str, BTreeMap<i64, (EventTime, bool)>>,
}

impl Store {
    /// Newest event wins; an equal or older one leaves the stored row (docs/observability.md:
    /// "not written because the store (or an earlier row) held a newer or equal event").
    /// Returns whether the row was written.
    fn write(&mut self, view: &'static str, r: &Row) -> bool {
        let rows = self.views.entry(view).or_default();
        match rows.get(&r.driver) {
            Some((stored, _)) if *stored >= r.at => false,
            _ => {
                rows.insert(r.driver, (r.at, r.city.is_none()));
                true
            }
        }
    }

    /// The status Feast's Go server (and Larder) answer for one value.
    fn status(&self, view: &str, feature: &str, driver: i64, now: EventTime) -> &'static str {
        match self.views.get(view).and_then(|rows| rows.get(&driver)) {
            None => "NOT_FOUND",
            Some((_, true)) if feature == "city" => "NULL_VALUE",
            Some((at, _)) if at.secs < now.secs - TTL_SECS => "OUTSIDE_MAX_AGE",
            Some(_) => "PRESENT",
        }
    }
}

/// A flat record (one row), as a stream carries it.
fn record_json(r: &Row) -> Value {
    json!({
        "driver_id": r.driver, "event_timestamp": r.at.to_string(), "created": r.at.to_string(),
        "conv_rate": 0.5, "acc_rate": 0.75, "avg_daily_trips": 7, "miles_driven": 1.5, "rating": 4.5,
        "city": r.city, "is_active": true
    })
}

/// Feast's push body (`df` one column per field).
fn push_body(rows: &[Row]) -> Value {
    let n = rows.len();
    let times: Vec<String> = rows.iter().map(|r| r.at.to_string()).collect();
    json!({
        "push_source_name": PUSH_SOURCE,
        "to": "online",
        "df": {
            "driver_id": rows.iter().map(|r| r.driver).collect::<Vec<_>>(),
            "event_timestamp": times, "created": times,
            "conv_rate": vec![0.5; n], "acc_rate": vec![0.75; n], "avg_daily_trips": vec![7; n],
            "miles_driven": vec![1.5; n], "rating": vec![4.5; n],
            "city": rows.iter().map(|r| r.city).collect::<Vec<_>>(), "is_active": vec![true; n]
        }
    })
}

/// What one push should do to the store: (rows, written, not newer), and the store updated.
fn apply_push(store: &mut Store, view: &'static str, rows: &[Row]) -> (u64, u64, u64) {
    let written = rows.iter().filter(|r| store.write(view, r)).count() as u64;
    (rows.len() as u64, written, rows.len() as u64 - written)
}

/// A get-online-features request: features by (view, feature), or a feature service, for
/// `drivers` (one entity row each).
struct Lookup {
    features: Vec<(&'static str, &'static str)>,
    service: Option<&'static str>,
    drivers: Vec<i64>,
}

impl Lookup {
    fn features(features: &[(&'static str, &'static str)], drivers: &[i64]) -> Lookup {
        Lookup { features: features.to_vec(), service: None, drivers: drivers.to_vec() }
    }

    fn service(name: &'static str, features: &[(&'static str, &'static str)], drivers: &[i64]) -> Lookup {
        Lookup { features: features.to_vec(), service: Some(name), drivers: drivers.to_vec() }
    }

    fn body(&self) -> Value {
        let mut b = json!({"entities": {"driver_id": self.drivers}, "full_feature_names": true});
        match self.service {
            Some(s) => b["feature_service"] = json!(s),
            None => b["features"] = json!(self.features.iter().map(|(v, f)| format!("{v}:{f}")).collect::<Vec<_>>()),
        }
        b
    }

    /// Checks an answer against the store (so the expected counts below are the statuses the
    /// client saw) and adds its values to `answers` by (view, status).
    fn check(&self, answer: &Value, store: &Store, answers: &mut BTreeMap<(String, String), u64>) {
        let now = EventTime::now();
        let mut names = vec!["driver_id".to_string()];
        names.extend(self.features.iter().map(|(v, f)| format!("{v}__{f}")));
        assert_eq!(answer["metadata"]["feature_names"], json!(names), "{answer}");
        assert_eq!(answer["results"][0]["values"], json!(self.drivers), "{answer}");
        for (i, (view, feature)) in self.features.iter().enumerate() {
            let want: Vec<&str> = self.drivers.iter().map(|&d| store.status(view, feature, d, now)).collect();
            assert_eq!(answer["results"][i + 1]["statuses"], json!(want), "{view}:{feature} in {answer}");
            for status in want {
                *answers.entry((view.to_string(), status.to_string())).or_default() += 1;
            }
        }
    }
}

/// Writes the batch source, one row group per slice of rows, in the example data's schema.
fn write_source(path: &Path, groups: &[&[Row]]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let schema = larder::example_data::schema();
    let mut writer = ArrowWriter::try_new(std::fs::File::create(path).unwrap(), schema.clone(), None).unwrap();
    for rows in groups {
        let n = rows.len();
        let us: Vec<i64> = rows.iter().map(|r| r.at.secs * 1_000_000).collect();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(rows.iter().map(|r| r.driver).collect::<Vec<_>>())),
            Arc::new(TimestampMicrosecondArray::from(us.clone()).with_timezone("UTC")),
            Arc::new(
                TimestampMicrosecondArray::from(us.iter().map(|t| t + 60_000_000).collect::<Vec<_>>())
                    .with_timezone("UTC"),
            ),
            Arc::new(Float32Array::from(vec![0.5f32; n])),
            Arc::new(Float32Array::from(vec![0.75f32; n])),
            Arc::new(Int64Array::from(vec![7i64; n])),
            Arc::new(Float64Array::from(vec![1.5f64; n])),
            Arc::new(Float32Array::from(vec![4.5f32; n])),
            Arc::new(StringArray::from(rows.iter().map(|r| r.city).collect::<Vec<_>>())),
            Arc::new(BooleanArray::from(vec![true; n])),
        ];
        writer.write(&RecordBatch::try_new(schema.clone(), columns).unwrap()).unwrap();
        writer.flush().unwrap(); // ends the row group
    }
    writer.close().unwrap();
}

// ---------------------------------------------------------------------------------------------
// Prometheus' text exposition format (version 0.0.4), parsed.

#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: Labels,
    value: f64,
}

/// A parsed exposition: the `# TYPE` of each family and every sample.
#[derive(Debug, Default)]
struct Exposition {
    types: BTreeMap<String, String>,
    samples: Vec<Sample>,
}

fn is_name(s: &str, colon: bool) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || (colon && c == ':'))
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colon && c == ':'))
}

fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => s.parse::<f64>().map_err(|e| format!("value '{s}': {e}")),
    }
}

/// One sample line: `name{label="value",...} value [timestamp]`.
fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ', '\t']).ok_or("a sample needs a value")?;
    let name = &line[..name_end];
    if !is_name(name, true) {
        return Err(format!("'{name}' is not a metric name"));
    }
    let mut rest = &line[name_end..];
    let mut labels = Labels::new();
    if let Some(r) = rest.strip_prefix('{') {
        rest = r.trim_start();
        loop {
            if let Some(r) = rest.strip_prefix('}') {
                rest = r;
                break;
            }
            let key_end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).ok_or("labels never end")?;
            let key = &rest[..key_end];
            if !is_name(key, false) {
                return Err(format!("'{key}' is not a label name"));
            }
            rest = rest[key_end..].trim_start().strip_prefix('=').ok_or("expected '=' after a label name")?;
            rest = rest.trim_start().strip_prefix('"').ok_or("a label value must be quoted")?;
            let mut value = String::new();
            let mut chars = rest.char_indices();
            let end = loop {
                match chars.next() {
                    None => return Err("a label value never ends".into()),
                    Some((i, '"')) => break i,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, '\\')) => value.push('\\'),
                        Some((_, '"')) => value.push('"'),
                        Some((_, 'n')) => value.push('\n'),
                        other => return Err(format!("bad escape {other:?} in a label value")),
                    },
                    Some((_, c)) => value.push(c),
                }
            };
            rest = rest[end + 1..].trim_start();
            if labels.insert(key.to_string(), value).is_some() {
                return Err(format!("label '{key}' twice"));
            }
            if let Some(r) = rest.strip_prefix(',') {
                rest = r.trim_start();
            } else if !rest.starts_with('}') {
                return Err("expected ',' or '}' after a label".into());
            }
        }
    }
    if !rest.starts_with([' ', '\t']) {
        return Err("expected a space before the value".into());
    }
    let mut fields = rest.split_whitespace();
    let value = parse_value(fields.next().ok_or("no value")?)?;
    if let Some(ts) = fields.next() {
        ts.parse::<i64>().map_err(|e| format!("timestamp '{ts}': {e}"))?;
    }
    if fields.next().is_some() {
        return Err("text after the timestamp".into());
    }
    Ok(Sample { name: name.to_string(), labels, value })
}

impl Exposition {
    /// Parses `text`, and checks what the format requires beyond lines: every sample belongs to
    /// a family with a `# TYPE`, no series appears twice, and each histogram's buckets are
    /// cumulative, end at `+Inf` and agree with its `_count`, with a `_sum` beside them.
    fn parse(text: &str) -> Result<Exposition, String> {
        let mut out = Exposition::default();
        let mut seen = BTreeSet::new();
        for (n, line) in text.lines().enumerate() {
            let at = |e: String| format!("line {}: {e}: {line:?}", n + 1);
            if line.trim().is_empty() {
                continue;
            }
            if let Some(comment) = line.strip_prefix('#') {
                let mut words = comment.split_whitespace();
                if words.next() == Some("TYPE") {
                    let (name, kind) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
                    if !is_name(name, true) || words.next().is_some() {
                        return Err(at("a malformed TYPE line".into()));
                    }
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                        return Err(at(format!("unknown type '{kind}'")));
                    }
                    if out.samples.iter().any(|s| family(&s.name, name)) {
                        return Err(at("TYPE after samples of its family".into()));
                    }
                    if out.types.insert(name.to_string(), kind.to_string()).is_some() {
                        return Err(at("a second TYPE for one family".into()));
                    }
                }
                continue;
            }
            let sample = parse_sample(line).map_err(at)?;
            if !seen.insert((sample.name.clone(), sample.labels.clone())) {
                return Err(at("a series twice".into()));
            }
            out.samples.push(sample);
        }
        for s in &out.samples {
            let kind = out.kind_of(&s.name).ok_or_else(|| format!("{} has no TYPE", s.name))?;
            if kind == "histogram" && s.name.ends_with("_bucket") && !s.labels.contains_key("le") {
                return Err(format!("{} {:?} has no le", s.name, s.labels));
            }
        }
        out.check_histograms()?;
        Ok(out)
    }

    /// The type of the family `sample` belongs to.
    fn kind_of(&self, sample: &str) -> Option<&str> {
        if let Some(k) = self.types.get(sample) {
            return (!matches!(k.as_str(), "histogram" | "summary")).then_some(k.as_str());
        }
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(k) = sample.strip_suffix(suffix).and_then(|f| self.types.get(f)) {
                let fits = k == "histogram" || (k == "summary" && suffix != "_bucket");
                return fits.then_some(k.as_str());
            }
        }
        None
    }

    fn check_histograms(&self) -> Result<(), String> {
        for (family, _) in self.types.iter().filter(|(_, k)| *k == "histogram") {
            let mut buckets: BTreeMap<Labels, Vec<(f64, f64)>> = BTreeMap::new();
            for s in self.samples.iter().filter(|s| s.name == format!("{family}_bucket")) {
                let mut series = s.labels.clone();
                let le = parse_value(&series.remove("le").unwrap())?;
                buckets.entry(series).or_default().push((le, s.value));
            }
            for (series, mut bs) in buckets {
                bs.sort_by(|a, b| a.0.total_cmp(&b.0));
                if bs.windows(2).any(|w| w[1].1 < w[0].1) {
                    return Err(format!("{family} {series:?}: buckets are not cumulative: {bs:?}"));
                }
                let last = bs.last().unwrap();
                if last.0 != f64::INFINITY {
                    return Err(format!("{family} {series:?}: no +Inf bucket"));
                }
                let count = self.value(&format!("{family}_count"), &series);
                if count != Some(last.1) {
                    return Err(format!("{family} {series:?}: +Inf bucket {} but _count {count:?}", last.1));
                }
                if self.value(&format!("{family}_sum"), &series).is_none() {
                    return Err(format!("{family} {series:?}: no _sum"));
                }
            }
        }
        Ok(())
    }

    /// The value of the series `name` with exactly `labels`.
    fn value(&self, name: &str, labels: &Labels) -> Option<f64> {
        self.samples.iter().find(|s| s.name == name && &s.labels == labels).map(|s| s.value)
    }

    fn get(&self, name: &str, pairs: &[(&str, &str)]) -> Option<f64> {
        self.value(name, &labels(pairs))
    }

    /// Every series of `name`, by labels.
    fn series(&self, name: &str) -> BTreeMap<Labels, f64> {
        self.samples.iter().filter(|s| s.name == name).map(|s| (s.labels.clone(), s.value)).collect()
    }
}

/// Whether `sample` is a sample of the family `family`.
fn family(sample: &str, family: &str) -> bool {
    sample == family || ["_bucket", "_sum", "_count"].iter().any(|s| sample.strip_suffix(s) == Some(family))
}

fn counts(pairs: &[(&[(&str, &str)], f64)]) -> BTreeMap<Labels, f64> {
    pairs.iter().map(|(l, v)| (labels(l), *v)).collect()
}

/// Checks what every Larder family of an exposition declares against the catalogue of
/// metrics (`larder::telemetry::names::ALL`): its type, and its label names.
fn check_against_catalogue(exp: &Exposition) {
    for (fam, kind) in exp.types.iter().filter(|(n, _)| n.starts_with("larder_")) {
        let m = names::find(fam).unwrap_or_else(|| panic!("{fam} is exported but not in names::ALL"));
        let want = match m.kind {
            names::Kind::Counter => "counter",
            names::Kind::Gauge => "gauge",
            names::Kind::Histogram => "histogram",
        };
        assert_eq!(kind, want, "# TYPE of {fam}");
        let declared: BTreeSet<&str> = m.labels.iter().copied().collect();
        for s in exp.samples.iter().filter(|s| family(&s.name, fam)) {
            let mut got: BTreeSet<&str> = s.labels.keys().map(String::as_str).collect();
            if s.name.ends_with("_bucket") {
                got.remove("le");
            }
            assert_eq!(got, declared, "the labels of {} {:?}", s.name, s.labels);
        }
    }
    for s in exp.samples.iter().filter(|s| s.name.starts_with("larder_")) {
        assert!(exp.types.keys().any(|f| family(&s.name, f)), "{} has no family", s.name);
    }
}

// ---------------------------------------------------------------------------------------------
// `larder serve` and `GET /metrics`.

/// The requests sent to `larder serve`: how many per (route label, status), and the time each
/// took as the client saw it, per route.
#[derive(Default)]
struct Sent {
    by_status: BTreeMap<(String, String), u64>,
    client_seconds: BTreeMap<String, f64>,
}

impl Sent {
    /// Sends one request that the router labels `route` and that must be answered `expect`.
    fn send(&mut self, port: u16, route: &str, method: &str, path: &str, body: &[u8], expect: u16) -> Value {
        let started = Instant::now();
        let (status, bytes) = request(port, method, path, body).expect("HTTP request");
        let took = started.elapsed().as_secs_f64();
        assert_eq!(status, expect, "{method} {path}: {}", String::from_utf8_lossy(&bytes));
        *self.by_status.entry((route.to_string(), status.to_string())).or_default() += 1;
        *self.client_seconds.entry(route.to_string()).or_default() += took;
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    }

    fn post(&mut self, port: u16, path: &str, body: &Value, expect: u16) -> Value {
        self.send(port, path, "POST", path, body.to_string().as_bytes(), expect)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_metrics_are_exact_for_a_known_workload() {
    let redis = RedisServer::start();
    let repo = tempfile::tempdir().unwrap();
    copy_dir(&repo_root().join("examples/driver"), repo.path());
    let env: Vec<(String, String)> = vec![("REDIS_ADDR".into(), redis.addr())];
    let cfg = RepoConfig::load_with(Some(repo.path()), &|k| (k == "REDIS_ADDR").then(|| redis.addr())).unwrap();
    registry::apply(&cfg, &Storage::default(), false).await.unwrap();

    // The batch source: r rows of 4 drivers inside the window [start, end) in one row group,
    // and a second row group entirely before `start` (its statistics let a reader skip it).
    let now = EventTime::now();
    let end = EventTime::new(now.secs - now.secs.rem_euclid(3600) - 3600, 0);
    let start = end.add_secs(-86_400);
    let inside: Vec<Row> = [1001, 1002, 1003, 1004, 1001, 1002, 1003, 1001, 1002, 1001]
        .iter()
        .enumerate()
        .map(|(i, &d)| row(d, start.add_secs(600 * (i as i64 + 1))))
        .collect();
    let outside: Vec<Row> = (1001..=1005).map(|d| row(d, start.add_secs(-86_400 * (d - 1000)))).collect();
    let parquet_path = repo.path().join("data/driver_stats.parquet");
    write_source(&parquet_path, &[&inside, &outside]);
    let parquet_meta =
        SerializedFileReader::new(std::fs::File::open(&parquet_path).unwrap()).unwrap().metadata().clone();
    assert_eq!(parquet_meta.num_row_groups(), 2, "the test needs the two row groups it wrote");
    let kept_bytes: i64 = parquet_meta.row_group(0).compressed_size();
    let file_size = std::fs::metadata(&parquet_path).unwrap().len() as f64;

    let mut store = Store::default();
    for r in &inside {
        store.write(HOURLY, r);
    }
    let hourly_keys = store.views[HOURLY].len() as f64;

    let serve_started = Instant::now();
    let mut serve = LarderServe::start(repo.path(), &env, &[]);
    let port = serve.port;
    let mut sent = Sent::default();

    // Materialization of the window, through the serve router.
    let mat = json!({"start_ts": start.to_string(), "end_ts": end.to_string(), "feature_views": [HOURLY]});
    let mat_started = Instant::now();
    sent.post(port, "/materialize", &mat, 200);
    let mat_seconds = mat_started.elapsed().as_secs_f64();

    // k pushed rows, j of them not newer than what the store holds (an older event, and an equal
    // one), a null city and a row older than the views' TTL.
    let t1 = EventTime::new(now.secs - 1800, 0);
    let t0 = t1.add_secs(-600);
    let long_ago = EventTime::parse("2010-01-01T00:00:00Z").unwrap();
    let pushes: Vec<Vec<Row>> = vec![
        vec![row(2001, t1), row(2002, t1), row(2003, t1)],
        vec![row(2001, t0), row(2004, t1)],
        vec![row(2002, t1)],
        vec![Row { driver: 2005, at: t1, city: None }, row(2006, long_ago)],
    ];
    let (mut k, mut written, mut j) = (0u64, 0u64, 0u64);
    let (mut lag_low, mut lag_high) = (0.0, 0.0);
    for rows in &pushes {
        let (r, w, nn) = apply_push(&mut store, FRESH, rows);
        (k, written, j) = (k + r, written + w, j + nn);
        let newest = rows.iter().map(|r| r.at.as_secs_f64()).fold(f64::MIN, f64::max);
        let before = unix_now();
        sent.post(port, "/push", &push_body(rows), 200);
        let after = unix_now();
        lag_low += before - newest;
        lag_high += after - newest;
    }
    assert!(j > 0 && written > 0, "the workload must have stale and fresh rows");

    // n lookups, with misses in both views, a feature service, a repeated entity, every status.
    let lookups = [
        Lookup::features(&[(HOURLY, "conv_rate"), (HOURLY, "acc_rate"), (FRESH, "rating")], &[1001, 1002, 1005]),
        Lookup::features(&[(FRESH, "conv_rate"), (FRESH, "city")], &[2001, 2002, 2003, 2004, 2005, 2006, 9999]),
        Lookup::service("driver_model_v2", MODEL_V2, &[1003, 2001]),
        Lookup::features(&[(HOURLY, "city")], &[1004, 1004, 7777]),
        Lookup::features(&[(FRESH, "city"), (HOURLY, "is_active")], &[2005, 1001]),
    ];
    let mut answers: BTreeMap<(String, String), u64> = BTreeMap::new();
    for l in &lookups {
        let answer = sent.post(port, "/get-online-features", &l.body(), 200);
        l.check(&answer, &store, &mut answers);
    }
    let statuses: BTreeSet<&str> = answers.keys().map(|(_, s)| s.as_str()).collect();
    assert_eq!(statuses.len(), 4, "the workload must produce every status: {answers:?}");

    // Requests answered with errors: counted, timed, and nothing else.
    sent.send(port, "/get-online-features", "POST", "/get-online-features", b"{not json", 400);
    let unknown = json!({"features": ["no_such_view:x"], "entities": {"driver_id": [1]}});
    sent.post(port, "/get-online-features", &unknown, 404);
    sent.send(port, "/get-online-features", "GET", "/get-online-features", b"", 405);
    sent.send(port, "unmatched", "GET", "/no/such/route", b"", 404);
    sent.send(port, "unmatched", "POST", "/nope", b"{}", 404);
    sent.send(port, "/health", "GET", "/health", b"", 200);

    let (status, headers, body) = request_with_headers(port, "GET", "/metrics", b"").unwrap();
    let text = String::from_utf8(body).unwrap();
    assert_eq!(status, 200, "{text}");
    let content_type = headers.iter().find(|(k, _)| k == "content-type").map(|(_, v)| v.as_str()).unwrap_or("");
    assert!(content_type.starts_with("text/plain") && content_type.contains("version=0.0.4"), "{content_type}");
    let exp = Exposition::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let age_bound = serve_started.elapsed().as_secs_f64();
    check_against_catalogue(&exp);

    // Requests by route and status, exactly; their durations, one per request.
    let want: BTreeMap<Labels, f64> = sent
        .by_status
        .iter()
        .map(|((route, status), n)| (labels(&[("route", route), ("status", status)]), *n as f64))
        .collect();
    assert_eq!(exp.series("larder_requests_total"), want, "{text}");
    let mut per_route: BTreeMap<Labels, f64> = BTreeMap::new();
    for ((route, _), n) in &sent.by_status {
        *per_route.entry(labels(&[("route", route)])).or_default() += *n as f64;
    }
    assert_eq!(exp.series("larder_request_duration_seconds_count"), per_route, "{text}");
    for (route, client) in &sent.client_seconds {
        let sum = exp.get("larder_request_duration_seconds_sum", &[("route", route)]).unwrap();
        assert!(sum > 0.0 && sum <= *client, "{route}: {sum} s measured inside, {client} s by the client");
    }

    // Feature values by view and status, as the client saw them (series never incremented are
    // not exported; a zero would mean the same).
    let want: BTreeMap<Labels, f64> =
        answers.iter().map(|((v, s), n)| (labels(&[("view", v), ("status", s)]), *n as f64)).collect();
    let got: BTreeMap<Labels, f64> =
        exp.series("larder_feature_answers_total").into_iter().filter(|(_, v)| *v != 0.0).collect();
    assert_eq!(got, want, "{text}");

    // Entity rows: one sample per answered lookup, each in the buckets it fits.
    let rows: Vec<f64> = lookups.iter().map(|l| l.drivers.len() as f64).collect();
    assert_eq!(exp.get("larder_request_entity_rows_count", &[]), Some(rows.len() as f64));
    assert_eq!(exp.get("larder_request_entity_rows_sum", &[]), Some(rows.iter().sum()));
    let buckets = exp.series("larder_request_entity_rows_bucket");
    assert!(buckets.len() > 2, "{text}");
    for (l, got) in buckets {
        let le = parse_value(&l["le"]).unwrap();
        assert_eq!(got, rows.iter().filter(|&&r| r <= le).count() as f64, "entity rows bucket le={le}");
    }

    // One store round trip per answered lookup and per push.
    assert_eq!(
        exp.series("larder_redis_duration_seconds_count"),
        counts(&[(&[("operation", "read")], lookups.len() as f64), (&[("operation", "write")], pushes.len() as f64)])
    );

    // Push: requests, rows, written, not newer; one lag sample per push, write time minus the
    // newest event time of the push.
    let http = [("trigger", "http")];
    assert_eq!(exp.series("larder_push_records_total"), counts(&[(&http, pushes.len() as f64)]));
    assert_eq!(exp.series("larder_push_rows_total"), counts(&[(&http, k as f64)]));
    assert_eq!(exp.series("larder_push_rows_written_total"), counts(&[(&http, written as f64)]));
    assert_eq!(exp.series("larder_push_rows_not_newer_total"), counts(&[(&http, j as f64)]));
    assert_eq!(exp.series("larder_push_lag_seconds_count"), counts(&[(&[("view", FRESH)], pushes.len() as f64)]));
    let lag = exp.get("larder_push_lag_seconds_sum", &[("view", FRESH)]).unwrap();
    assert!(lag_low - 0.01 <= lag && lag <= lag_high + 0.01, "push lag sum {lag} outside [{lag_low}, {lag_high}]");
    assert!(exp.series("larder_push_dead_letters_total").is_empty(), "HTTP pushes dead-letter nothing");

    // Materialization: r rows read, the row group outside the window skipped, one key per
    // driver, one recorded run, the window's end.
    assert_eq!(exp.get("larder_materialize_rows_read_total", &[]), Some(inside.len() as f64), "{text}");
    assert_eq!(exp.get("larder_materialize_row_groups_skipped_total", &[]), Some(1.0), "{text}");
    assert_eq!(exp.series("larder_materialize_keys_written_total"), counts(&[(&[("view", HOURLY)], hourly_keys)]));
    assert_eq!(exp.series("larder_materialize_runs_total"), counts(&[(&[("outcome", "recorded")], 1.0)]));
    assert_eq!(exp.get("larder_materialize_duration_seconds_count", &[]), Some(1.0));
    let run = exp.get("larder_materialize_duration_seconds_sum", &[]).unwrap();
    assert!(run > 0.0 && run <= mat_seconds, "a run of {run} s inside a request of {mat_seconds} s");
    assert_eq!(
        exp.series("larder_materialized_until_timestamp_seconds"),
        counts(&[(&[("view", HOURLY)], end.secs as f64)])
    );
    // The kept row group must be fetched; the footer is read too (with a hint that covers this
    // small file), the skipped row group's columns are never fetched on their own.
    let bytes = exp.get("larder_materialize_bytes_read_total", &[]).unwrap();
    assert!(
        kept_bytes as f64 <= bytes && bytes <= file_size + kept_bytes as f64,
        "{bytes} bytes read; the kept row group is {kept_bytes}, the file {file_size}"
    );

    // The registry copy's age, set on each scrape.
    let age = exp.get("larder_registry_age_seconds", &[]).expect("registry age");
    assert!((0.0..=age_bound).contains(&age), "registry age {age} s, serving for {age_bound} s");

    // Nothing from streams here.
    assert!(exp.series("larder_stream_batch_age_seconds_count").is_empty());

    // Scraping counts nothing: a second scrape sees the same requests.
    let (_, again) = request(port, "GET", "/metrics", b"").unwrap();
    let again = Exposition::parse(&String::from_utf8(again).unwrap()).unwrap();
    assert_eq!(again.series("larder_requests_total"), exp.series("larder_requests_total"));
    assert!(serve.stop().success());

    // --no-metrics: no /metrics route (the router's 404), everything else served.
    let mut quiet = LarderServe::start(repo.path(), &env, &["--no-metrics"]);
    let (status, body) = request(quiet.port, "GET", "/metrics", b"").unwrap();
    assert_eq!(status, 404, "{}", String::from_utf8_lossy(&body));
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"]["code"], "route_not_found", "{body}");
    assert_eq!(request(quiet.port, "GET", "/health", b"").unwrap().0, 200);
    assert!(quiet.stop().success());
}

// ---------------------------------------------------------------------------------------------
// EMF lines of the Lambda functions.

fn emf_schema() -> jsonschema::Validator {
    let text = std::fs::read_to_string(repo_root().join("tests/fixtures/emf-schema.json")).unwrap();
    jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).expect("a valid JSON schema")
}

/// What a schema cannot check: each dimension a directive names is a string member of the root
/// node, each metric a number or an array of at most 100 numbers there.
fn check_references(doc: &Value) -> Result<(), String> {
    let root = doc.as_object().ok_or("not an object")?;
    let directives = doc["_aws"]["CloudWatchMetrics"].as_array().ok_or("no CloudWatchMetrics")?;
    for d in directives {
        for set in d["Dimensions"].as_array().ok_or("no Dimensions")? {
            for key in set.as_array().ok_or("a dimension set is not an array")? {
                let key = key.as_str().ok_or("a dimension key is not a string")?;
                if !matches!(root.get(key), Some(Value::String(_))) {
                    return Err(format!("dimension '{key}' is not a string member of the root node"));
                }
            }
        }
        for m in d["Metrics"].as_array().ok_or("no Metrics")? {
            let name = m["Name"].as_str().ok_or("a metric has no Name")?;
            match root.get(name) {
                Some(Value::Number(_)) => {}
                Some(Value::Array(values)) if values.len() <= 100 && values.iter().all(Value::is_number) => {}
                other => return Err(format!("metric '{name}' is {other:?}, not a number or at most 100 numbers")),
            }
        }
    }
    Ok(())
}

/// What one invocation printed: its EMF documents (validated) and its JSON log lines.
struct Printed {
    docs: Vec<Value>,
    logs: Vec<Value>,
}

impl Printed {
    fn parse(out: &str, schema: &jsonschema::Validator) -> Printed {
        let (mut docs, mut logs) = (Vec::new(), Vec::new());
        for line in out.lines() {
            let parsed: Option<serde_json::Map<String, Value>> = serde_json::from_str(line.trim()).ok();
            match parsed {
                Some(obj) if obj.contains_key("_aws") => {
                    let doc = Value::Object(obj);
                    let errors: Vec<String> =
                        schema.iter_errors(&doc).map(|e| format!("{e} (at {})", e.instance_path())).collect();
                    assert!(errors.is_empty(), "EMF line against the schema: {errors:?}\n{line}");
                    check_references(&doc).unwrap_or_else(|e| panic!("{e}\n{line}"));
                    docs.push(doc);
                }
                Some(obj) => logs.push(Value::Object(obj)),
                None => assert!(!line.contains("\"_aws\""), "an EMF line that is not one JSON object: {line}"),
            }
        }
        Printed { docs, logs }
    }

    /// The request ids of the runtime's invocation spans in the log lines (lambda_runtime's
    /// "Lambda runtime invoke" span, which tracing's JSON format prints with each event).
    fn runtime_request_ids(&self) -> BTreeSet<String> {
        let mut ids = BTreeSet::new();
        for log in &self.logs {
            let spans = log["spans"].as_array().into_iter().flatten().chain(std::iter::once(&log["span"]));
            for s in spans {
                if s["name"] == "Lambda runtime invoke"
                    && let Some(id) = s["requestId"].as_str()
                {
                    ids.insert(id.to_string());
                }
            }
        }
        ids
    }

    /// Checks what every document carries: the namespace, one request id (the runtime's for
    /// this invocation), a timestamp taken during it, dimensions and units as the catalogue
    /// declares them. Returns the request id and every value by (metric, dimensions).
    fn values(&self, namespace: &str, ms: (u128, u128)) -> (String, BTreeMap<(String, Labels), Value>) {
        assert!(!self.docs.is_empty(), "no EMF line");
        let mut out = BTreeMap::new();
        let mut request_ids = BTreeSet::new();
        for doc in &self.docs {
            let ts = doc["_aws"]["Timestamp"].as_u64().unwrap() as u128;
            assert!(ms.0 <= ts && ts <= ms.1, "Timestamp {ts} outside the invocation {ms:?}");
            request_ids.insert(doc["requestId"].as_str().expect("a requestId property").to_string());
            for d in doc["_aws"]["CloudWatchMetrics"].as_array().unwrap() {
                assert_eq!(d["Namespace"], namespace, "{doc}");
                let sets = d["Dimensions"].as_array().unwrap();
                assert_eq!(sets.len(), 1, "one dimension set, the metric's labels: {doc}");
                let keys: Vec<&str> = sets[0].as_array().unwrap().iter().map(|k| k.as_str().unwrap()).collect();
                let dims: Labels =
                    keys.iter().map(|k| (k.to_string(), doc[*k].as_str().unwrap().to_string())).collect();
                for m in d["Metrics"].as_array().unwrap() {
                    let name = m["Name"].as_str().unwrap();
                    let declared = names::find(name).unwrap_or_else(|| panic!("{name} is not in names::ALL"));
                    let unit = match declared.unit {
                        names::Unit::Count => "Count",
                        names::Unit::Seconds => "Seconds",
                        names::Unit::Bytes => "Bytes",
                    };
                    assert_eq!(m["Unit"], unit, "{doc}");
                    let declared: BTreeSet<&str> = declared.labels.iter().copied().collect();
                    assert_eq!(keys.iter().copied().collect::<BTreeSet<_>>(), declared, "dimensions of {name}: {doc}");
                    let key = (name.to_string(), dims.clone());
                    assert!(out.insert(key, doc[name].clone()).is_none(), "{name} {dims:?} twice in one flush");
                }
            }
        }
        assert_eq!(request_ids.len(), 1, "one invocation, one request id: {request_ids:?}");
        let id = request_ids.into_iter().next().unwrap();
        let runtime = self.runtime_request_ids();
        assert!(runtime.contains(&id), "requestId {id} is not the runtime's ({runtime:?})");
        (id, out)
    }
}

/// An expected EMF value.
#[derive(Debug)]
enum Want {
    /// A counter: the count since the previous flush.
    Count(u64),
    /// A histogram: `n` values, each within the range.
    Values(usize, f64, f64),
    /// A gauge within the range.
    Gauge(f64, f64),
}

fn key(name: &str, pairs: &[(&str, &str)]) -> (String, Labels) {
    (name.to_string(), labels(pairs))
}

fn check_values(what: &str, got: &BTreeMap<(String, Labels), Value>, want: &BTreeMap<(String, Labels), Want>) {
    let (g, w): (BTreeSet<_>, BTreeSet<_>) = (got.keys().collect(), want.keys().collect());
    assert_eq!(g, w, "{what}: the metrics of the flush\n{got:#?}");
    for (k, w) in want {
        let v = &got[k];
        match w {
            Want::Count(n) => assert_eq!(v.as_u64(), Some(*n), "{what}: {k:?} = {v}"),
            Want::Values(n, lo, hi) => {
                let values: Vec<f64> = v.as_array().expect("values").iter().map(|x| x.as_f64().unwrap()).collect();
                assert_eq!(values.len(), *n, "{what}: {k:?} = {v}");
                assert!(values.iter().all(|x| lo <= x && x <= hi), "{what}: {k:?} = {v}, not within [{lo}, {hi}]");
            }
            Want::Gauge(lo, hi) => {
                let x = v.as_f64().expect("a number");
                assert!(*lo <= x && x <= *hi, "{what}: {k:?} = {x}, not within [{lo}, {hi}]");
            }
        }
    }
}

fn unix_ms() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis()
}

/// A Kinesis batch of one shard: `records` in order, the first arriving at `first_arrival_ms`
/// and each next one a second later.
fn kinesis_event(records: &[Vec<u8>], first_arrival_ms: u128) -> String {
    let template = event("kinesis.json")["Records"][0].clone();
    let records: Vec<Value> = records
        .iter()
        .enumerate()
        .map(|(i, data)| {
            let mut r = template.clone();
            let seq = format!("49651000000000000000000000000000000000000000000000000{:03}", i + 1);
            r["kinesis"]["data"] = json!(B64.encode(data));
            r["kinesis"]["sequenceNumber"] = json!(seq);
            r["kinesis"]["partitionKey"] = json!(i.to_string());
            r["kinesis"]["approximateArrivalTimestamp"] = json!((first_arrival_ms + 1000 * i as u128) as f64 / 1000.0);
            r["eventID"] = json!(format!("shardId-000000000000:{seq}"));
            r
        })
        .collect();
    json!({ "Records": records }).to_string()
}

/// An API Gateway HTTP API event (the sample's, with its authorizer) for `path` with `body`.
fn http_event(sample: &str, path: &str, body: &str) -> String {
    let mut e = event(sample);
    e["rawPath"] = json!(path);
    e["routeKey"] = json!(format!("POST {path}"));
    e["requestContext"]["routeKey"] = json!(format!("POST {path}"));
    e["requestContext"]["http"]["path"] = json!(path);
    e["body"] = json!(body);
    e.to_string()
}

fn http_answer(resp: &Value) -> (u64, Value) {
    let body = serde_json::from_str(resp["body"].as_str().unwrap_or("null")).unwrap_or(Value::Null);
    (resp["statusCode"].as_u64().unwrap_or(0), body)
}

#[tokio::test(flavor = "multi_thread")]
async fn lambda_emf_lines_are_valid_and_exact() {
    let schema = emf_schema();
    let redis = RedisServer::start();
    let repo = tempfile::tempdir().unwrap();
    copy_dir(&repo_root().join("examples/driver"), repo.path());
    let cfg = RepoConfig::load_with(Some(repo.path()), &|k| (k == "REDIS_ADDR").then(|| redis.addr())).unwrap();
    registry::apply(&cfg, &Storage::default(), false).await.unwrap();

    // Seed the store: two drivers in the hourly view, one in the pushed view.
    let now = EventTime::now();
    let t1 = EventTime::new(now.secs - 1800, 0);
    let t0 = t1.add_secs(-600);
    let mut store = Store::default();
    let reg = registry::load(&cfg, &Storage::default()).await.unwrap();
    let online = larder::online::connect(&cfg, &larder::aws::Aws::new()).await.unwrap();
    let features = [json!(0.5), json!(0.75), json!(7), json!(1.5), json!(4.5), json!("sf"), json!(true)];
    for (view, drivers) in [(HOURLY, vec![1001, 1002]), (FRESH, vec![3003])] {
        let v = &reg.feature_views[view];
        let rows: Vec<WriteRow> = drivers
            .iter()
            .map(|&d| {
                store.write(view, &row(d, t1));
                WriteRow::from_json(v, &cfg.project, &[json!(d)], &features, t1).unwrap()
            })
            .collect();
        online.write(&ViewWrite::for_view(v, rows, WriteMode::NewestWins, None)).await.unwrap();
    }

    const NAMESPACE: &str = "Larder/metrics-test";
    let env = |extra: &[(&str, &str)]| -> Vec<(String, String)> {
        let mut env = vec![
            ("LARDER_REPO".to_string(), repo.path().display().to_string()),
            ("REDIS_ADDR".to_string(), redis.addr()),
            ("LARDER_PUSH_SOURCE".to_string(), PUSH_SOURCE.to_string()),
            // JSON logs at debug for Larder: each line carries the runtime's invocation span
            // and its requestId, which the EMF lines' requestId must equal.
            ("AWS_LAMBDA_LOG_FORMAT".to_string(), "JSON".to_string()),
            ("RUST_LOG".to_string(), "info,larder=debug".to_string()),
        ];
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        env
    };
    let watch_started = Instant::now();
    let watch = LambdaWatch::start_each(&[
        ("push", env(&[("LARDER_METRICS_NAMESPACE", NAMESPACE)])),
        ("get-online-features", env(&[])),
    ]);
    let timeout = Duration::from_secs(60);
    let mut seen_ids = BTreeSet::new();

    // 1. A Kinesis batch of N records: written rows, a row older than stored, a row older than
    //    an earlier one of the batch, and two poison records (dead-lettered to the log, since
    //    LARDER_DEAD_LETTER is not set), each for its own reason.
    let good = |r: &Row| record_json(r).to_string().into_bytes();
    let mut wrong_type = record_json(&row(3004, t1));
    wrong_type["conv_rate"] = json!("fast");
    let batch: Vec<(Option<Row>, Vec<u8>)> = vec![
        (Some(row(3001, t1)), good(&row(3001, t1))),
        (Some(row(3002, t1)), good(&row(3002, t1))),
        (None, br#"{"driver_id": 3009, "event_timestamp": "#.to_vec()),
        (Some(row(3003, t0)), good(&row(3003, t0))),
        (Some(row(3001, t0)), good(&row(3001, t0))),
        (None, wrong_type.to_string().into_bytes()),
        (Some(row(3004, t1)), good(&row(3004, t1))),
    ];
    let valid: Vec<Row> = batch.iter().filter_map(|(r, _)| *r).collect();
    let (rows, written, not_newer) = apply_push(&mut store, FRESH, &valid);
    assert!(written > 0 && not_newer > 1, "the batch must write rows and skip some");
    // Arrival times with three decimals, the last not 0: aws_lambda_events 1.2 reads
    // `approximateArrivalTimestamp` by printing the number again and taking the digits after the
    // point as milliseconds, so 740 ms (`.74`, printed without its trailing zero) would be read
    // as 74 ms and the batch's age overstated by 0.666 s.
    let first_arrival = unix_ms() - 90_000;
    let first_arrival = first_arrival - first_arrival % 10 + 7;
    let kinesis = kinesis_event(&batch.iter().map(|(_, d)| d.clone()).collect::<Vec<_>>(), first_arrival);
    let (before, started) = (unix_ms(), Instant::now());
    let (answer, out) = watch.invoke_capturing("push", &kinesis, timeout).unwrap();
    let (after, wall) = (unix_ms(), started.elapsed().as_secs_f64());
    assert_eq!(answer, json!({"batchItemFailures": []}));
    let printed = Printed::parse(&out, &schema);
    let (id, got) = printed.values(NAMESPACE, (before, after));
    assert!(seen_ids.insert(id));
    let secs = |ms: u128| ms as f64 / 1000.0;
    let kin = [("trigger", "kinesis")];
    let age = watch_started.elapsed().as_secs_f64();
    let want = BTreeMap::from([
        (key("larder_push_records_total", &kin), Want::Count(batch.len() as u64)),
        (key("larder_push_rows_total", &kin), Want::Count(rows)),
        (key("larder_push_rows_written_total", &kin), Want::Count(written)),
        (key("larder_push_rows_not_newer_total", &kin), Want::Count(not_newer)),
        (key("larder_push_dead_letters_total", &[("reason", "bad_request")]), Want::Count(1)),
        (key("larder_push_dead_letters_total", &[("reason", "invalid_value")]), Want::Count(1)),
        (
            key("larder_stream_batch_age_seconds", &kin),
            Want::Values(1, secs(before - first_arrival) - 0.002, secs(after - first_arrival) + 0.002),
        ),
        (
            key("larder_push_lag_seconds", &[("view", FRESH)]),
            Want::Values(1, secs(before) - t1.as_secs_f64() - 0.002, secs(after) - t1.as_secs_f64() + 0.002),
        ),
        (key("larder_redis_duration_seconds", &[("operation", "write")]), Want::Values(1, 0.0, wall)),
        (key("larder_registry_age_seconds", &[]), Want::Gauge(0.0, age)),
    ]);
    check_values("push, Kinesis batch", &got, &want);

    // 2. A push through API Gateway: one row older than stored, one new.
    let pushed = [row(3002, t0), row(3005, t1)];
    let (rows, written, not_newer) = apply_push(&mut store, FRESH, &pushed);
    let e = http_event("push-apigw-http.json", "/push", &push_body(&pushed).to_string());
    let (before, started) = (unix_ms(), Instant::now());
    let (answer, out) = watch.invoke_capturing("push", &e, timeout).unwrap();
    let (after, wall) = (unix_ms(), started.elapsed().as_secs_f64());
    assert_eq!(http_answer(&answer).0, 200, "{answer}");
    let (id, got) = Printed::parse(&out, &schema).values(NAMESPACE, (before, after));
    assert!(seen_ids.insert(id.clone()));
    assert_ne!(
        id,
        event("push-apigw-http.json")["requestContext"]["requestId"],
        "the Lambda request id, not API Gateway's"
    );
    let http = [("trigger", "http")];
    let want = BTreeMap::from([
        (key("larder_requests_total", &[("route", "/push"), ("status", "200")]), Want::Count(1)),
        (key("larder_request_duration_seconds", &[("route", "/push")]), Want::Values(1, 0.0, wall)),
        (key("larder_push_records_total", &http), Want::Count(1)),
        (key("larder_push_rows_total", &http), Want::Count(rows)),
        (key("larder_push_rows_written_total", &http), Want::Count(written)),
        (key("larder_push_rows_not_newer_total", &http), Want::Count(not_newer)),
        (
            key("larder_push_lag_seconds", &[("view", FRESH)]),
            Want::Values(1, secs(before) - t1.as_secs_f64() - 0.002, secs(after) - t1.as_secs_f64() + 0.002),
        ),
        (key("larder_redis_duration_seconds", &[("operation", "write")]), Want::Values(1, 0.0, wall)),
        (key("larder_registry_age_seconds", &[]), Want::Gauge(0.0, watch_started.elapsed().as_secs_f64())),
    ]);
    check_values("push, API Gateway", &got, &want);

    // 3. get-online-features through API Gateway, with misses in both views; no namespace set,
    //    so the default one (README: `Larder`).
    let lookup = Lookup::features(
        &[(HOURLY, "conv_rate"), (HOURLY, "city"), (FRESH, "rating"), (FRESH, "is_active")],
        &[1001, 1002, 3001, 3003, 3005, 9999],
    );
    let e = http_event("apigw-http-get-online-features.json", "/get-online-features", &lookup.body().to_string());
    let (before, started) = (unix_ms(), Instant::now());
    let (answer, out) = watch.invoke_capturing("get-online-features", &e, timeout).unwrap();
    let (after, wall) = (unix_ms(), started.elapsed().as_secs_f64());
    let (status, body) = http_answer(&answer);
    assert_eq!(status, 200, "{answer}");
    let mut answers = BTreeMap::new();
    lookup.check(&body, &store, &mut answers);
    let (id, got) = Printed::parse(&out, &schema).values("Larder", (before, after));
    assert!(seen_ids.insert(id));
    let route = [("route", "/get-online-features")];
    let entity_rows = lookup.drivers.len() as f64;
    let mut want = BTreeMap::from([
        (key("larder_requests_total", &[route[0], ("status", "200")]), Want::Count(1)),
        (key("larder_request_duration_seconds", &route), Want::Values(1, 0.0, wall)),
        (key("larder_redis_duration_seconds", &[("operation", "read")]), Want::Values(1, 0.0, wall)),
        (key("larder_request_entity_rows", &[]), Want::Values(1, entity_rows, entity_rows)),
        (key("larder_registry_age_seconds", &[]), Want::Gauge(0.0, watch_started.elapsed().as_secs_f64())),
    ]);
    for ((view, status), n) in &answers {
        want.insert(key("larder_feature_answers_total", &[("view", view), ("status", status)]), Want::Count(*n));
    }
    check_values("get-online-features", &got, &want);

    // 4. A bad body, and 5. a path no route serves: a request each, nothing else.
    for (sample, path, route, status) in [
        ("apigw-http-get-online-features-bad-json.json", "/get-online-features", "/get-online-features", 400),
        ("apigw-http-get-online-features.json", "/nope", "unmatched", 404),
    ] {
        let e = if path == "/nope" { http_event(sample, path, "{}") } else { event(sample).to_string() };
        let (before, started) = (unix_ms(), Instant::now());
        let (answer, out) = watch.invoke_capturing("get-online-features", &e, timeout).unwrap();
        let (after, wall) = (unix_ms(), started.elapsed().as_secs_f64());
        assert_eq!(http_answer(&answer).0, status, "{answer}");
        let (id, got) = Printed::parse(&out, &schema).values("Larder", (before, after));
        assert!(seen_ids.insert(id));
        let want = BTreeMap::from([
            (key("larder_requests_total", &[("route", route), ("status", &status.to_string())]), Want::Count(1)),
            (key("larder_request_duration_seconds", &[("route", route)]), Want::Values(1, 0.0, wall)),
            (key("larder_registry_age_seconds", &[]), Want::Gauge(0.0, watch_started.elapsed().as_secs_f64())),
        ]);
        check_values(path, &got, &want);
    }
    drop(watch);

    // LARDER_METRICS=off: the same lookup answered, no EMF line (the capture works: the
    // invocation's log lines are there).
    let watch = LambdaWatch::start_each(&[("get-online-features", env(&[("LARDER_METRICS", "off")]))]);
    let e = http_event("apigw-http-get-online-features.json", "/get-online-features", &lookup.body().to_string());
    let (answer, out) = watch.invoke_capturing("get-online-features", &e, timeout).unwrap();
    assert_eq!(http_answer(&answer).0, 200, "{answer}");
    let printed = Printed::parse(&out, &schema);
    assert!(printed.docs.is_empty(), "LARDER_METRICS=off printed EMF:\n{out}");
    assert_eq!(printed.runtime_request_ids().len(), 1, "{out}");
}

// ---------------------------------------------------------------------------------------------
// The checkers themselves: each must be able to fail.

#[test]
fn the_exposition_parser_reads_the_format_and_refuses_what_it_forbids() {
    let text = r#"# HELP larder_requests_total HTTP requests
# TYPE larder_requests_total counter
larder_requests_total{route="/push",status="200"} 3
larder_requests_total{route="a \"q\" \\ b\nc",status="404"} 1 1700000000000
# TYPE larder_registry_age_seconds gauge
larder_registry_age_seconds 0.25
# TYPE h histogram
h_bucket{le="1"} 1
h_bucket{le="+Inf"} 2
h_sum 3.5
h_count 2
"#;
    let exp = Exposition::parse(text).unwrap();
    assert_eq!(exp.get("larder_requests_total", &[("route", "/push"), ("status", "200")]), Some(3.0));
    assert_eq!(exp.get("larder_requests_total", &[("route", "a \"q\" \\ b\nc"), ("status", "404")]), Some(1.0));
    assert_eq!(exp.get("larder_requests_total", &[("route", "/push")]), None, "labels must match exactly");
    assert_eq!(exp.get("h_count", &[]), Some(2.0));
    assert_eq!(exp.get("h_bucket", &[("le", "+Inf")]), Some(2.0));

    let bad = [
        ("no TYPE", "x 1\n"),
        ("unterminated label", "# TYPE x counter\nx{a=\"b} 1\n"),
        ("unquoted label", "# TYPE x counter\nx{a=b} 1\n"),
        ("bad value", "# TYPE x counter\nx one\n"),
        ("trailing text", "# TYPE x counter\nx 1 2 3\n"),
        ("twice", "# TYPE x counter\nx 1\nx 2\n"),
        ("not cumulative", "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n"),
        ("count disagrees", "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n"),
        ("no +Inf", "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_sum 1\nh_count 2\n"),
        ("histogram without suffix", "# TYPE h histogram\nh 2\n"),
        ("unknown type", "# TYPE x meter\nx 1\n"),
    ];
    for (what, text) in bad {
        assert!(Exposition::parse(text).is_err(), "{what} was accepted");
    }
}

#[test]
fn the_emf_schema_and_reference_check_refuse_what_the_specification_forbids() {
    let schema = emf_schema();
    let good = json!({
        "_aws": {"Timestamp": 1_700_000_000_000u64, "CloudWatchMetrics": [{
            "Namespace": "Larder", "Dimensions": [["route", "status"]],
            "Metrics": [{"Name": "larder_requests_total", "Unit": "Count"}, {"Name": "h", "Unit": "Seconds"}]
        }]},
        "route": "/push", "status": "200", "larder_requests_total": 1, "h": [0.5, 1.5], "requestId": "x"
    });
    assert!(schema.is_valid(&good));
    check_references(&good).unwrap();
    let no_dims =
        json!({"_aws": {"Timestamp": 1, "CloudWatchMetrics": [{"Namespace": "N", "Dimensions": [[]], "Metrics": []}]}});
    assert!(schema.is_valid(&no_dims), "a DimensionSet MAY be empty");

    let mutate = |f: &dyn Fn(&mut Value)| {
        let mut v = good.clone();
        f(&mut v);
        v
    };
    let invalid = [
        (
            "no _aws",
            mutate(&|v| {
                v.as_object_mut().unwrap().remove("_aws");
            }),
        ),
        (
            "no Timestamp",
            mutate(&|v| {
                v["_aws"].as_object_mut().unwrap().remove("Timestamp");
            }),
        ),
        ("Timestamp not an integer", mutate(&|v| v["_aws"]["Timestamp"] = json!("1700000000000"))),
        ("fractional Timestamp", mutate(&|v| v["_aws"]["Timestamp"] = json!(1.5))),
        ("empty namespace", mutate(&|v| v["_aws"]["CloudWatchMetrics"][0]["Namespace"] = json!(""))),
        ("no dimension sets", mutate(&|v| v["_aws"]["CloudWatchMetrics"][0]["Dimensions"] = json!([]))),
        (
            "31 dimensions",
            mutate(&|v| {
                v["_aws"]["CloudWatchMetrics"][0]["Dimensions"] =
                    json!([(0..31).map(|i| format!("d{i}")).collect::<Vec<_>>()])
            }),
        ),
        (
            "a metric without Name",
            mutate(&|v| v["_aws"]["CloudWatchMetrics"][0]["Metrics"][0] = json!({"Unit": "Count"})),
        ),
        ("an unknown unit", mutate(&|v| v["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"] = json!("Parsecs"))),
        (
            "101 metrics",
            mutate(&|v| {
                v["_aws"]["CloudWatchMetrics"][0]["Metrics"] =
                    json!((0..101).map(|i| json!({"Name": format!("m{i}")})).collect::<Vec<_>>())
            }),
        ),
    ];
    for (what, doc) in invalid {
        assert!(!schema.is_valid(&doc), "{what} passed the schema");
    }
    let unreferenced = [
        (
            "a dimension missing",
            mutate(&|v| {
                v.as_object_mut().unwrap().remove("route");
            }),
        ),
        ("a dimension not a string", mutate(&|v| v["status"] = json!(200))),
        (
            "a metric missing",
            mutate(&|v| {
                v.as_object_mut().unwrap().remove("larder_requests_total");
            }),
        ),
        ("a metric not numeric", mutate(&|v| v["larder_requests_total"] = json!("1"))),
        ("101 values", mutate(&|v| v["h"] = json!(vec![1.0; 101]))),
        ("a value not a number", mutate(&|v| v["h"] = json!([1.0, "2"]))),
    ];
    for (what, doc) in unreferenced {
        assert!(schema.is_valid(&doc), "{what}: the schema cannot see this");
        assert!(check_references(&doc).is_err(), "{what} passed the reference check");
    }
}
