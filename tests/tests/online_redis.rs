//! The online-store conformance suite against a standalone `redis-server`, plus what only a
//! real server shows: recovery after a restart, databases, URLs and the `connect` factory.

use std::sync::Arc;
use std::time::Duration;

use larder::config::{RedisType, RepoConfig};
use larder::online::redis::{RedisOptions, RedisStore};
use larder::online::{KeyRead, OnlineStore, ViewWrite, WriteMode, WriteRow};
use larder::time::EventTime;
use larder_tests::RedisServer;
use larder_tests::conformance::{self, RedisRaw, Subject};

larder_tests::conformance_tests!(conformance::on_server(Arc::new(RedisServer::start())));

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_redis_is_served_again_without_a_new_client() {
    let mut server = RedisServer::start();
    let store = RedisStore::open(&server.connection_string(), RedisType::Redis, RedisOptions::default()).unwrap();
    let subject =
        Subject { store: Arc::new(store), raw: Box::new(RedisRaw::new(server.client())), peers: Box::new(()) };
    conformance::restart_recovers(&subject, &mut server).await;
}

fn one_row(key: &[u8], secs: i64) -> (Vec<u8>, Vec<[u8; 4]>, WriteRow) {
    let field = larder::keys::feature_field("v", "a");
    let row = WriteRow { key: key.to_vec(), event_time: EventTime::new(secs, 0), values: vec![vec![0x20, 0x01]] };
    (b"_ts:v".to_vec(), vec![field], row)
}

async fn put(store: &dyn OnlineStore, key: &[u8], secs: i64) -> larder::Result<()> {
    let (ts, fields, row) = one_row(key, secs);
    let w = ViewWrite {
        ts_field: &ts,
        fields: &fields,
        rows: vec![row],
        mode: WriteMode::NewestWins,
        key_ttl_seconds: None,
    };
    store.write(&w).await.map(|_| ())
}

#[tokio::test]
async fn db_option_and_urls_select_the_database() {
    let server = RedisServer::start();
    let by_option =
        RedisStore::open(&format!("{},db=3", server.addr()), RedisType::Redis, RedisOptions::default()).unwrap();
    put(&by_option, b"k-db3", 1).await.unwrap();
    let by_url =
        RedisStore::open(&format!("redis://127.0.0.1:{}/3", server.port), RedisType::Redis, RedisOptions::default())
            .unwrap();
    let field = larder::keys::feature_field("v", "a");
    let got = by_url.read(&[KeyRead { key: b"k-db3", fields: vec![&field] }]).await.unwrap();
    assert_eq!(got[0][0].as_deref(), Some(&[0x20, 0x01][..]));
    // Database 0 does not have it.
    let mut c = server.client();
    let exists: bool = redis::cmd("EXISTS").arg(b"k-db3").query(&mut c).unwrap();
    assert!(!exists);
    let exists: bool =
        redis::pipe().cmd("SELECT").arg(3).ignore().cmd("EXISTS").arg(b"k-db3").query::<(bool,)>(&mut c).unwrap().0;
    assert!(exists);
}

#[tokio::test]
async fn password_and_username_are_used_and_a_wrong_one_is_a_clear_503() {
    let server =
        RedisServer::start_with(&["--requirepass", "s3cret", "--user", "app", "on", ">apppass", "~*", "+@all"]);
    let ok = RedisStore::open(&format!("{},password=s3cret", server.addr()), RedisType::Redis, RedisOptions::default())
        .unwrap();
    put(&ok, b"k", 1).await.unwrap();
    let acl = RedisStore::open(
        &format!("{},username=app,password=apppass", server.addr()),
        RedisType::Redis,
        RedisOptions::default(),
    )
    .unwrap();
    put(&acl, b"k2", 1).await.unwrap();
    let url = RedisStore::open(
        &format!("redis://app:apppass@127.0.0.1:{}", server.port),
        RedisType::Redis,
        RedisOptions::default(),
    )
    .unwrap();
    url.ping().await.unwrap();

    for bad in [
        format!("{},password=wrong", server.addr()),
        server.addr(),
        format!("{},username=app,password=nope", server.addr()),
    ] {
        let store = RedisStore::open(&bad, RedisType::Redis, RedisOptions::default()).unwrap();
        let started = std::time::Instant::now();
        let err = store.ping().await.unwrap_err();
        assert_eq!(err.status(), 503, "{err}");
        let msg = err.to_string();
        assert!(msg.contains("credentials") || msg.contains("NOAUTH") || msg.contains("uthentication"), "{bad}: {msg}");
        assert!(!msg.contains("nope") && !msg.contains("wrong"), "no password in messages: {msg}");
        assert!(started.elapsed() < Duration::from_secs(2), "credentials errors are not retried");
    }
}

#[tokio::test]
async fn connect_builds_the_store_from_feature_store_yaml() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let yaml = "project: p\nregistry: data/registry.db\nprovider: local\nonline_store:\n  type: redis\n  connection_string: ${ADDR}\n  key_ttl_seconds: 60\n";
    std::fs::write(dir.path().join("feature_store.yaml"), yaml).unwrap();
    let addr = server.addr();
    let env = move |name: &str| (name == "ADDR").then(|| addr.clone());
    let cfg = RepoConfig::load_with(Some(dir.path()), &env).unwrap();
    let store = larder::online::connect(&cfg, &larder::aws::Aws::new()).await.unwrap();
    store.ping().await.unwrap();
    assert_eq!(store.describe(), format!("redis {}", server.addr()));

    // A repo without Redis says so.
    let yaml = "project: p\nregistry: data/registry.db\nprovider: local\n";
    std::fs::write(dir.path().join("feature_store.yaml"), yaml).unwrap();
    let cfg = RepoConfig::load_with(Some(dir.path()), &|_| None).unwrap();
    let err = larder::online::connect(&cfg, &larder::aws::Aws::new()).await.err().unwrap();
    assert!(err.to_string().contains("Larder serves from Redis"), "{err}");
}

#[tokio::test]
async fn script_flush_is_survived() {
    let server = RedisServer::start();
    let store = RedisStore::open(&server.connection_string(), RedisType::Redis, RedisOptions::default()).unwrap();
    put(&store, b"k", 1).await.unwrap();
    let _: () = redis::cmd("SCRIPT").arg("FLUSH").query(&mut server.client()).unwrap();
    put(&store, b"k", 2).await.unwrap();
    let mut c = server.client();
    let ts: Vec<u8> = redis::cmd("HGET").arg(b"k").arg(b"_ts:v").query(&mut c).unwrap();
    assert_eq!(ts, EventTime::new(2, 0).to_proto_bytes());
    // The script came back under the same SHA.
    let loaded: Vec<bool> =
        redis::cmd("SCRIPT").arg("EXISTS").arg(larder::online::redis::script::sha()).query(&mut c).unwrap();
    assert_eq!(loaded, vec![true]);
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    // A listener that accepts and then says nothing: the store must give up after the timeout.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let opts = RedisOptions { timeout: Some(Duration::from_millis(300)), ..RedisOptions::default() };
    let store = RedisStore::open(&format!("127.0.0.1:{port}"), RedisType::Redis, opts).unwrap();
    let started = std::time::Instant::now();
    let err = store.read(&[KeyRead { key: b"k", fields: vec![b"f"] }]).await.unwrap_err();
    assert_eq!(err.status(), 503);
    assert!(err.to_string().contains("timed out after 300 ms"), "{err}");
    assert!(started.elapsed() < Duration::from_millis(1500), "{:?}", started.elapsed());
    drop(listener);
}

#[tokio::test]
async fn new_hashes_of_two_views_cost_one_lookup_and_stored_ones_one_per_view() {
    // The script asks EXISTS once for a hash of several views while the hashes it meets are
    // new, and reads each view's time once it meets a stored hash, until a hash stores none of
    // them: a first load pays one lookup per hash, a load of updates one EXISTS per call.
    // Outcomes are the conformance suite's; this pins what each path costs the server.
    let server = RedisServer::start();
    let store = RedisStore::open(&server.connection_string(), RedisType::Redis, RedisOptions::default()).unwrap();
    let mut c = server.client();
    let mut counts = || {
        (
            conformance::command_calls(&mut c, "evalsha"),
            conformance::command_calls(&mut c, "exists"),
            conformance::command_calls(&mut c, "hget"),
        )
    };
    let fields = conformance::two_fields();
    let write = |keys: Vec<String>, secs: i64| {
        let store = &store;
        let fields = &fields;
        async move {
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            let stats = store.write_views(&conformance::two_views(fields, &keys, secs, None)).await.unwrap();
            assert!(stats.iter().all(|s| s.written == keys.len()), "{stats:?}");
        }
    };
    let keys: Vec<String> = (0..100).map(|i| format!("key{i}")).collect();

    // 100 new hashes (calls of 32, 32, 32 and 4 keys): an EXISTS each, no HGET.
    write(keys.clone(), 10).await;
    assert_eq!(counts(), (4, 100, 0));

    // Their updates: each call probes its first hash, finds it and reads times from then on.
    write(keys, 20).await;
    assert_eq!(counts(), (8, 104, 200));

    // One call of a stored hash, then 31 new ones: the stored one and the first new one are
    // read (no time found there), then probing resumes for the other 30.
    let mixed = std::iter::once("key0".to_string()).chain((0..31).map(|i| format!("new{i}"))).collect();
    write(mixed, 30).await;
    assert_eq!(counts(), (9, 104 + 1 + 30, 200 + 4));
}

#[tokio::test]
async fn an_acl_user_with_the_commands_the_readme_lists_reads_and_writes() {
    // README (Configure) lists what a restricted Redis user needs; this holds it to that list.
    let listed = ["+hmget", "+evalsha", "+script|load", "+hget", "+hset", "+exists", "+expire", "+ping"];
    let user = |name: &str, without: &str| {
        let mut rules: Vec<String> = ["--user", name, "on", ">pw", "~*", "-@all"].map(String::from).into();
        rules.extend(listed.iter().filter(|c| **c != without).map(|c| c.to_string()));
        rules
    };
    let args: Vec<String> = user("app", "").into_iter().chain(user("noexists", "+exists")).collect();
    let server = RedisServer::start_with(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let open = |name: &str| {
        let s = format!("{},username={name},password=pw", server.addr());
        RedisStore::open(&s, RedisType::Redis, RedisOptions::default()).unwrap()
    };
    let fields = conformance::two_fields();

    let app = open("app");
    app.ping().await.unwrap();
    // New hashes of two views (EXISTS, HSET, EXPIRE), then an update (HGET), then a read.
    app.write_views(&conformance::two_views(&fields, &["k1", "k2"], 1, Some(3600))).await.unwrap();
    app.write_views(&conformance::two_views(&fields, &["k1"], 2, Some(3600))).await.unwrap();
    let got = app.read(&[KeyRead { key: b"k1", fields: vec![b"_ts:a", &fields[1][0]] }]).await.unwrap();
    assert_eq!(got[0][0].as_deref(), Some(EventTime::new(2, 0).to_proto_bytes().as_slice()));
    assert_eq!(got[0][1].as_deref(), Some([0x20, 7].as_slice()));

    // One command fewer: the write fails with Redis's reason, and nothing is written. A
    // script's own commands are refused with a text that depends on the version: Redis 7.0
    // says it "can't run this command", 7.2 and later (and Valkey) "ACL failure in script".
    let err = open("noexists").write_views(&conformance::two_views(&fields, &["k3", "k4"], 1, None)).await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("can't run this command") || msg.contains("ACL failure"), "{msg}");
    let got = app.read(&[KeyRead { key: b"k3", fields: vec![b"_ts:a"] }]).await.unwrap();
    assert_eq!(got[0][0], None);
}

/// The SHA1 Larder calls the newest-wins script by (`EVALSHA`) is the one a real Redis gives the
/// script's text.
#[test]
fn the_script_sha_is_what_redis_names_the_script() {
    let redis = RedisServer::start();
    let text = include_str!("../../shared/src/online/redis/newest_wins.lua");
    let named: String = redis::cmd("SCRIPT").arg("LOAD").arg(text).query(&mut redis.client()).unwrap();
    assert_eq!(larder::online::redis::script::sha(), named);
}
