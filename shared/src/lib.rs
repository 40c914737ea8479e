//! Larder: a Feast-compatible serving data plane.
//!
//! This crate is the whole domain. The Lambda functions and the `larder` CLI are thin adapters
//! over it; nothing here depends on a Lambda type or an HTTP framework. docs/architecture.md
//! draws the modules and which way each dependency runs.
//!
//! - [`api`]: the HTTP API as a framework-free [`api::Router`] of route groups.
//! - [`retrieval`], [`push`], [`materialize`]: the three operations, plain async functions
//!   over the traits below; they know nothing of HTTP.
//! - [`aggregate`]: stream window aggregations: tiles written by push, merged on read.
//! - [`online`]: the online store trait, Redis, and an in-memory store with identical semantics.
//! - [`freshness`]: how old each view's stored features are (a sample of keys, the last
//!   materialized interval), for `larder freshness`.
//! - [`offline`]: parquet history for materialization.
//! - [`registry`]: entities, feature views, sources and services; Feast's `registry.db` and
//!   Larder's `features.yaml`; conditional saving; caching.
//! - [`storage`]: where the registry and parquet files live (local or S3), behind two traits.
//! - [`config`]: `feature_store.yaml` (Feast's keys) and `LARDER_*` environment overrides.
//! - [`value`], [`keys`], [`proto`], [`time`]: Feast's wire formats.
//! - [`aws`]: the AWS SDK clients a binary's `main` builds and passes down.
//! - [`access`]: who the caller is, and Feast's permissions enforced for them.
//! - [`telemetry`]: metric names and recording (Prometheus in `larder serve`, EMF in Lambda).
//! - [`error`]: the one error type; every variant has an HTTP status and a stable code.

pub mod access;
pub mod aggregate;
pub mod api;
pub mod aws;
pub mod config;
pub mod error;
pub mod example_data;
pub mod freshness;
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
pub mod telemetry;
pub mod time;
pub mod value;

pub use error::{Error, Result};

/// Every Larder binary (the Lambda functions, the CLI, benchmarks and tests) allocates through
/// mimalloc: a push or a materialization allocates and frees small buffers per row, and with
/// glibc's malloc that was about 40% of a Kinesis batch's time (perf on `push-bench`).
/// Declared here, once, so no binary can forget it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
