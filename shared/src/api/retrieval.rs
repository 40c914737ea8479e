//! `POST /get-online-features`.

use async_trait::async_trait;

use super::{ApiResponse, Call, Routes};
use crate::access::Resource;
use crate::error::Result;
use crate::registry::{AuthzAction, Registry};
use crate::retrieval::{Request, get_online_features};
use crate::time::EventTime;

pub struct Retrieval;

#[async_trait]
impl Routes for Retrieval {
    fn routes(&self) -> &'static [(&'static str, &'static str)] {
        &[("POST", "/get-online-features")]
    }

    async fn answer(&self, call: &Call<'_>) -> Result<ApiResponse> {
        let services = call.services;
        let request = Request::parse(call.req.body)?;
        let registry = services.registry.get();
        if call.user.is_some() {
            call.authorize(&registry, &resources(&registry, &request)?, &[AuthzAction::ReadOnline])?;
        }
        let max_rows = services.limits.max_entity_rows;
        let response =
            get_online_features(&registry, services.store.as_ref(), &request, max_rows, EventTime::now()).await?;
        Ok(ApiResponse::json(200, response.to_json()))
    }
}

/// What a request reads, as Feast checks it: the feature service when it names one, else every
/// view its features come from. A reference to nothing is left to the request's own error.
fn resources<'r>(registry: &'r Registry, request: &Request) -> Result<Vec<Resource<'r>>> {
    if let Some(name) = &request.feature_service {
        return Ok(vec![Resource::Service(registry.service(name)?)]);
    }
    let mut views: Vec<Resource<'r>> = Vec::new();
    for feature in &request.features {
        let Some((name, _)) = feature.split_once(':') else { continue };
        if let Some(view) = registry.feature_views.get(name)
            && !views.iter().any(|r| matches!(r, Resource::View(v) if v.name == name))
        {
            views.push(Resource::View(view));
        }
    }
    Ok(views)
}
