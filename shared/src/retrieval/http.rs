//! `POST /get-online-features`.

use crate::api::{ApiRequest, ApiResponse, Services};
use crate::error::{Error, Result};

pub async fn get_online_features(_services: &Services, _req: &ApiRequest<'_>) -> Result<ApiResponse> {
    Err(Error::Unsupported("get-online-features is being written".into()))
}
