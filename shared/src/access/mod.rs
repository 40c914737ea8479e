//! Access control: who the caller is ([`User`], from a verified token or API Gateway's
//! authorizer) and whether Feast's permissions in the registry let them act ([`check`]).
//!
//! The rules are those of Feast's enforcer (`feast/permissions/enforcer.py`), with the
//! differences docs/compatibility.md lists:
//! - only the project's permissions apply; a project with none admits every authenticated
//!   caller;
//! - a permission matches an object when its types include the object's type (none listed:
//!   every type; `FEATURE_VIEW` also covers batch and stream views), one of its name patterns
//!   matches the whole name (none: every name), the object carries its `required_tags`, and it
//!   lists every action asked for;
//! - one matching permission whose policy admits the caller grants; none matching, or all
//!   refusing, denies (403, naming the action, the object and why).
//!
//! Where Feast's code is odd Larder does what its author evidently meant, and never grants more
//! than Feast would for the same permissions except where Feast fails outright:
//! - `required_tags` are compared with the object's tags (Feast compares them with an attribute
//!   views do not have, so it ignores them; checking them can only match fewer permissions);
//! - an empty policy (Feast's `AllowAll`) admits every authenticated caller (Feast cannot load
//!   it and fails every check);
//! - `BATCH_FEATURE_VIEW` covers the views of `feature_views` (Feast loads them as plain feature
//!   views, so such a permission matches nothing there);
//! - a name pattern Rust's regex cannot compile matches nothing.

pub mod claims;
pub mod oidc;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::config::AuthConfig;
use crate::error::{Error, Result};
use crate::registry::{AuthzAction, FeatureService, FeatureView, Permission, Policy, Registry, ResourceType, ViewKind};

/// Who is calling, as the edge in front of the router established it (the router itself
/// authenticates only bearer tokens, and only when configured to).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Caller {
    /// Nothing identifies the request.
    #[default]
    Anonymous,
    /// A bearer token from an `Authorization` header, not verified yet (`larder serve`).
    Bearer(String),
    /// API Gateway's JWT authorizer verified a bearer token. Its claims as API Gateway passes
    /// them (every value a string, lists as `[a b]`), and its scopes.
    Jwt { claims: BTreeMap<String, String>, scopes: Vec<String> },
    /// API Gateway's IAM authorization: the principal whose SigV4 signature it checked.
    Iam { user_arn: String, account_id: Option<String>, caller_id: Option<String> },
    /// A direct invocation of a function, which IAM already allowed (`lambda:InvokeFunction`):
    /// trusted like the stream triggers, and not checked against permissions.
    Invoker,
}

/// How the router learns who a caller is.
pub enum Authenticator {
    /// No identity, no permission checks (`auth: no_auth`, Feast's default).
    Off,
    /// Bearer tokens, verified here (`oidc`, `kubernetes`).
    Tokens(Box<oidc::Verifier>),
    /// API Gateway's authorizer verified the caller.
    ApiGateway { client_id: Option<String>, iam_roles: claims::IamRoles },
}

impl Authenticator {
    pub fn new(config: &AuthConfig) -> Result<Authenticator> {
        Ok(match config {
            AuthConfig::None => Authenticator::Off,
            AuthConfig::Tokens(t) => Authenticator::Tokens(Box::new(oidc::Verifier::new(t.clone())?)),
            AuthConfig::ApiGateway { client_id, iam_roles } => Authenticator::ApiGateway {
                client_id: client_id.clone(),
                iam_roles: claims::IamRoles::parse(iam_roles)?,
            },
        })
    }

    /// The user permissions are checked for; `None` when they are not checked at all
    /// (authentication off, or a trusted invoker). A caller that should be identified and is
    /// not is a 401.
    pub async fn user(&self, caller: &Caller) -> Result<Option<Arc<User>>> {
        match (self, caller) {
            (Authenticator::Off, _) | (_, Caller::Invoker) => Ok(None),
            (Authenticator::Tokens(v), Caller::Bearer(token)) => v.user(token).await.map(Some),
            (Authenticator::Tokens(_), _) => Err(Error::Unauthenticated(
                "this endpoint needs a bearer token: send Authorization: Bearer <token>".into(),
            )),
            (Authenticator::ApiGateway { client_id, .. }, Caller::Jwt { claims, .. }) => {
                claims::user_from_gateway_claims(claims, client_id.as_deref()).map(|u| Some(Arc::new(u)))
            }
            (Authenticator::ApiGateway { iam_roles, .. }, Caller::Iam { user_arn, .. }) => {
                Ok(Some(Arc::new(iam_roles.user(user_arn))))
            }
            (Authenticator::ApiGateway { .. }, _) => Err(Error::Unauthenticated(
                "no authorizer identified the caller: call through API Gateway with IAM (SigV4) or a JWT".into(),
            )),
        }
    }
}

/// An authenticated caller, as Feast's `User` has it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub roles: Vec<String>,
    pub groups: Vec<String>,
    pub namespaces: Vec<String>,
}

impl fmt::Display for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// What an action is asked on.
#[derive(Debug, Clone, Copy)]
pub enum Resource<'a> {
    View(&'a FeatureView),
    Service(&'a FeatureService),
}

impl Resource<'_> {
    fn name(&self) -> &str {
        match self {
            Resource::View(v) => &v.name,
            Resource::Service(s) => &s.name,
        }
    }

    fn tags(&self) -> &BTreeMap<String, String> {
        match self {
            Resource::View(v) => &v.tags,
            Resource::Service(s) => &s.tags,
        }
    }

    /// Whether a permission listing `t` covers this object.
    fn is_a(&self, t: ResourceType) -> bool {
        match (self, t) {
            (Resource::View(_), ResourceType::FeatureView) => true,
            (Resource::View(v), ResourceType::BatchFeatureView) => v.kind == ViewKind::Batch,
            (Resource::View(v), ResourceType::StreamFeatureView) => v.kind == ViewKind::Stream,
            (Resource::Service(_), ResourceType::FeatureService) => true,
            _ => false,
        }
    }

    fn describe(&self) -> String {
        match self {
            Resource::View(v) if v.kind == ViewKind::Stream => format!("stream feature view '{}'", v.name),
            Resource::View(v) => format!("feature view '{}'", v.name),
            Resource::Service(s) => format!("feature service '{}'", s.name),
        }
    }
}

fn names(actions: &[AuthzAction]) -> String {
    actions.iter().map(|a| a.name()).collect::<Vec<_>>().join(", ")
}

/// Checks that `user` may do every one of `actions` on every one of `resources`. The first
/// object refused is named in the error (403).
pub fn check(registry: &Registry, user: &User, resources: &[Resource<'_>], actions: &[AuthzAction]) -> Result<()> {
    let permissions = registry.permissions.as_deref().unwrap_or_default();
    if permissions.is_empty() {
        return Ok(());
    }
    for resource in resources {
        check_one(registry, permissions, user, resource, actions)?;
    }
    Ok(())
}

fn check_one(
    registry: &Registry,
    permissions: &[Permission],
    user: &User,
    resource: &Resource<'_>,
    actions: &[AuthzAction],
) -> Result<()> {
    let mut refusals = Vec::new();
    for (i, p) in permissions.iter().enumerate() {
        if !matches(p, registry.permission_patterns.get(i).map(Vec::as_slice).unwrap_or_default(), resource, actions) {
            continue;
        }
        match admits(&p.policy, user) {
            None => return Ok(()),
            Some(why) => refusals.push(format!("permission '{}' {why}", p.name)),
        }
    }
    let what = format!("{} on {}", names(actions), resource.describe());
    Err(Error::Forbidden(if refusals.is_empty() {
        format!("{what} is not permitted for {user}: no permission of project '{}' grants it", registry.project)
    } else {
        format!("{what} is not permitted for {user}: {}", refusals.join("; "))
    }))
}

/// Feast's `match_resource` and `match_actions`, with Larder's reading of required tags.
fn matches(
    p: &Permission,
    patterns: &[Option<regex::Regex>],
    resource: &Resource<'_>,
    actions: &[AuthzAction],
) -> bool {
    let type_ok = p.types.is_empty() || p.types.iter().any(|t| resource.is_a(*t));
    let name_ok = p.name_patterns.is_empty() || patterns.iter().flatten().any(|r| r.is_match(resource.name()));
    let tags = resource.tags();
    let tags_ok = p.required_tags.iter().all(|(k, v)| tags.get(k) == Some(v));
    type_ok && name_ok && tags_ok && actions.iter().all(|a| p.actions.contains(a))
}

/// `None` when `policy` admits `user`; otherwise why not.
fn admits(policy: &Policy, user: &User) -> Option<String> {
    let any = |wanted: &[String], has: &[String]| wanted.iter().any(|w| has.contains(w));
    let ok = match policy {
        Policy::AllowAll => true,
        Policy::Roles(roles) => any(roles, &user.roles),
        Policy::Groups(groups) => any(groups, &user.groups),
        Policy::Namespaces(namespaces) => any(namespaces, &user.namespaces),
        Policy::GroupsOrNamespaces { groups, namespaces } => {
            any(groups, &user.groups) || any(namespaces, &user.namespaces)
        }
    };
    if ok {
        return None;
    }
    Some(match policy {
        Policy::AllowAll => unreachable!("admits everyone"),
        Policy::Roles(r) => format!("requires one of the roles {r:?}"),
        Policy::Groups(g) => format!("requires one of the groups {g:?}"),
        Policy::Namespaces(n) => format!("requires one of the namespaces {n:?}"),
        Policy::GroupsOrNamespaces { groups, namespaces } => {
            format!("requires one of the groups {groups:?} or namespaces {namespaces:?}")
        }
    })
}

#[cfg(test)]
mod tests;
