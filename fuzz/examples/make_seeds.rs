//! Writes the seed corpora of the fuzz targets into `fuzz/corpus/<target>/` (committed):
//! the sample events of `events/`, the bodies and records inside them, the example repository's
//! YAML files, `registry.db` files (Feast's anchor fixture and two written by `apply`), small
//! parquet files and serialized values and entity keys.
//!
//!     scripts/fuzz.sh --seeds        (runs: cargo run --example make_seeds, from fuzz/)
//!
//! Re-running it rewrites the same files; the fuzzer's own findings never go here (scripts/fuzz.sh
//! grows a separate working corpus).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{ListBuilder, StringBuilder, StringDictionaryBuilder};
use arrow_array::types::{Float64Type, Int16Type, Int32Type};
use arrow_array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, DictionaryArray, Float16Array, Int16Array,
    LargeListArray, RecordBatch, StringArray, TimestampMillisecondArray, UInt64Array,
};
use arrow_schema::{Field, Schema};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use larder::proto::types::value::Val;
use larder::proto::types::{EntityKey, Int64List, RepeatedValue, StringList, Value};
use larder::time::EventTime;
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use prost::Message;
use serde_json::Value as Json;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("fuzz/ is in the repository").to_path_buf()
}

struct Seeds {
    root: PathBuf,
    corpus: PathBuf,
    /// Files written per target, to print a summary.
    written: BTreeMap<String, (usize, usize)>,
}

impl Seeds {
    fn put(&mut self, target: &str, name: &str, bytes: &[u8]) {
        let dir = self.corpus.join(target);
        std::fs::create_dir_all(&dir).expect("corpus folder");
        std::fs::write(dir.join(name), bytes).expect("seed written");
        let entry = self.written.entry(target.to_string()).or_default();
        entry.0 += 1;
        entry.1 += bytes.len();
    }

    fn read(&self, relative: &str) -> Vec<u8> {
        std::fs::read(self.root.join(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
    }

    fn event(&self, name: &str) -> Json {
        serde_json::from_slice(&self.read(&format!("events/{name}"))).expect("an event is JSON")
    }
}

/// The body an API Gateway event carries, decoded.
fn body_of(event: &Json) -> Vec<u8> {
    let body = event["body"].as_str().unwrap_or_default();
    if event["isBase64Encoded"].as_bool() == Some(true) {
        // A malformed sample (a body marked base64 that is not) is kept as it is.
        B64.decode(body).unwrap_or_else(|_| body.as_bytes().to_vec())
    } else {
        body.as_bytes().to_vec()
    }
}

fn value(val: Val) -> Value {
    Value { val: Some(val) }
}

fn main() {
    let root = repo_root();
    let mut s = Seeds { corpus: root.join("fuzz/corpus"), root, written: BTreeMap::new() };

    // Events, as files: what the functions receive.
    let mut apigw = Vec::new();
    for entry in std::fs::read_dir(s.root.join("events")).expect("events/") {
        let name = entry.expect("an entry").file_name().into_string().expect("a UTF-8 name");
        let bytes = s.read(&format!("events/{name}"));
        let is_http = name.starts_with("apigw-") || name.starts_with("push-apigw-");
        if is_http {
            s.put("apigw_event", &name, &bytes);
            apigw.push(name.clone());
        }
        if name.starts_with("push-") || name.starts_with("kinesis") || name == "msk.json" || name.starts_with("kafka") {
            s.put("push_event", &name, &bytes);
        }
    }

    // Bodies inside the HTTP events.
    for name in &apigw {
        let body = body_of(&s.event(name));
        let stem = name.trim_end_matches(".json");
        if name.contains("get-online-features") {
            s.put("get_online_features", &format!("{stem}.body"), &body);
        } else if name.starts_with("push-") {
            s.put("push_request", &format!("{stem}.body"), &body);
        }
    }
    let direct = s.read("events/push-direct.json");
    s.put("push_request", "push-direct.json", &direct);
    for (name, body) in [
        ("service", r#"{"feature_service": "driver_model_v2", "entities": {"driver_id": [1001, 1002, 9999]}}"#),
        (
            "full-names",
            r#"{"features": ["driver_hourly_stats:conv_rate", "driver_fresh:city"], "full_feature_names": true,
                "entities": {"driver_id": ["1003", 1004.0]}}"#,
        ),
        ("scalar", r#"{"features": ["driver_fresh:rating"], "entities": {"driver_id": 1005}}"#),
    ] {
        s.put("get_online_features", &format!("{name}.json"), body.as_bytes());
    }
    s.put(
        "push_request",
        "write-lists.json",
        br#"{"feature_view_name": "driver_hourly_stats", "allow_registry_cache": false,
            "df": {"driver_id": [7, 8], "event_timestamp": [1767261600, "2026-01-01 10:00:00+02:00"],
                   "conv_rate": ["NaN", 1e39], "city": null, "is_active": [true, null]}}"#,
    );

    // Records inside the stream events: a Kinesis record's data, a Kafka record's value.
    for name in ["kinesis.json", "kinesis-poison.json"] {
        let event = s.event(name);
        for (i, r) in event["Records"].as_array().expect("Records").iter().enumerate() {
            let data = B64.decode(r["kinesis"]["data"].as_str().unwrap_or_default()).unwrap_or_default();
            s.put("stream_record", &format!("{}-{i}", name.trim_end_matches(".json")), &data);
        }
    }
    for name in ["msk.json", "kafka-self-managed.json"] {
        let event = s.event(name);
        let mut i = 0;
        for records in event["records"].as_object().expect("records").values() {
            for r in records.as_array().expect("a partition's records") {
                let data = B64.decode(r["value"].as_str().unwrap_or_default()).unwrap_or_default();
                s.put("stream_record", &format!("{}-{i}", name.trim_end_matches(".json")), &data);
                i += 1;
            }
        }
    }

    // YAML files.
    let features = s.read("examples/driver/features.yaml");
    s.put("features_yaml", "driver.yaml", &features);
    s.put("features_yaml", "typed.yaml", larder_fuzz::TYPED_FEATURES_YAML.as_bytes());
    s.put(
        "features_yaml",
        "services-permissions.yaml",
        br#"
entities:
  user: {join_key: user_id, type: String}
sources:
  events: {type: file, path: s3://bucket/events/, timestamp_field: ts, field_mapping: {raw: score}}
  live: {type: push, batch_source: events}
feature_views:
  scores:
    entities: [user]
    ttl: 1h30m
    online: true
    source: live
    tags: {team: ranking}
    features: {score: Float64, seen: Set(Int64), notes: Map}
  global:
    entities: []
    ttl: 2w
    source: events
    features: {count: Int64}
feature_services:
  ranker: {features: [scores, {global: [count]}]}
"#,
    );
    for path in [
        "examples/driver/feature_store.yaml",
        "tests/fixtures/feast_driver_repo/feature_store.yaml",
        "tests/fixtures/feast_materialize_repo/feature_store.yaml",
    ] {
        let bytes = s.read(path);
        s.put("feature_store_yaml", &path.replace('/', "-"), &bytes);
    }
    s.put(
        "feature_store_yaml",
        "cluster.yaml",
        b"project: ${PROJECT}\nregistry:\n  path: s3://bucket/registry.db\n  cache_ttl_seconds: 60\nprovider: aws\n\
          online_store:\n  type: redis\n  redis_type: redis_cluster\n  connection_string: ${REDIS_ADDR},ssl=true,password=${MISSING:-x}\n\
          \x20 key_ttl_seconds: 86400\noffline_store:\n  type: file\nentity_key_serialization_version: 2\n",
    );

    // registry.db: Feast's own, and what `apply` writes for the two parquet repositories.
    let anchor = s.read("shared/tests/fixtures/feast_0_67_anchor_registry.db");
    s.put("registry_db", "feast-0.67-anchor.db", &anchor);
    for (i, repo) in larder_fuzz::parquet_repos().iter().enumerate() {
        let db = std::fs::read(repo.config.registry.path.trim_start_matches("file://")).expect("the applied registry");
        s.put("registry_db", &format!("applied-{i}.db"), &db);
    }

    // Parquet: a few example driver rows in two row groups, and the typed repository's file.
    let dir = tempfile::tempdir().expect("a temporary folder");
    let driver = dir.path().join("driver.parquet");
    larder::example_data::write_driver_stats(&driver, 3, 4, EventTime::new(1_767_261_600, 0), 7).expect("driver rows");
    s.put("parquet_materialize", "driver-3x4.parquet", &std::fs::read(&driver).expect("written"));
    s.put("parquet_materialize", "typed.parquet", &typed_parquet());

    // Stored values and event times.
    let values = [
        value(Val::DoubleVal(0.5)),
        value(Val::FloatVal(4.5)),
        value(Val::Int64Val(-3)),
        value(Val::StringVal("sf".into())),
        value(Val::BoolVal(true)),
        value(Val::StringListVal(StringList { val: vec!["a".into(), "b".into()] })),
        value(Val::Int64SetVal(Int64List { val: vec![1, 2] })),
        value(Val::ListVal(RepeatedValue { val: vec![value(Val::Int32Val(1)), value(Val::BytesVal(vec![0, 255]))] })),
        value(Val::ZonedTimestampVal(larder::proto::types::ZonedTimestamp {
            unix_timestamp: 1_767_261_600,
            zone: "Europe/Paris".into(),
        })),
    ];
    for (i, v) in values.iter().enumerate() {
        s.put("value_decode", &format!("value-{i}"), &v.encode_to_vec());
    }
    s.put("value_decode", "timestamp", &EventTime::new(1_767_261_600, 123_000_000).to_proto_bytes());

    // Tile states: moments, an exact set of distinct values, a sketch.
    {
        use larder::aggregate::distinct::Distinct;
        use larder::aggregate::{Partial, TileState};
        let mut m = TileState::EMPTY;
        m.push(2.5, 1_767_261_600_000_000);
        m.push(-1.0, 1_767_261_601_000_000);
        s.put("tile_state", "moments", &Partial::Moments(m).encode());
        let (mut exact, mut sketch) = (Distinct::default(), Distinct::default());
        for i in 0..600u64 {
            let h = larder::aggregate::distinct::id(&value(Val::Int64Val(i as i64))).expect("a value's hash");
            if i < 5 {
                exact.push(h);
            }
            sketch.push(h);
        }
        s.put("tile_state", "distinct-exact", &exact.encode());
        s.put("tile_state", "distinct-sketch", &sketch.encode());
    }

    // Entity keys.
    let keys = [
        EntityKey { join_keys: vec!["driver_id".into()], entity_values: vec![value(Val::Int64Val(1001))] },
        EntityKey {
            join_keys: vec!["driver_id".into(), "customer_id".into()],
            entity_values: vec![value(Val::Int64Val(1001)), value(Val::StringVal("c1".into()))],
        },
        EntityKey {
            join_keys: vec!["b".into(), "a".into(), "c".into()],
            entity_values: vec![
                value(Val::Int32Val(-1)),
                value(Val::BytesVal(vec![1, 2])),
                value(Val::UnixTimestampVal(1_767_261_600)),
            ],
        },
    ];
    for (i, k) in keys.iter().enumerate() {
        s.put("entity_key", &format!("key-{i}"), &k.encode_to_vec());
    }

    for (target, (files, bytes)) in &s.written {
        println!("{target}: {files} seeds, {bytes} bytes");
    }
}

/// A small file with every column of the typed repository's view, in two row groups.
fn typed_parquet() -> Vec<u8> {
    let rows = 4;
    let mut tags = ListBuilder::new(StringBuilder::new());
    for i in 0..rows {
        for j in 0..i {
            tags.values().append_value(format!("t{j}"));
        }
        tags.append(i != 2);
    }
    let mut created = StringDictionaryBuilder::<Int16Type>::new();
    for i in 0..rows {
        created.append_value(format!("2026-01-01T0{i}:30:00Z"));
    }
    let scores = LargeListArray::from_iter_primitive::<Float64Type, _, _>(
        (0..rows).map(|i| Some((0..i).map(|j| Some(j as f64 / 2.0)).collect::<Vec<_>>())),
    );
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("item_id", Arc::new(StringArray::from(vec![Some("a"), Some("b"), Some("a"), None]))),
        (
            "ts",
            Arc::new(StringArray::from(vec![
                "2026-01-01T00:00:00Z",
                "2026-01-01 01:00:00+02:00",
                "2026-01-02T00:00:00.5Z",
                "2026-01-03",
            ])),
        ),
        ("created", Arc::new(created.finish())),
        ("small", Arc::new(Int16Array::from(vec![Some(1), None, Some(-300), Some(i16::MAX)]))),
        ("unsigned", Arc::new(UInt64Array::from(vec![0, 1, u64::MAX, 5]))),
        ("half", Arc::new(Float16Array::from([1.5f32, -0.0, 65504.0, 0.1].map(half::f16::from_f32).to_vec()))),
        (
            "price",
            Arc::new(
                Decimal128Array::from(vec![12345, -1, 0, i128::from(i64::MAX)])
                    .with_precision_and_scale(38, 4)
                    .expect("decimal"),
            ),
        ),
        ("blob", Arc::new(BinaryArray::from_opt_vec(vec![Some(b"\x00\x01"), None, Some(b""), Some(b"\xff")]))),
        (
            "at",
            Arc::new(
                TimestampMillisecondArray::from(vec![0, 1_767_261_600_000, -1, 1]).with_timezone("America/New_York"),
            ),
        ),
        ("day", Arc::new(Date32Array::from(vec![0, 20_454, -719_162, 2_932_896]))),
        ("tags", Arc::new(tags.finish())),
        ("scores", Arc::new(scores)),
        ("doc", Arc::new(StringArray::from(vec![r#"{"a": 1}"#, "[]", "null", "\"x\""]))),
        ("label", Arc::new(["x", "y", "x", "z"].into_iter().collect::<DictionaryArray<Int32Type>>())),
        ("flag", Arc::new(BooleanArray::from(vec![Some(true), Some(false), None, Some(true)]))),
    ];
    let schema = Arc::new(Schema::new(
        columns.iter().map(|(name, a)| Field::new(*name, a.data_type().clone(), true)).collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(schema.clone(), columns.into_iter().map(|(_, a)| a).collect()).expect("a batch");
    let props = WriterProperties::builder().set_max_row_group_row_count(Some(2)).build();
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, schema, Some(props)).expect("a writer");
    writer.write(&batch).expect("written");
    writer.close().expect("closed");
    out
}
