//! The commands a write sends: newest-wins script calls (`newest_wins.lua`) carrying a key's
//! rows for every view written to it, several keys per call on a standalone server; or for
//! `skip_dedup` Feast's plain HSET + EXPIRE.
//!
//! Feast reads `_ts:<view>` with one pipeline and writes with another, so two writers can both
//! read an old time and the older event can land last. Doing the comparison inside Redis, in a
//! script per key, makes it atomic: Redis runs one script at a time.

use std::sync::LazyLock;

use ::redis::{Cmd, Script, cmd};

use crate::online::{ViewWrite, WriteRow};
use crate::time::EventTime;

/// The script's source.
pub const NEWEST_WINS_LUA: &str = include_str!("newest_wins.lua");

static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(NEWEST_WINS_LUA));

/// The SHA1 Redis knows the script by (`EVALSHA`, `SCRIPT LOAD`'s answer).
pub fn sha() -> &'static str {
    SCRIPT.get_hash()
}

/// `SCRIPT LOAD`: caches the script on the node that receives it.
pub fn load() -> Cmd {
    let mut c = cmd("SCRIPT");
    c.arg("LOAD").arg(NEWEST_WINS_LUA);
    c
}

/// A command sized for its arguments up front: a write sends one per row, and growing the
/// argument buffers step by step cost more than the rest of building it.
fn sized(name: &str, args: usize, bytes: usize) -> Cmd {
    let mut c = Cmd::with_capacity(args + 1, name.len() + bytes);
    c.arg(name);
    c
}

fn row_bytes(fields: &[[u8; 4]], row: &WriteRow) -> usize {
    fields.len() * 4 + row.values.iter().map(Vec::len).sum::<usize>()
}

/// One view's row in a key's newest-wins call.
#[derive(Debug, Clone, Copy)]
pub struct ViewRow<'a> {
    /// `_ts:<view>`.
    pub ts_field: &'a [u8],
    /// The view's feature fields, parallel to `row.values`.
    pub fields: &'a [[u8; 4]],
    pub row: &'a WriteRow,
}

/// The serialized `google.protobuf.Timestamp` of `t` into a stack buffer (what
/// `EventTime::to_proto_bytes` gives, without a heap allocation per row).
pub fn timestamp_bytes(t: EventTime, buf: &mut [u8; 22]) -> &[u8] {
    fn varint(buf: &mut [u8; 22], mut n: usize, mut v: u64) -> usize {
        while v >= 0x80 {
            buf[n] = (v as u8) | 0x80;
            v >>= 7;
            n += 1;
        }
        buf[n] = v as u8;
        n + 1
    }
    let mut n = 0;
    if t.secs != 0 {
        buf[0] = 0x08;
        n = varint(buf, 1, t.secs as u64);
    }
    if t.nanos != 0 {
        buf[n] = 0x10;
        n = varint(buf, n + 1, u64::from(t.nanos));
    }
    &buf[..n]
}

/// One entity hash and every view's row for it, in one newest-wins call.
#[derive(Debug, Clone, Copy)]
pub struct KeyViews<'a> {
    pub key: &'a [u8],
    pub views: &'a [ViewRow<'a>],
}

impl KeyViews<'_> {
    /// The script arguments this hash adds (besides its key).
    pub fn args(&self) -> usize {
        1 + self.views.iter().map(|v| 3 + 2 * v.fields.len()).sum::<usize>()
    }
}

/// `EVALSHA <sha> <k> <key>... <ttl>`, then per key `<v> <n>...` (the number of views and
/// each one's number of features) and per view `<_ts field> <Timestamp bytes> <field>
/// <value>...`: every view's row for each of `keys`, each applied only if newer.
pub fn newest_wins(keys: &[KeyViews<'_>], key_ttl_seconds: Option<u64>) -> Cmd {
    let mut ts = [0u8; 22];
    let args: usize = 4 + keys.iter().map(|k| 1 + k.args()).sum::<usize>();
    let bytes: usize = 40
        + 4
        + 20
        + keys
            .iter()
            .map(|k| {
                k.key.len()
                    + 8
                    + k.views.iter().map(|v| v.ts_field.len() + 22 + 4 + row_bytes(v.fields, v.row)).sum::<usize>()
            })
            .sum::<usize>();
    let mut c = sized("EVALSHA", args, bytes);
    c.arg(sha()).arg(keys.len());
    for k in keys {
        c.arg(k.key);
    }
    c.arg(key_ttl_seconds.unwrap_or(0));
    for k in keys {
        c.arg(k.views.len());
        for v in k.views {
            c.arg(v.fields.len());
        }
        for v in k.views {
            c.arg(v.ts_field).arg(timestamp_bytes(v.row.event_time, &mut ts));
            for (field, value) in v.fields.iter().zip(&v.row.values) {
                c.arg(&field[..]).arg(value);
            }
        }
    }
    c
}

/// Feast's `skip_dedup` write: `HSET <key> <_ts field> <Timestamp bytes> <field> <value>...`,
/// then `EXPIRE <key> <ttl>` when a TTL is set.
pub fn overwrite(batch: &ViewWrite<'_>, row: &WriteRow) -> (Cmd, Option<Cmd>) {
    let mut ts = [0u8; 22];
    let bytes = row.key.len() + batch.ts_field.len() + 22 + row_bytes(batch.fields, row);
    let mut h = sized("HSET", 3 + 2 * batch.fields.len(), bytes);
    h.arg(&row.key).arg(batch.ts_field).arg(timestamp_bytes(row.event_time, &mut ts));
    for (field, value) in batch.fields.iter().zip(&row.values) {
        h.arg(&field[..]).arg(value);
    }
    let expire = match batch.key_ttl_seconds.unwrap_or(0) {
        0 => None,
        ttl => {
            let mut e = cmd("EXPIRE");
            e.arg(&row.key).arg(ttl);
            Some(e)
        }
    };
    (h, expire)
}

/// `HMGET <key> <field>...`.
pub fn hmget(key: &[u8], fields: &[&[u8]]) -> Cmd {
    let mut c = sized("HMGET", 1 + fields.len(), key.len() + fields.iter().map(|f| f.len()).sum::<usize>());
    c.arg(key);
    for f in fields {
        c.arg(*f);
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha_is_the_sha1_of_the_source() {
        // Redis names a script by the hex SHA1 of its text; 40 lowercase hex digits.
        assert_eq!(sha().len(), 40);
        assert!(sha().chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_eq!(Script::new(NEWEST_WINS_LUA).get_hash(), sha());
    }

    #[test]
    fn timestamp_bytes_are_protobufs() {
        let times = [
            EventTime::EPOCH,
            EventTime::new(1, 0),
            EventTime::new(0, 1),
            EventTime::new(-1, 999_999_999),
            EventTime::new(i64::MIN, 0),
            EventTime::new(i64::MAX, 999_999_999),
            EventTime::new(1_704_110_400, 123_456_000),
        ];
        for t in times {
            let mut buf = [0u8; 22];
            assert_eq!(timestamp_bytes(t, &mut buf), t.to_proto_bytes(), "{t:?}");
        }
    }
}
