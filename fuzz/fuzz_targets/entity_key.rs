//! Entity keys: a serialized `feast.types.EntityKey` (join keys and their values) decoded and
//! encoded as Feast's Redis key bytes (`keys::serialize_entity_key`, `KeyEncoder`) in every
//! serialization version, then read back by a reference decoder written from Feast's
//! `deserialize_entity_key`: a key that encodes must decode to the same keys and values.
//! The same values also go through the JSON entity path (`value::from_json` for each key
//! type), as get-online-features and push type them.

#![no_main]

use larder::keys::{KeyEncoder, serialize_entity_key};
use larder::proto::types::EntityKey;
use larder::proto::types::value::Val;
use larder::value::{self, Value, ValueType};
use libfuzzer_sys::fuzz_target;
use prost::Message;

fn u32_at(b: &[u8], at: &mut usize) -> u32 {
    let v = u32::from_le_bytes(b[*at..*at + 4].try_into().unwrap());
    *at += 4;
    v
}

fn bytes_at<'a>(b: &'a [u8], at: &mut usize, n: usize) -> &'a [u8] {
    let v = &b[*at..*at + n];
    *at += n;
    v
}

/// Feast's `deserialize_entity_key` for version 3: the join keys (sorted) and their values.
fn reference_decode(b: &[u8]) -> (Vec<String>, Vec<Val>) {
    let mut at = 0;
    let n = u32_at(b, &mut at) as usize;
    let mut names = Vec::with_capacity(n);
    for _ in 0..n {
        assert_eq!(u32_at(b, &mut at), 2, "a join key is tagged STRING");
        let len = u32_at(b, &mut at) as usize;
        let name = bytes_at(b, &mut at, len);
        names.push(String::from_utf8(name.to_vec()).expect("names are UTF-8"));
    }
    let mut values = Vec::with_capacity(n);
    for _ in 0..n {
        let tag = u32_at(b, &mut at);
        let len = u32_at(b, &mut at) as usize;
        let raw = bytes_at(b, &mut at, len);
        values.push(match tag {
            1 => Val::BytesVal(raw.to_vec()),
            2 => Val::StringVal(String::from_utf8(raw.to_vec()).expect("a string value is UTF-8")),
            3 => Val::Int32Val(i32::from_le_bytes(raw.try_into().expect("4 bytes"))),
            4 => Val::Int64Val(i64::from_le_bytes(raw.try_into().expect("8 bytes"))),
            8 => Val::UnixTimestampVal(i64::from_le_bytes(raw.try_into().expect("8 bytes"))),
            other => panic!("unknown value tag {other}"),
        });
    }
    assert_eq!(at, b.len(), "nothing after the values");
    (names, values)
}

fuzz_target!(|data: &[u8]| {
    let Ok(key) = EntityKey::decode(data) else { return };
    let names: Vec<&str> = key.join_keys.iter().map(String::as_str).collect();
    let values: Vec<&Value> = key.entity_values.iter().collect();
    for version in 0..=4 {
        let encoded = serialize_entity_key(&names, &values, version);
        if let Ok(encoder) = KeyEncoder::new(&names, version) {
            let mut out = Vec::new();
            let again = encoder.encode(&values, &mut out).map(|()| out);
            assert_eq!(encoded.as_ref().ok(), again.as_ref().ok(), "one-shot and reused encoders agree");
        }
        let Ok(encoded) = encoded else { continue };
        assert!((1..=3).contains(&version), "version {version} is refused");
        assert_eq!(names.len(), values.len());
        if version == 3 {
            let (got_names, got_values) = reference_decode(&encoded);
            let mut expected: Vec<(&str, &Value)> = names.iter().copied().zip(values.iter().copied()).collect();
            expected.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            assert_eq!(got_names, expected.iter().map(|(n, _)| n.to_string()).collect::<Vec<_>>());
            let want: Vec<Val> = expected.iter().map(|(_, v)| v.val.clone().expect("a key value is set")).collect();
            assert_eq!(got_values, want);
        }
    }
    // The JSON entity path: each value, as JSON, typed as every join-key type.
    for v in &values {
        let json = value::to_json(v);
        for ty in [ValueType::Int64, ValueType::Int32, ValueType::String, ValueType::Bytes, ValueType::UnixTimestamp] {
            if let Ok(typed) = value::from_json(&json, ty) {
                let _ = serialize_entity_key(&["k"], &[&typed], 3);
            }
        }
    }
});
