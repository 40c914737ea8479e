//! The registry model: what the data plane needs to know about entities, feature views, data
//! sources and feature services of one project.
//!
//! A [`FeatureView`] also carries its serving layout (hash field names, `_ts` field, key
//! encoder), computed once when the registry is loaded so no request computes a hash.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

pub use super::permission::{AuthzAction, Permission, Policy, ResourceType};
use crate::error::{Error, ObjectKind, Result};
use crate::keys::{self, KeyEncoder};
use crate::time::EventTime;
use crate::value::ValueType;

#[derive(Debug, Clone, PartialEq)]
pub struct Entity {
    pub name: String,
    pub join_key: String,
    /// Often `Invalid` in Feast registries: the view's entity columns carry the real type.
    pub value_type: ValueType,
    pub description: String,
    pub tags: BTreeMap<String, String>,
    pub owner: String,
}

/// A named, typed column: a feature or a join key.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: String,
    pub dtype: ValueType,
    pub description: String,
    pub tags: BTreeMap<String, String>,
}

impl Field {
    pub fn new(name: impl Into<String>, dtype: ValueType) -> Self {
        Field { name: name.into(), dtype, description: String::new(), tags: BTreeMap::new() }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum SourceKind {
    /// Parquet at a local path (relative to the repo) or an `s3://` URL.
    File {
        path: String,
        s3_endpoint_override: Option<String>,
    },
    /// Rows arrive through `push`; `batch` is where Feast writes them offline and where
    /// materialization reads history from.
    Push {
        batch: Box<DataSource>,
    },
    /// A Kafka topic (`KafkaOptions.topic`); `options` are the source's `KafkaOptions` bytes,
    /// written back as they were read; `batch` holds its history, as a push source's does.
    Kafka {
        topic: String,
        options: Vec<u8>,
        batch: Option<Box<DataSource>>,
    },
    /// A Kinesis stream (`KinesisOptions.stream_name`), with its `KinesisOptions` bytes.
    Kinesis {
        stream_name: String,
        options: Vec<u8>,
        batch: Option<Box<DataSource>>,
    },
    Request,
    /// A source type the data plane does not read (BigQuery, Snowflake...), kept by type number.
    Other {
        type_code: i32,
        class_type: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct DataSource {
    pub name: String,
    pub kind: SourceKind,
    pub timestamp_field: String,
    pub created_timestamp_column: Option<String>,
    /// Source column name -> feature or join-key name.
    pub field_mapping: BTreeMap<String, String>,
    pub date_partition_column: Option<String>,
    pub description: String,
    pub tags: BTreeMap<String, String>,
    pub owner: String,
}

impl DataSource {
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            SourceKind::File { .. } => "file",
            SourceKind::Push { .. } => "push",
            SourceKind::Kafka { .. } => "kafka",
            SourceKind::Kinesis { .. } => "kinesis",
            SourceKind::Request => "request",
            SourceKind::Other { .. } => "other",
        }
    }

    /// The batch source behind a push (or Kafka or Kinesis) source, or the source itself.
    pub fn batch(&self) -> &DataSource {
        match &self.kind {
            SourceKind::Push { batch }
            | SourceKind::Kafka { batch: Some(batch), .. }
            | SourceKind::Kinesis { batch: Some(batch), .. } => batch,
            _ => self,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewKind {
    Batch,
    Stream,
}

/// `FeatureViewState`: only UNSPECIFIED and AVAILABLE_ONLINE views are servable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewState {
    Unspecified,
    Created,
    Generated,
    Materializing,
    AvailableOnline,
}

impl ViewState {
    pub fn from_i32(v: i32) -> Self {
        match v {
            1 => ViewState::Created,
            2 => ViewState::Generated,
            3 => ViewState::Materializing,
            4 => ViewState::AvailableOnline,
            _ => ViewState::Unspecified,
        }
    }
    pub fn as_i32(self) -> i32 {
        match self {
            ViewState::Unspecified => 0,
            ViewState::Created => 1,
            ViewState::Generated => 2,
            ViewState::Materializing => 3,
            ViewState::AvailableOnline => 4,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct FeatureView {
    pub name: String,
    pub kind: ViewKind,
    /// Entity names, as the registry lists them (`["__dummy"]` for a view without entities).
    pub entities: Vec<String>,
    pub features: Vec<Field>,
    /// The join keys and their types. For a view without entities this is `__dummy_id: String`.
    pub entity_columns: Vec<Field>,
    /// `None` when the registry says 0: no age limit.
    pub ttl: Option<Duration>,
    pub batch_source: Option<DataSource>,
    pub stream_source: Option<DataSource>,
    pub online: bool,
    pub offline: bool,
    pub disabled: bool,
    pub state: ViewState,
    pub materialization_intervals: Vec<(EventTime, EventTime)>,
    /// A BatchFeatureView with a Python transformation: Larder cannot apply it.
    pub has_transformation: bool,
    /// A stream view's window aggregations (empty for every other view).
    pub aggregations: Vec<super::aggregation::Aggregation>,
    /// A stream view's `tiling_hop_size` when `enable_tiling` is set.
    pub tiling_hop: Option<Duration>,
    /// A stream view's aggregation outputs declared as fields of its schema, in aggregation
    /// order: Feast serves only declared features, and Larder writes each one's final value
    /// for it (docs/aggregations.md). They are not among `features`: nothing pushes or
    /// materializes them.
    pub outputs: Vec<Field>,
    pub description: String,
    pub tags: BTreeMap<String, String>,
    pub owner: String,
    pub layout: ViewLayout,
}

/// Everything about a view's Redis layout that does not change between requests.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewLayout {
    /// `_ts:<view>`.
    pub ts_field: Vec<u8>,
    /// The hash field of each feature, parallel to `FeatureView::features`.
    pub feature_fields: Vec<[u8; 4]>,
    /// Feature name -> index in `features`.
    pub feature_index: HashMap<String, usize>,
    /// Encodes keys from values given in `entity_columns` order.
    pub key_encoder: KeyEncoder,
}

impl ViewLayout {
    pub fn new(view_name: &str, features: &[Field], entity_columns: &[Field], key_version: u32) -> Result<Self> {
        let names: Vec<&str> = entity_columns.iter().map(|c| c.name.as_str()).collect();
        Ok(ViewLayout {
            ts_field: keys::ts_field(view_name),
            feature_fields: features.iter().map(|f| keys::feature_field(view_name, &f.name)).collect(),
            feature_index: features.iter().enumerate().map(|(i, f)| (f.name.clone(), i)).collect(),
            key_encoder: KeyEncoder::new(&names, key_version)?,
        })
    }
}

impl FeatureView {
    pub fn feature(&self, name: &str) -> Option<(usize, &Field)> {
        self.layout.feature_index.get(name).map(|&i| (i, &self.features[i]))
    }

    /// The declared field of an aggregation output.
    pub fn output(&self, name: &str) -> Option<&Field> {
        self.outputs.iter().find(|f| f.name == name)
    }

    /// A schema's fields split into features and aggregation outputs (fields named as one of
    /// `aggregations` answers).
    pub fn split_outputs(
        fields: Vec<Field>,
        aggregations: &[super::aggregation::Aggregation],
    ) -> (Vec<Field>, Vec<Field>) {
        let names: Vec<String> = aggregations.iter().map(|a| a.output()).collect();
        let (mut outputs, features): (Vec<Field>, Vec<Field>) =
            fields.into_iter().partition(|f| names.contains(&f.name));
        outputs.sort_by_key(|f| names.iter().position(|n| *n == f.name));
        (features, outputs)
    }

    /// True for a view with no entities (keyed by the dummy entity).
    pub fn is_entityless(&self) -> bool {
        self.entity_columns.len() == 1 && self.entity_columns[0].name == keys::DUMMY_JOIN_KEY
    }

    /// Feast's rule for serving: enabled, and state UNSPECIFIED or AVAILABLE_ONLINE.
    pub fn servable(&self) -> bool {
        !self.disabled && matches!(self.state, ViewState::Unspecified | ViewState::AvailableOnline)
    }

    /// The push source feeding this view, if its stream source is one.
    pub fn push_source_name(&self) -> Option<&str> {
        match &self.stream_source {
            Some(DataSource { kind: SourceKind::Push { .. }, name, .. }) => Some(name),
            _ => None,
        }
    }

    /// The source rows are pushed to this view through: its stream source when that is a push,
    /// Kafka or Kinesis source (records of a Kafka topic or Kinesis stream arrive through the
    /// push function like pushed rows).
    pub fn fed_by(&self) -> Option<&str> {
        match &self.stream_source {
            Some(DataSource {
                kind: SourceKind::Push { .. } | SourceKind::Kafka { .. } | SourceKind::Kinesis { .. },
                name,
                ..
            }) => Some(name),
            _ => None,
        }
    }

    /// Where materialization reads from: the batch source (a push source's batch source).
    pub fn offline_source(&self) -> Option<&DataSource> {
        self.batch_source.as_ref().map(DataSource::batch)
    }

    /// The field mapping materialization applies: the stream source's if there is one,
    /// otherwise the batch source's (Feast's rule).
    pub fn field_mapping(&self) -> &BTreeMap<String, String> {
        match (&self.stream_source, &self.batch_source) {
            (Some(s), _) if !s.field_mapping.is_empty() => &s.field_mapping,
            (_, Some(b)) => &b.field_mapping,
            (Some(s), None) => &s.field_mapping,
            (None, None) => &EMPTY_MAPPING,
        }
    }

    /// The end of the latest materialization interval.
    pub fn last_materialized_end(&self) -> Option<EventTime> {
        self.materialization_intervals.iter().map(|(_, end)| *end).max()
    }
}

static EMPTY_MAPPING: BTreeMap<String, String> = BTreeMap::new();

/// A name pattern as Feast applies it (`re.fullmatch`): the whole name must match. A pattern
/// Rust's regex syntax cannot compile (Python's lookarounds, backreferences) matches nothing,
/// so a permission never grants more than its author wrote; it is logged once, at load.
pub fn full_match(pattern: &str) -> Option<regex::Regex> {
    match regex::Regex::new(&format!("^(?:{pattern})$")) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!(pattern, error = %e, "permission name pattern is not a valid regular expression; it matches nothing");
            None
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Projection {
    pub view: String,
    /// Alias for the view's name in response column names.
    pub alias: Option<String>,
    /// The selected features, in order.
    pub features: Vec<String>,
    /// Join key in the view -> the column name the request uses for it.
    pub join_key_map: BTreeMap<String, String>,
}

impl Projection {
    pub fn name_to_use(&self) -> &str {
        self.alias.as_deref().unwrap_or(&self.view)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct FeatureService {
    pub name: String,
    pub projections: Vec<Projection>,
    pub description: String,
    pub tags: BTreeMap<String, String>,
    pub owner: String,
}

/// The objects of one project.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    pub project: String,
    pub entities: BTreeMap<String, Entity>,
    pub data_sources: BTreeMap<String, DataSource>,
    pub feature_views: BTreeMap<String, Arc<FeatureView>>,
    pub feature_services: BTreeMap<String, FeatureService>,
    /// On-demand views are listed so a request for one gets a precise error.
    pub on_demand_views: BTreeSet<String>,
    /// Push (or Kafka or Kinesis) source name -> the names of the views it feeds.
    pub push_index: HashMap<String, Vec<String>>,
    /// Kafka topic or Kinesis stream name -> the name of the Kafka or Kinesis source reading
    /// it (the first by name when several do).
    pub stream_index: HashMap<String, String>,
    /// Every join key of the project (of its views and of its entities) -> its type: a request
    /// column with one of these names is echoed in the answer, as Feast does.
    pub join_key_types: HashMap<String, ValueType>,
    /// The project's permissions. In definitions, `None` when `features.yaml` has no
    /// `permissions:` section (apply then leaves the registry's permissions as they are).
    pub permissions: Option<Vec<Permission>>,
    /// Each permission's name patterns, compiled (`None`: a pattern that is not a valid regular
    /// expression, which matches nothing).
    pub permission_patterns: Vec<Vec<Option<regex::Regex>>>,
    /// In definitions: whether `features.yaml` has a `stream_feature_views:` section (apply
    /// then owns the project's stream views; otherwise it leaves them as they are).
    pub stream_views_defined: bool,
    pub version_id: String,
    pub last_updated: Option<EventTime>,
}

impl Registry {
    /// Rebuilds derived indexes; call after changing the maps.
    pub fn reindex(&mut self) {
        self.push_index.clear();
        self.stream_index.clear();
        self.join_key_types.clear();
        for view in self.feature_views.values() {
            if let Some(src) = view.fed_by() {
                self.push_index.entry(src.to_string()).or_default().push(view.name.clone());
            }
            if let Some(DataSource {
                kind: SourceKind::Kafka { topic: stream, .. } | SourceKind::Kinesis { stream_name: stream, .. },
                name,
                ..
            }) = &view.stream_source
                && !stream.is_empty()
            {
                let entry = self.stream_index.entry(stream.clone()).or_insert_with(|| name.clone());
                if name < entry {
                    name.clone_into(entry);
                }
            }
            for c in &view.entity_columns {
                if c.dtype != ValueType::Invalid {
                    self.join_key_types.entry(c.name.clone()).or_insert(c.dtype);
                }
            }
        }
        // An entity no view uses yet still names a join key; its declared type, if any.
        for e in self.entities.values() {
            if e.value_type != ValueType::Invalid && e.value_type.is_key_type() {
                self.join_key_types.entry(e.join_key.clone()).or_insert(e.value_type);
            }
        }
        self.permission_patterns = self
            .permissions
            .iter()
            .flatten()
            .map(|p| p.name_patterns.iter().map(|pat| full_match(pat)).collect())
            .collect();
    }

    pub fn view(&self, name: &str) -> Result<&Arc<FeatureView>> {
        self.feature_views.get(name).ok_or_else(|| {
            if self.on_demand_views.contains(name) {
                Error::Unsupported(format!(
                    "'{name}' is an on-demand feature view: Larder cannot run Python transformations"
                ))
            } else {
                Error::not_found(ObjectKind::FeatureView, name, &self.project)
            }
        })
    }

    pub fn service(&self, name: &str) -> Result<&FeatureService> {
        self.feature_services.get(name).ok_or_else(|| Error::not_found(ObjectKind::FeatureService, name, &self.project))
    }

    /// The views a push source writes to (Feast: every view whose stream source is it).
    /// The Kafka or Kinesis source whose options name `stream` (a topic or a Kinesis stream
    /// name), if a view of the project reads one.
    pub fn source_for_stream(&self, stream: &str) -> Option<&str> {
        self.stream_index.get(stream).map(String::as_str)
    }

    pub fn views_for_push_source(&self, name: &str) -> Result<Vec<&Arc<FeatureView>>> {
        match self.push_index.get(name) {
            Some(names) => Ok(names.iter().filter_map(|n| self.feature_views.get(n)).collect()),
            None => Err(Error::not_found(ObjectKind::PushSource, name, &self.project)),
        }
    }

    /// Checks references between objects: every view's entities exist, every projection names
    /// an existing view and features, join-key types are allowed in keys. Used after loading
    /// hand-written definitions, where a typo must be an error, not a surprise at serving time.
    pub fn validate(&self) -> Result<()> {
        for view in self.feature_views.values() {
            for e in &view.entities {
                if e != keys::DUMMY_ENTITY_NAME && !self.entities.contains_key(e) {
                    return Err(Error::Config(format!(
                        "feature view '{}' uses entity '{e}', which is not defined",
                        view.name
                    )));
                }
            }
            for col in &view.entity_columns {
                if !col.dtype.is_key_type() && col.dtype != ValueType::Invalid {
                    return Err(Error::Config(format!(
                        "feature view '{}': join key '{}' has type {}, but keys must be String, Bytes, Int32, Int64 or UnixTimestamp",
                        view.name, col.name, col.dtype
                    )));
                }
            }
            let mut seen = BTreeSet::new();
            for f in &view.features {
                if !seen.insert(&f.name) {
                    return Err(Error::Config(format!(
                        "feature view '{}' defines feature '{}' twice",
                        view.name, f.name
                    )));
                }
                if view.entity_columns.iter().any(|c| c.name == f.name) {
                    return Err(Error::Config(format!(
                        "feature view '{}': '{}' is both a join key and a feature",
                        view.name, f.name
                    )));
                }
            }
        }
        for svc in self.feature_services.values() {
            for p in &svc.projections {
                let view = self.feature_views.get(&p.view).ok_or_else(|| {
                    Error::Config(format!(
                        "feature service '{}' uses feature view '{}', which is not defined",
                        svc.name, p.view
                    ))
                })?;
                for f in &p.features {
                    if view.feature(f).is_none() {
                        return Err(Error::Config(format!(
                            "feature service '{}': feature view '{}' has no feature '{f}'",
                            svc.name, p.view
                        )));
                    }
                }
            }
        }
        Ok(())
    }
}
