//! `POST /get-online-features`.

use async_trait::async_trait;

use super::{ApiRequest, ApiResponse, Routes, Services};
use crate::error::Result;
use crate::retrieval::{Request, get_online_features};
use crate::time::EventTime;

pub struct Retrieval;

#[async_trait]
impl Routes for Retrieval {
    fn routes(&self) -> &'static [(&'static str, &'static str)] {
        &[("POST", "/get-online-features")]
    }

    async fn answer(&self, services: &Services, _: &'static str, req: &ApiRequest<'_>) -> Result<ApiResponse> {
        let request = Request::parse(req.body)?;
        let registry = services.registry.get();
        let max_rows = services.limits.max_entity_rows;
        let response =
            get_online_features(&registry, services.store.as_ref(), &request, max_rows, EventTime::now()).await?;
        Ok(ApiResponse::json(200, response.to_json()))
    }
}
