//! Registry tests on a `registry.db` written by `feast apply` (Feast 0.67) for the anchor repo.

use std::time::Duration;

use prost::Message;

use super::edit::{self, Action, Interval};
use super::*;
use crate::proto::core as pb;
use crate::proto::wire;
use crate::storage::Storage;
use crate::time::EventTime;
use crate::value::ValueType;

const FEAST_REGISTRY: &[u8] = include_bytes!("../../tests/fixtures/feast_0_67_anchor_registry.db");

/// The anchor repo's definitions, written in features.yaml form.
const ANCHOR_YAML: &str = r#"
entities:
  driver: {join_key: driver_id, type: Int64}
sources:
  driver_stats_source:
    type: file
    path: data/driver_stats.parquet
    timestamp_field: event_timestamp
    created_timestamp_column: created
  driver_stats_push_source: {type: push, batch_source: driver_stats_source}
feature_views:
  driver_hourly_stats:
    entities: [driver]
    ttl: 3650d
    source: driver_stats_source
    features: &schema
      conv_rate: Float32
      acc_rate: Float32
      avg_daily_trips: Int64
      miles_driven: Float64
      rating: Float32
      city: String
      is_active: Bool
  driver_fresh:
    entities: [driver]
    ttl: 3650d
    source: driver_stats_push_source
    features: *schema
feature_services:
  driver_model_v1:
    features: [driver_hourly_stats]
"#;

fn anchor_yaml() -> Registry {
    yaml::parse(ANCHOR_YAML, "features.yaml", "anchor", 3).unwrap()
}

#[test]
fn loads_feast_written_registry() {
    let reg = convert::registry_from_bytes(FEAST_REGISTRY, "anchor", 3).unwrap();
    assert_eq!(reg.feature_views.keys().collect::<Vec<_>>(), ["driver_fresh", "driver_hourly_stats"]);
    let v = &reg.feature_views["driver_hourly_stats"];
    let types: Vec<(&str, ValueType)> = v.features.iter().map(|f| (f.name.as_str(), f.dtype)).collect();
    assert_eq!(
        types,
        [
            ("conv_rate", ValueType::Float),
            ("acc_rate", ValueType::Float),
            ("avg_daily_trips", ValueType::Int64),
            ("miles_driven", ValueType::Double),
            ("rating", ValueType::Float),
            ("city", ValueType::String),
            ("is_active", ValueType::Bool),
        ]
    );
    assert_eq!(v.entity_columns, vec![Field::new("driver_id", ValueType::Int64)]);
    assert_eq!(v.ttl, Some(Duration::from_secs(3650 * 86_400)));
    assert!(v.online && v.servable());
    let src = v.batch_source.as_ref().unwrap();
    assert_eq!(src.kind, SourceKind::File { path: "data/driver_stats.parquet".into(), s3_endpoint_override: None });
    assert_eq!(
        (src.timestamp_field.as_str(), src.created_timestamp_column.as_deref()),
        ("event_timestamp", Some("created"))
    );
    assert_eq!(v.layout.ts_field, b"_ts:driver_hourly_stats");
    assert_eq!(v.layout.feature_fields[0], crate::keys::feature_field("driver_hourly_stats", "conv_rate"));

    let fresh = &reg.feature_views["driver_fresh"];
    assert_eq!(fresh.push_source_name(), Some("driver_stats_push_source"));
    assert_eq!(fresh.offline_source().unwrap().name, "driver_stats_source");
    assert_eq!(reg.views_for_push_source("driver_stats_push_source").unwrap()[0].name, "driver_fresh");
    assert_eq!(reg.feature_services["driver_model_v1"].projections[0].features.len(), 7);
    assert_eq!(reg.entities["driver"].join_key, "driver_id");
    assert!(reg.data_sources.contains_key("driver_stats_push_source"));

    // Objects are filtered by project.
    let other = convert::registry_from_bytes(FEAST_REGISTRY, "someone_else", 3).unwrap();
    assert!(other.feature_views.is_empty() && other.entities.is_empty());
}

#[test]
fn yaml_apply_writes_what_it_reads_back() {
    let desired = anchor_yaml();
    let (bytes, plan) = edit::apply(None, &desired, 3, EventTime::new(1_700_000_000, 0)).unwrap();
    let bytes = bytes.unwrap();
    assert!(plan.changes.iter().all(|c| c.action == Action::Create));
    let back = convert::registry_from_bytes(&bytes, "anchor", 3).unwrap();
    for (name, v) in &desired.feature_views {
        let b = &back.feature_views[name];
        assert_eq!(
            (&b.features, &b.entity_columns, b.ttl, &b.batch_source, &b.stream_source),
            (&v.features, &v.entity_columns, v.ttl, &v.batch_source, &v.stream_source)
        );
    }
    assert_eq!(back.feature_services, desired.feature_services);
    assert_eq!(back.data_sources, desired.data_sources);
    // Feast's conventions: the dummy entity and a Project entry are present.
    assert!(back.entities.contains_key("__dummy"));
    let proto = pb::Registry::decode(bytes.as_slice()).unwrap();
    assert_eq!(proto.projects.len(), 1);
    assert_eq!(proto.registry_schema_version, "1");
    assert!(!proto.version_id.is_empty());
    // Applying the same definitions again changes nothing.
    let (again, plan) = edit::apply(Some(&bytes), &desired, 3, EventTime::new(1_700_000_100, 0)).unwrap();
    assert!(again.is_none() && !plan.has_changes(), "{plan}");
}

#[test]
fn apply_over_feast_registry_keeps_what_it_does_not_own() {
    let desired = anchor_yaml();
    let (bytes, plan) = edit::apply(Some(FEAST_REGISTRY), &desired, 3, EventTime::new(1_800_000_000, 0)).unwrap();
    // Feast left the entity's value type unset; everything else is the same definition.
    let changed: Vec<(&str, &str, Action)> = plan
        .changes
        .iter()
        .filter(|c| c.action != Action::Unchanged)
        .map(|c| (c.kind, c.name.as_str(), c.action))
        .collect();
    assert_eq!(changed, vec![("entity", "driver", Action::Update)], "{plan}");
    let bytes = bytes.unwrap();
    let before = wire::split(FEAST_REGISTRY).unwrap();
    let after = wire::split(&bytes).unwrap();
    // Fields Larder does not model (10 infra, 18 version history) survive byte for byte, and
    // unchanged views keep their exact bytes.
    for number in [10u32, 18, 6, 7, 17] {
        let pick = |fs: &[wire::RawField]| {
            fs.iter().filter(|f| f.number == number).map(|f| f.payload.to_vec()).collect::<Vec<_>>()
        };
        assert_eq!(pick(&before), pick(&after), "field {number}");
    }
    let back = convert::registry_from_bytes(&bytes, "anchor", 3).unwrap();
    assert_eq!(back.entities["driver"].value_type, ValueType::Int64);

    // Dropping a view from the definitions deletes it and nothing else.
    let mut smaller = desired.clone();
    smaller.feature_views.remove("driver_fresh");
    smaller.data_sources.remove("driver_stats_push_source");
    smaller.reindex();
    let (bytes2, plan) = edit::apply(Some(&bytes), &smaller, 3, EventTime::new(1_800_000_100, 0)).unwrap();
    let deleted: Vec<&str> =
        plan.changes.iter().filter(|c| c.action == Action::Delete).map(|c| c.name.as_str()).collect();
    assert_eq!(deleted, ["driver_stats_push_source", "driver_fresh"]);
    let back = convert::registry_from_bytes(&bytes2.unwrap(), "anchor", 3).unwrap();
    assert!(!back.feature_views.contains_key("driver_fresh"));
    assert!(back.feature_views.contains_key("driver_hourly_stats"));
}

#[test]
fn apply_keeps_other_projects_and_materialization_history() {
    // A registry with another project's objects plus ours, materialized once.
    let mut other = anchor_yaml();
    other.project = "other".into();
    let (with_other, _) = edit::apply(None, &other, 3, EventTime::new(1, 0)).unwrap();
    let (both, _) = edit::apply(with_other.as_deref(), &anchor_yaml(), 3, EventTime::new(2, 0)).unwrap();
    let both = both.unwrap();
    let interval =
        Interval { view: "driver_hourly_stats".into(), start: EventTime::new(100, 0), end: EventTime::new(200, 0) };
    let materialized = edit::record_materialization(&both, "anchor", &[interval], EventTime::new(3, 0)).unwrap();

    // Redefine the view (a new feature): history and state survive, the other project too.
    let mut changed = anchor_yaml();
    let text = ANCHOR_YAML.replace("      is_active: Bool\n", "      is_active: Bool\n      extra: Int32\n");
    changed.feature_views = yaml::parse(&text, "f", "anchor", 3).unwrap().feature_views;
    let (after, plan) = edit::apply(Some(&materialized), &changed, 3, EventTime::new(4, 0)).unwrap();
    assert!(plan.changes.iter().any(|c| c.name == "driver_hourly_stats" && c.action == Action::Update), "{plan}");
    let after = after.unwrap();
    let ours = convert::registry_from_bytes(&after, "anchor", 3).unwrap();
    let v = &ours.feature_views["driver_hourly_stats"];
    assert_eq!(v.materialization_intervals, vec![(EventTime::new(100, 0), EventTime::new(200, 0))]);
    assert_eq!(v.state, ViewState::AvailableOnline);
    assert_eq!(v.features.len(), 8);
    let theirs = convert::registry_from_bytes(&after, "other", 3).unwrap();
    assert_eq!(theirs.feature_views.len(), 2);
    assert_eq!(pb::Registry::decode(after.as_slice()).unwrap().projects.len(), 2);
}

#[test]
fn record_materialization_edits_only_the_named_views() {
    let start = EventTime::new(1_763_000_000, 0);
    let end = EventTime::new(1_763_600_000, 123_000);
    let out = edit::record_materialization(
        FEAST_REGISTRY,
        "anchor",
        &[Interval { view: "driver_fresh".into(), start, end }],
        EventTime::new(1_800_000_000, 0),
    )
    .unwrap();
    let reg = convert::registry_from_bytes(&out, "anchor", 3).unwrap();
    assert_eq!(reg.feature_views["driver_fresh"].materialization_intervals, vec![(start, end)]);
    assert_eq!(reg.feature_views["driver_fresh"].state, ViewState::AvailableOnline);
    assert!(reg.feature_views["driver_hourly_stats"].materialization_intervals.is_empty());
    let before = pb::Registry::decode(FEAST_REGISTRY).unwrap();
    let after = pb::Registry::decode(out.as_slice()).unwrap();
    assert_ne!(before.version_id, after.version_id);
    assert_eq!(after.last_updated.unwrap().seconds, 1_800_000_000);
    // The other view's bytes are untouched; the edited one kept its spec bytes.
    let views = |b: &[u8]| {
        wire::split(b).unwrap().iter().filter(|f| f.number == 6).map(|f| f.payload.to_vec()).collect::<Vec<_>>()
    };
    let (vb, va) = (views(FEAST_REGISTRY), views(&out));
    assert_eq!(vb[1], va[1]);
    let spec = |v: &[u8]| wire::first_bytes(&wire::split(v).unwrap(), 1).unwrap().to_vec();
    assert_eq!(spec(&vb[0]), spec(&va[0]));

    let err = edit::record_materialization(
        FEAST_REGISTRY,
        "anchor",
        &[Interval { view: "gone".into(), start, end }],
        EventTime::EPOCH,
    )
    .unwrap_err();
    assert_eq!(err.code(), "conflict");
}

#[tokio::test]
async fn cache_serves_stale_and_keeps_last_good_on_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.db");
    std::fs::write(&path, FEAST_REGISTRY).unwrap();
    let text = format!("project: anchor\nregistry:\n  path: {}\n  cache_ttl_seconds: 1\n", path.display());
    let cfg = crate::config::RepoConfig::parse(&text, dir.path(), "f", &|_| None).unwrap();
    let cache = RegistryCache::load(&cfg, &Storage::default()).await.unwrap();
    assert_eq!(cache.get().feature_views.len(), 2);
    assert!(!cache.refresh().await.unwrap(), "unchanged registry reports no change");

    // A corrupt registry is reported and the last good one stays in use.
    std::fs::write(&path, b"\xff\xff\xff").unwrap();
    assert!(cache.refresh().await.is_err());
    assert!(cache.health().last_error.is_some());
    assert_eq!(cache.get().feature_views.len(), 2);

    // A good new registry replaces it.
    let (smaller, _) = edit::apply(
        None,
        &yaml::parse("entities:\n  d: {type: Int64}\n", "f", "anchor", 3).unwrap(),
        3,
        EventTime::now(),
    )
    .unwrap();
    std::fs::write(&path, smaller.unwrap()).unwrap();
    assert!(cache.refresh().await.unwrap());
    assert!(cache.get().feature_views.is_empty());
    assert!(cache.health().last_error.is_none());
}

/// A length-delimited protobuf field (short values only).
fn ld(field: u8, value: &[u8]) -> Vec<u8> {
    let mut b = vec![(field << 3) | 2, value.len() as u8];
    b.extend_from_slice(value);
    b
}

/// Kafka and Kinesis sources as Feast writes them (`KafkaOptions`: bootstrap servers 1, topic 2,
/// message format 3; `KinesisOptions`: region 1, stream name 2, record format 3): the topic and
/// the stream name are read, the options written back byte for byte, and a view fed by one is
/// found by its topic or stream, and pushed to by the source's name.
#[test]
fn kafka_and_kinesis_sources_are_found_by_their_topic_and_stream() {
    use pb::data_source::{Options, source_type};
    let format = ld(3, &ld(1, b"{\"fields\": []}"));
    let kafka = [ld(1, b"broker:9092"), ld(2, b"driver-events"), ld(3, &format)].concat();
    let kinesis = [ld(1, b"us-east-1"), ld(2, b"readings"), ld(3, &format)].concat();
    let source = |name: &str, kind: i32, options: Options| pb::DataSource {
        name: name.into(),
        r#type: kind,
        options: Some(options),
        timestamp_field: "event_timestamp".into(),
        ..Default::default()
    };
    let k =
        convert::source_from_proto(&source("events", source_type::STREAM_KAFKA, Options::KafkaOptions(kafka.clone())));
    assert_eq!(k.kind, SourceKind::Kafka { topic: "driver-events".into(), options: kafka.clone(), batch: None });
    let s = convert::source_from_proto(&source(
        "rd",
        source_type::STREAM_KINESIS,
        Options::KinesisOptions(kinesis.clone()),
    ));
    assert_eq!(s.kind, SourceKind::Kinesis { stream_name: "readings".into(), options: kinesis.clone(), batch: None });
    let t = convert::Stamps { created: EventTime::EPOCH, updated: EventTime::EPOCH };
    let back = convert::source_to_proto(&k, None, false, t);
    assert_eq!((back.r#type, back.options), (source_type::STREAM_KAFKA, Some(Options::KafkaOptions(kafka))));
    let back = convert::source_to_proto(&s, None, false, t);
    assert_eq!(back.options, Some(Options::KinesisOptions(kinesis)));

    let mut reg = yaml::parse(ANCHOR_YAML, "features.yaml", "p", 3).unwrap();
    let mut view = (*reg.feature_views["driver_hourly_stats"]).clone();
    view.name = "from_kafka".into();
    view.stream_source = Some(k);
    reg.feature_views.insert(view.name.clone(), std::sync::Arc::new(view));
    reg.reindex();
    assert_eq!(reg.source_for_stream("driver-events"), Some("events"));
    assert_eq!(reg.source_for_stream("readings"), None, "no view reads the Kinesis source");
    let fed: Vec<&str> = reg.views_for_push_source("events").unwrap().iter().map(|v| v.name.as_str()).collect();
    assert_eq!(fed, ["from_kafka"]);
}

#[test]
fn kafka_and_kinesis_sources_in_features_yaml() {
    let defs = |sources: &str| {
        format!(
            "entities: {{sensor: {{join_key: sensor_id, type: Int64}}}}\n\
             sources:\n  f: {{type: file, path: r.parquet, timestamp_field: ts}}\n{sources}\
             stream_feature_views:\n  v:\n    entities: [sensor]\n    source: k\n    features: {{x: Float64}}\n    \
             aggregations: [{{column: x, function: sum, time_window: 1m}}]\n"
        )
    };
    let parse = |sources: &str| yaml::parse(&defs(sources), "features.yaml", "p", 3).map_err(|e| e.to_string());
    let reg = parse("  k: {type: kafka, topic: readings, bootstrap_servers: 'b:9092', batch_source: f}\n").unwrap();
    let v = &reg.feature_views["v"];
    assert_eq!(reg.source_for_stream("readings"), Some("k"));
    assert_eq!(v.fed_by(), Some("k"));
    assert_eq!(v.offline_source().map(|s| s.name.as_str()), Some("f"), "history is in the batch source");
    // Written as Feast's KafkaOptions: brokers 1, topic 2, message_format 3 = StreamFormat with
    // json_format (3), an empty JsonFormat.
    let SourceKind::Kafka { options, .. } = &v.stream_source.as_ref().unwrap().kind else { panic!("not kafka") };
    assert_eq!(options, &[ld(1, b"b:9092"), ld(2, b"readings"), ld(3, &ld(3, b""))].concat());
    // Feast's StreamFeatureView refuses a Kinesis source; a feature view takes one.
    let e = parse("  k: {type: kinesis, stream_name: rs, region: eu-west-1, batch_source: f}\n").unwrap_err();
    assert!(e.contains("takes a push or kafka source, not kinesis"), "{e}");
    let text = defs("  k: {type: kinesis, stream_name: rs, region: eu-west-1, batch_source: f}\n")
        .replace("stream_feature_views", "feature_views")
        .replace("    aggregations: [{column: x, function: sum, time_window: 1m}]\n", "");
    let reg = yaml::parse(&text, "features.yaml", "p", 3).unwrap();
    assert_eq!(reg.source_for_stream("rs"), Some("k"));
    assert_eq!(reg.feature_views["v"].fed_by(), Some("k"));

    let e = parse("  k: {type: kafka, batch_source: f}\n").unwrap_err();
    assert!(e.contains("kafka source 'k' needs a topic"), "{e}");
    let e = parse("  k: {type: kinesis, topic: x, stream_name: rs, batch_source: f}\n").unwrap_err();
    assert!(e.contains("source 'k': topic does not apply to type: kinesis"), "{e}");
    let e = parse("  k: {type: file, path: x, timestamp_field: ts, topic: t}\n").unwrap_err();
    assert!(e.contains("topic does not apply to type: file"), "{e}");
    let e = parse("  k: {type: kafka, topic: t}\n").unwrap_err();
    assert!(e.contains("needs a batch_source"), "{e}");
}
