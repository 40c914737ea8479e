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

use super::{TileState, ViewWindows};

/// One event for a view's aggregations.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The entity's Feast key (the tile key is derived from it).
    pub key: Vec<u8>,
    pub time_us: i64,
    /// Parallel to [`ViewWindows::columns`]; `None` for a null (not counted).
    pub values: Vec<Option<f64>>,
    /// The lane (Kinesis shard, Kafka partition) and position ([`super::position`]) the event
    /// came from; `None` for an HTTP push, which is applied at least once.
    pub origin: Option<(Arc<str>, String)>,
    /// The caller's number for the event's record, reported back for late events.
    pub record: usize,
    /// The event's row in its record (a record may carry several rows).
    pub row: usize,
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
    pub tiles: Vec<(Vec<u8>, TileState)>,
    /// The record of each event.
    pub records: Vec<usize>,
}

/// The runs of one tile key, and the view's settings the store needs.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyWrite {
    pub key: Vec<u8>,
    pub lateness_us: i64,
    pub keep_us: i64,
    pub field_cap: usize,
    pub runs: Vec<Run>,
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
    /// One status per run.
    Done(Vec<RunStatus>),
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
}

impl std::ops::AddAssign for AggregateStats {
    fn add_assign(&mut self, o: AggregateStats) {
        self.applied += o.applied;
        self.duplicates += o.duplicates;
        self.late.extend(o.late);
    }
}

/// Groups `events` (stream order) into tile keys and runs; `single`: one event per run.
pub fn build(view: &str, windows: &ViewWindows, events: &[&Event], single: bool) -> Vec<KeyWrite> {
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
            field_cap: windows.field_cap,
            runs: runs_of(windows, &evs, single),
        })
        .collect()
}

/// The runs of one entity's events.
fn runs_of(windows: &ViewWindows, events: &[&Event], single: bool) -> Vec<Run> {
    let empty: Arc<str> = Arc::from("");
    let mut runs: Vec<Run> = Vec::new();
    // The open run's tile per series and partial state per series.
    let mut open: Option<(Vec<i64>, Vec<TileState>)> = None;
    let close = |runs: &mut Vec<Run>, open: &mut Option<(Vec<i64>, Vec<TileState>)>| {
        if let (Some((tiles, states)), Some(run)) = (open.take(), runs.last_mut()) {
            for (s, (state, tile)) in states.iter().zip(tiles).enumerate() {
                if !state.is_empty() {
                    run.tiles.push((windows.series[s].field(tile), *state));
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
            open = Some((tiles, vec![TileState::EMPTY; windows.series.len()]));
        }
        let run = runs.last_mut().expect("a run is open");
        run.last = pos.to_string();
        run.min_us = run.min_us.min(e.time_us);
        run.max_us = run.max_us.max(e.time_us);
        run.records.push(e.record);
        let (_, states) = open.as_mut().expect("a run is open");
        for (s, state) in states.iter_mut().enumerate() {
            if let Some(x) = e.values[windows.series_column[s]] {
                state.push(x, e.time_us);
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

/// Store field of the newest event time applied.
pub const MAX_FIELD: &[u8] = b"\0max";

/// Applies `write` to a tile key's fields as `tiles.lua` does, at `now_us`; returns the outcome
/// and, when something was stored, the time (ms since the epoch) the key should expire at:
/// `keep` past the newer of the newest event and now, so that a redelivery soon after a
/// delivery is recognized however old its events are.
pub fn apply(hash: &mut HashMap<Vec<u8>, Bytes>, write: &KeyWrite, now_us: i64) -> (KeyOutcome, Option<i64>) {
    let text = |b: &Bytes| std::str::from_utf8(b).ok().map(str::to_string);
    let mut max: Option<i64> = hash.get(MAX_FIELD).and_then(text).and_then(|t| t.parse().ok());
    let mut marks: HashMap<Arc<str>, Option<String>> = HashMap::new();
    let mut statuses = Vec::with_capacity(write.runs.len());
    for run in &write.runs {
        let mark = if run.lane.is_empty() {
            None
        } else {
            marks
                .entry(Arc::clone(&run.lane))
                .or_insert_with(|| hash.get(&lane_field(&run.lane)).and_then(text))
                .clone()
        };
        let bound = max.map(|m| m - write.lateness_us);
        let status = match mark {
            Some(w) if run.first <= w => {
                if run.last <= w {
                    RunStatus::Duplicate
                } else {
                    return (KeyOutcome::Redo, None);
                }
            }
            _ if bound.is_some_and(|b| run.max_us < b) => RunStatus::Late,
            _ if bound.is_some_and(|b| run.min_us < b) => return (KeyOutcome::Redo, None),
            _ => {
                max = Some(max.map_or(run.max_us, |m| m.max(run.max_us)));
                RunStatus::Applied
            }
        };
        if !run.lane.is_empty() && status != RunStatus::Duplicate {
            marks.insert(Arc::clone(&run.lane), Some(run.last.clone()));
        }
        statuses.push(status);
    }
    let mut changed = false;
    for (run, status) in write.runs.iter().zip(&statuses) {
        if *status != RunStatus::Applied {
            continue;
        }
        changed = true;
        for (field, delta) in &run.tiles {
            let mut state = hash.get(field).and_then(|b| TileState::decode(b)).unwrap_or(TileState::EMPTY);
            state.merge(delta);
            hash.insert(field.clone(), Bytes::copy_from_slice(&state.encode()));
        }
    }
    for (lane, mark) in marks {
        if let Some(mark) = mark {
            hash.insert(lane_field(&lane), Bytes::from(mark.into_bytes()));
        }
    }
    let Some(max) = max.filter(|_| changed) else { return (KeyOutcome::Done(statuses), None) };
    hash.insert(MAX_FIELD.to_vec(), Bytes::from(max.to_string().into_bytes()));
    if hash.len() > write.field_cap {
        let cutoff = max - write.keep_us;
        hash.retain(|field, _| tile_end(field).is_none_or(|end| end > cutoff));
    }
    (KeyOutcome::Done(statuses), Some((max.max(now_us) + write.keep_us).div_euclid(1000) + 1))
}

/// The end (us) of the tile a field holds, parsed from `<column>|<hop>|<index>`; `None` for any
/// other field.
fn tile_end(field: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(field).ok()?;
    if text.starts_with('\0') {
        return None;
    }
    let mut parts = text.rsplitn(3, '|');
    let index: i64 = parts.next()?.parse().ok()?;
    let hop: i64 = parts.next()?.parse().ok()?;
    parts.next()?;
    Some((index + 1).saturating_mul(hop))
}

#[cfg(test)]
mod tests;
