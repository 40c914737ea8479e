//! `features.yaml`: Larder's hand-written definitions, turned into a registry by `larder apply`.
//!
//! Written for people: objects are maps keyed by name, a feature is `name: Type` (or a map when
//! it needs a description), a feature view names one `source`, TTLs read like `7d` or `1h30m`.
//!
//! ```yaml
//! entities:
//!   driver: {join_key: driver_id, type: Int64}
//! sources:
//!   driver_stats:
//!     type: file                      # file | push
//!     path: data/driver_stats.parquet # local (relative to the repo) or s3://bucket/prefix/
//!     timestamp_field: event_timestamp
//!     created_timestamp_column: created
//!   driver_stats_push: {type: push, batch_source: driver_stats}
//! feature_views:
//!   driver_hourly_stats:
//!     entities: [driver]
//!     ttl: 3650d
//!     source: driver_stats
//!     features:
//!       conv_rate: Float32
//!       city: {type: String, description: home city}
//! feature_services:
//!   driver_model:
//!     features:
//!       - driver_hourly_stats                  # every feature of the view
//!       - driver_fresh: [conv_rate]            # a selection
//! ```
//!
//! Mistakes are errors naming the file, line and object: unknown keys, bad types, references
//! to entities, sources, views or features that are not defined.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

use super::model::*;
use crate::error::{Error, Result};
use crate::keys::{DUMMY_ENTITY_NAME, DUMMY_JOIN_KEY};
use crate::value::ValueType;

/// The file name Larder looks for beside `feature_store.yaml`.
pub const FILE_NAME: &str = "features.yaml";

/// A YAML map whose order is kept (features are served in the order they are written).
struct Ordered<T>(Vec<(String, T)>);

impl<T> Default for Ordered<T> {
    fn default() -> Self {
        Ordered(Vec::new())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Ordered<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Ordered<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of names to definitions")
            }
            fn visit_unit<E: de::Error>(self) -> std::result::Result<Ordered<T>, E> {
                Ok(Ordered(Vec::new()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Ordered<T>, A::Error> {
                let mut out: Vec<(String, T)> = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    if out.iter().any(|(k, _)| *k == key) {
                        return Err(de::Error::custom(format!("'{key}' is defined twice")));
                    }
                    let value = map.next_value()?;
                    out.push((key, value));
                }
                Ok(Ordered(out))
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    entities: Ordered<EntityDef>,
    #[serde(default)]
    sources: Ordered<SourceDef>,
    #[serde(default)]
    feature_views: Ordered<ViewDef>,
    #[serde(default)]
    feature_services: Ordered<ServiceDef>,
    /// Feast's `StreamFeatureView`s: a view fed by a push source, with window aggregations.
    /// `None` when the file has no `stream_feature_views:` key: apply leaves the project's
    /// stream views alone (they may come from `feast apply`).
    #[serde(default)]
    stream_feature_views: Option<Ordered<ViewDef>>,
    /// `None` when the file has no `permissions:` key: apply leaves permissions alone.
    #[serde(default)]
    permissions: Option<Ordered<PermissionDef>>,
}

/// A permission, as Feast's `Permission(...)` takes it: `types` (default: every type),
/// `name_patterns` (default: every name), `required_tags`, `actions` (Feast's names, or the
/// shorthands `READ`, `WRITE`, `CRUD`, `ALL_ACTIONS`) and a `policy`: `{roles: [...]}`,
/// `{groups: [...]}`, `{namespaces: [...]}` or `{groups: [...], namespaces: [...]}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PermissionDef {
    #[serde(default)]
    types: OneOrMany,
    #[serde(default)]
    name_patterns: OneOrMany,
    #[serde(default)]
    required_tags: BTreeMap<String, String>,
    actions: OneOrMany,
    policy: PolicyDef,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyDef {
    roles: Option<Vec<String>>,
    groups: Option<Vec<String>>,
    namespaces: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntityDef {
    join_key: Option<String>,
    #[serde(rename = "type")]
    dtype: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    #[serde(default)]
    owner: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceDef {
    #[serde(rename = "type")]
    kind: String,
    path: Option<String>,
    s3_endpoint_override: Option<String>,
    timestamp_field: Option<String>,
    created_timestamp_column: Option<String>,
    date_partition_column: Option<String>,
    #[serde(default)]
    field_mapping: BTreeMap<String, String>,
    batch_source: Option<String>,
    /// Kafka sources: the topic, and the brokers Feast's own tools would read it from.
    topic: Option<String>,
    bootstrap_servers: Option<String>,
    /// Kinesis sources: the stream's name and region.
    stream_name: Option<String>,
    region: Option<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    #[serde(default)]
    owner: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ViewDef {
    #[serde(default)]
    entities: Vec<String>,
    source: String,
    features: Ordered<FeatureDef>,
    ttl: Option<TtlDef>,
    #[serde(default = "yes")]
    online: bool,
    #[serde(default)]
    offline: bool,
    #[serde(default)]
    disabled: bool,
    #[serde(default)]
    description: String,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    #[serde(default)]
    owner: String,
    /// Stream views only: window aggregations, as Feast's `Aggregation` takes them.
    #[serde(default)]
    aggregations: Vec<AggregationDef>,
    /// Stream views only: Feast's `tiling_hop_size` (and `enable_tiling`).
    tiling_hop_size: Option<TtlDef>,
}

/// Feast's `Aggregation(column=, function=, time_window=, slide_interval=, name=)`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AggregationDef {
    column: String,
    function: String,
    time_window: TtlDef,
    slide_interval: Option<TtlDef>,
    #[serde(default)]
    name: String,
}

fn yes() -> bool {
    true
}

/// A definition written either as a bare name or as a map (a feature, a service's
/// projection): one visitor reads both forms of each.
trait NameOrMap: Sized {
    /// What an error says was expected.
    const EXPECTING: &'static str;
    fn from_name(name: &str) -> Self;
    fn from_map<'de, A: MapAccess<'de>>(map: A) -> std::result::Result<Self, A::Error>;
}

fn name_or_map<'de, D: Deserializer<'de>, T: NameOrMap>(d: D) -> std::result::Result<T, D::Error> {
    struct V<T>(PhantomData<T>);
    impl<'de, T: NameOrMap> Visitor<'de> for V<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str(T::EXPECTING)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<T, E> {
            Ok(T::from_name(v))
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> std::result::Result<T, A::Error> {
            T::from_map(map)
        }
    }
    d.deserialize_any(V(PhantomData))
}

/// A feature: `Float32`, or `{type: Float32, description: ..., tags: {...}}`.
struct FeatureDef {
    dtype: String,
    description: String,
    tags: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FeatureMap {
    #[serde(rename = "type")]
    dtype: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

impl NameOrMap for FeatureDef {
    const EXPECTING: &'static str = "a type name such as Float32, or a map with type, description, tags";
    fn from_name(dtype: &str) -> Self {
        FeatureDef { dtype: dtype.to_string(), description: String::new(), tags: BTreeMap::new() }
    }
    fn from_map<'de, A: MapAccess<'de>>(map: A) -> std::result::Result<Self, A::Error> {
        let m = FeatureMap::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Ok(FeatureDef { dtype: m.dtype, description: m.description, tags: m.tags })
    }
}

impl<'de> Deserialize<'de> for FeatureDef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        name_or_map(d)
    }
}

/// A TTL: `7d`, `1h30m`, `90s`, `2w`, or a number of seconds. 0 means no limit.
struct TtlDef(Duration);

impl<'de> Deserialize<'de> for TtlDef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = TtlDef;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as 7d, 1h30m, 90s or a number of seconds")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<TtlDef, E> {
                Ok(TtlDef(Duration::from_secs(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<TtlDef, E> {
                u64::try_from(v)
                    .map(|s| TtlDef(Duration::from_secs(s)))
                    .map_err(|_| E::custom("a TTL cannot be negative"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<TtlDef, E> {
                parse_duration(v).map(TtlDef).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let t = text.trim();
    if let Ok(secs) = t.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = 0u64;
    let mut num = String::new();
    for c in t.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit = match c {
            'w' => 604_800,
            'd' => 86_400,
            'h' => 3_600,
            'm' => 60,
            's' => 1,
            ' ' => continue,
            _ => return Err(format!("'{text}' is not a duration (use e.g. 7d, 1h30m, 90s)")),
        };
        let n: u64 = num.parse().map_err(|_| format!("'{text}' is not a duration (use e.g. 7d, 1h30m, 90s)"))?;
        total += n * unit;
        num.clear();
    }
    if !num.is_empty() || t.is_empty() {
        return Err(format!("'{text}' is not a duration (use e.g. 7d, 1h30m, 90s)"));
    }
    Ok(Duration::from_secs(total))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceDef {
    features: Vec<ProjectionDef>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    #[serde(default)]
    owner: String,
}

/// `view`, `{view: [f1, f2]}`, or `{view: v, alias: a, features: [...], join_key_map: {...}}`.
struct ProjectionDef {
    view: String,
    alias: Option<String>,
    features: Option<Vec<String>>,
    join_key_map: BTreeMap<String, String>,
}

impl NameOrMap for ProjectionDef {
    const EXPECTING: &'static str =
        "a feature view name, {view_name: [features]}, or {view, alias, features, join_key_map}";
    fn from_name(view: &str) -> Self {
        ProjectionDef { view: view.to_string(), alias: None, features: None, join_key_map: BTreeMap::new() }
    }
    fn from_map<'de, A: MapAccess<'de>>(mut map: A) -> std::result::Result<Self, A::Error> {
        let mut p = ProjectionDef::from_name("");
        let mut long_form = false;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "view" => {
                    long_form = true;
                    p.view = map.next_value()?;
                }
                "alias" => p.alias = Some(map.next_value()?),
                "features" => p.features = Some(map.next_value()?),
                "join_key_map" => p.join_key_map = map.next_value()?,
                _ if p.view.is_empty() && !long_form => {
                    p.view = key;
                    p.features = Some(map.next_value::<StringList>()?.0);
                }
                other => {
                    return Err(de::Error::unknown_field(other, &["view", "alias", "features", "join_key_map"]));
                }
            }
        }
        if p.view.is_empty() {
            return Err(de::Error::missing_field("view"));
        }
        Ok(p)
    }
}

impl<'de> Deserialize<'de> for ProjectionDef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        name_or_map(d)
    }
}

struct StringList(Vec<String>);
impl<'de> Deserialize<'de> for StringList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StringList;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of feature names")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<StringList, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element()? {
                    out.push(s);
                }
                Ok(StringList(out))
            }
        }
        d.deserialize_seq(V)
    }
}

/// A string or a list of them (Feast's `Permission` takes either).
#[derive(Default)]
struct OneOrMany(Vec<String>);
impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            One(String),
            Many(Vec<String>),
        }
        Ok(match Form::deserialize(d).map_err(|_| de::Error::custom("expected a name or a list of names"))? {
            Form::One(s) => OneOrMany(vec![s]),
            Form::Many(v) => OneOrMany(v),
        })
    }
}

/// Finds the line where `name:` is defined under the top-level `section:`, for messages about
/// problems serde cannot see (dangling references). 1-based; `None` if not found.
fn locate(text: &str, section: &str, name: &str) -> Option<usize> {
    let mut in_section = false;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if !line.starts_with([' ', '\t']) && !trimmed.is_empty() && !trimmed.starts_with('#') {
            in_section = trimmed.strip_prefix(section).is_some_and(|r| r.trim_start().starts_with(':'));
            continue;
        }
        if in_section {
            let key = trimmed.trim_start_matches("- ");
            let key = key.trim_matches(|c| c == '"' || c == '\'');
            if key.strip_prefix(name).is_some_and(|r| r.trim_start_matches(['"', '\'']).trim_start().starts_with(':')) {
                return Some(i + 1);
            }
        }
    }
    None
}

/// The file being parsed, to say where an object is defined.
struct Origin<'a> {
    text: &'a str,
    name: &'a str,
}

impl Origin<'_> {
    /// `features.yaml line 12`, or the file's name alone when the line cannot be found.
    fn of(&self, section: &str, name: &str) -> String {
        match locate(self.text, section, name) {
            Some(line) => format!("{} line {line}", self.name),
            None => self.name.to_string(),
        }
    }
}

/// Parses `features.yaml` text into a validated registry for `project`.
pub fn parse(text: &str, origin: &str, project: &str, key_version: u32) -> Result<Registry> {
    let file: File = if text.trim().is_empty() {
        File::default()
    } else {
        serde_yaml_ng::from_str(text).map_err(|e| Error::Config(format!("{origin}: {e}")))?
    };
    let at = Origin { text, name: origin };
    let mut reg = Registry { project: project.to_string(), ..Default::default() };
    // Each section refers only to the ones before it.
    reg.entities = parse_entities(file.entities, &at)?;
    reg.data_sources = parse_sources(file.sources, &at)?;
    reg.feature_views = parse_views(file.feature_views, &at, &reg, key_version)?;
    reg.stream_views_defined = file.stream_feature_views.is_some();
    for (name, def) in file.stream_feature_views.map(|d| d.0).unwrap_or_default() {
        let here = at.of("stream_feature_views", &name);
        if reg.feature_views.contains_key(&name) {
            return Err(Error::Config(format!("{here}: '{name}' is defined as a feature view too")));
        }
        let view = stream_view(name.clone(), def, &here, &reg, key_version)?;
        reg.feature_views.insert(name, Arc::new(view));
    }
    reg.feature_services = parse_services(file.feature_services, &at, &reg.feature_views)?;
    reg.permissions = file.permissions.map(|defs| parse_permissions(defs, &at)).transpose()?;
    reg.reindex();
    reg.validate().map_err(|e| Error::Config(format!("{origin}: {e}")))?;
    Ok(reg)
}

/// The names defined in a section, for a message about a name that is not.
fn defined<T>(objects: &BTreeMap<String, T>) -> String {
    objects.keys().map(String::as_str).collect::<Vec<_>>().join(", ")
}

fn parse_entities(defs: Ordered<EntityDef>, at: &Origin) -> Result<BTreeMap<String, Entity>> {
    let mut entities = BTreeMap::new();
    for (name, def) in defs.0 {
        let entity = entity(name.clone(), def, &at.of("entities", &name))?;
        entities.insert(name, entity);
    }
    Ok(entities)
}

fn entity(name: String, e: EntityDef, here: &str) -> Result<Entity> {
    let dtype = ValueType::parse(&e.dtype)
        .ok_or_else(|| Error::Config(format!("{here}: entity '{name}': unknown type '{}'", e.dtype)))?;
    if !dtype.is_key_type() {
        return Err(Error::Config(format!(
            "{here}: entity '{name}': type {dtype} cannot be a join key (use String, Bytes, Int32, Int64 or UnixTimestamp)"
        )));
    }
    Ok(Entity {
        join_key: e.join_key.unwrap_or_else(|| name.clone()),
        name,
        value_type: dtype,
        description: e.description,
        tags: e.tags,
        owner: e.owner,
    })
}

fn parse_sources(defs: Ordered<SourceDef>, at: &Origin) -> Result<BTreeMap<String, DataSource>> {
    // Batch sources first, so push sources can refer to them in any order.
    let (push_defs, batch_defs): (Vec<_>, Vec<_>) =
        defs.0.into_iter().partition(|(_, s)| matches!(s.kind.as_str(), "push" | "kafka" | "kinesis"));
    let mut sources = BTreeMap::new();
    for (name, def) in batch_defs {
        let source = file_source(name.clone(), def, &at.of("sources", &name))?;
        sources.insert(name, source);
    }
    for (name, def) in push_defs {
        let source = push_source(name.clone(), def, &at.of("sources", &name), &sources)?;
        sources.insert(name, source);
    }
    Ok(sources)
}

fn file_source(name: String, s: SourceDef, here: &str) -> Result<DataSource> {
    if s.kind != "file" {
        return Err(Error::Config(format!(
            "{here}: source '{name}': unknown type '{}' (use file, push, kafka or kinesis)",
            s.kind
        )));
    }
    if s.batch_source.is_some() {
        return Err(Error::Config(format!(
            "{here}: source '{name}': batch_source only applies to types push, kafka and kinesis"
        )));
    }
    stream_options_absent(&name, &s, here)?;
    let path = s.path.ok_or_else(|| Error::Config(format!("{here}: source '{name}': a file source needs a path")))?;
    let timestamp_field = s
        .timestamp_field
        .ok_or_else(|| Error::Config(format!("{here}: source '{name}': timestamp_field is required")))?;
    Ok(DataSource {
        name,
        kind: SourceKind::File { path, s3_endpoint_override: s.s3_endpoint_override },
        timestamp_field,
        created_timestamp_column: s.created_timestamp_column,
        field_mapping: s.field_mapping,
        date_partition_column: s.date_partition_column,
        description: s.description,
        tags: s.tags,
        owner: s.owner,
    })
}

/// Topic, brokers, stream name and region belong to Kafka and Kinesis sources only.
fn stream_options_absent(name: &str, s: &SourceDef, here: &str) -> Result<()> {
    let given = [
        ("topic", &s.topic),
        ("bootstrap_servers", &s.bootstrap_servers),
        ("stream_name", &s.stream_name),
        ("region", &s.region),
    ];
    let allowed: &[&str] = match s.kind.as_str() {
        "kafka" => &["topic", "bootstrap_servers"],
        "kinesis" => &["stream_name", "region"],
        _ => &[],
    };
    match given.iter().find(|(key, v)| v.is_some() && !allowed.contains(key)) {
        Some((key, _)) => {
            Err(Error::Config(format!("{here}: source '{name}': {key} does not apply to type: {}", s.kind)))
        }
        None => Ok(()),
    }
}

/// A push, Kafka or Kinesis source reads like its batch source (`sources`: those defined so
/// far), which holds its history. A Kafka source names its topic, a Kinesis source its stream:
/// records of that topic or stream feed the views of the source (JSON, fields by name).
fn push_source(name: String, s: SourceDef, here: &str, sources: &BTreeMap<String, DataSource>) -> Result<DataSource> {
    let kind = s.kind.as_str();
    let batch_name = s.batch_source.clone().ok_or_else(|| {
        Error::Config(format!("{here}: {kind} source '{name}' needs a batch_source (the file source history lives in)"))
    })?;
    if s.path.is_some() || s.timestamp_field.is_some() || !s.field_mapping.is_empty() {
        return Err(Error::Config(format!(
            "{here}: {kind} source '{name}': path, timestamp_field and field_mapping belong on its batch_source '{batch_name}'"
        )));
    }
    stream_options_absent(&name, &s, here)?;
    let batch = sources.get(&batch_name).cloned().ok_or_else(|| {
        Error::Config(format!("{here}: {kind} source '{name}' uses batch_source '{batch_name}', which is not a file source defined in sources"))
    })?;
    let required = |v: Option<String>, key: &str| {
        v.filter(|t| !t.is_empty())
            .ok_or_else(|| Error::Config(format!("{here}: {kind} source '{name}' needs a {key}")))
    };
    let source_kind = match kind {
        "kafka" => {
            let topic = required(s.topic, "topic")?;
            let options = super::convert::stream_options(&topic, s.bootstrap_servers.as_deref().unwrap_or(""));
            SourceKind::Kafka { topic, options, batch: Some(Box::new(batch.clone())) }
        }
        "kinesis" => {
            let stream_name = required(s.stream_name, "stream_name")?;
            let options = super::convert::stream_options(&stream_name, s.region.as_deref().unwrap_or(""));
            SourceKind::Kinesis { stream_name, options, batch: Some(Box::new(batch.clone())) }
        }
        _ => SourceKind::Push { batch: Box::new(batch.clone()) },
    };
    Ok(DataSource {
        name,
        timestamp_field: batch.timestamp_field.clone(),
        created_timestamp_column: batch.created_timestamp_column.clone(),
        field_mapping: batch.field_mapping.clone(),
        date_partition_column: batch.date_partition_column.clone(),
        kind: source_kind,
        description: s.description,
        tags: s.tags,
        owner: s.owner,
    })
}

/// `reg` holds the entities and sources the views refer to.
fn parse_views(
    defs: Ordered<ViewDef>,
    at: &Origin,
    reg: &Registry,
    key_version: u32,
) -> Result<BTreeMap<String, Arc<FeatureView>>> {
    let mut views = BTreeMap::new();
    for (name, def) in defs.0 {
        let here = at.of("feature_views", &name);
        if !def.aggregations.is_empty() || def.tiling_hop_size.is_some() {
            return Err(Error::Config(format!(
                "{here}: feature view '{name}' has aggregations or tiling_hop_size; define it under \
                 stream_feature_views"
            )));
        }
        let view = feature_view(name.clone(), def, &here, reg, key_version)?;
        views.insert(name, Arc::new(view));
    }
    Ok(views)
}

fn feature_view(name: String, v: ViewDef, here: &str, reg: &Registry, key_version: u32) -> Result<FeatureView> {
    let entity_columns = entity_columns(&name, &v.entities, here, &reg.entities)?;
    let source = reg.data_sources.get(&v.source).cloned().ok_or_else(|| {
        Error::Config(format!(
            "{here}: feature view '{name}' uses source '{}', which is not defined (sources: {})",
            v.source,
            defined(&reg.data_sources)
        ))
    })?;
    // A view fed by a push source materializes from the push source's batch source.
    let (batch_source, stream_source) = match &source.kind {
        SourceKind::Push { batch }
        | SourceKind::Kafka { batch: Some(batch), .. }
        | SourceKind::Kinesis { batch: Some(batch), .. } => (Some((**batch).clone()), Some(source.clone())),
        _ => (Some(source.clone()), None),
    };
    let features = features(&name, v.features, here)?;
    let layout = ViewLayout::new(&name, &features, &entity_columns, key_version)?;
    Ok(FeatureView {
        name,
        kind: ViewKind::Batch,
        entities: if v.entities.is_empty() { vec![DUMMY_ENTITY_NAME.into()] } else { v.entities },
        features,
        entity_columns,
        ttl: v.ttl.map(|t| t.0).filter(|d| !d.is_zero()),
        batch_source,
        stream_source,
        online: v.online,
        offline: v.offline,
        disabled: v.disabled,
        state: ViewState::Unspecified,
        materialization_intervals: Vec::new(),
        has_transformation: false,
        aggregations: Vec::new(),
        tiling_hop: None,
        outputs: Vec::new(),
        description: v.description,
        tags: v.tags,
        owner: v.owner,
        layout,
    })
}

/// A stream view: a feature view fed by a push source, with window aggregations that
/// Larder computes. Each aggregation must be computable by Larder's rules and readable by
/// Feast's SDK (which wants a tiling hop shorter than every window).
fn stream_view(name: String, mut v: ViewDef, here: &str, reg: &Registry, key_version: u32) -> Result<FeatureView> {
    let aggregations = std::mem::take(&mut v.aggregations);
    let tiling_hop = v.tiling_hop_size.take().map(|t| t.0);
    let mut view = feature_view(name.clone(), v, here, reg, key_version)?;
    match view.stream_source.as_ref().map(|s| &s.kind) {
        Some(SourceKind::Push { .. } | SourceKind::Kafka { .. }) => {}
        Some(SourceKind::Kinesis { .. }) => {
            return Err(Error::Config(format!(
                "{here}: stream feature view '{name}': Feast's StreamFeatureView takes a push or kafka source, not \
                 kinesis (Feast could not read it back); use a push source with LARDER_PUSH_SOURCE_MAP, or a \
                 feature view"
            )));
        }
        _ => {
            return Err(Error::Config(format!(
                "{here}: stream feature view '{name}' needs a push or kafka source (its records are what it aggregates)"
            )));
        }
    }
    view.kind = ViewKind::Stream;
    view.tiling_hop = tiling_hop.filter(|h| !h.is_zero());
    if tiling_hop.is_some_and(|h| h.is_zero()) {
        return Err(Error::Config(format!(
            "{here}: stream feature view '{name}': tiling_hop_size must be longer than 0"
        )));
    }
    let mut outputs: BTreeMap<String, usize> = BTreeMap::new();
    for (i, a) in aggregations.into_iter().enumerate() {
        let agg = super::aggregation::Aggregation {
            column: a.column,
            function: a.function,
            window: a.time_window.0,
            slide: a.slide_interval.map(|s| s.0),
            name: a.name,
        };
        let output = agg.output();
        let plan = agg.plan(&name, view.tiling_hop).map_err(|e| Error::Config(format!("{here}: {e}")))?;
        let Some((_, column)) = view.feature(&agg.column) else {
            return Err(Error::Config(format!(
                "{here}: stream feature view '{name}', aggregation '{output}': column '{}' is not a feature of the \
                 view (features: {})",
                agg.column,
                view.features.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(", ")
            )));
        };
        if let Err(e) = plan.function.check_column(&agg.column, column.dtype) {
            return Err(Error::Config(format!("{here}: stream feature view '{name}', aggregation '{output}': {e}")));
        }
        if let Some(hop) = view.tiling_hop
            && hop >= agg.window
        {
            return Err(Error::Config(format!(
                "{here}: stream feature view '{name}', aggregation '{output}': tiling_hop_size ({}s) must be shorter \
                 than the time window ({}s), as Feast requires",
                hop.as_secs_f64(),
                agg.window.as_secs_f64()
            )));
        }
        if let Some(j) = outputs.insert(output.clone(), i) {
            return Err(Error::Config(format!(
                "{here}: stream feature view '{name}': aggregations {} and {} both answer as '{output}'; give one a name",
                j + 1,
                i + 1
            )));
        }
        view.aggregations.push(agg);
    }
    // Every output is declared in the schema (Feast serves only declared features): a field
    // of the same name gives its type, else count and count_distinct are Int64 and the rest Float64.
    let (features, mut outputs) = FeatureView::split_outputs(std::mem::take(&mut view.features), &view.aggregations);
    let names: Vec<String> = view.aggregations.iter().map(|a| a.output()).collect();
    for (a, output) in view.aggregations.iter().zip(&names) {
        if !outputs.iter().any(|f| f.name == *output) {
            // Every function parsed above (`plan`).
            let dtype = super::aggregation::Function::parse(&a.function)
                .map_or(ValueType::Double, super::aggregation::Function::default_type);
            outputs.push(Field::new(output.clone(), dtype));
        }
    }
    outputs.sort_by_key(|f| names.iter().position(|n| *n == f.name));
    view.layout = ViewLayout::new(&name, &features, &view.entity_columns, key_version)?;
    view.features = features;
    view.outputs = outputs;
    Ok(view)
}

/// The join keys of a view's entities; a view without entities is keyed by the dummy key.
fn entity_columns(view: &str, names: &[String], here: &str, entities: &BTreeMap<String, Entity>) -> Result<Vec<Field>> {
    let mut columns = Vec::new();
    for e in names {
        let ent = entities.get(e).ok_or_else(|| {
            Error::Config(format!(
                "{here}: feature view '{view}' uses entity '{e}', which is not defined (entities: {})",
                defined(entities)
            ))
        })?;
        columns.push(Field::new(ent.join_key.clone(), ent.value_type));
    }
    if columns.is_empty() {
        columns.push(Field::new(DUMMY_JOIN_KEY, ValueType::String));
    }
    Ok(columns)
}

fn features(view: &str, defs: Ordered<FeatureDef>, here: &str) -> Result<Vec<Field>> {
    let mut features = Vec::new();
    for (fname, f) in defs.0 {
        let dtype = ValueType::parse(&f.dtype).ok_or_else(|| {
            Error::Config(format!("{here}: feature view '{view}', feature '{fname}': unknown type '{}' (e.g. Int64, Float32, String, Array(Float64))", f.dtype))
        })?;
        features.push(Field { name: fname, dtype, description: f.description, tags: f.tags });
    }
    if features.is_empty() {
        return Err(Error::Config(format!("{here}: feature view '{view}' has no features")));
    }
    Ok(features)
}

fn parse_permissions(defs: Ordered<PermissionDef>, at: &Origin) -> Result<Vec<Permission>> {
    defs.0.into_iter().map(|(name, p)| permission(name.clone(), p, &at.of("permissions", &name))).collect()
}

fn permission(name: String, p: PermissionDef, here: &str) -> Result<Permission> {
    let types = p
        .types
        .0
        .iter()
        .map(|t| {
            ResourceType::parse(t).ok_or_else(|| {
                Error::Config(format!(
                    "{here}: permission '{name}': '{t}' is not a type (FEATURE_VIEW, STREAM_FEATURE_VIEW, FEATURE_SERVICE, ENTITY, DATA_SOURCE, ...)"
                ))
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let mut actions = Vec::new();
    for a in &p.actions.0 {
        let group = AuthzAction::parse_group(a).ok_or_else(|| {
            Error::Config(format!(
                "{here}: permission '{name}': '{a}' is not an action (READ_ONLINE, WRITE_ONLINE, ..., or READ, WRITE, CRUD, ALL_ACTIONS)"
            ))
        })?;
        for action in group {
            if !actions.contains(&action) {
                actions.push(action);
            }
        }
    }
    if actions.is_empty() {
        return Err(Error::Config(format!("{here}: permission '{name}' lists no actions")));
    }
    if let Some(bad) = p.name_patterns.0.iter().find(|pat| regex::Regex::new(&format!("^(?:{pat})$")).is_err()) {
        return Err(Error::Config(format!(
            "{here}: permission '{name}': name pattern '{bad}' is not a regular expression Larder can match"
        )));
    }
    let policy = match (p.policy.roles, p.policy.groups, p.policy.namespaces) {
        (Some(roles), None, None) => Policy::Roles(roles),
        (None, Some(groups), None) => Policy::Groups(groups),
        (None, None, Some(namespaces)) => Policy::Namespaces(namespaces),
        (None, Some(groups), Some(namespaces)) => Policy::GroupsOrNamespaces { groups, namespaces },
        // An empty policy is Feast's AllowAll, which Feast cannot read back from a registry.
        _ => {
            return Err(Error::Config(format!(
                "{here}: permission '{name}': policy takes roles, groups, namespaces, or groups and namespaces \
                 (an allow-all policy cannot be written: Feast cannot read it back; a project without \
                 permissions admits every authenticated caller)"
            )));
        }
    };
    Ok(Permission {
        name,
        types,
        name_patterns: p.name_patterns.0,
        required_tags: p.required_tags,
        actions,
        policy,
        tags: p.tags,
    })
}

fn parse_services(
    defs: Ordered<ServiceDef>,
    at: &Origin,
    views: &BTreeMap<String, Arc<FeatureView>>,
) -> Result<BTreeMap<String, FeatureService>> {
    let mut services = BTreeMap::new();
    for (name, s) in defs.0 {
        let here = at.of("feature_services", &name);
        let projections = s.features.into_iter().map(|p| projection(&name, p, &here, views)).collect::<Result<_>>()?;
        services.insert(
            name.clone(),
            FeatureService { name, projections, description: s.description, tags: s.tags, owner: s.owner },
        );
    }
    Ok(services)
}

/// One entry of a service's `features`: its view, and every feature it selects and join key
/// it renames, must exist. No selection means every feature of the view.
fn projection(
    service: &str,
    p: ProjectionDef,
    here: &str,
    views: &BTreeMap<String, Arc<FeatureView>>,
) -> Result<Projection> {
    let view = views.get(&p.view).ok_or_else(|| {
        Error::Config(format!(
            "{here}: feature service '{service}' uses feature view '{}', which is not defined",
            p.view
        ))
    })?;
    let features = match p.features {
        Some(list) => {
            if let Some(f) = list.iter().find(|f| view.feature(f).is_none()) {
                return Err(Error::Config(format!(
                    "{here}: feature service '{service}': feature view '{}' has no feature '{f}'",
                    p.view
                )));
            }
            list
        }
        None => view.features.iter().map(|f| f.name.clone()).collect(),
    };
    if let Some(key) = p.join_key_map.keys().find(|key| !view.entity_columns.iter().any(|c| &c.name == *key)) {
        return Err(Error::Config(format!(
            "{here}: feature service '{service}': join_key_map renames '{key}', which is not a join key of '{}'",
            p.view
        )));
    }
    Ok(Projection { view: p.view, alias: p.alias, features, join_key_map: p.join_key_map })
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
entities:
  driver: {join_key: driver_id, type: Int64}
sources:
  driver_stats_push: {type: push, batch_source: driver_stats}
  driver_stats:
    type: file
    path: data/driver_stats.parquet
    timestamp_field: event_timestamp
    created_timestamp_column: created
feature_views:
  driver_hourly_stats:
    entities: [driver]
    ttl: 3650d
    source: driver_stats
    features:
      conv_rate: Float32
      avg_daily_trips: Int64
      city: {type: String, description: home city}
  driver_fresh:
    entities: [driver]
    source: driver_stats_push
    features:
      conv_rate: Float32
feature_services:
  driver_model:
    features:
      - driver_hourly_stats
      - driver_fresh: [conv_rate]
      - view: driver_hourly_stats
        alias: dhs
        features: [city]
"#;

    #[test]
    fn parses_the_documented_example() {
        let reg = parse(EXAMPLE, "features.yaml", "p", 3).unwrap();
        let v = &reg.feature_views["driver_hourly_stats"];
        assert_eq!(
            v.features.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
            ["conv_rate", "avg_daily_trips", "city"]
        );
        assert_eq!(v.features[2].description, "home city");
        assert_eq!(v.ttl, Some(Duration::from_secs(3650 * 86_400)));
        assert_eq!(v.entity_columns, vec![Field::new("driver_id", ValueType::Int64)]);
        let fresh = &reg.feature_views["driver_fresh"];
        assert_eq!(fresh.push_source_name(), Some("driver_stats_push"));
        assert_eq!(fresh.offline_source().unwrap().name, "driver_stats");
        assert_eq!(reg.views_for_push_source("driver_stats_push").unwrap().len(), 1);
        let svc = &reg.feature_services["driver_model"];
        assert_eq!(svc.projections.len(), 3);
        assert_eq!(svc.projections[0].features.len(), 3);
        assert_eq!(svc.projections[1].features, vec!["conv_rate"]);
        assert_eq!(svc.projections[2].alias.as_deref(), Some("dhs"));
    }

    #[test]
    fn stream_views_carry_aggregations_and_refuse_what_cannot_be_computed() {
        let base = "entities: {sensor: {join_key: sensor_id, type: Int64}}\n\
                    sources:\n  f: {type: file, path: x.parquet, timestamp_field: ts}\n  p: {type: push, batch_source: f}\n";
        let stream = |aggs: &str, extra: &str| {
            format!(
                "{base}stream_feature_views:\n  s:\n    entities: [sensor]\n    source: p\n    features: {{x: Float64}}\n{extra}\
                 \x20   aggregations:\n{aggs}"
            )
        };
        let ok = parse(
            &stream(
                "      - {column: x, function: sum, time_window: 1h, slide_interval: 5m}\n      - {column: x, function: count, time_window: 10m, name: n}\n",
                "    tiling_hop_size: 1m\n",
            ),
            "features.yaml",
            "p",
            3,
        )
        .unwrap();
        let v = &ok.feature_views["s"];
        assert_eq!(v.kind, ViewKind::Stream);
        assert!(ok.stream_views_defined);
        assert_eq!(v.tiling_hop, Some(Duration::from_secs(60)));
        let outputs: Vec<String> = v.aggregations.iter().map(|a| a.output()).collect();
        assert_eq!(outputs, ["sum_x_3600s", "n"]);
        assert_eq!(v.aggregations[0].slide, Some(Duration::from_secs(300)));
        assert!(!parse(base, "features.yaml", "p", 3).unwrap().stream_views_defined);

        let e = err(&stream("      - {column: x, function: median, time_window: 1m}\n", ""));
        assert!(e.contains("stream feature view 's', aggregation 'median_x_60s': unknown function 'median'"), "{e}");
        let e = err(&stream("      - {column: y, function: sum, time_window: 1m}\n", ""));
        assert!(e.contains("aggregation 'sum_y_60s': column 'y' is not a feature of the view (features: x)"), "{e}");
        // A string column: counted distinct, not summed.
        let strings = |f: &str| {
            format!(
                "{base}stream_feature_views:\n  s:\n    entities: [sensor]\n    source: p\n    features: {{x: Float64, m: \
                 String, l: Array(Int64)}}\n    aggregations:\n      - {{column: {f}, time_window: 1m}}\n"
            )
        };
        assert!(parse(&strings("m, function: count_distinct"), "features.yaml", "p", 3).is_ok());
        let e = err(&strings("m, function: sum"));
        assert!(
            e.contains("aggregation 'sum_m_60s': column 'm' is String; aggregations are computed over numeric"),
            "{e}"
        );
        let e = err(&strings("l, function: count_distinct"));
        assert!(e.contains("column 'l' is Array(Int64); count_distinct counts single values"), "{e}");
        let e = err(&stream("      - {column: x, function: sum, time_window: 1m, slide_interval: 7s}\n", ""));
        assert!(e.contains("the slide interval (7s) does not divide the time window (60s)"), "{e}");
        let e = err(&stream("      - {column: x, function: sum, time_window: 1m}\n", "    tiling_hop_size: 1m\n"));
        assert!(e.contains("tiling_hop_size (60s) must be shorter than the time window (60s)"), "{e}");
        let e = err(&stream(
            "      - {column: x, function: sum, time_window: 1m, name: a}\n      - {column: x, function: max, time_window: 1m, name: a}\n",
            "",
        ));
        assert!(e.contains("aggregations 1 and 2 both answer as 'a'"), "{e}");
        let e = err(&format!(
            "{base}feature_views:\n  v:\n    entities: [sensor]\n    source: p\n    features: {{x: Float64}}\n\
             \x20   aggregations: [{{column: x, function: sum, time_window: 1m}}]\n"
        ));
        assert!(e.contains("define it under stream_feature_views"), "{e}");
        let e = err(&format!(
            "{base}stream_feature_views:\n  s: {{entities: [sensor], source: f, features: {{x: Float64}}}}\n"
        ));
        assert!(e.contains("stream feature view 's' needs a push or kafka source"), "{e}");
    }

    fn err(text: &str) -> String {
        parse(text, "features.yaml", "p", 3).unwrap_err().to_string()
    }

    #[test]
    fn dangling_references_name_object_and_line() {
        let e = err(
            "entities:\n  driver: {type: Int64}\nsources:\n  s: {type: file, path: x, timestamp_field: ts}\nfeature_views:\n  v:\n    entities: [drvier]\n    source: s\n    features: {a: Int64}\n",
        );
        assert!(e.contains("drvier") && e.contains("line 6") && e.contains("entities: driver"), "{e}");
        let e = err(
            "sources:\n  s: {type: file, path: x, timestamp_field: ts}\nfeature_views:\n  v:\n    source: nope\n    features: {a: Int64}\n",
        );
        assert!(e.contains("'nope'") && e.contains("line 4"), "{e}");
        let e = err("sources:\n  p: {type: push, batch_source: missing}\n");
        assert!(e.contains("missing") && e.contains("line 2"), "{e}");
        let e = err(
            "sources:\n  s: {type: file, path: x, timestamp_field: ts}\nfeature_views:\n  v:\n    source: s\n    features: {a: Int64}\nfeature_services:\n  svc:\n    features:\n      - v: [b]\n",
        );
        assert!(e.contains("no feature 'b'") && e.contains("line 8"), "{e}");
        let e = err("feature_services:\n  svc:\n    features: [ghost]\n");
        assert!(e.contains("ghost"), "{e}");
    }

    #[test]
    fn bad_types_and_keys_are_reported_with_lines() {
        let e = err(
            "sources:\n  s: {type: file, path: x, timestamp_field: ts}\nfeature_views:\n  v:\n    source: s\n    features:\n      a: Int65\n",
        );
        assert!(e.contains("Int65") && e.contains("'a'"), "{e}");
        let e = err("entities:\n  d: {type: Float32}\n");
        assert!(e.contains("cannot be a join key"), "{e}");
        let e = err("entities:\n  d:\n    type: Int64\n    joinkey: x\n");
        assert!(e.contains("joinkey") && e.contains("line 4"), "{e}");
        let e = err("sources:\n  s: {type: kafka}\n");
        assert!(e.contains("kafka"), "{e}");
        let e = err(
            "sources:\n  s: {type: file, path: x, timestamp_field: ts}\nfeature_views:\n  v:\n    source: s\n    ttl: forever\n    features: {a: Int64}\n",
        );
        assert!(e.contains("forever") && e.contains("line 6"), "{e}");
        let e = err(
            "sources:\n  s: {type: file, path: x, timestamp_field: ts}\n  s: {type: file, path: y, timestamp_field: ts}\n",
        );
        assert!(e.contains("twice"), "{e}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("2w").unwrap(), Duration::from_secs(1_209_600));
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("5d3").is_err());
    }

    #[test]
    fn entityless_views_use_the_dummy_key() {
        let reg = parse("sources:\n  s: {type: file, path: x, timestamp_field: ts}\nfeature_views:\n  g:\n    source: s\n    features: {total: Int64}\n", "f", "p", 3).unwrap();
        let g = &reg.feature_views["g"];
        assert!(g.is_entityless());
        assert_eq!(g.entities, vec![DUMMY_ENTITY_NAME]);
    }
}
