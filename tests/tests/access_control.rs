//! Access control against real peers.
//!
//! - Decisions: Feast's own enforcer (`enforce_policy`, run in the test virtualenv) and
//!   `larder::access::check` decide every (user, object, actions) case on the same registry, one
//!   written by `feast apply` from Python permissions and one written by `larder apply` from
//!   features.yaml (which Feast must read back). Every answer must agree.
//! - Tokens: `larder serve` with `auth: {type: oidc}` verifies bearer tokens against a discovery
//!   document and JWKS this test serves on loopback, and each route grants or denies (401/403)
//!   before it reads or writes anything.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use larder::access::{Resource, User, check};
use larder::config::RepoConfig;
use larder::registry::{self, AuthzAction, Registry};
use larder::storage::Storage;
use larder_tests::feast::copy_dir;
use larder_tests::http::{LarderServe, post_json_with};
use larder_tests::{FeastRepo, RedisServer, repo_root, run};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// ---------------------------------------------------------------------------------------------
// Larder's decisions and Feast's on the same registry

/// A user of the decision matrix: (name, roles, groups, namespaces).
type UserRow = (&'static str, &'static [&'static str], &'static [&'static str], &'static [&'static str]);
const USERS: &[UserRow] = &[
    ("alice", &["reader"], &[], &[]),
    ("nora", &[], &[], &["ml"]),
    ("wes", &[], &["writers"], &[]),
    ("otto", &[], &["ops"], &[]),
    ("nina", &[], &[], &["ops-ns"]),
    ("eve", &["writer_role"], &[], &[]),
    ("root", &["reader"], &["writers", "ops"], &["ml"]),
    ("nobody", &[], &[], &[]),
];
const VIEWS: &[&str] = &["driver_hourly_stats", "driver_fresh", "audit_stats"];
const SERVICES: &[&str] = &["driver_model", "audit_model"];
const ACTIONS: &[&[&str]] =
    &[&["READ_ONLINE"], &["WRITE_ONLINE"], &["READ_ONLINE", "WRITE_ONLINE"], &["DESCRIBE"], &["READ_OFFLINE"]];

/// Feast's enforcer over the repo's registry: one line of JSON per case, `true` when granted.
const FEAST_DECISIONS: &str = r#"
import json, logging
logging.disable(logging.CRITICAL)
from feast import FeatureStore
from feast.errors import FeastPermissionError
from feast.permissions.action import AuthzedAction
from feast.permissions.enforcer import enforce_policy
from feast.permissions.user import User

cases = json.loads(CASES)
store = FeatureStore(".")
permissions = store.list_permissions()
out = []
for c in cases:
    user = User(c["user"], roles=c["roles"], groups=c["groups"], namespaces=c["namespaces"])
    if c["kind"] == "view":
        resource = store.get_feature_view(c["name"])
    else:
        resource = store.get_feature_service(c["name"])
    actions = [AuthzedAction[a] for a in c["actions"]]
    try:
        enforce_policy(permissions, user, [resource], actions)
        out.append(True)
    except FeastPermissionError:
        out.append(False)
print(json.dumps({"permissions": len(permissions), "granted": out}))
"#;

struct Case {
    user: User,
    kind: &'static str,
    name: &'static str,
    actions: Vec<AuthzAction>,
    action_names: &'static [&'static str],
}

fn cases() -> Vec<Case> {
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let mut out = Vec::new();
    for (name, roles, groups, namespaces) in USERS {
        let user = User {
            name: name.to_string(),
            roles: strings(roles),
            groups: strings(groups),
            namespaces: strings(namespaces),
        };
        let objects = VIEWS.iter().map(|v| ("view", *v)).chain(SERVICES.iter().map(|s| ("service", *s)));
        for (kind, object) in objects {
            for actions in ACTIONS {
                out.push(Case {
                    user: user.clone(),
                    kind,
                    name: object,
                    actions: actions.iter().map(|a| AuthzAction::parse(a).unwrap()).collect(),
                    action_names: actions,
                });
            }
        }
    }
    out
}

fn larder_decides(registry: &Registry, c: &Case) -> bool {
    let resource = match c.kind {
        "view" => Resource::View(&registry.feature_views[c.name]),
        _ => Resource::Service(&registry.feature_services[c.name]),
    };
    match check(registry, &c.user, &[resource], &c.actions) {
        Ok(()) => true,
        Err(larder::Error::Forbidden(_)) => false,
        Err(e) => panic!("{}: unexpected error {e}", c.name),
    }
}

fn feast_decides(repo: &FeastRepo, cases: &[Case]) -> (usize, Vec<bool>) {
    let json_cases: Vec<Value> = cases
        .iter()
        .map(|c| {
            json!({"user": c.user.name, "roles": c.user.roles, "groups": c.user.groups,
                   "namespaces": c.user.namespaces, "kind": c.kind, "name": c.name, "actions": c.action_names})
        })
        .collect();
    let code = FEAST_DECISIONS.replace("CASES", &format!("{:?}", serde_json::to_string(&json_cases).unwrap()));
    let out: Value = serde_json::from_str(repo.python(&code).trim().lines().last().unwrap()).unwrap();
    let granted = out["granted"].as_array().unwrap().iter().map(|b| b.as_bool().unwrap()).collect();
    (out["permissions"].as_u64().unwrap() as usize, granted)
}

async fn load(repo: &std::path::Path, redis: &RedisServer) -> Registry {
    let env = [("REDIS_ADDR".to_string(), redis.addr())];
    let lookup = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let cfg = RepoConfig::load_with(Some(repo), &lookup).unwrap();
    registry::load(&cfg, &Storage::default()).await.unwrap()
}

/// Compares the two enforcers case by case, and checks a few decisions by hand so that two
/// enforcers agreeing on "deny everything" cannot pass.
fn assert_same_decisions(registry: &Registry, repo: &FeastRepo) {
    let cases = cases();
    let (feast_permissions, feast) = feast_decides(repo, &cases);
    assert_eq!(feast_permissions, 5, "Feast reads the five permissions");
    assert_eq!(registry.permissions.as_ref().map(Vec::len), Some(5), "Larder reads the five permissions");
    let mut differ = Vec::new();
    for (c, feast) in cases.iter().zip(&feast) {
        let larder = larder_decides(registry, c);
        if larder != *feast {
            differ.push(format!(
                "{} {:?} on {} {}: Larder {larder}, Feast {feast}",
                c.user.name, c.action_names, c.kind, c.name
            ));
        }
    }
    assert!(differ.is_empty(), "{} of {} decisions differ:\n{}", differ.len(), cases.len(), differ.join("\n"));
    let granted = feast.iter().filter(|g| **g).count();
    assert!(
        granted > 10 && granted < cases.len() - 10,
        "{granted} of {} granted: the matrix must test both",
        cases.len()
    );
    let decide = |user: &str, kind: &str, name: &str, actions: &[&str]| {
        let c =
            cases.iter().find(|c| c.user.name == user && c.kind == kind && c.name == name && c.action_names == actions);
        larder_decides(registry, c.unwrap())
    };
    // A role by name pattern; the pattern must match the whole name.
    assert!(decide("alice", "view", "driver_fresh", &["READ_ONLINE"]));
    assert!(!decide("alice", "view", "audit_stats", &["READ_ONLINE"]));
    // Every requested action must be listed by one permission.
    assert!(!decide("root", "view", "driver_fresh", &["READ_ONLINE", "WRITE_ONLINE"]));
    assert!(decide("otto", "view", "audit_stats", &["READ_ONLINE", "WRITE_ONLINE"]));
    // A namespace grants through the combined policy, a group too.
    assert!(decide("nina", "view", "audit_stats", &["WRITE_ONLINE"]));
    // A permission on entities grants nothing on views.
    assert!(!decide("eve", "view", "driver_fresh", &["READ_ONLINE"]));
    // Services by namespace, with READ's two actions.
    assert!(decide("nora", "service", "audit_model", &["READ_OFFLINE"]));
    assert!(!decide("nora", "view", "driver_hourly_stats", &["READ_ONLINE"]));
}

#[tokio::test(flavor = "multi_thread")]
async fn larder_decides_as_feast_on_a_feast_written_registry() {
    let redis = RedisServer::start();
    let repo = FeastRepo::from_fixture("feast_permissions_repo", &redis.addr());
    // feast apply reads the parquet to check the source's columns.
    let end = larder::time::EventTime::parse("2026-11-20T00:00:00Z").unwrap();
    larder::example_data::write_driver_stats(&repo.path().join("data/driver_stats.parquet"), 10, 2, end, 1).unwrap();
    run(&mut repo.feast(&["apply"]));
    let registry = load(repo.path(), &redis).await;
    assert_same_decisions(&registry, &repo);
}

#[tokio::test(flavor = "multi_thread")]
async fn feast_decides_as_larder_on_permissions_from_features_yaml() {
    let redis = RedisServer::start();
    let repo = FeastRepo::from_fixture("larder_permissions_repo", &redis.addr());
    let env = [("REDIS_ADDR".to_string(), redis.addr())];
    let lookup = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let cfg = RepoConfig::load_with(Some(repo.path()), &lookup).unwrap();
    registry::apply(&cfg, &Storage::default(), false).await.unwrap();
    let registry = load(repo.path(), &redis).await;
    assert_same_decisions(&registry, &repo);
    // Feast reads back what features.yaml said, field by field.
    let described = repo.python(
        "from feast import FeatureStore\n\
         p = FeatureStore('.').get_permission('operate_audit')\n\
         print(sorted(a.name for a in p.actions), p.name_patterns, [t.__name__ for t in p.types], \
         type(p.policy).__name__, sorted(p.policy.groups), \
         sorted(p.policy.namespaces))",
    );
    assert_eq!(
        described.trim(),
        "['DESCRIBE', 'READ_ONLINE', 'WRITE_ONLINE'] ['audit_.*'] ['FeatureView'] CombinedGroupNamespacePolicy ['ops'] ['ops-ns']"
    );
}

// ---------------------------------------------------------------------------------------------
// Bearer tokens through `larder serve`

/// An OpenID provider on loopback: the discovery document and a key set the test may change,
/// counting how often the key set is read.
struct Provider {
    port: u16,
    jwks: Arc<std::sync::Mutex<Value>>,
    jwks_reads: Arc<AtomicUsize>,
}

impl Provider {
    async fn start(jwks: Value) -> Provider {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let jwks = Arc::new(std::sync::Mutex::new(jwks));
        let jwks_reads = Arc::new(AtomicUsize::new(0));
        let (keys, reads) = (jwks.clone(), jwks_reads.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut conn, _)) = listener.accept().await else { return };
                let (keys, reads) = (keys.clone(), reads.clone());
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let mut got = 0;
                    while !buf[..got].windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf[got..]).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => got += n,
                        }
                    }
                    let head = String::from_utf8_lossy(&buf[..got]);
                    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                    let body = match path.as_str() {
                        "/.well-known/openid-configuration" => {
                            json!({"issuer": "http://issuer.test", "jwks_uri": format!("http://127.0.0.1:{port}/jwks")})
                        }
                        "/jwks" => {
                            reads.fetch_add(1, Ordering::SeqCst);
                            keys.lock().unwrap().clone()
                        }
                        _ => Value::Null,
                    };
                    let (status, body) =
                        if body.is_null() { ("404 Not Found", "{}".to_string()) } else { ("200 OK", body.to_string()) };
                    let reply = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = conn.write_all(reply.as_bytes()).await;
                });
            }
        });
        Provider { port, jwks, jwks_reads }
    }

    fn discovery_url(&self) -> String {
        format!("http://127.0.0.1:{}/.well-known/openid-configuration", self.port)
    }
}

/// A key pair made by openssl: the private key (PKCS#8 PEM) to sign with, its public JWK.
struct Key {
    pem: Vec<u8>,
    public_pem: Vec<u8>,
    jwk: Value,
    alg: Algorithm,
}

fn openssl(dir: &std::path::Path, args: &[&str]) -> Vec<u8> {
    let out = std::process::Command::new("openssl").current_dir(dir).args(args).output().expect("openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

fn rsa_key(dir: &std::path::Path, kid: &str) -> Key {
    let file = format!("{kid}.pem");
    openssl(dir, &["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", &file]);
    let modulus = String::from_utf8(openssl(dir, &["rsa", "-in", &file, "-noout", "-modulus"])).unwrap();
    let hex = modulus.trim().strip_prefix("Modulus=").unwrap();
    let n: Vec<u8> = (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
    Key {
        pem: std::fs::read(dir.join(&file)).unwrap(),
        public_pem: openssl(dir, &["pkey", "-in", &file, "-pubout"]),
        jwk: json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": B64URL.encode(n), "e": "AQAB"}),
        alg: Algorithm::RS256,
    }
}

fn ec_key(dir: &std::path::Path, kid: &str) -> Key {
    let file = format!("{kid}.pem");
    openssl(dir, &["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", &file]);
    let der = openssl(dir, &["pkey", "-in", &file, "-pubout", "-outform", "DER"]);
    // The DER ends with the uncompressed point: 0x04, x (32 bytes), y (32 bytes).
    let point = &der[der.len() - 65..];
    assert_eq!(point[0], 4);
    Key {
        pem: std::fs::read(dir.join(&file)).unwrap(),
        public_pem: openssl(dir, &["pkey", "-in", &file, "-pubout"]),
        jwk: json!({"kty": "EC", "kid": kid, "use": "sig", "alg": "ES256", "crv": "P-256",
                    "x": B64URL.encode(&point[1..33]), "y": B64URL.encode(&point[33..])}),
        alg: Algorithm::ES256,
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

const AUDIENCE: &str = "larder-api";
const ISSUER: &str = "http://issuer.test";

/// Claims as Keycloak issues them: the user name, client roles, groups.
fn claims(user: &str, roles: &[&str], groups: &[&str]) -> Value {
    json!({
        "sub": format!("id-{user}"), "preferred_username": user, "aud": AUDIENCE, "iss": ISSUER,
        "iat": now(), "exp": now() + 3600,
        "resource_access": {"larder": {"roles": roles}}, "groups": groups,
    })
}

fn sign(key: &Key, kid: &str, claims: &Value) -> String {
    let mut header = Header::new(key.alg);
    header.kid = Some(kid.to_string());
    let encoding = match key.alg {
        Algorithm::ES256 => EncodingKey::from_ec_pem(&key.pem).unwrap(),
        _ => EncodingKey::from_rsa_pem(&key.pem).unwrap(),
    };
    jsonwebtoken::encode(&header, claims, &encoding).unwrap()
}

/// A token whose header and signature are chosen by hand (what an attacker sends).
fn forged(header: Value, claims: &Value, signature: &[u8]) -> String {
    format!("{}.{}.{}", B64URL.encode(header.to_string()), B64URL.encode(claims.to_string()), B64URL.encode(signature))
}

fn hs256_with_public_key(key: &Key, kid: &str, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(kid.to_string());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(&key.public_pem).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_verifies_tokens_and_enforces_permissions() {
    let keys_dir = tempfile::tempdir().unwrap();
    let rsa = rsa_key(keys_dir.path(), "rsa-1");
    let ec = ec_key(keys_dir.path(), "ec-1");
    let stranger = rsa_key(keys_dir.path(), "stranger");
    let provider = Provider::start(json!({"keys": [rsa.jwk, ec.jwk]})).await;

    let redis = RedisServer::start();
    let repo = tempfile::tempdir().unwrap();
    copy_dir(&repo_root().join("tests/fixtures/larder_permissions_repo"), repo.path());
    let yaml = std::fs::read_to_string(repo.path().join("feature_store.yaml")).unwrap();
    let auth = format!(
        "auth:\n  type: oidc\n  auth_discovery_url: {}\n  client_id: larder\n  audience: {AUDIENCE}\n  issuer: {ISSUER}\n",
        provider.discovery_url()
    );
    std::fs::write(repo.path().join("feature_store.yaml"), yaml + &auth).unwrap();
    let env = vec![("REDIS_ADDR".to_string(), redis.addr())];
    let lookup = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let cfg = RepoConfig::load_with(Some(repo.path()), &lookup).unwrap();
    registry::apply(&cfg, &Storage::default(), false).await.unwrap();
    let serve = LarderServe::start(repo.path(), &env, &[]);
    let port = serve.port;

    let call = |path: &str, token: Option<&str>, body: Value| {
        let header = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = header.iter().map(|h| ("Authorization", h.as_str())).collect();
        post_json_with(port, path, &headers, &body)
    };
    let read_fresh = json!({"features": ["driver_fresh:conv_rate"], "entities": {"driver_id": [1001]}});
    let read_both = json!({"features": ["driver_fresh:conv_rate", "audit_stats:avg_daily_trips"], "entities": {"driver_id": [1001]}});
    let read_service =
        json!({"feature_service": "driver_model", "full_feature_names": true, "entities": {"driver_id": [1001]}});
    let push = |trips: i64| {
        json!({"push_source_name": "driver_stats_push_source", "to": "online",
               "df": {"driver_id": [1001], "conv_rate": [0.5], "avg_daily_trips": [trips],
                      "event_timestamp": ["2026-12-01T00:00:00Z"]}})
    };
    let write_audit = json!({"feature_view_name": "audit_stats",
        "df": {"driver_id": [7], "conv_rate": [0.1], "avg_daily_trips": [1], "event_timestamp": ["2026-12-01T00:00:00Z"]}});
    let mut raw = redis.client();
    let mut keys = || redis::cmd("DBSIZE").query::<i64>(&mut raw).unwrap();

    // Health needs no token: load balancers call it.
    let (status, _) = larder_tests::http::request(port, "GET", "/health", b"").unwrap();
    assert_eq!(status, 200);

    // No token, or no bearer scheme: 401, nothing read.
    let (status, body) = call("/get-online-features", None, read_fresh.clone());
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("unauthenticated")), "{body}");
    let (status, body) =
        post_json_with(port, "/get-online-features", &[("Authorization", "Basic YWxpY2U6eA==")], &read_fresh);
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("unauthenticated")), "{body}");

    // A reader's valid RS256 token: the driver views, not the audit view (403 naming it).
    let alice = sign(&rsa, "rsa-1", &claims("alice", &["reader"], &[]));
    let (status, body) = call("/get-online-features", Some(&alice), read_fresh.clone());
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["metadata"]["feature_names"], json!(["driver_id", "conv_rate"]));
    let (status, body) = call("/get-online-features", Some(&alice), read_both.clone());
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("forbidden")), "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("READ_ONLINE") && message.contains("feature view 'audit_stats'") && message.contains("alice"),
        "{message}"
    );
    // A feature service needs READ_ONLINE on the service itself, not on its views.
    let (status, body) = call("/get-online-features", Some(&alice), read_service.clone());
    assert_eq!(status, 403, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("feature service 'driver_model'"), "{body}");

    // A service-account token of the ml namespace (Kubernetes' kubernetes.io claim): feature
    // services, not views read by name.
    let mut trainer = claims("system:serviceaccount:ml:trainer", &[], &[]);
    trainer["kubernetes.io"] = json!({"namespace": "ml", "serviceaccount": {"name": "trainer"}});
    let nora = sign(&rsa, "rsa-1", &trainer);
    let (status, body) = call("/get-online-features", Some(&nora), read_service.clone());
    assert_eq!(status, 200, "{body}");
    let (status, body) = call("/get-online-features", Some(&nora), read_fresh.clone());
    assert_eq!(status, 403, "{body}");

    // An ES256 token of the writers group: push to driver_fresh, and nothing else.
    let wes = sign(&ec, "ec-1", &claims("wes", &[], &["writers"]));
    let before = keys();
    let (status, body) = call("/push", Some(&alice), push(1));
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("forbidden")), "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("WRITE_ONLINE on feature view 'driver_fresh'"),
        "{body}"
    );
    assert_eq!(keys(), before, "a refused push writes nothing");
    let (status, body) = call("/push", Some(&wes), push(42));
    assert_eq!(status, 200, "{body}");
    assert_eq!(keys(), before + 1, "an allowed push writes the row");
    let (status, body) = call("/get-online-features", Some(&wes), read_fresh.clone());
    assert_eq!(status, 403, "a writer may not read: {body}");
    let (status, body) = call("/get-online-features", Some(&alice), read_fresh.clone());
    assert_eq!((status, body["results"][1]["values"][0].as_f64()), (200, Some(0.5)), "{body}");
    let (status, body) = call("/write-to-online-store", Some(&wes), write_audit.clone());
    assert_eq!(status, 403, "{body}");
    assert_eq!(keys(), before + 1, "a refused write writes nothing");
    let otto = sign(&rsa, "rsa-1", &claims("otto", &[], &["ops"]));
    let (status, body) = call("/write-to-online-store", Some(&otto), write_audit.clone());
    assert_eq!(status, 200, "{body}");
    assert_eq!(keys(), before + 2);

    // Tokens that must not pass, each 401 with the reason.
    let mut expired = claims("alice", &["reader"], &[]);
    expired["exp"] = json!(now() - 60);
    expired["iat"] = json!(now() - 3600);
    let mut wrong_aud = claims("alice", &["reader"], &[]);
    wrong_aud["aud"] = json!("someone-else");
    let mut wrong_iss = claims("alice", &["reader"], &[]);
    wrong_iss["iss"] = json!("http://evil.test");
    let good = claims("alice", &["reader"], &[]);
    let alice_parts: Vec<&str> = alice.split('.').collect();
    let tampered = {
        let mut c = good.clone();
        c["resource_access"]["larder"]["roles"] = json!(["reader", "admin"]);
        format!("{}.{}.{}", alice_parts[0], B64URL.encode(c.to_string()), alice_parts[2])
    };
    let refused: Vec<(&str, String, &str)> = vec![
        ("expired", sign(&rsa, "rsa-1", &expired), "expired"),
        ("wrong audience", sign(&rsa, "rsa-1", &wrong_aud), "audience"),
        ("wrong issuer", sign(&rsa, "rsa-1", &wrong_iss), "issuer"),
        ("unknown kid", sign(&stranger, "stranger", &good), "no key 'stranger'"),
        ("bad signature (another key, a known kid)", sign(&stranger, "rsa-1", &good), "signature"),
        ("claims changed after signing", tampered, "signature"),
        ("alg none", forged(json!({"alg": "none", "typ": "JWT", "kid": "rsa-1"}), &good, b""), "not accepted"),
        ("HS256 keyed with the public key", hs256_with_public_key(&rsa, "rsa-1", &good), "not accepted"),
        ("not a JWT", "abc".to_string(), "malformed"),
    ];
    for (what, token, reason) in refused {
        let (status, body) = call("/get-online-features", Some(&token), read_fresh.clone());
        assert_eq!((status, body["error"]["code"].as_str()), (401, Some("unauthenticated")), "{what}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(reason), "{what}: {message}");
    }
    // The expired token is within the 10 s leeway when it expired 5 s ago.
    let mut just_expired = claims("alice", &["reader"], &[]);
    just_expired["exp"] = json!(now() - 5);
    let (status, body) = call("/get-online-features", Some(&sign(&rsa, "rsa-1", &just_expired)), read_fresh.clone());
    assert_eq!(status, 200, "{body}");

    // Keys are cached: repeated calls with known keys read the set once; an unknown kid
    // refetches it, so a key the provider rotates in works at once.
    let reads = provider.jwks_reads.load(Ordering::SeqCst);
    for _ in 0..5 {
        let (status, _) = call("/get-online-features", Some(&sign(&rsa, "rsa-1", &good)), read_fresh.clone());
        assert_eq!(status, 200);
    }
    assert_eq!(provider.jwks_reads.load(Ordering::SeqCst), reads, "known keys are not refetched");
    let rotated = rsa_key(keys_dir.path(), "rsa-2");
    provider.jwks.lock().unwrap()["keys"].as_array_mut().unwrap().push(rotated.jwk.clone());
    let (status, body) = call("/get-online-features", Some(&sign(&rotated, "rsa-2", &good)), read_fresh.clone());
    assert_eq!(status, 200, "a rotated-in key is fetched on first use: {body}");
    assert_eq!(provider.jwks_reads.load(Ordering::SeqCst), reads + 1);
}
