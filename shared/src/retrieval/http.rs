//! `POST /get-online-features`.

use crate::api::{ApiRequest, ApiResponse, Services};
use crate::error::Result;
use crate::time::EventTime;

use super::Request;

pub async fn get_online_features(services: &Services, req: &ApiRequest<'_>) -> Result<ApiResponse> {
    let request = Request::parse(req.body)?;
    let registry = services.registry.get();
    let response =
        super::get_online_features(&registry, services.store.as_ref(), &request, &services.limits, EventTime::now())
            .await?;
    Ok(ApiResponse::json(200, response.to_json()))
}
