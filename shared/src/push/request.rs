//! What a push carries, whatever it arrived by: Feast's `PushFeaturesRequest` and
//! `WriteToFeatureStoreRequest` bodies (HTTP, or one stream record), or a flat row object (one
//! stream record), all turned into a [`Push`]: a destination and a [`Frame`].

use serde::Deserialize;
use serde_json::{Map, Value as Json};

use super::frame::Frame;
use crate::error::{Error, Result};

/// Where a push goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// Every feature view whose stream source is this push source (`/push`).
    Source(String),
    /// One feature view (`/write-to-online-store`).
    View(String),
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Destination::Source(s) => write!(f, "push source '{s}'"),
            Destination::View(v) => write!(f, "feature view '{v}'"),
        }
    }
}

/// Feast's `to`: which stores a push writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PushTo {
    #[default]
    Online,
    Offline,
    OnlineAndOffline,
}

impl PushTo {
    pub fn parse(text: Option<&str>) -> Result<PushTo> {
        match text {
            None | Some("online") => Ok(PushTo::Online),
            Some("offline") => Ok(PushTo::Offline),
            Some("online_and_offline") => Ok(PushTo::OnlineAndOffline),
            Some(other) => Err(Error::BadRequest(format!(
                "to: '{other}' is not a push destination (use 'online'; Feast also names 'offline' and 'online_and_offline')"
            ))),
        }
    }

    /// Larder writes the online store only: anything that asks for an offline write is
    /// refused whole, so nothing is half-done.
    pub fn require_online(self) -> Result<()> {
        match self {
            PushTo::Online => Ok(()),
            PushTo::Offline | PushTo::OnlineAndOffline => Err(Error::Unsupported(format!(
                "to: '{}' is not supported yet: Larder writes the online store only (offline push to the batch \
                 source is not implemented); nothing was written. Push with to: 'online'",
                self.as_str()
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PushTo::Online => "online",
            PushTo::Offline => "offline",
            PushTo::OnlineAndOffline => "online_and_offline",
        }
    }
}

/// One push, ready to convert.
#[derive(Debug, Clone, PartialEq)]
pub struct Push {
    pub destination: Destination,
    pub frame: Frame,
    /// `allow_registry_cache: false` asks for the newest registry.
    pub fresh_registry: bool,
    /// An HTTP push's `Idempotency-Key`: a retry with the same key counts its events once in
    /// window aggregations (docs/aggregations.md).
    pub idempotency_key: Option<String>,
}

fn yes() -> bool {
    true
}

/// Feast's `PushFeaturesRequest` body. Unknown fields are ignored, as pydantic does.
#[derive(Debug, Deserialize)]
pub struct PushRequest {
    pub push_source_name: String,
    pub df: Map<String, Json>,
    #[serde(default = "yes")]
    pub allow_registry_cache: bool,
    #[serde(default)]
    pub to: Option<String>,
    /// Applies to on-demand views, which Larder does not run; accepted and ignored.
    #[serde(default = "yes")]
    pub transform_on_write: bool,
}

/// Feast's `WriteToFeatureStoreRequest` body.
#[derive(Debug, Deserialize)]
pub struct WriteRequest {
    pub feature_view_name: String,
    pub df: Map<String, Json>,
    #[serde(default = "yes")]
    pub allow_registry_cache: bool,
    #[serde(default = "yes")]
    pub transform_on_write: bool,
}

/// Python's `json.dumps` writes a missing float as the bare token `NaN` (and `Infinity`), which
/// is not JSON but is what a pandas frame becomes when a Python client posts it (Feast's own
/// server reads it). Outside strings, rewrites `NaN` to `null` (Feast stores NaN as a null) and
/// `Infinity` / `-Infinity` to strings, which float features read. `None` when there is none,
/// so the caller's error stands. Only run after a body failed to parse: no cost otherwise.
fn python_json(body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(body.len() + 16);
    let (mut in_string, mut escaped, mut changed, mut i) = (false, false, false, 0);
    while i < body.len() {
        let b = body[i];
        if in_string {
            out.push(b);
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        let rest = &body[i..];
        let (token, with): (&[u8], &[u8]) = if rest.starts_with(b"NaN") {
            (b"NaN", b"null")
        } else if rest.starts_with(b"-Infinity") {
            (b"-Infinity", b"\"-Infinity\"")
        } else if rest.starts_with(b"Infinity") {
            (b"Infinity", b"\"Infinity\"")
        } else {
            in_string = b == b'"';
            out.push(b);
            i += 1;
            continue;
        };
        out.extend_from_slice(with);
        i += token.len();
        changed = true;
    }
    changed.then_some(out)
}

/// Parses a push or write body, reading Python's `NaN` / `Infinity` tokens when plain JSON fails.
fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<T> {
    crate::error::parse_json_object(body, what).or_else(|e| match python_json(body) {
        Some(rewritten) => crate::error::parse_json_object(&rewritten, what).map_err(|_| e),
        None => Err(e),
    })
}

impl PushRequest {
    pub fn parse(body: &[u8]) -> Result<PushRequest> {
        parse_body(body, "push request")
    }

    pub fn into_push(self) -> Result<Push> {
        PushTo::parse(self.to.as_deref())?.require_online()?;
        Ok(Push {
            destination: Destination::Source(self.push_source_name),
            frame: Frame::from_columns(self.df)?,
            fresh_registry: !self.allow_registry_cache,
            idempotency_key: None,
        })
    }
}

impl WriteRequest {
    pub fn parse(body: &[u8]) -> Result<WriteRequest> {
        parse_body(body, "write-to-online-store request")
    }

    pub fn into_push(self) -> Result<Push> {
        Ok(Push {
            destination: Destination::View(self.feature_view_name),
            frame: Frame::from_columns(self.df)?,
            fresh_registry: !self.allow_registry_cache,
            idempotency_key: None,
        })
    }
}

/// The field of a flat row that names its push source.
pub const PUSH_SOURCE_FIELD: &str = "push_source_name";
/// The field of a flat row that names one feature view instead.
pub const VIEW_FIELD: &str = "feature_view_name";

/// The first bytes of a record the Kinesis Producer Library aggregated.
const KPL_MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];

/// Parses one stream record (a Kinesis record's data, a Kafka record's value):
/// - a Feast push request `{"push_source_name", "df", "to"}`;
/// - a Feast write request `{"feature_view_name", "df"}`;
/// - a flat row `{"driver_id": 1001, "event_timestamp": "...", ...}`, whose push source is its
///   `push_source_name` field (or its `feature_view_name` field names one view), or else
///   `default_source` (the stream's or topic's configured default).
///
/// `origin` names the stream or topic in messages.
pub fn parse_record(data: &[u8], default_source: Option<&str>, origin: &str) -> Result<Push> {
    if data.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::BadRequest(
            "record is empty (a Kafka tombstone has no value): there is nothing to push, and Larder does not delete features".into(),
        ));
    }
    if data.starts_with(&KPL_MAGIC) {
        return Err(Error::BadRequest(
            "record is a Kinesis Producer Library aggregate; Larder reads one JSON object per record \
             (turn KPL aggregation off)"
                .into(),
        ));
    }
    let parsed = serde_json::from_slice(data).or_else(|e| match python_json(data) {
        Some(rewritten) => serde_json::from_slice(&rewritten).map_err(|_| e),
        None => Err(e),
    });
    let mut object: Map<String, Json> = match parsed {
        Ok(Json::Object(o)) => o,
        Ok(other) => {
            let kind = match other {
                Json::Array(_) => "an array",
                Json::String(_) => "a string",
                Json::Number(_) => "a number",
                Json::Bool(_) => "a boolean",
                _ => "null",
            };
            return Err(Error::BadRequest(format!("record is {kind}, not a JSON object (a push request or a row)")));
        }
        Err(e) => return Err(Error::BadRequest(format!("record is not valid JSON: {e}"))),
    };
    let named = |o: &mut Map<String, Json>, field: &str| -> Result<Option<String>> {
        match o.remove(field) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::String(s)) if !s.is_empty() => Ok(Some(s)),
            Some(other) => Err(Error::BadRequest(format!("record field '{field}' must be a name, got {other}"))),
        }
    };
    let is_request = matches!(object.get("df"), Some(Json::Object(_)))
        && (object.contains_key(PUSH_SOURCE_FIELD) || object.contains_key(VIEW_FIELD));
    if is_request {
        let source = named(&mut object, PUSH_SOURCE_FIELD)?;
        let view = named(&mut object, VIEW_FIELD)?;
        let Some(Json::Object(df)) = object.remove("df") else { unreachable!("checked above") };
        let fresh_registry = object.get("allow_registry_cache").and_then(Json::as_bool) == Some(false);
        let destination = match (source, view) {
            (Some(s), None) => {
                let to = match object.get("to") {
                    None | Some(Json::Null) => None,
                    Some(Json::String(s)) => Some(s.as_str()),
                    Some(other) => {
                        return Err(Error::BadRequest(format!("record field 'to' must be text, got {other}")));
                    }
                };
                PushTo::parse(to)?.require_online()?;
                Destination::Source(s)
            }
            (None, Some(v)) => Destination::View(v),
            _ => return Err(both_named()),
        };
        return Ok(Push { destination, frame: Frame::from_columns(df)?, fresh_registry, idempotency_key: None });
    }
    let source = named(&mut object, PUSH_SOURCE_FIELD)?;
    let view = named(&mut object, VIEW_FIELD)?;
    let destination = match (source, view) {
        (Some(s), None) => Destination::Source(s),
        (None, Some(v)) => Destination::View(v),
        (None, None) => match default_source {
            Some(s) => Destination::Source(s.to_string()),
            None => {
                return Err(Error::BadRequest(format!(
                    "record has no '{PUSH_SOURCE_FIELD}' field and {origin} has no default push source \
                     (set LARDER_PUSH_SOURCE, or LARDER_PUSH_SOURCE_MAP for this stream or topic)"
                )));
            }
        },
        (Some(_), Some(_)) => return Err(both_named()),
    };
    Ok(Push { destination, frame: Frame::from_row(object), fresh_registry: false, idempotency_key: None })
}

fn both_named() -> Error {
    Error::BadRequest(format!("record names both a '{PUSH_SOURCE_FIELD}' and a '{VIEW_FIELD}'; give one"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Json, default: Option<&str>) -> Result<Push> {
        parse_record(&serde_json::to_vec(&v).unwrap(), default, "stream 's'")
    }

    #[test]
    fn push_request_record() {
        let p = parse(
            json!({"push_source_name": "src", "df": {"id": [1, 2], "x": [0.1, 0.2]}, "to": "online"}),
            Some("other"),
        )
        .unwrap();
        assert_eq!(p.destination, Destination::Source("src".into()));
        assert_eq!(p.frame.rows(), 2);
        assert!(!p.fresh_registry);
    }

    #[test]
    fn python_nan_and_infinity_tokens_are_read() {
        // What `json.dumps` writes for a pandas frame with a missing float.
        let body = br#"{"push_source_name": "src", "df": {"id": [1, 2, 3], "x": [NaN, Infinity, -Infinity], "s": ["NaN Infinity \" NaN", "a", "b"]}}"#;
        let p = PushRequest::parse(body).unwrap().into_push().unwrap();
        let col = |p: &Push, name: &str| p.frame.column_names().iter().position(|c| c == name).unwrap();
        let x = col(&p, "x");
        assert_eq!(p.frame.value(x, 0), &Json::Null);
        assert_eq!(p.frame.value(x, 1), &json!("Infinity"));
        assert_eq!(p.frame.value(x, 2), &json!("-Infinity"));
        assert_eq!(p.frame.value(col(&p, "s"), 0), &json!("NaN Infinity \" NaN"), "strings are left alone");
        let record = parse_record(br#"{"id": 1, "x": NaN}"#, Some("src"), "stream 's'").unwrap();
        assert_eq!(record.frame.value(col(&record, "x"), 0), &Json::Null);
        // Anything else that is not JSON keeps its own error.
        let e = PushRequest::parse(br#"{"push_source_name": NaNa}"#).unwrap_err().to_string();
        assert!(e.contains("invalid push request"), "{e}");
        let e = PushRequest::parse(b"[]").unwrap_err().to_string();
        assert!(e.contains("must be a JSON object") && e.contains("a JSON array"), "{e}");
    }

    #[test]
    fn write_request_record() {
        let p =
            parse(json!({"feature_view_name": "fv", "df": {"id": 1}, "allow_registry_cache": false}), None).unwrap();
        assert_eq!(p.destination, Destination::View("fv".into()));
        assert!(p.fresh_registry);
    }

    #[test]
    fn flat_rows_use_their_field_or_the_default() {
        let p = parse(json!({"id": 1, "x": 0.5, "push_source_name": "src"}), Some("dflt")).unwrap();
        assert_eq!(p.destination, Destination::Source("src".into()));
        assert_eq!(p.frame.column("push_source_name"), None, "the routing field is not a column");
        let p = parse(json!({"id": 1, "x": 0.5}), Some("dflt")).unwrap();
        assert_eq!(p.destination, Destination::Source("dflt".into()));
        let p = parse(json!({"id": 1, "feature_view_name": "fv"}), Some("dflt")).unwrap();
        assert_eq!(p.destination, Destination::View("fv".into()));
    }

    #[test]
    fn flat_row_without_a_source_says_how_to_configure_one() {
        let e = parse(json!({"id": 1}), None).unwrap_err();
        assert!(e.to_string().contains("LARDER_PUSH_SOURCE") && e.to_string().contains("stream 's'"), "{e}");
    }

    #[test]
    fn offline_is_refused_whole() {
        for to in ["offline", "online_and_offline"] {
            let e = parse(json!({"push_source_name": "s", "df": {"id": [1]}, "to": to}), None).unwrap_err();
            assert_eq!(e.status(), 422, "{e}");
            assert!(e.to_string().contains("not supported yet"), "{e}");
        }
        let e = parse(json!({"push_source_name": "s", "df": {"id": [1]}, "to": "disk"}), None).unwrap_err();
        assert_eq!(e.status(), 400);
    }

    #[test]
    fn garbage_is_a_clear_error() {
        let e = parse_record(b"{not json", None, "stream 's'").unwrap_err();
        assert!(e.to_string().starts_with("record is not valid JSON"), "{e}");
        let e = parse_record(b"[1,2]", None, "stream 's'").unwrap_err();
        assert!(e.to_string().contains("an array"), "{e}");
        let e = parse_record(&[0xF3, 0x89, 0x9A, 0xC2, 0, 1], None, "stream 's'").unwrap_err();
        assert!(e.to_string().contains("Kinesis Producer Library"), "{e}");
        let e = parse_record(b"", None, "topic 't'").unwrap_err();
        assert!(e.to_string().contains("tombstone"), "{e}");
        let e = parse(json!({"id": 1, "push_source_name": 5}), None).unwrap_err();
        assert!(e.to_string().contains("must be a name"), "{e}");
    }

    #[test]
    fn http_bodies() {
        let p = PushRequest::parse(br#"{"push_source_name":"s","df":{"id":[1]}}"#).unwrap().into_push().unwrap();
        assert_eq!(p.destination, Destination::Source("s".into()));
        let e = PushRequest::parse(br#"{"df":{"id":[1]}}"#).unwrap_err();
        assert!(e.to_string().contains("push_source_name"), "{e}");
        let e = PushRequest::parse(br#"{"push_source_name":"s","df":[1]}"#).unwrap_err();
        assert_eq!(e.status(), 400);
        let w = WriteRequest::parse(br#"{"feature_view_name":"v","df":{"id":[1]},"extra":1}"#)
            .unwrap()
            .into_push()
            .unwrap();
        assert_eq!(w.destination, Destination::View("v".into()));
    }
}
