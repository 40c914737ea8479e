//! `POST /materialize` and `POST /materialize-incremental` with Feast's request JSON
//! (docs/compatibility.md §4.2): `{"start_ts", "end_ts", "feature_views", "disable_event_timestamp"}`
//! and `{"end_ts", "feature_views"}`. Success is 200 with the body `null`, as Feast answers.
//! Unknown fields are ignored, as Pydantic does. The run happens in this process, then the
//! served registry is refreshed so the new interval shows at once.

use async_trait::async_trait;
use serde::Deserialize;

use super::{ApiResponse, Call, Routes};
use crate::access::Resource;
use crate::error::{Error, Result};
use crate::materialize::{self, Options, Request};
use crate::registry::AuthzAction;
use crate::time::EventTime;

pub struct Materialize;

#[derive(Deserialize)]
struct Body {
    #[serde(default)]
    start_ts: Option<String>,
    #[serde(default)]
    end_ts: Option<String>,
    #[serde(default)]
    feature_views: Option<Vec<String>>,
    #[serde(default)]
    disable_event_timestamp: bool,
    #[serde(default)]
    version: Option<String>,
}

fn time(field: &str, text: Option<&str>) -> Result<EventTime> {
    let text = text.ok_or_else(|| Error::BadRequest(format!("{field} is required")))?;
    EventTime::parse(text).map_err(|e| Error::BadRequest(format!("{field}: {e}")))
}

/// Parses a request body into what to materialize.
fn parse(body: &[u8], incremental: bool) -> Result<Request> {
    let b: Body = crate::error::parse_json_object(body, "materialize request")?;
    if b.version.is_some() {
        return Err(Error::Unsupported(
            "version: materializing a specific feature view version is not supported by Larder".into(),
        ));
    }
    let views = b.feature_views;
    if incremental {
        return Ok(Request::Incremental { end: time("end_ts", b.end_ts.as_deref())?, views });
    }
    if b.disable_event_timestamp {
        return Ok(Request::Range { start: EventTime::EPOCH, end: EventTime::now(), views });
    }
    Ok(Request::Range {
        start: time("start_ts", b.start_ts.as_deref())?,
        end: time("end_ts", b.end_ts.as_deref())?,
        views,
    })
}

#[async_trait]
impl Routes for Materialize {
    fn routes(&self) -> &'static [(&'static str, &'static str)] {
        &[("POST", "/materialize"), ("POST", "/materialize-incremental")]
    }

    async fn answer(&self, call: &Call<'_>) -> Result<ApiResponse> {
        let (services, req) = (call.services, call.req);
        if req.query_param("async").is_some_and(|v| v == "true" || v == "1") {
            return Err(Error::Unsupported(
                "async=true: run long materializations with the materialize Lambda or `larder materialize`".into(),
            ));
        }
        let request = parse(req.body, call.path == "/materialize-incremental")?;
        if call.user.is_some() {
            // WRITE_ONLINE on each view written: the ones named, or every online view.
            let registry = services.registry.get();
            let views: Vec<Resource<'_>> = match &request.views() {
                Some(names) => {
                    names.iter().filter_map(|n| registry.feature_views.get(n)).map(|v| Resource::View(v)).collect()
                }
                None => registry.feature_views.values().filter(|v| v.online).map(|v| Resource::View(v)).collect(),
            };
            call.authorize(&registry, &views, &[AuthzAction::WriteOnline])?;
        }
        let (config, storage, store) = (&services.config, &services.storage, services.store.as_ref());
        let report = materialize::materialize(config, storage, store, &request, &Options::default()).await?;
        if let Err(e) = services.registry.refresh().await {
            tracing::warn!(error = %e.report(), "registry refresh after materialization failed");
        }
        tracing::info!(
            views = report.views.len(),
            rows_read = report.rows_read,
            seconds = report.seconds,
            "materialized over HTTP"
        );
        Ok(ApiResponse::json(200, b"null".to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_feast_bodies() {
        let r = parse(br#"{"start_ts":"2024-01-01T00:00:00","end_ts":"2024-01-02 00:00:00+00:00","feature_views":["a"],"extra":1}"#, false)
            .unwrap();
        assert_eq!(
            r,
            Request::Range {
                start: EventTime::parse("2024-01-01T00:00:00Z").unwrap(),
                end: EventTime::parse("2024-01-02T00:00:00Z").unwrap(),
                views: Some(vec!["a".into()])
            }
        );
        let r = parse(br#"{"end_ts":"2024-01-02T00:00:00Z","feature_views":null}"#, true).unwrap();
        assert_eq!(r, Request::Incremental { end: EventTime::parse("2024-01-02T00:00:00Z").unwrap(), views: None });
        let r = parse(br#"{"disable_event_timestamp":true}"#, false).unwrap();
        assert!(matches!(r, Request::Range { start: EventTime::EPOCH, .. }));

        let e = parse(br#"{"end_ts":"2024-01-02T00:00:00Z"}"#, false).unwrap_err();
        assert_eq!((e.status(), e.to_string()), (400, "start_ts is required".to_string()));
        let e = parse(br#"{"start_ts":"2024-01-01","end_ts":"soon"}"#, false).unwrap_err();
        assert!(e.to_string().starts_with("end_ts:") && e.to_string().contains("soon"), "{e}");
        assert_eq!(parse(b"{", true).unwrap_err().status(), 400);
        assert_eq!(parse(br#"{"end_ts":"2024-01-01","version":"v2"}"#, true).unwrap_err().status(), 422);
    }
}
