//! The registry a long-lived process serves from.
//!
//! Loaded once at start (a failure there is fatal: nothing can be served). Afterwards a
//! request that finds the registry older than `cache_ttl_seconds` starts one background
//! refresh and is answered from the registry it has: a refresh never blocks a request. A
//! refresh is a conditional read (an unchanged S3 object costs a 304). A registry that fails to
//! load or parse is reported by [`RegistryCache::health`] and the last good one stays in use.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use super::convert;
use super::model::Registry;
use super::store::RegistryStore;
use crate::config::RepoConfig;
use crate::error::Result;
use crate::storage::Storage;

struct State {
    registry: Arc<Registry>,
    version: String,
    checked_at: Instant,
    /// When the store last confirmed this copy is current (a load, or a refresh that found it
    /// unchanged or replaced it): the copy's age. A failing refresh does not move it.
    confirmed_at: Instant,
    last_error: Option<String>,
}

pub struct RegistryCache {
    store: RegistryStore,
    project: String,
    key_version: u32,
    ttl: Option<Duration>,
    state: RwLock<State>,
    refreshing: AtomicBool,
}

/// What `/health` reports about the registry.
#[derive(Debug, Clone)]
pub struct RegistryHealth {
    pub version: String,
    pub age: Duration,
    pub last_error: Option<String>,
}

impl RegistryCache {
    pub async fn load(cfg: &RepoConfig, storage: &Storage) -> Result<Arc<Self>> {
        let store = RegistryStore::new(&cfg.registry.path, storage)?;
        let (registry, version) = super::load_from(&store, cfg).await?;
        Ok(Arc::new(RegistryCache {
            store,
            project: cfg.project.clone(),
            key_version: cfg.entity_key_serialization_version,
            ttl: (cfg.registry.cache_ttl_seconds > 0).then(|| Duration::from_secs(cfg.registry.cache_ttl_seconds)),
            state: RwLock::new(State {
                registry: Arc::new(registry),
                version,
                checked_at: Instant::now(),
                confirmed_at: Instant::now(),
                last_error: None,
            }),
            refreshing: AtomicBool::new(false),
        }))
    }

    /// A cache over a registry already in memory that never refreshes (tests, `--memory`).
    pub fn fixed(registry: Registry) -> Arc<Self> {
        Arc::new(RegistryCache {
            store: RegistryStore::new("/dev/null", &Storage::default()).expect("a local path"),
            project: registry.project.clone(),
            key_version: 3,
            ttl: None,
            state: RwLock::new(State {
                registry: Arc::new(registry),
                version: String::new(),
                checked_at: Instant::now(),
                confirmed_at: Instant::now(),
                last_error: None,
            }),
            refreshing: AtomicBool::new(false),
        })
    }

    /// The registry to serve this request with. Starts a background refresh when it is stale.
    pub fn get(self: &Arc<Self>) -> Arc<Registry> {
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        let stale = self.ttl.is_some_and(|ttl| state.checked_at.elapsed() >= ttl);
        let registry = state.registry.clone();
        drop(state);
        if stale && !self.refreshing.swap(true, Ordering::AcqRel) {
            let this = Arc::clone(self);
            tokio::spawn(async move {
                let _ = this.refresh().await;
                this.refreshing.store(false, Ordering::Release);
            });
        }
        registry
    }

    /// Checks the store for a newer registry now. Returns whether it changed.
    pub async fn refresh(&self) -> Result<bool> {
        let known = self.state.read().unwrap_or_else(|p| p.into_inner()).version.clone();
        let outcome = match self.store.read_if_changed(&known).await {
            Ok(None) => Ok(None),
            Ok(Some(v)) => {
                convert::registry_from_bytes(&v.bytes, &self.project, self.key_version).map(|r| Some((r, v.version)))
            }
            Err(e) => Err(e),
        };
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        state.checked_at = Instant::now();
        match outcome {
            Ok(None) => {
                state.confirmed_at = state.checked_at;
                state.last_error = None;
                Ok(false)
            }
            Ok(Some((registry, version))) => {
                tracing::info!(registry = %self.store.location(), version = %version, "registry reloaded");
                state.registry = Arc::new(registry);
                state.version = version;
                state.confirmed_at = state.checked_at;
                state.last_error = None;
                Ok(true)
            }
            Err(e) => {
                tracing::warn!(registry = %self.store.location(), error = %e.report(), "registry refresh failed; serving the last good one");
                crate::telemetry::registry_refresh_error();
                state.last_error = Some(e.to_string());
                Err(e)
            }
        }
    }

    pub fn health(&self) -> RegistryHealth {
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        RegistryHealth {
            version: state.version.clone(),
            age: state.confirmed_at.elapsed(),
            last_error: state.last_error.clone(),
        }
    }
}
