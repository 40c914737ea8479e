//! Claims to a [`User`], as Feast's OIDC token parser reads them:
//! - the name: the first string among `preferred_username`, `upn`, `azp`, `appid`, `sub`;
//! - roles: `resource_access.<client_id>.roles` plus the top-level `roles`;
//! - groups: `groups`;
//! - namespaces: a Kubernetes service-account token's `kubernetes.io.namespace`.
//!
//! The same mapping serves tokens Larder verified itself (JSON claims) and the claims API
//! Gateway's JWT authorizer passes on, where every value is a string: a list arrives as
//! `[a b c]`, an object as its JSON text; both forms are read.

use serde_json::{Map, Value};

use super::User;
use crate::error::{Error, Result};

const NAME_CLAIMS: [&str; 5] = ["preferred_username", "upn", "azp", "appid", "sub"];

/// A verified token's claims.
pub fn user_from_claims(claims: &Map<String, Value>, client_id: Option<&str>) -> Result<User> {
    let name = NAME_CLAIMS
        .iter()
        .find_map(|c| claims.get(*c).and_then(Value::as_str))
        .ok_or_else(|| {
            Error::Unauthenticated(
                "the token names no user: expected one of preferred_username, upn, azp, appid or sub".into(),
            )
        })?
        .to_string();
    let strings = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default()
    };
    let mut roles = match client_id {
        Some(id) => strings(claims.get("resource_access").and_then(|r| r.get(id)).and_then(|c| c.get("roles"))),
        None => Vec::new(),
    };
    for r in strings(claims.get("roles")) {
        if !roles.contains(&r) {
            roles.push(r);
        }
    }
    let namespaces = claims
        .get("kubernetes.io")
        .and_then(|k| k.get("namespace"))
        .and_then(Value::as_str)
        .map(|ns| vec![ns.to_string()])
        .unwrap_or_default();
    Ok(User { name, roles, groups: strings(claims.get("groups")), namespaces })
}

/// Claims as API Gateway's JWT authorizer passes them (string values).
pub fn user_from_gateway_claims<'a>(
    claims: impl IntoIterator<Item = (&'a String, &'a String)>,
    client_id: Option<&str>,
) -> Result<User> {
    let json: Map<String, Value> = claims.into_iter().map(|(k, v)| (k.clone(), gateway_value(v))).collect();
    user_from_claims(&json, client_id)
}

/// A claim's string back as JSON: its JSON text if it is an array or object, `[a b]` as a list
/// of words, anything else as the string itself.
fn gateway_value(text: &str) -> Value {
    let t = text.trim();
    if (t.starts_with('{') || t.starts_with("[\""))
        && let Ok(v) = serde_json::from_str::<Value>(t)
    {
        return v;
    }
    match t.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        Some(inner) => Value::Array(inner.split_whitespace().map(|w| Value::String(w.to_string())).collect()),
        None => Value::String(text.to_string()),
    }
}

/// Roles for IAM principals (`LARDER_IAM_ROLES`): `pattern=role role,pattern=role`, where a
/// pattern is a principal ARN in which `*` matches any run of characters. An assumed role's
/// principal is `arn:aws:sts::<account>:assumed-role/<role>/<session>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IamRoles {
    rules: Vec<(String, Vec<String>)>,
}

impl IamRoles {
    pub fn parse(text: &str) -> Result<IamRoles> {
        let mut rules = Vec::new();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (pattern, roles) = entry.split_once('=').ok_or_else(|| {
                Error::Config(format!(
                    "LARDER_IAM_ROLES: '{entry}' is not principal=roles (e.g. arn:aws:sts::123456789012:assumed-role/reader/*=reader)"
                ))
            })?;
            let roles: Vec<String> = roles.split_whitespace().map(str::to_string).collect();
            if pattern.trim().is_empty() || roles.is_empty() {
                return Err(Error::Config(format!(
                    "LARDER_IAM_ROLES: '{entry}' needs a principal and at least one role"
                )));
            }
            rules.push((pattern.trim().to_string(), roles));
        }
        Ok(IamRoles { rules })
    }

    /// The user for an IAM principal: named by its ARN, with the roles of every rule it matches.
    pub fn user(&self, arn: &str) -> User {
        let mut roles: Vec<String> = Vec::new();
        for (pattern, rs) in &self.rules {
            if glob(pattern, arn) {
                roles.extend(rs.iter().filter(|r| !roles.contains(r)).cloned().collect::<Vec<_>>());
            }
        }
        User { name: arn.to_string(), roles, ..User::default() }
    }
}

/// `*` matches any run of characters (none included); everything else matches itself.
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(i) => rest = &rest[i + middle.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn the_name_is_the_first_claim_feast_looks_at() {
        let u = user_from_claims(&map(json!({"sub": "s", "azp": "app", "upn": "u@x"})), None).unwrap();
        assert_eq!(u.name, "u@x");
        let u = user_from_claims(&map(json!({"sub": "s", "preferred_username": 7})), None).unwrap();
        assert_eq!(u.name, "s", "a non-string claim is skipped");
        let e = user_from_claims(&map(json!({"email": "a@b"})), None).unwrap_err();
        assert_eq!(e.status(), 401);
    }

    #[test]
    fn roles_groups_and_namespaces() {
        let claims = map(json!({
            "sub": "ana", "roles": ["analyst", "reader"], "groups": ["risk"],
            "resource_access": {"larder": {"roles": ["writer", "reader"]}, "other": {"roles": ["admin"]}},
            "kubernetes.io": {"namespace": "ml"}
        }));
        let u = user_from_claims(&claims, Some("larder")).unwrap();
        assert_eq!(u.roles, vec!["writer", "reader", "analyst"]);
        assert_eq!((u.groups.clone(), u.namespaces.clone()), (vec!["risk".to_string()], vec!["ml".to_string()]));
        assert_eq!(user_from_claims(&claims, None).unwrap().roles, vec!["analyst", "reader"]);
    }

    #[test]
    fn api_gateway_string_claims() {
        let claims: Vec<(String, String)> = vec![
            ("sub".into(), "1234".into()),
            ("preferred_username".into(), "ana".into()),
            ("groups".into(), "[risk ops]".into()),
            ("roles".into(), r#"["reader"]"#.into()),
            ("resource_access".into(), r#"{"larder":{"roles":["writer"]}}"#.into()),
        ];
        let u = user_from_gateway_claims(claims.iter().map(|(k, v)| (k, v)), Some("larder")).unwrap();
        assert_eq!(u.name, "ana");
        assert_eq!(u.groups, vec!["risk", "ops"]);
        assert_eq!(u.roles, vec!["writer", "reader"]);
    }

    #[test]
    fn iam_principals_map_to_roles() {
        let roles = IamRoles::parse(
            "arn:aws:sts::123456789012:assumed-role/reader/*=reader, arn:aws:iam::123456789012:user/ana=writer reader",
        )
        .unwrap();
        let u = roles.user("arn:aws:sts::123456789012:assumed-role/reader/session-1");
        assert_eq!(u.roles, vec!["reader"]);
        assert_eq!(roles.user("arn:aws:iam::123456789012:user/ana").roles, vec!["writer", "reader"]);
        assert!(roles.user("arn:aws:iam::123456789012:user/bob").roles.is_empty());
        assert!(IamRoles::parse("nonsense").unwrap_err().to_string().contains("'nonsense'"));
        assert!(glob("a*c*e", "abcde") && glob("*", "") && !glob("a*c", "ab") && glob("ab*", "ab"));
    }
}
