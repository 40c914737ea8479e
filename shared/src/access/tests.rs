//! Each rule of the enforcer, allowed and denied, over permissions written in features.yaml.

use super::*;
use crate::registry::yaml;

const DEFINITIONS: &str = r#"
entities:
  driver: {join_key: driver_id, type: Int64}
sources:
  stats: {type: file, path: data/stats.parquet, timestamp_field: ts}
  stats_push: {type: push, batch_source: stats}
feature_views:
  driver_hourly: {entities: [driver], source: stats, features: {rate: Float64}, tags: {team: risk}}
  driver_daily: {entities: [driver], source: stats, features: {trips: Int64}}
  driver_fresh: {entities: [driver], source: stats_push, features: {rate: Float64}}
feature_services:
  driver_model: {features: [driver_hourly]}
"#;

fn registry(permissions: &str) -> Registry {
    yaml::parse(&format!("{DEFINITIONS}{permissions}"), "features.yaml", "p", 3).unwrap()
}

fn user(roles: &[&str], groups: &[&str], namespaces: &[&str]) -> User {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect();
    User { name: "ana".into(), roles: s(roles), groups: s(groups), namespaces: s(namespaces) }
}

fn view<'r>(reg: &'r Registry, name: &str) -> Resource<'r> {
    Resource::View(&reg.feature_views[name])
}

/// A refusal: 403 `forbidden`, its message (what was refused, for whom, why).
fn denied(r: Result<()>) -> String {
    let e = r.expect_err("refused");
    assert_eq!((e.status(), e.code()), (403, "forbidden"), "{e}");
    e.to_string()
}

const READ: &[AuthzAction] = &[AuthzAction::ReadOnline];
const WRITE: &[AuthzAction] = &[AuthzAction::WriteOnline];

#[test]
fn a_project_without_permissions_admits_every_authenticated_caller() {
    let reg = registry("");
    assert!(check(&reg, &user(&[], &[], &[]), &[view(&reg, "driver_daily")], WRITE).is_ok());
    let reg = registry("permissions: {}\n");
    assert!(check(&reg, &user(&[], &[], &[]), &[view(&reg, "driver_daily")], WRITE).is_ok());
}

#[test]
fn types_names_tags_and_actions_select_the_permissions_that_apply() {
    let reg = registry(
        r#"
permissions:
  readers:
    types: [FEATURE_VIEW]
    name_patterns: ["driver_.*ly"]
    actions: [READ_ONLINE]
    policy: {roles: [reader]}
  risk_writers:
    types: FEATURE_VIEW
    required_tags: {team: risk}
    actions: [WRITE]
    policy: {roles: [writer]}
  service_readers:
    types: [FEATURE_SERVICE]
    actions: [READ_ONLINE]
    policy: {roles: [model]}
"#,
    );
    let reader = user(&["reader"], &[], &[]);
    assert!(check(&reg, &reader, &[view(&reg, "driver_hourly"), view(&reg, "driver_daily")], READ).is_ok());
    // driver_fresh is not matched by the pattern (full match): no permission applies.
    let e = check(&reg, &reader, &[view(&reg, "driver_fresh")], READ).unwrap_err();
    assert_eq!(e.status(), 403);
    assert_eq!(
        e.to_string(),
        "READ_ONLINE on feature view 'driver_fresh' is not permitted for ana: no permission of project 'p' grants it"
    );
    // The readers' permission lists only READ_ONLINE.
    let e = denied(check(&reg, &reader, &[view(&reg, "driver_hourly")], WRITE));
    assert!(e.starts_with("WRITE_ONLINE on feature view 'driver_hourly' is not permitted for ana"), "{e}");
    // required_tags: only driver_hourly carries team: risk.
    let writer = user(&["writer"], &[], &[]);
    assert!(check(&reg, &writer, &[view(&reg, "driver_hourly")], WRITE).is_ok());
    let e = check(&reg, &writer, &[view(&reg, "driver_daily")], WRITE).unwrap_err();
    assert!(e.to_string().contains("no permission of project 'p' grants it"), "{e}");
    // Services are their own type.
    let service = Resource::Service(&reg.feature_services["driver_model"]);
    assert!(check(&reg, &user(&["model"], &[], &[]), &[service], READ).is_ok());
    let e = denied(check(&reg, &reader, &[service], READ));
    assert!(e.starts_with("READ_ONLINE on feature service 'driver_model' is not permitted"), "{e}");
}

#[test]
fn one_admitting_policy_grants_and_refusals_are_explained() {
    let reg = registry(
        r#"
permissions:
  by_role: {actions: [READ_ONLINE], policy: {roles: [reader, analyst]}}
  by_group: {actions: [READ_ONLINE], policy: {groups: [risk]}}
  by_namespace: {actions: [READ_ONLINE], policy: {namespaces: [ml]}}
  combined: {actions: [WRITE_ONLINE], policy: {groups: [ops], namespaces: [prod]}}
"#,
    );
    let target = [view(&reg, "driver_daily")];
    assert!(check(&reg, &user(&["analyst"], &[], &[]), &target, READ).is_ok());
    assert!(check(&reg, &user(&[], &["risk"], &[]), &target, READ).is_ok());
    assert!(check(&reg, &user(&[], &[], &["ml"]), &target, READ).is_ok());
    // Combined: a group or a namespace.
    assert!(check(&reg, &user(&[], &["ops"], &[]), &target, WRITE).is_ok());
    assert!(check(&reg, &user(&[], &[], &["prod"]), &target, WRITE).is_ok());
    let e = check(&reg, &user(&["writer"], &["sales"], &["dev"]), &target, READ).unwrap_err();
    let msg = e.to_string();
    assert!(msg.starts_with("READ_ONLINE on feature view 'driver_daily' is not permitted for ana: "), "{msg}");
    for why in [
        r#"permission 'by_role' requires one of the roles ["reader", "analyst"]"#,
        r#"permission 'by_group' requires one of the groups ["risk"]"#,
        r#"permission 'by_namespace' requires one of the namespaces ["ml"]"#,
    ] {
        assert!(msg.contains(why), "{why} in {msg}");
    }
}

#[test]
fn every_resource_and_every_action_must_be_granted() {
    let reg = registry(
        r#"
permissions:
  hourly_only: {name_patterns: [driver_hourly], actions: [READ_ONLINE, WRITE_ONLINE], policy: {roles: [r]}}
"#,
    );
    let u = user(&["r"], &[], &[]);
    assert!(
        check(&reg, &u, &[view(&reg, "driver_hourly")], &[AuthzAction::ReadOnline, AuthzAction::WriteOnline]).is_ok()
    );
    let e = denied(check(&reg, &u, &[view(&reg, "driver_hourly")], &[AuthzAction::ReadOnline, AuthzAction::Delete]));
    // A permission must grant every action asked for at once; none here grants DELETE.
    assert_eq!(
        e,
        "READ_ONLINE, DELETE on feature view 'driver_hourly' is not permitted for ana: no permission of project 'p' grants it"
    );
    let e = check(&reg, &u, &[view(&reg, "driver_hourly"), view(&reg, "driver_daily")], READ).unwrap_err();
    assert!(e.to_string().contains("feature view 'driver_daily'"), "the first object refused is named: {e}");
}

#[test]
fn allow_all_from_a_registry_admits_every_caller_and_bad_patterns_match_nothing() {
    let mut reg = registry("permissions: {all: {actions: [READ_ONLINE], policy: {roles: [x]}}}\n");
    let p = &mut reg.permissions.as_mut().unwrap()[0];
    p.policy = Policy::AllowAll;
    reg.reindex();
    assert!(check(&reg, &user(&[], &[], &[]), &[view(&reg, "driver_daily")], READ).is_ok());
    // A pattern only Python can read (a lookbehind) matches nothing rather than everything.
    reg.permissions.as_mut().unwrap()[0].name_patterns = vec!["(?<=x)driver_daily".into()];
    reg.reindex();
    denied(check(&reg, &user(&[], &[], &[]), &[view(&reg, "driver_daily")], READ));
}

#[test]
fn features_yaml_refuses_what_cannot_be_enforced() {
    let err = |p: &str| {
        yaml::parse(&format!("{DEFINITIONS}permissions:\n{p}"), "features.yaml", "p", 3).unwrap_err().to_string()
    };
    assert!(err("  x: {actions: [READ_ONLINE], policy: {}}\n").contains("allow-all policy cannot be written"));
    assert!(err("  x: {actions: [FLY], policy: {roles: [r]}}\n").contains("'FLY' is not an action"));
    assert!(err("  x: {types: [TABLE], actions: [READ], policy: {roles: [r]}}\n").contains("'TABLE' is not a type"));
    assert!(err("  x: {actions: [], policy: {roles: [r]}}\n").contains("lists no actions"));
    assert!(
        err("  x: {name_patterns: ['(unclosed'], actions: [READ], policy: {roles: [r]}}\n")
            .contains("not a regular expression")
    );
    let reg = registry("permissions:\n  x: {actions: [CRUD, READ_ONLINE, READ], policy: {groups: [g]}}\n");
    let actions = &reg.permissions.as_ref().unwrap()[0].actions;
    use AuthzAction::*;
    assert_eq!(actions, &vec![Create, Describe, Update, Delete, ReadOnline, ReadOffline]);
}

#[tokio::test]
async fn callers_become_users_as_the_configuration_says() {
    use std::collections::BTreeMap;
    let off = Authenticator::new(&AuthConfig::None).unwrap();
    assert_eq!(off.user(&Caller::Anonymous).await.unwrap(), None);
    let gw = Authenticator::new(&AuthConfig::ApiGateway {
        client_id: Some("larder".into()),
        iam_roles: "arn:aws:iam::1:user/*=reader".into(),
    })
    .unwrap();
    let claims: BTreeMap<String, String> =
        [("sub".to_string(), "ana".to_string()), ("groups".to_string(), "[risk]".to_string())].into();
    let u = gw.user(&Caller::Jwt { claims, scopes: vec![] }).await.unwrap().unwrap();
    assert_eq!((u.name.as_str(), u.groups.clone()), ("ana", vec!["risk".to_string()]));
    let iam = Caller::Iam { user_arn: "arn:aws:iam::1:user/bob".into(), account_id: None, caller_id: None };
    assert_eq!(gw.user(&iam).await.unwrap().unwrap().roles, vec!["reader"]);
    assert_eq!(gw.user(&Caller::Invoker).await.unwrap(), None, "a direct invocation is trusted");
    let e = gw.user(&Caller::Anonymous).await.unwrap_err();
    assert_eq!((e.status(), e.code()), (401, "unauthenticated"));
}
