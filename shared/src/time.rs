//! Event times: parsing what Feast users send, formatting what Feast's server answers, and the
//! `google.protobuf.Timestamp` bytes stored in `_ts:<view>` fields.
//!
//! Hand-written rather than chrono-based because this sits on the push hot path (one parse per
//! record) and the formats are small and fixed: RFC 3339 plus the space-separated and naive forms
//! pandas accepts.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use prost::Message;

/// An instant with nanosecond precision, ordered by time. The full `Timestamp` range fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EventTime {
    pub secs: i64,
    /// Always in `0..1_000_000_000`.
    pub nanos: u32,
}

impl EventTime {
    pub const EPOCH: EventTime = EventTime { secs: 0, nanos: 0 };

    pub fn new(secs: i64, nanos: u32) -> Self {
        debug_assert!(nanos < 1_000_000_000);
        EventTime { secs, nanos }
    }

    pub fn now() -> Self {
        let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        EventTime { secs: d.as_secs() as i64, nanos: d.subsec_nanos() }
    }

    /// From a count of `unit_per_sec` units since the epoch (1 = seconds, 1000 = ms, ...).
    pub fn from_units(value: i64, units_per_sec: i64) -> Self {
        let secs = value.div_euclid(units_per_sec);
        let rem = value.rem_euclid(units_per_sec);
        EventTime { secs, nanos: (rem * (1_000_000_000 / units_per_sec)) as u32 }
    }

    pub fn from_micros(us: i64) -> Self {
        Self::from_units(us, 1_000_000)
    }

    pub fn from_nanos(ns: i64) -> Self {
        Self::from_units(ns, 1_000_000_000)
    }

    /// Whole microseconds since the epoch (rounded down), saturating.
    pub fn as_micros(self) -> i64 {
        self.secs.saturating_mul(1_000_000).saturating_add(i64::from(self.nanos / 1000))
    }

    /// Whole milliseconds since the epoch (rounded down), saturating.
    pub fn as_millis(self) -> i64 {
        self.secs.saturating_mul(1000).saturating_add(i64::from(self.nanos / 1_000_000))
    }

    pub fn to_proto(self) -> prost_types::Timestamp {
        prost_types::Timestamp { seconds: self.secs, nanos: self.nanos as i32 }
    }

    /// Normalizes out-of-range nanos the way protobuf's own libraries do.
    pub fn from_proto(ts: &prost_types::Timestamp) -> Self {
        let total_nanos = ts.nanos as i64;
        let secs = ts.seconds + total_nanos.div_euclid(1_000_000_000);
        EventTime { secs, nanos: total_nanos.rem_euclid(1_000_000_000) as u32 }
    }

    /// The serialized `google.protobuf.Timestamp`, as Feast stores it in `_ts:<view>`.
    pub fn to_proto_bytes(self) -> Vec<u8> {
        self.to_proto().encode_to_vec()
    }

    pub fn from_proto_bytes(bytes: &[u8]) -> Result<Self, String> {
        prost_types::Timestamp::decode(bytes)
            .map(|ts| Self::from_proto(&ts))
            .map_err(|e| format!("stored timestamp is not a protobuf Timestamp: {e}"))
    }

    /// Seconds since the epoch as a float, for rates and logs.
    pub fn as_secs_f64(self) -> f64 {
        self.secs as f64 + self.nanos as f64 / 1e9
    }

    pub fn add_secs(self, secs: i64) -> Self {
        EventTime { secs: self.secs.saturating_add(secs), nanos: self.nanos }
    }

    /// Parses RFC 3339 and the forms pandas reads: `2024-01-01T12:00:00Z`, `2024-01-01 12:00:00+00:00`,
    /// `2024-01-01T12:00:00.123456789`, `2024-01-01`. A time without an offset is UTC, as in Feast.
    pub fn parse(text: &str) -> Result<Self, String> {
        parse(text.trim())
            .ok_or_else(|| format!("'{text}' is not a timestamp (expected RFC 3339, e.g. 2024-01-01T12:00:00Z)"))
    }

    /// Writes the time as Feast's server prints it: seconds, then `.mmm`, `.uuuuuu` or
    /// `.nnnnnnnnn` when the fraction needs it, then `Z`. On the response hot path (one per
    /// feature value), so it writes fixed-width digits into a stack buffer.
    pub fn write_rfc3339(self, out: &mut Vec<u8>) {
        let days = self.secs.div_euclid(86_400);
        let sod = self.secs.rem_euclid(86_400) as u32;
        let (y, m, d) = civil_from_days(days);
        if !(0..=9999).contains(&y) {
            // Outside four-digit years RFC 3339 has no form; ISO 8601's expanded years are the
            // least surprising text.
            out.push(if y < 0 { b'-' } else { b'+' });
            push_digits(out, y.unsigned_abs(), 6);
            // The rest is the same text as for any year: write it with a placeholder year.
            let mut rest = Vec::with_capacity(32);
            self.write_fixed(0, m, d, sod, &mut rest);
            out.extend_from_slice(&rest[4..]);
            return;
        }
        self.write_fixed(y as u32, m, d, sod, out);
    }

    fn write_fixed(self, y: u32, m: u32, d: u32, sod: u32, out: &mut Vec<u8>) {
        let mut b = *b"0000-00-00T00:00:00.000000000Z";
        put4(&mut b[0..4], y);
        put2(&mut b[5..7], m);
        put2(&mut b[8..10], d);
        put2(&mut b[11..13], sod / 3600);
        put2(&mut b[14..16], (sod / 60) % 60);
        put2(&mut b[17..19], sod % 60);
        let n = self.nanos;
        let len = if n == 0 {
            19
        } else if n.is_multiple_of(1_000_000) {
            put_n(&mut b[20..23], n / 1_000_000);
            23
        } else if n.is_multiple_of(1_000) {
            put_n(&mut b[20..26], n / 1_000);
            26
        } else {
            put_n(&mut b[20..29], n);
            29
        };
        out.extend_from_slice(&b[..len]);
        out.push(b'Z');
    }

    pub fn to_rfc3339(self) -> String {
        let mut out = Vec::with_capacity(32);
        self.write_rfc3339(&mut out);
        String::from_utf8(out).expect("ascii")
    }
}

impl fmt::Display for EventTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

fn put2(b: &mut [u8], v: u32) {
    b[0] = b'0' + (v / 10) as u8;
    b[1] = b'0' + (v % 10) as u8;
}

fn put4(b: &mut [u8], v: u32) {
    put2(&mut b[0..2], v / 100);
    put2(&mut b[2..4], v % 100);
}

/// Writes `v` right-aligned in `b`, zero-padded.
fn put_n(b: &mut [u8], mut v: u32) {
    for slot in b.iter_mut().rev() {
        *slot = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

fn push_digits(out: &mut Vec<u8>, mut v: u64, width: usize) {
    let mut buf = [b'0'; 20];
    let mut i = buf.len();
    while v > 0 {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    let digits = buf.len() - i;
    for _ in digits..width {
        out.push(b'0');
    }
    out.extend_from_slice(&buf[i..]);
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn digits(&mut self, n: usize) -> Option<u32> {
        let part = self.s.get(self.i..self.i + n)?;
        let mut v = 0u32;
        for &c in part {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + (c - b'0') as u32;
        }
        self.i += n;
        Some(v)
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn done(&self) -> bool {
        self.i == self.s.len()
    }
}

fn parse(text: &str) -> Option<EventTime> {
    let mut c = Cursor { s: text.as_bytes(), i: 0 };
    let year = c.digits(4)? as i64;
    if !c.eat(b'-') {
        return None;
    }
    let month = c.digits(2)?;
    if !c.eat(b'-') {
        return None;
    }
    let day = c.digits(2)?;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let (mut h, mut mi, mut s, mut nanos) = (0, 0, 0, 0u32);
    let mut offset_secs = 0i64;
    if !c.done() {
        if !(c.eat(b'T') || c.eat(b't') || c.eat(b' ')) {
            return None;
        }
        h = c.digits(2)?;
        if !c.eat(b':') {
            return None;
        }
        mi = c.digits(2)?;
        if c.eat(b':') {
            s = c.digits(2)?;
            if c.eat(b'.') || c.eat(b',') {
                let mut scale = 100_000_000u32;
                let start = c.i;
                while let Some(d) = c.peek().filter(u8::is_ascii_digit) {
                    nanos += (d - b'0') as u32 * scale;
                    scale /= 10;
                    c.i += 1;
                }
                if c.i == start {
                    return None;
                }
            }
        }
        if h > 23 || mi > 59 || s > 60 {
            return None;
        }
        match c.peek() {
            None => {}
            Some(b'Z' | b'z') => c.i += 1,
            Some(sign @ (b'+' | b'-')) => {
                c.i += 1;
                let oh = c.digits(2)? as i64;
                c.eat(b':');
                let om = if c.done() { 0 } else { c.digits(2)? as i64 };
                if oh > 23 || om > 59 {
                    return None;
                }
                let offset = oh * 3600 + om * 60;
                offset_secs = if sign == b'+' { offset } else { -offset };
            }
            Some(_) => return None,
        }
        if !c.done() {
            return None;
        }
    }
    // A leap second (:60) folds into the next second, as every Unix clock does.
    let secs = days_from_civil(year, month, day) * 86_400 + (h * 3600 + mi * 60 + s) as i64 - offset_secs;
    Some(EventTime { secs, nanos })
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn micros_and_millis_round_down_and_saturate() {
        let t = EventTime::new(1_700_000_000, 123_456_789);
        assert_eq!(t.as_micros(), 1_700_000_000_123_456);
        assert_eq!(t.as_millis(), 1_700_000_000_123);
        let before = EventTime::new(-2, 999_999_999);
        assert_eq!((before.as_micros(), before.as_millis()), (-1_000_001, -1_001), "1 ns before -1 s");
        assert_eq!(EventTime::new(i64::MAX, 999_999_999).as_micros(), i64::MAX);
        assert_eq!(EventTime::new(i64::MIN, 0).as_millis(), i64::MIN);
    }

    #[test]
    fn calendar_clock_and_offset_ranges_are_checked() {
        for ok in
            ["2024-02-29", "2000-02-29", "2024-04-30", "2024-01-31", "2024-12-31T23:59:59Z", "2024-06-30T23:59:60Z"]
        {
            assert!(EventTime::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "2023-02-29",
            "1900-02-29",
            "2100-02-29",
            "2024-04-31",
            "2024-06-31",
            "2024-09-31",
            "2024-11-31",
            "2023-02-30",
            "2024-01-32",
            "2024-01-01T24:00:00Z",
            "2024-01-01T23:60:00Z",
            "2024-01-01T23:59:61Z",
            "2024-01-01T00:00:00+24:00",
            "2024-01-01T00:00:00+05:60",
        ] {
            assert!(EventTime::parse(bad).is_err(), "{bad} was accepted");
        }
        let utc = EventTime::parse("2024-01-01T00:00:00Z").unwrap();
        assert_eq!(EventTime::parse("2024-01-01T05:30:00+05:30").unwrap(), utc);
        assert_eq!(EventTime::parse("2023-12-31T22:45:00-01:15").unwrap(), utc);
        assert_eq!(EventTime::parse("2024-01-01T23:59:00+23:59").unwrap(), utc);
    }

    #[test]
    fn now_and_float_seconds() {
        let before = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let now = EventTime::now();
        let after = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let ns = |d: std::time::Duration| d.as_nanos() as i128;
        let at = now.secs as i128 * 1_000_000_000 + now.nanos as i128;
        assert!(ns(before) <= at && at <= ns(after), "{now:?} not between {before:?} and {after:?}");
        assert_eq!(EventTime::new(1_700_000_000, 250_000_000).as_secs_f64(), 1_700_000_000.25);
        assert_eq!(EventTime::new(-2, 500_000_000).as_secs_f64(), -1.5);
        assert_eq!(EventTime::EPOCH.as_secs_f64(), 0.0);
        // The last day of a 400-year era (the calendar's rarest branch), written and read back.
        for day in ["2000-02-29T00:00:00Z", "2400-02-29T23:59:59Z", "1600-02-29T12:00:00Z"] {
            assert_eq!(EventTime::parse(day).unwrap().to_rfc3339(), day);
        }
        // Display is the RFC 3339 text the CLI prints.
        assert_eq!(EventTime::new(1_700_000_000, 250_000_000).to_string(), "2023-11-14T22:13:20.250Z");
    }

    #[test]
    fn timestamp_bytes_match_feast_vectors() {
        // §1.3: 2021-12-31T23:00:00Z and 2024-01-01T12:00:00.123456Z.
        let t = EventTime::parse("2021-12-31T23:00:00Z").unwrap();
        assert_eq!(hex(&t.to_proto_bytes()), "08f096be8e06");
        let t = EventTime::parse("2024-01-01T12:00:00.123456Z").unwrap();
        assert_eq!(hex(&t.to_proto_bytes()), "08c0d2caac06108094ef3a");
        assert_eq!(EventTime::from_proto_bytes(&t.to_proto_bytes()).unwrap(), t);
        // Epoch is an empty message.
        assert_eq!(EventTime::EPOCH.to_proto_bytes(), Vec::<u8>::new());
    }

    #[test]
    fn formats_like_feast_server() {
        let cases = [
            ("1970-01-01T00:00:00Z", "1970-01-01T00:00:00Z"),
            ("2021-01-01T00:00:00.5Z", "2021-01-01T00:00:00.500Z"),
            ("2021-01-01T00:00:00.123456Z", "2021-01-01T00:00:00.123456Z"),
            ("2021-01-01T00:00:00.123456789Z", "2021-01-01T00:00:00.123456789Z"),
            ("2021-01-01T00:00:00.120Z", "2021-01-01T00:00:00.120Z"),
        ];
        for (input, want) in cases {
            assert_eq!(EventTime::parse(input).unwrap().to_rfc3339(), want, "{input}");
        }
    }

    #[test]
    fn parses_pandas_forms_and_offsets() {
        let z = EventTime::parse("2022-05-13T10:59:42Z").unwrap();
        for s in [
            "2022-05-13 10:59:42+00:00",
            "2022-05-13T10:59:42",
            "2022-05-13T12:59:42+02:00",
            "2022-05-13T07:59:42-0300",
            "2022-05-13 10:59:42.000",
        ] {
            assert_eq!(EventTime::parse(s).unwrap(), z, "{s}");
        }
        assert_eq!(EventTime::parse("2022-05-13").unwrap(), EventTime::parse("2022-05-13T00:00:00Z").unwrap());
        assert_eq!(EventTime::parse("1969-12-31T23:59:59.5Z").unwrap(), EventTime { secs: -1, nanos: 500_000_000 });
        // Years outside 0..=9999 use ISO 8601's expanded form.
        assert_eq!(EventTime::new(253_402_300_800, 1_000).to_rfc3339(), "+010000-01-01T00:00:00.000001Z");
        assert_eq!(EventTime::new(-62_167_219_201, 0).to_rfc3339(), "-000001-12-31T23:59:59Z");
        for bad in [
            "",
            "2022-13-01",
            "2022-02-30",
            "yesterday",
            "2022-05-13T25:00:00Z",
            "2022-05-13T10:59:42Q",
            "2022-05-13T10:59:42.",
        ] {
            assert!(EventTime::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn civil_round_trip_over_wide_range() {
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn unit_conversions_floor_toward_negative_infinity() {
        assert_eq!(EventTime::from_micros(-1), EventTime { secs: -1, nanos: 999_999_000 });
        assert_eq!(EventTime::from_nanos(1_500_000_000), EventTime { secs: 1, nanos: 500_000_000 });
        assert_eq!(
            EventTime::from_proto(&prost_types::Timestamp { seconds: 1, nanos: -1 }),
            EventTime { secs: 0, nanos: 999_999_999 }
        );
    }
}
