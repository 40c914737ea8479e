//! Stream window aggregations: Feast's `StreamFeatureView` aggregations computed from the
//! events Larder's push sees, kept as tiles in the online store and merged on read.
//!
//! - [`state`]: one tile's mergeable partial state (count, sum, Welford mean and M2, min, max,
//!   last) and how each function is answered from it;
//! - [`distinct`]: `count_distinct`'s state (the values' hashes, exact up to a bound, a
//!   HyperLogLog sketch beyond), kept in series of its own;
//! - [`tiles`]: the write side: events of a batch grouped into runs per tile key, and the rules
//!   a store applies them by (exactly once per stream position, lateness), implemented in Rust
//!   for the in-memory store and in `tiles.lua` for Redis;
//! - [`read`]: which tiles answer a window as of a time, and the answers.
//!
//! Layout: the tiles of one entity and one view live in their own Redis hash, the *tile key*,
//! whose hash tag puts it in the same cluster slot as the entity's Feast hash (so a read of both
//! is one round trip per node, and one script call may touch both). Its fields:
//! `<column>|<hop us>|<tile index>` a tile's state (`<column>|d|<hop us>|<tile index>` of
//! `count_distinct`), `w|<lane>` the stream position applied last
//! from a Kinesis shard or Kafka partition, `max` the newest event time applied. docs/aggregations.md
//! has the semantics.

pub mod distinct;
pub mod read;
pub mod state;
pub mod tiles;

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use crate::proto::types::value::Val;
use crate::registry::FeatureView;
pub use crate::registry::aggregation::Function;
use crate::registry::aggregation::{AggregationError, AggregationPlan};
use crate::value::{Value, ValueType};
pub use state::{Partial, TileState};

/// The tag `larder:allowed_lateness` on a stream view sets how late an event may arrive, in
/// seconds (default: the view's smallest hop).
pub const LATENESS_TAG: &str = "larder:allowed_lateness";

/// Idempotency keys a tile key remembers: an HTTP push retried with its `Idempotency-Key` is
/// recognized unless this many other keyed pushes reached the same entity and view since.
pub const IDEM_CAP: usize = 64;

/// One (column, hop, kind) of a view: the tiles its aggregations merge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    pub column: String,
    pub hop_us: i64,
    /// Whether its tiles keep the distinct values (`count_distinct`) rather than moments.
    pub distinct: bool,
    /// `<column>|<hop us>|` (`<column>|d|<hop us>|` when distinct): a tile's field is this and
    /// its index.
    field_prefix: String,
}

impl Series {
    fn new(column: &str, hop_us: i64, distinct: bool) -> Series {
        let kind = if distinct { "d|" } else { "" };
        Series { column: column.to_string(), hop_us, distinct, field_prefix: format!("{column}|{kind}{hop_us}|") }
    }

    /// A tile of this series with no values.
    pub fn empty(&self) -> Partial {
        Partial::empty(self.distinct)
    }

    /// A stored tile of this series; `None` when the bytes are not one.
    pub fn decode(&self, bytes: &[u8]) -> Option<Partial> {
        Partial::decode(self.distinct, bytes)
    }

    /// The hash field of tile `index` (the tile of `[index * hop, (index + 1) * hop)`).
    pub fn field(&self, index: i64) -> Vec<u8> {
        format!("{}{index}", self.field_prefix).into_bytes()
    }

    /// `<column>|<hop us>|`.
    pub fn prefix(&self) -> &str {
        &self.field_prefix
    }

    /// The tile an event at `time_us` falls in.
    pub fn tile(&self, time_us: i64) -> i64 {
        time_us.div_euclid(self.hop_us)
    }
}

/// One computable aggregation of a view.
#[derive(Debug, Clone, PartialEq)]
pub struct Computed {
    /// The feature it answers as.
    pub output: String,
    pub plan: AggregationPlan,
    /// Index into [`ViewWindows::series`].
    pub series: usize,
    /// The type it answers in: the view's field of that name when the schema declares one,
    /// else Int64 for `count` and Float64 for the rest.
    pub dtype: ValueType,
}

/// A view's aggregations as the stream and read sides use them.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewWindows {
    /// Distinct (column, hop) pairs, in order of first use.
    pub series: Vec<Series>,
    /// Distinct columns of the series, in order of first use; `Series::column` is one of them.
    pub columns: Vec<String>,
    /// For each series, its index into `columns`.
    pub series_column: Vec<usize>,
    /// Per column: whether a series needs it as a number (moments), and as a value's hash
    /// (`count_distinct`).
    pub needs_number: Vec<bool>,
    pub needs_id: Vec<bool>,
    /// Parallel to the view's `aggregations`: how each is computed, or why it cannot be.
    pub aggregations: Vec<Result<Computed, AggregationError>>,
    /// How late an event may be, behind the newest applied for its entity, and still count.
    pub lateness_us: i64,
    /// How long the tile key is kept behind the newest event: twice the longest window.
    pub keep_us: i64,
    /// Per hop (us), ascending: how long its tiles are kept behind the newest event, twice the
    /// longest window merged from tiles of that hop, so both the sliding window ending now and
    /// the last closed tumbling window are always covered. A view of one-minute and one-hour
    /// windows keeps its one-minute tiles two minutes, not two hours.
    pub hop_keep: Arc<[(i64, i64)]>,
    /// Fields a tile key holds at most in steady state, over which a write prunes old tiles.
    pub field_cap: usize,
    /// Idempotency keys (HTTP pushes) a tile key remembers at most ([`IDEM_CAP`]).
    pub idem_cap: usize,
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

impl ViewWindows {
    /// `None` for a view without aggregations.
    pub fn of(view: &FeatureView) -> Option<ViewWindows> {
        if view.aggregations.is_empty() {
            return None;
        }
        let mut w = ViewWindows {
            series: Vec::new(),
            columns: Vec::new(),
            series_column: Vec::new(),
            needs_number: Vec::new(),
            needs_id: Vec::new(),
            aggregations: Vec::with_capacity(view.aggregations.len()),
            lateness_us: 0,
            keep_us: 0,
            hop_keep: Arc::from([]),
            field_cap: 8,
            idem_cap: IDEM_CAP,
        };
        let mut smallest_hop = i64::MAX;
        let mut hop_keep: Vec<(i64, i64)> = Vec::new();
        for agg in &view.aggregations {
            let computed = agg.plan(&view.name, view.tiling_hop).and_then(|plan| {
                let here = || format!("stream feature view '{}', aggregation '{}'", view.name, agg.output());
                let distinct = plan.function == Function::CountDistinct;
                if !plan.hop.as_nanos().is_multiple_of(1000) {
                    return Err(AggregationError(format!(
                        "{}: the tile hop ({:?}) is not a whole number of microseconds",
                        here(),
                        plan.hop
                    )));
                }
                if let Some((_, f)) = view.feature(&agg.column) {
                    plan.function
                        .check_column(&agg.column, f.dtype)
                        .map_err(|e| AggregationError(format!("{}: {e}", here())))?;
                }
                let output = agg.output();
                let dtype = match view.output(&output).or_else(|| view.feature(&output).map(|(_, f)| f)) {
                    Some(f) => f.dtype,
                    None => plan.function.default_type(),
                };
                let hop_us = micros(plan.hop);
                let same = |s: &&Series| s.column == agg.column && s.hop_us == hop_us && s.distinct == distinct;
                let series = match w.series.iter().position(|s| same(&s)) {
                    Some(i) => i,
                    None => {
                        let column = match w.columns.iter().position(|c| *c == agg.column) {
                            Some(c) => c,
                            None => {
                                w.columns.push(agg.column.clone());
                                w.needs_number.push(false);
                                w.needs_id.push(false);
                                w.columns.len() - 1
                            }
                        };
                        if distinct {
                            w.needs_id[column] = true;
                        } else {
                            w.needs_number[column] = true;
                        }
                        w.series_column.push(column);
                        w.series.push(Series::new(&agg.column, hop_us, distinct));
                        w.series.len() - 1
                    }
                };
                Ok(Computed { output, plan, series, dtype })
            });
            if let Ok(c) = &computed {
                smallest_hop = smallest_hop.min(micros(c.plan.hop));
                let keep = micros(c.plan.window).saturating_mul(2);
                w.keep_us = w.keep_us.max(keep);
                let hop = micros(c.plan.hop);
                match hop_keep.iter_mut().find(|(h, _)| *h == hop) {
                    Some((_, k)) => *k = (*k).max(keep),
                    None => hop_keep.push((hop, keep)),
                }
            }
            w.aggregations.push(computed);
        }
        hop_keep.sort_unstable();
        // Per series, the tiles of the time kept, one being filled, one more at the edge.
        for s in &w.series {
            let keep = tile_keep(&hop_keep, s.hop_us, w.keep_us);
            let tiles = usize::try_from(keep / s.hop_us).unwrap_or(usize::MAX);
            w.field_cap = w.field_cap.saturating_add(tiles.saturating_add(2));
        }
        w.hop_keep = Arc::from(hop_keep);
        w.lateness_us = match view.tags.get(LATENESS_TAG).and_then(|t| t.trim().parse::<f64>().ok()) {
            Some(secs) if secs.is_finite() && secs >= 0.0 => (secs * 1e6) as i64,
            _ if smallest_hop == i64::MAX => 0,
            _ => smallest_hop,
        };
        Some(w)
    }

    /// Whether any aggregation can be computed (a view of only unknown functions writes none).
    pub fn any(&self) -> bool {
        self.aggregations.iter().any(Result::is_ok)
    }
}

/// How long tiles of `hop` are kept behind the newest event, from a view's
/// [`ViewWindows::hop_keep`]; `default` (the key's keep) for a hop it does not list.
pub fn tile_keep(hop_keep: &[(i64, i64)], hop: i64, default: i64) -> i64 {
    hop_keep.iter().find(|(h, _)| *h == hop).map_or(default, |(_, k)| *k)
}

/// A column's value as an event carries it ([`tiles::Event`]): as a number where a series
/// needs one (an error naming the value when it is not one), and its hash where a
/// `count_distinct` series needs one. Nulls and NaN are `None` in both.
pub fn cell(windows: &ViewWindows, column: usize, v: &Value) -> Result<(Option<f64>, Option<u64>), String> {
    let x = if windows.needs_number[column] { number(v)? } else { None };
    let h = if windows.needs_id[column] { distinct::id(v) } else { None };
    Ok((x, h))
}

/// A value as a number to aggregate: booleans count as 0 and 1; null, NaN (and the text "nan"
/// of a column whose type is not declared) are `None`.
fn number(v: &Value) -> Result<Option<f64>, String> {
    let x = match &v.val {
        None | Some(Val::NullVal(_)) => None,
        Some(Val::Int32Val(i)) => Some(f64::from(*i)),
        Some(Val::Int64Val(i)) => Some(*i as f64),
        Some(Val::FloatVal(f)) => Some(f64::from(*f)),
        Some(Val::DoubleVal(f)) => Some(*f),
        Some(Val::BoolVal(b)) => Some(f64::from(u8::from(*b))),
        Some(Val::StringVal(s)) if s.eq_ignore_ascii_case("nan") => None,
        Some(_) => return Err(format!("expected a number to aggregate, got {}", crate::value::to_json(v))),
    };
    Ok(x.filter(|x| !x.is_nan()))
}

/// For each cluster slot, a short string that hashes to it: a hash tag that puts a key in that
/// slot. Found once by trying strings in order (about 170,000 CRC16s, a few milliseconds).
static SLOT_TAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    let mut tags = vec![String::new(); 16384];
    let mut left = tags.len();
    let mut n: u64 = 0;
    while left > 0 {
        // CRC16 reaches every slot within about 170,000 candidates; stopping far beyond that
        // turns a broken slot function into a clear failure instead of an endless search.
        assert!(n < 1 << 22, "no hash tag found for {left} cluster slots: keys::slot is not Redis' CRC16");
        let tag = format!("{n:x}");
        let slot = crate::keys::slot(tag.as_bytes()) as usize;
        if tags[slot].is_empty() {
            tags[slot] = tag;
            left -= 1;
        }
        n += 1;
    }
    tags
});

/// The tile key of `view` for the entity whose Feast hash is `entity_key`: `{<tag>}<view>:`,
/// the entity key, then `:tiles`. The tag puts it in the entity hash's cluster slot; the
/// ending keeps it out of the project's key samples (which match keys ending in its name).
pub fn tile_key(view: &str, entity_key: &[u8]) -> Vec<u8> {
    let tag = &SLOT_TAGS[crate::keys::slot(entity_key) as usize];
    let mut key = Vec::with_capacity(tag.len() + view.len() + entity_key.len() + 10);
    key.push(b'{');
    key.extend_from_slice(tag.as_bytes());
    key.push(b'}');
    key.extend_from_slice(view.as_bytes());
    key.push(b':');
    key.extend_from_slice(entity_key);
    key.extend_from_slice(b":tiles");
    key
}

/// A stream position as the stores compare it: the sequence number or offset (decimal digits)
/// and the row within the record, as text that sorts in position order: three digits of
/// length, the digits without leading zeros, eight digits of row.
pub fn position(sequence: &str, row: usize) -> Option<String> {
    let digits = sequence.trim_start_matches('0');
    if !sequence.bytes().all(|b| b.is_ascii_digit()) || sequence.is_empty() || digits.len() > 999 || row > 99_999_999 {
        return None;
    }
    Some(format!("{:03}{digits}{row:08}", digits.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::slot;

    #[test]
    fn tile_keys_share_their_entitys_slot() {
        let keys: [&[u8]; 4] = [b"\x01\x00\x00\x00abc", b"driver{x}demo", b"", b"\xff{}\xfe"];
        for k in keys {
            let t = tile_key("sensor_minute", k);
            assert_eq!(slot(&t), slot(k), "{k:?}");
            assert!(t.ends_with(b":tiles"));
            assert_ne!(tile_key("sensor_hour", k), t);
        }
        assert!(SLOT_TAGS.iter().enumerate().all(|(s, t)| slot(t.as_bytes()) as usize == s));
    }

    #[test]
    fn positions_sort_in_stream_order() {
        let p = |s: &str, r: usize| position(s, r).unwrap();
        assert!(p("9", 0) < p("10", 0));
        assert!(p("10", 0) < p("10", 1));
        assert!(p("10", 99) < p("11", 0));
        assert_eq!(p("0007", 2), p("7", 2));
        assert!(p("49590338271490256608559692538361571095921575989136588898", 0) > p("9", 5));
        assert_eq!(position("12a", 0), None);
        assert_eq!(position("", 0), None);
        assert_eq!(position("0", 0).unwrap(), "00000000000");
    }
}
