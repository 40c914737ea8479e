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

    /// A named registry object does not exist.
    #[error("{kind} '{name}' does not exist in project '{project}'")]
    NotFound { kind: ObjectKind, name: String, project: String },

    /// No route answers this method and path here; `served` lists the ones that do.
    #[error("no route {route}: Larder serves {served} here")]
    NoRoute { route: String, served: String },

    /// The caller could not be identified: no credentials, or credentials that do not verify.
    #[error("{0}")]
    Unauthenticated(String),

    /// The caller is known but a permission denies the action (or none grants it).
    #[error("{0}")]
    Forbidden(String),

    /// The route exists but not for this HTTP method.
    #[error("{0}")]
    MethodNotAllowed(String),

    /// A value does not fit the declared type (entity key column, pushed column, parquet column).
    #[error("{0}")]
    InvalidValue(String),

    /// An event arrived later than its stream view's allowed lateness: its window aggregations
    /// were not updated (its plain features were written).
    #[error("{0}")]
    Late(String),

    /// The request is well formed but asks for something Larder does not do.
    #[error("{0}")]
    Unsupported(String),

    /// The request exceeds a configured limit (body size, entity rows).
    #[error("{0}")]
    TooLarge(String),

    /// A dependency (Redis, S3, Kinesis) cannot be reached or timed out. Retrying may succeed.
    #[error("{message}")]
    Unavailable {
        message: String,
        #[source]
        cause: Option<Cause>,
    },

    /// A conditional write lost to a concurrent writer more times than the retry budget allows.
    #[error("{0}")]
    Conflict(String),

    /// A stored object (registry.db, parquet file) could not be read or is corrupt.
    #[error("{message}")]
    Storage {
        message: String,
        #[source]
        cause: Option<Cause>,
    },

    /// A bug or an invariant broken; never a client's fault.
    #[error("{message}")]
    Internal {
        message: String,
        #[source]
        cause: Option<Cause>,
    },
}

/// The underlying error of an [`Error::Unavailable`], [`Error::Storage`] or [`Error::Internal`]:
/// kept for logs ([`Error::report`]), never part of an answer to a client.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

pub type Result<T, E = Error> = std::result::Result<T, E>;

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
            },
            Error::NoRoute { .. } => "route_not_found",
            Error::Unauthenticated(_) => "unauthenticated",
            Error::Forbidden(_) => "forbidden",
            Error::MethodNotAllowed(_) => "method_not_allowed",
            Error::InvalidValue(_) => "invalid_value",
            Error::Late(_) => "late_event",
            Error::Unsupported(_) => "unsupported",
            Error::TooLarge(_) => "too_large",
            Error::Unavailable { .. } => "unavailable",
            Error::Conflict(_) => "conflict",
            Error::Storage { .. } => "storage_error",
            Error::Internal { .. } => "internal",
        }
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> u16 {
        match self {
            Error::BadRequest(_) => 400,
            // Feast answers 422 for an unknown push source; everything else missing is a 404.
            Error::NotFound { kind: ObjectKind::PushSource, .. } => 422,
            Error::NotFound { .. } | Error::NoRoute { .. } => 404,
            Error::Unauthenticated(_) => 401,
            Error::Forbidden(_) => 403,
            Error::MethodNotAllowed(_) => 405,
            Error::Conflict(_) => 409,
            Error::TooLarge(_) => 413,
            Error::InvalidValue(_) | Error::Unsupported(_) | Error::Late(_) => 422,
            Error::Unavailable { .. } => 503,
            Error::Config(_) | Error::Storage { .. } | Error::Internal { .. } => 500,
        }
    }

    /// True when retrying the same operation later may succeed (a dependency was down).
    /// Stream handlers use it to tell a poison record from a transient failure.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Unavailable { .. } | Error::Conflict(_))
    }

    /// A dependency cannot be reached ([`Error::Unavailable`]); add the cause with [`Error::because`].
    pub fn unavailable(message: impl Into<String>) -> Self {
        Error::Unavailable { message: message.into(), cause: None }
    }

    /// A stored object cannot be read or is corrupt ([`Error::Storage`]).
    pub fn storage(message: impl Into<String>) -> Self {
        Error::Storage { message: message.into(), cause: None }
    }

    /// A bug or a broken invariant ([`Error::Internal`]).
    pub fn internal(message: impl Into<String>) -> Self {
        Error::Internal { message: message.into(), cause: None }
    }

    /// Keeps `cause` as this error's source, for logs. The message, which is what a client
    /// sees, does not change. Only the variants that wrap another component's failure keep a
    /// cause; on the others (a client's mistake, described in full by its message) it is
    /// dropped.
    pub fn because(mut self, cause: impl Into<Cause>) -> Self {
        if let Error::Unavailable { cause: c, .. }
        | Error::Storage { cause: c, .. }
        | Error::Internal { cause: c, .. } = &mut self
        {
            *c = Some(cause.into());
        }
        self
    }

    /// The message followed by every cause in the chain (`a: b: c`), for logs only.
    pub fn report(&self) -> String {
        let mut out = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(e) = source {
            let text = e.to_string();
            // An SDK or I/O error is often quoted in the message already; say it once.
            if !out.contains(&text) {
                out.push_str(": ");
                out.push_str(&text);
            }
            source = e.source();
        }
        out
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

/// What a JSON text is when it is not an object ("a JSON array", "a JSON string", ...), or
/// `None` for an object. Every body and event Larder reads is an object; checking first gives
/// an error naming what was sent, where serde would read a struct from an array and answer with
/// the struct's internal name ("invalid length 0, expected struct ... with 6 elements").
pub fn not_an_object(json: &[u8]) -> Option<&'static str> {
    match json.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => None,
        Some(b'[') => Some("a JSON array"),
        Some(b'"') => Some("a JSON string"),
        Some(b'-' | b'0'..=b'9') => Some("a JSON number"),
        Some(b't' | b'f') => Some("a JSON boolean"),
        Some(b'n') => Some("JSON null"),
        Some(_) => Some("not JSON"),
        None => Some("empty"),
    }
}

/// Parses a request body that must be a JSON object of `T`; `what` names it in errors
/// ("push request").
pub fn parse_json_object<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<T> {
    if let Some(kind) = not_an_object(body) {
        return Err(Error::BadRequest(format!("the {what} must be a JSON object; the body is {kind}")));
    }
    serde_json::from_slice(body).map_err(|e| Error::BadRequest(format!("invalid {what}: {e}")))
}

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
        assert_eq!(Error::unavailable("x").status(), 503);
        assert!(Error::unavailable("x").is_transient());
        assert!(!Error::InvalidValue("x".into()).is_transient());
        let body: serde_json::Value =
            serde_json::from_slice(&Error::TooLarge("too many rows".into()).to_json_body()).unwrap();
        assert_eq!(body["error"]["code"], "too_large");
        assert_eq!(body["error"]["message"], "too many rows");
    }

    #[test]
    fn causes_are_kept_for_logs_and_never_answered() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "connection reset by peer");
        let e = Error::unavailable("Redis 127.0.0.1:1 cannot be reached").because(io);
        assert_eq!(e.to_string(), "Redis 127.0.0.1:1 cannot be reached");
        assert_eq!(e.report(), "Redis 127.0.0.1:1 cannot be reached: connection reset by peer");
        let body = String::from_utf8(e.to_json_body()).unwrap();
        assert!(!body.contains("reset by peer"), "{body}");
        // A cause already quoted in the message is not repeated.
        let e = Error::storage("cannot read x: denied").because(std::io::Error::other("denied"));
        assert_eq!(e.report(), "cannot read x: denied");
        // A client's mistake has no cause to keep.
        let e = Error::BadRequest("bad".into()).because(std::io::Error::other("hidden"));
        assert!(std::error::Error::source(&e).is_none());
    }
}
