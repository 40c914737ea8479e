//! Redis key bytes and hash field names, byte-identical to Feast (docs/compatibility.md §1-§2).
//!
//! - key = `serialize_entity_key(join keys sorted by name, version)` + project bytes;
//! - feature field = murmur3_x86_32(seed 0) of `"<view>:<feature>"`, 4 bytes little-endian;
//! - timestamp field = `"_ts:<view>"`.
//!
//! [`KeyEncoder`] precomputes everything that depends only on the join-key names, so building a
//! key at request time is a few appends.

use crate::error::{Error, Result};
use crate::proto::types::value::Val;
use crate::value::Value;

/// `ValueType` tags used inside serialized entity keys.
const TAG_BYTES: u32 = 1;
const TAG_STRING: u32 = 2;
const TAG_INT32: u32 = 3;
const TAG_INT64: u32 = 4;
const TAG_UNIX_TIMESTAMP: u32 = 8;

/// The hash field of a feature: murmur3 x86 32-bit, seed 0, little-endian.
pub fn feature_field(view: &str, feature: &str) -> [u8; 4] {
    let text = format!("{view}:{feature}");
    murmur3::murmur3_32(&mut std::io::Cursor::new(text.as_bytes()), 0)
        .expect("reading from memory cannot fail")
        .to_le_bytes()
}

/// The hash field holding a view's event time.
pub fn ts_field(view: &str) -> Vec<u8> {
    format!("_ts:{view}").into_bytes()
}

/// The join key and value Feast uses for views without entities.
pub const DUMMY_ENTITY_NAME: &str = "__dummy";
pub const DUMMY_JOIN_KEY: &str = "__dummy_id";

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Appends one entity value (tag, length, bytes). Only the kinds Feast allows in keys.
pub fn put_key_value(out: &mut Vec<u8>, value: &Value, version: u32) -> Result<()> {
    match &value.val {
        Some(Val::StringVal(s)) => {
            put_u32(out, TAG_STRING);
            put_u32(out, s.len() as u32);
            out.extend_from_slice(s.as_bytes());
        }
        Some(Val::BytesVal(b)) => {
            put_u32(out, TAG_BYTES);
            put_u32(out, b.len() as u32);
            out.extend_from_slice(b);
        }
        Some(Val::Int32Val(i)) => {
            put_u32(out, TAG_INT32);
            put_u32(out, 4);
            out.extend_from_slice(&i.to_le_bytes());
        }
        Some(Val::Int64Val(i)) => {
            put_u32(out, TAG_INT64);
            if version <= 1 {
                // Version 1 packed int64 into 4 bytes (struct "<l"), truncating.
                put_u32(out, 4);
                out.extend_from_slice(&(*i as i32).to_le_bytes());
            } else {
                put_u32(out, 8);
                out.extend_from_slice(&i.to_le_bytes());
            }
        }
        Some(Val::UnixTimestampVal(i)) => {
            put_u32(out, TAG_UNIX_TIMESTAMP);
            put_u32(out, 8);
            out.extend_from_slice(&i.to_le_bytes());
        }
        _ => {
            return Err(Error::InvalidValue(format!(
                "an entity key value must be a string, bytes, int32, int64 or unix timestamp, got {}",
                crate::value::type_of(value)
            )));
        }
    }
    Ok(())
}

/// Feast's `serialize_entity_key`: join keys sorted by name, names first, then values.
pub fn serialize_entity_key(join_keys: &[&str], values: &[&Value], version: u32) -> Result<Vec<u8>> {
    let encoder = KeyEncoder::new(join_keys, version)?;
    let mut out = Vec::new();
    encoder.encode(values, &mut out)?;
    Ok(out)
}

/// Builds the Redis key: the serialized entity key followed by the project name, no separator.
pub fn redis_key(entity_key: &[u8], project: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(entity_key.len() + project.len());
    key.extend_from_slice(entity_key);
    key.extend_from_slice(project.as_bytes());
    key
}

/// Encodes entity keys for one fixed set of join keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyEncoder {
    /// The serialized names part (with the count for v3).
    prefix: Vec<u8>,
    /// `order[i]` = index, in the caller's join-key order, of the i-th key in sorted order.
    order: Vec<usize>,
    version: u32,
}

impl KeyEncoder {
    pub fn new(join_keys: &[&str], version: u32) -> Result<Self> {
        if !(1..=3).contains(&version) {
            return Err(Error::Config(format!(
                "entity_key_serialization_version {version} is not supported (use 3, or 2 for old stores)"
            )));
        }
        let mut order: Vec<usize> = (0..join_keys.len()).collect();
        // Python sorts by str code points; for UTF-8 that is the same as byte order.
        order.sort_by(|a, b| join_keys[*a].as_bytes().cmp(join_keys[*b].as_bytes()));
        let mut prefix = Vec::new();
        if version >= 3 {
            put_u32(&mut prefix, join_keys.len() as u32);
        }
        for &i in &order {
            put_u32(&mut prefix, TAG_STRING);
            if version >= 3 {
                put_u32(&mut prefix, join_keys[i].len() as u32);
            }
            prefix.extend_from_slice(join_keys[i].as_bytes());
        }
        Ok(KeyEncoder { prefix, order, version })
    }

    /// Appends the serialized entity key for `values`, given in the caller's join-key order.
    pub fn encode(&self, values: &[&Value], out: &mut Vec<u8>) -> Result<()> {
        if values.len() != self.order.len() {
            return Err(Error::internal(format!(
                "entity key has {} join keys but {} values",
                self.order.len(),
                values.len()
            )));
        }
        out.extend_from_slice(&self.prefix);
        for &i in &self.order {
            put_key_value(out, values[i], self.version)?;
        }
        Ok(())
    }

    /// The full Redis key for `values` in `project`.
    pub fn redis_key(&self, values: &[&Value], project: &str) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(self.prefix.len() + 16 * values.len() + project.len());
        self.encode(values, &mut out)?;
        out.extend_from_slice(project.as_bytes());
        Ok(out)
    }
}

/// Hash slots of a Redis Cluster.
pub const SLOTS: usize = 16384;

/// The Redis Cluster hash slot of a key, as Redis computes it: CRC16 (XMODEM) of the key, or of
/// the part between the first `{` and the next `}` when that part is not empty (a hash tag).
pub fn slot(key: &[u8]) -> u16 {
    let hashed = match key.iter().position(|&b| b == b'{') {
        Some(open) => match key[open + 1..].iter().position(|&b| b == b'}') {
            Some(len) if len > 0 => &key[open + 1..open + 1 + len],
            _ => key,
        },
        None => key,
    };
    crc16::State::<crc16::XMODEM>::calculate(hashed) % SLOTS as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }
    fn int64(i: i64) -> Value {
        Value { val: Some(Val::Int64Val(i)) }
    }
    fn int32(i: i32) -> Value {
        Value { val: Some(Val::Int32Val(i)) }
    }
    fn string(s: &str) -> Value {
        Value { val: Some(Val::StringVal(s.into())) }
    }

    #[test]
    fn field_names_match_reference_vectors() {
        // docs/compatibility.md §1.2.
        assert_eq!(hex(&feature_field("feature_view_1", "feature_10")), "266d5f39");
        assert_eq!(&feature_field("feature_view_1", "feature_10"), b"&m_9");
        assert_eq!(hex(&feature_field("feature_view_1", "feature_11")), "c3379abf");
        assert_eq!(hex(&feature_field("feature_view_1", "feature_12")), "7772b564");
        assert_eq!(hex(&feature_field("feature_view_1", "my-feature-view:feature1")), "5369864a");
        assert_eq!(hex(&feature_field("driver_hourly_stats", "conv_rate")), "6160e3da");
        assert_eq!(hex(&feature_field("driver_hourly_stats", "acc_rate")), "fa5e58ad");
        assert_eq!(hex(&feature_field("driver_hourly_stats", "avg_daily_trips")), "18a5e5a3");
        assert_eq!(ts_field("driver_hourly_stats"), b"_ts:driver_hourly_stats");
    }

    #[test]
    fn entity_keys_match_reference_vectors() {
        // docs/compatibility.md §2.4.
        let k = serialize_entity_key(&["driver_id"], &[&int64(1001)], 3).unwrap();
        assert_eq!(hex(&k), "0100000002000000090000006472697665725f69640400000008000000e903000000000000");
        assert_eq!(k.len(), 37);
        assert_eq!(hex(&redis_key(&k, "feast_demo")), hex(&k) + "66656173745f64656d6f");

        let k2 = serialize_entity_key(&["driver_id"], &[&int64(1001)], 2).unwrap();
        assert_eq!(hex(&k2), "020000006472697665725f69640400000008000000e903000000000000");

        let s3 = serialize_entity_key(&["user_id"], &[&string("abc")], 3).unwrap();
        assert_eq!(hex(&s3), "010000000200000007000000757365725f69640200000003000000616263");
        let s2 = serialize_entity_key(&["user_id"], &[&string("abc")], 2).unwrap();
        assert_eq!(hex(&s2), "02000000757365725f69640200000003000000616263");

        // Given as {driver_id, customer_id}; sorted to customer_id, driver_id.
        let multi = serialize_entity_key(&["driver_id", "customer_id"], &[&int64(1001), &string("c1")], 3).unwrap();
        assert_eq!(
            hex(&multi),
            [
                "02000000",
                "020000000b000000637573746f6d65725f6964",
                "02000000090000006472697665725f6964",
                "02000000020000006331",
                "0400000008000000e903000000000000",
            ]
            .concat()
        );

        let full = redis_key(&serialize_entity_key(&["entity"], &[&int32(1)], 3).unwrap(), "test");
        assert_eq!(hex(&full), "010000000200000006000000656e7469747903000000040000000100000074657374");

        let neg = serialize_entity_key(&["id"], &[&int64(-1)], 3).unwrap();
        assert_eq!(hex(&neg), "01000000020000000200000069640400000008000000ffffffffffffffff");

        let dummy = serialize_entity_key(&[DUMMY_JOIN_KEY], &[&string("")], 3).unwrap();
        assert_eq!(hex(&dummy), "01000000020000000a0000005f5f64756d6d795f69640200000000000000");

        assert_eq!(hex(&serialize_entity_key(&[], &[], 3).unwrap()), "00000000");
    }

    #[test]
    fn version_one_truncates_int64_as_documented() {
        // docs/specs/online_store_format.md: v1 key for driver_id=1002.
        let k = serialize_entity_key(&["driver_id"], &[&int64(1002)], 1).unwrap();
        assert_eq!(hex(&k), "020000006472697665725f69640400000004000000ea030000");
    }

    #[test]
    fn unsupported_key_values_are_errors() {
        let f = Value { val: Some(Val::DoubleVal(1.0)) };
        let err = serialize_entity_key(&["x"], &[&f], 3).unwrap_err();
        assert!(err.to_string().contains("Float64"), "{err}");
        assert_eq!(err.status(), 422);
        let null = serialize_entity_key(&["x"], &[&crate::value::NULL], 3).unwrap_err();
        assert_eq!(null.status(), 422);
        assert!(null.to_string().starts_with("an entity key value must be a string, bytes, int32, int64"), "{null}");
        let version = KeyEncoder::new(&["x"], 4).unwrap_err();
        assert_eq!(version.code(), "config_invalid");
        assert!(version.to_string().starts_with("entity_key_serialization_version 4 is not supported"), "{version}");
        let count = KeyEncoder::new(&["x"], 3).unwrap().encode(&[], &mut Vec::new()).unwrap_err();
        assert_eq!(count.to_string(), "entity key has 1 join keys but 0 values");
    }

    #[test]
    fn bytes_timestamp_and_unicode_keys_match_feast() {
        // Printed by Feast 0.67's `serialize_entity_key(EntityKey(...), 3)`.
        let bytes = Value { val: Some(Val::BytesVal(vec![0, 255, b'a', b'b'])) };
        let k = serialize_entity_key(&["blob"], &[&bytes], 3).unwrap();
        assert_eq!(hex(&k), "010000000200000004000000626c6f62010000000400000000ff6162");
        let ts = Value { val: Some(Val::UnixTimestampVal(1_767_225_600)) };
        let k = serialize_entity_key(&["seen"], &[&ts], 3).unwrap();
        assert_eq!(hex(&k), "0100000002000000040000007365656e080000000800000000b9556900000000");
        // Names sorted (dob_ssn < zip), a multi-byte string value counted in bytes.
        let k = serialize_entity_key(&["zip", "dob_ssn"], &[&int64(-1), &string("é1")], 3).unwrap();
        assert_eq!(
            hex(&k),
            "020000000200000007000000646f625f73736e02000000030000007a69700200000003000000c3a9310400000008000000ffffffffffffffff"
        );
    }

    #[test]
    fn an_encoder_reused_gives_feasts_bytes_for_each_call() {
        // Join keys given as (b, a); Feast 0.67 serializes EntityKey(["b", "a"], [5, "q"]) as:
        let feast = "0200000002000000010000006102000000010000006202000000010000007104000000080000000500000000000000";
        let enc = KeyEncoder::new(&["b", "a"], 3).unwrap();
        for _ in 0..2 {
            let key = enc.redis_key(&[&int64(5), &string("q")], "proj").unwrap();
            assert_eq!(hex(&key), format!("{feast}70726f6a"));
        }
    }
}
