//! An in-process online store with exactly Redis's semantics: a hash per key, newest event
//! wins per key (compared on the stored `_ts` bytes, as the Redis script does), ties keep the
//! stored row, `key_ttl_seconds` expires the whole hash. For unit tests and
//! `larder serve --memory`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;

use super::{KeyRead, OnlineStore, ViewWrite, WriteMode, WriteStats, is_project_key, newest_per_key};
use crate::aggregate::tiles::{self, KeyOutcome, KeyWrite};
use crate::error::{Error, Result};
use crate::time::EventTime;

#[derive(Default)]
struct Entry {
    fields: HashMap<Vec<u8>, Bytes>,
    expires_at: Option<Instant>,
}

#[derive(Default)]
pub struct MemoryStore {
    data: Mutex<HashMap<Vec<u8>, Entry>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every field of a key (like HGETALL), for tests.
    pub fn hash(&self, key: &[u8]) -> Option<HashMap<Vec<u8>, Bytes>> {
        let data = self.data.lock().unwrap_or_else(|p| p.into_inner());
        data.get(key).filter(|e| !expired(e)).map(|e| e.fields.clone())
    }

    /// Sets one field of a key, as `HSET` would, bypassing the store's rules: lets tests
    /// plant what another writer (or an older Feast) could have left.
    pub fn set_field(&self, key: &[u8], field: &[u8], value: &[u8]) {
        let mut data = self.data.lock().unwrap_or_else(|p| p.into_inner());
        let entry = data.entry(key.to_vec()).or_default();
        if expired(entry) {
            *entry = Entry::default();
        }
        entry.fields.insert(field.to_vec(), Bytes::copy_from_slice(value));
    }

    /// How long until a key expires (like PTTL): `None` for a key without expiry or no key.
    pub fn expires_in(&self, key: &[u8]) -> Option<Duration> {
        let data = self.data.lock().unwrap_or_else(|p| p.into_inner());
        data.get(key)
            .filter(|e| !expired(e))
            .and_then(|e| e.expires_at)
            .map(|t| t.saturating_duration_since(Instant::now()))
    }

    /// Number of live keys.
    pub fn len(&self) -> usize {
        let data = self.data.lock().unwrap_or_else(|p| p.into_inner());
        data.values().filter(|e| !expired(e)).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn expired(e: &Entry) -> bool {
    e.expires_at.is_some_and(|t| Instant::now() >= t)
}

#[async_trait]
impl OnlineStore for MemoryStore {
    async fn read(&self, reads: &[KeyRead<'_>]) -> Result<Vec<Vec<Option<Bytes>>>> {
        let data = self.data.lock().unwrap_or_else(|p| p.into_inner());
        Ok(reads
            .iter()
            .map(|r| match data.get(r.key).filter(|e| !expired(e)) {
                Some(entry) => r.fields.iter().map(|f| entry.fields.get(*f).cloned()).collect(),
                None => vec![None; r.fields.len()],
            })
            .collect())
    }

    async fn write(&self, batch: &ViewWrite<'_>) -> Result<WriteStats> {
        if let Some(row) = batch.rows.iter().find(|r| r.values.len() != batch.fields.len()) {
            return Err(Error::internal(format!(
                "a row to write has {} values for {} fields",
                row.values.len(),
                batch.fields.len()
            )));
        }
        let (rows, mut skipped) = match batch.mode {
            WriteMode::NewestWins => newest_per_key(batch.rows.clone()),
            WriteMode::Overwrite => (batch.rows.clone(), 0),
        };
        let mut data = self.data.lock().unwrap_or_else(|p| p.into_inner());
        let mut written = 0;
        for row in rows {
            let entry = data.entry(row.key.clone()).or_default();
            if expired(entry) {
                *entry = Entry::default();
            }
            if batch.mode == WriteMode::NewestWins {
                let stored = entry.fields.get(batch.ts_field).and_then(|b| EventTime::from_proto_bytes(b).ok());
                // Feast treats a stored epoch (0) like no stored time.
                if let Some(stored) = stored.filter(|t| *t != EventTime::EPOCH)
                    && row.event_time <= stored
                {
                    skipped += 1;
                    continue;
                }
            }
            entry.fields.insert(batch.ts_field.to_vec(), Bytes::from(row.event_time.to_proto_bytes()));
            for (field, value) in batch.fields.iter().zip(row.values) {
                entry.fields.insert(field.to_vec(), Bytes::from(value));
            }
            if let Some(ttl) = batch.key_ttl_seconds.filter(|t| *t > 0) {
                entry.expires_at = Some(Instant::now() + Duration::from_secs(ttl));
            }
            written += 1;
        }
        Ok(WriteStats { written, skipped })
    }

    async fn aggregate(&self, keys: &[KeyWrite]) -> Result<Vec<KeyOutcome>> {
        let mut data = self.data.lock().unwrap_or_else(|p| p.into_inner());
        let now = EventTime::now();
        let (now_ms, now_us) = (now.as_millis(), now.as_micros());
        let at = |ms: i64| Instant::now() + Duration::from_millis(u64::try_from(ms - now_ms).unwrap_or(0));
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            // The Feast hash is taken out while the tile key is worked on (two entries at once).
            let mut feast = k.feast.as_ref().map(|f| {
                let e = data.remove(&f.key).unwrap_or_default();
                if expired(&e) { Entry::default() } else { e }
            });
            let entry = data.entry(k.key.clone()).or_default();
            if expired(entry) {
                *entry = Entry::default();
            }
            let applied = tiles::apply(&mut entry.fields, feast.as_mut().map(|e| &mut e.fields), k, now_us);
            // PEXPIREAT when later than the key's expiry, or the key has none (as tiles.lua does).
            if let Some(ms) = applied.expire_at_ms
                && entry.expires_at.is_none_or(|e| e < at(ms))
            {
                entry.expires_at = Some(at(ms));
            }
            if entry.fields.is_empty() {
                data.remove(&k.key);
            }
            if let (Some(f), Some(mut e)) = (&k.feast, feast) {
                if applied.feast_written
                    && let Some(ttl) = f.ttl_seconds.filter(|t| *t > 0)
                {
                    e.expires_at = Some(Instant::now() + Duration::from_secs(ttl));
                }
                if !e.fields.is_empty() {
                    data.insert(f.key.clone(), e);
                }
            }
            out.push(applied.outcome);
        }
        Ok(out)
    }

    async fn sample_keys(&self, project: &str, limit: usize) -> Result<Vec<Vec<u8>>> {
        let data = self.data.lock().unwrap_or_else(|p| p.into_inner());
        Ok(data
            .iter()
            .filter(|(k, e)| !expired(e) && is_project_key(k, project))
            .map(|(k, _)| k.clone())
            .take(limit)
            .collect())
    }

    async fn ping(&self) -> Result<()> {
        Ok(())
    }

    fn describe(&self) -> String {
        "in-memory store".into()
    }
}
