//! Larder: a Feast-compatible serving data plane.
//!
//! This crate is the whole domain. The Lambda functions and the `larder` CLI are thin adapters
//! over it; nothing here depends on a Lambda or HTTP-framework type.
//!
//! - [`config`]: `feature_store.yaml` (Feast's keys) and `LARDER_*` environment overrides.
//! - [`registry`]: entities, feature views, sources and services; Feast's `registry.db` and
//!   Larder's `features.yaml`; loading and conditional saving (file or S3); caching.
//! - [`value`]: Feast value types and their conversions (protobuf bytes, JSON, Arrow).
//! - [`keys`]: entity key serialization and Redis hash field names.
//! - [`online`]: the online store trait, Redis, and an in-memory store with identical semantics.
//! - [`retrieval`], [`push`], [`materialize`]: the three operations, plain async functions
//!   over the traits above; [`offline`] reads parquet history for materialization.
//! - [`error`]: the one error type; every variant has an HTTP status and a stable code.

pub mod api;
pub mod aws;
pub mod config;
pub mod error;
pub mod example_data;
pub mod keys;
pub mod materialize;
pub mod offline;
pub mod online;
pub mod percent;
pub mod proto;
pub mod push;
pub mod registry;
pub mod retrieval;
pub mod retry;
pub mod storage;
pub mod time;
pub mod value;

pub use error::{Error, Result};

/// Every Larder binary (the Lambda functions, the CLI, benchmarks and tests) allocates through
/// mimalloc: a push or a materialization allocates and frees small buffers per row, and with
/// glibc's malloc that was about 40% of a Kinesis batch's time (perf on `push-bench`).
/// Declared here, once, so no binary can forget it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
