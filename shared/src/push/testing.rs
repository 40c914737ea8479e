//! A small registry exercising every push path: one push source feeding two views, a source
//! with a field mapping, a view without entities.

use std::sync::Arc;

use crate::registry::{Registry, RegistryCache, yaml};

pub const PROJECT: &str = "push_test";

pub const DEFINITIONS: &str = r#"
entities:
  driver: {join_key: driver_id, type: Int64}
  customer: {join_key: customer_id, type: String}
sources:
  driver_stats: {type: file, path: data/driver_stats.parquet, timestamp_field: event_timestamp, created_timestamp_column: created}
  driver_push: {type: push, batch_source: driver_stats}
  customer_log:
    type: file
    path: data/customers.parquet
    timestamp_field: ts
    field_mapping: {rate_col: rate, cust: customer_id}
  customer_push: {type: push, batch_source: customer_log}
  global_log: {type: file, path: data/global.parquet, timestamp_field: event_timestamp}
  global_push: {type: push, batch_source: global_log}
feature_views:
  driver_fresh:
    entities: [driver]
    source: driver_push
    features: {conv_rate: Float32, trips: Int64, city: String}
  driver_rates:
    entities: [driver]
    source: driver_push
    features: {conv_rate: Float32}
  driver_batch:
    entities: [driver]
    source: driver_stats
    features: {conv_rate: Float32}
  customer_fresh:
    entities: [customer]
    source: customer_push
    features: {rate: Float64, tags: Array(String)}
  global_stats:
    source: global_push
    features: {total: Int64}
"#;

pub fn registry() -> Registry {
    yaml::parse(DEFINITIONS, "features.yaml", PROJECT, 3).expect("test definitions parse")
}

pub fn registry_cache() -> Arc<RegistryCache> {
    RegistryCache::fixed(registry())
}
