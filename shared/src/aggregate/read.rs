//! The read side: which tiles answer an aggregation as of a time, and its answer.
//!
//! A window is merged from whole tiles (docs/aggregations.md):
//! - **sliding** (a slide shorter than the window): the `window / hop` tiles ending with the tile
//!   that holds the request time, so it covers from `window - hop` to `window` of the past
//!   depending on where in its tile the request falls;
//! - **tumbling**: the last closed window, `[k * window - window, k * window)` with `k * window`
//!   the last window boundary at or before the request time.

use bytes::Bytes;

use super::ViewWindows;
use crate::proto::types::value::Val;
use crate::registry::aggregation::AggregationPlan;
use crate::value::{Value, ValueType};

/// The tiles one request reads from a view's tile key.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowReads {
    /// Hash fields to read.
    pub fields: Vec<Vec<u8>>,
    /// Per requested aggregation: the offset of its first tile in `fields`, its number of tiles,
    /// the index of its first tile, and its hop (us).
    spans: Vec<(usize, usize, i64, i64)>,
}

/// An aggregation's answer: its value (`None`: null) and the end of the newest tile that had
/// data (`None`: no tile in the window had any).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowAnswer {
    pub value: Option<f64>,
    pub newest_us: Option<i64>,
}

/// The tile indexes (first, last) of the window `plan` answers at `now_us`.
pub fn window_tiles(plan: &AggregationPlan, now_us: i64) -> (i64, i64) {
    let hop = i64::try_from(plan.hop.as_micros()).unwrap_or(i64::MAX);
    let window = i64::try_from(plan.window.as_micros()).unwrap_or(i64::MAX);
    let per_window = window / hop;
    if plan.sliding {
        let cur = now_us.div_euclid(hop);
        (cur - per_window + 1, cur)
    } else {
        let end = now_us.div_euclid(window) * per_window;
        (end - per_window, end - 1)
    }
}

impl WindowReads {
    /// The fields answering `aggregations` (indexes into the view's aggregations, each one that
    /// can be computed) at `now_us`. Aggregations of one series share the tiles they both need.
    pub fn new(windows: &ViewWindows, aggregations: &[usize], now_us: i64) -> WindowReads {
        // Per series: the union of the tile ranges asked for, then each series' fields once.
        let mut ranges: Vec<Option<(i64, i64)>> = vec![None; windows.series.len()];
        let mut asked = Vec::with_capacity(aggregations.len());
        for &a in aggregations {
            let c = windows.aggregations[a].as_ref().expect("only computable aggregations are read");
            let (lo, hi) = window_tiles(&c.plan, now_us);
            let r = &mut ranges[c.series];
            *r = Some(r.map_or((lo, hi), |(l, h)| (l.min(lo), h.max(hi))));
            asked.push((c.series, lo, hi));
        }
        let mut fields = Vec::new();
        let mut starts = vec![0usize; windows.series.len()];
        for (s, range) in ranges.iter().enumerate() {
            if let Some((lo, hi)) = range {
                starts[s] = fields.len();
                fields.extend((*lo..=*hi).map(|i| windows.series[s].field(i)));
            }
        }
        let spans = asked
            .into_iter()
            .map(|(s, lo, hi)| {
                let (first, _) = ranges[s].expect("set above");
                (starts[s] + (lo - first) as usize, (hi - lo + 1) as usize, lo, windows.series[s].hop_us)
            })
            .collect();
        WindowReads { fields, spans }
    }

    /// The answers, parallel to the aggregations asked for, from the stored `values` of
    /// [`WindowReads::fields`]. A field that is not a tile state counts as an empty tile.
    pub fn answers(
        &self,
        windows: &ViewWindows,
        aggregations: &[usize],
        values: &[Option<Bytes>],
    ) -> Vec<WindowAnswer> {
        aggregations
            .iter()
            .zip(&self.spans)
            .map(|(&a, &(offset, len, first, hop))| {
                let c = windows.aggregations[a].as_ref().expect("only computable aggregations are read");
                let series = &windows.series[c.series];
                let mut total = series.empty();
                let mut newest = None;
                for (i, v) in values[offset..offset + len].iter().enumerate() {
                    if let Some(state) = v.as_deref().and_then(|b| series.decode(b)).filter(|s| !s.is_empty()) {
                        total.merge(&state);
                        newest = Some((first + i as i64 + 1) * hop);
                    }
                }
                WindowAnswer { value: total.finish(c.plan.function), newest_us: newest }
            })
            .collect()
    }
}

/// An answer as the type it is served in: integers rounded (a count, or a sum declared Int64),
/// floats as they are; Float32 rounds to single precision.
pub fn typed(x: f64, dtype: ValueType) -> Value {
    let val = match dtype {
        ValueType::Int64 => Val::Int64Val(x.round() as i64),
        ValueType::Int32 => Val::Int32Val(x.round() as i32),
        ValueType::Float => Val::FloatVal(x as f32),
        ValueType::Bool => Val::BoolVal(x != 0.0),
        _ => Val::DoubleVal(x),
    };
    Value { val: Some(val) }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::registry::aggregation::Function;

    fn plan(window: u64, hop: u64, sliding: bool) -> AggregationPlan {
        AggregationPlan {
            function: Function::Sum,
            window: Duration::from_secs(window),
            hop: Duration::from_secs(hop),
            sliding,
        }
    }

    const S: i64 = 1_000_000;

    #[test]
    fn sliding_windows_end_with_the_current_tile() {
        // A 60 s window of 10 s tiles at t = 125 s: tiles 7..=12, [70 s, 130 s).
        assert_eq!(window_tiles(&plan(60, 10, true), 125 * S), (7, 12));
        assert_eq!(window_tiles(&plan(60, 10, true), 130 * S), (8, 13), "a new tile starts: the window moves");
        assert_eq!(window_tiles(&plan(60, 10, true), -5 * S), (-6, -1), "before the epoch too");
    }

    #[test]
    fn tumbling_windows_answer_the_last_closed_one() {
        // One-minute windows of one tile: at 125 s the last closed window is [60 s, 120 s).
        assert_eq!(window_tiles(&plan(60, 60, false), 125 * S), (1, 1));
        assert_eq!(window_tiles(&plan(60, 60, false), 120 * S), (1, 1), "a window closes at its end");
        assert_eq!(window_tiles(&plan(60, 60, false), 120 * S - 1), (0, 0));
        // Tiled: an hour of 10-minute tiles at 2 h 5 min: [1 h, 2 h), tiles 6..=11.
        assert_eq!(window_tiles(&plan(3600, 600, false), 7500 * S), (6, 11));
    }
}
