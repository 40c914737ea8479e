//! The online-store conformance suite against a 3-primary Redis Cluster (one cluster shared by
//! the suite's tests while they run), plus recovery after a node restart.

use std::sync::{Arc, Mutex, Weak};

use larder::config::RedisType;
use larder::online::OnlineStore;
use larder::online::redis::{RedisOptions, RedisStore};
use larder_tests::RedisCluster;
use larder_tests::conformance::{self, RedisRaw, Restartable, Subject};

static CLUSTER: Mutex<Weak<RedisCluster>> = Mutex::new(Weak::new());

larder_tests::conformance_tests!(conformance::on_cluster(conformance::shared(&CLUSTER, RedisCluster::start)));

/// Stops and restarts the node that owns the suite's key (its slot), keeping its cluster
/// configuration (nodes.conf), then waits for the cluster to be whole again.
struct OneNode<'a>(&'a mut RedisCluster, usize);

impl Restartable for OneNode<'_> {
    fn stop(&mut self) {
        self.0.nodes[self.1].kill();
    }
    fn start(&mut self) {
        self.0.nodes[self.1].restart();
        self.0.wait_until_ok(std::time::Duration::from_secs(30));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_is_served_again_without_a_new_client() {
    let mut cluster = RedisCluster::start();
    let store =
        RedisStore::open(&cluster.connection_string(), RedisType::RedisCluster, RedisOptions::default()).unwrap();
    let subject =
        Subject { store: Arc::new(store), raw: Box::new(RedisRaw::new(cluster.client())), peers: Box::new(()) };
    // Restart the node that owns the key `restart_recovers` writes.
    let reg = conformance::registry("restart", &[("v", &[("id", "Int64")], &[("a", "Float64")])]);
    let id = larder::proto::types::Value { val: Some(larder::proto::types::value::Val::Int64Val(1)) };
    let k = reg.view("v").unwrap().layout.key_encoder.redis_key(&[&id], "restart").unwrap();
    let owner = cluster.owner_of(larder::online::redis::cluster::slot(&k));
    conformance::restart_recovers(&subject, &mut OneNode(&mut cluster, owner)).await;
    subject.store.ping().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_of_one_request_span_every_node() {
    // The grouping per node is only exercised if a request's keys live on several nodes.
    let cluster = conformance::shared(&CLUSTER, RedisCluster::start);
    let reg = conformance::registry("spread", &[("v", &[("id", "Int64")], &[("a", "Float64")])]);
    let v = reg.view("v").unwrap();
    let owners: std::collections::BTreeSet<usize> = (0..100)
        .map(|i| {
            let id = larder::proto::types::Value { val: Some(larder::proto::types::value::Val::Int64Val(i)) };
            cluster.owner_of(larder::online::redis::cluster::slot(
                &v.layout.key_encoder.redis_key(&[&id], "spread").unwrap(),
            ))
        })
        .collect();
    assert_eq!(owners.len(), 3);

    // One request's keys go to their owners directly: written and read back with no node
    // answering MOVED (a wrong grouping would be corrected by redirects, and show here).
    let store =
        RedisStore::open(&cluster.connection_string(), RedisType::RedisCluster, RedisOptions::default()).unwrap();
    let keys: Vec<Vec<u8>> = (0..100)
        .map(|i| {
            let id = larder::proto::types::Value { val: Some(larder::proto::types::value::Val::Int64Val(i)) };
            v.layout.key_encoder.redis_key(&[&id], "spread").unwrap()
        })
        .collect();
    let rows = keys
        .iter()
        .map(|k| larder::online::WriteRow {
            key: k.clone(),
            event_time: larder::time::EventTime::new(1, 0),
            values: vec![vec![]],
        })
        .collect();
    let stats = store
        .write(&larder::online::ViewWrite::for_view(v, rows, larder::online::WriteMode::NewestWins, None))
        .await
        .unwrap();
    assert_eq!(stats.written, 100);
    let rows = larder::online::read_views(&store, &[larder::online::ViewRead { view: v, features: &[0], keys: &keys }])
        .await
        .unwrap();
    assert!(rows[0].iter().all(Option::is_some));
    for n in &cluster.nodes {
        let info: String = redis::cmd("INFO").arg("errorstats").query(&mut n.client()).unwrap();
        assert!(!info.contains("errorstat_MOVED"), "node {} answered MOVED:\n{info}", n.port);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_reads_stored_times_without_asking_whether_hashes_exist() {
    // A cluster's script calls carry one hash each: probing with EXISTS there would cost
    // every update one call more, so the script reads the times straight away.
    let cluster = RedisCluster::start();
    let store =
        RedisStore::open(&cluster.connection_string(), RedisType::RedisCluster, RedisOptions::default()).unwrap();
    let fields = conformance::two_fields();
    let keys: Vec<String> = (0..10).map(|i| format!("key{i}")).collect();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    for secs in [1, 2] {
        let stats = store.write_views(&conformance::two_views(&fields, &keys, secs, None)).await.unwrap();
        assert!(stats.iter().all(|s| s.written == 10), "{stats:?}");
    }
    let total = |command: &str| -> u64 {
        cluster.nodes.iter().map(|n| conformance::command_calls(&mut n.client(), command)).sum()
    };
    assert_eq!((total("evalsha"), total("exists"), total("hget")), (20, 0, 40));
}
