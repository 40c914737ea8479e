//! Redis Cluster: commands grouped per node, one pipeline per node, all nodes at once.
//!
//! The redis crate's cluster client routes a pipeline as a whole and refuses one whose keys
//! live in different slots. Feast's keys have no hash tags, so the 100 keys of a request sit in
//! ~100 slots; one command per round trip would cost 100 round trips. Redis itself only
//! requires each *command* to address a slot the receiving node owns, so a pipeline of
//! single-key commands whose slots all belong to one node is fine. This module keeps its own
//! copy of the slot map (`CLUSTER SLOTS`), groups commands by owning node, and sends each group
//! to the node of its first key through the crate's connection (which owns the sockets, TLS,
//! AUTH and reconnection).
//!
//! When the cluster changes under us (resharding, failover), a group may come back with
//! MOVED/ASK/TRYAGAIN: the slot map is refreshed and those commands are sent again one by one
//! through the crate's ordinary routing, which follows redirects. Re-sending is safe: reads
//! are reads, and writes are newest-wins scripts or whole-row overwrites (see `retry.rs`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use ::redis::cluster::{ClusterClient, ClusterClientBuilder};
use ::redis::cluster_async::ClusterConnection;
use ::redis::cluster_routing::{
    MultipleNodeRoutingInfo, ResponsePolicy, Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr,
};
use ::redis::{Cmd, ErrorKind, Pipeline, RedisError, RedisResult, ServerErrorKind, TlsMode, Value, cmd};
use futures::future::join_all;

use super::Reply;
use super::auth::IamTokens;
use super::connection::RedisTarget;
use crate::error::{Error, Result};

pub use crate::keys::{SLOTS, slot};
const UNOWNED: u16 = u16::MAX;

/// Which node owns each slot, by node index (nodes are told apart by their cluster ids).
#[derive(Debug, Clone)]
pub(crate) struct SlotMap {
    owner: Vec<u16>,
    nodes: Vec<String>,
}

impl SlotMap {
    fn empty() -> Self {
        SlotMap { owner: vec![UNOWNED; SLOTS], nodes: Vec::new() }
    }

    fn owner(&self, slot: u16) -> Option<usize> {
        match self.owner[slot as usize] {
            UNOWNED => None,
            n => Some(n as usize),
        }
    }

    /// Parses a `CLUSTER SLOTS` answer: `[[start, end, [host, port, id, ...], replicas...], ...]`.
    pub(crate) fn parse(v: &Value) -> std::result::Result<SlotMap, String> {
        let Value::Array(ranges) = v else {
            return Err(format!("CLUSTER SLOTS answered {v:?}"));
        };
        let mut map = SlotMap::empty();
        for range in ranges {
            let Value::Array(parts) = range else {
                return Err("a CLUSTER SLOTS range is not an array".into());
            };
            let (Some(Value::Int(start)), Some(Value::Int(end)), Some(Value::Array(primary))) =
                (parts.first(), parts.get(1), parts.get(2))
            else {
                return Err("a CLUSTER SLOTS range lacks start, end or primary".into());
            };
            if !(0..SLOTS as i64).contains(start) || !(*start..SLOTS as i64).contains(end) {
                return Err(format!("CLUSTER SLOTS range {start}-{end} is out of bounds"));
            }
            let text = |v: Option<&Value>| match v {
                Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
                Some(Value::SimpleString(s)) => s.clone(),
                Some(Value::Int(i)) => i.to_string(),
                _ => String::new(),
            };
            // The id is unique; host:port is the fallback for servers that omit it.
            let id = match text(primary.get(2)) {
                id if !id.is_empty() => id,
                _ => format!("{}:{}", text(primary.first()), text(primary.get(1))),
            };
            let n = match map.nodes.iter().position(|x| *x == id) {
                Some(n) => n,
                None => {
                    map.nodes.push(id);
                    map.nodes.len() - 1
                }
            };
            for s in *start..=*end {
                map.owner[s as usize] = n as u16;
            }
        }
        Ok(map)
    }
}

pub(crate) struct Cluster {
    client: ClusterClient,
    conn: tokio::sync::OnceCell<ClusterConnection>,
    map: RwLock<Arc<SlotMap>>,
    /// Bumped on every refresh, so concurrent callers that saw the same stale map refresh once.
    map_version: AtomicU64,
    refreshing: tokio::sync::Mutex<()>,
}

impl Cluster {
    pub fn new(target: &RedisTarget, timeout: Duration, retries: u32, tokens: Option<IamTokens>) -> Result<Self> {
        if target.db != 0 {
            return Err(Error::Config(format!(
                "Redis connection_string: db={} with redis_type redis_cluster: a Redis Cluster has only database 0",
                target.db
            )));
        }
        let nodes = target.nodes.iter().map(|n| target.connection_info(n)).collect::<Result<Vec<_>>>()?;
        // At least one retry inside the crate, so a single command it routes follows a
        // MOVED/ASK redirect; the policy above bounds the whole call anyway.
        let mut builder = ClusterClientBuilder::new(nodes)
            .connection_timeout(timeout)
            .response_timeout(timeout)
            .retries(retries.max(2));
        if let Some(tls) = &target.tls {
            builder = builder.tls(if tls.verify_certificate { TlsMode::Secure } else { TlsMode::Insecure });
            if tls.verify_certificate && !tls.verify_hostname {
                builder = builder.danger_accept_invalid_hostnames(true);
            }
            if let Some(certs) = target.certificates()? {
                builder = builder.certs(certs);
            }
        }
        if let Some(tokens) = tokens {
            builder = builder.set_credentials_provider(tokens);
        }
        let client = builder.build().map_err(|e| Error::Config(format!("Redis cluster {}: {e}", target.describe())))?;
        Ok(Cluster {
            client,
            conn: tokio::sync::OnceCell::new(),
            map: RwLock::new(Arc::new(SlotMap::empty())),
            map_version: AtomicU64::new(0),
            refreshing: tokio::sync::Mutex::new(()),
        })
    }

    fn snapshot(&self) -> (Arc<SlotMap>, u64) {
        // Version first: a refresh that lands in between only makes us refresh once more.
        let version = self.map_version.load(Ordering::Acquire);
        (self.map.read().unwrap_or_else(|p| p.into_inner()).clone(), version)
    }

    async fn connection(&self) -> RedisResult<ClusterConnection> {
        let conn = self.conn.get_or_try_init(|| self.client.get_async_connection()).await?.clone();
        if self.map_version.load(Ordering::Acquire) == 0 {
            self.refresh_map(&conn, 0).await?;
        }
        Ok(conn)
    }

    /// Reloads the slot map unless someone did since `seen` was read.
    async fn refresh_map(&self, conn: &ClusterConnection, seen: u64) -> RedisResult<()> {
        let _one_at_a_time = self.refreshing.lock().await;
        if self.map_version.load(Ordering::Acquire) != seen {
            return Ok(());
        }
        let mut c = cmd("CLUSTER");
        c.arg("SLOTS");
        let answer = conn.clone().route_command(c, RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random)).await?;
        let map = SlotMap::parse(&answer)
            .map_err(|e| RedisError::from((ErrorKind::UnexpectedReturnType, "bad CLUSTER SLOTS", e)))?;
        *self.map.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(map);
        self.map_version.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// Sends single-key commands, `keys[i]` being the key of `cmds[i]`: one pipeline per
    /// owning node, concurrently. One reply per command, in order.
    pub async fn exec(&self, pipe: &Pipeline, keys: &[&[u8]]) -> RedisResult<Vec<Reply>> {
        let cmds: Vec<&Cmd> = pipe.cmd_iter().collect();
        let conn = self.connection().await?;
        let (map, version) = self.snapshot();
        let mut groups: Vec<Vec<usize>> = vec![Vec::new(); map.nodes.len()];
        let mut redo: Vec<usize> = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            match map.owner(slot(key)) {
                Some(n) => groups[n].push(i),
                None => redo.push(i),
            }
        }
        let sends = groups.into_iter().filter(|g| !g.is_empty()).map(|idx| {
            let mut group = Pipeline::with_capacity(idx.len());
            for &i in &idx {
                group.add_command((*cmds[i]).clone());
            }
            let route = SingleNodeRoutingInfo::SpecificNode(Route::with_key(keys[idx[0]], SlotAddr::Master));
            let mut c = conn.clone();
            async move {
                let n = idx.len();
                let r = c.route_pipeline(group, 0, n, route).await;
                (idx, r)
            }
        });
        let mut out: Vec<Option<Reply>> = (0..cmds.len()).map(|_| None).collect();
        for (idx, result) in join_all(sends).await {
            match result {
                Ok(values) if values.len() == idx.len() => {
                    for (i, v) in idx.into_iter().zip(values) {
                        let r = super::reply(v);
                        if r.as_ref().is_err_and(needs_rerouting) {
                            redo.push(i);
                        } else {
                            out[i] = Some(r);
                        }
                    }
                }
                Ok(values) => {
                    return Err(RedisError::from((
                        ErrorKind::UnexpectedReturnType,
                        "pipeline answer has the wrong length",
                        format!("{} replies for {} commands", values.len(), idx.len()),
                    )));
                }
                Err(e) if needs_rerouting(&e) => redo.extend(idx),
                Err(e) => return Err(e),
            }
        }
        if !redo.is_empty() {
            if let Err(e) = self.refresh_map(&conn, version).await {
                tracing::warn!(error = %e, "cannot refresh the Redis Cluster slot map");
            }
            let singles = redo.into_iter().map(|i| {
                let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::with_key(
                    keys[i],
                    SlotAddr::Master,
                )));
                let mut c = conn.clone();
                let command = (*cmds[i]).clone();
                async move { (i, c.route_command(command, route).await) }
            });
            for (i, result) in join_all(singles).await {
                match result {
                    Ok(v) => out[i] = Some(super::reply(v)),
                    // A connection problem fails the call (the policy may retry it whole); a
                    // command's own error (NOSCRIPT, WRONGTYPE) is that command's reply.
                    Err(e) if super::retry::is_retryable(&e) || e.kind() == ErrorKind::Io => {
                        return Err(e);
                    }
                    Err(e) => out[i] = Some(Err(e)),
                }
            }
        }
        out.into_iter()
            .map(|r| r.ok_or_else(|| RedisError::from((ErrorKind::Client, "a command was left unanswered"))))
            .collect()
    }

    /// One slot of each primary, one per primary: a command routed by it reaches that primary.
    /// SCAN walks only the keys of the node it is sent to, so a sample of the cluster's keys
    /// needs a SCAN per primary; replicas hold copies and are left out.
    pub async fn primary_slots(&self) -> RedisResult<Vec<u16>> {
        self.connection().await?;
        let (map, _) = self.snapshot();
        let mut first: Vec<Option<u16>> = vec![None; map.nodes.len()];
        for (slot, &owner) in map.owner.iter().enumerate() {
            if owner != UNOWNED && first[owner as usize].is_none() {
                first[owner as usize] = Some(slot as u16);
            }
        }
        Ok(first.into_iter().flatten().collect())
    }

    /// One command to the primary that owns `slot` (a cursor of one node's SCAN must go back
    /// to that node).
    pub async fn on_primary_of(&self, slot: u16, command: Cmd) -> RedisResult<Value> {
        let mut conn = self.connection().await?;
        let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::new(slot, SlotAddr::Master)));
        conn.route_command(command, route).await.and_then(super::reply)
    }

    /// One command to every primary (SCRIPT LOAD, PING).
    pub async fn all_primaries(&self, command: Cmd) -> RedisResult<Value> {
        let mut conn = self.connection().await?;
        let routing = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, Some(ResponsePolicy::AllSucceeded)));
        conn.route_command(command, routing).await.and_then(super::reply)
    }
}

/// A reply that says the key lives elsewhere now, or that the cluster is mid-change.
fn needs_rerouting(e: &RedisError) -> bool {
    matches!(
        e.kind(),
        ErrorKind::Server(ServerErrorKind::Moved | ServerErrorKind::Ask | ServerErrorKind::TryAgain)
            | ErrorKind::ClusterConnectionNotFound
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis() {
        // The Redis Cluster specification's check value; slots computed apart from this code
        // (Python: `binascii.crc_hqx(tag_or_key, 0) % 16384`, the tag rule applied by hand).
        assert_eq!(crc16::State::<crc16::XMODEM>::calculate(b"123456789"), 0x31C3);
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"bar"), 5061);
        assert_eq!(slot(b""), 0);
        assert_eq!(slot(b"{user1000}.following"), 3443, "the tag, user1000");
        assert_eq!(slot(b"user1000"), 3443);
        assert_eq!(slot(b"foo{}{bar}"), 8363, "an empty tag: the whole key");
        assert_eq!(slot(b"foo{{bar}}zap"), 4015, "the tag is {{bar");
        assert_eq!(slot(b"a{b}c{d}"), 3300, "the first tag only");
        // Feast's key for driver_id=1001 in project feast_demo (binary, no tag).
        let mut key = b"\x01\0\0\0\x02\0\0\0\x09\0\0\0driver_id\x04\0\0\0\x08\0\0\0\xe9\x03\0\0\0\0\0\0".to_vec();
        key.extend_from_slice(b"feast_demo");
        assert_eq!(slot(&key), 13109);
    }

    #[test]
    fn parses_cluster_slots() {
        let node = |host: &str, port: i64, id: &str| {
            Value::Array(vec![Value::BulkString(host.into()), Value::Int(port), Value::BulkString(id.into())])
        };
        let answer = Value::Array(vec![
            Value::Array(vec![
                Value::Int(0),
                Value::Int(5460),
                node("127.0.0.1", 7000, "a"),
                node("127.0.0.1", 7003, "r"),
            ]),
            Value::Array(vec![Value::Int(5461), Value::Int(10922), node("127.0.0.1", 7001, "b")]),
            Value::Array(vec![Value::Int(10923), Value::Int(16383), node("127.0.0.1", 7002, "c")]),
        ]);
        let map = SlotMap::parse(&answer).unwrap();
        assert_eq!(map.nodes, ["a", "b", "c"]);
        assert_eq!((map.owner(0), map.owner(5461), map.owner(16383)), (Some(0), Some(1), Some(2)));
        let partial = Value::Array(vec![Value::Array(vec![Value::Int(0), Value::Int(10), node("h", 1, "")])]);
        let map = SlotMap::parse(&partial).unwrap();
        assert_eq!((map.owner(10), map.owner(11)), (Some(0), None));
        assert_eq!(map.nodes, ["h:1"]);
        assert!(
            SlotMap::parse(&Value::Array(vec![Value::Array(vec![
                Value::Int(0),
                Value::Int(20000),
                node("h", 1, "x")
            ])]))
            .is_err()
        );
        assert!(SlotMap::parse(&Value::Nil).is_err());
    }
}
