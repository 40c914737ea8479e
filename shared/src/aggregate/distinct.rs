//! `count_distinct`'s partial state: the distinct values of a tile (or window) as 64-bit
//! hashes, exact up to [`EXACT_CAP`] of them, a HyperLogLog sketch of [`REGISTERS`] registers
//! beyond.
//!
//! The state is a function of the set of values seen and nothing else: a union of at most
//! [`EXACT_CAP`] hashes is kept exactly, a larger one as the registers of all its hashes, and a
//! register is the maximum over the hashes that reach it. So tiles merge in any grouping to the
//! same bytes, the answer over a window is exact exactly when the window holds at most
//! [`EXACT_CAP`] distinct values, and `tiles.lua` (which merges the states Rust builds, and never
//! hashes) stores the same bits as the in-memory store. The cap is where the exact list (8 bytes
//! a hash) would outgrow the sketch (a byte a register).

use crate::proto::types::value::Val;
use crate::value::Value;

/// Distinct values a state holds exactly; one more and it becomes a sketch.
pub const EXACT_CAP: usize = 512;

/// Bits of a hash that choose a register.
const INDEX_BITS: u32 = 12;

/// The largest rank: a hash whose bits after the index are all zero.
const MAX_RANK: u8 = (64 - INDEX_BITS + 1) as u8;

/// HyperLogLog registers: a standard error of 1.04 / sqrt(4096), about 1.6%.
pub const REGISTERS: usize = 1 << INDEX_BITS;

/// HyperLogLog's bias constant for this many registers (Flajolet et al.), in the expression
/// order `tiles.lua` uses.
const ALPHA: f64 = 0.7213 / (1.0 + 1.079 / REGISTERS as f64);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Distinct {
    /// The hashes of the distinct values, ascending, at most [`EXACT_CAP`].
    Exact(Vec<u64>),
    /// Per register, the largest rank of the hashes that reach it.
    Sketch(Box<[u8]>),
}

impl Default for Distinct {
    fn default() -> Self {
        Distinct::Exact(Vec::new())
    }
}

impl Distinct {
    pub fn is_empty(&self) -> bool {
        matches!(self, Distinct::Exact(v) if v.is_empty())
    }

    /// Adds the value whose hash ([`id`]) is `h`.
    pub fn push(&mut self, h: u64) {
        match self {
            Distinct::Exact(v) => {
                if let Err(at) = v.binary_search(&h) {
                    v.insert(at, h);
                    if v.len() > EXACT_CAP {
                        *self = Distinct::Sketch(sketch_of(v));
                    }
                }
            }
            Distinct::Sketch(r) => add(r, h),
        }
    }

    /// The union of `self` and `b`.
    pub fn merge(&mut self, b: &Distinct) {
        match (&mut *self, b) {
            (Distinct::Exact(a), Distinct::Exact(hs)) => {
                let union = sorted_union(a, hs);
                *self =
                    if union.len() > EXACT_CAP { Distinct::Sketch(sketch_of(&union)) } else { Distinct::Exact(union) };
            }
            (Distinct::Sketch(r), Distinct::Exact(hs)) => hs.iter().for_each(|&h| add(r, h)),
            (Distinct::Exact(a), Distinct::Sketch(rb)) => {
                let mut r = rb.clone();
                a.iter().for_each(|&h| add(&mut r, h));
                *self = Distinct::Sketch(r);
            }
            (Distinct::Sketch(r), Distinct::Sketch(rb)) => {
                for (x, y) in r.iter_mut().zip(rb.iter()) {
                    *x = (*x).max(*y);
                }
            }
        }
    }

    /// The number of distinct values: exact, or the sketch's estimate (linear counting while
    /// registers are still empty and the raw estimate is small, as HyperLogLog prescribes).
    pub fn count(&self) -> f64 {
        match self {
            Distinct::Exact(v) => v.len() as f64,
            Distinct::Sketch(r) => {
                let m = REGISTERS as f64;
                let mut z = 0.0;
                let mut zeros = 0u32;
                for &rank in r.iter() {
                    // 2^-rank, exact (and summed in register order, as tiles.lua does).
                    z += f64::from_bits((1023 - u64::from(rank)) << 52);
                    zeros += u32::from(rank == 0);
                }
                let e = ALPHA * m * m / z;
                if e <= 2.5 * m && zeros > 0 { m * (m / f64::from(zeros)).ln() } else { e }
            }
        }
    }

    /// `E` and the hashes, 8 bytes big-endian each; or `H` and the registers.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Distinct::Exact(v) => {
                let mut out = Vec::with_capacity(1 + 8 * v.len());
                out.push(b'E');
                v.iter().for_each(|h| out.extend_from_slice(&h.to_be_bytes()));
                out
            }
            Distinct::Sketch(r) => {
                let mut out = Vec::with_capacity(1 + REGISTERS);
                out.push(b'H');
                out.extend_from_slice(r);
                out
            }
        }
    }

    /// A stored state; `None` when the bytes are not one.
    pub fn decode(bytes: &[u8]) -> Option<Distinct> {
        match bytes.split_first()? {
            (b'E', rest) if rest.len().is_multiple_of(8) && rest.len() / 8 <= EXACT_CAP => {
                let v: Vec<u64> =
                    rest.chunks_exact(8).map(|c| u64::from_be_bytes(c.try_into().expect("8 bytes"))).collect();
                v.windows(2).all(|w| w[0] < w[1]).then_some(Distinct::Exact(v))
            }
            (b'H', rest) if rest.len() == REGISTERS && rest.iter().all(|&r| r <= MAX_RANK) => {
                Some(Distinct::Sketch(rest.into()))
            }
            _ => None,
        }
    }
}

/// The register a hash reaches (its top bits) and its rank there: one more than the leading
/// zeros of the rest, 53 when the rest is all zeros.
fn register(h: u64) -> (usize, u8) {
    let rest = h << INDEX_BITS;
    let rank = if rest == 0 { MAX_RANK } else { rest.leading_zeros() as u8 + 1 };
    ((h >> (64 - INDEX_BITS)) as usize, rank)
}

fn add(registers: &mut [u8], h: u64) {
    let (i, rank) = register(h);
    registers[i] = registers[i].max(rank);
}

fn sketch_of(hashes: &[u64]) -> Box<[u8]> {
    let mut r = vec![0u8; REGISTERS].into_boxed_slice();
    hashes.iter().for_each(|&h| add(&mut r, h));
    r
}

fn sorted_union(a: &[u64], b: &[u64]) -> Vec<u64> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => {
                out.push(a[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(b[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

/// The hash a value is counted by: FNV-1a over its serialized `feast.types.Value`, then
/// MurmurHash3's 64-bit finalizer so that every bit depends on every input bit (HyperLogLog
/// reads the top bits). `None` for a null and a NaN, which `count_distinct` does not count (as
/// pandas' `nunique`); -0.0 counts as 0.0. Stable across builds and platforms: stored states
/// depend on it.
pub fn id(v: &Value) -> Option<u64> {
    let zero = |x: f64| x == 0.0;
    let normal = match v.val.as_ref()? {
        Val::NullVal(_) => return None,
        Val::DoubleVal(x) if x.is_nan() => return None,
        Val::FloatVal(x) if x.is_nan() => return None,
        Val::DoubleVal(x) if zero(*x) => Some(Value { val: Some(Val::DoubleVal(0.0)) }),
        Val::FloatVal(x) if zero(f64::from(*x)) => Some(Value { val: Some(Val::FloatVal(0.0)) }),
        _ => None,
    };
    let bytes = crate::value::encode(normal.as_ref().unwrap_or(v));
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    Some(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(values: impl IntoIterator<Item = u64>) -> Distinct {
        let mut d = Distinct::default();
        for x in values {
            d.push(id(&Value { val: Some(Val::Int64Val(x as i64)) }).unwrap());
        }
        d
    }

    #[test]
    fn exact_up_to_the_cap_then_a_sketch() {
        let d = of((0..EXACT_CAP as u64).chain(0..100));
        assert!(matches!(d, Distinct::Exact(_)));
        assert_eq!(d.count(), EXACT_CAP as f64);
        let d = of(0..=EXACT_CAP as u64);
        assert!(matches!(d, Distinct::Sketch(_)));
        let c = d.count();
        assert!((c - 513.0).abs() < 513.0 * 0.05, "{c}");
    }

    #[test]
    fn the_sketch_estimates_within_its_error() {
        // Linear counting (small) and the raw estimate (large), each within 4 standard errors.
        for n in [2_000u64, 9_000, 40_000, 200_000] {
            let c = of((0..n).map(|i| i * 7919 + 3)).count();
            let err = (c - n as f64).abs() / n as f64;
            assert!(err < 4.0 * 0.0163, "{n}: estimated {c}");
        }
    }

    #[test]
    fn merging_in_any_grouping_gives_the_same_state() {
        for (n, overlap) in [(300u64, 100u64), (700, 50), (5000, 2000)] {
            let whole = of(0..n + overlap);
            for split in [1, n / 3, n] {
                let mut a = of(0..split + overlap);
                a.merge(&of(split..n + overlap));
                assert_eq!(a, whole, "n {n} split {split}");
                let mut b = of(split..n + overlap);
                b.merge(&of(0..split + overlap));
                assert_eq!(b, whole, "n {n} split {split}, the other way");
            }
            let mut e = Distinct::default();
            e.merge(&whole);
            assert_eq!(e, whole);
        }
    }

    #[test]
    fn two_exact_sets_merge_exactly_up_to_the_cap() {
        let cap = EXACT_CAP as u64;
        // Halves overlapping by 100: a union of exactly the cap stays exact, one more is a sketch.
        let mut a = of(0..cap / 2 + 100);
        a.merge(&of(cap / 2..cap));
        assert!(matches!(a, Distinct::Exact(_)), "{} values", a.count());
        assert_eq!(a, of(0..cap));
        let mut b = of(0..cap / 2 + 100);
        b.merge(&of(cap / 2..cap + 1));
        assert!(matches!(b, Distinct::Sketch(_)));
        assert_eq!(b, of(0..cap + 1));
    }

    #[test]
    fn encoding_round_trips_and_rejects_what_is_not_a_state() {
        for d in [Distinct::default(), of(0..10), of(0..2000)] {
            assert_eq!(Distinct::decode(&d.encode()), Some(d));
        }
        let e = of(0..3).encode();
        assert_eq!(e.len(), 25);
        assert_eq!(Distinct::decode(&e[..24]), None);
        let mut unsorted = e.clone();
        unsorted[1..9].copy_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(Distinct::decode(&unsorted), None);
        assert_eq!(Distinct::decode(&[b'H'; 100]), None);
        let mut sketch = of(0..2000).encode();
        sketch[7] = 54;
        assert_eq!(Distinct::decode(&sketch), None, "no rank is above 53");
        assert_eq!(Distinct::decode(b""), None);
    }

    #[test]
    fn values_are_told_apart_by_type_and_bits_but_not_by_sign_of_zero() {
        let v = |val| id(&Value { val: Some(val) });
        assert_eq!(v(Val::DoubleVal(-0.0)), v(Val::DoubleVal(0.0)));
        assert_eq!(v(Val::DoubleVal(f64::NAN)), None);
        assert_eq!(id(&Value { val: None }), None);
        assert_ne!(v(Val::StringVal("a".into())), v(Val::StringVal("b".into())));
        assert_ne!(v(Val::Int64Val(1)), v(Val::DoubleVal(1.0)));
        assert_ne!(v(Val::Int64Val(1 << 60)), v(Val::Int64Val((1 << 60) + 1)), "beyond doubles' precision");
        // Pinned: stored states depend on the hash staying what it is.
        assert_eq!(v(Val::StringVal("sensor".into())), Some(0x0b02_56ad_0a23_876c));
    }

    #[test]
    fn ranks_count_leading_zeros_after_the_index() {
        assert_eq!(register(0), (0, 53));
        assert_eq!(register(u64::MAX), (REGISTERS - 1, 1));
        assert_eq!(register(1 << 51), (0, 1));
        assert_eq!(register(1), (0, 52));
        assert_eq!(register(0xabc0_0000_0000_0000 | 1 << 40), (0xabc, 12));
    }
}
