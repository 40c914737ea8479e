//! JSON (HTTP) <-> [`Value`], as Feast's server reads and writes it.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use super::{NULL, T, Value, ValueType, list_from_scalars, v};
use crate::proto::types::{Map, RepeatedValue, value::Val};
use crate::time::EventTime;

// ---------------------------------------------------------------------------------------------
// JSON -> Value
// ---------------------------------------------------------------------------------------------

fn describe(j: &serde_json::Value) -> String {
    let text = j.to_string();
    if text.len() > 60 { format!("{}...", &text[..text.floor_char_boundary(57)]) } else { text }
}

fn json_int(j: &serde_json::Value) -> Option<i64> {
    match j {
        serde_json::Value::Number(n) => n.as_i64().or_else(|| {
            // Python's int(1001.0) is 1001; a fractional or out-of-range number is not an int.
            n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18).map(|f| f as i64)
        }),
        // Feast's server runs int(x) on the text, so "1001" is accepted as an integer.
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn json_float(j: &serde_json::Value) -> Option<f64> {
    match j {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => match s.trim() {
            "NaN" | "nan" => Some(f64::NAN),
            "Infinity" | "inf" => Some(f64::INFINITY),
            "-Infinity" | "-inf" => Some(f64::NEG_INFINITY),
            other => other.parse().ok(),
        },
        _ => None,
    }
}

/// Converts a JSON value to a `Value` of the declared type. JSON `null` is the type's null as
/// Feast stores it ([`super::null_of`]), and so is a NaN float (Feast stores pandas' missing
/// floats, NaN, as the empty Value). The error says what was expected; the caller adds the
/// column and row.
pub fn from_json(j: &serde_json::Value, ty: ValueType) -> Result<Value, String> {
    use serde_json::Value as J;
    if j.is_null() {
        return Ok(super::null_of(ty));
    }
    let bad = || Err(format!("expected {ty}, got {}", describe(j)));
    Ok(match ty {
        T::Invalid | T::Null => infer_from_json(j),
        T::Int64 => match json_int(j) {
            Some(i) => v(Val::Int64Val(i)),
            None => return bad(),
        },
        T::Int32 => match json_int(j).and_then(|i| i32::try_from(i).ok()) {
            Some(i) => v(Val::Int32Val(i)),
            None => return bad(),
        },
        T::Double => match json_float(j) {
            Some(f) if f.is_nan() => NULL,
            Some(f) => v(Val::DoubleVal(f)),
            None => return bad(),
        },
        T::Float => match json_float(j) {
            Some(f) if f.is_nan() => NULL,
            Some(f) => v(Val::FloatVal(f as f32)),
            None => return bad(),
        },
        T::Bool => match j {
            J::Bool(b) => v(Val::BoolVal(*b)),
            _ => return bad(),
        },
        T::String => match j {
            J::String(s) => v(Val::StringVal(s.clone())),
            // Feast's server runs str(x): JSON 1001 for a STRING key is "1001".
            J::Number(n) if n.is_i64() || n.is_u64() => v(Val::StringVal(n.to_string())),
            _ => return bad(),
        },
        T::Bytes | T::PdfBytes | T::ImageBytes => match j {
            J::String(s) => match B64.decode(s) {
                Ok(b) => v(Val::BytesVal(b)),
                Err(_) => return Err(format!("expected base64 text for {ty}, got {}", describe(j))),
            },
            _ => return bad(),
        },
        T::UnixTimestamp => v(Val::UnixTimestampVal(
            json_epoch_secs(j)
                .ok_or_else(|| format!("expected {ty} (epoch seconds or RFC 3339 text), got {}", describe(j)))?,
        )),
        T::Json => match j {
            J::String(s) => v(Val::JsonVal(s.clone())),
            other => v(Val::JsonVal(other.to_string())),
        },
        T::Uuid | T::TimeUuid | T::Decimal => {
            let s = match j {
                J::String(s) => s.clone(),
                J::Number(n) if ty == T::Decimal => n.to_string(),
                _ => return bad(),
            };
            v(match ty {
                T::Uuid => Val::UuidVal(s),
                T::TimeUuid => Val::TimeUuidVal(s),
                _ => Val::DecimalVal(s),
            })
        }
        T::Map | T::Struct => match j {
            J::Object(o) => {
                let map = Map { val: o.iter().map(|(k, x)| (k.clone(), infer_from_json(x))).collect() };
                v(if ty == T::Map { Val::MapVal(map) } else { Val::StructVal(map) })
            }
            _ => return bad(),
        },
        T::ValueList | T::ValueSet => match j {
            J::Array(items) => {
                let list = RepeatedValue { val: items.iter().map(infer_from_json).collect() };
                v(if ty == T::ValueList { Val::ListVal(list) } else { Val::SetVal(list) })
            }
            _ => return bad(),
        },
        T::ScalarMap | T::ZonedTimestamp => return Err(format!("{ty} values cannot be written from JSON")),
        list_ty => {
            let J::Array(items) = j else { return bad() };
            let elem = list_ty.element().ok_or_else(|| format!("{ty} is not supported"))?;
            let mut values = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                if item.is_null() {
                    return Err(format!("element {i} of {ty} is null; Feast lists cannot hold nulls"));
                }
                values.push(from_json(item, elem).map_err(|e| format!("element {i}: {e}"))?);
            }
            list_from_scalars(list_ty, values)?
        }
    })
}

fn json_epoch_secs(j: &serde_json::Value) -> Option<i64> {
    match j {
        serde_json::Value::String(s) => {
            s.trim().parse::<i64>().ok().or_else(|| EventTime::parse(s).ok().map(|t| t.secs))
        }
        other => json_int(other),
    }
}

/// Feast's inference when no type is declared: int -> INT64, float -> DOUBLE, str -> STRING,
/// bool -> BOOL; objects become maps and arrays become value lists.
pub fn infer_from_json(j: &serde_json::Value) -> Value {
    use serde_json::Value as J;
    match j {
        J::Null => v(Val::NullVal(0)),
        J::Bool(b) => v(Val::BoolVal(*b)),
        J::Number(n) => match n.as_i64() {
            Some(i) => v(Val::Int64Val(i)),
            None => v(Val::DoubleVal(n.as_f64().unwrap_or(f64::NAN))),
        },
        J::String(s) => v(Val::StringVal(s.clone())),
        J::Array(items) => v(Val::ListVal(RepeatedValue { val: items.iter().map(infer_from_json).collect() })),
        J::Object(o) => v(Val::MapVal(Map { val: o.iter().map(|(k, x)| (k.clone(), infer_from_json(x))).collect() })),
    }
}

// ---------------------------------------------------------------------------------------------
// Value -> JSON
// ---------------------------------------------------------------------------------------------

/// Writes the JSON Feast's server answers for a value (`_value_to_native`): int64 as a number,
/// float32 widened to f64 and printed shortest, bytes as base64, timestamps as epoch seconds.
/// Non-finite floats have no JSON form and are written as `null`.
pub fn write_json(value: &Value, out: &mut Vec<u8>) {
    match &value.val {
        None | Some(Val::NullVal(_)) | Some(Val::ScalarMapVal(_)) => out.extend_from_slice(b"null"),
        Some(Val::BytesVal(b)) => write_b64(b, out),
        Some(Val::StringVal(s) | Val::JsonVal(s) | Val::UuidVal(s) | Val::TimeUuidVal(s) | Val::DecimalVal(s)) => {
            write_str(s, out)
        }
        Some(Val::Int32Val(i)) => write_int(*i as i64, out),
        Some(Val::Int64Val(i) | Val::UnixTimestampVal(i)) => write_int(*i, out),
        Some(Val::DoubleVal(f)) => write_f64(*f, out),
        Some(Val::FloatVal(f)) => write_f64(*f as f64, out),
        Some(Val::BoolVal(b)) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Some(Val::BytesListVal(l) | Val::BytesSetVal(l)) => write_array(&l.val, out, |b, o| write_b64(b, o)),
        Some(
            Val::StringListVal(l)
            | Val::StringSetVal(l)
            | Val::JsonListVal(l)
            | Val::UuidListVal(l)
            | Val::TimeUuidListVal(l)
            | Val::UuidSetVal(l)
            | Val::TimeUuidSetVal(l)
            | Val::DecimalListVal(l)
            | Val::DecimalSetVal(l),
        ) => write_array(&l.val, out, |s, o| write_str(s, o)),
        Some(Val::Int32ListVal(l) | Val::Int32SetVal(l)) => write_array(&l.val, out, |i, o| write_int(*i as i64, o)),
        Some(
            Val::Int64ListVal(l) | Val::Int64SetVal(l) | Val::UnixTimestampListVal(l) | Val::UnixTimestampSetVal(l),
        ) => write_array(&l.val, out, |i, o| write_int(*i, o)),
        Some(Val::DoubleListVal(l) | Val::DoubleSetVal(l)) => write_array(&l.val, out, |f, o| write_f64(*f, o)),
        Some(Val::FloatListVal(l) | Val::FloatSetVal(l)) => write_array(&l.val, out, |f, o| write_f64(*f as f64, o)),
        Some(Val::BoolListVal(l) | Val::BoolSetVal(l)) => {
            write_array(&l.val, out, |b, o| o.extend_from_slice(if *b { b"true" } else { b"false" }))
        }
        Some(Val::MapVal(m) | Val::StructVal(m)) => write_map(m, out),
        Some(Val::MapListVal(l) | Val::StructListVal(l)) => write_array(&l.val, out, write_map),
        Some(Val::ListVal(l) | Val::SetVal(l)) => write_array(&l.val, out, write_json),
        Some(Val::ZonedTimestampVal(z)) => {
            // Without a time-zone database the zone name cannot be applied; the instant is
            // printed in UTC so it is never wrong, only less local.
            let mut text = Vec::new();
            EventTime::new(z.unix_timestamp, 0).write_rfc3339(&mut text);
            write_str(std::str::from_utf8(&text).unwrap_or_default(), out)
        }
    }
}

pub fn to_json(value: &Value) -> serde_json::Value {
    let mut out = Vec::new();
    write_json(value, &mut out);
    serde_json::from_slice(&out).unwrap_or(serde_json::Value::Null)
}

fn write_array<I>(items: &[I], out: &mut Vec<u8>, each: impl FnMut(&I, &mut Vec<u8>)) {
    write_separated(b'[', items, b']', out, each);
}

fn write_map(m: &Map, out: &mut Vec<u8>) {
    // Sorted keys: protobuf maps have no order, and stable output makes responses comparable.
    let mut keys: Vec<&String> = m.val.keys().collect();
    keys.sort();
    write_separated(b'{', &keys, b'}', out, |k, out| {
        write_str(k, out);
        out.push(b':');
        write_json(&m.val[*k], out);
    });
}

/// `items` written by `each`, comma-separated, between `open` and `close`.
fn write_separated<I>(open: u8, items: &[I], close: u8, out: &mut Vec<u8>, mut each: impl FnMut(&I, &mut Vec<u8>)) {
    out.push(open);
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        each(item, out);
    }
    out.push(close);
}

pub fn write_str(s: &str, out: &mut Vec<u8>) {
    // serde_json's escaper writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

pub fn write_int(i: i64, out: &mut Vec<u8>) {
    out.extend_from_slice(itoa::Buffer::new().format(i).as_bytes());
}

pub fn write_f64(f: f64, out: &mut Vec<u8>) {
    if f.is_finite() {
        out.extend_from_slice(ryu::Buffer::new().format_finite(f).as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
}

fn write_b64(b: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    let start = out.len();
    out.resize(start + base64::encoded_len(b.len(), true).unwrap_or(0), 0);
    let n = B64.encode_slice(b, &mut out[start..]).unwrap_or(0);
    out.truncate(start + n);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::proto::types::{BytesList, Int64List};
    use crate::value::{decode, encode, type_of};

    #[test]
    fn float_from_cassandra_doc_example() {
        // docs/specs/online_store_format.md: 35f5696d3f is 0.9273980259895325 (a float32).
        let value = decode(&[0x35, 0xf5, 0x69, 0x6d, 0x3f]).unwrap();
        let mut out = Vec::new();
        write_json(&value, &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), "0.9273980259895325");
    }

    fn json_of(value: &Value) -> String {
        let mut out = Vec::new();
        write_json(value, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn json_output_follows_feast_server() {
        assert_eq!(json_of(&v(Val::FloatVal(0.1))), "0.10000000149011612");
        assert_eq!(json_of(&v(Val::DoubleVal(0.1))), "0.1");
        assert_eq!(json_of(&v(Val::Int64Val(i64::MAX))), "9223372036854775807");
        assert_eq!(json_of(&v(Val::BytesVal(b"hi".to_vec()))), "\"aGk=\"");
        assert_eq!(json_of(&v(Val::UnixTimestampVal(1_700_000_000))), "1700000000");
        assert_eq!(json_of(&v(Val::StringVal("a\"b".into()))), "\"a\\\"b\"");
        assert_eq!(json_of(&NULL), "null");
        assert_eq!(json_of(&v(Val::NullVal(0))), "null");
        assert_eq!(json_of(&v(Val::DoubleVal(f64::NAN))), "null");
        assert_eq!(json_of(&v(Val::BytesListVal(BytesList { val: vec![b"a".to_vec(), vec![]] }))), "[\"YQ==\",\"\"]");
        let mut m = Map::default();
        m.val.insert("b".into(), v(Val::Int64Val(2)));
        m.val.insert("a".into(), v(Val::StringVal("x".into())));
        assert_eq!(json_of(&v(Val::MapVal(m))), "{\"a\":\"x\",\"b\":2}");
        assert_eq!(
            json_of(&v(Val::ListVal(RepeatedValue { val: vec![v(Val::Int64Val(1)), v(Val::StringVal("s".into()))] }))),
            "[1,\"s\"]"
        );
    }

    #[test]
    fn nan_and_null_are_stored_as_feast_stores_them() {
        // NaN (pandas' missing float) is the empty Value, as Feast stores it; infinities stay.
        for text in ["NaN", "nan"] {
            assert_eq!(from_json(&json!(text), T::Double).unwrap(), NULL);
            assert_eq!(from_json(&json!(text), T::Float).unwrap(), NULL);
        }
        assert_eq!(from_json(&json!("Infinity"), T::Double).unwrap(), v(Val::DoubleVal(f64::INFINITY)));
        assert_eq!(from_json(&json!("-inf"), T::Float).unwrap(), v(Val::FloatVal(f32::NEG_INFINITY)));
        // A null timestamp is Feast's NaT sentinel; other nulls are the empty Value.
        assert_eq!(from_json(&json!(null), T::UnixTimestamp).unwrap(), v(Val::UnixTimestampVal(i64::MIN)));
        assert_eq!(from_json(&json!(null), T::Double).unwrap(), NULL);
        assert!(super::super::is_null(&v(Val::UnixTimestampVal(i64::MIN))));
        assert!(!super::super::is_null(&v(Val::UnixTimestampVal(i64::MIN + 1))));
    }

    #[test]
    fn json_input_typed_by_declared_type() {
        assert_eq!(from_json(&json!(1001), T::Int64).unwrap(), v(Val::Int64Val(1001)));
        assert_eq!(from_json(&json!("1001"), T::Int64).unwrap(), v(Val::Int64Val(1001)));
        assert_eq!(from_json(&json!(1001.0), T::Int64).unwrap(), v(Val::Int64Val(1001)));
        assert_eq!(from_json(&json!(7), T::Int32).unwrap(), v(Val::Int32Val(7)));
        assert_eq!(from_json(&json!(1001), T::String).unwrap(), v(Val::StringVal("1001".into())));
        assert_eq!(from_json(&json!(0.5), T::Float).unwrap(), v(Val::FloatVal(0.5)));
        assert_eq!(from_json(&json!(3), T::Double).unwrap(), v(Val::DoubleVal(3.0)));
        assert_eq!(from_json(&json!("aGk="), T::Bytes).unwrap(), v(Val::BytesVal(b"hi".to_vec())));
        assert_eq!(
            from_json(&json!("2023-11-14T22:13:20Z"), T::UnixTimestamp).unwrap(),
            v(Val::UnixTimestampVal(1_700_000_000))
        );
        assert_eq!(from_json(&json!(null), T::Int64).unwrap(), NULL);
        assert_eq!(
            from_json(&json!([1, 2]), T::Int64List).unwrap(),
            v(Val::Int64ListVal(Int64List { val: vec![1, 2] }))
        );
        assert_eq!(from_json(&json!({"a": 1}), T::Json).unwrap(), v(Val::JsonVal("{\"a\":1}".into())));
        assert_eq!(from_json(&json!(5), T::Invalid).unwrap(), v(Val::Int64Val(5)));
        assert_eq!(from_json(&json!(0.5), T::Invalid).unwrap(), v(Val::DoubleVal(0.5)));
    }

    #[test]
    fn string_shaped_types_and_their_edges() {
        // Feast's str(x) of an integer, not of a fraction; integers beyond i64 too.
        assert_eq!(from_json(&json!(1001), T::String).unwrap(), v(Val::StringVal("1001".into())));
        assert_eq!(from_json(&json!(u64::MAX), T::String).unwrap(), v(Val::StringVal(u64::MAX.to_string())));
        assert_eq!(from_json(&json!(1.5), T::String).unwrap_err(), "expected String, got 1.5");
        // A decimal may be a JSON number; a uuid may not.
        assert_eq!(from_json(&json!(1.25), T::Decimal).unwrap(), v(Val::DecimalVal("1.25".into())));
        assert_eq!(from_json(&json!("1.25"), T::Decimal).unwrap(), v(Val::DecimalVal("1.25".into())));
        assert_eq!(from_json(&json!(7), T::Uuid).unwrap_err(), "expected Uuid, got 7");
        assert_eq!(from_json(&json!("t"), T::TimeUuid).unwrap(), v(Val::TimeUuidVal("t".into())));
        assert_eq!(from_json(&json!("u"), T::Uuid).unwrap(), v(Val::UuidVal("u".into())));
        // Integral floats are ints up to 9.2e18, a little short of i64's end (rounding).
        assert_eq!(from_json(&json!(1001.0), T::Int64).unwrap(), v(Val::Int64Val(1001)));
        assert_eq!(from_json(&json!(9.1e18), T::Int64).unwrap(), v(Val::Int64Val(9_100_000_000_000_000_000)));
        assert_eq!(from_json(&json!(9.2e18), T::Int64).unwrap_err(), "expected Int64, got 9.2e+18");
        // What was sent is quoted whole up to 60 characters, then cut.
        let sixty = "x".repeat(58);
        assert_eq!(from_json(&json!(sixty), T::Int64).unwrap_err(), format!("expected Int64, got \"{sixty}\""));
        let long = "x".repeat(59);
        assert_eq!(from_json(&json!(long), T::Int64).unwrap_err(), format!("expected Int64, got \"{}...", &long[..56]));
    }

    #[test]
    fn json_input_errors_say_what_was_expected() {
        assert_eq!(from_json(&json!("abc"), T::Int64).unwrap_err(), "expected Int64, got \"abc\"");
        assert_eq!(from_json(&json!(1.5), T::Int64).unwrap_err(), "expected Int64, got 1.5");
        assert_eq!(from_json(&json!(true), T::Int64).unwrap_err(), "expected Int64, got true");
        assert!(from_json(&json!(3_000_000_000i64), T::Int32).unwrap_err().contains("Int32"));
        assert_eq!(from_json(&json!(1), T::Bool).unwrap_err(), "expected Bool, got 1");
        assert!(from_json(&json!("%%%"), T::Bytes).unwrap_err().contains("base64"));
        assert!(from_json(&json!([1, null]), T::Int64List).unwrap_err().contains("element 1"));
        assert!(from_json(&json!([1, "x"]), T::Int64List).unwrap_err().contains("element 1"));
        assert_eq!(from_json(&json!(1), T::StringList).unwrap_err(), "expected Array(String), got 1");
    }

    #[test]
    fn every_scalar_and_list_type_round_trips_json() {
        let samples = [
            (T::Int32, json!(-5)),
            (T::Int64, json!(9007199254740993i64)),
            (T::Double, json!(1.25)),
            (T::Float, json!(0.5)),
            (T::Bool, json!(false)),
            (T::String, json!("é")),
            (T::Bytes, json!("AAE=")),
            (T::UnixTimestamp, json!(1700000000)),
            (T::Int32List, json!([1, 2])),
            (T::Int64List, json!([3])),
            (T::DoubleList, json!([0.25])),
            (T::FloatList, json!([1.5])),
            (T::BoolList, json!([true])),
            (T::StringList, json!(["a"])),
            (T::BytesList, json!(["AA=="])),
            (T::UnixTimestampList, json!([1])),
            (T::Int64Set, json!([1, 2])),
            (T::StringSet, json!(["x"])),
            (T::Json, json!("{\"k\":1}")),
            (T::Uuid, json!("0e1ad8a8-3c7c-4e4b-9d77-3a4c4a1b2f10")),
            (T::Decimal, json!("1.10")),
            (T::Map, json!({"a": 1, "b": "c"})),
            (T::ValueList, json!([1, "two"])),
        ];
        for (ty, sample) in samples {
            let value = from_json(&sample, ty).unwrap_or_else(|e| panic!("{ty}: {e}"));
            assert_eq!(type_of(&value), ty);
            assert_eq!(to_json(&decode(&encode(&value)).unwrap()), sample, "{ty}");
        }
    }
}
