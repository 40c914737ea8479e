//! Shared by the push tests: the example driver repo's registry, services over a store, and
//! Kinesis events built from records.

#![allow(dead_code)]

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use larder::api::Services;
use larder::aws::Aws;
use larder::config::RepoConfig;
use larder::online::OnlineStore;
use larder::push::PushSettings;
use larder::push::dead_letter::DeadLetterSink;
use larder::registry::{Registry, RegistryCache, yaml};
use larder_tests::repo_root;
use push_function::App;
use serde_json::{Value as Json, json};

pub const PROJECT: &str = "driver_demo";
pub const PUSH_SOURCE: &str = "driver_stats_push_source";

pub fn driver_registry() -> Registry {
    let text = std::fs::read_to_string(repo_root().join("examples/driver/features.yaml")).unwrap();
    yaml::parse(&text, "features.yaml", PROJECT, 3).unwrap()
}

pub fn config(redis_addr: Option<&str>) -> RepoConfig {
    RepoConfig::load_with(None, &|name| match name {
        "LARDER_PROJECT" => Some(PROJECT.into()),
        "LARDER_REGISTRY" => Some("/nonexistent/registry.db".into()),
        "LARDER_REDIS_CONNECTION_STRING" => redis_addr.map(str::to_string),
        _ => None,
    })
    .unwrap()
}

pub fn services(config: RepoConfig, store: Arc<dyn OnlineStore>) -> Services {
    Services::new(config, RegistryCache::fixed(driver_registry()), store)
}

/// The push function over the driver registry, `store` and `settings`.
pub fn app(
    config: RepoConfig,
    store: Arc<dyn OnlineStore>,
    settings: PushSettings,
    sink: Arc<dyn DeadLetterSink>,
) -> App {
    App::new(services(config, store), settings, &Aws::new(), sink)
}

pub fn default_source() -> PushSettings {
    PushSettings { default_source: Some(PUSH_SOURCE.into()), ..Default::default() }
}

/// A flat row of the driver example.
pub fn row(driver: i64, ts: &str, rate: f64) -> Json {
    json!({"driver_id": driver, "event_timestamp": ts, "conv_rate": rate, "acc_rate": 0.5, "avg_daily_trips": 3,
           "miles_driven": 1.5, "rating": 4.5, "city": "sf", "is_active": true})
}

/// A Kinesis event of `records` (sequence number, partition key, data) from `stream`.
pub fn kinesis_event(stream: &str, records: &[(String, String, Vec<u8>)]) -> String {
    let arn = format!("arn:aws:kinesis:us-east-1:123456789012:stream/{stream}");
    let records: Vec<Json> = records
        .iter()
        .map(|(seq, pk, data)| {
            json!({
                "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": pk, "sequenceNumber": seq,
                            "data": B64.encode(data), "approximateArrivalTimestamp": 1767261600.0},
                "eventSource": "aws:kinesis", "eventVersion": "1.0", "eventID": format!("shardId-000000000000:{seq}"),
                "eventName": "aws:kinesis:record", "awsRegion": "us-east-1", "eventSourceARN": arn,
            })
        })
        .collect();
    json!({ "Records": records }).to_string()
}
