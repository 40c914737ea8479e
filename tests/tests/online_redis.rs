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
    let store = larder::online::connect(&cfg).await.unwrap();
    store.ping().await.unwrap();
    assert_eq!(store.describe(), format!("redis {}", server.addr()));

    // A repo without Redis says so.
    let yaml = "project: p\nregistry: data/registry.db\nprovider: local\n";
    std::fs::write(dir.path().join("feature_store.yaml"), yaml).unwrap();
    let cfg = RepoConfig::load_with(Some(dir.path()), &|_| None).unwrap();
    let err = larder::online::connect(&cfg).await.err().unwrap();
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

/// Calls of each command the server has run so far, scripts' own calls included.
fn calls(c: &mut redis::Connection, command: &str) -> u64 {
    let info: String = redis::cmd("INFO").arg("commandstats").query(c).unwrap();
    let prefix = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |rest| rest.split(',').next().unwrap().parse().unwrap())
}

#[tokio::test]
async fn new_hashes_of_two_views_cost_one_lookup_and_stored_ones_one_per_view() {
    // The script asks EXISTS once for a hash of several views while the hashes it meets are
    // new, and reads each view's time once it meets a stored hash: a first load pays one
    // lookup per hash, a load of updates one EXISTS per call. Outcomes are the conformance
    // suite's; this pins what each path costs the server.
    let server = RedisServer::start();
    let store = RedisStore::open(&server.connection_string(), RedisType::Redis, RedisOptions::default()).unwrap();
    let mut c = server.client();
    let fields = [[larder::keys::feature_field("a", "x")], [larder::keys::feature_field("b", "x")]];
    let keys: Vec<Vec<u8>> = (0..100).map(|i| format!("key{i}").into_bytes()).collect();
    let write = |secs: i64| {
        let views: Vec<ViewWrite<'_>> = [b"_ts:a".as_slice(), b"_ts:b"]
            .into_iter()
            .zip(&fields)
            .map(|(ts_field, fields)| ViewWrite {
                ts_field,
                fields,
                rows: keys
                    .iter()
                    .map(|k| WriteRow {
                        key: k.clone(),
                        event_time: EventTime::new(secs, 0),
                        values: vec![vec![0x20, 1]],
                    })
                    .collect(),
                mode: WriteMode::NewestWins,
                key_ttl_seconds: None,
            })
            .collect();
        let store = &store;
        async move { store.write_views(&views).await.unwrap() }
    };
    let stats = write(10).await;
    assert!(stats.iter().all(|s| s.written == 100), "{stats:?}");
    assert_eq!((calls(&mut c, "exists"), calls(&mut c, "hget")), (100, 0));

    let (scripts, exists) = (calls(&mut c, "evalsha"), calls(&mut c, "exists"));
    let stats = write(20).await;
    assert!(stats.iter().all(|s| s.written == 100), "{stats:?}");
    let script_calls = calls(&mut c, "evalsha") - scripts;
    assert!(script_calls >= 2, "{script_calls} calls: the keys were meant to span several");
    assert_eq!(calls(&mut c, "exists") - exists, script_calls);
    assert_eq!(calls(&mut c, "hget"), 200);
}
