//! Materialization from an S3 prefix on a loopback `moto_server`: several files in hive-style
//! partition folders, several row groups each, a partition value used as a feature, the
//! registry itself on S3 (conditional writes), statistics pruning over ranged reads, and the
//! plan / item / commit split. The same data from a local folder must give the same rows.

use std::sync::{Arc, OnceLock};

use arrow_array::{ArrayRef, Float32Array, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use larder::config::RepoConfig;
use larder::materialize::{self, Options, Request};
use larder::online::memory::MemoryStore;
use larder::registry;
use larder::time::EventTime;
use larder_tests::MotoServer;
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

/// One moto server per test binary: the SDK clients are built once per process.
fn moto() -> &'static MotoServer {
    static MOTO: OnceLock<MotoServer> = OnceLock::new();
    MOTO.get_or_init(|| {
        let m = MotoServer::start();
        m.export_env();
        m
    })
}

const BUCKET: &str = "larder-mat";

fn features_yaml(path: &str) -> String {
    format!(
        r#"
entities:
  rider: {{join_key: rider_id, type: Int64}}
sources:
  trips:
    type: file
    path: {path}
    timestamp_field: ts
    field_mapping: {{fare_raw: fare}}
feature_views:
  rider_stats:
    entities: [rider]
    ttl: 0
    source: trips
    features: {{fare: Float32, city: String, day: Int64}}
"#
    )
}

/// Rows of one day: rider `r` has a trip at `hour` for every hour in `hours`.
fn day_file(day: i64, riders: i64, hours: std::ops::Range<i64>) -> Vec<u8> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("rider_id", DataType::Int64, false),
        // Milliseconds, zone-less: another unit than the local tests use.
        Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), false),
        Field::new("fare_raw", DataType::Float32, true),
        Field::new("city", DataType::Utf8, true),
    ]));
    let (mut ids, mut ts, mut fare, mut city) = (vec![], vec![], vec![], vec![]);
    let base = EventTime::parse("2026-01-01T00:00:00Z").unwrap().secs + (day - 1) * 86_400;
    for h in hours {
        for r in 0..riders {
            ids.push(r);
            ts.push((base + h * 3600) * 1000);
            fare.push(Some((day * 100 + h) as f32 + r as f32 / 100.0));
            city.push(Some(if r % 2 == 0 { "sf" } else { "nyc" }));
        }
    }
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids)),
        Arc::new(TimestampMillisecondArray::from(ts)),
        Arc::new(Float32Array::from(fare)),
        Arc::new(StringArray::from(city)),
    ];
    let props = WriterProperties::builder().set_max_row_group_row_count(Some(20)).build();
    let mut out = Vec::new();
    let mut w = ArrowWriter::try_new(&mut out, schema.clone(), Some(props)).unwrap();
    w.write(&RecordBatch::try_new(schema, cols).unwrap()).unwrap();
    w.close().unwrap();
    out
}

async fn put(key: &str, body: Vec<u8>) {
    larder_tests::aws::s3().await.put_object().bucket(BUCKET).key(key).body(body.into()).send().await.unwrap();
}

/// Uploads the data to S3 and writes the same files under `local`.
async fn upload(prefix: &str, local: &std::path::Path) {
    let files = [
        ("day=1/part-0.parquet", day_file(1, 10, 0..12)),
        ("day=1/part-1.parquet", day_file(1, 10, 12..24)),
        ("day=2/part-0.parquet", day_file(2, 10, 0..24)),
        ("_SUCCESS", Vec::new()),
        ("day=2/_SUCCESS", b"not parquet".to_vec()),
    ];
    for (name, body) in files {
        put(&format!("{prefix}/{name}"), body.clone()).await;
        let p = local.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }
}

async fn repo(source: &str, registry_path: &str) -> (tempfile::TempDir, RepoConfig) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("feature_store.yaml"),
        format!("project: rides\nregistry: {registry_path}\nprovider: aws\n"),
    )
    .unwrap();
    std::fs::write(dir.path().join("features.yaml"), features_yaml(source)).unwrap();
    let cfg = RepoConfig::load_with(Some(dir.path()), &|_| None).unwrap();
    registry::apply(&cfg, &larder::storage::Storage::default(), false).await.unwrap();
    (dir, cfg)
}

fn rider_key(r: i64) -> Vec<u8> {
    use larder::proto::types::value::Val;
    let v = larder::value::Value { val: Some(Val::Int64Val(r)) };
    larder::keys::KeyEncoder::new(&["rider_id"], 3).unwrap().redis_key(&[&v], "rides").unwrap()
}

fn dump(store: &MemoryStore) -> Vec<Vec<(Vec<u8>, Vec<u8>)>> {
    (0..10)
        .map(|r| {
            let mut h: Vec<(Vec<u8>, Vec<u8>)> =
                store.hash(&rider_key(r)).unwrap_or_default().into_iter().map(|(k, v)| (k, v.to_vec())).collect();
            h.sort();
            h
        })
        .collect()
}

fn field(store: &MemoryStore, r: i64, feature: &str) -> Vec<u8> {
    store.hash(&rider_key(r)).unwrap()[&larder::keys::feature_field("rider_stats", feature)[..]].to_vec()
}

fn float(f: f32) -> Vec<u8> {
    larder::value::encode(&larder::value::Value { val: Some(larder::proto::types::value::Val::FloatVal(f)) })
}
fn int64(i: i64) -> Vec<u8> {
    larder::value::encode(&larder::value::Value { val: Some(larder::proto::types::value::Val::Int64Val(i)) })
}

#[tokio::test]
async fn an_s3_prefix_materializes_like_the_same_local_folder() {
    moto();
    larder_tests::aws::s3().await.create_bucket().bucket(BUCKET).send().await.unwrap();
    let local = tempfile::tempdir().unwrap();
    upload("trips", local.path()).await;

    // Source and registry on S3.
    let (_d, cfg) = repo(&format!("s3://{BUCKET}/trips/"), &format!("s3://{BUCKET}/rides/registry.db")).await;
    let req = Request::Range {
        start: EventTime::parse("2026-01-01T06:00:00Z").unwrap(),
        end: EventTime::parse("2026-01-02T05:00:00Z").unwrap(),
        views: None,
    };
    let s3_store = MemoryStore::new();
    let report =
        materialize::materialize(&cfg, &larder::storage::Storage::default(), &s3_store, &req, &Options::default())
            .await
            .unwrap();
    assert!(report.complete && report.recorded, "{report:?}");
    assert_eq!(report.files, 3, "_SUCCESS files are not data");
    // 480 rows in 24 row groups of 20; rows before 06:00 on day 1 and after 05:00 on day 2
    // are in row groups the statistics rule out.
    assert_eq!((report.row_groups, report.row_groups_skipped), (12, 12), "{report:?}");
    assert_eq!(report.views[0].rows_in_window, 24 * 10);
    // The last hour in the window is day 2, 05:00: fare 205 + r/100, day 2 from the path.
    assert_eq!(field(&s3_store, 3, "fare"), float(205.0f32 + 3.0f32 / 100.0));
    assert_eq!(field(&s3_store, 3, "day"), int64(2));
    let reg = registry::load(&cfg, &larder::storage::Storage::default()).await.unwrap();
    assert_eq!(reg.view("rider_stats").unwrap().materialization_intervals.len(), 1);

    // The same files from a local folder give the same hashes.
    let (l, local_cfg) = repo(&local.path().display().to_string(), "data/registry.db").await;
    assert!(!l.path().starts_with(local.path()), "the registry must not sit among the data files");
    let local_store = MemoryStore::new();
    materialize::materialize(&local_cfg, &larder::storage::Storage::default(), &local_store, &req, &Options::default())
        .await
        .unwrap();
    assert_eq!(dump(&s3_store), dump(&local_store));
    assert!(dump(&s3_store).iter().all(|h| h.len() == 4));

    // Split into items on S3, run in reverse, commit: the same result again.
    let split = MemoryStore::new();
    let opts = Options { rows_per_item: 60, ..Options::default() };
    let plan = materialize::plan(&cfg, &larder::storage::Storage::default(), &req, &opts).await.unwrap();
    assert!(plan.items.len() >= 3 && plan.items.iter().all(|i| i.file.starts_with("s3://")), "{plan:?}");
    for item in plan.items.iter().rev() {
        assert!(
            materialize::run_item(&cfg, &larder::storage::Storage::default(), &split, item, &opts)
                .await
                .unwrap()
                .complete
        );
    }
    materialize::commit(&cfg, &larder::storage::Storage::default(), &plan.views).await.unwrap();
    assert_eq!(dump(&split), dump(&s3_store));
    let reg = registry::load(&cfg, &larder::storage::Storage::default()).await.unwrap();
    assert_eq!(reg.view("rider_stats").unwrap().materialization_intervals.len(), 2);

    // A prefix with nothing under it is named in the error.
    let (_m, missing) = repo(&format!("s3://{BUCKET}/nothing-here"), &format!("s3://{BUCKET}/other/registry.db")).await;
    let err = materialize::materialize(
        &missing,
        &larder::storage::Storage::default(),
        &MemoryStore::new(),
        &req,
        &Options::default(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("s3://larder-mat/nothing-here"), "{err}");
}
