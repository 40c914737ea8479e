//! The online store: where served features live.
//!
//! [`OnlineStore`] is the contract every operation uses. It is deliberately close to Redis's
//! data model (a hash per entity key, fields named by `keys`), because that layout *is* the
//! Feast compatibility surface:
//! - [`OnlineStore::read`] is one round trip of HMGETs;
//! - [`OnlineStore::write`] writes rows of one view, newest event wins, atomically per key;
//!   [`OnlineStore::write_views`] several views at once (Redis: one call per entity hash).
//!
//! The semantics on top (which fields to read for which views, what "missing" and "null"
//! mean, how rows are encoded) live in this module once, in [`read_views`] and [`WriteRow`],
//! so every backend behaves the same by construction. [`memory::MemoryStore`] implements the
//! trait in process for tests and `larder serve --memory`; [`redis::RedisStore`] is the real
//! one, and [`connect`] builds it from `feature_store.yaml`.

pub mod memory;
pub mod redis;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use crate::aggregate::ViewWindows;
use crate::aggregate::read::{WindowAnswer, WindowReads};
use crate::aggregate::tiles::{KeyOutcome, KeyWrite};
use crate::aws::Aws;
use crate::config::RepoConfig;
use crate::error::{Error, Result};
use crate::registry::FeatureView;
use crate::time::EventTime;
use crate::value::{self, Value};

/// One HMGET: a Redis key and the hash fields to read.
#[derive(Debug, Clone)]
pub struct KeyRead<'a> {
    pub key: &'a [u8],
    pub fields: Vec<&'a [u8]>,
}

/// How a write treats what is already stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Write a row only if its event time is strictly later than the stored one (Feast's
    /// rule; an equal time keeps the stored values). Atomic per key.
    NewestWins,
    /// Feast's `skip_dedup: true`: write without comparing.
    Overwrite,
}

/// How writes treat what is stored, from `online_store` in `feature_store.yaml`
/// (`skip_dedup`, `key_ttl_seconds`); push and materialization write alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteOptions {
    pub mode: WriteMode,
    pub key_ttl_seconds: Option<u64>,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions { mode: WriteMode::NewestWins, key_ttl_seconds: None }
    }
}

impl WriteOptions {
    pub fn from_config(cfg: &RepoConfig) -> Self {
        match &cfg.online_store {
            Some(s) => WriteOptions {
                mode: if s.skip_dedup { WriteMode::Overwrite } else { WriteMode::NewestWins },
                key_ttl_seconds: s.key_ttl_seconds.filter(|t| *t > 0),
            },
            None => WriteOptions::default(),
        }
    }
}

/// One row to write: the Redis key, its event time, and one serialized `Value` per field of
/// [`ViewWrite::fields`] (an empty vector is a null, as Feast stores it).
#[derive(Debug, Clone, PartialEq)]
pub struct WriteRow {
    pub key: Vec<u8>,
    pub event_time: EventTime,
    pub values: Vec<Vec<u8>>,
}

impl WriteRow {
    /// Encodes a row of `view` from typed values, parallel to the view's features.
    pub fn encode(key: Vec<u8>, event_time: EventTime, values: &[Value]) -> WriteRow {
        WriteRow { key, event_time, values: values.iter().map(value::encode).collect() }
    }

    /// A row of `view` from JSON: the entity columns' values in `view.entity_columns` order,
    /// then one value per feature in `view.features` order, each typed by the view's schema.
    /// For tests, benchmarks and tools that write rows without a push request.
    pub fn from_json(
        view: &FeatureView,
        project: &str,
        entity: &[serde_json::Value],
        features: &[serde_json::Value],
        event_time: EventTime,
    ) -> Result<WriteRow> {
        let typed = |j: &serde_json::Value, f: &crate::registry::Field| {
            value::from_json(j, f.dtype).map_err(|e| Error::InvalidValue(format!("{}: {e}", f.name)))
        };
        if entity.len() != view.entity_columns.len() || features.len() != view.features.len() {
            return Err(Error::BadRequest(format!(
                "view '{}' has {} entity columns and {} features; got {} and {} values",
                view.name,
                view.entity_columns.len(),
                view.features.len(),
                entity.len(),
                features.len()
            )));
        }
        let keys = entity.iter().zip(&view.entity_columns).map(|(j, c)| typed(j, c)).collect::<Result<Vec<_>>>()?;
        let key = view.layout.key_encoder.redis_key(&keys.iter().collect::<Vec<_>>(), project)?;
        let values = features.iter().zip(&view.features).map(|(j, f)| typed(j, f)).collect::<Result<Vec<_>>>()?;
        Ok(WriteRow::encode(key, event_time, &values))
    }
}

/// Rows of one feature view.
#[derive(Debug, Clone)]
pub struct ViewWrite<'a> {
    /// `_ts:<view>`.
    pub ts_field: &'a [u8],
    /// The hash fields written for every row, parallel to [`WriteRow::values`].
    pub fields: &'a [[u8; 4]],
    pub rows: Vec<WriteRow>,
    pub mode: WriteMode,
    /// EXPIRE applied to the whole entity hash after a write (`key_ttl_seconds`).
    pub key_ttl_seconds: Option<u64>,
}

impl<'a> ViewWrite<'a> {
    pub fn for_view(view: &'a FeatureView, rows: Vec<WriteRow>, mode: WriteMode, key_ttl_seconds: Option<u64>) -> Self {
        ViewWrite { ts_field: &view.layout.ts_field, fields: &view.layout.feature_fields, rows, mode, key_ttl_seconds }
    }
}

/// What a write did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Rows written.
    pub written: usize,
    /// Rows skipped because the stored (or an earlier row's) event time was the same or later.
    pub skipped: usize,
}

impl std::ops::AddAssign for WriteStats {
    fn add_assign(&mut self, o: WriteStats) {
        self.written += o.written;
        self.skipped += o.skipped;
    }
}

#[async_trait]
pub trait OnlineStore: Send + Sync {
    /// Reads the fields of each key in one round trip. The answer has one entry per read and,
    /// inside, one per field: `None` when the key or the field does not exist.
    async fn read(&self, reads: &[KeyRead<'_>]) -> Result<Vec<Vec<Option<Bytes>>>>;

    /// Writes rows of one view. With [`WriteMode::NewestWins`] each key ends with the row of
    /// the greatest event time, among the stored one and all rows of the batch; ties keep the
    /// earlier (stored, or first in the batch). Only this view's fields are touched.
    async fn write(&self, batch: &ViewWrite<'_>) -> Result<WriteStats>;

    /// Writes rows of several views, each as [`OnlineStore::write`] would; the answer is
    /// parallel to `batches`. Views of one entity share its hash, so a store may apply all of
    /// a key's rows in one step (Redis: one script call covers every view of a key, and
    /// several keys). Atomic per key and view; nothing is promised across views.
    async fn write_views(&self, batches: &[ViewWrite<'_>]) -> Result<Vec<WriteStats>> {
        let mut out = Vec::with_capacity(batches.len());
        for batch in batches {
            out.push(self.write(batch).await?);
        }
        Ok(out)
    }

    /// Applies window aggregation runs to tile keys by the rules of [`crate::aggregate::tiles`]
    /// (Redis: `tiles.lua`, one script call per group of keys); the answer is parallel to
    /// `keys`. Atomic per key.
    async fn aggregate(&self, keys: &[KeyWrite]) -> Result<Vec<KeyOutcome>>;

    /// Up to `limit` keys of `project` (see [`is_project_key`]), in no particular order, each
    /// once. A sample, not a listing: operators ask "how fresh is what is stored" without
    /// knowing any entity, and a store of millions of keys must answer that without walking
    /// them all, so a store stops as soon as it has `limit` (Redis: `SCAN ... MATCH *<project>`
    /// with a bounded `COUNT`, on every primary of a cluster). Fewer than `limit` means the
    /// store holds no more.
    async fn sample_keys(&self, project: &str, limit: usize) -> Result<Vec<Vec<u8>>>;

    /// Checks the store answers (used by `/health`).
    async fn ping(&self) -> Result<()>;

    /// A short description for logs and health output (no secrets).
    fn describe(&self) -> String;
}

/// A shared store is a store (a test wraps the `Arc` a connection gives).
#[async_trait]
impl<S: OnlineStore + ?Sized> OnlineStore for std::sync::Arc<S> {
    async fn read(&self, reads: &[KeyRead<'_>]) -> Result<Vec<Vec<Option<Bytes>>>> {
        (**self).read(reads).await
    }
    async fn write(&self, batch: &ViewWrite<'_>) -> Result<WriteStats> {
        (**self).write(batch).await
    }
    async fn write_views(&self, batches: &[ViewWrite<'_>]) -> Result<Vec<WriteStats>> {
        (**self).write_views(batches).await
    }
    async fn aggregate(&self, keys: &[KeyWrite]) -> Result<Vec<KeyOutcome>> {
        (**self).aggregate(keys).await
    }
    async fn sample_keys(&self, project: &str, limit: usize) -> Result<Vec<Vec<u8>>> {
        (**self).sample_keys(project, limit).await
    }
    async fn ping(&self) -> Result<()> {
        (**self).ping().await
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
}

/// Whether `key` is a key of `project`: the serialized entity key followed by the project's
/// name, nothing in between (`keys.rs`).
///
/// Ending in the name is not enough: a key of project `driver_demo` ends in `demo` too, so
/// where the entity key can be measured (Feast's version 3 layout, the default: a count, then
/// length-prefixed names and values) its end must be exactly where the name begins. A version
/// 2 key cannot be measured (its names carry no length) and is taken on its ending alone; its
/// second word is the first name's text, never the string tag a version 3 name carries, so it
/// is never mistaken for a version 3 key.
pub fn is_project_key(key: &[u8], project: &str) -> bool {
    let Some(entity_len) = key.len().checked_sub(project.len()) else { return false };
    if &key[entity_len..] != project.as_bytes() {
        return false;
    }
    match v3_entity_key_len(key) {
        Some(len) => len == entity_len,
        None => true,
    }
}

/// The length of the version 3 serialized entity key at the start of `key`: `count`, then
/// `count` names (string tag, length, bytes), then `count` values (tag, length, bytes); all
/// numbers u32 little-endian. `None` when `key` does not start with one.
fn v3_entity_key_len(key: &[u8]) -> Option<usize> {
    const TAG_STRING: u32 = 2;
    let word = |at: usize| -> Option<u32> {
        key.get(at..at.checked_add(4)?).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let count = word(0)? as usize;
    // Each join key needs at least 16 bytes; a larger count is not a key of this layout.
    if count.checked_mul(16)? > key.len() {
        return None;
    }
    let mut at = 4;
    for name in 0..2 * count {
        let tag = word(at)?;
        if name < count && tag != TAG_STRING {
            return None;
        }
        let len = word(at + 4)? as usize;
        at = at.checked_add(8)?.checked_add(len)?;
        if at > key.len() {
            return None;
        }
    }
    Some(at)
}

/// Resolves rows of one batch that share a key: keeps, per key, the row with the greatest event
/// time, the first one on ties (Feast skips a later row whose time is not strictly greater).
/// Order of first appearance is kept. Every backend calls this before writing.
pub fn newest_per_key(rows: Vec<WriteRow>) -> (Vec<WriteRow>, usize) {
    let mut index: HashMap<Vec<u8>, usize> = HashMap::with_capacity(rows.len());
    let mut out: Vec<WriteRow> = Vec::with_capacity(rows.len());
    let mut dropped = 0;
    for row in rows {
        match index.get(&row.key) {
            Some(&i) => {
                dropped += 1;
                if row.event_time > out[i].event_time {
                    out[i] = row;
                }
            }
            None => {
                index.insert(row.key.clone(), out.len());
                out.push(row);
            }
        }
    }
    (out, dropped)
}

/// [`newest_per_key`] without copying the rows: the same choice (greatest event time per key,
/// the first on ties, order of first appearance), as references into `rows`.
pub fn newest_per_key_refs(rows: &[WriteRow]) -> (Vec<&WriteRow>, usize) {
    let mut index: HashMap<&[u8], usize> = HashMap::with_capacity(rows.len());
    let mut out: Vec<&WriteRow> = Vec::with_capacity(rows.len());
    for row in rows {
        match index.get(row.key.as_slice()) {
            Some(&i) => {
                if row.event_time > out[i].event_time {
                    out[i] = row;
                }
            }
            None => {
                index.insert(row.key.as_slice(), out.len());
                out.push(row);
            }
        }
    }
    let dropped = rows.len() - out.len();
    (out, dropped)
}

/// The online store `feature_store.yaml` (and the `LARDER_REDIS_*` environment) describes:
/// a [`redis::RedisStore`] for `redis_type` `redis` or `redis_cluster`.
///
/// A bad configuration (connection string, certificate files, environment) is an error here.
/// Redis itself is only warmed up: one PING opens the connection (and loads nothing else), so
/// the first request does not pay for it; if Redis cannot be reached the store is returned
/// anyway, with a warning, and calls answer [`Error::Unavailable`] until Redis is back. A
/// function that starts while Redis is briefly away must still start.
pub async fn connect(cfg: &RepoConfig, aws: &Aws) -> Result<Arc<dyn OnlineStore>> {
    let store = open(cfg, aws).await?;
    match store.ping().await {
        Ok(()) => tracing::info!(store = %store.describe(), "online store connected"),
        Err(e) => {
            tracing::warn!(store = %store.describe(), error = %e.report(), "online store not reachable yet; serving 503 until it is")
        }
    }
    Ok(Arc::new(store))
}

/// [`connect`] for a command run by hand (`larder get`, `larder freshness`): Redis must answer
/// now, or this is the error. A process that serves can wait for Redis to come back; an
/// operator at a prompt wants one line saying Redis cannot be reached, not warnings and then
/// the same error. The check is one PING without retries (nothing logged on the way).
pub async fn connect_now(cfg: &RepoConfig, aws: &Aws) -> Result<Arc<dyn OnlineStore>> {
    let store = open(cfg, aws).await?;
    store.ping_now().await?;
    Ok(Arc::new(store))
}

/// The Redis store the configuration describes, not yet connected.
async fn open(cfg: &RepoConfig, aws: &Aws) -> Result<redis::RedisStore> {
    let redis = cfg.redis()?;
    let mut target = redis::RedisTarget::parse(&redis.connection_string)?;
    // Credentials that are not in the string: an IAM token signer, or a secret's password.
    let tokens = redis::AuthSetting::from_env()?.resolve(&mut target, aws).await?;
    redis::RedisStore::with_tokens(target, redis.redis_type, redis::RedisOptions::from_env()?, tokens)
}

// ---------------------------------------------------------------------------------------------
// Reading views: the semantics shared by every backend.
// ---------------------------------------------------------------------------------------------

/// What to read for one feature view: some of its features, for some entity keys.
#[derive(Debug, Clone)]
pub struct ViewRead<'a> {
    pub view: &'a FeatureView,
    /// Indexes into `view.features`.
    pub features: &'a [usize],
    /// Full Redis keys (serialized entity key + project).
    pub keys: &'a [Vec<u8>],
}

/// A feature's value in one row.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// The field does not exist (the view was written before the feature was added).
    Missing,
    /// Stored as null (an empty or null `Value`).
    Null,
    Value(Value),
}

/// One entity's row of one view.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewRow {
    pub event_time: EventTime,
    /// Parallel to [`ViewRead::features`].
    pub cells: Vec<Cell>,
}

/// What to read of one view's window aggregations: some of them, for some entity keys, as of
/// a time.
#[derive(Debug, Clone)]
pub struct WindowRead<'a> {
    pub view: &'a FeatureView,
    pub windows: &'a ViewWindows,
    /// Indexes into the view's aggregations, each computable.
    pub aggregations: &'a [usize],
    /// Full Redis keys of the entities (their Feast hashes; the tile keys follow from them).
    pub keys: &'a [Vec<u8>],
    pub now_us: i64,
}

/// Reads several views for their keys in one round trip. All fields of views that share an
/// entity key go into one HMGET. The result is parallel to `reads`, and inside to each
/// read's keys: `None` means the view has no row for that entity (no `_ts:<view>` field).
pub async fn read_views(store: &dyn OnlineStore, reads: &[ViewRead<'_>]) -> Result<Vec<Vec<Option<ViewRow>>>> {
    Ok(read_views_and_windows(store, reads, &[]).await?.0)
}

/// [`read_views`], and window aggregations in the same round trip: one HMGET per tile key of
/// the tiles the windows need. The second result is parallel to `windows`, then to each one's
/// keys, then to its aggregations.
pub async fn read_views_and_windows(
    store: &dyn OnlineStore,
    reads: &[ViewRead<'_>],
    windows: &[WindowRead<'_>],
) -> Result<(Vec<Vec<Option<ViewRow>>>, Vec<Vec<Vec<WindowAnswer>>>)> {
    // Where each (view, key) answer sits: which HMGET and from which field offset.
    let mut by_key: HashMap<&[u8], usize> = HashMap::new();
    let mut hmgets: Vec<KeyRead<'_>> = Vec::new();
    let mut slots: Vec<Vec<(usize, usize)>> = Vec::with_capacity(reads.len());
    for r in reads {
        let mut view_slots = Vec::with_capacity(r.keys.len());
        let mut seen_in_view: HashMap<&[u8], (usize, usize)> = HashMap::new();
        for key in r.keys {
            if let Some(slot) = seen_in_view.get(key.as_slice()) {
                view_slots.push(*slot);
                continue;
            }
            let h = *by_key.entry(key.as_slice()).or_insert_with(|| {
                hmgets.push(KeyRead { key: key.as_slice(), fields: Vec::new() });
                hmgets.len() - 1
            });
            let fields = &mut hmgets[h].fields;
            let offset = fields.len();
            fields.extend(r.features.iter().map(|&i| &r.view.layout.feature_fields[i][..]));
            fields.push(&r.view.layout.ts_field);
            seen_in_view.insert(key.as_slice(), (h, offset));
            view_slots.push((h, offset));
        }
        slots.push(view_slots);
    }
    // Tile keys after the entity hashes: (index of the first HMGET, the fields asked).
    let window_reads: Vec<WindowReads> =
        windows.iter().map(|w| WindowReads::new(w.windows, w.aggregations, w.now_us)).collect();
    let tile_keys: Vec<Vec<Vec<u8>>> =
        windows.iter().map(|w| w.keys.iter().map(|k| crate::aggregate::tile_key(&w.view.name, k)).collect()).collect();
    let mut window_first = Vec::with_capacity(windows.len());
    for (wr, keys) in window_reads.iter().zip(&tile_keys) {
        window_first.push(hmgets.len());
        for key in keys {
            hmgets.push(KeyRead { key, fields: wr.fields.iter().map(Vec::as_slice).collect() });
        }
    }
    let answers = if hmgets.is_empty() { Vec::new() } else { store.read(&hmgets).await? };
    if answers.len() != hmgets.len() {
        return Err(Error::internal(format!(
            "online store answered {} reads for {} keys",
            answers.len(),
            hmgets.len()
        )));
    }
    let mut out = Vec::with_capacity(reads.len());
    for (r, view_slots) in reads.iter().zip(slots) {
        let mut rows = Vec::with_capacity(view_slots.len());
        for (h, offset) in view_slots {
            let fields = &answers[h];
            let n = r.features.len();
            let Some(ts_bytes) = fields.get(offset + n).and_then(Option::as_ref) else {
                rows.push(None);
                continue;
            };
            let event_time = EventTime::from_proto_bytes(ts_bytes)
                .map_err(|e| Error::storage(format!("view '{}': {e}", r.view.name)))?;
            let mut cells = Vec::with_capacity(n);
            for (j, &fi) in r.features.iter().enumerate() {
                cells.push(match fields.get(offset + j).and_then(Option::as_ref) {
                    None => Cell::Missing,
                    Some(b) if b.is_empty() => Cell::Null,
                    Some(b) => {
                        let v = value::decode(b).map_err(|e| {
                            Error::storage(format!(
                                "view '{}', feature '{}': {e}",
                                r.view.name, r.view.features[fi].name
                            ))
                        })?;
                        if value::is_null(&v) { Cell::Null } else { Cell::Value(v) }
                    }
                });
            }
            rows.push(Some(ViewRow { event_time, cells }));
        }
        out.push(rows);
    }
    let mut aggregated = Vec::with_capacity(windows.len());
    for ((w, wr), first) in windows.iter().zip(&window_reads).zip(window_first) {
        aggregated
            .push((0..w.keys.len()).map(|k| wr.answers(w.windows, w.aggregations, &answers[first + k])).collect());
    }
    Ok((out, aggregated))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn project_keys_end_exactly_in_the_project() {
        let int64 = |i: i64| Value { val: Some(crate::proto::types::value::Val::Int64Val(i)) };
        let string = |s: &str| Value { val: Some(crate::proto::types::value::Val::StringVal(s.into())) };
        for version in [3, 2] {
            let entity = crate::keys::serialize_entity_key(&["driver_id"], &[&int64(1001)], version).unwrap();
            let key = crate::keys::redis_key(&entity, "demo");
            assert!(is_project_key(&key, "demo"), "v{version}");
            assert!(!is_project_key(&key, "other"), "v{version}");
            assert!(!is_project_key(b"de", "demo"));
        }
        // A version 3 key of `driver_demo` ends in `demo` but is not one of its keys.
        let multi = crate::keys::serialize_entity_key(&["a", "b"], &[&string("x"), &int64(-1)], 3).unwrap();
        let key = crate::keys::redis_key(&multi, "driver_demo");
        assert!(is_project_key(&key, "driver_demo"));
        assert!(!is_project_key(&key, "demo"));
        assert!(!is_project_key(&key, "_demo"));
        // Version 2 keys cannot be measured: their ending decides.
        let v2 =
            crate::keys::redis_key(&crate::keys::serialize_entity_key(&["id"], &[&int64(5)], 2).unwrap(), "p_demo");
        assert!(is_project_key(&v2, "demo") && is_project_key(&v2, "p_demo"));
        // Not an entity key at all: its ending decides too.
        assert!(is_project_key(b"queue:demo", "demo"));
        assert_eq!(v3_entity_key_len(b"\xff\xff\xff\xff"), None);
        assert_eq!(v3_entity_key_len(&[0, 0, 0, 0]), Some(4));
    }

    #[test]
    fn write_rows_from_json_are_typed_by_the_view() {
        let yaml = include_str!("../../../examples/driver/features.yaml");
        let registry = crate::registry::yaml::parse(yaml, "features.yaml", "driver_demo", 3).unwrap();
        let view = &registry.feature_views["driver_hourly_stats"];
        let features = [json!(0.5), json!(0.9), json!(12), json!(33.5), json!(4.5), json!("sf"), json!(true)];
        let row = WriteRow::from_json(view, "driver_demo", &[json!(1001)], &features, EventTime::new(1, 0)).unwrap();
        let key = view
            .layout
            .key_encoder
            .redis_key(&[&value::from_json(&json!(1001), view.entity_columns[0].dtype).unwrap()], "driver_demo")
            .unwrap();
        assert_eq!(row.key, key);
        assert_eq!(row.values.len(), 7);

        let short = WriteRow::from_json(view, "driver_demo", &[json!(1001)], &features[..6], EventTime::new(1, 0));
        assert_eq!(short.unwrap_err().status(), 400);
        let mut wrong = features.clone();
        wrong[2] = json!("twelve");
        let err = WriteRow::from_json(view, "driver_demo", &[json!(1001)], &wrong, EventTime::new(1, 0)).unwrap_err();
        assert!(err.to_string().contains("avg_daily_trips"), "{err}");
    }
}
