//! Feast's value types and conversions between their forms:
//! protobuf bytes (Redis) <-> [`Value`] <-> JSON (HTTP) and <- Arrow arrays (parquet, push).
//!
//! The in-memory value is the protobuf message itself ([`Value`], a `oneof`), so reading from
//! Redis is one prost decode and writing is one encode, with no intermediate model.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, cast::AsArray, types as at};
use arrow_schema::{DataType, TimeUnit};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use prost::Message;

pub use crate::proto::types::Value;
use crate::proto::types::{
    BoolList, BytesList, DoubleList, FloatList, Int32List, Int64List, Map, MapList, RepeatedValue, StringList,
    value::Val,
};
use crate::time::EventTime;

/// `feast.types.ValueType.Enum`: the declared type of a feature or join key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ValueType {
    Invalid = 0,
    Bytes = 1,
    String = 2,
    Int32 = 3,
    Int64 = 4,
    Double = 5,
    Float = 6,
    Bool = 7,
    UnixTimestamp = 8,
    BytesList = 11,
    StringList = 12,
    Int32List = 13,
    Int64List = 14,
    DoubleList = 15,
    FloatList = 16,
    BoolList = 17,
    UnixTimestampList = 18,
    Null = 19,
    Map = 20,
    MapList = 21,
    BytesSet = 22,
    StringSet = 23,
    Int32Set = 24,
    Int64Set = 25,
    DoubleSet = 26,
    FloatSet = 27,
    BoolSet = 28,
    UnixTimestampSet = 29,
    PdfBytes = 30,
    ImageBytes = 31,
    Json = 32,
    JsonList = 33,
    Struct = 34,
    StructList = 35,
    Uuid = 36,
    TimeUuid = 37,
    UuidList = 38,
    TimeUuidList = 39,
    UuidSet = 40,
    TimeUuidSet = 41,
    ValueList = 42,
    ValueSet = 43,
    Decimal = 44,
    DecimalList = 45,
    DecimalSet = 46,
    ScalarMap = 47,
    ZonedTimestamp = 48,
}

use ValueType as T;

const ALL_TYPES: &[ValueType] = &[
    T::Invalid,
    T::Bytes,
    T::String,
    T::Int32,
    T::Int64,
    T::Double,
    T::Float,
    T::Bool,
    T::UnixTimestamp,
    T::BytesList,
    T::StringList,
    T::Int32List,
    T::Int64List,
    T::DoubleList,
    T::FloatList,
    T::BoolList,
    T::UnixTimestampList,
    T::Null,
    T::Map,
    T::MapList,
    T::BytesSet,
    T::StringSet,
    T::Int32Set,
    T::Int64Set,
    T::DoubleSet,
    T::FloatSet,
    T::BoolSet,
    T::UnixTimestampSet,
    T::PdfBytes,
    T::ImageBytes,
    T::Json,
    T::JsonList,
    T::Struct,
    T::StructList,
    T::Uuid,
    T::TimeUuid,
    T::UuidList,
    T::TimeUuidList,
    T::UuidSet,
    T::TimeUuidSet,
    T::ValueList,
    T::ValueSet,
    T::Decimal,
    T::DecimalList,
    T::DecimalSet,
    T::ScalarMap,
    T::ZonedTimestamp,
];

impl ValueType {
    /// From the registry's enum number; unknown numbers become `Invalid` (type inferred).
    pub fn from_i32(v: i32) -> ValueType {
        ALL_TYPES.iter().copied().find(|t| *t as i32 == v).unwrap_or(T::Invalid)
    }

    /// Feast's enum name (`INT64`, `FLOAT_LIST`...).
    pub fn enum_name(self) -> &'static str {
        match self {
            T::Invalid => "INVALID",
            T::Bytes => "BYTES",
            T::String => "STRING",
            T::Int32 => "INT32",
            T::Int64 => "INT64",
            T::Double => "DOUBLE",
            T::Float => "FLOAT",
            T::Bool => "BOOL",
            T::UnixTimestamp => "UNIX_TIMESTAMP",
            T::BytesList => "BYTES_LIST",
            T::StringList => "STRING_LIST",
            T::Int32List => "INT32_LIST",
            T::Int64List => "INT64_LIST",
            T::DoubleList => "DOUBLE_LIST",
            T::FloatList => "FLOAT_LIST",
            T::BoolList => "BOOL_LIST",
            T::UnixTimestampList => "UNIX_TIMESTAMP_LIST",
            T::Null => "NULL",
            T::Map => "MAP",
            T::MapList => "MAP_LIST",
            T::BytesSet => "BYTES_SET",
            T::StringSet => "STRING_SET",
            T::Int32Set => "INT32_SET",
            T::Int64Set => "INT64_SET",
            T::DoubleSet => "DOUBLE_SET",
            T::FloatSet => "FLOAT_SET",
            T::BoolSet => "BOOL_SET",
            T::UnixTimestampSet => "UNIX_TIMESTAMP_SET",
            T::PdfBytes => "PDF_BYTES",
            T::ImageBytes => "IMAGE_BYTES",
            T::Json => "JSON",
            T::JsonList => "JSON_LIST",
            T::Struct => "STRUCT",
            T::StructList => "STRUCT_LIST",
            T::Uuid => "UUID",
            T::TimeUuid => "TIME_UUID",
            T::UuidList => "UUID_LIST",
            T::TimeUuidList => "TIME_UUID_LIST",
            T::UuidSet => "UUID_SET",
            T::TimeUuidSet => "TIME_UUID_SET",
            T::ValueList => "VALUE_LIST",
            T::ValueSet => "VALUE_SET",
            T::Decimal => "DECIMAL",
            T::DecimalList => "DECIMAL_LIST",
            T::DecimalSet => "DECIMAL_SET",
            T::ScalarMap => "SCALAR_MAP",
            T::ZonedTimestamp => "ZONED_TIMESTAMP",
        }
    }

    /// The name a person writes in `features.yaml`: Feast's Python type names (`Int64`,
    /// `Float32`, `Array(String)`, `Set(Int64)`), case-insensitive, or the enum names (`INT64`).
    pub fn parse(text: &str) -> Option<ValueType> {
        let t = text.trim();
        let lower = t.to_ascii_lowercase();
        let inner = |prefix: &str| {
            lower.strip_prefix(prefix).and_then(|r| r.strip_suffix(')')).map(str::trim).map(str::to_string)
        };
        if let Some(elem) = inner("array(").or_else(|| inner("list(")) {
            return Self::parse(&elem).and_then(ValueType::list_of);
        }
        if let Some(elem) = inner("set(") {
            return Self::parse(&elem).and_then(ValueType::set_of);
        }
        let by_sdk = match lower.as_str() {
            "int32" => Some(T::Int32),
            "int64" => Some(T::Int64),
            "float32" | "float" => Some(T::Float),
            "float64" | "double" => Some(T::Double),
            "string" | "str" => Some(T::String),
            "bytes" => Some(T::Bytes),
            "bool" | "boolean" => Some(T::Bool),
            "unixtimestamp" | "unix_timestamp" | "timestamp" => Some(T::UnixTimestamp),
            "pdfbytes" => Some(T::PdfBytes),
            "imagebytes" => Some(T::ImageBytes),
            "map" => Some(T::Map),
            "json" => Some(T::Json),
            "struct" => Some(T::Struct),
            "uuid" => Some(T::Uuid),
            "timeuuid" => Some(T::TimeUuid),
            "decimal" => Some(T::Decimal),
            _ => None,
        };
        by_sdk.or_else(|| ALL_TYPES.iter().copied().find(|v| v.enum_name().eq_ignore_ascii_case(t) && *v != T::Invalid))
    }

    /// The element type of a list or set type.
    pub fn element(self) -> Option<ValueType> {
        Some(match self {
            T::BytesList | T::BytesSet => T::Bytes,
            T::StringList | T::StringSet => T::String,
            T::Int32List | T::Int32Set => T::Int32,
            T::Int64List | T::Int64Set => T::Int64,
            T::DoubleList | T::DoubleSet => T::Double,
            T::FloatList | T::FloatSet => T::Float,
            T::BoolList | T::BoolSet => T::Bool,
            T::UnixTimestampList | T::UnixTimestampSet => T::UnixTimestamp,
            T::JsonList => T::Json,
            T::StructList => T::Struct,
            T::MapList => T::Map,
            T::UuidList | T::UuidSet => T::Uuid,
            T::TimeUuidList | T::TimeUuidSet => T::TimeUuid,
            T::DecimalList | T::DecimalSet => T::Decimal,
            T::ValueList | T::ValueSet => T::Invalid,
            _ => return None,
        })
    }

    pub fn list_of(elem: ValueType) -> Option<ValueType> {
        Some(match elem {
            T::Bytes | T::PdfBytes | T::ImageBytes => T::BytesList,
            T::String => T::StringList,
            T::Int32 => T::Int32List,
            T::Int64 => T::Int64List,
            T::Double => T::DoubleList,
            T::Float => T::FloatList,
            T::Bool => T::BoolList,
            T::UnixTimestamp => T::UnixTimestampList,
            T::Json => T::JsonList,
            T::Struct => T::StructList,
            T::Map => T::MapList,
            T::Uuid => T::UuidList,
            T::TimeUuid => T::TimeUuidList,
            T::Decimal => T::DecimalList,
            _ => return None,
        })
    }

    pub fn set_of(elem: ValueType) -> Option<ValueType> {
        Some(match elem {
            T::Bytes => T::BytesSet,
            T::String => T::StringSet,
            T::Int32 => T::Int32Set,
            T::Int64 => T::Int64Set,
            T::Double => T::DoubleSet,
            T::Float => T::FloatSet,
            T::Bool => T::BoolSet,
            T::UnixTimestamp => T::UnixTimestampSet,
            T::Uuid => T::UuidSet,
            T::TimeUuid => T::TimeUuidSet,
            T::Decimal => T::DecimalSet,
            _ => return None,
        })
    }

    /// Whether values of this type may be part of an entity key (Feast allows only these).
    pub fn is_key_type(self) -> bool {
        matches!(self, T::String | T::Bytes | T::Int32 | T::Int64 | T::UnixTimestamp)
    }

    /// Feast's Python SDK spelling, used when Larder writes YAML or messages.
    pub fn sdk_name(self) -> String {
        let scalar = |t: ValueType| match t {
            T::Int32 => "Int32",
            T::Int64 => "Int64",
            T::Float => "Float32",
            T::Double => "Float64",
            T::String => "String",
            T::Bytes => "Bytes",
            T::Bool => "Bool",
            T::UnixTimestamp => "UnixTimestamp",
            T::Json => "Json",
            T::Struct => "Struct",
            T::Map => "Map",
            T::Uuid => "Uuid",
            T::TimeUuid => "TimeUuid",
            T::Decimal => "Decimal",
            T::PdfBytes => "PdfBytes",
            T::ImageBytes => "ImageBytes",
            other => other.enum_name(),
        };
        match (self.element(), self.enum_name().ends_with("_SET")) {
            (Some(e), false) if self != T::ValueList => format!("Array({})", scalar(e)),
            (Some(e), true) if self != T::ValueSet => format!("Set({})", scalar(e)),
            _ => scalar(self).to_string(),
        }
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.sdk_name())
    }
}

/// The empty `Value` (no field set): what Feast stores for a null feature.
pub const NULL: Value = Value { val: None };

pub fn is_null(v: &Value) -> bool {
    matches!(v.val, None | Some(Val::NullVal(_)))
}

pub fn encode(v: &Value) -> Vec<u8> {
    v.encode_to_vec()
}

pub fn decode(bytes: &[u8]) -> Result<Value, String> {
    Value::decode(bytes).map_err(|e| format!("stored value is not a feast.types.Value: {e}"))
}

/// The value type a stored value actually carries (`Invalid` for null).
pub fn type_of(v: &Value) -> ValueType {
    match &v.val {
        None | Some(Val::NullVal(_)) => T::Invalid,
        Some(Val::BytesVal(_)) => T::Bytes,
        Some(Val::StringVal(_)) => T::String,
        Some(Val::Int32Val(_)) => T::Int32,
        Some(Val::Int64Val(_)) => T::Int64,
        Some(Val::DoubleVal(_)) => T::Double,
        Some(Val::FloatVal(_)) => T::Float,
        Some(Val::BoolVal(_)) => T::Bool,
        Some(Val::UnixTimestampVal(_)) => T::UnixTimestamp,
        Some(Val::BytesListVal(_)) => T::BytesList,
        Some(Val::StringListVal(_)) => T::StringList,
        Some(Val::Int32ListVal(_)) => T::Int32List,
        Some(Val::Int64ListVal(_)) => T::Int64List,
        Some(Val::DoubleListVal(_)) => T::DoubleList,
        Some(Val::FloatListVal(_)) => T::FloatList,
        Some(Val::BoolListVal(_)) => T::BoolList,
        Some(Val::UnixTimestampListVal(_)) => T::UnixTimestampList,
        Some(Val::MapVal(_)) => T::Map,
        Some(Val::MapListVal(_)) => T::MapList,
        Some(Val::BytesSetVal(_)) => T::BytesSet,
        Some(Val::StringSetVal(_)) => T::StringSet,
        Some(Val::Int32SetVal(_)) => T::Int32Set,
        Some(Val::Int64SetVal(_)) => T::Int64Set,
        Some(Val::DoubleSetVal(_)) => T::DoubleSet,
        Some(Val::FloatSetVal(_)) => T::FloatSet,
        Some(Val::BoolSetVal(_)) => T::BoolSet,
        Some(Val::UnixTimestampSetVal(_)) => T::UnixTimestampSet,
        Some(Val::JsonVal(_)) => T::Json,
        Some(Val::JsonListVal(_)) => T::JsonList,
        Some(Val::StructVal(_)) => T::Struct,
        Some(Val::StructListVal(_)) => T::StructList,
        Some(Val::UuidVal(_)) => T::Uuid,
        Some(Val::TimeUuidVal(_)) => T::TimeUuid,
        Some(Val::UuidListVal(_)) => T::UuidList,
        Some(Val::TimeUuidListVal(_)) => T::TimeUuidList,
        Some(Val::UuidSetVal(_)) => T::UuidSet,
        Some(Val::TimeUuidSetVal(_)) => T::TimeUuidSet,
        Some(Val::ListVal(_)) => T::ValueList,
        Some(Val::SetVal(_)) => T::ValueSet,
        Some(Val::DecimalVal(_)) => T::Decimal,
        Some(Val::DecimalListVal(_)) => T::DecimalList,
        Some(Val::DecimalSetVal(_)) => T::DecimalSet,
        Some(Val::ScalarMapVal(_)) => T::ScalarMap,
        Some(Val::ZonedTimestampVal(_)) => T::ZonedTimestamp,
    }
}

fn v(val: Val) -> Value {
    Value { val: Some(val) }
}

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

/// Converts a JSON value to a `Value` of the declared type. JSON `null` is the empty Value.
/// The error says what was expected; the caller adds the column and row.
pub fn from_json(j: &serde_json::Value, ty: ValueType) -> Result<Value, String> {
    use serde_json::Value as J;
    if j.is_null() {
        return Ok(NULL);
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
            Some(f) => v(Val::DoubleVal(f)),
            None => return bad(),
        },
        T::Float => match json_float(j) {
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

/// Packs scalar Values (all of the list's element type) into the list or set Value.
fn list_from_scalars(list_ty: ValueType, items: Vec<Value>) -> Result<Value, String> {
    macro_rules! collect {
        ($variant:ident) => {
            items
                .into_iter()
                .map(|x| match x.val {
                    Some(Val::$variant(inner)) => Ok(inner),
                    _ => Err(format!("a {list_ty} element has the wrong type")),
                })
                .collect::<Result<Vec<_>, String>>()?
        };
    }
    Ok(v(match list_ty {
        T::BytesList => Val::BytesListVal(BytesList { val: collect!(BytesVal) }),
        T::BytesSet => Val::BytesSetVal(BytesList { val: collect!(BytesVal) }),
        T::StringList => Val::StringListVal(StringList { val: collect!(StringVal) }),
        T::StringSet => Val::StringSetVal(StringList { val: collect!(StringVal) }),
        T::Int32List => Val::Int32ListVal(Int32List { val: collect!(Int32Val) }),
        T::Int32Set => Val::Int32SetVal(Int32List { val: collect!(Int32Val) }),
        T::Int64List => Val::Int64ListVal(Int64List { val: collect!(Int64Val) }),
        T::Int64Set => Val::Int64SetVal(Int64List { val: collect!(Int64Val) }),
        T::DoubleList => Val::DoubleListVal(DoubleList { val: collect!(DoubleVal) }),
        T::DoubleSet => Val::DoubleSetVal(DoubleList { val: collect!(DoubleVal) }),
        T::FloatList => Val::FloatListVal(FloatList { val: collect!(FloatVal) }),
        T::FloatSet => Val::FloatSetVal(FloatList { val: collect!(FloatVal) }),
        T::BoolList => Val::BoolListVal(BoolList { val: collect!(BoolVal) }),
        T::BoolSet => Val::BoolSetVal(BoolList { val: collect!(BoolVal) }),
        T::UnixTimestampList => Val::UnixTimestampListVal(Int64List { val: collect!(UnixTimestampVal) }),
        T::UnixTimestampSet => Val::UnixTimestampSetVal(Int64List { val: collect!(UnixTimestampVal) }),
        T::JsonList => Val::JsonListVal(StringList { val: collect!(JsonVal) }),
        T::UuidList => Val::UuidListVal(StringList { val: collect!(UuidVal) }),
        T::UuidSet => Val::UuidSetVal(StringList { val: collect!(UuidVal) }),
        T::TimeUuidList => Val::TimeUuidListVal(StringList { val: collect!(TimeUuidVal) }),
        T::TimeUuidSet => Val::TimeUuidSetVal(StringList { val: collect!(TimeUuidVal) }),
        T::DecimalList => Val::DecimalListVal(StringList { val: collect!(DecimalVal) }),
        T::DecimalSet => Val::DecimalSetVal(StringList { val: collect!(DecimalVal) }),
        T::MapList => Val::MapListVal(MapList { val: collect!(MapVal) }),
        T::StructList => Val::StructListVal(MapList { val: collect!(StructVal) }),
        other => return Err(format!("{other} is not a list type")),
    }))
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

fn write_array<I>(items: &[I], out: &mut Vec<u8>, mut each: impl FnMut(&I, &mut Vec<u8>)) {
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        each(item, out);
    }
    out.push(b']');
}

fn write_map(m: &Map, out: &mut Vec<u8>) {
    // Sorted keys: protobuf maps have no order, and stable output makes responses comparable.
    let mut keys: Vec<&String> = m.val.keys().collect();
    keys.sort();
    out.push(b'{');
    for (i, k) in keys.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(k, out);
        out.push(b':');
        write_json(&m.val[k], out);
    }
    out.push(b'}');
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

// ---------------------------------------------------------------------------------------------
// Arrow -> Value
// ---------------------------------------------------------------------------------------------

/// Reads row `row` of an Arrow array as a `Value` of the declared type (a parquet column being
/// materialized, or a pushed batch). Nulls become the empty Value. Numeric widening and
/// narrowing follow Feast: int columns may feed Int32/Int64/Float/Double features, and an
/// out-of-range narrowing is an error naming the value.
pub fn from_arrow(array: &dyn Array, row: usize, ty: ValueType) -> Result<Value, String> {
    if array.is_null(row) {
        return Ok(NULL);
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
                    None | Some(Val::NullVal(_)) => b.append_null(),
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

/// A map of feature name to value, as an in-memory row.
pub type Row = HashMap<String, Value>;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn value_bytes_match_reference_table() {
        // docs/compatibility.md §3.1.
        let cases: Vec<(Value, &str)> = vec![
            (v(Val::Int64Val(1001)), "20e907"),
            (v(Val::Int64Val(0)), "2000"),
            (v(Val::Int32Val(7)), "1807"),
            (v(Val::DoubleVal(0.5)), "29000000000000e03f"),
            (v(Val::FloatVal(0.5)), "350000003f"),
            (v(Val::StringVal("abc".into())), "1203616263"),
            (v(Val::BoolVal(true)), "3801"),
            (v(Val::UnixTimestampVal(1_700_000_000)), "4080e2cfaa06"),
            (v(Val::DoubleListVal(DoubleList { val: vec![1.0, 2.0] })), "7a120a10000000000000f03f0000000000000040"),
            (v(Val::Int64ListVal(Int64List { val: vec![1, 2] })), "72040a020102"),
            (v(Val::StringListVal(StringList { val: vec!["a".into(), "b".into()] })), "62060a01610a0162"),
            (v(Val::NullVal(0)), "980100"),
            (NULL, ""),
        ];
        for (value, want) in cases {
            assert_eq!(hex(&encode(&value)), want, "{value:?}");
            assert_eq!(decode(&encode(&value)).unwrap(), value);
        }
    }

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
    fn json_input_errors_say_what_was_expected() {
        assert_eq!(from_json(&json!("abc"), T::Int64).unwrap_err(), "expected Int64, got \"abc\"");
        assert!(from_json(&json!(1.5), T::Int64).is_err());
        assert!(from_json(&json!(true), T::Int64).is_err());
        assert!(from_json(&json!(3_000_000_000i64), T::Int32).unwrap_err().contains("Int32"));
        assert!(from_json(&json!(1), T::Bool).is_err());
        assert!(from_json(&json!("%%%"), T::Bytes).unwrap_err().contains("base64"));
        assert!(from_json(&json!([1, null]), T::Int64List).unwrap_err().contains("element 1"));
        assert!(from_json(&json!([1, "x"]), T::Int64List).unwrap_err().contains("element 1"));
        assert!(from_json(&json!(1), T::StringList).is_err());
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

    #[test]
    fn type_names_parse_both_spellings() {
        assert_eq!(ValueType::parse("Int64"), Some(T::Int64));
        assert_eq!(ValueType::parse("float32"), Some(T::Float));
        assert_eq!(ValueType::parse("Float64"), Some(T::Double));
        assert_eq!(ValueType::parse("Array(String)"), Some(T::StringList));
        assert_eq!(ValueType::parse("Set(Int64)"), Some(T::Int64Set));
        assert_eq!(ValueType::parse("INT64_LIST"), Some(T::Int64List));
        assert_eq!(ValueType::parse("Unix_Timestamp"), Some(T::UnixTimestamp));
        assert_eq!(ValueType::parse("Int65"), None);
        assert_eq!(ValueType::parse("Array(Array(Int64))"), None);
        for t in ALL_TYPES {
            assert_eq!(ValueType::from_i32(*t as i32), *t);
            if *t != T::Invalid && *t != T::Null {
                assert_eq!(ValueType::parse(t.enum_name()), Some(*t), "{t:?}");
            }
        }
        assert_eq!(T::FloatList.sdk_name(), "Array(Float32)");
        assert_eq!(ValueType::parse(&T::FloatList.sdk_name()), Some(T::FloatList));
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
        assert!(from_arrow(&big, 0, T::Int64).is_err());
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
