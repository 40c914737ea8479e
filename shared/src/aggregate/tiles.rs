//! The write side: a batch's events for one view, grouped per tile key into *runs*, and the
//! rules a store applies runs by.
//!
//! A run is consecutive events (in stream order) of one entity, from one lane, that fall in the
//! same tile of every series: its tiles' partial states are summed here, so the store merges
//! one state per tile and run instead of one per event. What the store decides per run, against
//! what the tile key holds (`\0w|<lane>`, the position applied last from a lane; `\0max`, the
//! newest event time applied):
//!
//! - **duplicate**: every event of the run is at or before the lane's position (a redelivered
//!   or bisected batch): skipped, so nothing counts twice;
//! - **late**: every event is more than the allowed lateness behind the newest event applied:
//!   not applied, reported so the caller can dead-letter the records;
//! - **applied**: no event is either: merged into the tiles.
//!
//! A run that is partly one and partly another cannot be decided whole: the store then applies
//! nothing of that key and answers [`KeyOutcome::Redo`], and the caller sends the key's events
//! again one per run ([`build`] with `single`), where every decision is exact. That happens only
//! when a delivery overlaps an earlier one partway into a run, or some events of a run are late.
//! Runs are split wherever an event is late against the events before it in the batch, so a run
//! is never late against itself.
//!
//! [`apply`] is the rule in Rust (the in-memory store's); `tiles.lua` is the same for Redis.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;

use super::{Partial, ViewWindows};
use crate::registry::FeatureView;
use crate::time::EventTime;
use crate::value::ValueType;

/// One event for a view's aggregations.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The entity's Feast key (the tile key is derived from it).
    pub key: Vec<u8>,
    pub time_us: i64,
    /// Parallel to [`ViewWindows::columns`]: each column's value as a number, where a series
    /// needs one (`None` for a null, which is not counted, and where none is needed).
    pub values: Vec<Option<f64>>,
    /// Parallel to [`ViewWindows::columns`]: each column's value's hash
    /// ([`super::distinct::id`]) where a `count_distinct` series needs one; may be empty when
    /// none does.
    pub ids: Vec<Option<u64>>,
    /// The lane (Kinesis shard, Kafka partition) and position ([`super::position`]) the event
    /// came from; `None` for an HTTP push, which is applied at least once.
    pub origin: Option<(Arc<str>, String)>,
    /// The caller's number for the event's record, reported back for late events.
    pub record: usize,
    /// The event's row in its record (a record may carry several rows).
    pub row: usize,
    /// The row's feature values, encoded, parallel to the view's features (the plain row the
    /// entity hash gets when this is its newest event); empty for none.
    pub plain: Vec<Vec<u8>>,
}

/// Events of one entity applied (or not) together.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// Empty when the events carry no position.
    pub lane: Arc<str>,
    pub first: String,
    pub last: String,
    pub min_us: i64,
    pub max_us: i64,
    /// The run's partial state of each tile it touches: (field, state).
    pub tiles: Vec<(Vec<u8>, Partial)>,
    /// The record of each event.
    pub records: Vec<usize>,
}

/// The runs of one tile key, and the view's settings the store needs.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyWrite {
    pub key: Vec<u8>,
    pub lateness_us: i64,
    /// How long the tile key is kept behind the newest event.
    pub keep_us: i64,
    /// Per hop (us): how long its tiles are kept ([`ViewWindows::hop_keep`]); a tile of a hop
    /// not listed is kept `keep_us`.
    pub hop_keep: Arc<[(i64, i64)]>,
    pub field_cap: usize,
    /// Marks of `idem:` lanes (HTTP pushes with an `Idempotency-Key`) kept at most: past it
    /// the oldest is forgotten.
    pub idem_cap: usize,
    pub runs: Vec<Run>,
    /// What to write into the entity's Feast hash in the same step (`None`: tiles only).
    pub feast: Option<FeastWrite>,
}

/// A view's final values as Feast reads them: after a write, each aggregation's value over the
/// window ending at the newest event goes to its ordinary feature field, and `_ts:<view>` to
/// that window's end (strictly increasing), so `feast serve` answers it from the same Redis.
#[derive(Debug, Clone, PartialEq)]
pub struct FeastLayout {
    pub ts_field: Vec<u8>,
    /// The view's feature fields, parallel to [`Event::plain`].
    pub plain_fields: Vec<[u8; 4]>,
    /// The outputs the view's schema declares (Feast serves only those).
    pub outputs: Vec<OutputSpec>,
}

impl FeastLayout {
    pub fn of(view: &FeatureView, windows: &ViewWindows) -> FeastLayout {
        let outputs = windows
            .aggregations
            .iter()
            .flatten()
            .filter(|c| view.output(&c.output).is_some())
            .map(|c| {
                let series = &windows.series[c.series];
                OutputSpec {
                    field: crate::keys::feature_field(&view.name, &c.output),
                    prefix: series.prefix().to_string(),
                    distinct: series.distinct,
                    hop_us: series.hop_us,
                    tiles: (c.plan.window.as_micros() / c.plan.hop.as_micros().max(1)) as i64,
                    sliding: c.plan.sliding,
                    function: c.plan.function,
                    dtype: c.dtype,
                }
            })
            .collect();
        FeastLayout {
            ts_field: view.layout.ts_field.clone(),
            plain_fields: view.layout.feature_fields.clone(),
            outputs,
        }
    }
}

/// One aggregation's final value: where it goes and how it is computed from the tiles.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputSpec {
    /// The murmur3 field of `<view>:<output>`.
    pub field: [u8; 4],
    /// The series' tile field prefix (`<column>|<hop us>|`, `<column>|d|<hop us>|`).
    pub prefix: String,
    /// Whether the series keeps distinct values (`count_distinct`).
    pub distinct: bool,
    pub hop_us: i64,
    /// Tiles per window.
    pub tiles: i64,
    pub sliding: bool,
    pub function: super::Function,
    pub dtype: ValueType,
}

/// The newest plain row of a batch for one entity: its time (us) and (field, value) pairs.
pub type PlainRow = (i64, Vec<([u8; 4], Vec<u8>)>);

/// The Feast hash part of a key's write.
#[derive(Debug, Clone, PartialEq)]
pub struct FeastWrite {
    /// The entity's Feast hash (same cluster slot as the tile key).
    pub key: Vec<u8>,
    pub layout: Arc<FeastLayout>,
    /// The newest row of the batch for the view's plain features, written if newer than the
    /// one stored (the tile key remembers its time): (time us, (field, value) pairs).
    pub plain: Option<PlainRow>,
    /// `key_ttl_seconds`: EXPIRE of the Feast hash after a write.
    pub ttl_seconds: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Applied,
    Duplicate,
    Late,
}

impl RunStatus {
    /// The letter `tiles.lua` answers for it.
    pub fn from_letter(b: u8) -> Option<RunStatus> {
        match b {
            b'a' => Some(RunStatus::Applied),
            b'd' => Some(RunStatus::Duplicate),
            b'l' => Some(RunStatus::Late),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOutcome {
    /// One status per run, and whether the key's plain row was written (it was newer than the
    /// one written before).
    Done { runs: Vec<RunStatus>, row_written: bool },
    /// Nothing applied: send the key's events again one per run.
    Redo,
}

/// What applying a view's events did, counted in events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AggregateStats {
    pub applied: usize,
    pub duplicates: usize,
    /// Records of late events (a record may appear more than once).
    pub late: Vec<usize>,
    /// Plain rows the events carried, and rows written to entity hashes (one per key at most,
    /// when newer than the one written before).
    pub rows: usize,
    pub rows_written: usize,
}

impl std::ops::AddAssign for AggregateStats {
    fn add_assign(&mut self, o: AggregateStats) {
        self.applied += o.applied;
        self.duplicates += o.duplicates;
        self.late.extend(o.late);
        self.rows += o.rows;
        self.rows_written += o.rows_written;
    }
}

/// Groups `events` (stream order) into tile keys and runs; `single`: one event per run.
pub fn build(view: &str, windows: &ViewWindows, events: &[&Event], single: bool) -> Vec<KeyWrite> {
    build_with(view, windows, events, single, None)
}

/// Where a view's final values and plain rows go: its Feast layout and the entity hashes'
/// `key_ttl_seconds`.
#[derive(Debug, Clone)]
pub struct FeastTarget {
    pub layout: Arc<FeastLayout>,
    pub ttl_seconds: Option<u64>,
}

/// [`build`], each key also writing its entity hash as `feast` says: the final values, and
/// the plain row of its newest event (the first of equally new ones, as newest-wins keeps).
pub fn build_with(
    view: &str,
    windows: &ViewWindows,
    events: &[&Event],
    single: bool,
    feast: Option<&FeastTarget>,
) -> Vec<KeyWrite> {
    let mut index: HashMap<&[u8], usize> = HashMap::new();
    let mut per_key: Vec<Vec<&Event>> = Vec::new();
    for &e in events {
        let k = *index.entry(e.key.as_slice()).or_insert_with(|| {
            per_key.push(Vec::new());
            per_key.len() - 1
        });
        per_key[k].push(e);
    }
    per_key
        .into_iter()
        .map(|evs| KeyWrite {
            key: super::tile_key(view, &evs[0].key),
            lateness_us: windows.lateness_us,
            keep_us: windows.keep_us,
            hop_keep: Arc::clone(&windows.hop_keep),
            field_cap: windows.field_cap,
            idem_cap: windows.idem_cap,
            runs: runs_of(windows, &evs, single),
            feast: feast.map(|f| FeastWrite {
                key: evs[0].key.clone(),
                layout: Arc::clone(&f.layout),
                plain: plain_row(&f.layout, &evs),
                ttl_seconds: f.ttl_seconds,
            }),
        })
        .collect()
}

/// The plain row of an entity's newest event that carries one.
fn plain_row(layout: &FeastLayout, events: &[&Event]) -> Option<PlainRow> {
    let mut newest: Option<&Event> = None;
    for e in events.iter().filter(|e| !e.plain.is_empty()) {
        if newest.is_none_or(|n| e.time_us > n.time_us) {
            newest = Some(e);
        }
    }
    newest.map(|e| (e.time_us, layout.plain_fields.iter().copied().zip(e.plain.iter().cloned()).collect()))
}

/// The runs of one entity's events.
fn runs_of(windows: &ViewWindows, events: &[&Event], single: bool) -> Vec<Run> {
    let empty: Arc<str> = Arc::from("");
    let mut runs: Vec<Run> = Vec::new();
    // The open run's tile per series and partial state per series.
    let mut open: Option<(Vec<i64>, Vec<Partial>)> = None;
    let close = |runs: &mut Vec<Run>, open: &mut Option<(Vec<i64>, Vec<Partial>)>| {
        if let (Some((tiles, states)), Some(run)) = (open.take(), runs.last_mut()) {
            for (s, (state, tile)) in states.into_iter().zip(tiles).enumerate() {
                if !state.is_empty() {
                    run.tiles.push((windows.series[s].field(tile), state));
                }
            }
        }
    };
    let mut newest = i64::MIN;
    for e in events {
        let lane = e.origin.as_ref().map_or(&empty, |(l, _)| l);
        let pos = e.origin.as_ref().map_or("", |(_, p)| p.as_str());
        let tiles: Vec<i64> = windows.series.iter().map(|s| s.tile(e.time_us)).collect();
        // Late against an earlier event of the batch: it stands alone.
        let late = newest != i64::MIN && e.time_us < newest.saturating_sub(windows.lateness_us);
        let joins = !single
            && !late
            && matches!((&open, runs.last()), (Some((t, _)), Some(r)) if *t == tiles && r.lane == *lane);
        if !joins {
            close(&mut runs, &mut open);
            runs.push(Run {
                lane: Arc::clone(lane),
                first: pos.to_string(),
                last: String::new(),
                min_us: e.time_us,
                max_us: e.time_us,
                tiles: Vec::new(),
                records: Vec::new(),
            });
            open = Some((tiles, windows.series.iter().map(super::Series::empty).collect()));
        }
        let run = runs.last_mut().expect("a run is open");
        run.last = pos.to_string();
        run.min_us = run.min_us.min(e.time_us);
        run.max_us = run.max_us.max(e.time_us);
        run.records.push(e.record);
        let (_, states) = open.as_mut().expect("a run is open");
        for (s, state) in states.iter_mut().enumerate() {
            let c = windows.series_column[s];
            match state {
                Partial::Moments(m) => {
                    if let Some(x) = e.values[c] {
                        m.push(x, e.time_us);
                    }
                }
                Partial::Distinct(d) => {
                    if let Some(h) = e.ids.get(c).copied().flatten() {
                        d.push(h);
                    }
                }
            }
        }
        if late {
            close(&mut runs, &mut open);
        } else {
            newest = newest.max(e.time_us);
        }
    }
    close(&mut runs, &mut open);
    runs
}

/// The tile key an event goes to.
pub fn tile_key_of(view: &str, e: &Event) -> Vec<u8> {
    super::tile_key(view, &e.key)
}

/// What a key's run statuses mean in events.
pub fn count(write: &KeyWrite, statuses: &[RunStatus]) -> AggregateStats {
    let mut stats = AggregateStats::default();
    for (run, status) in write.runs.iter().zip(statuses) {
        match status {
            RunStatus::Applied => stats.applied += run.records.len(),
            RunStatus::Duplicate => stats.duplicates += run.records.len(),
            RunStatus::Late => stats.late.extend(&run.records),
        }
    }
    stats
}

/// Store field of a lane's position.
pub fn lane_field(lane: &str) -> Vec<u8> {
    let mut f = b"\0w|".to_vec();
    f.extend_from_slice(lane.as_bytes());
    f
}

/// The lane prefix of HTTP pushes with an `Idempotency-Key` (`idem:<key>`).
pub const IDEM_PREFIX: &str = "idem:";

/// Store field of the `idem:` lanes marked, oldest first, one per line.
pub const IDEM_QUEUE_FIELD: &[u8] = b"\0iq";

/// Store field of the newest event time applied.
pub const MAX_FIELD: &[u8] = b"\0max";

/// Applies `write` to a tile key's fields (and its Feast hash's, given `feast` and a
/// [`KeyWrite::feast`]) as `tiles.lua` does, at `now_us`; answers the outcome and, when
/// something was stored, the time (ms since the epoch) the tile key should expire at: `keep`
/// past the newer of the newest event and now, so that a redelivery soon after a delivery is
/// recognized however old its events are. The Feast hash's expiry (`key_ttl_seconds`) is the
/// caller's, when [`Applied::feast_written`].
pub fn apply(
    hash: &mut HashMap<Vec<u8>, Bytes>,
    feast: Option<&mut HashMap<Vec<u8>, Bytes>>,
    write: &KeyWrite,
    now_us: i64,
) -> Applied {
    let number = |h: &HashMap<Vec<u8>, Bytes>, f: &[u8]| {
        h.get(f).and_then(|b| std::str::from_utf8(b).ok()).and_then(|t| t.parse::<i64>().ok())
    };
    let redo = Applied { outcome: KeyOutcome::Redo, expire_at_ms: None, feast_written: false };
    let mut max: Option<i64> = number(hash, MAX_FIELD);
    let mut marks: HashMap<Arc<str>, Option<String>> = HashMap::new();
    // `idem:` lanes this write marks for the first time, in run order.
    let mut new_idem: Vec<Arc<str>> = Vec::new();
    let mut statuses = Vec::with_capacity(write.runs.len());
    for run in &write.runs {
        let mark = if run.lane.is_empty() {
            None
        } else {
            let lane = Arc::clone(&run.lane);
            marks
                .entry(lane)
                .or_insert_with(|| {
                    hash.get(&lane_field(&run.lane)).and_then(|b| std::str::from_utf8(b).ok().map(str::to_string))
                })
                .clone()
        };
        let bound = max.map(|m| m - write.lateness_us);
        let status = match mark {
            Some(w) if run.first <= w => {
                if run.last <= w {
                    RunStatus::Duplicate
                } else {
                    return redo;
                }
            }
            _ if bound.is_some_and(|b| run.max_us < b) => RunStatus::Late,
            _ if bound.is_some_and(|b| run.min_us < b) => return redo,
            _ => {
                max = Some(max.map_or(run.max_us, |m| m.max(run.max_us)));
                RunStatus::Applied
            }
        };
        if !run.lane.is_empty() && status != RunStatus::Duplicate {
            if run.lane.starts_with(IDEM_PREFIX)
                && !hash.contains_key(&lane_field(&run.lane))
                && !new_idem.contains(&run.lane)
            {
                new_idem.push(Arc::clone(&run.lane));
            }
            marks.insert(Arc::clone(&run.lane), Some(run.last.clone()));
        }
        statuses.push(status);
    }
    let mut applied = false;
    for (run, status) in write.runs.iter().zip(&statuses) {
        if *status != RunStatus::Applied {
            continue;
        }
        applied = true;
        for (field, delta) in &run.tiles {
            let distinct = matches!(delta, Partial::Distinct(_));
            let mut state =
                hash.get(field).and_then(|b| Partial::decode(distinct, b)).unwrap_or_else(|| Partial::empty(distinct));
            state.merge(delta);
            hash.insert(field.clone(), Bytes::from(state.encode()));
        }
    }
    for (lane, mark) in marks {
        if let Some(mark) = mark {
            hash.insert(lane_field(&lane), Bytes::from(mark.into_bytes()));
        }
    }
    // The idempotency keys remembered, oldest first: past the cap, the oldest are forgotten.
    if !new_idem.is_empty() {
        let stored = hash.get(IDEM_QUEUE_FIELD).map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
        let mut queue: Vec<String> = stored.split('\n').filter(|l| !l.is_empty()).map(str::to_string).collect();
        queue.extend(new_idem.iter().map(|l| l.to_string()));
        let forget = queue.len().saturating_sub(write.idem_cap);
        for lane in queue.drain(..forget) {
            hash.remove(&lane_field(&lane));
        }
        hash.insert(IDEM_QUEUE_FIELD.to_vec(), Bytes::from(queue.join("\n").into_bytes()));
    }
    if applied && let Some(m) = max {
        hash.insert(MAX_FIELD.to_vec(), Bytes::from(m.to_string().into_bytes()));
    }
    // The plain row: newest event wins (strictly later than the one written).
    let plain = write
        .feast
        .as_ref()
        .and_then(|f| f.plain.as_ref())
        .filter(|(t, _)| number(hash, PLAIN_FIELD).is_none_or(|s| *t > s));
    if let Some((t, _)) = plain {
        hash.insert(PLAIN_FIELD.to_vec(), Bytes::from(t.to_string().into_bytes()));
    }
    let mut feast_written = false;
    if let Some(f) = &write.feast
        && (plain.is_some() || (applied && !f.layout.outputs.is_empty()))
    {
        let mut fields: Vec<(Vec<u8>, Bytes)> = Vec::new();
        let mut end = i64::MIN;
        if let Some((t, values)) = plain {
            fields.extend(values.iter().map(|(field, value)| (field.to_vec(), Bytes::copy_from_slice(value))));
            end = *t;
        }
        // Each output's value over its window as of the newest event.
        if let Some(m) = max {
            for o in &f.layout.outputs {
                let (first, last, window_end) = final_window(o, m);
                end = end.max(window_end);
                let mut total = Partial::empty(o.distinct);
                for i in first..=last {
                    if let Some(state) =
                        hash.get(format!("{}{i}", o.prefix).as_bytes()).and_then(|b| Partial::decode(o.distinct, b))
                    {
                        total.merge(&state);
                    }
                }
                let value = total.finish(o.function).map(|x| crate::value::encode(&super::read::typed(x, o.dtype)));
                fields.push((o.field.to_vec(), Bytes::from(value.unwrap_or_default())));
            }
        }
        // Strictly later than the `_ts` written before: a reader comparing times never drops it.
        if let Some(prev) = number(hash, TS_FIELD).filter(|p| end <= *p) {
            end = prev + 1;
        }
        hash.insert(TS_FIELD.to_vec(), Bytes::from(end.to_string().into_bytes()));
        fields.push((f.layout.ts_field.clone(), Bytes::from(EventTime::from_micros(end).to_proto_bytes())));
        if let Some(fh) = feast {
            fh.extend(fields);
        }
        feast_written = true;
    }
    if applied
        && let Some(m) = max
        && hash.len() > write.field_cap
    {
        hash.retain(|field, _| {
            tile_end(field).is_none_or(|(hop, end)| end > m - super::tile_keep(&write.hop_keep, hop, write.keep_us))
        });
    }
    let changed = applied || plain.is_some();
    let newest = max.unwrap_or(i64::MIN).max(now_us);
    Applied {
        outcome: KeyOutcome::Done { runs: statuses, row_written: plain.is_some() },
        expire_at_ms: changed.then(|| (newest + write.keep_us).div_euclid(1000) + 1),
        feast_written,
    }
}

/// What [`apply`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub outcome: KeyOutcome,
    pub expire_at_ms: Option<i64>,
    /// Whether the Feast hash was written (its TTL is then renewed).
    pub feast_written: bool,
}

/// The tiles (first, last) of an output's window as of the newest event `newest_us`, and the
/// window's end: for a sliding window the tiles ending with the one holding the event, for a
/// tumbling one the window holding it (so far).
pub fn final_window(o: &OutputSpec, newest_us: i64) -> (i64, i64, i64) {
    if o.sliding {
        let last = newest_us.div_euclid(o.hop_us);
        (last - o.tiles + 1, last, (last + 1) * o.hop_us)
    } else {
        let first = newest_us.div_euclid(o.hop_us * o.tiles) * o.tiles;
        (first, first + o.tiles - 1, (first + o.tiles) * o.hop_us)
    }
}

/// Tile key field of the newest plain row's time written (us).
pub const PLAIN_FIELD: &[u8] = b"\0pt";

/// Tile key field of the `_ts:<view>` written last (us).
pub const TS_FIELD: &[u8] = b"\0ts";

/// The hop and the end (us) of the tile a field holds, parsed from `<column>|<hop>|<index>`;
/// `None` for any other field.
fn tile_end(field: &[u8]) -> Option<(i64, i64)> {
    let text = std::str::from_utf8(field).ok()?;
    if text.starts_with('\0') {
        return None;
    }
    let mut parts = text.rsplitn(3, '|');
    let index: i64 = parts.next()?.parse().ok()?;
    let hop: i64 = parts.next()?.parse().ok()?;
    parts.next()?;
    Some((hop, (index + 1).saturating_mul(hop)))
}

#[cfg(test)]
mod tests;
