//! Materialization against the in-memory store, on parquet files written here.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::{
    ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray, TimestampNanosecondArray,
};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

use super::*;
use crate::online::memory::MemoryStore;
use crate::online::testing::FaultyStore;
use crate::proto::types::value::Val;
use crate::storage::Storage;
use crate::value::Value;

const FEATURES_YAML: &str = r#"
entities:
  user: {join_key: user_id, type: Int64}
sources:
  events:
    type: file
    path: data/events
    timestamp_field: ts
    created_timestamp_column: created
    field_mapping: {raw_score: score}
feature_views:
  scores:
    entities: [user]
    ttl: 0
    source: events
    features: {score: Float64, label: String}
  scores_copy:
    entities: [user]
    ttl: 0
    source: events
    features: {score: Float64, label: String}
  labels_only:
    entities: [user]
    ttl: 1d
    source: events
    features: {label: String}
"#;

fn t(s: &str) -> EventTime {
    EventTime::parse(s).unwrap()
}

/// One row: user, event time, created time, raw_score, label.
type Row = (Option<i64>, &'static str, &'static str, Option<f64>, Option<&'static str>);

fn write_parquet(path: &Path, rows: &[Row], row_group: usize) {
    write_parquet_without(path, rows, row_group, None);
}

/// [`write_parquet`], leaving out the column `without` (one a hive partition supplies).
fn write_parquet_without(path: &Path, rows: &[Row], row_group: usize, without: Option<&str>) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let us = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    // The created column is zone-less nanoseconds: any unit, with or without zone, works.
    let ns = DataType::Timestamp(TimeUnit::Nanosecond, None);
    let schema = Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Int64, true),
        Field::new("ts", us, false),
        Field::new("created", ns, false),
        Field::new("raw_score", DataType::Float64, true),
        Field::new("label", DataType::Utf8, true),
    ]));
    let micros = |s: &str| {
        let e = t(s);
        e.secs * 1_000_000 + (e.nanos / 1000) as i64
    };
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(rows.iter().map(|r| r.0).collect::<Vec<_>>())),
        Arc::new(
            TimestampMicrosecondArray::from(rows.iter().map(|r| micros(r.1)).collect::<Vec<_>>()).with_timezone("UTC"),
        ),
        Arc::new(TimestampNanosecondArray::from(rows.iter().map(|r| micros(r.2) * 1000).collect::<Vec<_>>())),
        Arc::new(Float64Array::from(rows.iter().map(|r| r.3).collect::<Vec<_>>())),
        Arc::new(StringArray::from(rows.iter().map(|r| r.4).collect::<Vec<_>>())),
    ];
    let (fields, cols): (Vec<_>, Vec<_>) =
        schema.fields().iter().cloned().zip(cols).filter(|(f, _)| Some(f.name().as_str()) != without).unzip();
    let schema = Arc::new(Schema::new(fields));
    let props = WriterProperties::builder().set_max_row_group_row_count(Some(row_group)).build();
    let mut w = ArrowWriter::try_new(std::fs::File::create(path).unwrap(), schema.clone(), Some(props)).unwrap();
    w.write(&RecordBatch::try_new(schema, cols).unwrap()).unwrap();
    w.close().unwrap();
}

async fn repo() -> (tempfile::TempDir, RepoConfig) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("feature_store.yaml"),
        "project: mat\nregistry: data/registry.db\nprovider: local\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("features.yaml"), FEATURES_YAML).unwrap();
    let cfg = RepoConfig::load_with(Some(dir.path()), &|_| None).unwrap();
    registry::apply(&cfg, &Storage::default(), false).await.unwrap();
    (dir, cfg)
}

fn key(user: i64) -> Vec<u8> {
    crate::keys::KeyEncoder::new(&["user_id"], 3)
        .unwrap()
        .redis_key(&[&Value { val: Some(Val::Int64Val(user)) }], "mat")
        .unwrap()
}

/// (event time, score, label) stored for a user in a view; `None` if absent.
fn stored(store: &MemoryStore, view: &str, user: i64) -> Option<(EventTime, Vec<u8>, Vec<u8>)> {
    let h = store.hash(&key(user))?;
    let ts = EventTime::from_proto_bytes(h.get(crate::keys::ts_field(view).as_slice())?).unwrap();
    let f = |name| h.get(&crate::keys::feature_field(view, name)[..]).map(|b| b.to_vec()).unwrap_or_default();
    Some((ts, f("score"), f("label")))
}

fn double(x: f64) -> Vec<u8> {
    crate::value::encode(&Value { val: Some(Val::DoubleVal(x)) })
}
fn string(s: &str) -> Vec<u8> {
    crate::value::encode(&Value { val: Some(Val::StringVal(s.into())) })
}

fn opts() -> Options {
    Options { parallelism: 2, write_batch: 3, ..Options::default() }
}

fn range(start: &str, end: &str, views: Option<&[&str]>) -> Request {
    Request::Range { start: t(start), end: t(end), views: views.map(|v| v.iter().map(|s| s.to_string()).collect()) }
}

#[tokio::test]
async fn window_edges_ties_nulls_and_mapping() {
    let (dir, cfg) = repo().await;
    let d = dir.path().join("data/events");
    write_parquet(
        &d.join("part-0.parquet"),
        &[
            (Some(1), "2024-01-01T00:00:00Z", "2024-01-01T00:00:00Z", Some(1.0), Some("start-edge")),
            (Some(2), "2023-12-31T23:59:59.999999Z", "2024-01-01T00:00:00Z", Some(2.0), Some("before")),
            (Some(3), "2024-01-02T00:00:00Z", "2024-01-02T00:00:00Z", Some(3.0), Some("end-edge")),
            (Some(3), "2024-01-02T00:00:00.000001Z", "2024-01-02T00:00:00Z", Some(3.5), Some("after")),
            (Some(4), "2024-01-01T12:00:00Z", "2024-01-01T12:00:05Z", Some(4.1), Some("created-later")),
            (Some(4), "2024-01-01T12:00:00Z", "2024-01-01T12:00:01Z", Some(4.0), Some("created-earlier")),
            (Some(5), "2024-01-01T06:00:00Z", "2024-01-01T06:00:00Z", None, None),
            (None, "2024-01-01T06:00:00Z", "2024-01-01T06:00:00Z", Some(9.0), Some("no key")),
        ],
        3,
    );
    // A second file in a partition folder, with a newer row for user 1.
    write_parquet(
        &d.join("day=2/part-0.parquet"),
        &[(Some(1), "2024-01-01T08:00:00Z", "2024-01-01T08:00:00Z", Some(1.5), Some("later"))],
        10,
    );
    std::fs::write(d.join("_SUCCESS"), b"").unwrap();
    let store = MemoryStore::new();
    let report = materialize(
        &cfg,
        &Storage::default(),
        &store,
        &range("2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z", None),
        &opts(),
    )
    .await
    .unwrap();
    assert!(report.complete && report.recorded, "{report:?}");
    assert_eq!(report.files, 2);

    let s = stored(&store, "scores", 1).unwrap();
    assert_eq!(s, (t("2024-01-01T08:00:00Z"), double(1.5), string("later")));
    assert!(stored(&store, "scores", 2).is_none(), "a row before the start is outside the window");
    assert_eq!(stored(&store, "scores", 3).unwrap().2, string("end-edge"), "the end is inclusive");
    assert_eq!(stored(&store, "scores", 4).unwrap().2, string("created-later"));
    assert_eq!(
        stored(&store, "scores", 5).unwrap(),
        (t("2024-01-01T06:00:00Z"), vec![], vec![]),
        "nulls are empty values"
    );
    // The views sharing the file got the same rows under their own fields.
    assert_eq!(stored(&store, "scores_copy", 4), stored(&store, "scores", 4));
    assert_eq!(stored(&store, "labels_only", 4).unwrap().2, string("created-later"));
    assert_eq!(store.len(), 4);

    let v = report.views.iter().find(|v| v.view == "scores").unwrap();
    assert_eq!((v.rows_in_window, v.entities, v.written, v.rows_null_key), (7, 4, 4, 1));

    let reg = registry::load(&cfg, &Storage::default()).await.unwrap();
    for name in ["scores", "scores_copy", "labels_only"] {
        let view = reg.view(name).unwrap();
        assert_eq!(
            view.materialization_intervals,
            vec![(t("2024-01-01T00:00:00Z"), t("2024-01-02T00:00:00Z"))],
            "{name}"
        );
    }
}

#[tokio::test]
async fn incremental_twice_reads_only_new_rows() {
    let (dir, cfg) = repo().await;
    let d = dir.path().join("data/events");
    let now = EventTime::now();
    let ago = |h: i64| -> &'static str { Box::leak(now.add_secs(-h * 3600).to_rfc3339().into_boxed_str()) };
    write_parquet(
        &d.join("a.parquet"),
        &[(Some(1), ago(5), ago(5), Some(1.0), Some("a")), (Some(2), ago(30), ago(30), Some(2.0), Some("old"))],
        10,
    );
    let store = MemoryStore::new();
    let first_end = now.add_secs(-3600);
    let req = |end| Request::Incremental { end, views: Some(vec!["scores".into(), "labels_only".into()]) };
    let r1 = materialize(&cfg, &Storage::default(), &store, &req(first_end), &opts()).await.unwrap();
    let by = |r: &Report, v: &str| r.views.iter().find(|x| x.view == v).cloned().unwrap();
    // No TTL: 52 weeks back, both rows. A 1-day TTL: only the row from 5 hours ago.
    assert_eq!(by(&r1, "scores").rows_in_window, 2);
    assert_eq!(by(&r1, "labels_only").rows_in_window, 1);
    assert!((by(&r1, "labels_only").start.secs - (now.secs - 86_400)).abs() <= 2, "{:?}", by(&r1, "labels_only"));

    // New rows arrive; the next run starts where the last one ended.
    write_parquet(&d.join("b.parquet"), &[(Some(1), ago(0), ago(0), Some(1.1), Some("new"))], 10);
    let second_end = EventTime::now().add_secs(60);
    let r2 = materialize(&cfg, &Storage::default(), &store, &req(second_end), &opts()).await.unwrap();
    assert_eq!(by(&r2, "scores").start, first_end);
    assert_eq!(by(&r2, "scores").rows_in_window, 1, "only the new row");
    assert_eq!(stored(&store, "scores", 1).unwrap().2, string("new"));
    assert_eq!(stored(&store, "scores", 2).unwrap().2, string("old"));

    // Nothing new up to the same end: the views are left alone.
    let r3 = materialize(&cfg, &Storage::default(), &store, &req(second_end), &opts()).await.unwrap();
    assert!(r3.views.is_empty());
    assert_eq!(r3.up_to_date, vec!["scores".to_string(), "labels_only".to_string()]);
    let reg = registry::load(&cfg, &Storage::default()).await.unwrap();
    assert_eq!(reg.view("scores").unwrap().materialization_intervals.len(), 2);
    assert_eq!(reg.view("scores_copy").unwrap().materialization_intervals.len(), 0);
}

fn many_rows(n: i64) -> Vec<Row> {
    (0..n)
        .map(|i| {
            let ts: &'static str = Box::leak(EventTime::new(1_704_067_200 + i * 60, 0).to_rfc3339().into_boxed_str());
            (Some(i % 7), ts, ts, Some(i as f64), Some("x"))
        })
        .collect()
}

async fn dump(store: &MemoryStore, views: &[&str], users: i64) -> Vec<Option<(EventTime, Vec<u8>, Vec<u8>)>> {
    views.iter().flat_map(|v| (0..users).map(move |u| stored(store, v, u))).collect()
}

#[tokio::test]
async fn statistics_skip_row_groups_outside_the_window() {
    let (dir, cfg) = repo().await;
    write_parquet(&dir.path().join("data/events/a.parquet"), &many_rows(100), 10);
    let store = MemoryStore::new();
    // Rows are a minute apart from 2024-01-01T00:00Z: minutes 25..=44 touch row groups 2, 3 and 4.
    let report = materialize(
        &cfg,
        &Storage::default(),
        &store,
        &range("2024-01-01T00:25:00Z", "2024-01-01T00:44:00Z", Some(&["scores"])),
        &opts(),
    )
    .await
    .unwrap();
    assert_eq!((report.row_groups, report.row_groups_skipped, report.rows_read), (3, 7, 30));
    assert_eq!(report.views[0].rows_in_window, 20);
    assert_eq!(stored(&store, "scores", 44 % 7).unwrap().1, double(44.0));
}

#[tokio::test]
async fn plan_items_in_any_order_then_commit_equal_one_run() {
    let (dir, cfg) = repo().await;
    let d = dir.path().join("data/events");
    let mut rows = many_rows(120);
    rows.reverse(); // newest first: order must not matter
    write_parquet(&d.join("a.parquet"), &rows[..60], 7);
    write_parquet(&d.join("b.parquet"), &rows[60..], 9);
    let req = range("2024-01-01T00:00:00Z", "2024-01-01T01:30:00Z", None);

    let whole = MemoryStore::new();
    materialize(&cfg, &Storage::default(), &whole, &req, &opts()).await.unwrap();

    let o = Options { rows_per_item: 20, ..opts() };
    let plan = plan(&cfg, &Storage::default(), &req, &o).await.unwrap();
    assert!(plan.items.len() >= 4, "{plan:?}");
    assert_eq!(plan.rows, 92, "rows up to 01:30, in the kept row groups");
    assert_eq!(plan.views.len(), 3);
    assert!(plan.items.iter().all(|i| i.rows >= 20 || i.row_groups.end == 9 || i.row_groups.end == 7));
    let split = MemoryStore::new();
    let reg_before = registry::load(&cfg, &Storage::default())
        .await
        .unwrap()
        .view("scores")
        .unwrap()
        .materialization_intervals
        .len();
    for item in plan.items.iter().rev() {
        let text = serde_json::to_string(item).unwrap();
        let item: WorkItem = serde_json::from_str(&text).unwrap();
        let r = run_item(&cfg, &Storage::default(), &split, &item, &o).await.unwrap();
        assert!(r.complete && !r.recorded);
    }
    assert_eq!(
        registry::load(&cfg, &Storage::default())
            .await
            .unwrap()
            .view("scores")
            .unwrap()
            .materialization_intervals
            .len(),
        reg_before
    );
    commit(&cfg, &Storage::default(), &plan.views).await.unwrap();
    assert_eq!(
        registry::load(&cfg, &Storage::default())
            .await
            .unwrap()
            .view("scores")
            .unwrap()
            .materialization_intervals
            .len(),
        reg_before + 1
    );
    let views = ["scores", "scores_copy", "labels_only"];
    assert_eq!(dump(&split, &views, 7).await, dump(&whole, &views, 7).await);
    // And both hold the right rows: each user's newest up to 01:30 (minute 90), computed here.
    for u in 0..7 {
        let newest = (0..=90).filter(|i| i % 7 == u).max().unwrap();
        let want = (EventTime::new(1_704_067_200 + newest * 60, 0), double(newest as f64), string("x"));
        assert_eq!(stored(&split, "scores", u), Some(want), "user {u}");
    }
}

#[tokio::test]
async fn a_deadline_stops_at_a_row_group_and_returns_the_rest() {
    let (dir, cfg) = repo().await;
    write_parquet(&dir.path().join("data/events/a.parquet"), &many_rows(50), 5);
    let req = range("2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z", Some(&["scores"]));
    let store = MemoryStore::new();
    // Less time than the reserve for writing: nothing may start.
    let o = Options { deadline: Some(Instant::now() + Duration::from_millis(500)), ..opts() };
    let report = materialize(&cfg, &Storage::default(), &store, &req, &o).await.unwrap();
    assert!(!report.complete && !report.recorded);
    assert_eq!(report.remaining.len(), 1);
    assert_eq!(report.remaining[0].row_groups, RowGroups { start: 0, end: 10 });
    assert!(
        registry::load(&cfg, &Storage::default())
            .await
            .unwrap()
            .view("scores")
            .unwrap()
            .materialization_intervals
            .is_empty()
    );
    // The rest, run as an item, then committed, gives the full result.
    let r = run_item(&cfg, &Storage::default(), &store, &report.remaining[0], &opts()).await.unwrap();
    assert!(r.complete);
    commit(&cfg, &Storage::default(), &report.remaining[0].views).await.unwrap();
    assert_eq!(stored(&store, "scores", 49 % 7).unwrap().1, double(49.0));
    assert_eq!(
        registry::load(&cfg, &Storage::default())
            .await
            .unwrap()
            .view("scores")
            .unwrap()
            .materialization_intervals
            .len(),
        1
    );
}

#[tokio::test]
async fn bad_input_is_named() {
    let (dir, cfg) = repo().await;
    let store = MemoryStore::new();
    let req = range("2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z", Some(&["scores"]));
    let err = materialize(&cfg, &Storage::default(), &store, &req, &opts()).await.unwrap_err();
    assert!(err.to_string().contains("data/events") && err.to_string().contains("does not exist"), "{err}");

    // A file without the mapped column.
    let path = dir.path().join("data/events/a.parquet");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let schema = Arc::new(Schema::new(vec![Field::new("user_id", DataType::Int64, false)]));
    let mut w = ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), schema.clone(), None).unwrap();
    w.write(&RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![1]))]).unwrap()).unwrap();
    w.close().unwrap();
    let err = materialize(&cfg, &Storage::default(), &store, &req, &opts()).await.unwrap_err().to_string();
    assert!(
        err.contains("'ts'") && err.contains("a.parquet") && err.contains("timestamp field of feature view 'scores'"),
        "{err}"
    );

    // A column of the wrong type.
    let schema = Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Utf8, false),
        Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, None), false),
        Field::new("created", DataType::Timestamp(TimeUnit::Microsecond, None), false),
        Field::new("raw_score", DataType::Float64, false),
        Field::new("label", DataType::Utf8, false),
    ]));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec!["u1"])),
        Arc::new(TimestampMicrosecondArray::from(vec![0])),
        Arc::new(TimestampMicrosecondArray::from(vec![0])),
        Arc::new(Float64Array::from(vec![1.0])),
        Arc::new(StringArray::from(vec!["x"])),
    ];
    let mut w = ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), schema.clone(), None).unwrap();
    w.write(&RecordBatch::try_new(schema, cols).unwrap()).unwrap();
    w.close().unwrap();
    let err = materialize(&cfg, &Storage::default(), &store, &req, &opts()).await.unwrap_err().to_string();
    assert!(err.contains("'user_id'") && err.contains("Int64") && err.contains("a.parquet"), "{err}");

    let err = materialize(
        &cfg,
        &Storage::default(),
        &store,
        &range("2024-01-02T00:00:00Z", "2024-01-01T00:00:00Z", None),
        &opts(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.status(), 400);
    let err = materialize(
        &cfg,
        &Storage::default(),
        &store,
        &range("2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z", Some(&["nope"])),
        &opts(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.status(), 404);
    assert!(store.is_empty());
}

/// Materializes the 200 rows of `data/events` into `scores` with one worker and the store's
/// first write held back, and checks that the scan was stopped by the writer's backlog a few
/// row groups in: the writer had settled rows long before the last row group was read.
async fn materialize_with_first_write_held(cfg: &RepoConfig) -> (FaultyStore, Report) {
    let req = range("2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z", Some(&["scores"]));
    let progress = Arc::new(Progress::default());
    // Rows decoded when the first write was let through.
    let rows_read_then = Arc::new(std::sync::Mutex::new(None));
    let (seen, read) = (rows_read_then.clone(), progress.clone());
    let store = FaultyStore::default().before_each_write(move |n| {
        let (seen, read) = (seen.clone(), read.clone());
        Box::pin(async move {
            if n == 0 {
                // Held until the scan has read everything (no backpressure: the check below
                // fails) or for a second: with backpressure the scan stops a few row groups in
                // however long it is given, so waiting longer only makes the check surer.
                let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
                while read.rows_read.load(Ordering::Relaxed) < 200 && tokio::time::Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                *seen.lock().unwrap() = Some(read.rows_read.load(Ordering::Relaxed));
            }
        })
    });
    let o = Options { parallelism: 1, write_batch: 1, write_concurrency: 1, progress, ..Options::default() };
    let report = materialize(cfg, &Storage::default(), &store, &req, &o).await.unwrap();
    assert!(report.complete && report.rows_read == 200);
    let then = rows_read_then.lock().unwrap().unwrap();
    assert!(then <= 60, "{then} of 200 rows read while the first write was held");
    (store, report)
}

#[tokio::test]
async fn writing_starts_while_older_row_groups_are_still_read() {
    let (dir, cfg) = repo().await;
    // 200 rows a minute apart, 20 row groups, oldest first (an event log): the newest row
    // group holds every user's winner, so the writer has work after one row group.
    write_parquet(&dir.path().join("data/events/a.parquet"), &many_rows(200), 10);
    let (store, report) = materialize_with_first_write_held(&cfg).await;
    for u in 0..7 {
        let newest = (0..200).filter(|i| i % 7 == u).max().unwrap();
        assert_eq!(stored(&store.inner, "scores", u).unwrap().1, double(newest as f64), "user {u}");
    }
    assert_eq!(report.views[0].written, 7);
}

/// Materializes `data/events` into `scores` with `parallelism` workers, one row per write.
async fn materialize_scores_one_by_one(cfg: &RepoConfig, parallelism: usize) -> (MemoryStore, Report) {
    let req = range("2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z", Some(&["scores"]));
    let store = MemoryStore::new();
    let o = Options { parallelism, write_batch: 1, write_concurrency: 1, ..Options::default() };
    let report = materialize(cfg, &Storage::default(), &store, &req, &o).await.unwrap();
    (store, report)
}

#[tokio::test]
async fn a_tie_at_a_row_group_boundary_waits_for_the_older_group() {
    let (dir, cfg) = repo().await;
    // User 1's newest event time is in both row groups; the older group's row has the later
    // created time, so it wins, though its group is read second. User 2 settles at once.
    let rows: Vec<Row> = vec![
        (Some(1), "2024-01-01T00:00:00Z", "2024-01-01T00:00:00Z", Some(1.0), Some("a")),
        (Some(1), "2024-01-01T10:00:00Z", "2024-01-01T12:00:00Z", Some(2.0), Some("winner")),
        (Some(2), "2024-01-01T10:00:00Z", "2024-01-01T10:00:00Z", Some(3.0), Some("b")),
        (Some(1), "2024-01-01T10:00:00Z", "2024-01-01T11:00:00Z", Some(4.0), Some("loser")),
        (Some(2), "2024-01-01T11:00:00Z", "2024-01-01T11:00:00Z", Some(5.0), Some("c")),
        (Some(3), "2024-01-01T09:00:00Z", "2024-01-01T09:00:00Z", Some(6.0), Some("d")),
    ];
    write_parquet(&dir.path().join("data/events/a.parquet"), &rows, 3);
    for parallelism in [1, 2] {
        let (store, report) = materialize_scores_one_by_one(&cfg, parallelism).await;
        assert_eq!(report.views[0].written, 3);
        assert_eq!(stored(&store, "scores", 1).unwrap().2, string("winner"), "parallelism {parallelism}");
        assert_eq!(stored(&store, "scores", 2).unwrap().1, double(5.0));
        assert_eq!(stored(&store, "scores", 3).unwrap().1, double(6.0));
    }
}

/// User `u`'s rows at ten hours from 2024-01-01T00:00Z, scored `10u + hour`, with
/// `user_id` given as `user` (None: a partition folder gives it).
fn ten_hours(u: i64, user: Option<i64>) -> Vec<Row> {
    (0..10)
        .map(|h| {
            let ts: &'static str = Box::leak(EventTime::new(1_704_067_200 + h * 3600, 0).to_rfc3339().into_boxed_str());
            (user, ts, ts, Some((u * 10 + h) as f64), Some("x"))
        })
        .collect()
}

/// Users 0 to 19 of [`ten_hours`], each written once with its last hour.
fn assert_twenty_users_have_their_last_hour(store: &MemoryStore, report: &Report) {
    for u in 0..20 {
        assert_eq!(stored(store, "scores", u).unwrap().1, double((u * 10 + 9) as f64), "user {u}");
    }
    assert_eq!(report.views[0].written, 20);
}

#[tokio::test]
async fn entities_sorted_by_key_are_written_as_their_row_groups_are_merged() {
    let (dir, cfg) = repo().await;
    // 20 users, ten hourly rows each, sorted by user: every row group (one user) spans the
    // same hours, so time cannot settle anyone before the last row group; the users' key
    // ranges can.
    let rows: Vec<Row> = (0..20).flat_map(|u| ten_hours(u, Some(u))).collect();
    write_parquet(&dir.path().join("data/events/a.parquet"), &rows, 10);
    let (store, report) = materialize_with_first_write_held(&cfg).await;
    assert_twenty_users_have_their_last_hour(&store.inner, &report);
}

#[tokio::test]
async fn entities_partitioned_by_key_are_written_as_their_files_are_merged() {
    let (dir, cfg) = repo().await;
    // 20 users, each in its own folder user_id=U with ten hourly rows over the same hours, the
    // files without a user_id column: the path gives every row's key, so each user settles
    // once its file is merged.
    for u in 0..20 {
        let path = dir.path().join(format!("data/events/user_id={u}/a.parquet"));
        write_parquet_without(&path, &ten_hours(u, None), 10, Some("user_id"));
    }
    let (store, report) = materialize_with_first_write_held(&cfg).await;
    assert_twenty_users_have_their_last_hour(&store.inner, &report);
}

#[tokio::test]
async fn an_entity_in_two_partition_folders_waits_for_both() {
    let (dir, cfg) = repo().await;
    // User 3 has a folder under each of two dates, with the same latest event time; the second
    // date's row was created later and wins. Its folder key covers both files, so user 3 waits
    // for both and is written once; user 5, in one folder, is written once too.
    let files: [(&str, Vec<Row>); 3] = [
        ("date=1/user_id=3", vec![(None, "2024-01-01T09:00:00Z", "2024-01-01T09:00:00Z", Some(1.0), Some("loser"))]),
        ("date=2/user_id=3", vec![(None, "2024-01-01T09:00:00Z", "2024-01-01T12:00:00Z", Some(2.0), Some("winner"))]),
        ("date=1/user_id=5", vec![(None, "2024-01-01T09:00:00Z", "2024-01-01T09:00:00Z", Some(5.0), Some("five"))]),
    ];
    for (folder, rows) in &files {
        write_parquet_without(&dir.path().join(format!("data/events/{folder}/a.parquet")), rows, 10, Some("user_id"));
    }
    for parallelism in [1, 2] {
        let (store, report) = materialize_scores_one_by_one(&cfg, parallelism).await;
        assert_eq!(stored(&store, "scores", 3).unwrap().2, string("winner"), "parallelism {parallelism}");
        assert_eq!(stored(&store, "scores", 5).unwrap().2, string("five"), "parallelism {parallelism}");
        assert_eq!(report.views[0].written, 2, "parallelism {parallelism}: each user written once");
    }
}

#[tokio::test]
async fn overlapping_key_ranges_wait_for_each_other() {
    let (dir, cfg) = repo().await;
    // Two row groups over the same hours whose user ranges overlap at user 4: its winner (the
    // later created time) is in the group read second, so user 4 waits for it; users 1 and 2
    // settle after the first group.
    let rows: Vec<Row> = vec![
        (Some(1), "2024-01-01T00:00:00Z", "2024-01-01T00:00:00Z", Some(1.0), Some("a")),
        (Some(2), "2024-01-01T10:00:00Z", "2024-01-01T10:00:00Z", Some(2.0), Some("b")),
        (Some(4), "2024-01-01T10:00:00Z", "2024-01-01T11:00:00Z", Some(3.0), Some("loser")),
        (Some(4), "2024-01-01T10:00:00Z", "2024-01-01T12:00:00Z", Some(4.0), Some("winner")),
        (Some(5), "2024-01-01T00:00:00Z", "2024-01-01T00:00:00Z", Some(5.0), Some("c")),
        (Some(6), "2024-01-01T10:00:00Z", "2024-01-01T10:00:00Z", Some(6.0), Some("d")),
    ];
    write_parquet(&dir.path().join("data/events/a.parquet"), &rows, 3);
    for parallelism in [1, 2] {
        let (store, report) = materialize_scores_one_by_one(&cfg, parallelism).await;
        assert_eq!(report.views[0].written, 5, "parallelism {parallelism}");
        assert_eq!(stored(&store, "scores", 4).unwrap().2, string("winner"), "parallelism {parallelism}");
        assert_eq!(stored(&store, "scores", 1).unwrap().1, double(1.0));
        assert_eq!(stored(&store, "scores", 6).unwrap().1, double(6.0));
    }
}

#[tokio::test]
async fn views_of_one_source_read_each_column_once_and_number_rows_across_row_groups() {
    let (dir, cfg) = repo().await;
    write_parquet(&dir.path().join("data/events/a.parquet"), &many_rows(5), 2);
    let storage = Storage::default();
    let registry = registry::load(&cfg, &storage).await.unwrap();
    let views = ["scores", "labels_only", "scores_copy"];
    let req = range("2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z", Some(&views));
    let (windows, _) = windows(&registry, &req, t("2024-01-03T00:00:00Z")).unwrap();
    let groups = scan::build_groups(&cfg, &storage, &registry, &windows).unwrap();
    assert_eq!(groups.len(), 1, "one source, one group");
    let g = &groups[0];
    // Three views, one copy of each column, in the order first needed; a column needed as a
    // time and as a value would be two entries (it is decoded two ways).
    use crate::offline::columns::ColumnUse::{Time, Value as V};
    use crate::value::ValueType;
    let needed: Vec<(&str, _)> = g.needed.iter().map(|n| (n.name.as_str(), n.usage)).collect();
    assert_eq!(
        needed,
        [
            ("ts", Time),
            ("created", Time),
            ("user_id", V(ValueType::Int64)),
            ("raw_score", V(ValueType::Double)),
            ("label", V(ValueType::String)),
        ]
    );
    // `scores` and `scores_copy` read the same columns over the same window: one selection.
    let names: Vec<Vec<&str>> =
        g.members().iter().map(|m| m.iter().map(|&i| g.views[i].view.name.as_str()).collect()).collect();
    assert_eq!(names, [vec!["scores", "scores_copy"], vec!["labels_only"]]);
    let files = scan::open_group(g).await.unwrap();
    assert_eq!(files[0].first_row, [0, 2, 4], "each row group's first row within the file");
}

#[tokio::test]
async fn a_complete_tie_across_row_groups_goes_to_the_later_row() {
    let (dir, cfg) = repo().await;
    // User 1's two rows tie on event and created time, each first in its row group: the one
    // later in the file wins, as within a row group.
    let rows: Vec<Row> = vec![
        (Some(1), "2024-01-01T10:00:00Z", "2024-01-01T10:00:00Z", Some(1.0), Some("earlier")),
        (Some(2), "2024-01-01T09:00:00Z", "2024-01-01T09:00:00Z", Some(2.0), Some("b")),
        (Some(1), "2024-01-01T10:00:00Z", "2024-01-01T10:00:00Z", Some(3.0), Some("later")),
        (Some(3), "2024-01-01T09:00:00Z", "2024-01-01T09:00:00Z", Some(4.0), Some("c")),
    ];
    write_parquet(&dir.path().join("data/events/a.parquet"), &rows, 2);
    for parallelism in [1, 2] {
        let (store, _) = materialize_scores_one_by_one(&cfg, parallelism).await;
        assert_eq!(stored(&store, "scores", 1).unwrap().2, string("later"), "parallelism {parallelism}");
    }
}

#[tokio::test]
async fn a_row_group_that_cannot_be_read_fails_the_run_and_records_nothing() {
    let (dir, cfg) = repo().await;
    let path = dir.path().join("data/events/a.parquet");
    write_parquet(&path, &many_rows(40), 10);
    // Garbage over the first row group's first page header (the footer stays readable, so
    // planning succeeds and the failure comes from a worker).
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[4..40].fill(0xff);
    std::fs::write(&path, bytes).unwrap();
    let req = range("2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z", Some(&["scores"]));
    for parallelism in [1, 2] {
        let store = MemoryStore::new();
        let o = Options { parallelism, ..opts() };
        let err = materialize(&cfg, &Storage::default(), &store, &req, &o).await.unwrap_err().to_string();
        assert!(err.contains("row group 0 of") && err.contains("a.parquet"), "parallelism {parallelism}: {err}");
    }
    let reg = registry::load(&cfg, &Storage::default()).await.unwrap();
    assert!(reg.view("scores").unwrap().materialization_intervals.is_empty());
}

#[tokio::test]
async fn a_tie_across_decoded_batches_of_one_row_group_goes_to_the_later_row() {
    let (dir, cfg) = repo().await;
    // One row group of 65,537 rows is decoded in two batches (64 Ki rows each): user 1's tied
    // rows are first in each, so only numbering rows across batches tells them apart.
    let at = "2024-01-01T10:00:00Z";
    let mut rows: Vec<Row> = vec![(Some(1), at, at, Some(1.0), Some("earlier"))];
    rows.extend(std::iter::repeat_n((Some(2), at, at, Some(2.0), Some("b")), 65_535));
    rows.push((Some(1), at, at, Some(3.0), Some("later")));
    write_parquet(&dir.path().join("data/events/a.parquet"), &rows, rows.len());
    let (store, report) = materialize_scores_one_by_one(&cfg, 1).await;
    assert_eq!(report.rows_read, 65_537);
    assert_eq!(stored(&store, "scores", 1).unwrap().2, string("later"));
}
