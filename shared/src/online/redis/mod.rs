//! The Redis online store, byte-compatible with Feast's (see `docs/compatibility.md` §1).
//!
//! ```no_run
//! # async fn demo(cfg: &larder::config::RepoConfig) -> larder::Result<()> {
//! use larder::online::redis::{RedisOptions, RedisStore};
//! // From feature_store.yaml (what `larder::online::connect` does):
//! let store = RedisStore::from_config(cfg.redis()?, RedisOptions::from_env()?)?;
//! // Or directly:
//! let store = RedisStore::open("127.0.0.1:6379,password=secret", larder::config::RedisType::Redis, RedisOptions::default())?;
//! # Ok(()) }
//! ```
//!
//! Creating a store does not touch the network: the first call connects (a Lambda that starts
//! while Redis is briefly away still starts, and answers 503 until Redis is back);
//! [`crate::online::connect`] also warms the connection up with a PING.
//!
//! - Reads: all HMGETs of a call in one pipeline, one round trip; on a cluster one pipeline per
//!   node, all nodes at once (`cluster.rs`).
//! - Writes: newest event wins, atomically, `newest_wins.lua` calls carrying every view written
//!   to a key, up to 32 keys per call on a standalone server, one on a cluster (`script.rs`),
//!   called by SHA; pipelines of [`RedisOptions::write_chunk_rows`] keys, a few in flight.
//! - Failures: bounded by [`RedisOptions::timeout`], retried on lost connections, reported as
//!   [`Error::Unavailable`] (`retry.rs`).

pub mod auth;
pub mod cluster;
pub mod connection;
pub mod retry;
pub mod script;
pub mod standalone;

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};

use ::redis::{Cmd, ErrorKind, Pipeline, RedisError, ServerErrorKind, Value, cmd};
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;

pub use self::auth::{AuthSetting, IamTokens};
pub use self::connection::RedisTarget;
use self::retry::Policy;
pub use self::retry::RedisOptions;
use self::script::KeyRows;
use super::{KeyRead, OnlineStore, ViewWrite, WriteMode, WriteRow, WriteStats, is_project_key, newest_per_key_refs};
use crate::aggregate::tiles::{KeyOutcome, KeyWrite, RunStatus};
use crate::config::{OnlineStoreConfig, RedisType};
use crate::error::{Error, Result};

/// One command's answer: its value, or the error Redis answered it with.
pub(crate) type Reply = std::result::Result<Value, RedisError>;

/// A server error carried as a value becomes an `Err`.
pub(crate) fn reply(v: Value) -> Reply {
    match v {
        Value::ServerError(e) => Err(e.into()),
        v => Ok(v),
    }
}

enum Backend {
    Standalone(standalone::Standalone),
    Cluster(cluster::Cluster),
}

impl Backend {
    /// One round trip (per node): a reply per command of `pipe`.
    async fn exec(&self, pipe: &Pipeline, keys: &[&[u8]]) -> ::redis::RedisResult<Vec<Reply>> {
        match self {
            Backend::Standalone(s) => s.exec(pipe).await,
            Backend::Cluster(c) => c.exec(pipe, keys).await,
        }
    }

    /// Where SCAN must go to see every key: the server (`None`), or each primary of a cluster
    /// (a slot it owns).
    async fn key_holders(&self) -> ::redis::RedisResult<Vec<Option<u16>>> {
        match self {
            Backend::Standalone(_) => Ok(vec![None]),
            Backend::Cluster(c) => Ok(c.primary_slots().await?.into_iter().map(Some).collect()),
        }
    }

    /// One command for one of the [`Self::key_holders`].
    async fn on(&self, holder: Option<u16>, command: Cmd) -> ::redis::RedisResult<Value> {
        match (self, holder) {
            (Backend::Cluster(c), Some(slot)) => c.on_primary_of(slot, command).await,
            (Backend::Cluster(c), None) => c.all_primaries(command).await,
            (Backend::Standalone(s), _) => s.query(&command).await,
        }
    }

    /// A command for the server, or for every primary of a cluster.
    async fn everywhere(&self, command: Cmd) -> ::redis::RedisResult<Value> {
        match self {
            Backend::Standalone(s) => s.query(&command).await,
            Backend::Cluster(c) => c.all_primaries(command).await,
        }
    }
}

pub struct RedisStore {
    backend: Backend,
    policy: Policy,
    options: RedisOptions,
    kind: RedisType,
    /// Set once the script is known to be cached on every primary; a NOSCRIPT answer later
    /// (restart, failover, SCRIPT FLUSH) loads it again.
    script_loaded: AtomicBool,
}

impl RedisStore {
    /// The store `feature_store.yaml`'s `online_store` describes.
    pub fn from_config(cfg: &OnlineStoreConfig, options: RedisOptions) -> Result<RedisStore> {
        Self::open(&cfg.connection_string, cfg.redis_type, options)
    }

    /// A store for a Feast `connection_string` or `redis://` URL(s). Checks the string and
    /// reads certificate files; does not connect.
    pub fn open(connection_string: &str, kind: RedisType, options: RedisOptions) -> Result<RedisStore> {
        Self::new(RedisTarget::parse(connection_string)?, kind, options)
    }

    pub fn new(target: RedisTarget, kind: RedisType, options: RedisOptions) -> Result<RedisStore> {
        Self::with_tokens(target, kind, options, None)
    }

    /// A store whose connections authenticate with ElastiCache IAM tokens from `tokens`
    /// (`None`: with the target's own credentials, if any).
    pub fn with_tokens(
        target: RedisTarget,
        kind: RedisType,
        options: RedisOptions,
        tokens: Option<IamTokens>,
    ) -> Result<RedisStore> {
        let timeout = options.timeout.or(target.timeout).unwrap_or(retry::DEFAULT_TIMEOUT);
        let backend = match kind {
            RedisType::Redis => Backend::Standalone(standalone::Standalone::new(&target, timeout, tokens)?),
            RedisType::RedisCluster => {
                Backend::Cluster(cluster::Cluster::new(&target, timeout, options.retries, tokens)?)
            }
        };
        let options = RedisOptions {
            write_chunk_rows: options.write_chunk_rows.max(1),
            write_concurrency: options.write_concurrency.max(1),
            ..options
        };
        Ok(RedisStore {
            backend,
            policy: Policy { timeout, retries: options.retries, store: target.describe() },
            options,
            kind,
            script_loaded: AtomicBool::new(false),
        })
    }

    /// Sends the single-key commands of `pipe` (`keys[i]` the key of the i-th) under the
    /// retry policy. The pipeline is built once and sent again as is on a retry.
    async fn exec(&self, op: &str, pipe: &Pipeline, keys: &[&[u8]]) -> Result<Vec<Reply>> {
        self.policy.run(op, || self.backend.exec(pipe, keys)).await
    }

    /// Loads both scripts (newest-wins and tiles) on every primary.
    async fn load_script(&self) -> Result<()> {
        for (load, sha) in [(script::load as fn() -> Cmd, script::sha()), (script::load_tiles, script::tiles_sha())] {
            match self.policy.run("script load", || self.backend.everywhere(load())).await? {
                Value::BulkString(b) if b == sha.as_bytes() => {}
                other => {
                    return Err(Error::internal(format!(
                        "Redis {}: SCRIPT LOAD answered {other:?}, expected {sha}",
                        self.policy.store
                    )));
                }
            }
        }
        self.script_loaded.store(true, Ordering::Release);
        Ok(())
    }

    /// Window aggregation runs, `tiles.lua` calls of up to [`KEYS_PER_CALL`] tile keys (one on
    /// a cluster, where a call's keys must share a slot) and about [`ARGS_PER_CALL`] arguments.
    async fn aggregate_calls(&self, keys: &[KeyWrite]) -> Result<Vec<KeyOutcome>> {
        let mut calls: Vec<Range<usize>> = Vec::new();
        let (mut start, mut args) = (0, 0);
        let one_per_call = matches!(self.backend, Backend::Cluster(_));
        for (i, k) in keys.iter().enumerate() {
            let a = script::tile_args(k);
            if i > start && (one_per_call || i - start == KEYS_PER_CALL || args + a > ARGS_PER_CALL) {
                calls.push(start..i);
                (start, args) = (i, 0);
            }
            args += a;
        }
        calls.push(start..keys.len());
        let refs: Vec<&KeyWrite> = keys.iter().collect();
        let command = |r: &Range<usize>| script::tiles(&refs[r.clone()]);
        let call_keys: Vec<&[u8]> = calls.iter().map(|r| keys[r.start].key.as_slice()).collect();
        let pipe = pipeline(calls.iter().map(command), calls.len());
        let mut replies = self.exec("aggregate", &pipe, &call_keys).await?;
        let lost: Vec<usize> = (0..replies.len()).filter(|&i| is_noscript(&replies[i])).collect();
        if !lost.is_empty() {
            tracing::info!(store = %self.policy.store, "Redis lost the tiles script; loading it again");
            self.load_script().await?;
            let again_pipe = pipeline(lost.iter().map(|&i| command(&calls[i])), lost.len());
            let again_keys: Vec<&[u8]> = lost.iter().map(|&i| call_keys[i]).collect();
            for (i, r) in lost.into_iter().zip(self.exec("aggregate", &again_pipe, &again_keys).await?) {
                replies[i] = r;
            }
        }
        let mut out = Vec::with_capacity(keys.len());
        for (call, reply) in calls.iter().zip(replies) {
            let answers = match reply {
                Ok(Value::Array(a)) if a.len() == call.len() => a,
                Ok(other) => return Err(self.unexpected(&other, call.len())),
                Err(e) => return Err(self.policy.error("aggregate", &e, 0)),
            };
            for (k, answer) in keys[call.clone()].iter().zip(answers) {
                let letters = match answer {
                    Value::BulkString(b) => b,
                    other => return Err(self.unexpected(&other, call.len())),
                };
                if letters == b"R" {
                    out.push(KeyOutcome::Redo);
                    continue;
                }
                // The run letters, then '+' when the plain row was written.
                let (runs, row_written) = match letters.strip_suffix(b"+") {
                    Some(runs) => (runs, true),
                    None => (&letters[..], false),
                };
                let statuses: Option<Vec<RunStatus>> = runs.iter().map(|&b| RunStatus::from_letter(b)).collect();
                match statuses {
                    Some(runs) if runs.len() == k.runs.len() => out.push(KeyOutcome::Done { runs, row_written }),
                    _ => return Err(self.unexpected(&Value::BulkString(letters), call.len())),
                }
            }
        }
        Ok(out)
    }

    /// Writes one chunk of keys with the newest-wins script: one call per group of keys (see
    /// [`Self::calls`]) carrying every view's row for each. Returns what the script did, per
    /// view of `batches`.
    async fn write_newest_chunk(
        &self,
        batches: &[ViewWrite<'_>],
        ttl: Option<u64>,
        keys: &[KeyRows<'_>],
    ) -> Result<Vec<WriteStats>> {
        let layouts: Vec<script::Layout<'_>> =
            batches.iter().map(|b| script::Layout { ts_field: b.ts_field, fields: b.fields }).collect();
        let calls = self.calls(&layouts, keys);
        let command = |r: &Range<usize>| script::newest_wins(&layouts, &keys[r.clone()], ttl);
        // A cluster routes each call by its key (one per call there); a standalone server
        // ignores them.
        let call_keys: Vec<&[u8]> = calls.iter().map(|r| keys[r.start].key).collect();
        let pipe = pipeline(calls.iter().map(command), calls.len());
        let mut replies = self.exec("write", &pipe, &call_keys).await?;
        let lost: Vec<usize> = (0..replies.len()).filter(|&i| is_noscript(&replies[i])).collect();
        if !lost.is_empty() {
            // The server forgot the script (restart, failover, SCRIPT FLUSH).
            tracing::info!(store = %self.policy.store, "Redis lost the newest-wins script; loading it again");
            self.load_script().await?;
            let again_pipe = pipeline(lost.iter().map(|&i| command(&calls[i])), lost.len());
            let again_keys: Vec<&[u8]> = lost.iter().map(|&i| call_keys[i]).collect();
            let again = self.exec("write", &again_pipe, &again_keys).await?;
            for (i, r) in lost.into_iter().zip(again) {
                replies[i] = r;
            }
        }
        let mut stats = vec![WriteStats::default(); batches.len()];
        for (call, reply) in calls.iter().zip(replies) {
            let masks = match reply {
                Ok(Value::Array(masks)) if masks.len() == call.len() => masks,
                Ok(other) => return Err(self.unexpected(&other, call.len())),
                Err(e) => return Err(self.policy.error("write", &e, 0)),
            };
            for (k, mask) in keys[call.clone()].iter().zip(masks) {
                // Bit j set: the j-th view's row was written.
                let written = match mask {
                    Value::Int(m) if (0..1i64 << k.rows.len()).contains(&m) => m,
                    other => return Err(self.unexpected(&other, call.len())),
                };
                for (j, &(b, _)) in k.rows.iter().enumerate() {
                    if written >> j & 1 == 1 {
                        stats[b].written += 1;
                    } else {
                        stats[b].skipped += 1;
                    }
                }
            }
        }
        Ok(stats)
    }

    /// Up to `limit` keys of `project` from one of the [`Backend::key_holders`]: SCAN with
    /// MATCH on the name's ending (Redis filters, so only matches cross the network), then the
    /// exact check of [`is_project_key`]. Stops as soon as it has `limit`; a SCAN may answer a
    /// key twice (while Redis resizes its table), so keys are kept once.
    async fn scan_holder(&self, holder: Option<u16>, project: &str, limit: usize) -> Result<Vec<Vec<u8>>> {
        let pattern = scan_pattern(project);
        let mut cursor = b"0".to_vec();
        let mut seen: HashSet<Vec<u8>> = HashSet::new();
        let mut out = Vec::new();
        loop {
            let mut c = cmd("SCAN");
            c.arg(&cursor).arg("MATCH").arg(&pattern).arg("COUNT").arg(SCAN_COUNT);
            let answer = self.policy.run("scan", || self.backend.on(holder, c.clone())).await?;
            let (next, keys) = match answer {
                Value::Array(mut parts) if parts.len() == 2 => match (parts.remove(0), parts.remove(0)) {
                    (Value::BulkString(next), Value::Array(keys)) => (next, keys),
                    (next, keys) => return Err(self.unexpected_scan(&Value::Array(vec![next, keys]))),
                },
                other => return Err(self.unexpected_scan(&other)),
            };
            for k in keys {
                let Value::BulkString(k) = k else { return Err(self.unexpected_scan(&k)) };
                if is_project_key(&k, project) && seen.insert(k.clone()) {
                    out.push(k);
                    if out.len() >= limit {
                        return Ok(out);
                    }
                }
            }
            if next == b"0" {
                return Ok(out);
            }
            cursor = next;
        }
    }

    /// PING (every primary of a cluster) under `policy`.
    async fn ping_with(&self, policy: &Policy) -> Result<()> {
        let mut c = cmd("PING");
        c.arg("larder");
        match policy.run("ping", || self.backend.everywhere(c.clone())).await? {
            Value::BulkString(b) if b == b"larder" => Ok(()),
            other => Err(Error::internal(format!("Redis {}: PING answered {other:?}", policy.store))),
        }
    }

    /// One PING, not retried: whether Redis answers right now. For a command run by hand
    /// ([`crate::online::connect_now`]), where a retry would only log warnings before the same
    /// answer; calls after it keep the configured retries.
    pub async fn ping_now(&self) -> Result<()> {
        let once = Policy { timeout: self.policy.timeout, retries: 0, store: self.policy.store.clone() };
        self.ping_with(&once).await
    }

    fn unexpected_scan(&self, answer: &Value) -> Error {
        Error::internal(format!("Redis {}: SCAN answered {answer:?}", self.policy.store))
    }

    fn unexpected(&self, answer: &Value, keys: usize) -> Error {
        Error::internal(format!(
            "Redis {}: the newest-wins script answered {answer:?} for {keys} keys",
            self.policy.store
        ))
    }

    /// Splits a chunk's keys into script calls, as ranges of `keys`. A cluster needs one key per
    /// call (a script's keys must share a slot, and entity keys almost never do); a standalone
    /// server takes up to [`KEYS_PER_CALL`] keys per call, fewer for wide rows so that one call
    /// never holds Redis for long (other clients wait while a script runs), and fewer when the
    /// keys together use more than [`script::MAX_LAYOUTS_PER_CALL`] of the views (`layouts`).
    fn calls(&self, layouts: &[script::Layout<'_>], keys: &[KeyRows<'_>]) -> Vec<Range<usize>> {
        if matches!(self.backend, Backend::Cluster(_)) {
            return (0..keys.len()).map(|i| i..i + 1).collect();
        }
        let mut calls = Vec::with_capacity(keys.len() / KEYS_PER_CALL + 1);
        // The call that last used each view, to count the views the current one names.
        let mut used_by = vec![usize::MAX; layouts.len()];
        let (mut start, mut args, mut named) = (0, 0, 0);
        for (i, k) in keys.iter().enumerate() {
            // The views call `c` does not name yet, and their header arguments (their fields).
            let unnamed = |c: usize| {
                k.rows
                    .iter()
                    .filter(|&&(b, _)| used_by[b] != c)
                    .fold((0, 0), |(n, a), &(b, _)| (n + 1, a + 2 + layouts[b].fields.len()))
            };
            let (new, header) = unnamed(calls.len());
            if i > start
                && (i - start == KEYS_PER_CALL
                    || args + k.args() + header > ARGS_PER_CALL
                    || named + new > script::MAX_LAYOUTS_PER_CALL)
            {
                calls.push(start..i);
                (start, args, named) = (i, 0, 0);
            }
            let (new, header) = unnamed(calls.len());
            args += k.args() + header;
            named += new;
            for &(b, _) in &k.rows {
                used_by[b] = calls.len();
            }
        }
        if start < keys.len() {
            calls.push(start..keys.len());
        }
        calls
    }

    /// Feast's `skip_dedup` write of one view: plain HSETs (and EXPIREs), no comparison.
    async fn write_overwrite(&self, batch: &ViewWrite<'_>) -> Result<WriteStats> {
        // What a sequence of plain overwrites leaves: the last row per key.
        let rows = last_per_key(&batch.rows);
        let superseded = batch.rows.len() - rows.len();
        self.chunked(&rows, WriteStats { written: superseded, skipped: 0 }, |chunk| {
            self.write_overwrite_chunk(batch, chunk)
        })
        .await
    }

    /// Newest-wins writes of views with the same `key_ttl_seconds`: script calls carrying every
    /// view's row for each key. Stats parallel to `batches`.
    async fn write_newest(&self, batches: &[ViewWrite<'_>]) -> Result<Vec<WriteStats>> {
        // Each key once per view: the newest row (ties: the first). That also makes chunks
        // independent, so they can be in flight together.
        let mut stats = vec![WriteStats::default(); batches.len()];
        let per_batch: Vec<Vec<&WriteRow>> = batches
            .iter()
            .zip(&mut stats)
            .map(|(b, s)| {
                let (rows, dropped) = newest_per_key_refs(&b.rows);
                s.skipped = dropped;
                rows
            })
            .collect();
        let keys = group_by_key(&per_batch);
        if keys.is_empty() {
            return Ok(stats);
        }
        if !self.script_loaded.load(Ordering::Acquire) {
            self.load_script().await?;
        }
        let ttl = batches[0].key_ttl_seconds;
        let written = self.chunked(&keys, PerView(stats), |chunk| self.write_newest_chunk(batches, ttl, chunk)).await?;
        Ok(written.0)
    }

    /// Feast's `skip_dedup` write of one chunk of rows (each key at most once).
    async fn write_overwrite_chunk(&self, batch: &ViewWrite<'_>, rows: &[&WriteRow]) -> Result<WriteStats> {
        let mut cmds = Vec::with_capacity(rows.len() * 2);
        let mut cmd_keys = Vec::with_capacity(rows.len() * 2);
        for row in rows {
            let (hset, expire) = script::overwrite(batch, row);
            cmds.push(hset);
            cmd_keys.push(row.key.as_slice());
            if let Some(e) = expire {
                cmds.push(e);
                cmd_keys.push(row.key.as_slice());
            }
        }
        let n = cmds.len();
        let pipe = pipeline(cmds.into_iter(), n);
        for r in self.exec("write", &pipe, &cmd_keys).await? {
            if let Err(e) = r {
                return Err(self.policy.error("write", &e, 0));
            }
        }
        Ok(WriteStats { written: rows.len(), skipped: 0 })
    }

    /// Runs `write` over `items` in chunks of [`RedisOptions::write_chunk_rows`], a few in
    /// flight: Redis works on one while the next is encoded and sent. The chunks share no key,
    /// so the order they land in does not matter.
    async fn chunked<'i, T, F, Fut, C, S>(&self, items: &'i [T], init: S, write: F) -> Result<S>
    where
        F: Fn(&'i [T]) -> Fut,
        Fut: std::future::Future<Output = Result<C>>,
        S: std::ops::AddAssign<C>,
    {
        let mut total = init;
        let mut chunks = items.chunks(self.options.write_chunk_rows);
        let mut in_flight = FuturesUnordered::new();
        loop {
            while in_flight.len() < self.options.write_concurrency {
                match chunks.next() {
                    Some(chunk) => in_flight.push(write(chunk)),
                    None => break,
                }
            }
            match in_flight.next().await {
                Some(done) => total += done?,
                None => return Ok(total),
            }
        }
    }
}

/// Keys SCAN examines per call (its COUNT): enough that a sample of a thousand keys takes a
/// round trip or two, few enough that one call holds Redis for well under a millisecond.
const SCAN_COUNT: usize = 1000;

/// SCAN's MATCH pattern for keys ending in `project`'s name, its glob characters escaped.
fn scan_pattern(project: &str) -> Vec<u8> {
    let mut pattern = b"*".to_vec();
    for &b in project.as_bytes() {
        if matches!(b, b'*' | b'?' | b'[' | b']' | b'\\') {
            pattern.push(b'\\');
        }
        pattern.push(b);
    }
    pattern
}

/// Views per key in a script call at most: the script answers with a bit per view in a Lua
/// number.
const MAX_VIEWS_PER_CALL: usize = 50;

/// Keys per script call at most on a standalone server. The script's fixed cost is paid once
/// per call: 32 keys of one 7-feature view cost about 4.2 us each in Redis against 5.9 us for
/// one key per call, and two views per key 6.0 against 8.5 (redis-benchmark, 2026-11-22).
const KEYS_PER_CALL: usize = 32;

/// Script arguments per call at most (a single wider key still gets its own call): keeps a
/// call of wide rows to well under a millisecond of Redis time.
const ARGS_PER_CALL: usize = 2048;

/// The rows of every batch grouped by key, in order of first appearance (each batch has each
/// key at most once), the batch's index standing for its view. A key with more than
/// [`MAX_VIEWS_PER_CALL`] views gets several entries.
fn group_by_key<'r>(per_batch: &[Vec<&'r WriteRow>]) -> Vec<KeyRows<'r>> {
    if let [rows] = per_batch {
        return rows.iter().map(|&r| KeyRows { key: &r.key, rows: vec![(0, r)] }).collect();
    }
    let mut index: HashMap<&[u8], usize> = HashMap::with_capacity(per_batch.first().map_or(0, Vec::len));
    let mut keys: Vec<KeyRows<'r>> = Vec::new();
    for (b, rows) in per_batch.iter().enumerate() {
        for &r in rows {
            match index.get(r.key.as_slice()) {
                Some(&k) if keys[k].rows.len() < MAX_VIEWS_PER_CALL => keys[k].rows.push((b, r)),
                _ => {
                    index.insert(&r.key, keys.len());
                    keys.push(KeyRows { key: &r.key, rows: vec![(b, r)] });
                }
            }
        }
    }
    keys
}

/// Adds per-view stats of one chunk to the totals.
struct PerView(Vec<WriteStats>);

impl std::ops::AddAssign<Vec<WriteStats>> for PerView {
    fn add_assign(&mut self, chunk: Vec<WriteStats>) {
        for (total, s) in self.0.iter_mut().zip(chunk) {
            *total += s;
        }
    }
}

/// A pipeline of `cmds`; server errors come back in place, one per command, instead of
/// failing the whole pipeline.
fn pipeline(cmds: impl Iterator<Item = Cmd>, n: usize) -> Pipeline {
    let mut pipe = Pipeline::with_capacity(n);
    for c in cmds {
        pipe.add_command(c);
    }
    pipe.ignore_errors();
    pipe
}

fn is_noscript(r: &Reply) -> bool {
    matches!(r, Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript))
}

/// Keeps, per key, the last row of the batch: what a sequence of plain overwrites leaves.
fn last_per_key(rows: &[WriteRow]) -> Vec<&WriteRow> {
    let mut index: HashMap<&[u8], usize> = HashMap::with_capacity(rows.len());
    let mut out: Vec<&WriteRow> = Vec::with_capacity(rows.len());
    for row in rows {
        match index.get(row.key.as_slice()) {
            Some(&i) => out[i] = row,
            None => {
                index.insert(row.key.as_slice(), out.len());
                out.push(row);
            }
        }
    }
    out
}

#[async_trait]
impl OnlineStore for RedisStore {
    async fn read(&self, reads: &[KeyRead<'_>]) -> Result<Vec<Vec<Option<Bytes>>>> {
        // HMGET needs at least one field; a read of no fields has nothing to ask.
        let asked: Vec<usize> = (0..reads.len()).filter(|&i| !reads[i].fields.is_empty()).collect();
        let mut out: Vec<Vec<Option<Bytes>>> = reads.iter().map(|r| vec![None; r.fields.len()]).collect();
        if asked.is_empty() {
            return Ok(out);
        }
        let pipe = pipeline(asked.iter().map(|&i| script::hmget(reads[i].key, &reads[i].fields)), asked.len());
        let keys: Vec<&[u8]> = asked.iter().map(|&i| reads[i].key).collect();
        let replies = self.exec("read", &pipe, &keys).await?;
        for (&i, reply) in asked.iter().zip(replies) {
            let want = reads[i].fields.len();
            let values = match reply {
                Ok(Value::Array(values)) if values.len() == want => values,
                Ok(other) => {
                    return Err(Error::internal(format!("Redis {}: HMGET answered {other:?}", self.policy.store)));
                }
                Err(e) => return Err(self.policy.error("read", &e, 0)),
            };
            for (slot, v) in out[i].iter_mut().zip(values) {
                *slot = match v {
                    Value::Nil => None,
                    Value::BulkString(b) => Some(Bytes::from(b)),
                    other => {
                        return Err(Error::internal(format!(
                            "Redis {}: HMGET answered a field with {other:?}",
                            self.policy.store
                        )));
                    }
                };
            }
        }
        Ok(out)
    }

    async fn write(&self, batch: &ViewWrite<'_>) -> Result<WriteStats> {
        let mut stats = self.write_views(std::slice::from_ref(batch)).await?;
        Ok(stats.pop().unwrap_or_default())
    }

    async fn write_views(&self, batches: &[ViewWrite<'_>]) -> Result<Vec<WriteStats>> {
        for batch in batches {
            if let Some(row) = batch.rows.iter().find(|r| r.values.len() != batch.fields.len()) {
                return Err(Error::internal(format!(
                    "a row to write has {} values for {} fields",
                    row.values.len(),
                    batch.fields.len()
                )));
            }
        }
        let Some(first) = batches.first() else { return Ok(Vec::new()) };
        let shared = batches.iter().all(|b| b.mode == first.mode && b.key_ttl_seconds == first.key_ttl_seconds);
        if shared && first.mode == WriteMode::NewestWins {
            return self.write_newest(batches).await;
        }
        // Plain HSETs gain nothing from sharing a call; differing settings cannot share one.
        let mut out = Vec::with_capacity(batches.len());
        for batch in batches {
            out.push(match batch.mode {
                WriteMode::NewestWins => self.write_newest(std::slice::from_ref(batch)).await?.remove(0),
                WriteMode::Overwrite => self.write_overwrite(batch).await?,
            });
        }
        Ok(out)
    }

    async fn aggregate(&self, keys: &[KeyWrite]) -> Result<Vec<KeyOutcome>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        if !self.script_loaded.load(Ordering::Acquire) {
            self.load_script().await?;
        }
        self.aggregate_calls(keys).await
    }

    async fn sample_keys(&self, project: &str, limit: usize) -> Result<Vec<Vec<u8>>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let holders = self.policy.run("scan", || self.backend.key_holders()).await?;
        // Every primary at once, each for up to `limit`: keys spread evenly over slots, so
        // taking them in turn keeps the sample spread over the cluster.
        let per_holder =
            futures::future::try_join_all(holders.into_iter().map(|h| self.scan_holder(h, project, limit))).await?;
        let mut lists: Vec<std::vec::IntoIter<Vec<u8>>> = per_holder.into_iter().map(Vec::into_iter).collect();
        let mut out = Vec::with_capacity(limit.min(lists.iter().map(|l| l.len()).sum()));
        while out.len() < limit {
            let before = out.len();
            for list in &mut lists {
                if out.len() < limit
                    && let Some(k) = list.next()
                {
                    out.push(k);
                }
            }
            if out.len() == before {
                break;
            }
        }
        Ok(out)
    }

    async fn ping(&self) -> Result<()> {
        self.ping_with(&self.policy).await
    }

    fn describe(&self) -> String {
        let kind = match self.kind {
            RedisType::Redis => "redis",
            RedisType::RedisCluster => "redis cluster",
        };
        format!("{kind} {}", self.policy.store)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::EventTime;

    #[test]
    fn scan_patterns_match_the_project_name_literally() {
        assert_eq!(scan_pattern("driver_demo"), b"*driver_demo");
        assert_eq!(scan_pattern(r"a*b?[c]\d"), br"*a\*b\?\[c\]\\d");
    }

    #[test]
    fn overwrite_keeps_the_last_row_per_key() {
        let row = |k: &[u8], s: i64| WriteRow { key: k.to_vec(), event_time: EventTime::new(s, 0), values: vec![] };
        let rows = vec![row(b"a", 5), row(b"b", 1), row(b"a", 3)];
        let kept: Vec<(Vec<u8>, i64)> =
            last_per_key(&rows).iter().map(|r| (r.key.clone(), r.event_time.secs)).collect();
        assert_eq!(kept, vec![(b"a".to_vec(), 3), (b"b".to_vec(), 1)]);
    }

    #[test]
    fn a_key_counts_its_view_set_and_each_rows_time_and_values() {
        let row = |n: usize| WriteRow { key: b"k".to_vec(), event_time: EventTime::new(1, 0), values: vec![vec![]; n] };
        let (seven, three) = (row(7), row(3));
        // `<view set> <time> <7 values> <time> <3 values>`: what a call's argument limit counts.
        assert_eq!(KeyRows { key: b"k", rows: vec![(0, &seven), (1, &three)] }.args(), 1 + 8 + 4);
        assert_eq!(KeyRows { key: b"k", rows: vec![] }.args(), 1);
    }

    #[test]
    fn calls_keep_to_the_key_argument_and_view_limits() {
        let store = RedisStore::open("127.0.0.1:1", RedisType::Redis, RedisOptions::default()).unwrap();
        let fields = vec![*b"ffff"; 150];
        let layouts: Vec<script::Layout<'_>> =
            (0..300).map(|_| script::Layout { ts_field: b"_ts:v", fields: &fields[..] }).collect();
        let row = |n: usize| WriteRow { key: b"k".to_vec(), event_time: EventTime::new(1, 0), values: vec![vec![]; n] };
        let (narrow, wide, one) = (row(7), row(150), row(1));
        let ranges = |keys: &[KeyRows<'_>], layouts: &[script::Layout<'_>]| -> Vec<(usize, usize)> {
            store.calls(layouts, keys).iter().map(|r| (r.start, r.end)).collect()
        };
        // Small rows of one view: KEYS_PER_CALL keys per call.
        let seven = [script::Layout { ts_field: b"_ts:v", fields: &fields[..7] }];
        let keys: Vec<KeyRows<'_>> = (0..40).map(|_| KeyRows { key: b"k", rows: vec![(0, &narrow)] }).collect();
        assert_eq!(ranges(&keys, &seven), vec![(0, 32), (32, 40)]);
        // Ten keys of 150 values, each of its own view: a view's header (152 arguments) counts
        // too, so 6 keys (6 x 304) fit under ARGS_PER_CALL, not 13.
        let keys: Vec<KeyRows<'_>> = (0..10).map(|i| KeyRows { key: b"k", rows: vec![(i, &wide)] }).collect();
        assert_eq!(ranges(&keys, &layouts), vec![(0, 6), (6, 10)]);
        // Six keys of 50 one-value views each, 300 views: at most 255 named per call.
        let small: Vec<script::Layout<'_>> =
            (0..300).map(|_| script::Layout { ts_field: b"_ts:v", fields: &fields[..1] }).collect();
        let keys: Vec<KeyRows<'_>> =
            (0..6).map(|k| KeyRows { key: b"k", rows: (0..50).map(|j| (k * 50 + j, &one)).collect() }).collect();
        assert_eq!(ranges(&keys, &small), vec![(0, 5), (5, 6)]);
    }

    #[test]
    fn opening_checks_the_string_without_connecting() {
        // Port 1 on loopback: nothing listens, and nothing is attempted until the first call.
        let s = RedisStore::open("127.0.0.1:1,password=pw", RedisType::Redis, RedisOptions::default()).unwrap();
        assert_eq!(s.describe(), "redis 127.0.0.1:1 (auth)");
        let err = RedisStore::open("127.0.0.1:1,db=2", RedisType::RedisCluster, RedisOptions::default()).err().unwrap();
        assert!(err.to_string().contains("only database 0"), "{err}");
        assert!(RedisStore::open("127.0.0.1:1,colour=blue", RedisType::Redis, RedisOptions::default()).is_err());
    }

    #[tokio::test]
    async fn nothing_listening_is_unavailable_quickly() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let opts = RedisOptions { timeout: Some(std::time::Duration::from_millis(500)), ..RedisOptions::default() };
        let s = RedisStore::open(&format!("127.0.0.1:{port}"), RedisType::Redis, opts).unwrap();
        let started = std::time::Instant::now();
        let err = s.ping().await.unwrap_err();
        assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
        assert_eq!(err.status(), 503);
        assert!(err.to_string().contains(&format!("127.0.0.1:{port} cannot be reached")), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }
}
