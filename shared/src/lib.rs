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
//! - [`error`]: the one error type; every variant has an HTTP status and a stable code.

pub mod aws;
pub mod config;
pub mod error;
pub mod keys;
pub mod proto;
pub mod registry;
pub mod time;
pub mod value;

pub use error::{Error, Result};
