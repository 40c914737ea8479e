//! Redis credentials that are not in the connection string (`LARDER_REDIS_AUTH`), against real
//! redis-servers with ACL users: ElastiCache IAM tokens (standalone and cluster, renewed on
//! reconnect) and a password from Secrets Manager (moto_server). The token itself is checked
//! against botocore's own presigner, computed independently in the test virtualenv.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use larder::config::RedisType;
use larder::online::OnlineStore;
use larder::online::redis::auth::IamSigner;
use larder::online::redis::{AuthSetting, IamTokens, RedisOptions, RedisStore, RedisTarget};
use larder_tests::{MotoServer, RedisCluster, RedisServer, run, venv_bin};
use redis::ConnectionLike;

const BOTOCORE_PRESIGN: &str = r#"
import datetime, sys
from unittest import mock
import botocore.auth, botocore.awsrequest, botocore.credentials

access_key, secret_key, session, region, user, cache, serverless, epoch = sys.argv[1:]
creds = botocore.credentials.Credentials(access_key, secret_key, session or None)
params = {"Action": "connect", "User": user}
if serverless == "true":
    params["ResourceType"] = "ServerlessCache"
request = botocore.awsrequest.AWSRequest(method="GET", url="https://" + cache + "/", params=params)
at = datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc).replace(tzinfo=None)
with mock.patch("botocore.auth.get_current_datetime", return_value=at):
    botocore.auth.SigV4QueryAuth(creds, "elasticache", region, expires=900).add_auth(request)
print(request.prepare().url[len("https://"):])
"#;

fn botocore_token(c: &Credentials, signer: &IamSigner, epoch: u64) -> String {
    let out = run(std::process::Command::new(venv_bin("python")).args([
        "-c",
        BOTOCORE_PRESIGN,
        c.access_key_id(),
        c.secret_access_key(),
        c.session_token().unwrap_or(""),
        &signer.region,
        &signer.user,
        &signer.cache,
        if signer.serverless { "true" } else { "false" },
        &epoch.to_string(),
    ]));
    out.trim().to_string()
}

/// The query of a token as sorted `name=value` pairs (botocore and the SDK order them differently).
fn query(token: &str) -> (String, Vec<String>) {
    let (host_path, q) = token.split_once('?').unwrap();
    let mut pairs: Vec<String> = q.split('&').map(str::to_string).collect();
    pairs.sort();
    (host_path.to_string(), pairs)
}

#[test]
fn iam_tokens_equal_botocores_presigned_urls() {
    let at = 1_790_000_123u64;
    for (signer, credentials) in [
        (
            IamSigner { user: "larder".into(), cache: "features".into(), serverless: true, region: "eu-west-1".into() },
            Credentials::new("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", None, None, "t"),
        ),
        (
            IamSigner {
                user: "app user+1".into(),
                cache: "prod-rg".into(),
                serverless: false,
                region: "us-east-1".into(),
            },
            Credentials::new("ASIAEXAMPLE", "secret/+=", Some("IQoJb3JpZ2luX2VjE/session+token==".into()), None, "t"),
        ),
    ] {
        let ours = signer.token(&credentials, SystemTime::UNIX_EPOCH + Duration::from_secs(at)).unwrap();
        let theirs = botocore_token(&credentials, &signer, at);
        assert_eq!(query(&ours), query(&theirs), "\nours:   {ours}\ntheirs: {theirs}");
    }
}

/// A controllable clock for the token signer.
fn clock(at: SystemTime) -> (Arc<Mutex<SystemTime>>, Arc<dyn Fn() -> SystemTime + Send + Sync>) {
    let now = Arc::new(Mutex::new(at));
    let read = now.clone();
    (now, Arc::new(move || *read.lock().unwrap()))
}

const ACCESS: &str = "~* +hmget +evalsha +script|load +hget +hset +exists +expire +ping +cluster|slots +cluster|shards";

fn acl_set(conn: &mut dyn ConnectionLike, user: &str, password: &str) {
    let reply = redis::cmd("ACL")
        .arg("SETUSER")
        .arg(user)
        .arg("reset")
        .arg("on")
        .arg(format!(">{password}"))
        .arg(ACCESS.split(' ').collect::<Vec<_>>())
        .query::<String>(conn);
    assert_eq!(reply.unwrap(), "OK");
}

async fn ping_and_roundtrip(store: &RedisStore) -> larder::Result<()> {
    store.ping().await
}

/// Builds a store whose tokens come from `tokens`, over `addr`.
fn iam_store(addr: &str, kind: RedisType, tokens: IamTokens) -> RedisStore {
    let mut target = RedisTarget::parse(addr).unwrap();
    target.username = Some(tokens.signer.user.clone());
    let opts = RedisOptions { timeout: Some(Duration::from_millis(1500)), retries: 0, ..RedisOptions::default() };
    RedisStore::with_tokens(target, kind, opts, Some(tokens)).unwrap()
}

fn tokens(clock: Arc<dyn Fn() -> SystemTime + Send + Sync>) -> (IamTokens, Credentials) {
    let credentials = Credentials::new("AKID", "secret", Some("session".into()), None, "test");
    let signer =
        IamSigner { user: "larder".into(), cache: "features".into(), serverless: true, region: "us-east-1".into() };
    let tokens = IamTokens {
        signer,
        credentials: SharedCredentialsProvider::new(credentials.clone()),
        refresh: Duration::from_secs(3600),
        clock,
    };
    (tokens, credentials)
}

#[tokio::test]
async fn iam_tokens_authenticate_and_every_reconnect_signs_a_fresh_one() {
    let redis = RedisServer::start();
    let t1 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000);
    let (now, read) = clock(t1);
    let (tokens, credentials) = tokens(read);
    let signer = tokens.signer.clone();
    let mut admin = redis.client();
    acl_set(&mut admin, "larder", &signer.token(&credentials, t1).unwrap());

    let store = iam_store(&redis.addr(), RedisType::Redis, tokens.clone());
    ping_and_roundtrip(&store).await.expect("the token signed now is the user's password");

    // Twenty minutes on: the old token is no longer accepted, only the new one. The open
    // connection stays authenticated (as ElastiCache keeps it); a reconnect signs afresh.
    let t2 = t1 + Duration::from_secs(1200);
    *now.lock().unwrap() = t2;
    acl_set(&mut admin, "larder", &signer.token(&credentials, t2).unwrap());
    ping_and_roundtrip(&store).await.expect("an authenticated connection stays so");
    let killed: i64 = redis::cmd("CLIENT").arg("KILL").arg("USER").arg("larder").query(&mut admin).unwrap();
    assert!(killed >= 1);
    let mut reconnected = false;
    for _ in 0..3 {
        // The first call after the kill may find the dead connection; the next reconnects.
        if store.ping().await.is_ok() {
            reconnected = true;
            break;
        }
    }
    assert!(reconnected, "a reconnect authenticates with a token signed at the new time");

    // A signer whose clock is off signs tokens the server does not know: refused, and said so.
    let (_, wrong) = clock(t2 + Duration::from_secs(60));
    let (stale, _) = self::tokens(wrong);
    let err = iam_store(&redis.addr(), RedisType::Redis, stale).ping().await.unwrap_err();
    assert!(err.to_string().contains("refused the credentials"), "{err}");
}

#[tokio::test]
async fn iam_tokens_authenticate_on_a_cluster() {
    let cluster = RedisCluster::start();
    let t1 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000);
    let (_, read) = clock(t1);
    let (tokens, credentials) = tokens(read);
    let token = tokens.signer.token(&credentials, t1).unwrap();
    for node in &cluster.nodes {
        acl_set(&mut node.client(), "larder", &token);
    }
    let store = iam_store(&cluster.nodes[0].addr(), RedisType::RedisCluster, tokens);
    store.ping().await.expect("every node accepts the token");
    // Reads and writes route to every node with the same credentials.
    let registry = larder::registry::yaml::parse(
        "entities: {driver: {join_key: driver_id, type: Int64}}\nsources: {s: {type: file, path: x.parquet, timestamp_field: ts}}\nfeature_views: {v: {entities: [driver], source: s, features: {f: Int64}}}\n",
        "features.yaml",
        "p",
        3,
    )
    .unwrap();
    let view = &registry.feature_views["v"];
    let rows: Vec<_> = (0..50)
        .map(|i| {
            larder::online::WriteRow::from_json(
                view,
                "p",
                &[serde_json::json!(i)],
                &[serde_json::json!(i)],
                larder::time::EventTime::new(1_700_000_000, 0),
            )
            .unwrap()
        })
        .collect();
    let stats = store
        .write(&larder::online::ViewWrite::for_view(view, rows, larder::online::WriteMode::NewestWins, None))
        .await
        .unwrap();
    assert_eq!(stats.written, 50);
}

#[tokio::test]
async fn a_password_from_secrets_manager() {
    let moto = MotoServer::start();
    moto.export_env();
    let redis = RedisServer::start();
    acl_set(&mut redis.client(), "app", "from-the-secret");
    let sm = larder_tests::aws::secrets_manager().await;
    let arn = sm
        .create_secret()
        .name("larder/redis")
        .secret_string(r#"{"username": "app", "password": "from-the-secret"}"#)
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_string();
    let aws = larder::aws::Aws::new();

    let mut target = RedisTarget::parse(&redis.addr()).unwrap();
    AuthSetting::Secret { secret_id: arn.clone() }.resolve(&mut target, &aws).await.unwrap();
    assert_eq!(target.username.as_deref(), Some("app"));
    assert!(!format!("{target:?}").contains("from-the-secret"), "never in a Debug line");
    let store = RedisStore::new(target, RedisType::Redis, RedisOptions::default()).unwrap();
    store.ping().await.expect("the secret's user and password authenticate");

    // A secret that is not there fails at start, naming it.
    let mut target = RedisTarget::parse(&redis.addr()).unwrap();
    let Err(err) = AuthSetting::Secret { secret_id: "larder/missing".into() }.resolve(&mut target, &aws).await else {
        panic!("a missing secret must fail")
    };
    assert!(err.to_string().contains("larder/missing") && err.status() == 500, "{err}");
}
