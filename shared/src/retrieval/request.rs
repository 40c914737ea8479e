//! The `get-online-features` request body (Feast's `GetOnlineFeaturesRequest` JSON).

use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};

use crate::error::{Error, Result};

/// Feast's request. Unknown fields are ignored, as Feast's server (pydantic) does.
#[derive(Debug, Clone, Deserialize)]
pub struct Request {
    /// `"view:feature"` references. Ignored when `feature_service` is set.
    #[serde(default)]
    pub features: Vec<String>,
    #[serde(default)]
    pub feature_service: Option<String>,
    /// Column-oriented entity rows, in the order the client wrote them.
    pub entities: EntityColumns,
    #[serde(default, deserialize_with = "full_feature_names")]
    pub full_feature_names: bool,
    /// Accepted for compatibility; Feast's JSON answer has no place for it either.
    #[serde(default, deserialize_with = "include_feature_view_version_metadata")]
    pub include_feature_view_version_metadata: bool,
}

/// A JSON boolean, or an error naming the field (serde's own names neither the field nor the
/// value's place in the request). `"true"` as a string is refused: Feast's server takes it, but
/// a string where a boolean belongs is the client's mistake (docs/compatibility.md §8).
fn named_bool<'de, D: Deserializer<'de>>(d: D, field: &str) -> std::result::Result<bool, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Bool(b) => Ok(b),
        other => Err(serde::de::Error::custom(format!("{field} must be true or false, not {other}"))),
    }
}

fn full_feature_names<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<bool, D::Error> {
    named_bool(d, "full_feature_names")
}

fn include_feature_view_version_metadata<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<bool, D::Error> {
    named_bool(d, "include_feature_view_version_metadata")
}

/// `entities: {column: [values]}` with the client's column order kept (it is the order of the
/// join-key columns in the answer). A single value where the list belongs is refused (400), as
/// Feast's server refuses it (its model is `Dict[str, List[Any]]`): accepting it as one row would
/// hide a client that builds the body wrongly.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EntityColumns(pub Vec<(String, Vec<serde_json::Value>)>);

impl<'de> Deserialize<'de> for EntityColumns {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = EntityColumns;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object mapping entity columns to lists of values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<EntityColumns, A::Error> {
                let mut cols: Vec<(String, Vec<serde_json::Value>)> = Vec::new();
                while let Some(name) = map.next_key::<String>()? {
                    let values = match map.next_value::<serde_json::Value>()? {
                        serde_json::Value::Array(items) => items,
                        single => {
                            let shown: String = single.to_string().chars().take(40).collect();
                            return Err(serde::de::Error::custom(format!(
                                "entities.{name} must be a list of values, one per row (e.g. [{shown}]), not a single value"
                            )));
                        }
                    };
                    match cols.iter_mut().find(|(n, _)| *n == name) {
                        Some(existing) => existing.1 = values,
                        None => cols.push((name, values)),
                    }
                }
                Ok(EntityColumns(cols))
            }
        }
        d.deserialize_map(V)
    }
}

impl EntityColumns {
    pub fn get(&self, name: &str) -> Option<&[serde_json::Value]> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice())
    }
}

impl Request {
    pub fn parse(body: &[u8]) -> Result<Request> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(Error::BadRequest("the request body is empty; send Feast's get-online-features JSON".into()));
        }
        if let Some(kind) = crate::error::not_an_object(body) {
            return Err(Error::BadRequest(format!(
                "the get-online-features request must be a JSON object with `features` or `feature_service` and `entities`; the body is {kind}"
            )));
        }
        serde_json::from_slice(body).map_err(|e| {
            let what = if e.is_data() {
                "the request is not a get-online-features request"
            } else {
                "the request body is not valid JSON"
            };
            Error::BadRequest(format!("{what}: {e}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keeps_entity_column_order_and_ignores_unknown_fields() {
        let r = Request::parse(br#"{"features":["v:a"],"entities":{"z":[1,2],"a":["x","y"]},"unknown":1}"#).unwrap();
        assert_eq!(r.entities.0.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["z", "a"]);
        assert_eq!(r.entities.get("a").unwrap(), &[json!("x"), json!("y")]);
        assert!(!r.full_feature_names);
        let single = Request::parse(br#"{"feature_service":"s","entities":{"id":5}}"#).unwrap_err();
        assert_eq!(single.status(), 400);
        assert!(single.to_string().contains("entities.id must be a list of values"), "{single}");
        assert!(single.to_string().contains("[5]"), "{single}");
    }

    #[test]
    fn malformed_bodies_are_bad_requests() {
        for body in [
            &b""[..],
            b"   ",
            b"{",
            b"[1]",
            br#"{"features":["v:a"]}"#,
            br#"{"entities":[1]}"#,
            br#"{"entities":{},"features":"v:a"}"#,
        ] {
            let e = Request::parse(body).unwrap_err();
            assert_eq!(e.status(), 400, "{}: {e}", String::from_utf8_lossy(body));
        }
        let e = Request::parse(br#"{"features":["v:a"]}"#).unwrap_err().to_string();
        assert!(e.contains("entities"), "{e}");
    }
}
