//! Registry interop with Feast 0.67, both ways:
//! - a registry.db written by `feast apply` loads in Larder with the right views, types, TTLs,
//!   sources and services;
//! - stream feature views with window aggregations, written by `feast apply`, load with their
//!   aggregations, output names and tile sizes, and one Larder cannot compute is named;
//! - a registry.db written by `larder apply` is read by Feast (`feast feature-views list`,
//!   `FeatureStore.get_feature_view`, `get_feature_service`), stream views with aggregations
//!   from `features.yaml` too (`get_stream_feature_view`).

use std::time::Duration;

use larder::config::RepoConfig;
use larder::registry::aggregation::{AggregationPlan, Function};
use larder::registry::{self, SourceKind, ViewKind};
use larder::value::ValueType;
use larder_tests::feast::copy_dir;
use larder_tests::{FeastRepo, RedisServer, repo_root, run};

fn driver_types() -> Vec<(&'static str, ValueType)> {
    vec![
        ("conv_rate", ValueType::Float),
        ("acc_rate", ValueType::Float),
        ("avg_daily_trips", ValueType::Int64),
        ("miles_driven", ValueType::Double),
        ("rating", ValueType::Float),
        ("city", ValueType::String),
        ("is_active", ValueType::Bool),
    ]
}

#[tokio::test]
async fn larder_reads_what_feast_apply_wrote() {
    let redis = RedisServer::start();
    let repo = FeastRepo::from_fixture("feast_driver_repo", &redis.addr());
    // feast apply reads the parquet to check the source's columns.
    let end = larder::time::EventTime::parse("2026-11-20T00:00:00Z").unwrap();
    larder::example_data::write_driver_stats(&repo.path().join("data/driver_stats.parquet"), 10, 2, end, 1).unwrap();
    run(&mut repo.feast(&["apply"]));

    let cfg = RepoConfig::load_with(Some(repo.path()), &|k| (k == "REDIS_ADDR").then(|| redis.addr())).unwrap();
    let reg = registry::load(&cfg, &larder::storage::Storage::default()).await.unwrap();
    assert_eq!(reg.feature_views.keys().collect::<Vec<_>>(), ["driver_fresh", "driver_hourly_stats"]);
    for name in ["driver_fresh", "driver_hourly_stats"] {
        let v = &reg.feature_views[name];
        let types: Vec<(&str, ValueType)> = v.features.iter().map(|f| (f.name.as_str(), f.dtype)).collect();
        assert_eq!(types, driver_types(), "{name}");
        assert_eq!(v.ttl, Some(Duration::from_secs(3650 * 86_400)), "{name}");
        assert_eq!(v.entity_columns.len(), 1);
        assert_eq!((v.entity_columns[0].name.as_str(), v.entity_columns[0].dtype), ("driver_id", ValueType::Int64));
        let batch = v.offline_source().unwrap();
        assert_eq!(
            batch.kind,
            SourceKind::File { path: "data/driver_stats.parquet".into(), s3_endpoint_override: None }
        );
        assert_eq!(batch.timestamp_field, "event_timestamp");
        assert_eq!(batch.created_timestamp_column.as_deref(), Some("created"));
        assert!(v.online && v.servable());
    }
    assert_eq!(reg.feature_views["driver_fresh"].push_source_name(), Some("driver_stats_push_source"));
    assert!(reg.feature_views["driver_hourly_stats"].push_source_name().is_none());
    assert_eq!(reg.views_for_push_source("driver_stats_push_source").unwrap().len(), 1);
    let v2 = &reg.feature_services["driver_model_v2"];
    assert_eq!(v2.projections.len(), 2);
    assert_eq!(v2.projections[0].features, ["conv_rate", "acc_rate", "avg_daily_trips"]);
    assert_eq!(
        (v2.projections[1].view.as_str(), v2.projections[1].features.clone()),
        ("driver_fresh", vec!["rating".to_string(), "is_active".to_string()])
    );
    assert_eq!(reg.entities["driver"].join_key, "driver_id");
}

#[tokio::test]
async fn feast_reads_what_larder_apply_wrote() {
    let redis = RedisServer::start();
    // The example repo (features.yaml) with Feast's Python definitions removed: only Larder writes.
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&repo_root().join("examples/driver"), dir.path());
    let cfg = RepoConfig::load_with(Some(dir.path()), &|k| (k == "REDIS_ADDR").then(|| redis.addr())).unwrap();
    let plan = registry::apply(&cfg, &larder::storage::Storage::default(), false).await.unwrap();
    assert!(plan.has_changes());

    let repo = FeastRepo { dir, redis_addr: redis.addr() };
    // Feast must not find Python definitions here: it only reads the registry.
    let listed = run(&mut repo.feast(&["feature-views", "list"]));
    assert!(listed.contains("driver_hourly_stats") && listed.contains("driver_fresh"), "{listed}");

    let out = repo.python(
        r#"
import json
from feast import FeatureStore
fs = FeatureStore(repo_path=".")
views = {}
for name in ["driver_hourly_stats", "driver_fresh"]:
    fv = fs.get_feature_view(name)
    views[name] = {
        "features": [[f.name, str(f.dtype)] for f in fv.features],
        "ttl": fv.ttl.total_seconds(),
        "entities": fv.entities,
        "join_keys": [c.name for c in fv.entity_columns],
        "batch_source": type(fv.batch_source).__name__,
        "batch_path": fv.batch_source.path,
        "timestamp_field": fv.batch_source.timestamp_field,
        "created": fv.batch_source.created_timestamp_column,
        "stream_source": type(fv.stream_source).__name__ if fv.stream_source else None,
        "push_name": fv.stream_source.name if fv.stream_source else None,
        "online": fv.online,
    }
svc = fs.get_feature_service("driver_model_v2")
services = [[p.name, [f.name for f in p.features]] for p in svc.feature_view_projections]
print(json.dumps({"views": views, "service": services}))
"#,
    );
    let j: serde_json::Value = serde_json::from_str(out.trim().lines().last().unwrap()).unwrap();
    let want_features = serde_json::json!([
        ["conv_rate", "Float32"],
        ["acc_rate", "Float32"],
        ["avg_daily_trips", "Int64"],
        ["miles_driven", "Float64"],
        ["rating", "Float32"],
        ["city", "String"],
        ["is_active", "Bool"]
    ]);
    for name in ["driver_hourly_stats", "driver_fresh"] {
        let v = &j["views"][name];
        assert_eq!(v["features"], want_features, "{name}: {v}");
        assert_eq!(v["ttl"], 3650.0 * 86400.0);
        assert_eq!(v["entities"], serde_json::json!(["driver"]));
        assert_eq!(v["join_keys"], serde_json::json!(["driver_id"]));
        assert_eq!(v["batch_source"], "FileSource");
        assert_eq!(v["batch_path"], "data/driver_stats.parquet");
        assert_eq!(v["timestamp_field"], "event_timestamp");
        assert_eq!(v["created"], "created");
        assert_eq!(v["online"], true);
    }
    assert_eq!(j["views"]["driver_fresh"]["stream_source"], "PushSource");
    assert_eq!(j["views"]["driver_fresh"]["push_name"], "driver_stats_push_source");
    assert_eq!(j["views"]["driver_hourly_stats"]["stream_source"], serde_json::Value::Null);
    assert_eq!(
        j["service"],
        serde_json::json!([
            ["driver_hourly_stats", ["conv_rate", "acc_rate", "avg_daily_trips"]],
            ["driver_fresh", ["rating", "is_active"]]
        ])
    );
}

#[tokio::test]
async fn larder_reads_stream_view_aggregations_feast_apply_wrote() {
    let redis = RedisServer::start();
    let repo = FeastRepo::from_fixture("feast_sensor_repo", &redis.addr());
    repo.python(
        "import pandas as pd; pd.DataFrame({'sensor_id': [1], 'reading': [1.0], \
         'event_timestamp': [pd.Timestamp('2026-01-01', tz='UTC')]}).to_parquet('data/readings.parquet')",
    );
    run(&mut repo.feast(&["apply"]));

    let cfg = RepoConfig::load_with(Some(repo.path()), &|k| (k == "REDIS_ADDR").then(|| redis.addr())).unwrap();
    let reg = registry::load(&cfg, &larder::storage::Storage::default()).await.unwrap();
    assert_eq!(reg.feature_views.keys().collect::<Vec<_>>(), ["sensor_hour", "sensor_minute"]);
    let plan = |view: &str| -> Vec<(String, Result<AggregationPlan, String>)> {
        let v = &reg.feature_views[view];
        v.aggregations.iter().map(|a| (a.output(), a.plan(&v.name, v.tiling_hop).map_err(|e| e.0))).collect()
    };
    let (minute, hour) = (&reg.feature_views["sensor_minute"], &reg.feature_views["sensor_hour"]);
    for v in [minute, hour] {
        assert_eq!(v.kind, ViewKind::Stream);
        // Feast's SDK lists the join key among the features, and its push writes it as a field
        // of the view (`sensor_minute:sensor_id`): it stays a feature, so the bytes match.
        // (In an order Feast's SDK does not fix: it builds them from a set.)
        let mut names: Vec<&str> = v.features.iter().map(|f| f.name.as_str()).collect();
        names.sort();
        assert_eq!(names, ["reading", "sensor_id"]);
        assert_eq!(v.entity_columns[0].name, "sensor_id");
    }
    let tumbling = |function| {
        Ok(AggregationPlan { function, window: Duration::from_secs(60), hop: Duration::from_secs(60), sliding: false })
    };
    assert_eq!(
        plan("sensor_minute"),
        [
            ("avg_reading_60s".to_string(), tumbling(Function::Mean)),
            ("std_reading_60s".to_string(), tumbling(Function::Std)),
            ("readings_1m".to_string(), tumbling(Function::Count)),
        ]
    );
    assert_eq!(minute.tiling_hop, None);
    assert_eq!(hour.tiling_hop, Some(Duration::from_secs(600)));
    let hour_plan = plan("sensor_hour");
    // The slide interval beats the tiling hop; without one the tiling hop is the tile.
    assert_eq!(
        hour_plan[0],
        (
            "max_reading_3600s".to_string(),
            Ok(AggregationPlan {
                function: Function::Max,
                window: Duration::from_secs(3600),
                hop: Duration::from_secs(300),
                sliding: true
            })
        )
    );
    let (name, median) = &hour_plan[1];
    assert_eq!(name, "median_reading_3600s");
    let err = median.as_ref().unwrap_err();
    assert!(
        err.starts_with(
            "stream feature view 'sensor_hour', aggregation 'median_reading_3600s': unknown function 'median'"
        ),
        "{err}"
    );
    // The push source feeds the minute view as it feeds any view.
    assert_eq!(minute.push_source_name(), Some("readings_push"));
}

#[tokio::test]
async fn feast_reads_the_stream_views_larder_apply_wrote() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&repo_root().join("examples/sensors"), dir.path());
    // Besides the example's push source: a Kafka and a Kinesis source, each feeding a view.
    let yaml_path = dir.path().join("features.yaml");
    let yaml = std::fs::read_to_string(&yaml_path).unwrap();
    let yaml = yaml
        .replacen(
            "sources:\n",
            "sources:\n  readings_kafka: {type: kafka, topic: sensor-readings, bootstrap_servers: 'broker:9092', \
             batch_source: readings_file}\n  readings_kinesis: {type: kinesis, stream_name: sensor-stream, region: \
             eu-west-1, batch_source: readings_file}\n",
            1,
        )
        .replacen(
            "stream_feature_views:\n",
            "stream_feature_views:\n  sensor_kafka:\n    entities: [sensor]\n    source: readings_kafka\n    \
             features: {reading: Float64}\n    aggregations: [{column: reading, function: max, time_window: 1m}]\n",
            1,
        );
    // Feast's StreamFeatureView takes push and Kafka sources only; a plain view takes Kinesis.
    let yaml = format!(
        "{yaml}feature_views:\n  sensor_kinesis:\n    entities: [sensor]\n    source: readings_kinesis\n    \
         features: {{reading: Float64}}\n"
    );
    std::fs::write(&yaml_path, yaml).unwrap();
    let cfg = RepoConfig::load_with(Some(dir.path()), &|k| (k == "REDIS_ADDR").then(|| redis.addr())).unwrap();
    let storage = larder::storage::Storage::default();
    let plan = registry::apply(&cfg, &storage, false).await.unwrap();
    let created: Vec<String> = plan.changes.iter().map(|c| format!("{} {}", c.kind, c.name)).collect();
    assert!(created.contains(&"stream feature view sensor_minute".to_string()), "{created:?}");
    let again = registry::apply(&cfg, &storage, false).await.unwrap();
    assert!(!again.has_changes(), "a second apply changes nothing: {again}");

    // Larder reads back what it wrote: the definitions of features.yaml.
    let reg = registry::load(&cfg, &storage).await.unwrap();
    let yaml = std::fs::read_to_string(dir.path().join("features.yaml")).unwrap();
    let defined = larder::registry::yaml::parse(&yaml, "features.yaml", "sensors", 3).unwrap();
    for name in ["sensor_minute", "sensor_hour"] {
        let (got, want) = (&reg.feature_views[name], &defined.feature_views[name]);
        assert_eq!(got.kind, ViewKind::Stream);
        assert_eq!((&got.aggregations, got.tiling_hop, &got.tags), (&want.aggregations, want.tiling_hop, &want.tags));
        assert_eq!(got.push_source_name(), Some("readings"));
    }
    assert_eq!(reg.source_for_stream("sensor-readings"), Some("readings_kafka"));
    assert_eq!(reg.source_for_stream("sensor-stream"), Some("readings_kinesis"));
    assert_eq!(reg.feature_views["sensor_kafka"].offline_source().unwrap().name, "readings_file");

    // Feast's SDK reads them as StreamFeatureViews with the same aggregations.
    let repo = FeastRepo { dir, redis_addr: redis.addr() };
    let out = repo.python(
        r#"
import json
from feast import FeatureStore
fs = FeatureStore(repo_path=".")
views = {}
for name in ["sensor_minute", "sensor_hour"]:
    v = fs.get_stream_feature_view(name)
    views[name] = {
        "type": type(v).__name__,
        "source": type(v.stream_source).__name__,
        "timestamp_field": v.timestamp_field,
        "features": [[f.name, str(f.dtype)] for f in v.features],
        "aggregations": [
            [a.column, a.function, a.time_window.total_seconds(),
             a.slide_interval.total_seconds() if a.slide_interval else None, a.name]
            for a in v.aggregations
        ],
    }
k = fs.get_stream_feature_view("sensor_kafka")
s = fs.get_feature_view("sensor_kinesis")
views["kafka"] = [type(k.stream_source).__name__, k.stream_source.kafka_options.topic,
    k.stream_source.kafka_options.kafka_bootstrap_servers, type(k.stream_source.kafka_options.message_format).__name__,
    k.stream_source.batch_source.name, k.batch_source.name, k.stream_source.timestamp_field]
views["kinesis"] = [type(s.stream_source).__name__, s.stream_source.kinesis_options.stream_name,
    s.stream_source.kinesis_options.region, type(s.stream_source.kinesis_options.record_format).__name__]
print(json.dumps(views))
"#,
    );
    let j: serde_json::Value = serde_json::from_str(out.trim().lines().last().unwrap()).unwrap();
    assert_eq!(j["sensor_minute"]["type"], "StreamFeatureView");
    assert_eq!(j["sensor_minute"]["source"], "PushSource");
    assert_eq!(
        j["kafka"],
        serde_json::json!([
            "KafkaSource",
            "sensor-readings",
            "broker:9092",
            "JsonFormat",
            "readings_file",
            "readings_file",
            "event_timestamp"
        ])
    );
    assert_eq!(j["kinesis"], serde_json::json!(["KinesisSource", "sensor-stream", "eu-west-1", "JsonFormat"]));
    assert_eq!(j["sensor_minute"]["timestamp_field"], "event_timestamp");
    // The schema declares every aggregation's output (Feast serves only declared features).
    assert_eq!(
        j["sensor_minute"]["features"],
        serde_json::json!([
            ["reading", "Float64"],
            ["avg_reading_60s", "Float64"],
            ["min_reading_60s", "Float64"],
            ["max_reading_60s", "Float64"],
            ["std_reading_60s", "Float64"],
            ["count_reading_60s", "Int64"]
        ])
    );
    // Feast's SDK fills a missing slide interval with the window (a tumbling window).
    assert_eq!(j["sensor_minute"]["aggregations"][3], serde_json::json!(["reading", "std", 60.0, 60.0, ""]));
    assert_eq!(
        j["sensor_hour"]["aggregations"],
        serde_json::json!([
            ["reading", "avg", 3600.0, 300.0, ""],
            ["reading", "max", 3600.0, 300.0, ""],
            ["reading", "count", 3600.0, 300.0, "readings_1h"],
            ["reading", "count_distinct", 3600.0, 300.0, "distinct_readings_1h"]
        ])
    );
}
