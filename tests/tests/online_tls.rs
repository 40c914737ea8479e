//! The online-store conformance suite against a Redis that speaks only TLS and requires a
//! password (certificates made at test time), plus the TLS options: a CA file, an unverified
//! certificate, the wrong CA, and a client that forgot TLS.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use larder::config::RedisType;
use larder::online::OnlineStore;
use larder::online::redis::{RedisOptions, RedisStore};
use larder_tests::RedisServer;
use larder_tests::conformance::{self, RedisRaw, Subject};

const PASSWORD: &str = "tls-pa55";

static SERVER: Mutex<Weak<RedisServer>> = Mutex::new(Weak::new());

fn server() -> Arc<RedisServer> {
    conformance::shared(&SERVER, || RedisServer::start_tls(PASSWORD))
}

larder_tests::conformance_tests!(conformance::on_server(server()));

fn open(cs: &str) -> RedisStore {
    let opts = RedisOptions { timeout: Some(Duration::from_millis(1000)), ..RedisOptions::default() };
    RedisStore::open(cs, RedisType::Redis, opts).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_tls_redis_is_served_again() {
    let mut server = RedisServer::start_tls(PASSWORD);
    let store = open(&server.connection_string());
    let subject =
        Subject { store: Arc::new(store), raw: Box::new(RedisRaw::new(server.client())), peers: Box::new(()) };
    conformance::restart_recovers(&subject, &mut server).await;
}

#[tokio::test]
async fn tls_options_and_urls() {
    let s = server();
    let tls = s.tls().unwrap();
    // The Feast form with a CA file (what connection_string() gives) and the URL form.
    open(&s.connection_string()).ping().await.unwrap();
    let url = format!("rediss://:{PASSWORD}@127.0.0.1:{}?ssl_ca_certs={}", s.port, tls.ca_cert.display());
    open(&url).ping().await.unwrap();
    // `localhost` is in the certificate too.
    open(&format!("localhost:{},ssl=true,ssl_ca_certs={},password={PASSWORD}", s.port, tls.ca_cert.display()))
        .ping()
        .await
        .unwrap();
    // Self-signed servers: verification off, explicitly.
    open(&format!("{},ssl=true,ssl_cert_reqs=none,password={PASSWORD}", s.addr())).ping().await.unwrap();
}

#[tokio::test]
async fn the_wrong_ca_is_refused_clearly() {
    let s = server();
    let tls = s.tls().unwrap();
    let store =
        open(&format!("{},ssl=true,ssl_ca_certs={},password={PASSWORD}", s.addr(), tls.other_ca_cert.display()));
    let started = std::time::Instant::now();
    let err = store.ping().await.unwrap_err();
    assert_eq!(err.status(), 503);
    let msg = err.to_string().to_lowercase();
    assert!(msg.contains("certificate") || msg.contains("issuer"), "{msg}");
    assert!(started.elapsed() < Duration::from_secs(2));
    // Without any CA option the system roots are used, which do not know the test CA either.
    let err = open(&format!("{},ssl=true,password={PASSWORD}", s.addr())).ping().await.unwrap_err();
    assert_eq!(err.status(), 503, "{err}");
}

#[tokio::test]
async fn a_wrong_password_over_tls_is_a_clear_503() {
    let s = server();
    let tls = s.tls().unwrap();
    let store = open(&format!("{},ssl=true,ssl_ca_certs={},password=nope", s.addr(), tls.ca_cert.display()));
    let err = store.ping().await.unwrap_err();
    assert_eq!(err.status(), 503);
    assert!(err.to_string().contains("credentials"), "{err}");
    assert!(!err.to_string().contains("nope"));
}

#[tokio::test]
async fn forgetting_tls_fails_within_the_timeout() {
    let s = server();
    let store = open(&format!("{},password={PASSWORD}", s.addr()));
    let started = std::time::Instant::now();
    let err = store.ping().await.unwrap_err();
    assert_eq!(err.status(), 503, "{err}");
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_missing_ca_file_is_a_config_error_at_open() {
    let err = RedisStore::open(
        "127.0.0.1:1,ssl=true,ssl_ca_certs=/nonexistent/ca.pem",
        RedisType::Redis,
        RedisOptions::default(),
    )
    .err()
    .unwrap();
    assert_eq!(err.code(), "config_invalid");
    assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
}
