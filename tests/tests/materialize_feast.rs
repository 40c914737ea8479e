//! Materialization against Feast 0.67 on the same parquet file and the same Redis: every hash
//! `larder materialize` writes is byte-identical to what `feast materialize` writes (keys,
//! fields, values, `_ts` bytes), across key kinds, a view without entities, a push-sourced
//! view, a field mapping, created-time ties, nulls (NaN floats and null timestamps among them),
//! window edges, nanosecond timestamps and the scalar and list types.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::builder::{Float64Builder, Int64Builder, ListBuilder, StringBuilder};
use arrow_array::{
    ArrayRef, BinaryArray, BooleanArray, Float32Array, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray, TimestampNanosecondArray,
};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use larder::config::RepoConfig;
use larder::materialize::{self, Options, Request};
use larder::time::EventTime;
use larder_tests::{FeastRepo, RedisServer, run};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

type Dump = BTreeMap<Vec<u8>, BTreeMap<Vec<u8>, Vec<u8>>>;

fn dump(redis: &RedisServer) -> Dump {
    let mut c = redis.client();
    let keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg("*").query(&mut c).unwrap();
    keys.into_iter()
        .map(|k| {
            let h: BTreeMap<Vec<u8>, Vec<u8>> = redis::cmd("HGETALL").arg(&k).query(&mut c).unwrap();
            (k, h)
        })
        .collect()
}

fn flush(redis: &RedisServer) {
    let _: () = redis::cmd("FLUSHALL").query(&mut redis.client()).unwrap();
}

const BASE: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

/// Transactions: 60 users x 6 rows across two days, with edge cases mixed in.
fn write_data(path: &std::path::Path) -> usize {
    let (mut users, mut merchants, mut ev, mut cr) = (vec![], vec![], vec![], vec![]);
    let (mut amt, mut score, mut c32, mut c64, mut label, mut flag, mut blob, mut seen) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    let mut tags = ListBuilder::new(StringBuilder::new());
    let mut vals = ListBuilder::new(Float64Builder::new());
    let mut ints = ListBuilder::new(Int64Builder::new());
    let mut n = 0usize;
    for u in 0..60i64 {
        for j in 0..6i64 {
            let i = u * 6 + j;
            users.push(u);
            merchants.push(format!("m{}", (u + j) % 7));
            // Hours spread over two days, with a sub-microsecond part Feast drops when storing.
            let mut ns = (BASE + ((u * 5 + j * 7) % 48) * 3600) * 1_000_000_000 + (i % 3) * 1_000 + (i % 5) * 7;
            let mut created_us = ns / 1000 + 60_000_000;
            if u % 10 == 3 && j >= 4 {
                // Two rows with the same event time: the later created one must win.
                ns = (BASE + 30 * 3600) * 1_000_000_000;
                created_us = ns / 1000 + if j == 4 { 5_000_000 } else { 1_000_000 };
            }
            if u == 11 && j == 0 {
                ns = (BASE + 6 * 3600) * 1_000_000_000; // exactly the window start
            }
            if u == 12 && j == 0 {
                ns = (BASE + 42 * 3600) * 1_000_000_000; // exactly the window end
            }
            ev.push(ns);
            cr.push(created_us);
            // Nulls, and NaN (pandas' missing float), which Feast stores as a null too.
            amt.push(match i {
                _ if i % 11 == 0 => None,
                _ if i % 19 == 0 => Some(f64::NAN),
                _ => Some(i as f64 * 1.25 - 100.0),
            });
            score.push(match i {
                _ if i % 13 == 0 => None,
                _ if i % 23 == 0 => Some(f32::NAN),
                _ => Some(i as f32 / 7.0),
            });
            c32.push(if i % 2 == 0 { -(i as i32) } else { i as i32 * 1000 });
            c64.push(if i % 17 == 0 { None } else { Some(i * 1_000_000_007 - 5) });
            label.push(if i % 9 == 0 { None } else { Some(format!("label-{i}-é")) });
            flag.push(i % 3 == 0);
            blob.push(vec![(i % 256) as u8, 0, 255]);
            // A null UnixTimestamp: Feast stores pandas' NaT, the minimum int64, as the value.
            seen.push(if i % 16 == 5 { None } else { Some((BASE - i * 17) * 1_000_000 + 500_000) });
            for k in 0..(i % 3) {
                tags.values().append_value(format!("t{k}"));
            }
            tags.append(true);
            for k in 0..(i % 4) {
                vals.values().append_value(k as f64 / 3.0);
            }
            vals.append(true);
            for k in 0..(i % 2 + 1) {
                ints.values().append_value(i * 10 + k);
            }
            ints.append(true);
            n += 1;
        }
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Int64, false),
        Field::new("merchant_id", DataType::Utf8, false),
        Field::new("event_ts", DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())), false),
        Field::new("created_ts", DataType::Timestamp(TimeUnit::Microsecond, None), false),
        Field::new("amt_raw", DataType::Float64, true),
        Field::new("score", DataType::Float32, true),
        Field::new("count32", DataType::Int32, false),
        Field::new("count64", DataType::Int64, true),
        Field::new("label", DataType::Utf8, true),
        Field::new("flag", DataType::Boolean, false),
        Field::new("blob", DataType::Binary, false),
        Field::new("seen_at", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
        Field::new("tags", DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))), true),
        Field::new("vals", DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true))), true),
        Field::new("ints", DataType::List(Arc::new(Field::new_list_field(DataType::Int64, true))), true),
    ]));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(users)),
        Arc::new(StringArray::from(merchants)),
        Arc::new(TimestampNanosecondArray::from(ev).with_timezone("UTC")),
        Arc::new(TimestampMicrosecondArray::from(cr)),
        Arc::new(Float64Array::from(amt)),
        Arc::new(Float32Array::from(score)),
        Arc::new(Int32Array::from(c32)),
        Arc::new(Int64Array::from(c64)),
        Arc::new(StringArray::from(label)),
        Arc::new(BooleanArray::from(flag)),
        Arc::new(BinaryArray::from(blob.iter().map(|b| b.as_slice()).collect::<Vec<_>>())),
        Arc::new(TimestampMicrosecondArray::from(seen).with_timezone("UTC")),
        Arc::new(tags.finish()),
        Arc::new(vals.finish()),
        Arc::new(ints.finish()),
    ];
    let props = WriterProperties::builder().set_max_row_group_row_count(Some(64)).build();
    let mut w = ArrowWriter::try_new(std::fs::File::create(path).unwrap(), schema.clone(), Some(props)).unwrap();
    w.write(&RecordBatch::try_new(schema, cols).unwrap()).unwrap();
    w.close().unwrap();
    n
}

#[tokio::test]
async fn larder_writes_the_same_redis_bytes_as_feast_materialize() {
    let redis = RedisServer::start();
    let repo = FeastRepo::from_fixture("feast_materialize_repo", &redis.addr());
    write_data(&repo.path().join("data/txns.parquet"));
    run(&mut repo.feast(&["apply"]));
    let (start, end) = ("2026-01-01T06:00:00", "2026-01-02T18:00:00");
    run(&mut repo.feast(&["materialize", start, end]));
    let feast = dump(&redis);
    flush(&redis);

    let cfg = RepoConfig::load_with(Some(repo.path()), &|k| (k == "REDIS_ADDR").then(|| redis.addr())).unwrap();
    let store = larder::online::connect(&cfg, &larder::aws::Aws::new()).await.unwrap();
    let req =
        Request::Range { start: EventTime::parse(start).unwrap(), end: EventTime::parse(end).unwrap(), views: None };
    let report =
        materialize::materialize(&cfg, &larder::storage::Storage::default(), store.as_ref(), &req, &Options::default())
            .await
            .unwrap();
    assert!(report.complete && report.recorded, "{report:?}");
    let larder = dump(&redis);

    // 60 users + 7 merchants + user x merchant pairs + the dummy key.
    assert!(feast.len() > 67, "Feast wrote {} keys", feast.len());
    let only_feast: Vec<_> = feast.keys().filter(|k| !larder.contains_key(*k)).collect();
    let only_larder: Vec<_> = larder.keys().filter(|k| !feast.contains_key(*k)).collect();
    assert!(
        only_feast.is_empty() && only_larder.is_empty(),
        "keys differ: only Feast {only_feast:x?}, only Larder {only_larder:x?}"
    );
    for (key, f) in &feast {
        let l = &larder[key];
        for (field, fv) in f {
            let lv = l.get(field);
            assert_eq!(
                lv,
                Some(fv),
                "key {:x?} field {:?}: Feast {:x?}, Larder {:x?}",
                key,
                String::from_utf8_lossy(field),
                fv,
                lv
            );
        }
        assert_eq!(f.len(), l.len(), "key {key:x?}: Feast fields {:?}, Larder fields {:?}", f.keys(), l.keys());
    }
}

const PUSH_WITH_FEAST: &str = r#"
import json, sys
import pandas as pd
from feast import FeatureStore
df = pd.DataFrame(json.loads(sys.argv[1]))
for c in ("event_ts", "created_ts"):
    df[c] = pd.to_datetime(df[c], utc=True, format="ISO8601")
df["score"] = df["score"].astype("float32")
FeatureStore(repo_path=".").push("txns_push", df)
"#;

/// Each key's expiry after the test's `EXPIRE key 1000`: renewed by a later write (the setting's
/// 3600 s), kept (not written since), or none.
fn expiries(redis: &RedisServer) -> BTreeMap<Vec<u8>, &'static str> {
    let mut c = redis.client();
    let keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg("*").query(&mut c).unwrap();
    keys.into_iter()
        .map(|k| {
            let ms: i64 = redis::cmd("PTTL").arg(&k).query(&mut c).unwrap();
            let class = match ms {
                3_000_000..=3_600_000 => "renewed",
                1..=1_000_000 => "kept",
                -1 => "none",
                other => panic!("key {k:x?}: PTTL {other} ms is none of the expected"),
            };
            (k, class)
        })
        .collect()
}

fn expire_all(redis: &RedisServer, secs: u64) {
    let mut c = redis.client();
    let keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg("*").query(&mut c).unwrap();
    for k in keys {
        let _: i64 = redis::cmd("EXPIRE").arg(&k).arg(secs).query(&mut c).unwrap();
    }
}

/// `online_store.key_ttl_seconds` and `skip_dedup`, as Feast applies them: the same sequence
/// (materialize a window, then an older window, then a push with an older and a newer row) run
/// by Feast on one Redis and by the `larder` binary on another leaves the same bytes and the
/// same expiries: every written key gets the setting's EXPIRE, a row skipped as not newer
/// renews nothing, and with `skip_dedup: true` the older rows overwrite the newer ones.
#[test]
fn key_ttl_seconds_and_skip_dedup_as_feast_applies_them() {
    let (feast_redis, larder_redis) = (RedisServer::start(), RedisServer::start());
    let repo = FeastRepo::from_fixture("feast_materialize_repo", &feast_redis.addr());
    write_data(&repo.path().join("data/txns.parquet"));
    run(&mut repo.feast(&["apply"]));
    let yaml = std::fs::read_to_string(repo.path().join("feature_store.yaml")).unwrap();
    let push = serde_json::json!({
        "user_id": [1, 2, 100],
        // user 1's stored row is at hour 40 (older push), user 2's at hour 38 (newer), 100 is new.
        "event_ts": ["2026-01-01T01:00:00Z", "2026-01-02T23:00:00.250Z", "2026-01-01T12:00:00Z"],
        "created_ts": vec!["2026-01-03T00:00:00Z"; 3],
        "label": ["older", "newer", "new"],
        "score": [0.25, 0.5, 0.75],
    });
    let larder = |args: &[&str]| {
        run(std::process::Command::new(larder_tests::http::larder_bin())
            .current_dir(repo.path())
            .env("REDIS_ADDR", larder_redis.addr())
            .env_remove("LARDER_LOG")
            .args(args))
    };
    let mut dumps = Vec::new();
    for skip_dedup in [false, true] {
        let settings = format!("  key_ttl_seconds: 3600\n  skip_dedup: {skip_dedup}\n");
        let with = yaml.replace(
            "  connection_string: ${REDIS_ADDR}\n",
            &format!("  connection_string: ${{REDIS_ADDR}}\n{settings}"),
        );
        assert_ne!(with, yaml);
        std::fs::write(repo.path().join("feature_store.yaml"), with).unwrap();
        flush(&feast_redis);
        flush(&larder_redis);

        let (start, end) = ("2026-01-01T06:00:00", "2026-01-02T18:00:00");
        run(&mut repo.feast(&["materialize", start, end]));
        larder(&["materialize", start, end]);
        for r in [&feast_redis, &larder_redis] {
            assert!(expiries(r).values().all(|c| *c == "renewed"), "every key written carries the 3600 s EXPIRE");
            expire_all(r, 1000);
        }
        let (older_start, older_end) = ("2026-01-01T00:00:00", "2026-01-01T05:59:59");
        run(&mut repo.feast(&["materialize", older_start, older_end]));
        let out = larder(&["materialize", older_start, older_end]);
        assert!(out.contains("user_stats: "), "{out}");
        run(std::process::Command::new(larder_tests::venv_bin("python"))
            .current_dir(repo.path())
            .env("REDIS_ADDR", feast_redis.addr())
            .args(["-c", PUSH_WITH_FEAST, &push.to_string()]));
        let body = repo.path().join("push.json");
        std::fs::write(&body, serde_json::json!({"push_source_name": "txns_push", "df": push}).to_string()).unwrap();
        let out = larder(&["push", body.to_str().unwrap()]);
        let expected = if skip_dedup {
            "pushed: 1 records, 3 rows; 3 written, 0 not newer"
        } else {
            "pushed: 1 records, 3 rows; 2 written, 1 not newer"
        };
        assert!(out.starts_with(expected), "skip_dedup {skip_dedup}: {out}");

        let (feast, larder_dump) = (dump(&feast_redis), dump(&larder_redis));
        assert_eq!(feast.len(), larder_dump.len());
        for (key, f) in &feast {
            assert_eq!(Some(f), larder_dump.get(key), "skip_dedup {skip_dedup}, key {key:x?}");
        }
        let (fe, le) = (expiries(&feast_redis), expiries(&larder_redis));
        assert_eq!(fe, le, "skip_dedup {skip_dedup}: which keys a write renewed");
        let renewed = fe.values().filter(|c| **c == "renewed").count();
        let kept = fe.values().filter(|c| **c == "kept").count();
        // Users 2 and 100 are pushed newer rows in both modes; the older window's rows renew
        // only when nothing is compared.
        assert!(renewed >= 2 && kept > 0, "skip_dedup {skip_dedup}: {renewed} renewed, {kept} kept");
        dumps.push((feast, renewed));
    }
    // Overwriting changed what is stored, and renewed more keys.
    assert_ne!(dumps[0].0, dumps[1].0);
    assert!(dumps[1].1 > dumps[0].1 + 10, "{} vs {} keys renewed", dumps[1].1, dumps[0].1);
}
