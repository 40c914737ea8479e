//! The commands a write sends: one newest-wins script call per row (`newest_wins.lua`), or for
//! `skip_dedup` Feast's plain HSET + EXPIRE.
//!
//! Feast reads `_ts:<view>` with one pipeline and writes with another, so two writers can both
//! read an old time and the older event can land last. Doing the comparison inside Redis, in a
//! script per key, makes it atomic: Redis runs one script at a time.

use std::sync::LazyLock;

use ::redis::{Cmd, Script, cmd};

use crate::online::{ViewWrite, WriteRow};

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

fn ttl_arg(batch: &ViewWrite<'_>) -> u64 {
    batch.key_ttl_seconds.unwrap_or(0)
}

/// `EVALSHA <sha> 1 <key> <_ts field> <Timestamp bytes> <secs> <nanos> <ttl> <field> <value>...`.
pub fn newest_wins(batch: &ViewWrite<'_>, row: &WriteRow) -> Cmd {
    let mut c = cmd("EVALSHA");
    c.arg(sha())
        .arg(1)
        .arg(&row.key)
        .arg(batch.ts_field)
        .arg(row.event_time.to_proto_bytes())
        .arg(row.event_time.secs)
        .arg(row.event_time.nanos)
        .arg(ttl_arg(batch));
    for (field, value) in batch.fields.iter().zip(&row.values) {
        c.arg(&field[..]).arg(value);
    }
    c
}

/// Feast's `skip_dedup` write: `HSET <key> <_ts field> <Timestamp bytes> <field> <value>...`,
/// then `EXPIRE <key> <ttl>` when a TTL is set.
pub fn overwrite(batch: &ViewWrite<'_>, row: &WriteRow) -> (Cmd, Option<Cmd>) {
    let mut h = cmd("HSET");
    h.arg(&row.key)
        .arg(batch.ts_field)
        .arg(row.event_time.to_proto_bytes());
    for (field, value) in batch.fields.iter().zip(&row.values) {
        h.arg(&field[..]).arg(value);
    }
    let expire = match ttl_arg(batch) {
        0 => None,
        ttl => {
            let mut e = cmd("EXPIRE");
            e.arg(&row.key).arg(ttl);
            Some(e)
        }
    };
    (h, expire)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha_is_the_sha1_of_the_source() {
        // Redis names a script by the hex SHA1 of its text; 40 lowercase hex digits.
        assert_eq!(sha().len(), 40);
        assert!(
            sha()
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_eq!(Script::new(NEWEST_WINS_LUA).get_hash(), sha());
    }
}
