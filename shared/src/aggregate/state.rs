//! The partial state of one tile of one column: everything every function needs, mergeable in
//! any grouping (a tile from events, a window from tiles) with the same answer up to rounding.
//!
//! The second moment is Welford's running M2, merged with Chan et al.'s pairwise formula: a sum
//! of squares minus the squared sum cancels catastrophically for values far from zero (1e9 +
//! small noise has no variance left in doubles), M2 keeps it. `tiles.lua` merges with the same
//! formulas in the same order, so Redis and the in-memory store store the same bits.

use super::Function;
use super::distinct::Distinct;

/// Bytes of an encoded state: eight little-endian doubles.
pub const ENCODED_LEN: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TileState {
    /// Values seen (nulls are not values).
    pub n: f64,
    pub sum: f64,
    pub mean: f64,
    /// Sum of squared differences from the mean.
    pub m2: f64,
    pub min: f64,
    pub max: f64,
    /// The value of the newest event, and its time in microseconds since the epoch.
    pub last: f64,
    pub last_us: f64,
}

impl Default for TileState {
    fn default() -> Self {
        TileState::EMPTY
    }
}

impl TileState {
    pub const EMPTY: TileState = TileState {
        n: 0.0,
        sum: 0.0,
        mean: 0.0,
        m2: 0.0,
        min: f64::INFINITY,
        max: f64::NEG_INFINITY,
        last: 0.0,
        last_us: f64::NEG_INFINITY,
    };

    pub fn is_empty(&self) -> bool {
        self.n == 0.0
    }

    /// Adds one value at `time_us` (Welford). An equal time replaces `last`: of events at the
    /// same time the one applied later wins, as a stable sort by time would have it.
    pub fn push(&mut self, x: f64, time_us: i64) {
        self.n += 1.0;
        let d = x - self.mean;
        self.mean += d / self.n;
        self.m2 += d * (x - self.mean);
        self.sum += x;
        self.min = self.min.min(x);
        self.max = self.max.max(x);
        let t = time_us as f64;
        if t >= self.last_us {
            self.last = x;
            self.last_us = t;
        }
    }

    /// Merges `b` into `self` (Chan et al.); `b` is the later of the two for `last` ties.
    /// The expression order is `tiles.lua`'s, so both give the same bits.
    pub fn merge(&mut self, b: &TileState) {
        if b.n == 0.0 {
            return;
        }
        if self.n == 0.0 {
            *self = *b;
            return;
        }
        let n = self.n + b.n;
        let d = b.mean - self.mean;
        self.mean += d * b.n / n;
        self.m2 = self.m2 + b.m2 + d * d * self.n * b.n / n;
        self.n = n;
        self.sum += b.sum;
        self.min = self.min.min(b.min);
        self.max = self.max.max(b.max);
        if b.last_us >= self.last_us {
            self.last = b.last;
            self.last_us = b.last_us;
        }
    }

    /// The function's value over this state: `None` for a null (no values; `std` and `var`
    /// of fewer than two, as pandas gives NaN). `count` is never null.
    pub fn finish(&self, f: Function) -> Option<f64> {
        let n = self.n;
        match f {
            Function::Count => Some(n),
            _ if n == 0.0 => None,
            Function::Sum => Some(self.sum),
            Function::Mean => Some(self.mean),
            Function::Min => Some(self.min),
            Function::Max => Some(self.max),
            Function::Last => Some(self.last),
            Function::Var | Function::Std if n < 2.0 => None,
            // M2 can come out a hair below zero after merging equal values.
            Function::Var => Some((self.m2 / (n - 1.0)).max(0.0)),
            Function::Std => Some((self.m2 / (n - 1.0)).max(0.0).sqrt()),
            Function::CountDistinct => None,
        }
    }

    pub fn encode(&self) -> [u8; ENCODED_LEN] {
        let mut out = [0u8; ENCODED_LEN];
        let parts = [self.n, self.sum, self.mean, self.m2, self.min, self.max, self.last, self.last_us];
        for (chunk, v) in out.chunks_exact_mut(8).zip(parts) {
            chunk.copy_from_slice(&v.to_le_bytes());
        }
        out
    }

    /// A stored state; `None` when the bytes are not one (another writer's field).
    pub fn decode(bytes: &[u8]) -> Option<TileState> {
        if bytes.len() != ENCODED_LEN {
            return None;
        }
        let d = |i: usize| f64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        Some(TileState { n: d(0), sum: d(1), mean: d(2), m2: d(3), min: d(4), max: d(5), last: d(6), last_us: d(7) })
    }
}

/// A tile's partial state of one series: moments for every function but `count_distinct`,
/// whose series keep the distinct values.
#[derive(Debug, Clone, PartialEq)]
pub enum Partial {
    Moments(TileState),
    Distinct(Distinct),
}

impl Partial {
    /// No values, of a series that keeps distinct values or moments.
    pub fn empty(distinct: bool) -> Partial {
        if distinct { Partial::Distinct(Distinct::default()) } else { Partial::Moments(TileState::EMPTY) }
    }

    pub fn is_empty(&self) -> bool {
        match self {
            Partial::Moments(s) => s.is_empty(),
            Partial::Distinct(d) => d.is_empty(),
        }
    }

    /// Merges `b` into `self`; states of different kinds (never of one series) leave `self`.
    pub fn merge(&mut self, b: &Partial) {
        match (self, b) {
            (Partial::Moments(a), Partial::Moments(b)) => a.merge(b),
            (Partial::Distinct(a), Partial::Distinct(b)) => a.merge(b),
            _ => {}
        }
    }

    /// The function's value, as [`TileState::finish`]; `count_distinct` of no values is 0.
    pub fn finish(&self, f: Function) -> Option<f64> {
        match (self, f) {
            (Partial::Moments(s), _) => s.finish(f),
            (Partial::Distinct(d), Function::CountDistinct) => Some(d.count()),
            (Partial::Distinct(_), _) => None,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        match self {
            Partial::Moments(s) => s.encode().to_vec(),
            Partial::Distinct(d) => d.encode(),
        }
    }

    /// A stored state of a series of that kind; `None` when the bytes are not one.
    pub fn decode(distinct: bool, bytes: &[u8]) -> Option<Partial> {
        if distinct {
            Distinct::decode(bytes).map(Partial::Distinct)
        } else {
            TileState::decode(bytes).map(Partial::Moments)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(values: &[(f64, i64)]) -> TileState {
        let mut s = TileState::EMPTY;
        for &(x, t) in values {
            s.push(x, t);
        }
        s
    }

    /// The textbook two-pass sample variance.
    fn two_pass_var(xs: &[f64]) -> f64 {
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (xs.len() as f64 - 1.0)
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(f64::MIN_POSITIVE)
    }

    #[test]
    fn every_function_over_pushed_values() {
        let s = of(&[(3.0, 10), (1.0, 30), (8.0, 20), (4.0, 30)]);
        let f = |func| s.finish(func).unwrap();
        assert_eq!(f(Function::Count), 4.0);
        assert_eq!(f(Function::Sum), 16.0);
        assert_eq!(f(Function::Mean), 4.0);
        assert_eq!(f(Function::Min), 1.0);
        assert_eq!(f(Function::Max), 8.0);
        assert!(close(f(Function::Var), two_pass_var(&[3.0, 1.0, 8.0, 4.0])));
        assert!(close(f(Function::Std), two_pass_var(&[3.0, 1.0, 8.0, 4.0]).sqrt()));
        assert_eq!(f(Function::Last), 4.0, "of two events at the newest time, the later applied wins");
    }

    #[test]
    fn empty_and_single_states_answer_nulls_but_count() {
        let empty = TileState::EMPTY;
        assert_eq!(empty.finish(Function::Count), Some(0.0));
        for f in [Function::Sum, Function::Mean, Function::Min, Function::Max, Function::Std, Function::Last] {
            assert_eq!(empty.finish(f), None, "{f:?}");
        }
        let one = of(&[(2.5, 1)]);
        assert_eq!(one.finish(Function::Std), None, "pandas: NaN for one value");
        assert_eq!(one.finish(Function::Var), None);
        assert_eq!(one.finish(Function::Mean), Some(2.5));
    }

    #[test]
    fn merging_in_any_grouping_agrees_with_one_pass() {
        let xs: Vec<(f64, i64)> = (0..40).map(|i| (((i * 37) % 11) as f64 * 0.75 - 2.0, (i * 7) % 13)).collect();
        let whole = of(&xs);
        for split in [1, 7, 20, 39] {
            let mut a = of(&xs[..split]);
            a.merge(&of(&xs[split..]));
            assert_eq!(a.n, whole.n);
            assert!(close(a.sum, whole.sum) && close(a.mean, whole.mean) && close(a.m2, whole.m2), "split {split}");
            assert_eq!((a.min, a.max), (whole.min, whole.max));
            assert_eq!((a.last, a.last_us), (whole.last, whole.last_us), "split {split}");
        }
        let mut e = TileState::EMPTY;
        e.merge(&whole);
        assert_eq!(e, whole);
        let mut w = whole;
        w.merge(&TileState::EMPTY);
        assert_eq!(w, whole);
    }

    #[test]
    fn variance_survives_large_offsets() {
        // 1e9 + small noise: a sum of squares keeps nothing of the variance; M2 keeps it all.
        let noise = [0.1, -0.2, 0.05, 0.3, -0.15, 0.0, 0.12];
        let xs: Vec<f64> = noise.iter().map(|d| 1e9 + d).collect();
        let mut a = of(&xs[..3].iter().map(|&x| (x, 0)).collect::<Vec<_>>());
        a.merge(&of(&xs[3..].iter().map(|&x| (x, 0)).collect::<Vec<_>>()));
        let want = two_pass_var(&xs);
        let got = a.finish(Function::Var).unwrap();
        assert!((got - want).abs() <= 1e-6 * want, "{got} vs {want}");
    }

    #[test]
    fn encoding_round_trips_every_bit() {
        let s = of(&[(1e300, -5), (-0.0, 7), (f64::MIN_POSITIVE, 7)]);
        let bytes = s.encode();
        assert_eq!(TileState::decode(&bytes), Some(s));
        assert_eq!(TileState::decode(&TileState::EMPTY.encode()), Some(TileState::EMPTY));
        assert_eq!(TileState::decode(&bytes[..63]), None);
        assert_eq!(&bytes[..8], &3.0f64.to_le_bytes());
    }
}
