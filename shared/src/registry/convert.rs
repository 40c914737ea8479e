//! Conversions between Feast's registry protobuf messages and the model.
//!
//! Reading keeps only the objects of the configured project (Feast's rule; Go's server ignores
//! it). Writing produces the shapes `feast apply` 0.67 writes, so Feast reads Larder's registry
//! as if it had written it: `data_source_class_type` strings, the `__dummy` entity, a `Project`
//! entry, relative file URIs kept as written.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use prost::Message;

use super::aggregation::Aggregation;
use super::model::*;
use crate::error::{Error, Result};
use crate::keys::{DUMMY_ENTITY_NAME, DUMMY_JOIN_KEY};
use crate::proto::core as pb;
use crate::proto::core::data_source::{Options, source_type};
use crate::proto::wire;
use crate::time::EventTime;
use crate::value::ValueType;

pub const FILE_SOURCE_CLASS: &str = "feast.infra.offline_stores.file_source.FileSource";
pub const PUSH_SOURCE_CLASS: &str = "feast.data_source.PushSource";
pub const KAFKA_SOURCE_CLASS: &str = "feast.data_source.KafkaSource";
pub const KINESIS_SOURCE_CLASS: &str = "feast.data_source.KinesisSource";

fn tags(m: &HashMap<String, String>) -> BTreeMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}
fn tags_pb(m: &BTreeMap<String, String>) -> HashMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}
/// A protobuf Duration; negative parts count as zero.
fn duration(d: &prost_types::Duration) -> Duration {
    Duration::new(d.seconds.max(0) as u64, d.nanos.max(0) as u32)
}
fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

/// The tiling hop Feast uses for a stream view with `enable_tiling` and no `tiling_hop_size`.
static FEAST_TILING_HOP: prost_types::Duration = prost_types::Duration { seconds: 300, nanos: 0 };

/// Decodes a `registry.db` and keeps the objects of `project`.
pub fn registry_from_bytes(bytes: &[u8], project: &str, key_version: u32) -> Result<Registry> {
    let proto = pb::Registry::decode(bytes)
        .map_err(|e| Error::storage(format!("registry is not a Feast registry protobuf: {e}")))?;
    registry_from_proto(&proto, project, key_version)
}

/// The parts of a `FeatureViewSpec` or a `StreamFeatureViewSpec`: distinct message types whose
/// common fields have the same names, so one macro reads either.
macro_rules! view_parts {
    ($spec:expr, $kind:expr, $offline:expr, $has_transformation:expr) => {
        ViewParts {
            project: &$spec.project,
            name: &$spec.name,
            kind: $kind,
            entities: &$spec.entities,
            features: &$spec.features,
            entity_columns: &$spec.entity_columns,
            ttl: $spec.ttl.as_ref(),
            batch_source: $spec.batch_source.as_ref(),
            stream_source: $spec.stream_source.as_ref(),
            online: $spec.online,
            offline: $offline,
            disabled: $spec.disabled,
            has_transformation: $has_transformation,
            aggregations: &[],
            tiling_hop: None,
            description: &$spec.description,
            tags: &$spec.tags,
            owner: &$spec.owner,
        }
    };
}

pub fn registry_from_proto(proto: &pb::Registry, project: &str, key_version: u32) -> Result<Registry> {
    let mut reg = Registry {
        project: project.to_string(),
        version_id: proto.version_id.clone(),
        last_updated: proto.last_updated.as_ref().map(EventTime::from_proto),
        ..Default::default()
    };
    for e in &proto.entities {
        let Some(spec) = e.spec.as_ref().filter(|s| s.project == project) else { continue };
        reg.entities.insert(spec.name.clone(), entity_from_proto(spec));
    }
    for ds in &proto.data_sources {
        if ds.project == project && !ds.name.is_empty() {
            reg.data_sources.insert(ds.name.clone(), source_from_proto(ds));
        }
    }
    // Both kinds are served alike. A stream view's spec has no offline flag or transformation.
    let batch_views = proto.feature_views.iter().filter_map(|fv| {
        let spec = fv.spec.as_ref()?;
        let parts = view_parts!(spec, ViewKind::Batch, spec.offline, spec.feature_transformation.is_some());
        Some((parts, fv.meta.as_ref()))
    });
    let stream_views = proto.stream_feature_views.iter().filter_map(|sfv| {
        let spec = sfv.spec.as_ref()?;
        let parts = ViewParts {
            aggregations: &spec.aggregations,
            tiling_hop: if spec.enable_tiling {
                // Feast's default hop when tiling is on without one.
                Some(
                    spec.tiling_hop_size
                        .as_ref()
                        .filter(|d| d.seconds != 0 || d.nanos != 0)
                        .unwrap_or(&FEAST_TILING_HOP),
                )
            } else {
                None
            },
            ..view_parts!(spec, ViewKind::Stream, false, false)
        };
        Some((parts, sfv.meta.as_ref()))
    });
    for (parts, meta) in batch_views.chain(stream_views).filter(|(parts, _)| parts.project == project) {
        let view = view_from_parts(parts, meta, &reg.entities, key_version)?;
        reg.feature_views.insert(view.name.clone(), Arc::new(view));
    }
    for odfv in &proto.on_demand_feature_views {
        if let Some(spec) = odfv.spec.as_ref().filter(|s| s.project == project) {
            reg.on_demand_views.insert(spec.name.clone());
        }
    }
    for fs in &proto.feature_services {
        let Some(spec) = fs.spec.as_ref().filter(|s| s.project == project) else { continue };
        reg.feature_services.insert(spec.name.clone(), service_from_proto(spec));
    }
    reg.permissions = Some(
        proto
            .permissions
            .iter()
            .filter_map(|p| p.spec.as_ref().filter(|s| s.project == project))
            .map(permission_from_proto)
            .collect(),
    );
    reg.reindex();
    Ok(reg)
}

fn permission_from_proto(spec: &pb::PermissionSpec) -> Permission {
    use crate::proto::core::policy::PolicyType;
    let policy = match spec.policy.as_ref().and_then(|p| p.policy_type.as_ref()) {
        None => Policy::AllowAll,
        Some(PolicyType::RoleBasedPolicy(p)) => Policy::Roles(p.roles.clone()),
        Some(PolicyType::GroupBasedPolicy(p)) => Policy::Groups(p.groups.clone()),
        Some(PolicyType::NamespaceBasedPolicy(p)) => Policy::Namespaces(p.namespaces.clone()),
        Some(PolicyType::CombinedGroupNamespacePolicy(p)) => {
            Policy::GroupsOrNamespaces { groups: p.groups.clone(), namespaces: p.namespaces.clone() }
        }
    };
    Permission {
        name: spec.name.clone(),
        types: spec.types.iter().map(|t| ResourceType::from_i32(*t)).collect(),
        name_patterns: spec.name_patterns.clone(),
        required_tags: tags(&spec.required_tags),
        actions: spec.actions.iter().map(|a| AuthzAction::from_i32(*a)).collect(),
        policy,
        tags: tags(&spec.tags),
    }
}

/// A permission as Feast writes it (`Permission.to_proto`).
pub fn permission_to_proto(p: &Permission, project: &str, t: Stamps) -> pb::Permission {
    use crate::proto::core::policy::PolicyType;
    let policy_type = match &p.policy {
        Policy::AllowAll => None,
        Policy::Roles(roles) => Some(PolicyType::RoleBasedPolicy(pb::RoleBasedPolicy { roles: roles.clone() })),
        Policy::Groups(groups) => Some(PolicyType::GroupBasedPolicy(pb::GroupBasedPolicy { groups: groups.clone() })),
        Policy::Namespaces(namespaces) => {
            Some(PolicyType::NamespaceBasedPolicy(pb::NamespaceBasedPolicy { namespaces: namespaces.clone() }))
        }
        Policy::GroupsOrNamespaces { groups, namespaces } => {
            Some(PolicyType::CombinedGroupNamespacePolicy(pb::CombinedGroupNamespacePolicy {
                groups: groups.clone(),
                namespaces: namespaces.clone(),
            }))
        }
    };
    pb::Permission {
        spec: Some(pb::PermissionSpec {
            name: p.name.clone(),
            project: project.to_string(),
            types: p.types.iter().map(|t| t.as_i32()).collect(),
            name_patterns: p.name_patterns.clone(),
            required_tags: tags_pb(&p.required_tags),
            actions: p.actions.iter().map(|a| a.as_i32()).collect(),
            policy: Some(pb::Policy { policy_type, ..Default::default() }),
            tags: tags_pb(&p.tags),
        }),
        meta: Some(pb::PermissionMeta {
            created_timestamp: Some(t.created.to_proto()),
            last_updated_timestamp: Some(t.updated.to_proto()),
        }),
    }
}

fn entity_from_proto(spec: &pb::EntitySpecV2) -> Entity {
    Entity {
        name: spec.name.clone(),
        join_key: if spec.join_key.is_empty() { spec.name.clone() } else { spec.join_key.clone() },
        value_type: ValueType::from_i32(spec.value_type),
        description: spec.description.clone(),
        tags: tags(&spec.tags),
        owner: spec.owner.clone(),
    }
}

fn service_from_proto(spec: &pb::FeatureServiceSpec) -> FeatureService {
    FeatureService {
        name: spec.name.clone(),
        projections: spec
            .features
            .iter()
            .map(|p| Projection {
                view: p.feature_view_name.clone(),
                alias: non_empty(&p.feature_view_name_alias),
                features: p.feature_columns.iter().map(|c| c.name.clone()).collect(),
                join_key_map: tags(&p.join_key_map),
            })
            .collect(),
        description: spec.description.clone(),
        tags: tags(&spec.tags),
        owner: spec.owner.clone(),
    }
}

struct ViewParts<'a> {
    project: &'a str,
    name: &'a str,
    kind: ViewKind,
    entities: &'a [String],
    features: &'a [pb::FeatureSpecV2],
    entity_columns: &'a [pb::FeatureSpecV2],
    ttl: Option<&'a prost_types::Duration>,
    batch_source: Option<&'a pb::DataSource>,
    stream_source: Option<&'a pb::DataSource>,
    online: bool,
    offline: bool,
    disabled: bool,
    has_transformation: bool,
    aggregations: &'a [pb::Aggregation],
    tiling_hop: Option<&'a prost_types::Duration>,
    description: &'a str,
    tags: &'a HashMap<String, String>,
    owner: &'a str,
}

fn field_from_proto(f: &pb::FeatureSpecV2) -> Field {
    Field {
        name: f.name.clone(),
        dtype: ValueType::from_i32(f.value_type),
        description: f.description.clone(),
        tags: tags(&f.tags),
    }
}

fn view_from_parts(
    p: ViewParts<'_>,
    meta: Option<&pb::FeatureViewMeta>,
    entities: &BTreeMap<String, Entity>,
    key_version: u32,
) -> Result<FeatureView> {
    // A stream view's features may list its join keys (Feast's SDK puts them there). They stay
    // features: Feast's push writes them as hash fields of the view too, and so does Larder's.
    // Aggregation outputs declared in the schema are answered from tiles, not stored rows.
    let aggregations: Vec<Aggregation> = p
        .aggregations
        .iter()
        .map(|a| Aggregation {
            column: a.column.clone(),
            function: a.function.clone(),
            window: a.time_window.as_ref().map(duration).unwrap_or_default(),
            slide: a.slide_interval.as_ref().map(duration),
            name: a.name.clone(),
        })
        .collect();
    let (features, outputs) =
        FeatureView::split_outputs(p.features.iter().map(field_from_proto).collect(), &aggregations);
    let real_entities: Vec<&String> = p.entities.iter().filter(|e| *e != DUMMY_ENTITY_NAME).collect();
    let entity_columns: Vec<Field> = if !p.entity_columns.is_empty() {
        p.entity_columns.iter().map(field_from_proto).collect()
    } else if real_entities.is_empty() {
        vec![Field::new(DUMMY_JOIN_KEY, ValueType::String)]
    } else {
        // Registries written before entity_columns existed: take join keys from the entities.
        real_entities
            .iter()
            .map(|e| match entities.get(*e) {
                Some(ent) => Ok(Field::new(ent.join_key.clone(), ent.value_type)),
                None => Err(Error::storage(format!(
                    "feature view '{}' uses entity '{e}', which the registry does not define",
                    p.name
                ))),
            })
            .collect::<Result<_>>()?
    };
    let ttl = p.ttl.map(duration).filter(|d| !d.is_zero());
    let layout = ViewLayout::new(p.name, &features, &entity_columns, key_version)?;
    Ok(FeatureView {
        name: p.name.to_string(),
        kind: p.kind,
        entities: p.entities.to_vec(),
        features,
        entity_columns,
        ttl,
        batch_source: p.batch_source.map(source_from_proto),
        stream_source: p.stream_source.map(source_from_proto),
        online: p.online,
        offline: p.offline,
        disabled: p.disabled,
        state: ViewState::from_i32(meta.map(|m| m.state).unwrap_or(0)),
        materialization_intervals: meta
            .map(|m| {
                m.materialization_intervals
                    .iter()
                    .map(|i| {
                        (
                            i.start_time.as_ref().map(EventTime::from_proto).unwrap_or_default(),
                            i.end_time.as_ref().map(EventTime::from_proto).unwrap_or_default(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
        has_transformation: p.has_transformation,
        aggregations,
        tiling_hop: p.tiling_hop.map(duration).filter(|d| !d.is_zero()),
        outputs,
        description: p.description.to_string(),
        tags: tags(p.tags),
        owner: p.owner.to_string(),
        layout,
    })
}

/// Field 2 of Feast's `KafkaOptions` (`topic`) and of its `KinesisOptions` (`stream_name`),
/// the only option the data plane needs; the rest is kept as bytes.
#[derive(Clone, PartialEq, prost::Message)]
struct StreamOptions {
    #[prost(string, tag = "2")]
    name: String,
}

/// A Kafka or Kinesis source's `batch_source`, if it has one.
fn stream_batch(ds: &pb::DataSource) -> Option<Box<DataSource>> {
    ds.batch_source.as_deref().map(|b| Box::new(source_from_proto(b)))
}

/// The topic or stream name of a source's Kafka or Kinesis options, and the options' bytes
/// (both empty for a source typed Kafka or Kinesis without them).
fn stream_options_of(ds: &pb::DataSource) -> (String, Vec<u8>) {
    match &ds.options {
        Some(Options::KafkaOptions(o) | Options::KinesisOptions(o)) => {
            let name = <StreamOptions as prost::Message>::decode(&o[..]).map(|s| s.name).unwrap_or_default();
            (name, o.clone())
        }
        _ => (String::new(), Vec::new()),
    }
}

/// Feast's `KafkaOptions` and `KinesisOptions` as `larder apply` writes them. They share
/// their field numbers: where the stream lives (Kafka's bootstrap servers, Kinesis's region),
/// its name (topic, stream name), and the record format (JSON here).
#[derive(Clone, PartialEq, prost::Message)]
struct StreamOptionsOut {
    #[prost(string, tag = "1")]
    location: String,
    #[prost(string, tag = "2")]
    name: String,
    #[prost(message, optional, tag = "3")]
    format: Option<JsonStreamFormat>,
}

/// A `StreamFormat` whose `json_format` (field 3) is set: records are JSON objects, fields by
/// name (an empty `JsonFormat.schema_json`: Larder reads fields by name, not by a schema).
#[derive(Clone, PartialEq, prost::Message)]
struct JsonStreamFormat {
    #[prost(message, optional, tag = "3")]
    json_format: Option<JsonFormat>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct JsonFormat {
    #[prost(string, tag = "1")]
    schema_json: String,
}

/// The `KafkaOptions` bytes of a topic of JSON messages (`location`: the bootstrap servers),
/// or the `KinesisOptions` bytes of a stream of JSON records (`location`: the region).
pub fn stream_options(name: &str, location: &str) -> Vec<u8> {
    prost::Message::encode_to_vec(&StreamOptionsOut {
        location: location.into(),
        name: name.into(),
        format: Some(JsonStreamFormat { json_format: Some(JsonFormat::default()) }),
    })
}

pub fn source_from_proto(ds: &pb::DataSource) -> DataSource {
    let kind = match (&ds.options, ds.r#type) {
        (Some(Options::FileOptions(f)), _) => {
            SourceKind::File { path: f.uri.clone(), s3_endpoint_override: non_empty(&f.s3_endpoint_override) }
        }
        (Some(Options::PushOptions(_)), _) | (_, source_type::PUSH_SOURCE) => {
            let batch = ds.batch_source.as_deref().map(source_from_proto).unwrap_or_else(|| DataSource {
                name: String::new(),
                kind: SourceKind::Other { type_code: 0, class_type: String::new() },
                timestamp_field: ds.timestamp_field.clone(),
                created_timestamp_column: non_empty(&ds.created_timestamp_column),
                field_mapping: tags(&ds.field_mapping),
                date_partition_column: None,
                description: String::new(),
                tags: BTreeMap::new(),
                owner: String::new(),
            });
            SourceKind::Push { batch: Box::new(batch) }
        }
        (Some(Options::KafkaOptions(_)), _) | (_, source_type::STREAM_KAFKA) => {
            let (topic, options) = stream_options_of(ds);
            SourceKind::Kafka { topic, options, batch: stream_batch(ds) }
        }
        (Some(Options::KinesisOptions(_)), _) | (_, source_type::STREAM_KINESIS) => {
            let (stream_name, options) = stream_options_of(ds);
            SourceKind::Kinesis { stream_name, options, batch: stream_batch(ds) }
        }
        (Some(Options::RequestDataOptions(_)), _) | (_, source_type::REQUEST_SOURCE) => SourceKind::Request,
        (_, code) => SourceKind::Other { type_code: code, class_type: ds.data_source_class_type.clone() },
    };
    DataSource {
        name: ds.name.clone(),
        kind,
        timestamp_field: ds.timestamp_field.clone(),
        created_timestamp_column: non_empty(&ds.created_timestamp_column),
        field_mapping: tags(&ds.field_mapping),
        date_partition_column: non_empty(&ds.date_partition_column),
        description: ds.description.clone(),
        tags: tags(&ds.tags),
        owner: ds.owner.clone(),
    }
}

// ---------------------------------------------------------------------------------------------
// Model -> protobuf (used by `larder apply`).
// ---------------------------------------------------------------------------------------------

/// Creation and update times to stamp on a written object.
#[derive(Debug, Clone, Copy)]
pub struct Stamps {
    pub created: EventTime,
    pub updated: EventTime,
}

pub fn entity_to_proto(e: &Entity, project: &str, t: Stamps) -> pb::Entity {
    pb::Entity {
        spec: Some(pb::EntitySpecV2 {
            name: e.name.clone(),
            value_type: if e.value_type == ValueType::Invalid { 0 } else { e.value_type as i32 },
            description: e.description.clone(),
            join_key: e.join_key.clone(),
            tags: tags_pb(&e.tags),
            project: project.to_string(),
            owner: e.owner.clone(),
        }),
        meta: Some(pb::EntityMeta {
            created_timestamp: Some(t.created.to_proto()),
            last_updated_timestamp: Some(t.updated.to_proto()),
        }),
    }
}

/// The dummy entity Feast keeps in every registry for views without entities.
pub fn dummy_entity() -> Entity {
    Entity {
        name: DUMMY_ENTITY_NAME.into(),
        join_key: DUMMY_JOIN_KEY.into(),
        value_type: ValueType::Invalid,
        description: String::new(),
        tags: BTreeMap::new(),
        owner: String::new(),
    }
}

fn source_meta(t: Stamps) -> Vec<u8> {
    let mut out = Vec::new();
    wire::put_message(3, &t.created.to_proto(), &mut out);
    wire::put_message(4, &t.updated.to_proto(), &mut out);
    out
}

/// `project` is set on top-level `data_sources` entries and left empty on embedded copies,
/// as Feast does. `with_class` controls `data_source_class_type`, which Feast leaves off a push
/// source's nested batch source.
pub fn source_to_proto(s: &DataSource, project: Option<&str>, with_class: bool, t: Stamps) -> pb::DataSource {
    let mut ds = pb::DataSource {
        field_mapping: tags_pb(&s.field_mapping),
        timestamp_field: s.timestamp_field.clone(),
        date_partition_column: s.date_partition_column.clone().unwrap_or_default(),
        created_timestamp_column: s.created_timestamp_column.clone().unwrap_or_default(),
        name: s.name.clone(),
        project: project.unwrap_or_default().to_string(),
        description: s.description.clone(),
        tags: tags_pb(&s.tags),
        owner: s.owner.clone(),
        meta: Some(source_meta(t)),
        ..Default::default()
    };
    match &s.kind {
        SourceKind::File { path, s3_endpoint_override } => {
            ds.r#type = source_type::BATCH_FILE;
            ds.options = Some(Options::FileOptions(pb::data_source::FileOptions {
                file_format: None,
                uri: path.clone(),
                s3_endpoint_override: s3_endpoint_override.clone().unwrap_or_default(),
            }));
            if with_class {
                ds.data_source_class_type = FILE_SOURCE_CLASS.into();
            }
        }
        SourceKind::Push { batch } => {
            ds.r#type = source_type::PUSH_SOURCE;
            ds.batch_source = Some(Box::new(source_to_proto(batch, None, false, t)));
            if with_class {
                ds.data_source_class_type = PUSH_SOURCE_CLASS.into();
            }
        }
        SourceKind::Kafka { options, batch, .. } => {
            ds.r#type = source_type::STREAM_KAFKA;
            ds.options = Some(Options::KafkaOptions(options.clone()));
            ds.batch_source = batch.as_ref().map(|b| Box::new(source_to_proto(b, None, false, t)));
            if with_class {
                ds.data_source_class_type = KAFKA_SOURCE_CLASS.into();
            }
        }
        SourceKind::Kinesis { options, batch, .. } => {
            ds.r#type = source_type::STREAM_KINESIS;
            ds.options = Some(Options::KinesisOptions(options.clone()));
            ds.batch_source = batch.as_ref().map(|b| Box::new(source_to_proto(b, None, false, t)));
            if with_class {
                ds.data_source_class_type = KINESIS_SOURCE_CLASS.into();
            }
        }
        SourceKind::Request => ds.r#type = source_type::REQUEST_SOURCE,
        SourceKind::Other { type_code, class_type } => {
            ds.r#type = *type_code;
            ds.data_source_class_type = class_type.clone();
        }
    }
    ds
}

fn field_to_proto(f: &Field) -> pb::FeatureSpecV2 {
    pb::FeatureSpecV2 {
        name: f.name.clone(),
        value_type: f.dtype as i32,
        tags: tags_pb(&f.tags),
        description: f.description.clone(),
        ..Default::default()
    }
}

pub fn view_to_proto(v: &FeatureView, project: &str, t: Stamps) -> pb::FeatureView {
    let entities = if v.entities.is_empty() { vec![DUMMY_ENTITY_NAME.to_string()] } else { v.entities.clone() };
    let entity_columns =
        if v.is_entityless() { Vec::new() } else { v.entity_columns.iter().map(field_to_proto).collect() };
    pb::FeatureView {
        spec: Some(pb::FeatureViewSpec {
            name: v.name.clone(),
            project: project.to_string(),
            entities,
            features: v.features.iter().chain(&v.outputs).map(field_to_proto).collect(),
            tags: tags_pb(&v.tags),
            ttl: Some(prost_types::Duration {
                seconds: v.ttl.map(|d| d.as_secs() as i64).unwrap_or(0),
                nanos: v.ttl.map(|d| d.subsec_nanos() as i32).unwrap_or(0),
            }),
            batch_source: v.batch_source.as_ref().map(|s| source_to_proto(s, None, true, t)),
            online: v.online,
            stream_source: v.stream_source.as_ref().map(|s| source_to_proto(s, None, true, t)),
            description: v.description.clone(),
            owner: v.owner.clone(),
            entity_columns,
            offline: v.offline,
            feature_transformation: None,
            mode: String::new(),
            version: "latest".into(),
            disabled: v.disabled,
        }),
        meta: Some(pb::FeatureViewMeta {
            created_timestamp: Some(t.created.to_proto()),
            last_updated_timestamp: Some(t.updated.to_proto()),
            materialization_intervals: v
                .materialization_intervals
                .iter()
                .map(|(s, e)| pb::MaterializationInterval {
                    start_time: Some(s.to_proto()),
                    end_time: Some(e.to_proto()),
                })
                .collect(),
            current_version_number: 0,
            version_id: String::new(),
            state: v.state.as_i32(),
        }),
    }
}

/// A stream view as Feast's `StreamFeatureView`: the feature view's fields, its aggregations,
/// the batch source's timestamp field (Feast requires one with aggregations) and tiling.
pub fn stream_view_to_proto(v: &FeatureView, project: &str, t: Stamps) -> pb::StreamFeatureView {
    let base = view_to_proto(v, project, t);
    let spec = base.spec.unwrap_or_default();
    let to_duration =
        |d: Duration| prost_types::Duration { seconds: d.as_secs() as i64, nanos: d.subsec_nanos() as i32 };
    pb::StreamFeatureView {
        spec: Some(pb::StreamFeatureViewSpec {
            name: spec.name,
            project: spec.project,
            entities: spec.entities,
            features: spec.features,
            entity_columns: spec.entity_columns,
            description: spec.description,
            tags: spec.tags,
            owner: spec.owner,
            ttl: spec.ttl,
            batch_source: spec.batch_source,
            stream_source: spec.stream_source,
            online: spec.online,
            mode: String::new(),
            aggregations: v
                .aggregations
                .iter()
                .map(|a| pb::Aggregation {
                    column: a.column.clone(),
                    function: a.function.clone(),
                    time_window: Some(to_duration(a.window)),
                    slide_interval: a.slide.map(to_duration),
                    name: a.name.clone(),
                })
                .collect(),
            timestamp_field: v.offline_source().map(|b| b.timestamp_field.clone()).unwrap_or_default(),
            enable_tiling: v.tiling_hop.is_some(),
            tiling_hop_size: v.tiling_hop.map(to_duration),
            disabled: spec.disabled,
        }),
        meta: base.meta,
    }
}

pub fn service_to_proto(s: &FeatureService, reg: &Registry, project: &str, t: Stamps) -> Result<pb::FeatureService> {
    let mut projections = Vec::new();
    for p in &s.projections {
        let view = reg.view(&p.view)?;
        let created_col =
            view.batch_source.as_ref().and_then(|b| b.created_timestamp_column.clone()).unwrap_or_default();
        let columns = p
            .features
            .iter()
            .map(|f| view.feature(f).map(|(_, field)| field_to_proto(field)))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                Error::Config(format!("feature service '{}' selects a feature view '{}' does not have", s.name, p.view))
            })?;
        projections.push(pb::FeatureViewProjection {
            feature_view_name: p.view.clone(),
            feature_columns: columns,
            feature_view_name_alias: p.alias.clone().unwrap_or_default(),
            join_key_map: tags_pb(&p.join_key_map),
            // Feast fills the projection's timestamp_field from the created column; mirrored.
            timestamp_field: created_col.clone(),
            date_partition_column: String::new(),
            created_timestamp_column: created_col,
            batch_source: view.batch_source.as_ref().map(|b| source_to_proto(b, None, false, t)),
            stream_source: None,
            view_type: "featureView".into(),
        });
    }
    Ok(pb::FeatureService {
        spec: Some(pb::FeatureServiceSpec {
            name: s.name.clone(),
            project: project.to_string(),
            features: projections,
            tags: tags_pb(&s.tags),
            description: s.description.clone(),
            owner: s.owner.clone(),
            logging_config: None,
            precompute_online: false,
        }),
        meta: Some(pb::FeatureServiceMeta {
            created_timestamp: Some(t.created.to_proto()),
            last_updated_timestamp: Some(t.updated.to_proto()),
        }),
    })
}

pub fn project_to_proto(project: &str, t: Stamps) -> pb::Project {
    pb::Project {
        spec: Some(pb::ProjectSpec { name: project.to_string(), ..Default::default() }),
        meta: Some(pb::ProjectMeta {
            created_timestamp: Some(t.created.to_proto()),
            last_updated_timestamp: Some(t.updated.to_proto()),
        }),
    }
}
