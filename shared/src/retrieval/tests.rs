use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::online::memory::MemoryStore;
use crate::online::{ViewWrite, WriteMode, WriteRow};
use crate::registry::{Registry, yaml};
use crate::value::from_json;

const DEFS: &str = r#"
entities:
  driver: {join_key: driver_id, type: Int64}
  customer: {join_key: customer_id, type: String}
  zone: {join_key: zipcode, type: Int64}
sources:
  s: {type: file, path: x.parquet, timestamp_field: ts}
feature_views:
  stats:
    entities: [driver]
    ttl: 1h
    source: s
    features: {conv_rate: Float32, trips: Int64, city: String, added_later: Int64}
  pair:
    entities: [driver, customer]
    source: s
    features: {score: Float64}
  global:
    source: s
    features: {total: Int64}
  other:
    entities: [driver]
    source: s
    features: {trips: Int64}
  seen:
    entities: [driver]
    source: s
    features: {last_seen: UnixTimestamp}
feature_services:
  svc:
    features:
      - view: stats
        alias: st
        features: [trips, conv_rate]
        join_key_map: {driver_id: rider}
"#;

const NOW: i64 = 1_800_000_000;

fn registry() -> Registry {
    yaml::parse(DEFS, "features.yaml", "proj", 3).unwrap()
}

async fn write(
    store: &MemoryStore,
    reg: &Registry,
    view: &str,
    keys: &[&[serde_json::Value]],
    at: i64,
    values: &[serde_json::Value],
) {
    write_at(store, reg, view, keys, EventTime::new(at, 0), values).await
}

async fn write_at(
    store: &MemoryStore,
    reg: &Registry,
    view: &str,
    keys: &[&[serde_json::Value]],
    at: EventTime,
    values: &[serde_json::Value],
) {
    let v = &reg.feature_views[view];
    let key_values: Vec<Value> =
        v.entity_columns.iter().zip(keys[0]).map(|(c, j)| from_json(j, c.dtype).unwrap()).collect();
    let refs: Vec<&Value> = key_values.iter().collect();
    let key = v.layout.key_encoder.redis_key(&refs, "proj").unwrap();
    let typed: Vec<Value> = v.features.iter().zip(values).map(|(f, j)| from_json(j, f.dtype).unwrap()).collect();
    // Features not given (e.g. `added_later`) are written as nothing: drop their fields.
    let row = WriteRow::encode(key, at, &typed);
    let fields: Vec<[u8; 4]> = v.layout.feature_fields[..values.len()].to_vec();
    store
        .write(&ViewWrite {
            ts_field: &v.layout.ts_field,
            fields: &fields,
            rows: vec![row],
            mode: WriteMode::NewestWins,
            key_ttl_seconds: None,
        })
        .await
        .unwrap();
}

async fn setup() -> (Registry, MemoryStore) {
    let reg = registry();
    let store = MemoryStore::new();
    write(&store, &reg, "stats", &[&[json!(1001)]], NOW - 60, &[json!(0.5), json!(7), json!("sf")]).await;
    write(&store, &reg, "stats", &[&[json!(1002)]], NOW - 7200, &[json!(0.25), json!(3), json!(null)]).await;
    write(&store, &reg, "other", &[&[json!(1001)]], NOW - 5, &[json!(99)]).await;
    write(&store, &reg, "pair", &[&[json!(1001), json!("c1")]], NOW - 1, &[json!(1.5)]).await;
    write(&store, &reg, "global", &[&[json!("")]], NOW - 2, &[json!(12345)]).await;
    (reg, store)
}

async fn ask(reg: &Registry, store: &MemoryStore, body: serde_json::Value) -> Result<Response> {
    let req = Request::parse(body.to_string().as_bytes())?;
    get_online_features(reg, store, &req, 5, EventTime::new(NOW, 0)).await
}

fn json_of(r: &Response) -> serde_json::Value {
    serde_json::from_slice(&r.to_json()).unwrap()
}

#[tokio::test]
async fn answers_in_feast_shape_with_statuses() {
    let (reg, store) = setup().await;
    let r = ask(
        &reg,
        &store,
        json!({"features": ["stats:trips", "stats:conv_rate", "stats:city", "stats:added_later"], "entities": {"driver_id": [1001, 1002, 9999]}}),
    )
    .await
    .unwrap();
    let j = json_of(&r);
    assert_eq!(j["metadata"]["feature_names"], json!(["driver_id", "trips", "conv_rate", "city", "added_later"]));
    assert_eq!(
        j["results"][0],
        json!({"values": [1001, 1002, 9999], "statuses": ["PRESENT", "PRESENT", "PRESENT"], "event_timestamps": ["1970-01-01T00:00:00Z", "1970-01-01T00:00:00Z", "1970-01-01T00:00:00Z"]})
    );
    // 1001 is fresh; 1002 is older than the 1h TTL (value kept); 9999 has no row.
    assert_eq!(j["results"][1]["values"], json!([7, 3, null]));
    assert_eq!(j["results"][1]["statuses"], json!(["PRESENT", "OUTSIDE_MAX_AGE", "NOT_FOUND"]));
    assert_eq!(
        j["results"][1]["event_timestamps"],
        json!(["2027-01-15T07:59:00Z", "2027-01-15T06:00:00Z", "1970-01-01T00:00:00Z"])
    );
    assert_eq!(j["results"][2]["values"], json!([0.5, 0.25, null]));
    // A stored null is NULL_VALUE; a feature never written is NOT_FOUND.
    assert_eq!(j["results"][3]["statuses"], json!(["PRESENT", "NULL_VALUE", "NOT_FOUND"]));
    assert_eq!(j["results"][4]["statuses"], json!(["NOT_FOUND", "NOT_FOUND", "NOT_FOUND"]));
    assert_eq!(EventTime::new(NOW, 0).to_rfc3339(), "2027-01-15T08:00:00Z");
}

#[tokio::test]
async fn exact_json_text_for_one_row() {
    let (reg, store) = setup().await;
    let r = ask(&reg, &store, json!({"features": ["other:trips"], "entities": {"driver_id": [1001]}})).await.unwrap();
    assert_eq!(
        String::from_utf8(r.to_json()).unwrap(),
        r#"{"results":[{"values":[1001],"statuses":["PRESENT"],"event_timestamps":["1970-01-01T00:00:00Z"]},{"values":[99],"statuses":["PRESENT"],"event_timestamps":["2027-01-15T07:59:55Z"]}],"metadata":{"feature_names":["driver_id","trips"]}}"#
    );
}

#[tokio::test]
async fn names_order_and_duplicate_rows() {
    let (reg, store) = setup().await;
    // Features grouped by view, views in the order they first appear, as Feast answers (not
    // the exact request order); full names use the view name.
    let r = ask(
        &reg,
        &store,
        json!({"features": ["stats:trips", "other:trips", "stats:conv_rate"], "entities": {"request_only": ["x", "y"], "driver_id": [1001, 1001]}, "full_feature_names": true}),
    )
    .await
    .unwrap();
    let names: Vec<&str> = r.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["driver_id", "stats__trips", "stats__conv_rate", "other__trips"]);
    assert_eq!(json_of(&r)["results"][2]["values"], json!([0.5, 0.5]));
    assert_eq!(json_of(&r)["results"][3]["values"], json!([99, 99]));
    let r = ask(
        &reg,
        &store,
        json!({"features": ["other:trips", "stats:conv_rate", "pair:score", "stats:city", "other:trips"], "entities": {"driver_id": [1001], "customer_id": ["c1"]}}),
    )
    .await;
    // `other:trips` asked twice is one column.
    let names: Vec<String> = r.unwrap().columns.into_iter().map(|c| c.name).collect();
    // (`json!` sorts object keys, so the request's entity order is alphabetical.)
    assert_eq!(names, ["customer_id", "driver_id", "trips", "conv_rate", "city", "score"]);
    // Without full names the two `trips` collide: a clear 400.
    let e = ask(&reg, &store, json!({"features": ["stats:trips", "other:trips"], "entities": {"driver_id": [1001]}}))
        .await
        .unwrap_err();
    assert_eq!(e.status(), 400);
    assert!(e.to_string().contains("full_feature_names"), "{e}");
}

#[tokio::test]
async fn feature_service_with_alias_and_join_key_map() {
    let (reg, store) = setup().await;
    let r = ask(&reg, &store, json!({"feature_service": "svc", "features": ["ignored:x"], "entities": {"rider": [1002, 1001]}, "full_feature_names": true})).await.unwrap();
    let j = json_of(&r);
    assert_eq!(j["metadata"]["feature_names"], json!(["rider", "st__trips", "st__conv_rate"]));
    assert_eq!(j["results"][1]["values"], json!([3, 7]));
    // The join key's own name is accepted when the mapped one is absent, as Feast does; the
    // column is answered as the project's join key.
    let r =
        ask(&reg, &store, json!({"feature_service": "svc", "entities": {"driver_id": [1002, 1001, 5]}})).await.unwrap();
    let j = json_of(&r);
    assert_eq!(j["metadata"]["feature_names"], json!(["driver_id", "trips", "conv_rate"]));
    assert_eq!(j["results"][1]["values"], json!([3, 7, null]));
    assert_eq!(j["results"][1]["statuses"], json!(["OUTSIDE_MAX_AGE", "PRESENT", "NOT_FOUND"]));
    // The mapped name wins when both are given.
    let r = ask(&reg, &store, json!({"feature_service": "svc", "entities": {"driver_id": [1], "rider": [1001]}}))
        .await
        .unwrap();
    assert_eq!(json_of(&r)["results"][2]["values"], json!([7]));
    // Neither: the error names both.
    let e = ask(&reg, &store, json!({"feature_service": "svc", "entities": {"customer_id": ["a"]}})).await.unwrap_err();
    assert_eq!(e.status(), 400);
    assert!(e.to_string().contains("'rider'") && e.to_string().contains("'driver_id'"), "{e}");
}

#[tokio::test]
async fn every_request_column_that_is_a_join_key_of_the_project_is_answered() {
    let (reg, store) = setup().await;
    // `zipcode` (an entity no requested view uses) and `customer_id` (used by another view) are
    // answered, typed by their entities; `request_only` is not a join key and is not.
    let r = ask(
        &reg,
        &store,
        json!({"features": ["stats:trips"], "entities": {"zipcode": ["31319", 0], "request_only": ["x", "y"], "customer_id": ["c1", 7], "driver_id": [1001, 1002]}}),
    )
    .await
    .unwrap();
    let j = json_of(&r);
    // In the request's order (`json!` sorts object keys: alphabetical here).
    assert_eq!(j["metadata"]["feature_names"], json!(["customer_id", "driver_id", "zipcode", "trips"]));
    assert_eq!(j["results"][2]["values"], json!([31319, 0]));
    assert_eq!(j["results"][2]["statuses"], json!(["PRESENT", "PRESENT"]));
    assert_eq!(j["results"][0]["values"], json!(["c1", "7"]));
    assert_eq!(j["results"][3]["values"], json!([7, 3]));
    // Such a column is checked against its type like any join key.
    let e = ask(&reg, &store, json!({"features": ["stats:trips"], "entities": {"zipcode": ["abc"], "driver_id": [1]}}))
        .await
        .unwrap_err();
    assert_eq!(e.status(), 422);
    assert!(e.to_string().contains("'zipcode'") && e.to_string().contains("project"), "{e}");
}

#[tokio::test]
async fn a_null_timestamp_is_stored_as_feast_does_and_read_as_null() {
    let (reg, store) = setup().await;
    write(&store, &reg, "seen", &[&[json!(1001)]], NOW - 3, &[json!(null)]).await;
    write(&store, &reg, "seen", &[&[json!(1002)]], NOW - 3, &[json!(1_700_000_000)]).await;
    // The bytes Feast writes for pandas' NaT: unix_timestamp_val (field 8) = the minimum int64.
    let null = value::from_json(&json!(null), ValueType::UnixTimestamp).unwrap();
    let mut feast = vec![0x40];
    feast.extend([0x80; 9]);
    feast.push(0x01);
    assert_eq!(value::encode(&null), feast);
    let r = ask(&reg, &store, json!({"features": ["seen:last_seen"], "entities": {"driver_id": [1001, 1002, 3]}}))
        .await
        .unwrap();
    let j = json_of(&r);
    assert_eq!(j["results"][1]["values"], json!([null, 1_700_000_000, null]));
    assert_eq!(j["results"][1]["statuses"], json!(["NULL_VALUE", "PRESENT", "NOT_FOUND"]));
}

/// The view's ttl at its boundary, in nanoseconds: a value exactly `ttl` old is still PRESENT,
/// one nanosecond older is OUTSIDE_MAX_AGE (value and time kept), and the request time's own
/// nanoseconds count. Feast's Go server compares whole seconds (`now.seconds - event.seconds >
/// ttl.seconds`, reference §5.3); `go_outside` is that rule, and the cases where it answers
/// PRESENT up to a second past the ttl are the documented difference (docs/compatibility.md §8).
#[tokio::test]
async fn ttl_boundary_in_nanoseconds_and_against_feasts_go_rule() {
    let reg = registry();
    let store = MemoryStore::new();
    let now = EventTime::new(NOW, 500_000_000);
    let hour = 3600;
    // (driver, event time, Larder's status, Go's status)
    let cases: [(i64, EventTime, &str, &str); 7] = [
        (1, EventTime::new(NOW - hour, 500_000_000), "PRESENT", "PRESENT"), // age == ttl
        (2, EventTime::new(NOW - hour, 499_999_999), "OUTSIDE_MAX_AGE", "PRESENT"), // ttl + 1 ns
        (3, EventTime::new(NOW - hour, 500_000_001), "PRESENT", "PRESENT"), // ttl - 1 ns
        (4, EventTime::new(NOW - hour, 0), "OUTSIDE_MAX_AGE", "PRESENT"),   // ttl + 0.5 s: Go's second
        (5, EventTime::new(NOW - hour - 1, 600_000_000), "OUTSIDE_MAX_AGE", "OUTSIDE_MAX_AGE"), // ttl + 0.9 s
        (6, EventTime::new(NOW - hour - 1, 400_000_000), "OUTSIDE_MAX_AGE", "OUTSIDE_MAX_AGE"), // ttl + 1.1 s
        (7, EventTime::new(NOW + 10, 0), "PRESENT", "PRESENT"),             // from the future
    ];
    let go_outside = |event: EventTime| now.secs - event.secs > hour;
    for (driver, at, _, go) in &cases {
        write_at(&store, &reg, "stats", &[&[json!(driver)]], *at, &[json!(0.5), json!(driver * 10)]).await;
        assert_eq!(go_outside(*at), *go == "OUTSIDE_MAX_AGE", "driver {driver}: Go's rule as documented");
    }
    // `pair` has no ttl: never outside, however old.
    write_at(&store, &reg, "pair", &[&[json!(1), json!("c")]], EventTime::new(1, 0), &[json!(2.5)]).await;
    let ids: Vec<i64> = cases.iter().map(|c| c.0).collect();
    let req = Request::parse(
        json!({"features": ["stats:trips", "pair:score"], "entities": {"driver_id": ids, "customer_id": vec!["c"; 7]}})
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    let j = json_of(&get_online_features(&reg, &store, &req, 10, now).await.unwrap());
    let trips = &j["results"][2];
    assert_eq!(j["metadata"]["feature_names"][2], "trips");
    let want: Vec<&str> = cases.iter().map(|c| c.2).collect();
    assert_eq!(trips["statuses"], json!(want));
    // The value and its time are answered whatever the status.
    assert_eq!(trips["values"], json!([10, 20, 30, 40, 50, 60, 70]));
    let times: Vec<String> = cases.iter().map(|c| c.1.to_rfc3339()).collect();
    assert_eq!(trips["event_timestamps"], json!(times));
    assert_eq!(trips["event_timestamps"][1], "2027-01-15T07:00:00.499999999Z");
    assert_eq!(j["results"][3]["statuses"][0], "PRESENT", "no ttl, 57 years old: {j}");
}

#[tokio::test]
async fn multi_key_and_entityless_views() {
    let (reg, store) = setup().await;
    let r = ask(&reg, &store, json!({"features": ["pair:score", "global:total"], "entities": {"customer_id": ["c1", "c2"], "driver_id": [1001, 1001]}})).await.unwrap();
    let j = json_of(&r);
    assert_eq!(j["metadata"]["feature_names"], json!(["customer_id", "driver_id", "score", "total"]));
    assert_eq!(j["results"][2]["values"], json!([1.5, null]));
    assert_eq!(j["results"][3]["values"], json!([12345, 12345]));
    // A numeric value for a String join key is its text, as Feast's server does.
    let r =
        ask(&reg, &store, json!({"features": ["pair:score"], "entities": {"customer_id": [7], "driver_id": ["1001"]}}))
            .await
            .unwrap();
    assert_eq!(json_of(&r)["results"][0]["values"], json!(["7"]));
    assert_eq!(json_of(&r)["results"][1]["values"], json!([1001]));
}

#[tokio::test]
async fn client_mistakes_are_4xx_naming_the_problem() {
    let (reg, store) = setup().await;
    let cases = [
        (json!({"features": ["nope:x"], "entities": {"driver_id": [1]}}), 404, "nope"),
        (json!({"features": ["stats:nope"], "entities": {"driver_id": [1]}}), 404, "stats:nope"),
        (json!({"feature_service": "nope", "entities": {"driver_id": [1]}}), 404, "nope"),
        (json!({"features": ["stats"], "entities": {"driver_id": [1]}}), 400, "feature_view:feature"),
        (json!({"features": [], "entities": {"driver_id": [1]}}), 400, "no features"),
        (json!({"features": ["stats:trips"], "entities": {}}), 400, "empty"),
        (json!({"features": ["stats:trips"], "entities": {"customer_id": ["a"]}}), 400, "driver_id"),
        (json!({"features": ["stats:trips"], "entities": {"driver_id": [1, 2], "x": [1]}}), 400, "'x' has 1 values"),
        (json!({"features": ["stats:trips"], "entities": {"driver_id": [1, "abc"]}}), 422, "row 1"),
        (json!({"features": ["stats:trips"], "entities": {"driver_id": [null]}}), 422, "null"),
        (json!({"features": ["stats:trips"], "entities": {"driver_id": [1, 2, 3, 4, 5, 6]}}), 413, "limit is 5"),
        (json!({"features": ["stats@v2:trips"], "entities": {"driver_id": [1]}}), 422, "version"),
        (json!({"features": ["stats@latest:trips"], "entities": {"driver_id": [1]}}), 422, "'stats@latest': versioned"),
        (json!({"features": ["stats:"], "entities": {"driver_id": [1]}}), 400, "'stats:' is not of the form"),
        (json!({"features": [":trips"], "entities": {"driver_id": [1]}}), 400, "':trips' is not of the form"),
        (json!({"features": ["stats:trips"], "entities": [1]}), 400, "an object mapping entity columns to lists"),
        (
            json!({"features": ["stats:trips"], "entities": {"driver_id": [1]}, "include_feature_view_version_metadata": "yes"}),
            400,
            "include_feature_view_version_metadata must be true or false",
        ),
        // Differences from Feast on purpose (docs/compatibility.md §8): Feast answers nulls for
        // a half-given compound key, truncates 1.5 and reads true as 1, and takes "true".
        (json!({"features": ["pair:score"], "entities": {"driver_id": [1001]}}), 400, "customer_id"),
        (json!({"features": ["stats:trips"], "entities": {"driver_id": [1.5]}}), 422, "row 0"),
        (json!({"features": ["stats:trips"], "entities": {"driver_id": [true]}}), 422, "row 0"),
        (
            json!({"features": ["stats:trips"], "entities": {"driver_id": [1]}, "full_feature_names": "true"}),
            400,
            "full_feature_names",
        ),
    ];
    for (body, status, needle) in cases {
        let e = ask(&reg, &store, body.clone()).await.unwrap_err();
        assert_eq!(e.status(), status, "{body}: {e}");
        assert!(e.to_string().contains(needle), "{body}: {e}");
    }
}

#[tokio::test]
async fn exactly_the_entity_row_limit_is_answered() {
    let (reg, store) = setup().await;
    let r = ask(&reg, &store, json!({"features": ["stats:trips"], "entities": {"driver_id": [1001, 1002, 1, 2, 3]}}))
        .await
        .unwrap();
    assert_eq!(json_of(&r)["results"][1]["values"], json!([7, 3, null, null, null]));
}

#[tokio::test]
async fn zero_rows_is_an_empty_answer() {
    let (reg, store) = setup().await;
    let r = ask(&reg, &store, json!({"features": ["stats:trips"], "entities": {"driver_id": []}})).await.unwrap();
    assert_eq!(
        json_of(&r),
        json!({"results": [{"values": [], "statuses": []}, {"values": [], "statuses": []}], "metadata": {"feature_names": ["driver_id", "trips"]}})
    );
}

#[tokio::test]
async fn disabled_views_are_not_served() {
    let (mut reg, store) = setup().await;
    let mut v = (*reg.feature_views["other"]).clone();
    v.disabled = true;
    reg.feature_views.insert("other".into(), Arc::new(v));
    let e =
        ask(&reg, &store, json!({"features": ["other:trips"], "entities": {"driver_id": [1001]}})).await.unwrap_err();
    assert_eq!(e.status(), 422);
    assert!(e.to_string().contains("disabled"));
}
