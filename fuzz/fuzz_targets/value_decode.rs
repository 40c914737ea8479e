//! Bytes read from the online store: a serialized `feast.types.Value` (a feature) or
//! `google.protobuf.Timestamp` (a view's `_ts` field). Decoded directly (`value::decode`,
//! `EventTime::from_proto_bytes`) and then as get-online-features meets them: planted in a store
//! under driver 1001, read back and written as Feast's JSON answer.

#![no_main]

use larder::keys;
use larder::online::memory::MemoryStore;
use larder::retrieval::{Request, get_online_features};
use larder::time::EventTime;
use larder::value;
use libfuzzer_sys::fuzz_target;

const REQUEST: &[u8] = br#"{"features": ["driver_hourly_stats:conv_rate", "driver_hourly_stats:city",
    "driver_hourly_stats:is_active"], "entities": {"driver_id": [1001]}}"#;

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = value::decode(data) {
        let _ = value::type_of(&v);
        let _ = value::to_json(&v);
        let mut out = Vec::new();
        value::write_json(&v, &mut out);
        serde_json::from_slice::<serde_json::Value>(&out).expect("a value's JSON parses");
    }
    if let Ok(t) = EventTime::from_proto_bytes(data) {
        let _ = t.to_rfc3339();
    }

    let registry = larder_fuzz::registry();
    let view = registry.view("driver_hourly_stats").expect("the example view");
    let key = keys::redis_key(
        &keys::serialize_entity_key(
            &["driver_id"],
            &[&value::from_json(&1001.into(), value::ValueType::Int64).unwrap()],
            3,
        )
        .unwrap(),
        larder_fuzz::PROJECT,
    );
    let good_ts = EventTime::new(1_704_067_200, 0).to_proto_bytes();
    let request = Request::parse(REQUEST).expect("the request");
    let now = EventTime::new(1_704_085_200, 0);
    // The input as a feature's value, then as the view's event time.
    for (feature, ts) in [(data, good_ts.as_slice()), (&b"\x35\x00\x00\x00\x3f"[..], data)] {
        let store = MemoryStore::new();
        store.set_field(&key, &view.layout.ts_field, ts);
        for field in &view.layout.feature_fields {
            store.set_field(&key, &field[..], feature);
        }
        if let Ok(response) = larder_fuzz::block_on(get_online_features(registry, &store, &request, 10, now)) {
            serde_json::from_slice::<serde_json::Value>(&response.to_json()).expect("the answer is JSON");
        }
    }
});
