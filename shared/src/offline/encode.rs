//! Arrow columns to what the online store holds, column by column.
//!
//! [`ValueEncoder`] writes a cell's serialized `feast.types.Value` straight into a buffer. The
//! common pairs (a float32 column for a `Float32` feature, int64 for `Int64`, strings, bools,
//! binary) are written by hand with the exact bytes prost produces (checked against prost in
//! the tests below); every other pair goes through [`value::from_arrow`] and prost. Building a
//! `Value` per cell is what made this path slow, and materialization runs it for every winning
//! row.
//!
//! [`event_times`] reads a timestamp column of any unit, with or without a time zone (an
//! instant either way; zone-less is UTC, as in Feast), or a date, or RFC 3339 text.

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, types as at};
use arrow_schema::{DataType, TimeUnit};
use prost::Message;

use crate::proto::types::value::Val;
use crate::time::EventTime;
use crate::value::{self, Value, ValueType};

/// The time of a null (or unreadable) cell: earlier than every real time, so a null created
/// timestamp never wins a tie, and a null event time is never inside a window.
pub const NULL_TIME: EventTime = EventTime { secs: i64::MIN, nanos: 0 };

/// The event times of a column, [`NULL_TIME`] for nulls. Errors name the Arrow type when the
/// column is not a time at all.
pub fn event_times(a: &dyn Array) -> Result<Vec<EventTime>, String> {
    let n = a.len();
    let mut out = Vec::with_capacity(n);
    macro_rules! prim {
        ($t:ty, $conv:expr) => {{
            let p = a.as_primitive::<$t>();
            let conv = $conv;
            if p.null_count() == 0 {
                out.extend(p.values().iter().map(|&v| conv(v)));
            } else {
                out.extend((0..n).map(|i| if p.is_null(i) { NULL_TIME } else { conv(p.value(i)) }));
            }
        }};
    }
    match a.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => {
            prim!(at::TimestampSecondType, |v: i64| EventTime::from_units(v, 1))
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            prim!(at::TimestampMillisecondType, |v: i64| EventTime::from_units(v, 1000))
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            prim!(at::TimestampMicrosecondType, EventTime::from_micros)
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            prim!(at::TimestampNanosecondType, EventTime::from_nanos)
        }
        DataType::Date32 => prim!(at::Date32Type, |d: i32| EventTime::from_units(d as i64 * 86_400, 1)),
        DataType::Date64 => prim!(at::Date64Type, |v: i64| EventTime::from_units(v, 1000)),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            for i in 0..n {
                out.push(if a.is_null(i) {
                    NULL_TIME
                } else {
                    let t = value::arrow_time(a, i).or_else(|| string_at(a, i).and_then(|s| EventTime::parse(s).ok()));
                    t.ok_or_else(|| format!("row {i}: {:?} is not a timestamp", string_at(a, i).unwrap_or_default()))?
                });
            }
        }
        DataType::Dictionary(_, _) => {
            let dict = a.as_any_dictionary();
            let values = event_times(dict.values().as_ref())?;
            for (i, k) in dict.normalized_keys().into_iter().enumerate() {
                out.push(if a.is_null(i) { NULL_TIME } else { values[k] });
            }
        }
        other => return Err(format!("Arrow type {other} is not a timestamp")),
    }
    Ok(out)
}

fn string_at(a: &dyn Array, i: usize) -> Option<&str> {
    match a.data_type() {
        DataType::Utf8 => Some(a.as_string::<i32>().value(i)),
        DataType::LargeUtf8 => Some(a.as_string::<i64>().value(i)),
        DataType::Utf8View => Some(a.as_string_view().value(i)),
        _ => None,
    }
}

/// Whether a column of this Arrow type can be read as a time.
pub fn is_time_type(t: &DataType) -> bool {
    match t {
        DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64 => true,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, v) => is_time_type(v),
        _ => false,
    }
}

/// Whether a column of Arrow type `t` can feed a feature or join key of type `ty`
/// (the pairs [`value::from_arrow`] converts). Checked once per file, before reading data,
/// so a wrong column fails with a message about the column instead of a row.
pub fn compatible(t: &DataType, ty: ValueType) -> bool {
    use ValueType as T;
    if let DataType::Dictionary(_, v) = t {
        return compatible(v, ty);
    }
    if let Some(elem) = ty.element().filter(|_| !matches!(ty, T::ValueList | T::ValueSet)) {
        return match t {
            DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
                compatible(f.data_type(), elem)
            }
            _ => false,
        };
    }
    let int = t.is_integer();
    let float = matches!(t, DataType::Float16 | DataType::Float32 | DataType::Float64);
    let text = matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
    let bin =
        matches!(t, DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::FixedSizeBinary(_));
    let time = matches!(t, DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64);
    let decimal = matches!(t, DataType::Decimal128(_, _));
    match ty {
        T::Invalid => int || float || text || bin || time || decimal || matches!(t, DataType::Boolean),
        T::Int64 | T::Int32 => int,
        T::Double => int || float || decimal,
        T::Float => int || float,
        T::Bool => matches!(t, DataType::Boolean),
        T::String | T::Json | T::Uuid | T::TimeUuid => text,
        T::Decimal => text || decimal,
        T::Bytes | T::PdfBytes | T::ImageBytes => bin,
        T::UnixTimestamp => time || int,
        _ => false,
    }
}

// Field tags of `feast.types.Value` (field number << 3 | wire type).
const TAG_BYTES: u8 = 1 << 3 | 2;
const TAG_STRING: u8 = 2 << 3 | 2;
const TAG_INT32: u8 = 3 << 3;
const TAG_INT64: u8 = 4 << 3;
const TAG_DOUBLE: u8 = 5 << 3 | 1;
const TAG_FLOAT: u8 = 6 << 3 | 5;
const TAG_BOOL: u8 = 7 << 3;

fn put_varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Writes serialized `Value`s of one column as one feature type.
pub enum ValueEncoder<'a> {
    F32ToFloat(&'a arrow_array::Float32Array),
    F32ToDouble(&'a arrow_array::Float32Array),
    F64ToDouble(&'a arrow_array::Float64Array),
    F64ToFloat(&'a arrow_array::Float64Array),
    I64ToInt64(&'a arrow_array::Int64Array),
    I64ToInt32(&'a arrow_array::Int64Array),
    I32ToInt32(&'a arrow_array::Int32Array),
    I32ToInt64(&'a arrow_array::Int32Array),
    Utf8(&'a arrow_array::StringArray),
    LargeUtf8(&'a arrow_array::LargeStringArray),
    Bool(&'a arrow_array::BooleanArray),
    Binary(&'a arrow_array::BinaryArray),
    /// Anything else: through `Value` and prost.
    Generic(&'a dyn Array, ValueType),
}

impl<'a> ValueEncoder<'a> {
    pub fn new(a: &'a dyn Array, ty: ValueType) -> Self {
        use ValueType as T;
        match (a.data_type(), ty) {
            (DataType::Float32, T::Float) => Self::F32ToFloat(a.as_primitive()),
            (DataType::Float32, T::Double) => Self::F32ToDouble(a.as_primitive()),
            (DataType::Float64, T::Double) => Self::F64ToDouble(a.as_primitive()),
            (DataType::Float64, T::Float) => Self::F64ToFloat(a.as_primitive()),
            (DataType::Int64, T::Int64) => Self::I64ToInt64(a.as_primitive()),
            (DataType::Int64, T::Int32) => Self::I64ToInt32(a.as_primitive()),
            (DataType::Int32, T::Int32) => Self::I32ToInt32(a.as_primitive()),
            (DataType::Int32, T::Int64) => Self::I32ToInt64(a.as_primitive()),
            (DataType::Utf8, T::String) => Self::Utf8(a.as_string()),
            (DataType::LargeUtf8, T::String) => Self::LargeUtf8(a.as_string()),
            (DataType::Boolean, T::Bool) => Self::Bool(a.as_boolean()),
            (DataType::Binary, T::Bytes) => Self::Binary(a.as_binary()),
            _ => Self::Generic(a, ty),
        }
    }

    fn array(&self) -> &dyn Array {
        match self {
            Self::F32ToFloat(a) | Self::F32ToDouble(a) => *a,
            Self::F64ToDouble(a) | Self::F64ToFloat(a) => *a,
            Self::I64ToInt64(a) | Self::I64ToInt32(a) => *a,
            Self::I32ToInt32(a) | Self::I32ToInt64(a) => *a,
            Self::Utf8(a) => *a,
            Self::LargeUtf8(a) => *a,
            Self::Bool(a) => *a,
            Self::Binary(a) => *a,
            Self::Generic(a, _) => *a,
        }
    }

    /// Appends the serialized `Value` of `row`. A null is what Feast stores: nothing (the empty
    /// Value serializes to zero bytes), or for a `UnixTimestamp` its null sentinel
    /// ([`value::NULL_UNIX_TIMESTAMP`], through the generic path). A NaN float is a null too:
    /// pandas writes missing floats as NaN and Feast stores them as the empty Value.
    pub fn encode(&self, row: usize, out: &mut Vec<u8>) -> Result<(), String> {
        if self.array().is_null(row) {
            if let Self::Generic(_, ty) = self {
                value::null_of(*ty).encode(out).map_err(|e| format!("cannot serialize: {e}"))?;
            }
            return Ok(());
        }
        match self {
            Self::F32ToFloat(a) => {
                let f = a.value(row);
                if !f.is_nan() {
                    out.push(TAG_FLOAT);
                    out.extend_from_slice(&f.to_le_bytes());
                }
            }
            Self::F32ToDouble(a) => {
                let f = a.value(row);
                if !f.is_nan() {
                    out.push(TAG_DOUBLE);
                    out.extend_from_slice(&(f as f64).to_le_bytes());
                }
            }
            Self::F64ToDouble(a) => {
                let f = a.value(row);
                if !f.is_nan() {
                    out.push(TAG_DOUBLE);
                    out.extend_from_slice(&f.to_le_bytes());
                }
            }
            Self::F64ToFloat(a) => {
                let f = a.value(row);
                if !f.is_nan() {
                    out.push(TAG_FLOAT);
                    out.extend_from_slice(&(f as f32).to_le_bytes());
                }
            }
            Self::I64ToInt64(a) => {
                out.push(TAG_INT64);
                put_varint(a.value(row) as u64, out);
            }
            Self::I64ToInt32(a) => {
                let v = a.value(row);
                let v = i32::try_from(v).map_err(|_| format!("{v} overflows Int32"))?;
                out.push(TAG_INT32);
                put_varint(v as i64 as u64, out);
            }
            Self::I32ToInt32(a) => {
                out.push(TAG_INT32);
                put_varint(a.value(row) as i64 as u64, out);
            }
            Self::I32ToInt64(a) => {
                out.push(TAG_INT64);
                put_varint(a.value(row) as i64 as u64, out);
            }
            Self::Utf8(a) => put_len_delimited(TAG_STRING, a.value(row).as_bytes(), out),
            Self::LargeUtf8(a) => put_len_delimited(TAG_STRING, a.value(row).as_bytes(), out),
            Self::Bool(a) => {
                out.push(TAG_BOOL);
                out.push(a.value(row) as u8);
            }
            Self::Binary(a) => put_len_delimited(TAG_BYTES, a.value(row), out),
            Self::Generic(a, ty) => {
                let v = value::from_arrow(*a, row, *ty)?;
                v.encode(out).map_err(|e| format!("cannot serialize: {e}"))?;
            }
        }
        Ok(())
    }
}

fn put_len_delimited(tag: u8, bytes: &[u8], out: &mut Vec<u8>) {
    out.push(tag);
    put_varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// Reads join-key values of one column as the key's declared type.
pub struct KeyReader<'a> {
    array: &'a dyn Array,
    ty: ValueType,
    i64s: Option<&'a arrow_array::Int64Array>,
}

impl<'a> KeyReader<'a> {
    pub fn new(array: &'a dyn Array, ty: ValueType) -> Self {
        let i64s = (matches!(ty, ValueType::Int64 | ValueType::Invalid) && array.data_type() == &DataType::Int64)
            .then(|| array.as_primitive::<at::Int64Type>());
        KeyReader { array, ty, i64s }
    }

    /// The key value of `row`; `None` for a null.
    pub fn value(&self, row: usize) -> Result<Option<Value>, String> {
        if self.array.is_null(row) {
            return Ok(None);
        }
        if let Some(a) = self.i64s {
            return Ok(Some(Value { val: Some(Val::Int64Val(a.value(row))) }));
        }
        value::from_arrow(self.array, row, self.ty).map(Some)
    }
}

/// A column of `n` copies of a hive partition value, typed for its use: a time column, or a
/// feature / join key of a declared type. Partition values are text in the path.
pub fn constant_column(text: &str, ty: Option<ValueType>, n: usize) -> Result<ArrayRef, String> {
    use ValueType as T;
    use arrow_array::*;
    use std::sync::Arc;
    let bad = |what: &str| format!("partition value {text:?} is not {what}");
    Ok(match ty {
        None => {
            let t = EventTime::parse(text).map_err(|_| bad("a timestamp"))?;
            let ns = t.secs.saturating_mul(1_000_000_000).saturating_add(t.nanos as i64);
            Arc::new(TimestampNanosecondArray::from(vec![ns; n]).with_timezone("UTC"))
        }
        Some(T::Int64 | T::UnixTimestamp) => {
            Arc::new(Int64Array::from(vec![text.parse::<i64>().map_err(|_| bad("an integer"))?; n]))
        }
        Some(T::Int32) => {
            Arc::new(Int32Array::from(vec![text.parse::<i32>().map_err(|_| { bad("a 32-bit integer") })?; n]))
        }
        Some(T::Double) => Arc::new(Float64Array::from(vec![text.parse::<f64>().map_err(|_| bad("a number"))?; n])),
        Some(T::Float) => Arc::new(Float32Array::from(vec![text.parse::<f32>().map_err(|_| bad("a number"))?; n])),
        Some(T::Bool) => Arc::new(BooleanArray::from(vec![
            match text {
                "true" | "True" | "1" => true,
                "false" | "False" | "0" => false,
                _ => return Err(bad("a boolean")),
            };
            n
        ])),
        Some(T::Bytes) => Arc::new(BinaryArray::from(vec![text.as_bytes(); n])),
        Some(T::Invalid | T::String | T::Json | T::Uuid | T::TimeUuid | T::Decimal) => {
            Arc::new(StringArray::from(vec![text; n]))
        }
        Some(other) => return Err(format!("a partition value cannot hold {other}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::*;
    use std::sync::Arc;

    /// Every fast path must produce exactly what Value + prost produce.
    #[test]
    fn fast_paths_match_prost() {
        use ValueType as T;
        let cases: Vec<(ArrayRef, Vec<ValueType>)> = vec![
            (
                Arc::new(Float32Array::from(vec![Some(0.0), Some(-1.5), None, Some(f32::MAX), Some(0.7037)])),
                vec![T::Float, T::Double],
            ),
            (Arc::new(Float64Array::from(vec![Some(0.0), Some(-1e300), None, Some(0.1)])), vec![T::Double, T::Float]),
            (
                Arc::new(Int64Array::from(vec![Some(0), Some(-1), None, Some(i64::MAX), Some(i64::MIN), Some(300)])),
                vec![T::Int64, T::Double, T::UnixTimestamp],
            ),
            (Arc::new(Int64Array::from(vec![Some(0), Some(-7), Some(i32::MAX as i64)])), vec![T::Int32]),
            (
                Arc::new(Int32Array::from(vec![Some(0), Some(-1), None, Some(i32::MIN), Some(127), Some(128)])),
                vec![T::Int32, T::Int64],
            ),
            (
                Arc::new(StringArray::from(vec![Some(""), Some("sf"), None, Some(&"x".repeat(300)[..])])),
                vec![T::String],
            ),
            (Arc::new(LargeStringArray::from(vec![Some("é"), None])), vec![T::String]),
            (Arc::new(BooleanArray::from(vec![Some(true), Some(false), None])), vec![T::Bool]),
            (Arc::new(BinaryArray::from(vec![Some(&b""[..]), Some(&b"\x00\xff"[..]), None])), vec![T::Bytes]),
        ];
        for (array, types) in cases {
            for ty in types {
                let enc = ValueEncoder::new(array.as_ref(), ty);
                assert!(
                    !matches!(enc, ValueEncoder::Generic(..)) || ty == T::UnixTimestamp || ty == T::Double,
                    "{ty} on {}",
                    array.data_type()
                );
                for row in 0..array.len() {
                    let mut fast = Vec::new();
                    enc.encode(row, &mut fast).unwrap();
                    let slow = value::encode(&value::from_arrow(array.as_ref(), row, ty).unwrap());
                    assert_eq!(fast, slow, "{ty} row {row} of {}", array.data_type());
                }
            }
        }
        let big = Int64Array::from(vec![i64::MAX]);
        assert!(ValueEncoder::new(&big, T::Int32).encode(0, &mut Vec::new()).unwrap_err().contains("overflows Int32"));
    }

    #[test]
    fn nan_is_stored_as_null_and_a_null_timestamp_as_feasts_sentinel() {
        use ValueType as T;
        // What Feast stores: nothing for NaN floats (as for nulls), and for a null
        // UnixTimestamp the value -2^63 (unix_timestamp_val, field 8, as a 10-byte varint).
        let f64s = Float64Array::from(vec![Some(f64::NAN), Some(1.5), None]);
        let f32s = Float32Array::from(vec![Some(f32::NAN), Some(1.5), None]);
        for ty in [T::Double, T::Float] {
            for a in [&f64s as &dyn Array, &f32s] {
                let enc = ValueEncoder::new(a, ty);
                let encoded = |row| {
                    let mut out = Vec::new();
                    enc.encode(row, &mut out).unwrap();
                    out
                };
                assert!(encoded(0).is_empty(), "{ty} from {}", a.data_type());
                assert!(!encoded(1).is_empty());
                assert!(encoded(2).is_empty());
                assert_eq!(value::from_arrow(a, 0, ty).unwrap(), value::NULL);
            }
        }
        let sentinel = [0x40, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01];
        let times = TimestampMicrosecondArray::from(vec![None, Some(1_000_000)]).with_timezone("UTC");
        let ints = Int64Array::from(vec![None, Some(1)]);
        for a in [&times as &dyn Array, &ints] {
            let mut out = Vec::new();
            ValueEncoder::new(a, T::UnixTimestamp).encode(0, &mut out).unwrap();
            assert_eq!(out, sentinel, "{}", a.data_type());
            out.clear();
            ValueEncoder::new(a, T::UnixTimestamp).encode(1, &mut out).unwrap();
            assert_eq!(out, [0x40, 0x01]);
        }
    }

    #[test]
    fn times_of_every_unit_and_zone_are_instants() {
        let want = EventTime::parse("2024-01-01T12:00:00.123456Z").unwrap();
        let us = 1_704_110_400_123_456i64;
        let cols: Vec<ArrayRef> = vec![
            Arc::new(TimestampMicrosecondArray::from(vec![Some(us), None])),
            Arc::new(TimestampMicrosecondArray::from(vec![Some(us), None]).with_timezone("UTC")),
            Arc::new(TimestampMicrosecondArray::from(vec![Some(us), None]).with_timezone("America/New_York")),
            Arc::new(TimestampNanosecondArray::from(vec![Some(us * 1000), None]).with_timezone("+02:00")),
            Arc::new(StringArray::from(vec![Some("2024-01-01 14:00:00.123456+02:00"), None])),
        ];
        for c in cols {
            assert_eq!(event_times(c.as_ref()).unwrap(), vec![want, NULL_TIME], "{}", c.data_type());
        }
        let ms = TimestampMillisecondArray::from(vec![1_704_110_400_123]);
        assert_eq!(event_times(&ms).unwrap()[0], EventTime::new(1_704_110_400, 123_000_000));
        let s = TimestampSecondArray::from(vec![-1]);
        assert_eq!(event_times(&s).unwrap()[0], EventTime::new(-1, 0));
        assert_eq!(event_times(&Date32Array::from(vec![1])).unwrap()[0], EventTime::new(86_400, 0));
        assert!(event_times(&Int64Array::from(vec![1])).unwrap_err().contains("Int64"));
        assert!(event_times(&StringArray::from(vec!["soon"])).unwrap_err().contains("soon"));
    }

    #[test]
    fn compatibility_matrix() {
        assert!(compatible(&DataType::Int32, ValueType::Int64));
        assert!(compatible(&DataType::Float32, ValueType::Double));
        assert!(!compatible(&DataType::Utf8, ValueType::Int64));
        assert!(!compatible(&DataType::Int64, ValueType::String));
        let list = DataType::List(Arc::new(arrow_schema::Field::new("item", DataType::Float64, true)));
        assert!(compatible(&list, ValueType::DoubleList));
        assert!(!compatible(&list, ValueType::StringList));
        assert!(!compatible(&DataType::Float64, ValueType::DoubleList));
    }

    #[test]
    fn partition_constants_are_typed() {
        let c = constant_column("42", Some(ValueType::Int64), 3).unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(value::from_arrow(c.as_ref(), 2, ValueType::Int64).unwrap(), Value { val: Some(Val::Int64Val(42)) });
        let t = constant_column("2024-01-01", None, 1).unwrap();
        assert_eq!(event_times(t.as_ref()).unwrap()[0], EventTime::parse("2024-01-01T00:00:00Z").unwrap());
        assert!(constant_column("x", Some(ValueType::Int64), 1).unwrap_err().contains("\"x\""));
    }
}
