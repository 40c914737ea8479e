use std::sync::Arc;

use serde_json::{Value as Json, json};

use super::dead_letter::{MemorySink, Position};
use super::stream::{Lane, OnFailure, Processor, StreamRecord};
use super::testing::{self, PROJECT};
use super::*;
use crate::online::memory::MemoryStore;
use crate::online::testing::FaultyStore;
use crate::proto::types::value::Val;
use crate::time::EventTime;
use crate::value::{self, Value};

fn int(i: i64) -> Value {
    Value { val: Some(Val::Int64Val(i)) }
}

fn text(s: &str) -> Value {
    Value { val: Some(Val::StringVal(s.into())) }
}

/// The stored row of `view` for `key`: its event time and each feature (None: null).
fn stored(store: &MemoryStore, registry: &Registry, view: &str, key: Value) -> Option<(EventTime, Vec<Option<Value>>)> {
    let view = registry.view(view).unwrap();
    let redis_key = view.layout.key_encoder.redis_key(&[&key], PROJECT).unwrap();
    let hash = store.hash(&redis_key)?;
    let ts = EventTime::from_proto_bytes(hash.get(&view.layout.ts_field)?).unwrap();
    let values = view
        .layout
        .feature_fields
        .iter()
        .map(|f| hash.get(&f[..]).filter(|b| !b.is_empty()).map(|b| value::decode(b).unwrap()))
        .collect();
    Some((ts, values))
}

fn push_of(v: Json) -> Push {
    serde_json::from_value::<PushRequest>(v).unwrap().into_push().unwrap()
}

async fn push_json(store: &dyn OnlineStore, v: Json) -> Result<PushStats> {
    let registry = testing::registry_cache();
    let push =
        serde_json::from_value::<PushRequest>(v).map_err(|e| crate::Error::BadRequest(e.to_string()))?.into_push()?;
    apply(&registry, store, WriteOptions::default(), &push).await
}

fn t(s: &str) -> EventTime {
    EventTime::parse(s).unwrap()
}

#[tokio::test]
async fn a_push_writes_every_view_of_its_source_typed_by_each_schema() {
    let store = MemoryStore::new();
    let stats = push_json(
        &store,
        json!({"push_source_name": "driver_push", "df": {
            "driver_id": [1001, 1002], "event_timestamp": ["2024-01-01T00:00:00Z", "2024-01-01 01:00:00+00:00"],
            "created": ["2024-01-01T00:00:01Z", null], "conv_rate": [0.5, 0.25], "trips": [3, 4], "city": "sf"
        }}),
    )
    .await
    .unwrap();
    assert_eq!(stats, PushStats { rows: 4, written: 4, skipped: 0, ..Default::default() });
    let reg = testing::registry();
    let (ts, values) = stored(&store, &reg, "driver_fresh", int(1002)).unwrap();
    assert_eq!(ts, t("2024-01-01T01:00:00Z"));
    assert_eq!(
        values,
        vec![Some(Value { val: Some(Val::FloatVal(0.25)) }), Some(int(4)), Some(text("sf"))],
        "Float32, Int64 and a broadcast String"
    );
    let (_, rates) = stored(&store, &reg, "driver_rates", int(1001)).unwrap();
    assert_eq!(rates, vec![Some(Value { val: Some(Val::FloatVal(0.5)) })]);
    assert!(stored(&store, &reg, "driver_batch", int(1001)).is_none(), "a view fed by a file source is not pushed to");
}

#[tokio::test]
async fn field_mapping_renames_columns_and_keys_take_their_declared_type() {
    let store = MemoryStore::new();
    push_json(
        &store,
        json!({"push_source_name": "customer_push", "df": {
            "cust": [42], "ts": [1_700_000_000], "rate_col": ["0.75"], "tags": [["a", "b"]]
        }}),
    )
    .await
    .unwrap();
    let reg = testing::registry();
    // customer_id is a String key: the JSON number 42 is the string "42", as in Feast.
    let (ts, values) = stored(&store, &reg, "customer_fresh", text("42")).unwrap();
    assert_eq!(ts, EventTime::new(1_700_000_000, 0));
    assert_eq!(values[0], Some(Value { val: Some(Val::DoubleVal(0.75)) }));
    assert_eq!(values[1].as_ref().map(value::type_of), Some(crate::value::ValueType::StringList));
}

#[tokio::test]
async fn a_view_without_entities_is_keyed_by_the_dummy_entity() {
    let store = MemoryStore::new();
    push_json(
        &store,
        json!({"push_source_name": "global_push", "df": {"event_timestamp": "2024-01-01T00:00:00Z", "total": 9}}),
    )
    .await
    .unwrap();
    let reg = testing::registry();
    let view = reg.view("global_stats").unwrap();
    let key = view.layout.key_encoder.redis_key(&[&text("")], PROJECT).unwrap();
    assert!(store.hash(&key).is_some());
}

#[tokio::test]
async fn newest_event_wins_and_ties_keep_the_stored_row() {
    let store = MemoryStore::new();
    let row = |ts: &str, rate: f64| json!({"push_source_name": "driver_push", "df": {"driver_id": [7], "event_timestamp": [ts], "conv_rate": [rate], "trips": [1], "city": ["x"]}});
    push_json(&store, row("2024-01-02T00:00:00Z", 0.2)).await.unwrap();
    let older = push_json(&store, row("2024-01-01T00:00:00Z", 0.1)).await.unwrap();
    let tie = push_json(&store, row("2024-01-02T00:00:00Z", 0.3)).await.unwrap();
    assert_eq!((older.written, older.skipped, tie.written, tie.skipped), (0, 2, 0, 2));
    let newer = push_json(&store, row("2024-01-03T00:00:00Z", 0.4)).await.unwrap();
    assert_eq!(newer.written, 2);
    let (ts, v) = stored(&store, &testing::registry(), "driver_fresh", int(7)).unwrap();
    assert_eq!((ts, v[0].clone()), (t("2024-01-03T00:00:00Z"), Some(Value { val: Some(Val::FloatVal(0.4)) })));
}

#[tokio::test]
async fn a_push_of_only_null_features_writes_nothing_as_in_feast() {
    let store = MemoryStore::new();
    let stats = push_json(
        &store,
        json!({"push_source_name": "driver_push", "df": {"driver_id": [1], "event_timestamp": ["2024-01-01T00:00:00Z"], "conv_rate": [null], "trips": [null], "city": [null]}}),
    )
    .await
    .unwrap();
    assert_eq!(stats.rows, 0);
    assert!(store.is_empty());
    // One non-null feature is enough for the whole push to be written, nulls included.
    push_json(
        &store,
        json!({"push_source_name": "driver_push", "df": {"driver_id": [1], "event_timestamp": ["2024-01-01T00:00:00Z"], "conv_rate": [null], "trips": [2], "city": [null]}}),
    )
    .await
    .unwrap();
    let (_, v) = stored(&store, &testing::registry(), "driver_fresh", int(1)).unwrap();
    assert_eq!(v, vec![None, Some(int(2)), None]);
}

#[tokio::test]
async fn a_nan_float_is_stored_as_null_as_feast_stores_it() {
    // Feast stores pandas' NaN as the empty Value; its server then answers null, not "NaN".
    let store = MemoryStore::new();
    push_json(
        &store,
        json!({"push_source_name": "driver_push", "df": {"driver_id": [1, 2], "event_timestamp": ["2024-01-01T00:00:00Z", "2024-01-01T00:00:00Z"], "conv_rate": ["NaN", 0.5], "trips": [2, 3], "city": "sf"}}),
    )
    .await
    .unwrap();
    let reg = testing::registry();
    let view = reg.view("driver_fresh").unwrap();
    let key = view.layout.key_encoder.redis_key(&[&int(1)], PROJECT).unwrap();
    let hash = store.hash(&key).unwrap();
    assert_eq!(hash.get(&view.layout.feature_fields[0][..]).map(|b| b.len()), Some(0), "conv_rate: zero bytes");
    let (_, v) = stored(&store, &reg, "driver_fresh", int(2)).unwrap();
    assert_eq!(v[0], Some(Value { val: Some(Val::FloatVal(0.5)) }));
}

#[tokio::test]
async fn mixed_timestamp_precisions_in_one_push_are_accepted() {
    // Feast answers 500 (pandas cannot mix the formats); each value is a valid time here.
    let store = MemoryStore::new();
    let stats = push_json(
        &store,
        json!({"push_source_name": "driver_push", "df": {"driver_id": [1, 2, 3], "event_timestamp": ["2024-01-01T00:00:00Z", "2024-01-01T00:00:00.123456789Z", 1704067200123u64], "conv_rate": [0.5, 0.5, 0.5], "trips": [1, 2, 3], "city": "sf"}}),
    )
    .await
    .unwrap();
    assert_eq!(stats.written, 6, "three rows into driver_fresh and driver_rates");
    let reg = testing::registry();
    assert_eq!(stored(&store, &reg, "driver_fresh", int(1)).unwrap().0, t("2024-01-01T00:00:00Z"));
    assert_eq!(stored(&store, &reg, "driver_fresh", int(2)).unwrap().0, EventTime::new(1_704_067_200, 123_456_789));
    assert_eq!(stored(&store, &reg, "driver_fresh", int(3)).unwrap().0, EventTime::new(1_704_067_200, 123_000_000));
}

#[tokio::test]
async fn mistakes_name_the_source_view_column_and_row_and_write_nothing() {
    let store = MemoryStore::new();
    let base = || {
        json!({"push_source_name": "driver_push", "df": {
            "driver_id": [1, 2], "event_timestamp": ["2024-01-01T00:00:00Z", "2024-01-01T00:00:00Z"],
            "conv_rate": [0.1, 0.2], "trips": [1, 2], "city": ["a", "b"]}})
    };
    let mut missing = base();
    missing["df"].as_object_mut().unwrap().remove("trips");
    let e = push_json(&store, missing).await.unwrap_err();
    assert_eq!(e.status(), 422);
    let msg = e.to_string();
    assert!(
        msg.contains("push source 'driver_push'")
            && msg.contains("'driver_fresh'")
            && msg.contains("feature column 'trips'"),
        "{msg}"
    );

    let mut wrong = base();
    wrong["df"]["trips"] = json!([1, "many"]);
    let msg = push_json(&store, wrong).await.unwrap_err().to_string();
    assert!(msg.contains("column 'trips', row 1") && msg.contains("expected Int64"), "{msg}");

    let mut null_key = base();
    null_key["df"]["driver_id"] = json!([1, null]);
    let msg = push_json(&store, null_key).await.unwrap_err().to_string();
    assert!(msg.contains("column 'driver_id', row 1: join key 'driver_id' is null"), "{msg}");

    let mut bad_time = base();
    bad_time["df"]["event_timestamp"] = json!(["2024-01-01T00:00:00Z", "yesterday"]);
    let msg = push_json(&store, bad_time).await.unwrap_err().to_string();
    assert!(msg.contains("column 'event_timestamp', row 1") && msg.contains("'yesterday' is not a timestamp"), "{msg}");

    let mut no_time = base();
    no_time["df"].as_object_mut().unwrap().remove("event_timestamp");
    let msg = push_json(&store, no_time).await.unwrap_err().to_string();
    assert!(msg.contains("timestamp column 'event_timestamp' is missing"), "{msg}");

    let mut unknown = base();
    unknown["push_source_name"] = json!("nope");
    let e = push_json(&store, unknown).await.unwrap_err();
    assert_eq!((e.status(), e.code()), (422, "push_source_not_found"));

    // A missing column that field_mapping would rename is named by both names; a bad created
    // time is refused as a bad event time is.
    let e = push_json(&store, json!({"push_source_name": "customer_push", "df": {"cust": [42], "ts": [1]}}))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("feature column 'rate' (or 'rate_col', which field_mapping renames to it) is missing"), "{e}");
    let e = push_json(&store, json!({"push_source_name": "customer_push", "df": {"rate_col": [1.0], "ts": [1]}}))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("join key column 'customer_id' (or 'cust', which field_mapping renames to it) is missing"),
        "{e}"
    );
    let mut bad_created = base();
    bad_created["df"]["created"] = json!(["2024-01-01T00:00:00Z", "later"]);
    let msg = push_json(&store, bad_created).await.unwrap_err().to_string();
    assert!(msg.contains("column 'created', row 1") && msg.contains("'later' is not a timestamp"), "{msg}");

    let mut uneven = base();
    uneven["df"]["city"] = json!(["a"]);
    assert_eq!(push_json(&store, uneven).await.unwrap_err().status(), 400);
    assert!(store.is_empty(), "a rejected push writes nothing");
}

#[test]
fn event_times_in_every_form_producers_send() {
    use super::convert::event_time_of;
    let want = EventTime::new(1_700_000_000, 0);
    for j in [
        json!(1_700_000_000),
        json!(1_700_000_000_000i64),
        json!(1_700_000_000_000_000i64),
        json!(1_700_000_000_000_000_000i64),
    ] {
        assert_eq!(event_time_of(&j).unwrap(), want, "{j}");
    }
    assert_eq!(event_time_of(&json!(1_700_000_000.5)).unwrap(), EventTime::new(1_700_000_000, 500_000_000));
    assert_eq!(event_time_of(&json!("2023-11-14 22:13:20")).unwrap(), want);
    assert_eq!(event_time_of(&json!("2023-11-14T23:13:20+01:00")).unwrap(), want);
    assert_eq!(
        event_time_of(&json!(true)).unwrap_err(),
        "expected a timestamp (RFC 3339 text or epoch seconds), got true"
    );
    // The unit of a number changes exactly at 1e11 (s -> ms), 1e14 (ms -> us) and 1e17 (us -> ns).
    let cases = [
        (99_999_999_999i64, EventTime::new(99_999_999_999, 0)),
        (100_000_000_000, EventTime::new(100_000_000, 0)),
        (-100_000_000_000, EventTime::new(-100_000_000, 0)),
        (99_999_999_999_999, EventTime::new(99_999_999_999, 999_000_000)),
        (100_000_000_000_000, EventTime::new(100_000_000, 0)),
        (99_999_999_999_999_999, EventTime::new(99_999_999_999, 999_999_000)),
        (100_000_000_000_000_000, EventTime::new(100_000_000, 0)),
    ];
    for (n, want) in cases {
        assert_eq!(event_time_of(&json!(n)).unwrap(), want, "{n}");
    }
    // Fractional seconds only below 1e11, and finite.
    assert_eq!(event_time_of(&json!(99_999_999_999.5)).unwrap(), EventTime::new(99_999_999_999, 500_000_000));
    assert_eq!(event_time_of(&json!(1.5e11)).unwrap_err(), "150000000000.0 is not a timestamp");
    assert_eq!(event_time_of(&json!(1e11)).unwrap_err(), "100000000000.0 is not a timestamp");
}

#[tokio::test]
async fn write_to_online_store_writes_one_view() {
    let store = MemoryStore::new();
    let registry = testing::registry_cache();
    let push = serde_json::from_value::<WriteRequest>(json!({"feature_view_name": "driver_rates", "df": {
        "driver_id": [5], "event_timestamp": ["2024-01-01T00:00:00Z"], "conv_rate": [0.9]}}))
    .unwrap()
    .into_push()
    .unwrap();
    let stats = apply(&registry, &store, WriteOptions::default(), &push).await.unwrap();
    assert_eq!(stats.written, 1);
    let reg = testing::registry();
    assert!(stored(&store, &reg, "driver_rates", int(5)).is_some());
    assert!(stored(&store, &reg, "driver_fresh", int(5)).is_none());
    let unknown = Push { destination: Destination::View("nope".into()), ..push };
    assert_eq!(apply(&registry, &store, WriteOptions::default(), &unknown).await.unwrap_err().status(), 404);
}

// ---------------------------------------------------------------------------------------------
// Streams
// ---------------------------------------------------------------------------------------------

fn record(seq: usize, v: Json) -> StreamRecord {
    let data = match v {
        Json::String(s) => s.into_bytes(),
        other => serde_json::to_vec(&other).unwrap(),
    };
    StreamRecord::new(
        Position::Kinesis {
            stream: "arn:aws:kinesis:us-east-1:1:stream/drivers".into(),
            shard_id: None,
            sequence_number: seq.to_string(),
            partition_key: "k".into(),
        },
        data,
    )
}

fn row(driver: i64, hour: u32, rate: f64) -> Json {
    json!({"driver_id": driver, "event_timestamp": format!("2024-01-01T{hour:02}:00:00Z"), "conv_rate": rate, "trips": hour, "city": "sf"})
}

struct Rig {
    store: FaultyStore,
    registry: Arc<RegistryCache>,
    settings: PushSettings,
    sink: MemorySink,
}

impl Rig {
    fn new() -> Rig {
        let settings = PushSettings { default_source: Some("driver_push".into()), ..Default::default() };
        Rig { store: FaultyStore::default(), registry: testing::registry_cache(), settings, sink: MemorySink::new() }
    }

    async fn run(&self, lanes: &[Lane], on_failure: OnFailure) -> stream::BatchOutcome {
        let p = Processor {
            registry: &self.registry,
            store: &self.store,
            settings: &self.settings,
            options: WriteOptions::default(),
            dead_letters: &self.sink,
        };
        p.process(lanes, on_failure).await
    }
}

fn lane(records: Vec<StreamRecord>) -> Lane {
    Lane { stream: "arn:aws:kinesis:us-east-1:1:stream/drivers".into(), records }
}

#[tokio::test]
async fn poison_records_go_to_the_dead_letter_sink_and_the_batch_goes_on() {
    let rig = Rig::new();
    let records = vec![
        record(0, row(1, 1, 0.1)),
        record(1, json!("{not json")),
        record(2, json!({"push_source_name": "nope", "driver_id": 2})),
        record(
            3,
            json!({"driver_id": 3, "event_timestamp": "2024-01-01T00:00:00Z", "conv_rate": "high", "trips": 1, "city": "x"}),
        ),
        record(
            4,
            json!({"push_source_name": "driver_push", "df": {"driver_id": [4, 5], "event_timestamp": "2024-01-01T05:00:00Z", "conv_rate": [0.4, 0.5], "trips": 1, "city": "y"}}),
        ),
        record(5, row(1, 2, 0.2)),
    ];
    let out = rig.run(&[lane(records)], OnFailure::RetryFromFirstFailure).await;
    assert!(out.succeeded(), "{:?}", out.error);
    assert_eq!(out.lanes[0].failed_from, None);
    assert_eq!(out.dead_lettered, 3);
    let letters = rig.sink.letters();
    let seqs: Vec<String> = letters
        .iter()
        .map(|l| match &l.position {
            Position::Kinesis { sequence_number, .. } => sequence_number.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(seqs, ["1", "2", "3"]);
    assert_eq!(letters[0].code, "bad_request");
    assert_eq!(letters[1].code, "push_source_not_found");
    assert!(letters[2].reason.contains("column 'conv_rate', row 0"), "{}", letters[2].reason);
    assert_eq!(letters[0].data, b"{not json");
    let reg = testing::registry();
    let (ts, v) = stored(&rig.store.inner, &reg, "driver_fresh", int(1)).unwrap();
    assert_eq!((ts, v[1].clone()), (t("2024-01-01T02:00:00Z"), Some(int(2))), "the later event of driver 1 won");
    assert!(stored(&rig.store.inner, &reg, "driver_rates", int(5)).is_some());
    // Rows of one view in a batch are written together: one write per view per chunk.
    assert_eq!(rig.store.writes(), 2);
}

#[tokio::test]
async fn a_store_failure_fails_the_lane_from_the_first_affected_record_and_a_retry_completes_it() {
    let rig = Rig::new();
    // Enough rows for three chunks; a poison record sits in the first and in the last. The
    // first half of the records holds each driver's newest event; the second half repeats the
    // drivers with older events (dropped before writing, and skipped by the store on retry),
    // so the winners sit in every chunk and the retry replays rows of both kinds.
    let n = stream::CHUNK_ROWS * 5 / 2;
    let drivers = n / 2;
    let hour = |i: usize| if i < drivers { 5 + (i % 3) as u32 } else { 1 + (i % 3) as u32 };
    let mut records: Vec<StreamRecord> =
        (0..n).map(|i| record(i, row((i % drivers) as i64, hour(i), i as f64))).collect();
    records[10] = record(10, json!("garbage"));
    records[n - 1] = record(n - 1, json!("garbage at the end"));
    // Two views per chunk: the first chunk's two writes succeed, then the store is down.
    rig.store.fail_after(2);
    let out = rig.run(&[lane(records.clone())], OnFailure::RetryFromFirstFailure).await;
    assert!(!out.succeeded());
    assert!(out.error.as_ref().unwrap().is_transient());
    // The first chunk holds CHUNK_ROWS rows of two views: CHUNK_ROWS/2 + 1 records (one poison).
    let first_chunk = stream::CHUNK_ROWS / 2 + 1;
    assert_eq!(out.lanes[0].failed_from, Some(first_chunk));
    assert_eq!(rig.sink.letters().len(), 1, "only the poison record before the failure is dead-lettered");

    // The event source retries from the failed record on.
    rig.store.heal();
    let out = rig.run(&[lane(records[first_chunk..].to_vec())], OnFailure::RetryFromFirstFailure).await;
    assert!(out.succeeded());
    assert_eq!(rig.sink.letters().len(), 2, "each poison record dead-lettered exactly once");
    let reg = testing::registry();
    for d in 0..drivers {
        // What applying every good record in order leaves: the newest event, the first on ties.
        let mut good = (0..n - 1).filter(|&i| i % drivers == d && i != 10);
        let first = good.next().unwrap();
        let winner = good.fold(first, |best, i| if hour(i) > hour(best) { i } else { best });
        let (ts, v) = stored(&rig.store.inner, &reg, "driver_fresh", int(d as i64)).unwrap();
        assert_eq!(ts, t(&format!("2024-01-01T{:02}:00:00Z", hour(winner))), "driver {d}");
        assert_eq!(v[0], Some(Value { val: Some(Val::FloatVal(winner as f32)) }), "driver {d}");
    }
}

#[tokio::test]
async fn a_lane_keeps_the_newest_row_per_key_across_chunks() {
    let rig = Rig::new();
    // Driver 1 in every chunk: newest in the middle, and an equal time later that must lose.
    let n = stream::CHUNK_ROWS * 2;
    let mid = n / 2 / 3 * 3;
    let records: Vec<StreamRecord> = (0..n)
        .map(|i| {
            let hour = if i == mid || (i > mid && i % 7 == 0) { 9 } else { 1 + (i % 5) as u32 };
            record(i, row(if i % 3 == 0 { 1 } else { i as i64 + 10 }, hour, i as f64))
        })
        .collect();
    let out = rig.run(&[lane(records)], OnFailure::RetryFromFirstFailure).await;
    assert!(out.succeeded());
    let reg = testing::registry();
    let (ts, v) = stored(&rig.store.inner, &reg, "driver_fresh", int(1)).unwrap();
    assert_eq!(ts, t("2024-01-01T09:00:00Z"));
    assert_eq!(v[0], Some(Value { val: Some(Val::FloatVal(mid as f32)) }), "the first record with the newest time");
    // Every other driver once per view, written; driver 1's rows are written or skipped.
    let driver_1_rows = (0..n).filter(|i| i % 3 == 0).count();
    assert_eq!(out.stats.rows, 2 * n);
    assert_eq!(out.stats.written + out.stats.skipped, 2 * n);
    assert!(out.stats.skipped >= 2 * (driver_1_rows / 2), "most of driver 1's rows lose: {:?}", out.stats);
}

#[tokio::test]
async fn replaying_a_batch_changes_nothing() {
    let rig = Rig::new();
    // Same driver, same time, different values: the first record wins, now and on replay.
    let records = vec![record(0, row(1, 1, 0.1)), record(1, row(1, 1, 0.9)), record(2, row(2, 3, 0.3))];
    let first = rig.run(&[lane(records.clone())], OnFailure::RetryFromFirstFailure).await;
    let before = stored(&rig.store.inner, &testing::registry(), "driver_fresh", int(1));
    let again = rig.run(&[lane(records)], OnFailure::RetryFromFirstFailure).await;
    assert_eq!((first.stats.written, first.stats.skipped), (4, 2));
    assert_eq!((again.stats.written, again.stats.skipped), (0, 6), "a replay writes nothing");
    let after = stored(&rig.store.inner, &testing::registry(), "driver_fresh", int(1));
    assert_eq!(before, after);
    assert_eq!(after.unwrap().1[0], Some(Value { val: Some(Val::FloatVal(0.1)) }));
}

#[tokio::test]
async fn a_dead_letter_failure_fails_the_lane_from_the_first_letter_not_kept() {
    let rig = Rig::new();
    let records = vec![
        record(0, json!("bad 0")),
        record(1, row(1, 1, 0.1)),
        record(2, json!("bad 2")),
        record(3, row(2, 1, 0.1)),
    ];
    rig.sink.fail_after(1);
    let out = rig.run(&[lane(records.clone())], OnFailure::RetryFromFirstFailure).await;
    assert_eq!(out.lanes[0].failed_from, Some(2));
    assert_eq!(out.dead_lettered, 1);
    rig.sink.heal();
    let out = rig.run(&[lane(records[2..].to_vec())], OnFailure::RetryFromFirstFailure).await;
    assert!(out.succeeded());
    assert_eq!(
        rig.sink.letters().iter().map(|l| l.data.clone()).collect::<Vec<_>>(),
        vec![b"bad 0".to_vec(), b"bad 2".to_vec()]
    );
}

#[tokio::test]
async fn whole_batch_retries_dead_letter_nothing_until_the_batch_succeeds() {
    let rig = Rig::new();
    let lanes =
        vec![lane(vec![record(0, json!("bad")), record(1, row(1, 1, 0.1))]), lane(vec![record(0, row(2, 1, 0.1))])];
    rig.store.fail_after(2);
    let out = rig.run(&lanes, OnFailure::RetryWholeBatch).await;
    assert!(!out.succeeded());
    assert!(rig.sink.letters().is_empty());
    rig.store.heal();
    let out = rig.run(&lanes, OnFailure::RetryWholeBatch).await;
    assert!(out.succeeded());
    assert_eq!(rig.sink.letters().len(), 1);
}

#[tokio::test]
async fn records_use_the_streams_default_source_or_name_their_own() {
    let mut rig = Rig::new();
    rig.settings = PushSettings::from_env_with(&|name| match name {
        "LARDER_PUSH_SOURCE_MAP" => Some("customers=customer_push".into()),
        _ => None,
    })
    .unwrap();
    let customers = Lane {
        stream: "customers".into(),
        records: vec![
            record(0, json!({"cust": "c1", "ts": "2024-01-01T00:00:00Z", "rate_col": 1.5, "tags": ["t"]})),
            record(
                1,
                json!({"feature_view_name": "driver_rates", "driver_id": 9, "event_timestamp": "2024-01-01T00:00:00Z", "conv_rate": 0.9}),
            ),
        ],
    };
    let unrouted = lane(vec![record(0, row(1, 1, 0.1))]);
    let out = rig.run(&[customers, unrouted], OnFailure::RetryFromFirstFailure).await;
    assert!(out.succeeded());
    let reg = testing::registry();
    assert!(stored(&rig.store.inner, &reg, "customer_fresh", text("c1")).is_some());
    assert!(stored(&rig.store.inner, &reg, "driver_rates", int(9)).is_some());
    let letters = rig.sink.letters();
    assert_eq!(letters.len(), 1);
    assert!(letters[0].reason.contains("no default push source"), "{}", letters[0].reason);
}

#[test]
fn async_records_group_rows_by_entity_in_order() {
    let push = push_of(json!({"push_source_name": "driver_push", "df": {
        "driver_id": [1, 2, 1], "event_timestamp": ["2024-01-01T00:00:00Z", "2024-01-01T00:00:00Z", "2024-01-01T01:00:00Z"],
        "conv_rate": [0.1, 0.2, 0.3], "trips": [1, 2, 3], "city": "sf"}}));
    let prepared = prepare(&testing::registry(), &push).unwrap();
    let records = enqueue::records_for(&push, &prepared).unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(records.iter().map(|r| r.rows).collect::<Vec<_>>(), vec![2, 1]);
    assert_ne!(records[0].partition_key, records[1].partition_key);
    assert_eq!(records[0].partition_key.len(), 32);
    let first: Json = serde_json::from_slice(&records[0].data).unwrap();
    assert_eq!(
        first,
        json!({"push_source_name": "driver_push", "to": "online", "df": {
            "driver_id": [1, 1], "event_timestamp": ["2024-01-01T00:00:00Z", "2024-01-01T01:00:00Z"],
            "conv_rate": [0.1, 0.3], "trips": [1, 3], "city": "sf"}})
    );
    // Each record is itself a valid push.
    let again = request::parse_record(&records[0].data, None, "test").unwrap();
    assert_eq!(prepare(&testing::registry(), &again).unwrap().rows(), 4);
}

/// A stream view aggregating a declared Float64 and a declared Bool; the test adds aggregations
/// of a column the view does not declare (as a registry written elsewhere may).
const WINDOWED: &str = r#"
entities:
  sensor: {join_key: sensor_id, type: Int64}
sources:
  readings_file: {type: file, path: r.parquet, timestamp_field: ts}
  readings: {type: push, batch_source: readings_file}
stream_feature_views:
  minute:
    entities: [sensor]
    source: readings
    features: {reading: Float64, ok: Bool}
    aggregations:
      - {column: reading, function: sum, time_window: 1m}
      - {column: reading, function: count, time_window: 1m}
      - {column: ok, function: sum, time_window: 1m}
"#;

#[tokio::test]
async fn pushed_rows_feed_window_aggregations_with_nulls_and_nans_uncounted() {
    let mut reg = crate::registry::yaml::parse(WINDOWED, "features.yaml", PROJECT, 3).unwrap();
    let mut view = (*reg.feature_views["minute"]).clone();
    for function in ["sum", "count"] {
        view.aggregations.push(crate::registry::aggregation::Aggregation {
            column: "raw".into(),
            function: function.into(),
            window: std::time::Duration::from_secs(60),
            slide: None,
            name: String::new(),
        });
    }
    reg.feature_views.insert("minute".into(), Arc::new(view));
    let registry = crate::registry::RegistryCache::fixed(reg.clone());
    let store = MemoryStore::new();
    let push = |df: Json| push_of(json!({"push_source_name": "readings", "df": df}));
    let at = ["2026-01-01T00:00:05Z", "2026-01-01T00:00:20Z", "2026-01-01T00:00:40Z", "2026-01-01T00:00:59Z"];
    apply(
        &registry,
        &store,
        WriteOptions::default(),
        &push(json!({
            "sensor_id": 7, "ts": at,
            "reading": [1.5, -4.0, "NaN", null],
            "ok": [true, false, true, true],
            "raw": [2, "nan", 3.5, true],
        })),
    )
    .await
    .unwrap();
    // A column the view does not declare must still hold numbers.
    let bad = push(json!({"sensor_id": 7, "ts": "2026-01-01T00:00:30Z", "reading": 1.0, "ok": true, "raw": "many"}));
    let e = apply(&registry, &store, WriteOptions::default(), &bad).await.unwrap_err();
    assert_eq!(e.status(), 422);
    assert!(e.to_string().contains("column 'raw', row 0") && e.to_string().contains("many"), "{e}");

    let ask = json!({"features": ["minute:sum_reading_60s", "minute:count_reading_60s", "minute:sum_ok_60s",
        "minute:sum_raw_60s", "minute:count_raw_60s"], "entities": {"sensor_id": [7, 8]}});
    let req = crate::retrieval::Request::parse(ask.to_string().as_bytes()).unwrap();
    let now = t("2026-01-01T00:01:30Z");
    let answer = crate::retrieval::get_online_features(&reg, &store, &req, 5, now).await.unwrap();
    let answer: Json = serde_json::from_slice(&answer.to_json()).unwrap();
    let results = &answer["results"];
    let column = |i: usize| results[i + 1]["values"].clone();
    // The last closed minute [00:00, 00:01): NaN and null are not counted; true counts as 1.
    assert_eq!(column(0), json!([-2.5, null]));
    assert_eq!(column(1), json!([2, 0]));
    assert_eq!(column(2), json!([3.0, null]));
    assert_eq!(column(3), json!([6.5, null]));
    assert_eq!(column(4), json!([3, 0]));
    assert_eq!(results[1]["statuses"], json!(["PRESENT", "NULL_VALUE"]));
    assert_eq!(results[1]["event_timestamps"], json!(["2026-01-01T00:01:00Z", "1970-01-01T00:00:00Z"]));
}

#[tokio::test]
async fn a_topic_named_by_a_kafka_source_feeds_its_views_without_a_setting() {
    let mut reg = testing::registry();
    let mut view = (*reg.feature_views["driver_rates"]).clone();
    let batch = view.batch_source.clone().unwrap();
    view.stream_source = Some(crate::registry::DataSource {
        name: "driver_events".into(),
        kind: crate::registry::SourceKind::Kafka { topic: "driver-events".into(), options: Vec::new(), batch: None },
        ..batch
    });
    reg.feature_views.insert("driver_rates".into(), Arc::new(view));
    reg.reindex();
    let mut rig = Rig::new();
    rig.registry = crate::registry::RegistryCache::fixed(reg.clone());
    rig.settings = PushSettings::default();
    let kafka = |topic: &str, offset: i64, v: Json| {
        StreamRecord::new(
            Position::Kafka { topic: topic.into(), partition: 0, offset, key: None },
            serde_json::to_vec(&v).unwrap(),
        )
    };
    let topic = Lane { stream: "driver-events".into(), records: vec![kafka("driver-events", 0, row(5, 1, 0.5))] };
    let other = Lane { stream: "unknown".into(), records: vec![kafka("unknown", 0, row(6, 1, 0.5))] };
    let out = rig.run(&[topic, other], OnFailure::RetryFromFirstFailure).await;
    assert!(out.succeeded());
    assert!(stored(&rig.store.inner, &reg, "driver_rates", int(5)).is_some(), "the Kafka source's view");
    assert!(stored(&rig.store.inner, &reg, "driver_fresh", int(5)).is_none(), "a view of another source");
    let letters = rig.sink.letters();
    assert_eq!(letters.len(), 1, "the topic no source names and no setting routes");
    assert!(letters[0].reason.contains("no default push source"), "{}", letters[0].reason);
}
