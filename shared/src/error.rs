//! The one error type of Larder.
//!
//! Every variant maps to an HTTP status and a stable machine-readable code, so each edge (HTTP,
//! Lambda stream handlers, the CLI) can report it without inspecting message text. Messages are
//! written for the person who sent the request: they name the object, column, row, file, key or
//! line that was wrong, and never contain internal `Debug` output.

use std::fmt;

/// What kind of registry object a [`Error::NotFound`] refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    Entity,
    FeatureView,
    Feature,
    FeatureService,
    DataSource,
    PushSource,
    Project,
    Route,
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ObjectKind::Entity => "entity",
            ObjectKind::FeatureView => "feature view",
            ObjectKind::Feature => "feature",
            ObjectKind::FeatureService => "feature service",
            ObjectKind::DataSource => "data source",
            ObjectKind::PushSource => "push source",
            ObjectKind::Project => "project",
            ObjectKind::Route => "route",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `feature_store.yaml`, `features.yaml` or an environment override is wrong.
    #[error("{0}")]
    Config(String),

    /// The request body is not valid JSON, or not the shape the endpoint takes.
    #[error("{0}")]
    BadRequest(String),

    /// A named registry object (or an HTTP route) does not exist.
    #[error("{}", not_found_message(*kind, name, project))]
    NotFound { kind: ObjectKind, name: String, project: String },

    /// The route exists but not for this HTTP method.
    #[error("{0}")]
    MethodNotAllowed(String),

    /// A value does not fit the declared type (entity key column, pushed column, parquet column).
    #[error("{0}")]
    InvalidValue(String),

    /// The request is well formed but asks for something Larder does not do.
    #[error("{0}")]
    Unsupported(String),

    /// The request exceeds a configured limit (body size, entity rows).
    #[error("{0}")]
    TooLarge(String),

    /// A dependency (Redis, S3, Kinesis) cannot be reached or timed out. Retrying may succeed.
    #[error("{0}")]
    Unavailable(String),

    /// A conditional write lost to a concurrent writer more times than the retry budget allows.
    #[error("{0}")]
    Conflict(String),

    /// A stored object (registry.db, parquet file) could not be read or is corrupt.
    #[error("{0}")]
    Storage(String),

    /// A bug or an invariant broken; never a client's fault.
    #[error("{0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn not_found_message(kind: ObjectKind, name: &str, project: &str) -> String {
    match kind {
        ObjectKind::Route => format!("no route {name}: Larder serves GET /health, POST /get-online-features, /push, /write-to-online-store, /materialize, /materialize-incremental"),
        _ => format!("{kind} '{name}' does not exist in project '{project}'"),
    }
}

impl Error {
    /// The stable code clients can match on. Never change an existing code.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Config(_) => "config_invalid",
            Error::BadRequest(_) => "bad_request",
            Error::NotFound { kind, .. } => match kind {
                ObjectKind::Entity => "entity_not_found",
                ObjectKind::FeatureView => "feature_view_not_found",
                ObjectKind::Feature => "feature_not_found",
                ObjectKind::FeatureService => "feature_service_not_found",
                ObjectKind::DataSource => "data_source_not_found",
                ObjectKind::PushSource => "push_source_not_found",
                ObjectKind::Project => "project_not_found",
                ObjectKind::Route => "route_not_found",
            },
            Error::MethodNotAllowed(_) => "method_not_allowed",
            Error::InvalidValue(_) => "invalid_value",
            Error::Unsupported(_) => "unsupported",
            Error::TooLarge(_) => "too_large",
            Error::Unavailable(_) => "unavailable",
            Error::Conflict(_) => "conflict",
            Error::Storage(_) => "storage_error",
            Error::Internal(_) => "internal",
        }
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> u16 {
        match self {
            Error::BadRequest(_) => 400,
            // Feast answers 422 for an unknown push source; everything else missing is a 404.
            Error::NotFound { kind: ObjectKind::PushSource, .. } => 422,
            Error::NotFound { .. } => 404,
            Error::MethodNotAllowed(_) => 405,
            Error::Conflict(_) => 409,
            Error::TooLarge(_) => 413,
            Error::InvalidValue(_) | Error::Unsupported(_) => 422,
            Error::Unavailable(_) => 503,
            Error::Config(_) | Error::Storage(_) | Error::Internal(_) => 500,
        }
    }

    /// True when retrying the same operation later may succeed (a dependency was down).
    /// Stream handlers use it to tell a poison record from a transient failure.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Unavailable(_) | Error::Conflict(_))
    }

    pub fn not_found(kind: ObjectKind, name: impl Into<String>, project: impl Into<String>) -> Self {
        Error::NotFound { kind, name: name.into(), project: project.into() }
    }

    /// The `{"error": {"code", "message"}}` body every HTTP error is answered with.
    pub fn to_json_body(&self) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "error": { "code": self.code(), "message": self.to_string() }
        }))
        .unwrap_or_default()
    }
}

#[allow(unused_macros)]
macro_rules! bail {
    ($variant:ident, $($arg:tt)*) => {
        return Err($crate::error::Error::$variant(format!($($arg)*)))
    };
}
#[allow(unused_imports)]
pub(crate) use bail;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_codes_are_stable() {
        let e = Error::not_found(ObjectKind::FeatureView, "fv", "p");
        assert_eq!((e.status(), e.code()), (404, "feature_view_not_found"));
        assert_eq!(e.to_string(), "feature view 'fv' does not exist in project 'p'");
        let e = Error::not_found(ObjectKind::PushSource, "src", "p");
        assert_eq!(e.status(), 422);
        assert_eq!(Error::Unavailable("x".into()).status(), 503);
        assert!(Error::Unavailable("x".into()).is_transient());
        assert!(!Error::InvalidValue("x".into()).is_transient());
        let body: serde_json::Value =
            serde_json::from_slice(&Error::TooLarge("too many rows".into()).to_json_body()).unwrap();
        assert_eq!(body["error"]["code"], "too_large");
        assert_eq!(body["error"]["message"], "too many rows");
    }
}
