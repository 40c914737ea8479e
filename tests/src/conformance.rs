//! One conformance suite for every online store: the same async functions run against the
//! in-memory store, a standalone Redis, a 3-primary Redis Cluster and a TLS + password Redis
//! (one test file per backend, `tests/online_*.rs`, each calling [`conformance_tests!`]).
//!
//! Each function takes a [`Subject`]: the store under test, a [`Raw`] view of the stored
//! hashes that bypasses the store (to check bytes and to plant what other writers leave), and
//! the peers that must stay up meanwhile. Functions use their own project name, so the keys
//! of one never meet another's even when they share a server.

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use larder::config::RedisType;
use larder::error::Error;
use larder::keys;
use larder::online::memory::MemoryStore;
use larder::online::redis::{RedisOptions, RedisStore};
use larder::online::{
    Cell, KeyRead, OnlineStore, ViewRead, ViewRow, ViewWrite, WriteMode, WriteRow, WriteStats, read_views,
};
use larder::proto::types::{self as pt, Value, value::Val};
use larder::registry::{FeatureView, Registry};
use larder::time::EventTime;
use larder::value;

use crate::peers::{RedisCluster, RedisServer};

pub mod windows;
pub use windows::{
    aggregation_tiles_follow_the_rule, aggregations_are_read_with_the_features, distinct_sketches_follow_the_rule,
};

/// The stored hashes, seen without the store.
pub trait Raw: Send + Sync {
    /// Every field of `key` (HGETALL); `None` when the key does not exist.
    fn hash(&self, key: &[u8]) -> Option<BTreeMap<Vec<u8>, Vec<u8>>>;
    /// Sets one field (HSET), as another writer could.
    fn set_field(&self, key: &[u8], field: &[u8], value: &[u8]);
    /// Time left before `key` expires (PTTL); `None` when it has no expiry or does not exist.
    fn expires_in(&self, key: &[u8]) -> Option<Duration>;
}

/// What a conformance function runs against.
pub struct Subject {
    pub store: Arc<dyn OnlineStore>,
    pub raw: Box<dyn Raw>,
    /// Servers kept running while the subject lives.
    pub peers: Box<dyn Any + Send + Sync>,
}

pub struct MemoryRaw(pub Arc<MemoryStore>);

impl Raw for MemoryRaw {
    fn hash(&self, key: &[u8]) -> Option<BTreeMap<Vec<u8>, Vec<u8>>> {
        self.0.hash(key).map(|h| h.into_iter().map(|(k, v)| (k, v.to_vec())).collect())
    }
    fn set_field(&self, key: &[u8], field: &[u8], value: &[u8]) {
        self.0.set_field(key, field, value)
    }
    fn expires_in(&self, key: &[u8]) -> Option<Duration> {
        self.0.expires_in(key)
    }
}

/// [`Raw`] over a synchronous redis connection (standalone, TLS or cluster).
pub struct RedisRaw(Mutex<Box<dyn redis::ConnectionLike + Send>>);

impl RedisRaw {
    pub fn new(conn: impl redis::ConnectionLike + Send + 'static) -> Self {
        RedisRaw(Mutex::new(Box::new(conn)))
    }
}

impl Raw for RedisRaw {
    fn hash(&self, key: &[u8]) -> Option<BTreeMap<Vec<u8>, Vec<u8>>> {
        let mut c = self.0.lock().unwrap();
        let h: BTreeMap<Vec<u8>, Vec<u8>> = redis::cmd("HGETALL").arg(key).query(&mut **c).expect("HGETALL");
        (!h.is_empty()).then_some(h)
    }
    fn set_field(&self, key: &[u8], field: &[u8], value: &[u8]) {
        let mut c = self.0.lock().unwrap();
        let _: i64 = redis::cmd("HSET").arg(key).arg(field).arg(value).query(&mut **c).expect("HSET");
    }
    fn expires_in(&self, key: &[u8]) -> Option<Duration> {
        let mut c = self.0.lock().unwrap();
        let ms: i64 = redis::cmd("PTTL").arg(key).query(&mut **c).expect("PTTL");
        (ms >= 0).then(|| Duration::from_millis(ms as u64))
    }
}

pub fn memory() -> Subject {
    let store = Arc::new(MemoryStore::new());
    Subject { store: store.clone(), raw: Box::new(MemoryRaw(store)), peers: Box::new(()) }
}

/// A subject on a Redis server the caller started (plain or TLS), through its Feast
/// connection_string.
pub fn on_server(server: Arc<RedisServer>) -> Subject {
    let store = RedisStore::open(&server.connection_string(), RedisType::Redis, RedisOptions::default())
        .expect("open the store");
    Subject { store: Arc::new(store), raw: Box::new(RedisRaw::new(server.client())), peers: Box::new(server) }
}

pub fn on_cluster(cluster: Arc<RedisCluster>) -> Subject {
    let store = RedisStore::open(&cluster.connection_string(), RedisType::RedisCluster, RedisOptions::default())
        .expect("open the store");
    Subject { store: Arc::new(store), raw: Box::new(RedisRaw::new(cluster.client())), peers: Box::new(cluster) }
}

/// A peer shared by the tests of one file while any of them runs, stopped (dropped) when the
/// last one finishes: a cluster costs seconds to form, and a static would never be dropped.
pub fn shared<T: Send + Sync + 'static>(slot: &'static Mutex<Weak<T>>, start: impl FnOnce() -> T) -> Arc<T> {
    let mut weak = slot.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(live) = weak.upgrade() {
        return live;
    }
    let live = Arc::new(start());
    *weak = Arc::downgrade(&live);
    live
}

/// Generates one `#[tokio::test]` per conformance function, each on a fresh subject made by
/// `$make` (an expression evaluated per test).
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@each $make;
            round_trip_every_value_type,
            null_and_missing,
            newest_wins_across_batches,
            newest_wins_within_a_batch,
            stored_times_are_read_like_feast,
            times_compared_at_varint_boundaries,
            skip_dedup_overwrites,
            concurrent_writers_end_with_the_newest,
            key_ttl_expires_the_whole_hash,
            views_sharing_an_entity_do_not_clobber,
            several_views_in_one_write,
            multi_join_key_entities,
            large_batches_are_complete,
            mixed_outcomes_across_many_keys,
            wide_views_are_written_whole,
            empty_and_invalid_input,
            sample_keys_of_one_project,
            aggregation_tiles_follow_the_rule,
            aggregations_are_read_with_the_features,
            distinct_sketches_follow_the_rule,
        );
    };
    (@each $make:expr; $($name:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let subject: $crate::conformance::Subject = $make;
                $crate::conformance::$name(&subject).await;
            }
        )+
    };
}

/// Calls of each command the server has run so far, scripts' own calls included.
pub fn command_calls(c: &mut redis::Connection, command: &str) -> u64 {
    let info: String = redis::cmd("INFO").arg("commandstats").query(c).unwrap();
    let prefix = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |rest| rest.split(',').next().unwrap().parse().unwrap())
}

/// One feature each of views `a` and `b`.
pub fn two_fields() -> [[[u8; 4]; 1]; 2] {
    [[larder::keys::feature_field("a", "x")], [larder::keys::feature_field("b", "x")]]
}

/// A write of views `a` and `b` (the fields of [`two_fields`]): a row per key in each, all at
/// `secs`.
pub fn two_views<'a>(fields: &'a [[[u8; 4]; 1]; 2], keys: &[&str], secs: i64, ttl: Option<u64>) -> Vec<ViewWrite<'a>> {
    [b"_ts:a".as_slice(), b"_ts:b"]
        .into_iter()
        .zip(fields)
        .map(|(ts_field, fields)| ViewWrite {
            ts_field,
            fields,
            rows: keys
                .iter()
                .map(|k| WriteRow {
                    key: k.as_bytes().to_vec(),
                    event_time: EventTime::new(secs, 0),
                    values: vec![vec![0x20, 7]],
                })
                .collect(),
            mode: WriteMode::NewestWins,
            key_ttl_seconds: ttl,
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Building views, keys and rows.
// ---------------------------------------------------------------------------------------------

/// A registry with the given views, each `(name, join keys, features)`; types use the
/// `features.yaml` spelling. Entities are named after their join keys.
/// `(name, type)` pairs: join keys or features.
pub type Columns<'a> = &'a [(&'a str, &'a str)];

pub fn registry(project: &str, views: &[(&str, Columns<'_>, Columns<'_>)]) -> Registry {
    let mut yaml = String::from("entities:\n");
    let mut seen = Vec::new();
    for (_, join_keys, _) in views {
        for (k, ty) in *join_keys {
            if !seen.contains(k) {
                seen.push(*k);
                yaml.push_str(&format!("  {k}: {{join_key: {k}, type: {ty}}}\n"));
            }
        }
    }
    yaml.push_str("sources:\n  src: {type: push, batch_source: files}\n  files: {type: file, path: data/x.parquet, timestamp_field: ts}\n");
    yaml.push_str("feature_views:\n");
    for (name, join_keys, features) in views {
        let entities: Vec<&str> = join_keys.iter().map(|(k, _)| *k).collect();
        yaml.push_str(&format!("  {name}:\n    entities: [{}]\n    source: src\n    features:\n", entities.join(", ")));
        for (f, ty) in *features {
            yaml.push_str(&format!("      {f}: \"{ty}\"\n"));
        }
    }
    larder::registry::yaml::parse(&yaml, "conformance.yaml", project, 3).unwrap_or_else(|e| panic!("{e}\n{yaml}"))
}

fn view<'r>(reg: &'r Registry, name: &str) -> &'r FeatureView {
    reg.view(name).unwrap()
}

fn int64(i: i64) -> Value {
    Value { val: Some(Val::Int64Val(i)) }
}

fn string(s: &str) -> Value {
    Value { val: Some(Val::StringVal(s.to_string())) }
}

fn double(d: f64) -> Value {
    Value { val: Some(Val::DoubleVal(d)) }
}

/// The Redis key of entity `id` for a view keyed by one int64 join key.
fn key(v: &FeatureView, project: &str, id: i64) -> Vec<u8> {
    v.layout.key_encoder.redis_key(&[&int64(id)], project).unwrap()
}

fn t(secs: i64, nanos: u32) -> EventTime {
    EventTime::new(secs, nanos)
}

async fn write(s: &Subject, v: &FeatureView, rows: Vec<WriteRow>, mode: WriteMode, ttl: Option<u64>) -> WriteStats {
    s.store.write(&ViewWrite::for_view(v, rows, mode, ttl)).await.unwrap_or_else(|e| panic!("write: {e}"))
}

/// One row: the view's features in order, each a double `base + i`.
fn row(k: &[u8], time: EventTime, base: f64, n: usize) -> WriteRow {
    let values: Vec<Value> = (0..n).map(|i| double(base + i as f64)).collect();
    WriteRow::encode(k.to_vec(), time, &values)
}

/// Reads every feature of `v` for `keys`.
async fn read_all(s: &Subject, v: &FeatureView, keys: &[Vec<u8>]) -> Vec<Option<ViewRow>> {
    let features: Vec<usize> = (0..v.features.len()).collect();
    let reads = [ViewRead { view: v, features: &features, keys }];
    read_views(&*s.store, &reads).await.unwrap_or_else(|e| panic!("read: {e}")).remove(0)
}

async fn read_one(s: &Subject, v: &FeatureView, k: &[u8]) -> Option<ViewRow> {
    read_all(s, v, &[k.to_vec()]).await.remove(0)
}

/// The row a [`row`] call wrote, as read back.
fn expected(time: EventTime, base: f64, n: usize) -> ViewRow {
    ViewRow { event_time: time, cells: (0..n).map(|i| Cell::Value(double(base + i as f64))).collect() }
}

// ---------------------------------------------------------------------------------------------
// The suite.
// ---------------------------------------------------------------------------------------------

/// One value of every kind a `feast.types.Value` can hold, with the type it is declared as.
pub fn every_value() -> Vec<(&'static str, &'static str, Value)> {
    let v = |val: Val| Value { val: Some(val) };
    let all_bytes: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let mut map = HashMap::new();
    map.insert("a".to_string(), int64(1));
    map.insert("ünï".to_string(), string("ß"));
    let pmap = pt::Map { val: map };
    let strings = pt::StringList { val: vec!["x".into(), "".into(), "日本".into()] };
    let scalar_map = pt::ScalarMap {
        val: vec![
            pt::ScalarMapEntry {
                key: Some(pt::MapKey { key: Some(pt::map_key::Key::Int64Key(-3)) }),
                value: Some(double(2.5)),
            },
            pt::ScalarMapEntry {
                key: Some(pt::MapKey { key: Some(pt::map_key::Key::BytesKey(vec![0, 1])) }),
                value: Some(string("b")),
            },
        ],
    };
    vec![
        ("f_bytes", "Bytes", v(Val::BytesVal(all_bytes))),
        ("f_string", "String", v(Val::StringVal("hé\u{0}llo, 世界 🚀".into()))),
        ("f_empty_string", "String", v(Val::StringVal(String::new()))),
        ("f_int32", "Int32", v(Val::Int32Val(i32::MIN))),
        ("f_int64", "Int64", v(Val::Int64Val(i64::MAX))),
        ("f_int64_zero", "Int64", v(Val::Int64Val(0))),
        ("f_double", "Float64", v(Val::DoubleVal(-1.0e-300))),
        ("f_double_inf", "Float64", v(Val::DoubleVal(f64::INFINITY))),
        ("f_float", "Float32", v(Val::FloatVal(0.1))),
        ("f_bool", "Bool", v(Val::BoolVal(false))),
        ("f_unix_ts", "UnixTimestamp", v(Val::UnixTimestampVal(1_700_000_000))),
        ("f_bytes_list", "Array(Bytes)", v(Val::BytesListVal(pt::BytesList { val: vec![vec![], vec![0xff; 3]] }))),
        ("f_string_list", "Array(String)", v(Val::StringListVal(strings.clone()))),
        ("f_int32_list", "Array(Int32)", v(Val::Int32ListVal(pt::Int32List { val: vec![-1, 0, i32::MAX] }))),
        ("f_int64_list", "Array(Int64)", v(Val::Int64ListVal(pt::Int64List { val: vec![i64::MIN, 1, 2] }))),
        ("f_double_list", "Array(Float64)", v(Val::DoubleListVal(pt::DoubleList { val: vec![1.0, -2.5, f64::MAX] }))),
        ("f_float_list", "Array(Float32)", v(Val::FloatListVal(pt::FloatList { val: vec![0.5, f32::MIN_POSITIVE] }))),
        ("f_bool_list", "Array(Bool)", v(Val::BoolListVal(pt::BoolList { val: vec![true, false, true] }))),
        (
            "f_unix_ts_list",
            "Array(UnixTimestamp)",
            v(Val::UnixTimestampListVal(pt::Int64List { val: vec![0, -1, 4_102_444_800] })),
        ),
        ("f_empty_list", "Array(Int64)", v(Val::Int64ListVal(pt::Int64List { val: vec![] }))),
        ("f_map", "Map", v(Val::MapVal(pmap.clone()))),
        ("f_map_list", "MAP_LIST", v(Val::MapListVal(pt::MapList { val: vec![pmap.clone(), pt::Map::default()] }))),
        ("f_bytes_set", "Set(Bytes)", v(Val::BytesSetVal(pt::BytesList { val: vec![vec![1], vec![2]] }))),
        ("f_string_set", "Set(String)", v(Val::StringSetVal(pt::StringList { val: vec!["a".into(), "b".into()] }))),
        ("f_int32_set", "Set(Int32)", v(Val::Int32SetVal(pt::Int32List { val: vec![3, 4] }))),
        ("f_int64_set", "Set(Int64)", v(Val::Int64SetVal(pt::Int64List { val: vec![5, 6] }))),
        ("f_double_set", "Set(Float64)", v(Val::DoubleSetVal(pt::DoubleList { val: vec![0.25] }))),
        ("f_float_set", "Set(Float32)", v(Val::FloatSetVal(pt::FloatList { val: vec![0.75] }))),
        ("f_bool_set", "Set(Bool)", v(Val::BoolSetVal(pt::BoolList { val: vec![true] }))),
        ("f_unix_ts_set", "Set(UnixTimestamp)", v(Val::UnixTimestampSetVal(pt::Int64List { val: vec![7] }))),
        ("f_json", "Json", v(Val::JsonVal(r#"{"a": [1, 2, null]}"#.into()))),
        ("f_json_list", "JSON_LIST", v(Val::JsonListVal(pt::StringList { val: vec!["1".into(), "{}".into()] }))),
        ("f_struct", "Struct", v(Val::StructVal(pmap.clone()))),
        ("f_struct_list", "STRUCT_LIST", v(Val::StructListVal(pt::MapList { val: vec![pmap] }))),
        ("f_uuid", "Uuid", v(Val::UuidVal("123e4567-e89b-12d3-a456-426614174000".into()))),
        ("f_time_uuid", "TimeUuid", v(Val::TimeUuidVal("c232ab00-9414-11ec-b3c8-9f6bdeced846".into()))),
        ("f_uuid_list", "UUID_LIST", v(Val::UuidListVal(strings.clone()))),
        ("f_time_uuid_list", "TIME_UUID_LIST", v(Val::TimeUuidListVal(strings.clone()))),
        ("f_uuid_set", "UUID_SET", v(Val::UuidSetVal(strings.clone()))),
        ("f_time_uuid_set", "TIME_UUID_SET", v(Val::TimeUuidSetVal(strings.clone()))),
        (
            "f_value_list",
            "VALUE_LIST",
            v(Val::ListVal(pt::RepeatedValue { val: vec![int64(1), string("two"), Value::default()] })),
        ),
        ("f_value_set", "VALUE_SET", v(Val::SetVal(pt::RepeatedValue { val: vec![double(3.0)] }))),
        ("f_decimal", "Decimal", v(Val::DecimalVal("-12345678901234567890.000000001".into()))),
        ("f_decimal_list", "DECIMAL_LIST", v(Val::DecimalListVal(pt::StringList { val: vec!["1.5".into()] }))),
        ("f_decimal_set", "DECIMAL_SET", v(Val::DecimalSetVal(pt::StringList { val: vec!["2.5".into()] }))),
        ("f_scalar_map", "SCALAR_MAP", v(Val::ScalarMapVal(scalar_map))),
        (
            "f_zoned_ts",
            "ZONED_TIMESTAMP",
            v(Val::ZonedTimestampVal(pt::ZonedTimestamp {
                unix_timestamp: 1_700_000_000,
                zone: "Europe/Paris".into(),
            })),
        ),
    ]
}

/// Every value kind is stored as Feast stores it (field = murmur3 of `view:feature`, value =
/// the serialized `Value`, `_ts:<view>` = the serialized Timestamp) and read back unchanged.
pub async fn round_trip_every_value_type(s: &Subject) {
    let project = "round_trip";
    let values = every_value();
    let features: Vec<(&str, &str)> = values.iter().map(|(n, ty, _)| (*n, *ty)).collect();
    let reg = registry(project, &[("all_types", &[("id", "Int64")], &features)]);
    let v = view(&reg, "all_types");
    let k = key(v, project, 1);
    let typed: Vec<Value> = values.iter().map(|(_, _, val)| val.clone()).collect();
    let when = t(1_700_000_123, 456_789_000);
    let stats = write(s, v, vec![WriteRow::encode(k.clone(), when, &typed)], WriteMode::NewestWins, None).await;
    assert_eq!(stats, WriteStats { written: 1, skipped: 0 });

    let got = read_one(s, v, &k).await.expect("the row just written");
    assert_eq!(got.event_time, when);
    for ((name, _, want), cell) in values.iter().zip(&got.cells) {
        assert_eq!(cell, &Cell::Value(want.clone()), "feature {name}");
    }

    let hash = s.raw.hash(&k).expect("the hash exists");
    assert_eq!(hash.len(), values.len() + 1, "one field per feature plus _ts");
    assert_eq!(hash[&b"_ts:all_types"[..]], when.to_proto_bytes());
    for (name, _, want) in &values {
        let field = keys::feature_field("all_types", name);
        let stored = &hash[&field[..]];
        assert_eq!(value::decode(stored).unwrap(), *want, "feature {name}");
        if !matches!(want.val, Some(Val::MapVal(_) | Val::StructVal(_) | Val::MapListVal(_) | Val::StructListVal(_))) {
            // Maps may serialize their entries in any order; everything else has one encoding.
            assert_eq!(*stored, value::encode(want), "feature {name}");
        }
    }
}

/// A missing entity, a present-but-null feature and a feature with no field are three
/// different answers.
pub async fn null_and_missing(s: &Subject) {
    let project = "nulls";
    let reg = registry(
        project,
        &[
            ("v", &[("id", "Int64")], &[("a", "Int64"), ("b", "String")]),
            ("other", &[("id", "Int64")], &[("x", "Int64")]),
        ],
    );
    // The same view after a feature was added to it.
    let grown = registry(project, &[("v", &[("id", "Int64")], &[("a", "Int64"), ("b", "String"), ("c", "Float64")])]);
    let (v, other) = (view(&reg, "v"), view(&reg, "other"));
    let (k1, k2, k3) = (key(v, project, 1), key(v, project, 2), key(v, project, 3));

    // a: Feast's null (an empty Value, zero bytes); b: an explicit null_val.
    let null_val = Value { val: Some(Val::NullVal(0)) };
    write(
        s,
        v,
        vec![WriteRow::encode(k1.clone(), t(10, 0), &[value::NULL, null_val.clone()])],
        WriteMode::NewestWins,
        None,
    )
    .await;
    // k3 holds only another view's row.
    write(s, other, vec![WriteRow::encode(k3.clone(), t(10, 0), &[int64(5)])], WriteMode::NewestWins, None).await;

    let rows = read_all(s, v, &[k1.clone(), k2.clone(), k3.clone()]).await;
    assert_eq!(rows[0], Some(ViewRow { event_time: t(10, 0), cells: vec![Cell::Null, Cell::Null] }));
    assert_eq!(rows[1], None, "an entity never written has no row");
    assert_eq!(rows[2], None, "a hash holding only other views' fields has no row for this view");

    let hash = s.raw.hash(&k1).unwrap();
    assert_eq!(hash[&keys::feature_field("v", "a")[..]], Vec::<u8>::new(), "a null is stored as an empty string");
    assert_eq!(hash[&keys::feature_field("v", "b")[..]], value::encode(&null_val));
    assert!(s.raw.hash(&k2).is_none());

    let gv = view(&grown, "v");
    let row = read_one(s, gv, &k1).await.expect("row present");
    assert_eq!(row.cells, vec![Cell::Null, Cell::Null, Cell::Missing], "a feature added after the write has no field");
}

/// Across batches: an older and an equal event are skipped (the stored values stay, even when
/// the equal one carries different values); a later one, by a nanosecond, wins.
pub async fn newest_wins_across_batches(s: &Subject) {
    let project = "newest_across";
    let reg = registry(project, &[("v", &[("id", "Int64")], &[("a", "Float64"), ("b", "Float64")])]);
    let v = view(&reg, "v");
    let k = key(v, project, 7);
    let base = t(1_700_000_000, 500);

    let cases: &[(EventTime, f64, bool)] = &[
        (base, 1.0, true),
        (t(1_699_999_999, 999_999_999), 2.0, false),
        (base, 3.0, false),
        (t(1_700_000_000, 499), 4.0, false),
        (t(1_700_000_000, 501), 5.0, true),
        (t(1_700_000_001, 0), 6.0, true),
        (t(1_600_000_000, 0), 7.0, false),
    ];
    let mut newest = (base, 1.0);
    for (i, &(when, val, wins)) in cases.iter().enumerate() {
        let stats = write(s, v, vec![row(&k, when, val, 2)], WriteMode::NewestWins, None).await;
        let want = if wins { WriteStats { written: 1, skipped: 0 } } else { WriteStats { written: 0, skipped: 1 } };
        assert_eq!(stats, want, "case {i}: {when}");
        if wins {
            newest = (when, val);
        }
        assert_eq!(read_one(s, v, &k).await, Some(expected(newest.0, newest.1, 2)), "after case {i}");
    }
    assert_eq!(s.raw.hash(&k).unwrap()[&b"_ts:v"[..]], newest.0.to_proto_bytes());
}

/// Within one batch the newest row per key wins (the first on ties), and a batch never
/// overwrites a newer stored row.
pub async fn newest_wins_within_a_batch(s: &Subject) {
    let project = "newest_within";
    let reg = registry(project, &[("v", &[("id", "Int64")], &[("a", "Float64")])]);
    let v = view(&reg, "v");
    let (k1, k2, k3) = (key(v, project, 1), key(v, project, 2), key(v, project, 3));

    let rows = vec![
        row(&k1, t(10, 0), 1.0, 1),
        row(&k2, t(7, 0), 2.0, 1),
        row(&k1, t(5, 0), 3.0, 1),
        row(&k1, t(20, 0), 4.0, 1),
        row(&k3, t(3, 0), 5.0, 1),
        row(&k2, t(7, 0), 6.0, 1),
        row(&k1, t(20, 0), 7.0, 1),
    ];
    let stats = write(s, v, rows, WriteMode::NewestWins, None).await;
    assert_eq!(stats, WriteStats { written: 3, skipped: 4 });
    let got = read_all(s, v, &[k1.clone(), k2.clone(), k3.clone()]).await;
    assert_eq!(
        got,
        vec![Some(expected(t(20, 0), 4.0, 1)), Some(expected(t(7, 0), 2.0, 1)), Some(expected(t(3, 0), 5.0, 1))]
    );

    // A second batch against what is stored: equal (skip), newer (write), older (skip).
    let rows = vec![
        row(&k1, t(20, 0), 8.0, 1),
        row(&k2, t(8, 0), 9.0, 1),
        row(&k3, t(1, 0), 10.0, 1),
        row(&k2, t(7, 5), 11.0, 1),
    ];
    let stats = write(s, v, rows, WriteMode::NewestWins, None).await;
    assert_eq!(stats, WriteStats { written: 1, skipped: 3 });
    let got = read_all(s, v, &[k1, k2, k3]).await;
    assert_eq!(
        got,
        vec![Some(expected(t(20, 0), 4.0, 1)), Some(expected(t(8, 0), 9.0, 1)), Some(expected(t(3, 0), 5.0, 1))]
    );
}

/// `google.protobuf.Timestamp` bytes as protobuf writes them (fields skipped when zero).
pub fn ts_bytes(secs: i64, nanos: i32) -> Vec<u8> {
    fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    let mut out = Vec::new();
    if secs != 0 {
        out.push(0x08);
        varint(&mut out, secs as u64);
    }
    if nanos != 0 {
        out.push(0x10);
        varint(&mut out, nanos as i64 as u64);
    }
    out
}

/// Stored `_ts` values other writers may leave are compared as Feast (and protobuf) read them:
/// the epoch, a missing or unreadable time count as nothing stored; negative seconds, out of
/// range nanos, reordered and unknown fields are understood.
pub async fn stored_times_are_read_like_feast(s: &Subject) {
    let project = "stored_times";
    let reg = registry(project, &[("v", &[("id", "Int64")], &[("a", "Float64")])]);
    let v = view(&reg, "v");
    let mut reordered = vec![0x10];
    reordered.extend(&ts_bytes(0, 7)[1..]);
    reordered.extend(ts_bytes(1000, 0));
    let mut unknown = ts_bytes(1000, 7);
    unknown.extend([0x18, 0x05, 0x22, 0x02, 0xaa, 0xbb, 0x2d, 1, 2, 3, 4, 0x31, 1, 2, 3, 4, 5, 6, 7, 8]);
    // (stored _ts bytes, incoming time, written?)
    let cases: Vec<(Vec<u8>, EventTime, bool)> = vec![
        (Vec::new(), t(-5, 0), true),
        (ts_bytes(0, 0), t(0, 0), true),
        (vec![0xff, 0xff], t(1, 0), true),
        (vec![0x08], t(1, 0), true),
        (vec![0x0a, 0x01, 0x00], t(1, 0), true),
        (ts_bytes(-100, 0), t(-200, 0), false),
        (ts_bytes(-100, 0), t(-100, 0), false),
        (ts_bytes(-100, 0), t(-50, 0), true),
        (ts_bytes(-1, 999_999_999), t(-1, 999_999_999), false),
        (ts_bytes(10, 1_500_000_000), t(11, 400_000_000), false),
        (ts_bytes(10, 1_500_000_000), t(11, 500_000_001), true),
        (ts_bytes(10, -1), t(9, 999_999_999), false),
        (ts_bytes(10, -1), t(10, 0), true),
        (reordered.clone(), t(1000, 7), false),
        (reordered, t(1000, 8), true),
        (unknown.clone(), t(1000, 7), false),
        (unknown, t(1000, 8), true),
        // What Feast's Python writes for 2024-01-01T12:00:00.123456Z.
        (vec![0x08, 0xc0, 0xd2, 0xca, 0xac, 0x06, 0x10, 0x80, 0x94, 0xef, 0x3a], t(1_704_110_400, 123_456_000), false),
        (vec![0x08, 0xc0, 0xd2, 0xca, 0xac, 0x06, 0x10, 0x80, 0x94, 0xef, 0x3a], t(1_704_110_400, 123_457_000), true),
        (ts_bytes(i64::from(i32::MAX) * 100, 0), t(i64::from(i32::MAX) * 100 - 1, 0), false),
    ];
    for (i, (stored, incoming, wins)) in cases.into_iter().enumerate() {
        let k = key(v, project, i as i64);
        s.raw.set_field(&k, b"_ts:v", &stored);
        s.raw.set_field(&k, &keys::feature_field("v", "a"), &value::encode(&double(-1.0)));
        let stats = write(s, v, vec![row(&k, incoming, 100.0, 1)], WriteMode::NewestWins, None).await;
        assert_eq!(stats.written == 1, wins, "case {i}: stored {stored:02x?}, incoming {incoming:?}");
        let hash = s.raw.hash(&k).unwrap();
        let a = value::decode(&hash[&keys::feature_field("v", "a")[..]]).unwrap();
        assert_eq!(a, double(if wins { 100.0 } else { -1.0 }), "case {i}");
        let ts = &hash[&b"_ts:v"[..]];
        assert_eq!(*ts, if wins { incoming.to_proto_bytes() } else { stored }, "case {i}");
    }

    // A row written at the epoch is itself "nothing stored": the next write at the epoch lands.
    let k = key(v, project, 1000);
    assert_eq!(write(s, v, vec![row(&k, EventTime::EPOCH, 1.0, 1)], WriteMode::NewestWins, None).await.written, 1);
    assert_eq!(write(s, v, vec![row(&k, EventTime::EPOCH, 2.0, 1)], WriteMode::NewestWins, None).await.written, 1);
    assert_eq!(read_one(s, v, &k).await, Some(expected(EventTime::EPOCH, 2.0, 1)));
}

/// Stored and incoming times one nanosecond or one second apart, around every width their
/// varints can take (where the script's fast decoder for the usual five-byte seconds hands
/// over to its general one), written in one batch: each row lands exactly when it is later.
pub async fn times_compared_at_varint_boundaries(s: &Subject) {
    let project = "varint_edges";
    let reg = registry(project, &[("v", &[("id", "Int64")], &[("a", "Float64")])]);
    let v = view(&reg, "v");
    let seconds = [1, 127, 128, (1 << 28) - 1, 1 << 28, 1_704_110_400, (1 << 35) - 1, 1 << 35, -1, -(1 << 28)];
    let nanos = [0, 1, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152, 268_435_455, 268_435_456, 999_999_999];
    let step = |secs: i64, n: i64| {
        let total = i128::from(secs) * 1_000_000_000 + i128::from(n);
        t(total.div_euclid(1_000_000_000) as i64, total.rem_euclid(1_000_000_000) as u32)
    };
    let (mut rows, mut cases) = (Vec::new(), Vec::new());
    for &secs in &seconds {
        for &n in &nanos {
            let (stored, bytes) = (t(secs, n as u32), ts_bytes(secs, n as i32));
            for incoming in [step(secs, n - 1), step(secs, n + 1), step(secs - 1, n), step(secs + 1, n), stored] {
                let k = key(v, project, cases.len() as i64);
                s.raw.set_field(&k, b"_ts:v", &bytes);
                rows.push(row(&k, incoming, 100.0, 1));
                cases.push((k, stored, incoming, bytes.clone()));
            }
        }
    }
    let wins = cases.iter().filter(|(_, stored, incoming, _)| incoming > stored).count();
    let stats = write(s, v, rows, WriteMode::NewestWins, None).await;
    assert_eq!((stats.written, stats.skipped), (wins, cases.len() - wins));
    for (k, stored, incoming, bytes) in &cases {
        let hash = s.raw.hash(k).unwrap();
        let want = if incoming > stored { incoming.to_proto_bytes() } else { bytes.clone() };
        assert_eq!(hash[&b"_ts:v"[..]], want, "stored {stored:?}, incoming {incoming:?}");
    }
}

/// `skip_dedup: true`: rows are written whatever is stored; in a batch the last row of a key
/// is what remains, as if each were written in turn.
pub async fn skip_dedup_overwrites(s: &Subject) {
    let project = "skip_dedup";
    let reg = registry(project, &[("v", &[("id", "Int64")], &[("a", "Float64"), ("b", "Float64")])]);
    let v = view(&reg, "v");
    let (k1, k2) = (key(v, project, 1), key(v, project, 2));
    write(s, v, vec![row(&k1, t(100, 0), 1.0, 2)], WriteMode::NewestWins, None).await;
    let stats = write(s, v, vec![row(&k1, t(50, 0), 2.0, 2)], WriteMode::Overwrite, None).await;
    assert_eq!(stats, WriteStats { written: 1, skipped: 0 });
    assert_eq!(read_one(s, v, &k1).await, Some(expected(t(50, 0), 2.0, 2)));

    let rows = vec![
        row(&k2, t(9, 0), 3.0, 2),
        row(&k1, t(1, 0), 4.0, 2),
        row(&k2, t(3, 0), 5.0, 2),
        row(&k2, t(3, 0), 6.0, 2),
    ];
    let stats = write(s, v, rows, WriteMode::Overwrite, Some(3600)).await;
    assert_eq!(stats, WriteStats { written: 4, skipped: 0 });
    let got = read_all(s, v, &[k1, k2.clone()]).await;
    assert_eq!(got, vec![Some(expected(t(1, 0), 4.0, 2)), Some(expected(t(3, 0), 6.0, 2))]);
    assert_eq!(s.raw.hash(&k2).unwrap()[&b"_ts:v"[..]], t(3, 0).to_proto_bytes());
}

/// Several tasks push many rows with different times to the same keys at once; each key ends
/// with its newest row, and every row is counted exactly once as written or skipped.
pub async fn concurrent_writers_end_with_the_newest(s: &Subject) {
    let project = "concurrent";
    let reg = Arc::new(registry(project, &[("v", &[("id", "Int64")], &[("a", "Float64"), ("b", "Float64")])]));
    let tasks = 8u32;
    let per_task = 150u32;
    let ids = [1i64, 2, 3];
    let mut handles = Vec::new();
    for task in 0..tasks {
        let store = s.store.clone();
        let reg = reg.clone();
        handles.push(tokio::spawn(async move {
            let v = reg.view("v").unwrap();
            let mut stats = WriteStats::default();
            for i in 0..per_task {
                // Times interleave across tasks and each task goes back and forth in time.
                let step = if i % 2 == 0 { i } else { per_task - i };
                let secs = 1_000 + i64::from(step * tasks + task);
                let batch: Vec<WriteRow> = ids
                    .iter()
                    .take(1 + (i as usize % ids.len()))
                    .map(|&id| row(&key(v, "concurrent", id), t(secs, id as u32), secs as f64, 2))
                    .collect();
                let w = ViewWrite::for_view(v, batch, WriteMode::NewestWins, None);
                stats += store.write(&w).await.unwrap_or_else(|e| panic!("write: {e}"));
            }
            stats
        }));
    }
    let mut total = WriteStats::default();
    for h in handles {
        total += h.await.unwrap();
    }
    let rows_sent: usize = (0..per_task).map(|i| 1 + (i as usize % ids.len())).sum::<usize>() * tasks as usize;
    assert_eq!(total.written + total.skipped, rows_sent);
    assert!(total.written >= ids.len());

    let v = reg.view("v").unwrap();
    let keys: Vec<Vec<u8>> = ids.iter().map(|&id| key(v, project, id)).collect();
    let got = read_all(s, v, &keys).await;
    for (&id, row) in ids.iter().zip(got) {
        // The greatest time any task sent for this key.
        let newest = (0..tasks)
            .flat_map(|task| {
                (0..per_task)
                    .filter(move |i| (1 + (*i as usize % ids.len())) > ids.iter().position(|x| *x == id).unwrap())
                    .map(move |i| {
                        let step = if i % 2 == 0 { i } else { per_task - i };
                        1_000 + i64::from(step * tasks + task)
                    })
            })
            .max()
            .unwrap();
        assert_eq!(row, Some(expected(t(newest, id as u32), newest as f64, 2)), "key {id}");
    }
}

/// Polls `done` every 20 ms until it holds; fails naming `what` after `within`.
pub async fn wait_until(what: &str, within: Duration, mut done: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !done().await {
        assert!(tokio::time::Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `key_ttl_seconds` expires the whole entity hash; a write of any view renews it for all.
/// Checked on the expiry the store reports (PTTL), so a slow machine cannot make it flaky.
pub async fn key_ttl_expires_the_whole_hash(s: &Subject) {
    let project = "ttl";
    let reg = registry(
        project,
        &[("a", &[("id", "Int64")], &[("x", "Float64")]), ("b", &[("id", "Int64")], &[("y", "Float64")])],
    );
    let (va, vb) = (view(&reg, "a"), view(&reg, "b"));
    let (k, kept) = (key(va, project, 1), key(va, project, 2));
    let secs = Duration::from_secs;
    write(s, va, vec![row(&k, t(10, 0), 1.0, 1)], WriteMode::NewestWins, Some(2)).await;
    write(s, va, vec![row(&kept, t(10, 0), 1.0, 1)], WriteMode::NewestWins, None).await;
    assert!(read_one(s, va, &k).await.is_some());
    let left = s.raw.expires_in(&k).expect("the key carries the setting's expiry");
    assert!(left <= secs(2) && left > Duration::ZERO, "{left:?}");
    assert_eq!(s.raw.expires_in(&kept), None, "a write without the setting sets no expiry");
    // 0 seconds is no setting (feature_store.yaml's default), not an expiry now.
    let zero = key(va, project, 3);
    write(s, va, vec![row(&zero, t(10, 0), 1.0, 1)], WriteMode::NewestWins, Some(0)).await;
    assert_eq!(s.raw.expires_in(&zero), None, "key_ttl_seconds 0 sets no expiry");
    assert!(read_one(s, va, &zero).await.is_some());

    // Once half the time has gone, view b's write renews the expiry of the whole hash.
    wait_until("the expiry counting down", secs(10), async || s.raw.expires_in(&k).is_some_and(|d| d < secs(1))).await;
    write(s, vb, vec![row(&k, t(10, 0), 2.0, 1)], WriteMode::NewestWins, Some(2)).await;
    let renewed = s.raw.expires_in(&k).expect("still expiring");
    assert!(renewed > secs(1), "renewed to the setting: {renewed:?}");
    assert!(read_one(s, va, &k).await.is_some(), "view a's fields live on in the renewed hash");

    // A row skipped as not newer renews nothing.
    wait_until("the expiry counting down", secs(10), async || s.raw.expires_in(&k).is_some_and(|d| d < secs(1))).await;
    let stats = write(s, va, vec![row(&k, t(9, 0), 9.0, 1)], WriteMode::NewestWins, Some(2)).await;
    assert_eq!(stats.skipped, 1);
    assert!(s.raw.expires_in(&k).is_none_or(|d| d < secs(1)), "a skipped row left the expiry alone");

    // Then everything under the key is gone; the key without expiry is not.
    wait_until("the hash expiring", secs(10), async || s.raw.hash(&k).is_none()).await;
    assert_eq!(read_one(s, va, &k).await, None);
    assert_eq!(read_one(s, vb, &k).await, None);
    assert!(read_one(s, va, &kept).await.is_some());

    // Written again after expiry, a key starts fresh: the old time is not remembered.
    let stats = write(s, va, vec![row(&k, t(5, 0), 3.0, 1)], WriteMode::NewestWins, None).await;
    assert_eq!(stats.written, 1);
}

/// Two views of the same entity share one hash; each keeps its own fields and `_ts`.
pub async fn views_sharing_an_entity_do_not_clobber(s: &Subject) {
    let project = "shared_hash";
    // Both views have a feature named `x`: their fields differ because the view name is hashed.
    let reg = registry(
        project,
        &[
            ("s1", &[("id", "Int64")], &[("x", "Float64"), ("y", "Float64")]),
            ("s2", &[("id", "Int64")], &[("x", "Float64"), ("z", "Float64")]),
        ],
    );
    let (v1, v2) = (view(&reg, "s1"), view(&reg, "s2"));
    let k = key(v1, project, 42);
    assert_eq!(k, key(v2, project, 42), "same entity, same key");
    write(s, v1, vec![row(&k, t(10, 0), 1.0, 2)], WriteMode::NewestWins, None).await;
    write(s, v2, vec![row(&k, t(5, 0), 20.0, 2)], WriteMode::NewestWins, None).await;

    let both = |a: ViewRow, b: ViewRow| (Some(a), Some(b));
    let f1: Vec<usize> = vec![0, 1];
    let keys = [k.clone()];
    let reads = [ViewRead { view: v1, features: &f1, keys: &keys }, ViewRead { view: v2, features: &f1, keys: &keys }];
    let got = read_views(&*s.store, &reads).await.unwrap();
    assert_eq!((got[0][0].clone(), got[1][0].clone()), both(expected(t(10, 0), 1.0, 2), expected(t(5, 0), 20.0, 2)));

    let hash = s.raw.hash(&k).unwrap();
    assert_eq!(hash.len(), 6, "two _ts fields and four feature fields");
    assert!(hash.contains_key(&b"_ts:s1"[..]) && hash.contains_key(&b"_ts:s2"[..]));

    // An older s1 row is skipped by s1's time, not s2's; a newer s2 row leaves s1 alone.
    assert_eq!(write(s, v1, vec![row(&k, t(7, 0), 3.0, 2)], WriteMode::NewestWins, None).await.written, 0);
    assert_eq!(write(s, v2, vec![row(&k, t(8, 0), 30.0, 2)], WriteMode::NewestWins, None).await.written, 1);
    let got = read_views(&*s.store, &reads).await.unwrap();
    assert_eq!((got[0][0].clone(), got[1][0].clone()), both(expected(t(10, 0), 1.0, 2), expected(t(8, 0), 30.0, 2)));
}

/// `write_views`: rows of several views in one call (Redis: one script call per key for all
/// its views). Each view keeps its own newest-wins decision, duplicates within a view resolve
/// as in `write`, and views with different settings still land.
pub async fn several_views_in_one_write(s: &Subject) {
    let project = "many_views";
    let reg = registry(
        project,
        &[
            ("m1", &[("id", "Int64")], &[("x", "Float64"), ("y", "Float64")]),
            ("m2", &[("id", "Int64")], &[("x", "Float64"), ("z", "Float64"), ("w", "Float64")]),
        ],
    );
    let (v1, v2) = (view(&reg, "m1"), view(&reg, "m2"));
    let [k1, k2, k3] = [1, 2, 3].map(|id| key(v1, project, id));
    // k1 already holds a newer m1 row; k3 a newer m2 row.
    write(s, v1, vec![row(&k1, t(10, 0), 100.0, 2)], WriteMode::NewestWins, None).await;
    write(s, v2, vec![row(&k3, t(10, 0), 300.0, 3)], WriteMode::NewestWins, None).await;

    let m1_rows = vec![
        row(&k1, t(5, 0), 1.0, 2), // older than stored: skipped
        row(&k2, t(3, 0), 2.0, 2), // superseded within the batch
        row(&k2, t(4, 0), 2.5, 2), // written
        row(&k3, t(1, 0), 3.0, 2), // written (m1 has nothing for k3)
        row(&k2, t(4, 0), 9.0, 2), // equal time, later in the batch: skipped
    ];
    let m2_rows = vec![
        row(&k1, t(6, 0), 10.0, 3), // written (m1's newer time for k1 does not count)
        row(&k3, t(2, 0), 30.0, 3), // older than stored: skipped
    ];
    let batches = [
        ViewWrite::for_view(v1, m1_rows, WriteMode::NewestWins, None),
        ViewWrite::for_view(v2, m2_rows, WriteMode::NewestWins, None),
    ];
    let stats = s.store.write_views(&batches).await.unwrap();
    assert_eq!(stats, vec![WriteStats { written: 2, skipped: 3 }, WriteStats { written: 1, skipped: 1 }]);
    let keys = [k1.clone(), k2.clone(), k3.clone()];
    assert_eq!(
        read_all(s, v1, &keys).await,
        vec![Some(expected(t(10, 0), 100.0, 2)), Some(expected(t(4, 0), 2.5, 2)), Some(expected(t(1, 0), 3.0, 2))]
    );
    assert_eq!(
        read_all(s, v2, &keys).await,
        vec![Some(expected(t(6, 0), 10.0, 3)), None, Some(expected(t(10, 0), 300.0, 3))]
    );

    // Different settings per view cannot share a call; each view still gets its own.
    let batches = [
        ViewWrite::for_view(v1, vec![row(&k2, t(20, 0), 7.0, 2)], WriteMode::NewestWins, None),
        ViewWrite::for_view(v2, vec![row(&k2, t(1, 0), 8.0, 3)], WriteMode::Overwrite, None),
    ];
    let stats = s.store.write_views(&batches).await.unwrap();
    assert_eq!(stats.iter().map(|w| w.written).collect::<Vec<_>>(), vec![1, 1]);
    assert_eq!(read_one(s, v1, &k2).await, Some(expected(t(20, 0), 7.0, 2)));
    assert_eq!(read_one(s, v2, &k2).await, Some(expected(t(1, 0), 8.0, 3)));
    assert_eq!(s.store.write_views(&[]).await.unwrap(), vec![]);

    // More views of one key than one script call answers for (50): all of them land.
    let names: Vec<String> = (0..55).map(|i| format!("wide_{i}")).collect();
    let specs: Vec<(&str, Columns<'_>, Columns<'_>)> =
        names.iter().map(|n| (n.as_str(), &[("id", "Int64")][..], &[("x", "Float64")][..])).collect();
    let reg = registry(project, &specs);
    let views: Vec<&FeatureView> = names.iter().map(|n| view(&reg, n)).collect();
    let batches: Vec<ViewWrite<'_>> = views
        .iter()
        .enumerate()
        .map(|(i, v)| ViewWrite::for_view(v, vec![row(&k1, t(30, 0), i as f64, 1)], WriteMode::NewestWins, None))
        .collect();
    let stats = s.store.write_views(&batches).await.unwrap();
    assert!(stats.iter().all(|w| *w == WriteStats { written: 1, skipped: 0 }), "{stats:?}");
    for (i, v) in views.iter().enumerate() {
        assert_eq!(read_one(s, v, &k1).await, Some(expected(t(30, 0), i as f64, 1)), "view {i}");
    }
    let again = s.store.write_views(&batches).await.unwrap();
    assert!(again.iter().all(|w| *w == WriteStats { written: 0, skipped: 1 }), "{again:?}");

    // More views in one write than one script call can name (255): six keys of 50 views each,
    // 300 views in all, land whole.
    let names: Vec<String> = (0..300).map(|i| format!("many_{i}")).collect();
    let specs: Vec<(&str, Columns<'_>, Columns<'_>)> =
        names.iter().map(|n| (n.as_str(), &[("id", "Int64")][..], &[("x", "Float64")][..])).collect();
    let reg = registry(project, &specs);
    let views: Vec<&FeatureView> = names.iter().map(|n| view(&reg, n)).collect();
    let keys: Vec<Vec<u8>> = (0..6).map(|id| key(views[0], project, 100 + id)).collect();
    let batches: Vec<ViewWrite<'_>> = views
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let k = &keys[i / 50];
            ViewWrite::for_view(v, vec![row(k, t(40, 0), i as f64, 1)], WriteMode::NewestWins, None)
        })
        .collect();
    let stats = s.store.write_views(&batches).await.unwrap();
    assert!(stats.iter().all(|w| *w == WriteStats { written: 1, skipped: 0 }), "{stats:?}");
    for (i, v) in views.iter().enumerate() {
        assert_eq!(read_one(s, v, &keys[i / 50]).await, Some(expected(t(40, 0), i as f64, 1)), "view {i}");
    }
}

/// Entities with several join keys: keys sort the join keys by name (Feast's v3 layout), each
/// combination is its own hash.
pub async fn multi_join_key_entities(s: &Subject) {
    let project = "multi_key";
    // Declared driver first: the key still puts customer_id first.
    let reg =
        registry(project, &[("trips", &[("driver_id", "Int64"), ("customer_id", "String")], &[("n", "Float64")])]);
    let v = view(&reg, "trips");
    let names: Vec<&str> = v.entity_columns.iter().map(|c| c.name.as_str()).collect();
    let mk = |driver: i64, customer: &str| {
        let (d, c) = (int64(driver), string(customer));
        let vals: Vec<&Value> = names.iter().map(|n| if *n == "driver_id" { &d } else { &c }).collect();
        v.layout.key_encoder.redis_key(&vals, project).unwrap()
    };
    let k = mk(1001, "c1");
    let mut want =
        keys::serialize_entity_key(&["customer_id", "driver_id"], &[&string("c1"), &int64(1001)], 3).unwrap();
    want.extend_from_slice(project.as_bytes());
    assert_eq!(k, want);

    let combos = [(1001, "c1", 1.0), (1001, "c2", 2.0), (1002, "c1", 3.0)];
    let rows = combos.iter().map(|(d, c, x)| row(&mk(*d, c), t(1, 0), *x, 1)).collect();
    assert_eq!(write(s, v, rows, WriteMode::NewestWins, None).await.written, 3);
    let keys = vec![mk(1001, "c1"), mk(1001, "c2"), mk(1002, "c1"), mk(1002, "c2")];
    let got = read_all(s, v, &keys).await;
    assert_eq!(
        got,
        vec![Some(expected(t(1, 0), 1.0, 1)), Some(expected(t(1, 0), 2.0, 1)), Some(expected(t(1, 0), 3.0, 1)), None]
    );
}

/// A batch far larger than one pipeline chunk, with repeated keys spread across chunks, ends
/// exactly as a small one would; a large read returns every key in order.
pub async fn large_batches_are_complete(s: &Subject) {
    let project = "large";
    let reg = registry(project, &[("v", &[("id", "Int64")], &[("a", "Float64"), ("b", "Float64"), ("c", "Float64")])]);
    let v = view(&reg, "v");
    let n = 5_003i64;
    let mut rows: Vec<WriteRow> = (0..n).map(|id| row(&key(v, project, id), t(100 + id, 0), id as f64, 3)).collect();
    // Older and newer duplicates of every 7th key, far from the first occurrence.
    rows.extend((0..n).step_by(7).map(|id| row(&key(v, project, id), t(50, 0), -1.0, 3)));
    rows.extend((0..n).step_by(11).map(|id| row(&key(v, project, id), t(100_000 + id, 0), 1e6 + id as f64, 3)));
    let sent = rows.len();
    let stats = write(s, v, rows, WriteMode::NewestWins, None).await;
    assert_eq!(stats, WriteStats { written: n as usize, skipped: sent - n as usize });

    let keys: Vec<Vec<u8>> = (0..n).map(|id| key(v, project, id)).collect();
    let got = read_all(s, v, &keys).await;
    for (id, r) in (0..n).zip(got) {
        let want = if id % 11 == 0 {
            expected(t(100_000 + id, 0), 1e6 + id as f64, 3)
        } else {
            expected(t(100 + id, 0), id as f64, 3)
        };
        assert_eq!(r, Some(want), "key {id}");
    }
}

/// Many keys of two views in one write (a Redis store groups keys into script calls): each
/// key's and each view's outcome is its own, wherever the key falls in a call, and a key whose
/// views both lose leaves its hash as it was.
pub async fn mixed_outcomes_across_many_keys(s: &Subject) {
    let project = "mixed_many";
    let reg = registry(
        project,
        &[
            ("ma", &[("id", "Int64")], &[("x", "Float64"), ("y", "Float64")]),
            ("mb", &[("id", "Int64")], &[("z", "Float64")]),
        ],
    );
    let (va, vb) = (view(&reg, "ma"), view(&reg, "mb"));
    let n = 203i64;
    let keys: Vec<Vec<u8>> = (0..n).map(|id| key(va, project, id)).collect();
    // Stored first: a newer `ma` row on every 3rd key, a newer `mb` row on every 2nd.
    let a_stored: Vec<WriteRow> = (0..n).step_by(3).map(|id| row(&keys[id as usize], t(1000, 0), -1.0, 2)).collect();
    let b_stored: Vec<WriteRow> = (0..n).step_by(2).map(|id| row(&keys[id as usize], t(1000, 0), -2.0, 1)).collect();
    write(s, va, a_stored, WriteMode::NewestWins, None).await;
    write(s, vb, b_stored, WriteMode::NewestWins, None).await;

    let a_rows: Vec<WriteRow> = (0..n).map(|id| row(&keys[id as usize], t(500 + id, 0), id as f64, 2)).collect();
    let b_rows: Vec<WriteRow> = (0..n).map(|id| row(&keys[id as usize], t(500 + id, 0), 10.0 * id as f64, 1)).collect();
    let batches = [
        ViewWrite::for_view(va, a_rows, WriteMode::NewestWins, None),
        ViewWrite::for_view(vb, b_rows, WriteMode::NewestWins, None),
    ];
    let stats = s.store.write_views(&batches).await.unwrap();
    let (a_lost, b_lost) = ((0..n).step_by(3).count(), (0..n).step_by(2).count());
    assert_eq!(
        stats,
        vec![
            WriteStats { written: n as usize - a_lost, skipped: a_lost },
            WriteStats { written: n as usize - b_lost, skipped: b_lost },
        ]
    );
    let (got_a, got_b) = (read_all(s, va, &keys).await, read_all(s, vb, &keys).await);
    for id in 0..n {
        let i = id as usize;
        let want_a = if id % 3 == 0 { expected(t(1000, 0), -1.0, 2) } else { expected(t(500 + id, 0), id as f64, 2) };
        let want_b =
            if id % 2 == 0 { expected(t(1000, 0), -2.0, 1) } else { expected(t(500 + id, 0), 10.0 * id as f64, 1) };
        assert_eq!(got_a[i], Some(want_a), "ma, key {id}");
        assert_eq!(got_b[i], Some(want_b), "mb, key {id}");
    }
}

/// A view with more features than one script call can pass to a single HSET (Lua's stack
/// holds 8000 values) is written completely, still newest-wins.
pub async fn wide_views_are_written_whole(s: &Subject) {
    let project = "wide";
    let names: Vec<String> = (0..1500).map(|i| format!("f{i}")).collect();
    let features: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "Float64")).collect();
    let reg = registry(project, &[("wide", &[("id", "Int64")], &features)]);
    let v = view(&reg, "wide");
    let k = key(v, project, 1);
    assert_eq!(write(s, v, vec![row(&k, t(2, 0), 0.0, 1500)], WriteMode::NewestWins, Some(3600)).await.written, 1);
    assert_eq!(read_one(s, v, &k).await, Some(expected(t(2, 0), 0.0, 1500)));
    assert_eq!(s.raw.hash(&k).unwrap().len(), 1501);
    assert_eq!(write(s, v, vec![row(&k, t(1, 0), 9.0, 1500)], WriteMode::NewestWins, None).await.skipped, 1);
    assert_eq!(read_one(s, v, &k).await, Some(expected(t(2, 0), 0.0, 1500)));

    // Several wide keys in one write (fewer keys per script call): key 1 keeps its newer row,
    // the others are written whole.
    let keys: Vec<Vec<u8>> = (1..=7).map(|id| key(v, project, id)).collect();
    let rows: Vec<WriteRow> = keys.iter().map(|k| row(k, t(1, 5), 7.0, 1500)).collect();
    assert_eq!(write(s, v, rows, WriteMode::NewestWins, None).await, WriteStats { written: 6, skipped: 1 });
    let got = read_all(s, v, &keys).await;
    assert_eq!(got[0], Some(expected(t(2, 0), 0.0, 1500)));
    for (i, r) in got.iter().enumerate().skip(1) {
        assert_eq!(r.as_ref(), Some(&expected(t(1, 5), 7.0, 1500)), "key {}", i + 1);
    }
}

/// Nothing to do is not an error; a row that does not fit its view is, and writes nothing.
pub async fn empty_and_invalid_input(s: &Subject) {
    let project = "edge";
    let reg = registry(project, &[("v", &[("id", "Int64")], &[("a", "Float64"), ("b", "Float64")])]);
    let v = view(&reg, "v");
    let k = key(v, project, 1);
    assert!(s.store.read(&[]).await.unwrap().is_empty());
    let answer = s
        .store
        .read(&[KeyRead { key: &k, fields: vec![] }, KeyRead { key: &k, fields: vec![b"_ts:v"] }])
        .await
        .unwrap();
    assert_eq!(answer, vec![vec![], vec![None]]);
    assert_eq!(read_views(&*s.store, &[]).await.unwrap().len(), 0);
    assert_eq!(write(s, v, vec![], WriteMode::NewestWins, None).await, WriteStats::default());
    assert_eq!(write(s, v, vec![], WriteMode::Overwrite, None).await, WriteStats::default());

    for mode in [WriteMode::NewestWins, WriteMode::Overwrite] {
        let bad = vec![row(&key(v, project, 2), t(1, 0), 1.0, 2), row(&k, t(1, 0), 1.0, 1)];
        let err = s.store.write(&ViewWrite::for_view(v, bad, mode, None)).await.unwrap_err();
        assert!(err.to_string().contains("1 values for 2 fields"), "{err}");
        assert!(s.raw.hash(&k).is_none() && s.raw.hash(&key(v, project, 2)).is_none(), "nothing written");
    }
    s.store.ping().await.unwrap();
    assert!(!s.store.describe().is_empty());
}

/// `sample_keys` answers keys of the project asked for and no other, each once, at most as
/// many as asked (on a cluster: from every primary), and leaves out expired keys.
pub async fn sample_keys_of_one_project(s: &Subject) {
    let project = "sampled_keys";
    let reg = registry(project, &[("v", &[("id", "Int64")], &[("a", "Float64")])]);
    let v = view(&reg, "v");
    let ours: Vec<Vec<u8>> = (0..60).map(|id| key(v, project, id)).collect();
    let rows = ours.iter().map(|k| row(k, t(1, 0), 1.0, 1)).collect();
    assert_eq!(write(s, v, rows, WriteMode::NewestWins, None).await.written, 60);
    // Keys that only end like ours (another project's name ends in ours), or only start so.
    for other in ["not_sampled_keys", "sampled_keys_too"] {
        let rows = (0..5).map(|id| row(&key(v, other, id), t(1, 0), 1.0, 1)).collect();
        assert_eq!(write(s, v, rows, WriteMode::NewestWins, None).await.written, 5);
    }

    let sorted = |mut keys: Vec<Vec<u8>>| {
        keys.sort();
        keys
    };
    let all = s.store.sample_keys(project, 1000).await.unwrap();
    assert_eq!(all.len(), 60, "each key once");
    assert_eq!(sorted(all), sorted(ours.clone()));

    let some = s.store.sample_keys(project, 7).await.unwrap();
    assert_eq!(some.len(), 7);
    let distinct: std::collections::BTreeSet<&Vec<u8>> = some.iter().collect();
    assert_eq!(distinct.len(), 7);
    assert!(some.iter().all(|k| ours.contains(k)), "{some:?}");

    assert!(s.store.sample_keys(project, 0).await.unwrap().is_empty());
    assert!(s.store.sample_keys("no_such_project", 10).await.unwrap().is_empty());

    // A project name with glob characters is matched literally.
    let glob = "g*[?]";
    let rows = (0..3).map(|id| row(&key(v, glob, id), t(1, 0), 1.0, 1)).collect();
    write(s, v, rows, WriteMode::NewestWins, None).await;
    write(s, v, vec![row(&key(v, "gx[?]", 0), t(1, 0), 1.0, 1)], WriteMode::NewestWins, None).await;
    let found = s.store.sample_keys(glob, 10).await.unwrap();
    assert_eq!(sorted(found), sorted((0..3).map(|id| key(v, glob, id)).collect()));

    // Expired keys are gone from the sample too.
    let short = "sampled_expiring";
    write(s, v, vec![row(&key(v, short, 1), t(1, 0), 1.0, 1)], WriteMode::NewestWins, Some(1)).await;
    assert_eq!(s.store.sample_keys(short, 10).await.unwrap().len(), 1);
    wait_until("the sampled key expiring", Duration::from_secs(10), async || {
        s.store.sample_keys(short, 10).await.unwrap().is_empty()
    })
    .await;
}

/// Something that can be stopped and started again on the same address.
pub trait Restartable {
    fn stop(&mut self);
    fn start(&mut self);
}

impl Restartable for RedisServer {
    fn stop(&mut self) {
        self.kill();
    }
    fn start(&mut self) {
        self.restart();
    }
}

/// A Redis that is killed answers `Unavailable` promptly (never hangs), and once it is back
/// the same store serves again without being rebuilt; its first write after the restart also
/// finds the script gone from the fresh server and loads it again.
pub async fn restart_recovers(s: &Subject, peer: &mut dyn Restartable) {
    let project = "restart";
    let reg = registry(project, &[("v", &[("id", "Int64")], &[("a", "Float64")])]);
    let v = view(&reg, "v");
    let k = key(v, project, 1);
    assert_eq!(write(s, v, vec![row(&k, t(1, 0), 1.0, 1)], WriteMode::NewestWins, None).await.written, 1);
    assert!(read_one(s, v, &k).await.is_some());

    peer.stop();
    for attempt in 0..3 {
        let started = std::time::Instant::now();
        let err = read_views(&*s.store, &[ViewRead { view: v, features: &[0], keys: std::slice::from_ref(&k) }])
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Unavailable { .. }), "attempt {attempt}: {err:?}");
        assert_eq!(err.status(), 503);
        assert!(err.is_transient());
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "a dead Redis must not hang a call: {:?}",
            started.elapsed()
        );
        let err = s
            .store
            .write(&ViewWrite::for_view(v, vec![row(&k, t(2, 0), 2.0, 1)], WriteMode::NewestWins, None))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    }

    peer.start();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let stats = loop {
        match s.store.write(&ViewWrite::for_view(v, vec![row(&k, t(3, 0), 3.0, 1)], WriteMode::NewestWins, None)).await
        {
            Ok(stats) => break stats,
            Err(e) => {
                assert!(matches!(e, Error::Unavailable { .. }), "{e:?}");
                assert!(std::time::Instant::now() < deadline, "the store did not recover: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert_eq!(stats.written, 1);
    assert_eq!(read_one(s, v, &k).await, Some(expected(t(3, 0), 3.0, 1)));
    s.store.ping().await.unwrap();
}
