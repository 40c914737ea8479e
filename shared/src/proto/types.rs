//! `feast.types`: `Value` and its helper messages (protos/feast/types/Value.proto).

use std::collections::HashMap;

#[derive(Clone, PartialEq, prost::Message)]
pub struct Value {
    #[prost(
        oneof = "value::Val",
        tags = "1, 2, 3, 4, 5, 6, 7, 8, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, \
                26, 27, 28, 29, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48"
    )]
    pub val: Option<value::Val>,
}

pub mod value {
    use super::*;

    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Val {
        #[prost(bytes = "vec", tag = "1")]
        BytesVal(Vec<u8>),
        #[prost(string, tag = "2")]
        StringVal(String),
        #[prost(int32, tag = "3")]
        Int32Val(i32),
        #[prost(int64, tag = "4")]
        Int64Val(i64),
        #[prost(double, tag = "5")]
        DoubleVal(f64),
        #[prost(float, tag = "6")]
        FloatVal(f32),
        #[prost(bool, tag = "7")]
        BoolVal(bool),
        /// Epoch seconds.
        #[prost(int64, tag = "8")]
        UnixTimestampVal(i64),
        #[prost(message, tag = "11")]
        BytesListVal(BytesList),
        #[prost(message, tag = "12")]
        StringListVal(StringList),
        #[prost(message, tag = "13")]
        Int32ListVal(Int32List),
        #[prost(message, tag = "14")]
        Int64ListVal(Int64List),
        #[prost(message, tag = "15")]
        DoubleListVal(DoubleList),
        #[prost(message, tag = "16")]
        FloatListVal(FloatList),
        #[prost(message, tag = "17")]
        BoolListVal(BoolList),
        #[prost(message, tag = "18")]
        UnixTimestampListVal(Int64List),
        /// `enum Null { NULL = 0 }`.
        #[prost(int32, tag = "19")]
        NullVal(i32),
        #[prost(message, tag = "20")]
        MapVal(Map),
        #[prost(message, tag = "21")]
        MapListVal(MapList),
        #[prost(message, tag = "22")]
        BytesSetVal(BytesList),
        #[prost(message, tag = "23")]
        StringSetVal(StringList),
        #[prost(message, tag = "24")]
        Int32SetVal(Int32List),
        #[prost(message, tag = "25")]
        Int64SetVal(Int64List),
        #[prost(message, tag = "26")]
        DoubleSetVal(DoubleList),
        #[prost(message, tag = "27")]
        FloatSetVal(FloatList),
        #[prost(message, tag = "28")]
        BoolSetVal(BoolList),
        #[prost(message, tag = "29")]
        UnixTimestampSetVal(Int64List),
        #[prost(string, tag = "32")]
        JsonVal(String),
        #[prost(message, tag = "33")]
        JsonListVal(StringList),
        #[prost(message, tag = "34")]
        StructVal(Map),
        #[prost(message, tag = "35")]
        StructListVal(MapList),
        #[prost(string, tag = "36")]
        UuidVal(String),
        #[prost(string, tag = "37")]
        TimeUuidVal(String),
        #[prost(message, tag = "38")]
        UuidListVal(StringList),
        #[prost(message, tag = "39")]
        TimeUuidListVal(StringList),
        #[prost(message, tag = "40")]
        UuidSetVal(StringList),
        #[prost(message, tag = "41")]
        TimeUuidSetVal(StringList),
        #[prost(message, tag = "42")]
        ListVal(RepeatedValue),
        #[prost(message, tag = "43")]
        SetVal(RepeatedValue),
        #[prost(string, tag = "44")]
        DecimalVal(String),
        #[prost(message, tag = "45")]
        DecimalListVal(StringList),
        #[prost(message, tag = "46")]
        DecimalSetVal(StringList),
        #[prost(message, tag = "47")]
        ScalarMapVal(ScalarMap),
        #[prost(message, tag = "48")]
        ZonedTimestampVal(ZonedTimestamp),
    }
}

// Every `*List` and `*Set` message is `repeated <scalar> val = 1`; a set has the same wire form
// as the list of its type, so one Rust type serves both.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BytesList {
    #[prost(bytes = "vec", repeated, tag = "1")]
    pub val: Vec<Vec<u8>>,
}
#[derive(Clone, PartialEq, prost::Message)]
pub struct StringList {
    #[prost(string, repeated, tag = "1")]
    pub val: Vec<String>,
}
#[derive(Clone, PartialEq, prost::Message)]
pub struct Int32List {
    #[prost(int32, repeated, tag = "1")]
    pub val: Vec<i32>,
}
#[derive(Clone, PartialEq, prost::Message)]
pub struct Int64List {
    #[prost(int64, repeated, tag = "1")]
    pub val: Vec<i64>,
}
#[derive(Clone, PartialEq, prost::Message)]
pub struct DoubleList {
    #[prost(double, repeated, tag = "1")]
    pub val: Vec<f64>,
}
#[derive(Clone, PartialEq, prost::Message)]
pub struct FloatList {
    #[prost(float, repeated, tag = "1")]
    pub val: Vec<f32>,
}
#[derive(Clone, PartialEq, prost::Message)]
pub struct BoolList {
    #[prost(bool, repeated, tag = "1")]
    pub val: Vec<bool>,
}
#[derive(Clone, PartialEq, prost::Message)]
pub struct Map {
    #[prost(map = "string, message", tag = "1")]
    pub val: HashMap<String, Value>,
}
#[derive(Clone, PartialEq, prost::Message)]
pub struct MapList {
    #[prost(message, repeated, tag = "1")]
    pub val: Vec<Map>,
}
#[derive(Clone, PartialEq, prost::Message)]
pub struct RepeatedValue {
    #[prost(message, repeated, tag = "1")]
    pub val: Vec<Value>,
}
#[derive(Clone, PartialEq, prost::Message)]
pub struct ScalarMap {
    #[prost(message, repeated, tag = "1")]
    pub val: Vec<ScalarMapEntry>,
}
#[derive(Clone, PartialEq, prost::Message)]
pub struct ScalarMapEntry {
    #[prost(message, optional, tag = "1")]
    pub key: Option<MapKey>,
    #[prost(message, optional, tag = "2")]
    pub value: Option<Value>,
}
#[derive(Clone, PartialEq, prost::Message)]
pub struct MapKey {
    #[prost(oneof = "map_key::Key", tags = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10")]
    pub key: Option<map_key::Key>,
}
pub mod map_key {
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Key {
        #[prost(int32, tag = "1")]
        Int32Key(i32),
        #[prost(int64, tag = "2")]
        Int64Key(i64),
        #[prost(float, tag = "3")]
        FloatKey(f32),
        #[prost(double, tag = "4")]
        DoubleKey(f64),
        #[prost(bool, tag = "5")]
        BoolKey(bool),
        #[prost(int64, tag = "6")]
        UnixTimestampKey(i64),
        #[prost(bytes = "vec", tag = "7")]
        BytesKey(Vec<u8>),
        #[prost(string, tag = "8")]
        UuidKey(String),
        #[prost(string, tag = "9")]
        TimeUuidKey(String),
        #[prost(string, tag = "10")]
        DecimalKey(String),
    }
}
#[derive(Clone, PartialEq, prost::Message)]
pub struct ZonedTimestamp {
    #[prost(int64, tag = "1")]
    pub unix_timestamp: i64,
    #[prost(string, tag = "2")]
    pub zone: String,
}

/// `feast.types.EntityKey`: not what goes into Redis (that is `keys::serialize_entity_key`),
/// kept for completeness of the model.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EntityKey {
    #[prost(string, repeated, tag = "1")]
    pub join_keys: Vec<String>,
    #[prost(message, repeated, tag = "2")]
    pub entity_values: Vec<Value>,
}
