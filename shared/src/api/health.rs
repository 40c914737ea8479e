//! `GET /health`: 200 when the registry is loaded and the online store answers; 503 otherwise,
//! saying which. A registry refresh that failed is reported while the last good one serves.

use async_trait::async_trait;

use super::{ApiResponse, Call, Routes};
use crate::error::Result;

pub struct Health;

#[async_trait]
impl Routes for Health {
    fn routes(&self) -> &'static [(&'static str, &'static str)] {
        &[("GET", "/health")]
    }

    /// Open to every caller: it says whether the service is up, nothing about features.
    fn needs_caller(&self) -> bool {
        false
    }

    async fn answer(&self, call: &Call<'_>) -> Result<ApiResponse> {
        let services = call.services;
        let registry = services.registry.health();
        let store = services.store.ping().await;
        let healthy = store.is_ok();
        let body = serde_json::json!({
            "status": if healthy { "ok" } else { "unavailable" },
            "project": services.config.project,
            "registry": {
                "version": registry.version,
                "checked_seconds_ago": registry.age.as_secs(),
                "last_refresh_error": registry.last_error,
            },
            "online_store": {
                "kind": services.store.describe(),
                "error": store.err().map(|e| e.to_string()),
            },
        });
        Ok(ApiResponse::json(if healthy { 200 } else { 503 }, serde_json::to_vec(&body).unwrap_or_default()))
    }
}
