//! `feast.core`: the registry messages (protos/feast/core/*.proto), the fields Larder uses.
//!
//! Sub-messages Larder only needs to carry, not read (bigquery options, transformations,
//! logging config...), are declared as `bytes`: a length-delimited field decodes the same either
//! way, and re-encoding writes the original bytes back.

use std::collections::HashMap;

use prost_types::{Duration, Timestamp};

#[derive(Clone, PartialEq, prost::Message)]
pub struct Registry {
    #[prost(message, repeated, tag = "1")]
    pub entities: Vec<Entity>,
    #[prost(string, tag = "3")]
    pub registry_schema_version: String,
    #[prost(string, tag = "4")]
    pub version_id: String,
    #[prost(message, optional, tag = "5")]
    pub last_updated: Option<Timestamp>,
    #[prost(message, repeated, tag = "6")]
    pub feature_views: Vec<FeatureView>,
    #[prost(message, repeated, tag = "7")]
    pub feature_services: Vec<FeatureService>,
    #[prost(message, repeated, tag = "8")]
    pub on_demand_feature_views: Vec<OnDemandFeatureView>,
    #[prost(message, repeated, tag = "12")]
    pub data_sources: Vec<DataSource>,
    #[prost(message, repeated, tag = "14")]
    pub stream_feature_views: Vec<StreamFeatureView>,
    #[prost(message, repeated, tag = "16")]
    pub permissions: Vec<Permission>,
    #[prost(message, repeated, tag = "17")]
    pub projects: Vec<Project>,
}

/// Field numbers of `Registry`, for the wire-level editor.
pub mod registry_field {
    pub const ENTITIES: u32 = 1;
    pub const REGISTRY_SCHEMA_VERSION: u32 = 3;
    pub const VERSION_ID: u32 = 4;
    pub const LAST_UPDATED: u32 = 5;
    pub const FEATURE_VIEWS: u32 = 6;
    pub const FEATURE_SERVICES: u32 = 7;
    pub const ON_DEMAND_FEATURE_VIEWS: u32 = 8;
    pub const DATA_SOURCES: u32 = 12;
    pub const STREAM_FEATURE_VIEWS: u32 = 14;
    pub const PERMISSIONS: u32 = 16;
    pub const PROJECTS: u32 = 17;
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Entity {
    #[prost(message, optional, tag = "1")]
    pub spec: Option<EntitySpecV2>,
    #[prost(message, optional, tag = "2")]
    pub meta: Option<EntityMeta>,
}
#[derive(Clone, PartialEq, prost::Message)]
pub struct EntitySpecV2 {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(int32, tag = "2")]
    pub value_type: i32,
    #[prost(string, tag = "3")]
    pub description: String,
    #[prost(string, tag = "4")]
    pub join_key: String,
    #[prost(map = "string, string", tag = "8")]
    pub tags: HashMap<String, String>,
    #[prost(string, tag = "9")]
    pub project: String,
    #[prost(string, tag = "10")]
    pub owner: String,
}
#[derive(Clone, PartialEq, prost::Message)]
pub struct EntityMeta {
    #[prost(message, optional, tag = "1")]
    pub created_timestamp: Option<Timestamp>,
    #[prost(message, optional, tag = "2")]
    pub last_updated_timestamp: Option<Timestamp>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct FeatureView {
    #[prost(message, optional, tag = "1")]
    pub spec: Option<FeatureViewSpec>,
    #[prost(message, optional, tag = "2")]
    pub meta: Option<FeatureViewMeta>,
}
#[derive(Clone, PartialEq, prost::Message)]
pub struct FeatureViewSpec {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub project: String,
    #[prost(string, repeated, tag = "3")]
    pub entities: Vec<String>,
    #[prost(message, repeated, tag = "4")]
    pub features: Vec<FeatureSpecV2>,
    #[prost(map = "string, string", tag = "5")]
    pub tags: HashMap<String, String>,
    #[prost(message, optional, tag = "6")]
    pub ttl: Option<Duration>,
    #[prost(message, optional, tag = "7")]
    pub batch_source: Option<DataSource>,
    #[prost(bool, tag = "8")]
    pub online: bool,
    #[prost(message, optional, tag = "9")]
    pub stream_source: Option<DataSource>,
    #[prost(string, tag = "10")]
    pub description: String,
    #[prost(string, tag = "11")]
    pub owner: String,
    #[prost(message, repeated, tag = "12")]
    pub entity_columns: Vec<FeatureSpecV2>,
    #[prost(bool, tag = "13")]
    pub offline: bool,
    /// `FeatureTransformationV2`: set for a BatchFeatureView with a transformation.
    #[prost(bytes = "vec", optional, tag = "15")]
    pub feature_transformation: Option<Vec<u8>>,
    #[prost(string, tag = "16")]
    pub mode: String,
    #[prost(string, tag = "18")]
    pub version: String,
    #[prost(bool, tag = "20")]
    pub disabled: bool,
}
#[derive(Clone, PartialEq, prost::Message)]
pub struct FeatureViewMeta {
    #[prost(message, optional, tag = "1")]
    pub created_timestamp: Option<Timestamp>,
    #[prost(message, optional, tag = "2")]
    pub last_updated_timestamp: Option<Timestamp>,
    #[prost(message, repeated, tag = "3")]
    pub materialization_intervals: Vec<MaterializationInterval>,
    #[prost(int32, tag = "4")]
    pub current_version_number: i32,
    #[prost(string, tag = "5")]
    pub version_id: String,
    #[prost(int32, tag = "6")]
    pub state: i32,
}
/// Field numbers of `FeatureView` and `FeatureViewMeta`, for the wire-level editor.
pub mod feature_view_field {
    pub const SPEC: u32 = 1;
    pub const META: u32 = 2;
    pub const SPEC_NAME: u32 = 1;
    pub const SPEC_PROJECT: u32 = 2;
    pub const META_LAST_UPDATED: u32 = 2;
    pub const META_INTERVALS: u32 = 3;
    pub const META_STATE: u32 = 6;
}
#[derive(Clone, PartialEq, prost::Message)]
pub struct MaterializationInterval {
    #[prost(message, optional, tag = "1")]
    pub start_time: Option<Timestamp>,
    #[prost(message, optional, tag = "2")]
    pub end_time: Option<Timestamp>,
}
/// `FeatureViewState`.
pub mod feature_view_state {
    pub const UNSPECIFIED: i32 = 0;
    pub const CREATED: i32 = 1;
    pub const GENERATED: i32 = 2;
    pub const MATERIALIZING: i32 = 3;
    pub const AVAILABLE_ONLINE: i32 = 4;
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct FeatureSpecV2 {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(int32, tag = "2")]
    pub value_type: i32,
    #[prost(map = "string, string", tag = "3")]
    pub tags: HashMap<String, String>,
    #[prost(string, tag = "4")]
    pub description: String,
    #[prost(bool, tag = "5")]
    pub vector_index: bool,
    #[prost(string, tag = "6")]
    pub vector_search_metric: String,
    #[prost(int32, tag = "7")]
    pub vector_length: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct DataSource {
    #[prost(int32, tag = "1")]
    pub r#type: i32,
    #[prost(map = "string, string", tag = "2")]
    pub field_mapping: HashMap<String, String>,
    #[prost(string, tag = "3")]
    pub timestamp_field: String,
    #[prost(string, tag = "4")]
    pub date_partition_column: String,
    #[prost(string, tag = "5")]
    pub created_timestamp_column: String,
    #[prost(string, tag = "17")]
    pub data_source_class_type: String,
    #[prost(string, tag = "20")]
    pub name: String,
    #[prost(string, tag = "21")]
    pub project: String,
    #[prost(string, tag = "23")]
    pub description: String,
    #[prost(map = "string, string", tag = "24")]
    pub tags: HashMap<String, String>,
    #[prost(string, tag = "25")]
    pub owner: String,
    #[prost(message, optional, boxed, tag = "26")]
    pub batch_source: Option<Box<DataSource>>,
    #[prost(bytes = "vec", optional, tag = "50")]
    pub meta: Option<Vec<u8>>,
    #[prost(oneof = "data_source::Options", tags = "11, 12, 13, 14, 15, 16, 18, 19, 22, 27, 30, 35")]
    pub options: Option<data_source::Options>,
}
pub mod data_source {
    use super::*;

    /// `SourceType`.
    pub mod source_type {
        pub const INVALID: i32 = 0;
        pub const BATCH_FILE: i32 = 1;
        pub const STREAM_KAFKA: i32 = 3;
        pub const STREAM_KINESIS: i32 = 4;
        pub const REQUEST_SOURCE: i32 = 7;
        pub const PUSH_SOURCE: i32 = 9;
    }

    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Options {
        #[prost(message, tag = "11")]
        FileOptions(FileOptions),
        #[prost(bytes = "vec", tag = "12")]
        BigqueryOptions(Vec<u8>),
        #[prost(bytes = "vec", tag = "13")]
        KafkaOptions(Vec<u8>),
        #[prost(bytes = "vec", tag = "14")]
        KinesisOptions(Vec<u8>),
        #[prost(bytes = "vec", tag = "15")]
        RedshiftOptions(Vec<u8>),
        #[prost(bytes = "vec", tag = "16")]
        CustomOptions(Vec<u8>),
        #[prost(message, tag = "18")]
        RequestDataOptions(RequestDataOptions),
        #[prost(bytes = "vec", tag = "19")]
        SnowflakeOptions(Vec<u8>),
        #[prost(message, tag = "22")]
        PushOptions(PushOptions),
        #[prost(bytes = "vec", tag = "27")]
        SparkOptions(Vec<u8>),
        #[prost(bytes = "vec", tag = "30")]
        TrinoOptions(Vec<u8>),
        #[prost(bytes = "vec", tag = "35")]
        AthenaOptions(Vec<u8>),
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct FileOptions {
        #[prost(message, optional, tag = "1")]
        pub file_format: Option<FileFormat>,
        #[prost(string, tag = "2")]
        pub uri: String,
        #[prost(string, tag = "3")]
        pub s3_endpoint_override: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct FileFormat {
        #[prost(message, optional, tag = "1")]
        pub parquet_format: Option<ParquetFormat>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ParquetFormat {}
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RequestDataOptions {
        #[prost(message, repeated, tag = "3")]
        pub schema: Vec<FeatureSpecV2>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PushOptions {}
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct FeatureService {
    #[prost(message, optional, tag = "1")]
    pub spec: Option<FeatureServiceSpec>,
    #[prost(message, optional, tag = "2")]
    pub meta: Option<FeatureServiceMeta>,
}
#[derive(Clone, PartialEq, prost::Message)]
pub struct FeatureServiceSpec {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub project: String,
    #[prost(message, repeated, tag = "3")]
    pub features: Vec<FeatureViewProjection>,
    #[prost(map = "string, string", tag = "4")]
    pub tags: HashMap<String, String>,
    #[prost(string, tag = "5")]
    pub description: String,
    #[prost(string, tag = "6")]
    pub owner: String,
    #[prost(bytes = "vec", optional, tag = "7")]
    pub logging_config: Option<Vec<u8>>,
    #[prost(bool, tag = "8")]
    pub precompute_online: bool,
}
#[derive(Clone, PartialEq, prost::Message)]
pub struct FeatureServiceMeta {
    #[prost(message, optional, tag = "1")]
    pub created_timestamp: Option<Timestamp>,
    #[prost(message, optional, tag = "2")]
    pub last_updated_timestamp: Option<Timestamp>,
}
#[derive(Clone, PartialEq, prost::Message)]
pub struct FeatureViewProjection {
    #[prost(string, tag = "1")]
    pub feature_view_name: String,
    #[prost(message, repeated, tag = "2")]
    pub feature_columns: Vec<FeatureSpecV2>,
    #[prost(string, tag = "3")]
    pub feature_view_name_alias: String,
    #[prost(map = "string, string", tag = "4")]
    pub join_key_map: HashMap<String, String>,
    #[prost(string, tag = "5")]
    pub timestamp_field: String,
    #[prost(string, tag = "6")]
    pub date_partition_column: String,
    #[prost(string, tag = "7")]
    pub created_timestamp_column: String,
    #[prost(message, optional, tag = "8")]
    pub batch_source: Option<DataSource>,
    #[prost(message, optional, tag = "9")]
    pub stream_source: Option<DataSource>,
    #[prost(string, tag = "11")]
    pub view_type: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct OnDemandFeatureView {
    #[prost(message, optional, tag = "1")]
    pub spec: Option<OnDemandFeatureViewSpec>,
}
#[derive(Clone, PartialEq, prost::Message)]
pub struct OnDemandFeatureViewSpec {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub project: String,
    #[prost(message, repeated, tag = "3")]
    pub features: Vec<FeatureSpecV2>,
    #[prost(bool, tag = "12")]
    pub write_to_online_store: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct StreamFeatureView {
    #[prost(message, optional, tag = "1")]
    pub spec: Option<StreamFeatureViewSpec>,
    #[prost(message, optional, tag = "2")]
    pub meta: Option<FeatureViewMeta>,
}
#[derive(Clone, PartialEq, prost::Message)]
pub struct StreamFeatureViewSpec {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub project: String,
    #[prost(string, repeated, tag = "3")]
    pub entities: Vec<String>,
    #[prost(message, repeated, tag = "4")]
    pub features: Vec<FeatureSpecV2>,
    #[prost(message, repeated, tag = "5")]
    pub entity_columns: Vec<FeatureSpecV2>,
    #[prost(string, tag = "6")]
    pub description: String,
    #[prost(map = "string, string", tag = "7")]
    pub tags: HashMap<String, String>,
    #[prost(string, tag = "8")]
    pub owner: String,
    #[prost(message, optional, tag = "9")]
    pub ttl: Option<Duration>,
    #[prost(message, optional, tag = "10")]
    pub batch_source: Option<DataSource>,
    #[prost(message, optional, tag = "11")]
    pub stream_source: Option<DataSource>,
    #[prost(bool, tag = "12")]
    pub online: bool,
    #[prost(string, tag = "14")]
    pub mode: String,
    #[prost(message, repeated, tag = "15")]
    pub aggregations: Vec<Aggregation>,
    #[prost(string, tag = "16")]
    pub timestamp_field: String,
    #[prost(bool, tag = "18")]
    pub enable_tiling: bool,
    #[prost(message, optional, tag = "19")]
    pub tiling_hop_size: Option<Duration>,
    #[prost(bool, tag = "23")]
    pub disabled: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Aggregation {
    #[prost(string, tag = "1")]
    pub column: String,
    #[prost(string, tag = "2")]
    pub function: String,
    #[prost(message, optional, tag = "3")]
    pub time_window: Option<Duration>,
    #[prost(message, optional, tag = "4")]
    pub slide_interval: Option<Duration>,
    #[prost(string, tag = "5")]
    pub name: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Project {
    #[prost(message, optional, tag = "1")]
    pub spec: Option<ProjectSpec>,
    #[prost(message, optional, tag = "2")]
    pub meta: Option<ProjectMeta>,
}
#[derive(Clone, PartialEq, prost::Message)]
pub struct ProjectSpec {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub description: String,
    #[prost(map = "string, string", tag = "3")]
    pub tags: HashMap<String, String>,
    #[prost(string, tag = "4")]
    pub owner: String,
}
#[derive(Clone, PartialEq, prost::Message)]
pub struct ProjectMeta {
    #[prost(message, optional, tag = "1")]
    pub created_timestamp: Option<Timestamp>,
    #[prost(message, optional, tag = "2")]
    pub last_updated_timestamp: Option<Timestamp>,
}

/// `feast.core.Permission` (Permission.proto): who may do what to which objects.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Permission {
    #[prost(message, optional, tag = "1")]
    pub spec: Option<PermissionSpec>,
    #[prost(message, optional, tag = "2")]
    pub meta: Option<PermissionMeta>,
}
#[derive(Clone, PartialEq, prost::Message)]
pub struct PermissionSpec {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub project: String,
    /// `PermissionSpec.Type`: FEATURE_VIEW = 0, ON_DEMAND_FEATURE_VIEW = 1, BATCH_FEATURE_VIEW = 2,
    /// STREAM_FEATURE_VIEW = 3, ENTITY = 4, FEATURE_SERVICE = 5, DATA_SOURCE = 6, ... PROJECT = 10.
    #[prost(int32, repeated, tag = "3")]
    pub types: Vec<i32>,
    #[prost(string, repeated, tag = "4")]
    pub name_patterns: Vec<String>,
    #[prost(map = "string, string", tag = "5")]
    pub required_tags: HashMap<String, String>,
    /// `PermissionSpec.AuthzedAction`: CREATE = 0, DESCRIBE = 1, UPDATE = 2, DELETE = 3,
    /// READ_ONLINE = 4, READ_OFFLINE = 5, WRITE_ONLINE = 6, WRITE_OFFLINE = 7.
    #[prost(int32, repeated, tag = "6")]
    pub actions: Vec<i32>,
    #[prost(message, optional, tag = "7")]
    pub policy: Option<Policy>,
    #[prost(map = "string, string", tag = "8")]
    pub tags: HashMap<String, String>,
}
#[derive(Clone, PartialEq, prost::Message)]
pub struct PermissionMeta {
    #[prost(message, optional, tag = "1")]
    pub created_timestamp: Option<Timestamp>,
    #[prost(message, optional, tag = "2")]
    pub last_updated_timestamp: Option<Timestamp>,
}
/// `feast.core.Policy` (Policy.proto).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Policy {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub project: String,
    #[prost(oneof = "policy::PolicyType", tags = "3, 4, 5, 6")]
    pub policy_type: Option<policy::PolicyType>,
}
pub mod policy {
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum PolicyType {
        #[prost(message, tag = "3")]
        RoleBasedPolicy(super::RoleBasedPolicy),
        #[prost(message, tag = "4")]
        GroupBasedPolicy(super::GroupBasedPolicy),
        #[prost(message, tag = "5")]
        NamespaceBasedPolicy(super::NamespaceBasedPolicy),
        #[prost(message, tag = "6")]
        CombinedGroupNamespacePolicy(super::CombinedGroupNamespacePolicy),
    }
}
#[derive(Clone, PartialEq, prost::Message)]
pub struct RoleBasedPolicy {
    #[prost(string, repeated, tag = "1")]
    pub roles: Vec<String>,
}
#[derive(Clone, PartialEq, prost::Message)]
pub struct GroupBasedPolicy {
    #[prost(string, repeated, tag = "1")]
    pub groups: Vec<String>,
}
#[derive(Clone, PartialEq, prost::Message)]
pub struct NamespaceBasedPolicy {
    #[prost(string, repeated, tag = "1")]
    pub namespaces: Vec<String>,
}
#[derive(Clone, PartialEq, prost::Message)]
pub struct CombinedGroupNamespacePolicy {
    #[prost(string, repeated, tag = "1")]
    pub groups: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    pub namespaces: Vec<String>,
}
