//! The registry: entities, feature views, data sources and feature services of a project.
//!
//! - [`model`]: the types the data plane works with, with each view's Redis layout precomputed;
//! - [`aggregation`]: a stream view's window aggregations, their feature names and tile sizes;
//! - [`convert`]: Feast's `registry.db` protobuf to and from the model;
//! - [`yaml`]: Larder's hand-written `features.yaml`;
//! - [`store`]: reading and conditionally writing `registry.db` (wherever [`crate::storage`] keeps it);
//! - [`edit`]: `apply` and materialization bookkeeping on the serialized registry, keeping
//!   whatever Larder does not own byte for byte;
//! - [`cache`]: the registry a server holds, refreshed in the background.

pub mod aggregation;
pub mod cache;
pub mod convert;
pub mod edit;
pub mod model;
pub mod permission;
pub mod store;
pub mod yaml;

pub use cache::RegistryCache;
pub use edit::{Action, Interval, Plan};
pub use model::*;
pub use store::RegistryStore;

use crate::config::RepoConfig;
use crate::error::{Error, Result};
use crate::storage::Storage;
use crate::time::EventTime;

/// Loads the project's registry named by the configuration.
pub async fn load(cfg: &RepoConfig, storage: &Storage) -> Result<Registry> {
    let store = RegistryStore::new(&cfg.registry.path, storage)?;
    Ok(load_from(&store, cfg).await?.0)
}

/// Loads the project's registry from `store`, with the version it was read at.
pub async fn load_from(store: &RegistryStore, cfg: &RepoConfig) -> Result<(Registry, String)> {
    let current = store.read_existing().await?;
    let registry = convert::registry_from_bytes(&current.bytes, &cfg.project, cfg.entity_key_serialization_version)?;
    Ok((registry, current.version))
}

/// Reads `features.yaml` from the repo directory.
pub fn load_definitions(cfg: &RepoConfig) -> Result<Registry> {
    let path = cfg.repo_dir.join(yaml::FILE_NAME);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Error::Config(format!(
            "cannot read {}: {e} (feature definitions live in {} beside feature_store.yaml)",
            path.display(),
            yaml::FILE_NAME
        ))
    })?;
    yaml::parse(&text, &path.display().to_string(), &cfg.project, cfg.entity_key_serialization_version)
}

/// `larder plan` (`dry_run`) and `larder apply`: makes the registry match `features.yaml`.
/// The write is conditional and retried, so a concurrent materialization is never lost.
pub async fn apply(cfg: &RepoConfig, storage: &Storage, dry_run: bool) -> Result<Plan> {
    let desired = load_definitions(cfg)?;
    let store = RegistryStore::new(&cfg.registry.path, storage)?;
    let version = cfg.entity_key_serialization_version;
    if dry_run {
        let current = store.read().await?;
        let (_, plan) = edit::apply(current.as_ref().map(|c| c.bytes.as_slice()), &desired, version, EventTime::now())?;
        return Ok(plan);
    }
    let mut plan = Plan::default();
    store
        .update(|current| {
            let (bytes, p) = edit::apply(current, &desired, version, EventTime::now())?;
            plan = p;
            Ok(bytes)
        })
        .await?;
    Ok(plan)
}

/// Records completed materializations in the registry (conditional, retried on conflict).
pub async fn record_materialization(cfg: &RepoConfig, storage: &Storage, intervals: &[Interval]) -> Result<()> {
    let store = RegistryStore::new(&cfg.registry.path, storage)?;
    store
        .update(|current| {
            let current =
                current.ok_or_else(|| Error::storage(format!("registry {} does not exist", store.location())))?;
            edit::record_materialization(current, &cfg.project, intervals, EventTime::now()).map(Some)
        })
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests;
