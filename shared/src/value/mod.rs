//! Feast's value types and conversions between their forms:
//! protobuf bytes (Redis) <-> [`Value`] <-> JSON (HTTP) and <- Arrow arrays (parquet, push).
//!
//! The in-memory value is the protobuf message itself ([`Value`], a `oneof`), so reading from
//! Redis is one prost decode and writing is one encode, with no intermediate model.
//!
//! This file holds the types, the protobuf bytes and what both conversions share; `json` and
//! `arrow` hold the conversions, each with its tests.

mod arrow;
mod json;

use std::collections::HashMap;
use std::fmt;

use prost::Message;

pub use self::arrow::{arrow_time, from_arrow, to_arrow};
pub use self::json::{from_json, infer_from_json, to_json, write_f64, write_int, write_json, write_str};
pub use crate::proto::types::Value;
use crate::proto::types::{
    BoolList, BytesList, DoubleList, FloatList, Int32List, Int64List, MapList, StringList, value::Val,
};

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
        // The SDK's names that are not also the enum's (INT32, STRING, MAP, ... are read below,
        // in any case).
        let by_sdk = match lower.as_str() {
            "float32" | "float" => Some(T::Float),
            "float64" | "double" => Some(T::Double),
            "str" => Some(T::String),
            "boolean" => Some(T::Bool),
            "unixtimestamp" | "unix_timestamp" | "timestamp" => Some(T::UnixTimestamp),
            "pdfbytes" => Some(T::PdfBytes),
            "imagebytes" => Some(T::ImageBytes),
            "timeuuid" => Some(T::TimeUuid),
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

/// How Feast stores a null `UnixTimestamp`: pandas' `NaT` is the minimum int64, which Feast
/// writes as the value (`unix_timestamp_val: -9223372036854775808`) instead of an empty Value.
/// Larder writes the same bytes, and reads them back as a null (`NULL_VALUE`).
pub const NULL_UNIX_TIMESTAMP: i64 = i64::MIN;

/// The null of a declared type, as Feast writes it: the empty Value, except for
/// `UnixTimestamp` ([`NULL_UNIX_TIMESTAMP`]).
pub fn null_of(ty: ValueType) -> Value {
    if ty == T::UnixTimestamp { v(Val::UnixTimestampVal(NULL_UNIX_TIMESTAMP)) } else { NULL }
}

/// Whether a stored value means "no value": the empty Value, `null_val`, or Feast's null
/// timestamp.
pub fn is_null(v: &Value) -> bool {
    matches!(v.val, None | Some(Val::NullVal(_)) | Some(Val::UnixTimestampVal(NULL_UNIX_TIMESTAMP)))
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

/// A map of feature name to value, as an in-memory row.
pub type Row = HashMap<String, Value>;

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn every_type_is_read_back_from_its_sdk_and_enum_names() {
        for t in ALL_TYPES.iter().copied().filter(|t| *t != T::Invalid) {
            assert_eq!(ValueType::parse(&t.sdk_name()), Some(t), "{}", t.sdk_name());
            assert_eq!(ValueType::parse(t.enum_name()), Some(t), "{}", t.enum_name());
            assert_eq!(ValueType::parse(&t.enum_name().to_ascii_lowercase()), Some(t), "{}", t.enum_name());
            match t.element() {
                Some(T::Invalid) | None => {}
                Some(e) if t.enum_name().ends_with("_SET") => assert_eq!(ValueType::set_of(e), Some(t), "{t:?}"),
                Some(e) => assert_eq!(ValueType::list_of(e), Some(t), "{t:?}"),
            }
        }
        // Every list and set type knows its element (the SDK name shows it), nothing else has one.
        for t in ALL_TYPES.iter().copied() {
            let name = t.enum_name();
            if name.starts_with("VALUE_") {
                assert_eq!(t.element(), Some(T::Invalid), "{name}: a list of any values");
            } else if name.ends_with("_LIST") || name.ends_with("_SET") {
                let e = t.element().unwrap_or_else(|| panic!("{name} has no element type"));
                let shown = if name.ends_with("_SET") { "Set(" } else { "Array(" };
                assert_eq!(t.sdk_name(), format!("{shown}{})", e.sdk_name()), "{name}");
            } else {
                assert_eq!(t.element(), None, "{name}");
            }
        }
        let names = [
            ("Int32", T::Int32),
            ("int64", T::Int64),
            ("Float32", T::Float),
            ("float", T::Float),
            ("Float64", T::Double),
            ("double", T::Double),
            ("String", T::String),
            ("str", T::String),
            ("Bytes", T::Bytes),
            ("Bool", T::Bool),
            ("boolean", T::Bool),
            ("UnixTimestamp", T::UnixTimestamp),
            ("unix_timestamp", T::UnixTimestamp),
            ("timestamp", T::UnixTimestamp),
            ("PdfBytes", T::PdfBytes),
            ("ImageBytes", T::ImageBytes),
            ("Map", T::Map),
            ("Json", T::Json),
            ("Struct", T::Struct),
            ("Uuid", T::Uuid),
            ("TimeUuid", T::TimeUuid),
            ("Decimal", T::Decimal),
            (" List( int64 ) ", T::Int64List),
            ("Array(PdfBytes)", T::BytesList),
            ("Array(ImageBytes)", T::BytesList),
            ("Array(Map)", T::MapList),
            ("Set(str)", T::StringSet),
        ];
        for (text, t) in names {
            assert_eq!(ValueType::parse(text), Some(t), "{text}");
        }
        for text in ["Set(Json)", "Set(Map)", "Array(Array(Int64))", "Int128", "INVALID", "Array(nothing)", ""] {
            assert_eq!(ValueType::parse(text), None, "{text}");
        }
        assert_eq!(T::ValueList.sdk_name(), "VALUE_LIST");
        assert_eq!(T::ValueSet.sdk_name(), "VALUE_SET");
        assert_eq!(T::Int64Set.sdk_name(), "Set(Int64)");
        assert_eq!(T::FloatList.sdk_name(), "Array(Float32)");
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
}
