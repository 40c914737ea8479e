//! Arrow arrays (parquet columns, pushed batches) <-> [`Value`].

use std::sync::Arc;

use arrow_array::{Array, ArrayRef, cast::AsArray, types as at};
use arrow_schema::{DataType, TimeUnit};

use super::{NULL, T, Value, ValueType, list_from_scalars, v};
use crate::proto::types::value::Val;
use crate::time::EventTime;

// ---------------------------------------------------------------------------------------------
// Arrow -> Value
// ---------------------------------------------------------------------------------------------

/// Reads row `row` of an Arrow array as a `Value` of the declared type (a parquet column being
/// materialized, or a pushed batch). Nulls become the type's null as Feast stores it
/// ([`super::null_of`]), and a NaN float the empty Value (pandas' missing float). Numeric
/// widening and narrowing follow Feast: int columns may feed Int32/Int64/Float/Double features,
/// and an out-of-range narrowing is an error naming the value.
pub fn from_arrow(array: &dyn Array, row: usize, ty: ValueType) -> Result<Value, String> {
    if array.is_null(row) {
        return Ok(super::null_of(ty));
    }
    if let Some(elem) = ty.element().filter(|_| !matches!(ty, T::ValueList | T::ValueSet)) {
        let items = match array.data_type() {
            DataType::List(_) => array.as_list::<i32>().value(row),
            DataType::LargeList(_) => array.as_list::<i64>().value(row),
            DataType::FixedSizeList(_, _) => array.as_fixed_size_list().value(row),
            other => return Err(format!("column of Arrow type {other} cannot hold {ty}")),
        };
        let mut values = Vec::with_capacity(items.len());
        for i in 0..items.len() {
            if items.is_null(i) {
                return Err(format!("element {i} of {ty} is null; Feast lists cannot hold nulls"));
            }
            values.push(scalar_from_arrow(items.as_ref(), i, elem)?);
        }
        return list_from_scalars(ty, values);
    }
    scalar_from_arrow(array, row, ty)
}

fn scalar_from_arrow(array: &dyn Array, row: usize, ty: ValueType) -> Result<Value, String> {
    let cell = ArrowCell::read(array, row)?;
    let mismatch = || Err(format!("Arrow {} value {} does not fit {ty}", array.data_type(), cell.describe()));
    Ok(match (ty, &cell) {
        (T::Invalid, _) => cell.infer(),
        (T::Int64, ArrowCell::Int(i)) => v(Val::Int64Val(*i)),
        (T::Int64, ArrowCell::UInt(u)) => {
            v(Val::Int64Val(i64::try_from(*u).map_err(|_| format!("{u} overflows Int64"))?))
        }
        (T::Int32, ArrowCell::Int(i)) => {
            v(Val::Int32Val(i32::try_from(*i).map_err(|_| format!("{i} overflows Int32"))?))
        }
        (T::Int32, ArrowCell::UInt(u)) => {
            v(Val::Int32Val(i32::try_from(*u).map_err(|_| format!("{u} overflows Int32"))?))
        }
        (T::Double | T::Float, ArrowCell::Float(f)) if f.is_nan() => NULL,
        (T::Double, ArrowCell::Float(f)) => v(Val::DoubleVal(*f)),
        (T::Double, ArrowCell::Int(i)) => v(Val::DoubleVal(*i as f64)),
        (T::Double, ArrowCell::UInt(u)) => v(Val::DoubleVal(*u as f64)),
        (T::Float, ArrowCell::Float(f)) => v(Val::FloatVal(*f as f32)),
        (T::Float, ArrowCell::Int(i)) => v(Val::FloatVal(*i as f32)),
        (T::Float, ArrowCell::UInt(u)) => v(Val::FloatVal(*u as f32)),
        (T::Bool, ArrowCell::Bool(b)) => v(Val::BoolVal(*b)),
        (T::String, ArrowCell::Str(s)) => v(Val::StringVal(s.clone())),
        (T::Json, ArrowCell::Str(s)) => v(Val::JsonVal(s.clone())),
        (T::Uuid, ArrowCell::Str(s)) => v(Val::UuidVal(s.clone())),
        (T::TimeUuid, ArrowCell::Str(s)) => v(Val::TimeUuidVal(s.clone())),
        (T::Decimal, ArrowCell::Str(s) | ArrowCell::Decimal(s)) => v(Val::DecimalVal(s.clone())),
        (T::Double, ArrowCell::Decimal(s)) => v(Val::DoubleVal(s.parse().map_err(|_| format!("bad decimal {s}"))?)),
        (T::Bytes | T::PdfBytes | T::ImageBytes, ArrowCell::Bin(b)) => v(Val::BytesVal(b.clone())),
        (T::UnixTimestamp, ArrowCell::Time(t)) => v(Val::UnixTimestampVal(t.secs)),
        (T::UnixTimestamp, ArrowCell::Int(i)) => v(Val::UnixTimestampVal(*i)),
        _ => return mismatch(),
    })
}

/// One Arrow cell, normalized to the few shapes Feast types are built from.
enum ArrowCell {
    Int(i64),
    UInt(u64),
    Float(f64),
    Bool(bool),
    Str(String),
    Bin(Vec<u8>),
    Time(EventTime),
    Decimal(String),
}

impl ArrowCell {
    fn read(a: &dyn Array, row: usize) -> Result<ArrowCell, String> {
        Ok(match a.data_type() {
            DataType::Int8 => ArrowCell::Int(a.as_primitive::<at::Int8Type>().value(row) as i64),
            DataType::Int16 => ArrowCell::Int(a.as_primitive::<at::Int16Type>().value(row) as i64),
            DataType::Int32 => ArrowCell::Int(a.as_primitive::<at::Int32Type>().value(row) as i64),
            DataType::Int64 => ArrowCell::Int(a.as_primitive::<at::Int64Type>().value(row)),
            DataType::UInt8 => ArrowCell::UInt(a.as_primitive::<at::UInt8Type>().value(row) as u64),
            DataType::UInt16 => ArrowCell::UInt(a.as_primitive::<at::UInt16Type>().value(row) as u64),
            DataType::UInt32 => ArrowCell::UInt(a.as_primitive::<at::UInt32Type>().value(row) as u64),
            DataType::UInt64 => ArrowCell::UInt(a.as_primitive::<at::UInt64Type>().value(row)),
            DataType::Float16 => ArrowCell::Float(a.as_primitive::<at::Float16Type>().value(row).to_f64()),
            DataType::Float32 => ArrowCell::Float(a.as_primitive::<at::Float32Type>().value(row) as f64),
            DataType::Float64 => ArrowCell::Float(a.as_primitive::<at::Float64Type>().value(row)),
            DataType::Boolean => ArrowCell::Bool(a.as_boolean().value(row)),
            DataType::Utf8 => ArrowCell::Str(a.as_string::<i32>().value(row).to_string()),
            DataType::LargeUtf8 => ArrowCell::Str(a.as_string::<i64>().value(row).to_string()),
            DataType::Utf8View => ArrowCell::Str(a.as_string_view().value(row).to_string()),
            DataType::Binary => ArrowCell::Bin(a.as_binary::<i32>().value(row).to_vec()),
            DataType::LargeBinary => ArrowCell::Bin(a.as_binary::<i64>().value(row).to_vec()),
            DataType::BinaryView => ArrowCell::Bin(a.as_binary_view().value(row).to_vec()),
            DataType::FixedSizeBinary(_) => ArrowCell::Bin(a.as_fixed_size_binary().value(row).to_vec()),
            DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64 => {
                ArrowCell::Time(arrow_time(a, row).ok_or("unreadable timestamp")?)
            }
            DataType::Decimal128(_, scale) => {
                let raw = a.as_primitive::<at::Decimal128Type>().value(row);
                ArrowCell::Decimal(format_decimal(raw, *scale))
            }
            DataType::Dictionary(_, _) => {
                let dict = a.as_any_dictionary();
                let key = dict.normalized_keys()[row];
                return ArrowCell::read(dict.values().as_ref(), key);
            }
            other => return Err(format!("Arrow type {other} is not supported for features")),
        })
    }

    fn describe(&self) -> String {
        match self {
            ArrowCell::Int(i) => i.to_string(),
            ArrowCell::UInt(u) => u.to_string(),
            ArrowCell::Float(f) => f.to_string(),
            ArrowCell::Bool(b) => b.to_string(),
            ArrowCell::Str(s) => format!("{s:?}"),
            ArrowCell::Bin(b) => format!("<{} bytes>", b.len()),
            ArrowCell::Time(t) => t.to_rfc3339(),
            ArrowCell::Decimal(s) => s.clone(),
        }
    }

    fn infer(&self) -> Value {
        match self {
            ArrowCell::Int(i) => v(Val::Int64Val(*i)),
            ArrowCell::UInt(u) => v(Val::Int64Val(*u as i64)),
            ArrowCell::Float(f) => v(Val::DoubleVal(*f)),
            ArrowCell::Bool(b) => v(Val::BoolVal(*b)),
            ArrowCell::Str(s) => v(Val::StringVal(s.clone())),
            ArrowCell::Bin(b) => v(Val::BytesVal(b.clone())),
            ArrowCell::Time(t) => v(Val::UnixTimestampVal(t.secs)),
            ArrowCell::Decimal(s) => v(Val::DecimalVal(s.clone())),
        }
    }
}

fn format_decimal(raw: i128, scale: i8) -> String {
    if scale <= 0 {
        return format!("{}{}", raw, "0".repeat((-scale) as usize));
    }
    let neg = raw < 0;
    let digits = raw.unsigned_abs().to_string();
    let scale = scale as usize;
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    format!("{}{int}.{frac}", if neg { "-" } else { "" })
}

/// An Arrow timestamp or date cell as an instant. Zone-less timestamps are UTC, as in Feast.
pub fn arrow_time(a: &dyn Array, row: usize) -> Option<EventTime> {
    if a.is_null(row) {
        return None;
    }
    Some(match a.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => {
            EventTime::from_units(a.as_primitive::<at::TimestampSecondType>().value(row), 1)
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            EventTime::from_units(a.as_primitive::<at::TimestampMillisecondType>().value(row), 1000)
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            EventTime::from_micros(a.as_primitive::<at::TimestampMicrosecondType>().value(row))
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            EventTime::from_nanos(a.as_primitive::<at::TimestampNanosecondType>().value(row))
        }
        DataType::Date32 => EventTime::from_units(a.as_primitive::<at::Date32Type>().value(row) as i64 * 86_400, 1),
        DataType::Date64 => EventTime::from_units(a.as_primitive::<at::Date64Type>().value(row), 1000),
        DataType::Utf8 => EventTime::parse(a.as_string::<i32>().value(row)).ok()?,
        DataType::LargeUtf8 => EventTime::parse(a.as_string::<i64>().value(row)).ok()?,
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------------
// Value -> Arrow
// ---------------------------------------------------------------------------------------------

/// Builds an Arrow array of the declared type from values (nulls allowed). Scalars and lists
/// of scalars are supported; this is the direction used to hand features to Arrow-based tools.
pub fn to_arrow(values: &[Value], ty: ValueType) -> Result<ArrayRef, String> {
    use arrow_array::builder::*;
    macro_rules! scalar {
        ($builder:expr, $($pat:pat => $out:expr),+) => {{
            let mut b = $builder;
            for (i, x) in values.iter().enumerate() {
                match &x.val {
                    _ if super::is_null(x) => b.append_null(),
                    $(Some($pat) => b.append_value($out),)+
                    _ => return Err(format!("value {i} is not {ty}")),
                }
            }
            Arc::new(b.finish()) as ArrayRef
        }};
    }
    macro_rules! list {
        ($inner:expr, $($pat:pat => $items:expr),+) => {{
            let mut b = ListBuilder::new($inner);
            for (i, x) in values.iter().enumerate() {
                match &x.val {
                    None | Some(Val::NullVal(_)) => b.append_null(),
                    $(Some($pat) => { for item in $items { b.values().append_value(item.clone()); } b.append(true); })+
                    _ => return Err(format!("value {i} is not {ty}")),
                }
            }
            Arc::new(b.finish()) as ArrayRef
        }};
    }
    Ok(match ty {
        T::Int64 => scalar!(Int64Builder::new(), Val::Int64Val(i) => *i),
        T::Int32 => scalar!(Int32Builder::new(), Val::Int32Val(i) => *i),
        T::Double => scalar!(Float64Builder::new(), Val::DoubleVal(f) => *f),
        T::Float => scalar!(Float32Builder::new(), Val::FloatVal(f) => *f),
        T::Bool => scalar!(BooleanBuilder::new(), Val::BoolVal(b) => *b),
        T::String => scalar!(StringBuilder::new(), Val::StringVal(s) => s),
        T::Json => scalar!(StringBuilder::new(), Val::JsonVal(s) => s),
        T::Uuid => scalar!(StringBuilder::new(), Val::UuidVal(s) => s),
        T::Decimal => scalar!(StringBuilder::new(), Val::DecimalVal(s) => s),
        T::Bytes | T::PdfBytes | T::ImageBytes => scalar!(BinaryBuilder::new(), Val::BytesVal(b) => b),
        T::UnixTimestamp => Arc::new(
            (scalar!(TimestampSecondBuilder::new(), Val::UnixTimestampVal(s) => *s))
                .as_primitive::<at::TimestampSecondType>()
                .clone()
                .with_timezone("UTC"),
        ),
        T::Int64List => list!(Int64Builder::new(), Val::Int64ListVal(l) => l.val.iter()),
        T::Int32List => list!(Int32Builder::new(), Val::Int32ListVal(l) => l.val.iter()),
        T::DoubleList => list!(Float64Builder::new(), Val::DoubleListVal(l) => l.val.iter()),
        T::FloatList => list!(Float32Builder::new(), Val::FloatListVal(l) => l.val.iter()),
        T::BoolList => list!(BooleanBuilder::new(), Val::BoolListVal(l) => l.val.iter()),
        T::StringList => list!(StringBuilder::new(), Val::StringListVal(l) => l.val.iter()),
        T::BytesList => list!(BinaryBuilder::new(), Val::BytesListVal(l) => l.val.iter()),
        other => return Err(format!("{other} has no Arrow form in Larder yet")),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::value::from_json;

    #[test]
    fn every_arrow_cell_kind_fits_the_feast_types_it_can_hold() {
        use arrow_array::{
            BinaryArray, BooleanArray, Decimal128Array, Float64Array, Int64Array, StringArray, TimestampSecondArray,
            UInt32Array, UInt64Array,
        };
        let int = Int64Array::from(vec![7]);
        let uint = UInt64Array::from(vec![5]);
        let u32s = UInt32Array::from(vec![9]);
        let float = Float64Array::from(vec![0.5]);
        let text = StringArray::from(vec!["x"]);
        let bin = BinaryArray::from(vec![&b"ab"[..]]);
        let bools = BooleanArray::from(vec![true]);
        let time = TimestampSecondArray::from(vec![1_700_000_000]);
        let dec = Decimal128Array::from(vec![12345, -5, 0]).with_precision_and_scale(10, 2).unwrap();
        let cases: Vec<(&dyn Array, usize, T, Value)> = vec![
            // No declared type: inferred from the cell.
            (&int, 0, T::Invalid, v(Val::Int64Val(7))),
            (&uint, 0, T::Invalid, v(Val::Int64Val(5))),
            (&float, 0, T::Invalid, v(Val::DoubleVal(0.5))),
            (&bools, 0, T::Invalid, v(Val::BoolVal(true))),
            (&text, 0, T::Invalid, v(Val::StringVal("x".into()))),
            (&bin, 0, T::Invalid, v(Val::BytesVal(b"ab".to_vec()))),
            (&time, 0, T::Invalid, v(Val::UnixTimestampVal(1_700_000_000))),
            (&dec, 0, T::Invalid, v(Val::DecimalVal("123.45".into()))),
            // Unsigned and integer cells widened to the declared type.
            (&uint, 0, T::Int64, v(Val::Int64Val(5))),
            (&u32s, 0, T::Int32, v(Val::Int32Val(9))),
            (&uint, 0, T::Double, v(Val::DoubleVal(5.0))),
            (&int, 0, T::Float, v(Val::FloatVal(7.0))),
            (&uint, 0, T::Float, v(Val::FloatVal(5.0))),
            (&int, 0, T::UnixTimestamp, v(Val::UnixTimestampVal(7))),
            // Strings as the string-shaped types.
            (&text, 0, T::Json, v(Val::JsonVal("x".into()))),
            (&text, 0, T::Uuid, v(Val::UuidVal("x".into()))),
            (&text, 0, T::TimeUuid, v(Val::TimeUuidVal("x".into()))),
            (&text, 0, T::Decimal, v(Val::DecimalVal("x".into()))),
            // Decimals, as text (sign and zero kept) or as a double.
            (&dec, 0, T::Decimal, v(Val::DecimalVal("123.45".into()))),
            (&dec, 1, T::Decimal, v(Val::DecimalVal("-0.05".into()))),
            (&dec, 2, T::Decimal, v(Val::DecimalVal("0.00".into()))),
            (&dec, 0, T::Double, v(Val::DoubleVal(123.45))),
            (&bin, 0, T::PdfBytes, v(Val::BytesVal(b"ab".to_vec()))),
        ];
        for (array, row, ty, want) in cases {
            assert_eq!(from_arrow(array, row, ty), Ok(want), "{} as {ty}", array.data_type());
        }
        // What does not fit names the Arrow type, the cell and the type asked for.
        assert_eq!(from_arrow(&int, 0, T::Bool).unwrap_err(), "Arrow Int64 value 7 does not fit Bool");
        assert_eq!(from_arrow(&text, 0, T::Int64).unwrap_err(), "Arrow Utf8 value \"x\" does not fit Int64");
        assert_eq!(
            from_arrow(&UInt64Array::from(vec![u64::MAX]), 0, T::Int32).unwrap_err(),
            "18446744073709551615 overflows Int32"
        );
    }

    #[test]
    fn every_timestamp_and_date_unit_is_an_instant() {
        use arrow_array::{
            Date32Array, Date64Array, LargeStringArray, StringArray, TimestampMillisecondArray,
            TimestampNanosecondArray, TimestampSecondArray,
        };
        let at = EventTime::new(1_700_000_000, 123_000_000);
        let day = EventTime::new(19_675 * 86_400, 0);
        let cases: Vec<(Box<dyn Array>, EventTime)> = vec![
            (Box::new(TimestampSecondArray::from(vec![1_700_000_000])), EventTime::new(1_700_000_000, 0)),
            (Box::new(TimestampMillisecondArray::from(vec![1_700_000_000_123])), at),
            (
                Box::new(TimestampNanosecondArray::from(vec![1_700_000_000_123_000_001])),
                EventTime::new(1_700_000_000, 123_000_001),
            ),
            (Box::new(Date32Array::from(vec![19_675])), day),
            (Box::new(Date64Array::from(vec![19_675 * 86_400_000])), day),
            (Box::new(StringArray::from(vec!["2023-11-14T22:13:20.123Z"])), at),
            (Box::new(LargeStringArray::from(vec!["2023-11-14T22:13:20.123Z"])), at),
        ];
        for (array, want) in cases {
            assert_eq!(arrow_time(array.as_ref(), 0), Some(want), "{}", array.data_type());
        }
        assert_eq!(arrow_time(&TimestampSecondArray::from(vec![None::<i64>]), 0), None);
        assert_eq!(arrow_time(&StringArray::from(vec!["soon"]), 0), None);
    }

    #[test]
    fn arrow_round_trip_for_scalars_and_lists() {
        let cases = [
            (T::Int64, vec![json!(1), json!(null), json!(-3)]),
            (T::Int32, vec![json!(1), json!(2)]),
            (T::Double, vec![json!(0.5), json!(null)]),
            (T::Float, vec![json!(0.25)]),
            (T::Bool, vec![json!(true), json!(false)]),
            (T::String, vec![json!("a"), json!(null)]),
            (T::Bytes, vec![json!("AAE=")]),
            (T::UnixTimestamp, vec![json!(1700000000)]),
            (T::Int64List, vec![json!([1, 2]), json!(null), json!([])]),
            (T::StringList, vec![json!(["a", "b"])]),
            (T::FloatList, vec![json!([0.5])]),
        ];
        for (ty, items) in cases {
            let values: Vec<Value> = items.iter().map(|j| from_json(j, ty).unwrap()).collect();
            let array = to_arrow(&values, ty).unwrap();
            for (row, want) in values.iter().enumerate() {
                assert_eq!(&from_arrow(array.as_ref(), row, ty).unwrap(), want, "{ty} row {row}");
            }
        }
    }

    #[test]
    fn arrow_conversion_widens_and_checks_ranges() {
        use arrow_array::{Int64Array, TimestampMicrosecondArray, UInt64Array};
        let ints = Int64Array::from(vec![5, 3_000_000_000]);
        assert_eq!(from_arrow(&ints, 0, T::Double).unwrap(), v(Val::DoubleVal(5.0)));
        assert_eq!(from_arrow(&ints, 0, T::Int32).unwrap(), v(Val::Int32Val(5)));
        assert!(from_arrow(&ints, 1, T::Int32).unwrap_err().contains("overflows Int32"));
        assert!(from_arrow(&ints, 0, T::String).unwrap_err().contains("does not fit String"));
        let big = UInt64Array::from(vec![u64::MAX]);
        assert_eq!(from_arrow(&big, 0, T::Int64).unwrap_err(), "18446744073709551615 overflows Int64");
        let ts = TimestampMicrosecondArray::from(vec![1_700_000_000_500_000]).with_timezone("UTC");
        assert_eq!(from_arrow(&ts, 0, T::UnixTimestamp).unwrap(), v(Val::UnixTimestampVal(1_700_000_000)));
        assert_eq!(arrow_time(&ts, 0), Some(EventTime::new(1_700_000_000, 500_000_000)));
    }

    #[test]
    fn decimals_format_with_scale() {
        assert_eq!(format_decimal(12345, 2), "123.45");
        assert_eq!(format_decimal(-5, 3), "-0.005");
        assert_eq!(format_decimal(7, -2), "700");
    }
}
