//! The commands a write sends: newest-wins script calls (`newest_wins.lua`) carrying a key's
//! rows for every view written to it, several keys per call on a standalone server, each
//! view's field names once per call; or for
//! `skip_dedup` Feast's plain HSET + EXPIRE.
//!
//! Feast reads `_ts:<view>` with one pipeline and writes with another, so two writers can both
//! read an old time and the older event can land last. Doing the comparison inside Redis, in a
//! script per key, makes it atomic: Redis runs one script at a time.

use std::sync::{Arc, LazyLock};

use ::redis::{Cmd, Script, cmd};

use crate::aggregate::Function;
use crate::aggregate::tiles::{FeastLayout, KeyWrite};
use crate::online::{ViewWrite, WriteRow};
use crate::time::EventTime;
use crate::value::ValueType;

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

/// The window aggregation script's source (`tiles.lua`).
pub const TILES_LUA: &str = include_str!("tiles.lua");

static TILES: LazyLock<Script> = LazyLock::new(|| Script::new(TILES_LUA));

/// The SHA1 of `tiles.lua`.
pub fn tiles_sha() -> &'static str {
    TILES.get_hash()
}

/// `SCRIPT LOAD` of `tiles.lua`.
pub fn load_tiles() -> Cmd {
    let mut c = cmd("SCRIPT");
    c.arg("LOAD").arg(TILES_LUA);
    c
}

/// The arguments a tile key adds to a `tiles.lua` call, besides its keys and the layouts.
pub fn tile_args(k: &KeyWrite) -> usize {
    let feast = k.feast.as_ref().map_or(0, |f| 4 + 2 * f.plain.as_ref().map_or(0, |(_, v)| v.len()));
    7 + 2 * k.hop_keep.len() + feast + k.runs.iter().map(|r| 6 + 2 * r.tiles.len()).sum::<usize>()
}

/// The arguments a Feast layout adds to a `tiles.lua` call.
pub fn layout_args(l: &FeastLayout) -> usize {
    2 + 7 * l.outputs.len()
}

/// `tiles.lua`'s letter for a function.
fn function_letter(f: Function) -> &'static str {
    match f {
        Function::Count => "c",
        Function::Sum => "s",
        Function::Mean => "m",
        Function::Min => "n",
        Function::Max => "x",
        Function::Last => "l",
        Function::Var => "v",
        Function::Std => "d",
        Function::CountDistinct => "u",
    }
}

/// `tiles.lua`'s letter for the type an output is stored as (read::typed's types).
fn type_letter(t: ValueType) -> &'static str {
    match t {
        ValueType::Int64 => "i",
        ValueType::Int32 => "j",
        ValueType::Float => "f",
        ValueType::Bool => "b",
        _ => "d",
    }
}

/// `EVALSHA <tiles sha> <k> <tile key>... <entity hash>...`, then the Feast layouts the keys
/// use, then per key its settings, runs and Feast part (see `tiles.lua`).
pub fn tiles(keys: &[&KeyWrite]) -> Cmd {
    // The layouts, numbered from 1 in order of first use (a call usually carries one view).
    let mut layouts: Vec<&Arc<FeastLayout>> = Vec::new();
    let mut numbers = Vec::with_capacity(keys.len());
    for k in keys {
        numbers.push(k.feast.as_ref().map_or(0, |f| match layouts.iter().position(|l| Arc::ptr_eq(l, &f.layout)) {
            Some(i) => i + 1,
            None => {
                layouts.push(&f.layout);
                layouts.len()
            }
        }));
    }
    let hashes = keys.iter().filter(|k| k.feast.is_some()).count();
    let args = 5
        + hashes
        + layouts.iter().map(|l| layout_args(l)).sum::<usize>()
        + keys.iter().map(|k| 1 + tile_args(k)).sum::<usize>();
    let mut c = Cmd::with_capacity(args, 64 * args);
    c.arg("EVALSHA").arg(tiles_sha()).arg(keys.len() + hashes);
    for k in keys {
        c.arg(&k.key);
    }
    for k in keys {
        if let Some(f) = &k.feast {
            c.arg(&f.key);
        }
    }
    c.arg(keys.len()).arg(layouts.len());
    for l in &layouts {
        c.arg(&l.ts_field).arg(l.outputs.len());
        for o in &l.outputs {
            c.arg(&o.field[..]).arg(o.prefix.as_bytes()).arg(o.hop_us).arg(o.tiles);
            c.arg(if o.sliding { "1" } else { "0" }).arg(function_letter(o.function)).arg(type_letter(o.dtype));
        }
    }
    let mut hash_index = keys.len();
    for (k, number) in keys.iter().zip(numbers) {
        c.arg(k.lateness_us).arg(k.keep_us).arg(k.hop_keep.len());
        for (hop, keep) in k.hop_keep.iter() {
            c.arg(*hop).arg(*keep);
        }
        c.arg(k.field_cap).arg(k.idem_cap).arg(k.runs.len());
        for r in &k.runs {
            c.arg(r.lane.as_bytes()).arg(&r.first).arg(&r.last).arg(r.min_us).arg(r.max_us).arg(r.tiles.len());
            for (field, state) in &r.tiles {
                c.arg(field).arg(state.encode());
            }
        }
        c.arg(number);
        if let Some(f) = &k.feast {
            hash_index += 1;
            c.arg(hash_index).arg(f.ttl_seconds.unwrap_or(0));
            match &f.plain {
                Some((t, values)) => {
                    c.arg(*t).arg(values.len());
                    for (field, value) in values {
                        c.arg(&field[..]).arg(&value[..]);
                    }
                }
                None => {
                    c.arg("").arg(0);
                }
            }
        }
    }
    c
}

/// A command sized for its arguments up front: a write sends one per row, and growing the
/// argument buffers step by step cost more than the rest of building it.
fn sized(name: &str, args: usize, bytes: usize) -> Cmd {
    let mut c = Cmd::with_capacity(args + 1, name.len() + bytes);
    c.arg(name);
    c
}

// The `*_capacity` functions give the (arguments, bytes) a command is allocated with up front.
// Capacity only: a wrong figure builds the same command, with more or fewer reallocations, so
// mutation testing leaves them out (.cargo/mutants.toml).

fn row_capacity(fields: &[[u8; 4]], row: &WriteRow) -> usize {
    fields.len() * 4 + row.values.iter().map(Vec::len).sum::<usize>()
}

fn newest_wins_capacity(layouts: &[Layout<'_>], named: &[usize], keys: &[KeyRows<'_>]) -> (usize, usize) {
    let header_args: usize = named.iter().map(|&l| 2 + layouts[l].fields.len()).sum();
    let header_bytes: usize = named.iter().map(|&l| layouts[l].ts_field.len() + 4 + 4 * layouts[l].fields.len()).sum();
    let args = 5 + header_args + keys.iter().map(|k| 1 + k.args()).sum::<usize>();
    let bytes = 40
        + 28
        + header_bytes
        + keys
            .iter()
            .map(|k| {
                k.key.len()
                    + k.rows.len()
                    + k.rows.iter().map(|(_, r)| 22 + r.values.iter().map(Vec::len).sum::<usize>()).sum::<usize>()
            })
            .sum::<usize>();
    (args, bytes)
}

fn overwrite_capacity(batch: &ViewWrite<'_>, row: &WriteRow) -> (usize, usize) {
    (3 + 2 * batch.fields.len(), row.key.len() + batch.ts_field.len() + 22 + row_capacity(batch.fields, row))
}

fn hmget_capacity(key: &[u8], fields: &[&[u8]]) -> (usize, usize) {
    (1 + fields.len(), key.len() + fields.iter().map(|f| f.len()).sum::<usize>())
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

/// A view as a newest-wins call names it, once per call: its timestamp field and its feature
/// fields.
#[derive(Debug, Clone, Copy)]
pub struct Layout<'a> {
    /// `_ts:<view>`.
    pub ts_field: &'a [u8],
    /// The view's feature fields, parallel to each of its rows' values.
    pub fields: &'a [[u8; 4]],
}

/// Views a newest-wins call names at most: a key's view set numbers them in one byte each.
pub const MAX_LAYOUTS_PER_CALL: usize = 255;

/// One entity hash and its rows, one per view at most: (index of the view's [`Layout`], row).
#[derive(Debug, Clone)]
pub struct KeyRows<'r> {
    pub key: &'r [u8],
    pub rows: Vec<(usize, &'r WriteRow)>,
}

impl KeyRows<'_> {
    /// The script arguments this hash adds, besides its key and the views' names.
    pub fn args(&self) -> usize {
        1 + self.rows.iter().map(|(_, r)| 1 + r.values.len()).sum::<usize>()
    }
}

/// `EVALSHA <sha> <k> <key>... <ttl> <V>`, then per view the call names `<_ts field> <n>
/// <field>...`, then per key its view set (a byte per view: its number among the V) and per
/// view of the set `<Timestamp bytes> <value>...` (see `newest_wins.lua`): every view's row
/// for each of `keys`, each applied only if newer. The keys may use at most
/// [`MAX_LAYOUTS_PER_CALL`] of `layouts` together.
pub fn newest_wins(layouts: &[Layout<'_>], keys: &[KeyRows<'_>], key_ttl_seconds: Option<u64>) -> Cmd {
    // The views these keys use, numbered from 1 in order of first use.
    let mut number = vec![0u8; layouts.len()];
    let mut named: Vec<usize> = Vec::new();
    for &(l, _) in keys.iter().flat_map(|k| &k.rows) {
        if number[l] == 0 {
            named.push(l);
            number[l] = u8::try_from(named.len()).expect("a call names at most 255 views (RedisStore::calls)");
        }
    }
    let (args, bytes) = newest_wins_capacity(layouts, &named, keys);
    let mut c = sized("EVALSHA", args, bytes);
    c.arg(sha()).arg(keys.len());
    for k in keys {
        c.arg(k.key);
    }
    c.arg(key_ttl_seconds.unwrap_or(0)).arg(named.len());
    for &l in &named {
        c.arg(layouts[l].ts_field).arg(layouts[l].fields.len());
        for field in layouts[l].fields {
            c.arg(&field[..]);
        }
    }
    let mut ts = [0u8; 22];
    let mut set = Vec::new();
    for k in keys {
        set.clear();
        set.extend(k.rows.iter().map(|&(l, _)| number[l]));
        c.arg(&set[..]);
        for &(_, row) in &k.rows {
            c.arg(timestamp_bytes(row.event_time, &mut ts));
            for value in &row.values {
                c.arg(value);
            }
        }
    }
    c
}

/// Feast's `skip_dedup` write: `HSET <key> <_ts field> <Timestamp bytes> <field> <value>...`,
/// then `EXPIRE <key> <ttl>` when a TTL is set.
pub fn overwrite(batch: &ViewWrite<'_>, row: &WriteRow) -> (Cmd, Option<Cmd>) {
    let mut ts = [0u8; 22];
    let (args, bytes) = overwrite_capacity(batch, row);
    let mut h = sized("HSET", args, bytes);
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
    let (args, bytes) = hmget_capacity(key, fields);
    let mut c = sized("HMGET", args, bytes);
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
