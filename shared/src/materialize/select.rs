//! The latest row per entity, kept while row groups stream past.
//!
//! A [`Selection`] is what one feature view asks of its source: rows whose event time is in
//! `[start, end]`, keyed by the view's join keys, the latest by (event time, created time),
//! with the view's features. Views that ask the same thing of the same file (the example repo
//! has two) share one selection, so the file is decoded and deduplicated once for both.
//!
//! [`Winners`] holds, per entity key, only the current winner: its times and its features
//! already serialized. Memory grows with distinct entities, never with rows. Values are
//! serialized only for rows that win, and at most once per entity per batch.

use std::collections::HashMap;

use arrow_array::ArrayRef;

use crate::error::{Error, Result};
use crate::keys::KeyEncoder;
use crate::offline::Location;
use crate::offline::encode::{self, KeyReader, NULL_TIME, ValueEncoder};
use crate::proto::types::value::Val;
use crate::time::EventTime;
use crate::value::{Value, ValueType};

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// What a selection reads: indexes into the scan's needed columns, with declared types.
#[derive(Debug, Clone, PartialEq)]
pub struct SelectionSpec {
    pub start: EventTime,
    pub end: EventTime,
    pub ts: usize,
    pub created: Option<usize>,
    /// Join-key columns in the view's `entity_columns` order, with their names; empty for a
    /// view without entities.
    pub keys: Vec<(usize, String, ValueType)>,
    pub features: Vec<(usize, ValueType)>,
}

pub struct Selection {
    pub spec: SelectionSpec,
    pub key_encoder: KeyEncoder,
    /// Names of the needed columns, for messages.
    pub column_names: Vec<String>,
}

/// Rows of a selection seen so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SelectStats {
    pub rows_in_window: u64,
    pub rows_null_key: u64,
}

impl std::ops::AddAssign for SelectStats {
    fn add_assign(&mut self, o: Self) {
        self.rows_in_window += o.rows_in_window;
        self.rows_null_key += o.rows_null_key;
    }
}

const NO_ROW: u32 = u32::MAX;

/// The current winner of one entity.
pub struct Slot {
    pub event: EventTime,
    pub created: EventTime,
    /// Position of the row in the scan (file, row): the later row wins a complete tie.
    pub seq: u64,
    /// The entity's join key when it is a single integer (0 otherwise): the scan settles an
    /// entity whose key no unread row group's key statistics cover.
    pub int_key: i64,
    /// The features, each as a u32 length (little-endian) and the serialized `Value`.
    pub values: Vec<u8>,
    /// The batch row that beat the stored values and still has to be serialized.
    pending: u32,
    /// Handed to the writer already (settled: no row still to be read can beat it).
    sent: bool,
}

impl Slot {
    fn beats(&self, event: EventTime, created: EventTime, seq: u64) -> bool {
        (event, created, seq) > (self.event, self.created, self.seq)
    }

    /// The serialized features, in the view's order.
    #[cfg(test)]
    pub fn values(&self) -> impl Iterator<Item = &[u8]> {
        unpack(&self.values)
    }
}

/// The serialized features packed in a winner's `values`, in the view's order.
pub fn unpack(packed: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = packed;
    std::iter::from_fn(move || {
        if rest.len() < 4 {
            return None;
        }
        let n = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
        let (v, r) = rest[4..].split_at(n);
        rest = r;
        Some(v)
    })
}

/// Entity key (serialized, without the project) -> its current winner.
#[derive(Default)]
pub struct Winners {
    index: FastMap<Box<[u8]>, u32>,
    slots: Vec<Slot>,
}

impl Winners {
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// (entity key, winner) pairs, in no particular order.
    #[cfg(test)]
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &Slot)> {
        self.index.iter().map(|(k, &i)| (&k[..], &self.slots[i as usize]))
    }

    /// The winners not handed out yet that pass `settled`, now marked as handed out: their
    /// entity keys, event times and serialized features (moved out: a handed-out winner only
    /// keeps what later rows are compared against).
    pub fn take_settled(&mut self, settled: impl Fn(&Slot) -> bool) -> Vec<(&[u8], EventTime, Vec<u8>)> {
        let Winners { index, slots } = self;
        let mut picked = Vec::new();
        for (key, &i) in index.iter() {
            let slot = &mut slots[i as usize];
            if !slot.sent && settled(slot) {
                slot.sent = true;
                picked.push((&key[..], slot.event, std::mem::take(&mut slot.values)));
            }
        }
        picked
    }

    /// Winners made directly, for tests of what handles them: (entity key, event time in
    /// seconds, integer key, packed features).
    #[cfg(test)]
    pub fn of(rows: &[(&[u8], i64, i64, &[u8])]) -> Winners {
        let mut w = Winners::default();
        for (i, &(key, secs, int_key, values)) in rows.iter().enumerate() {
            w.index.insert(key.into(), i as u32);
            w.slots.push(Slot {
                event: EventTime::new(secs, 0),
                created: EventTime::new(0, 0),
                seq: i as u64,
                int_key,
                values: values.to_vec(),
                pending: NO_ROW,
                sent: false,
            });
        }
        w
    }

    /// Folds another row group's winners in (same rule: later event, then created, then position).
    pub fn merge(&mut self, other: Winners) {
        if self.is_empty() {
            *self = other;
            return;
        }
        let mut slots: Vec<Option<Slot>> = other.slots.into_iter().map(Some).collect();
        for (key, i) in other.index {
            let slot = slots[i as usize].take().expect("each slot is indexed once");
            match self.index.get(&key) {
                Some(&i) => {
                    let mine = &mut self.slots[i as usize];
                    // A winner handed out already is beaten only if the file's statistics
                    // understate its times: the newer row then replaces it and is handed out
                    // too (the store's newest-wins merge makes the second write right).
                    if mine.beats(slot.event, slot.created, slot.seq) {
                        *mine = slot;
                    }
                }
                None => {
                    self.index.insert(key, self.slots.len() as u32);
                    self.slots.push(slot);
                }
            }
        }
    }
}

/// `(file index, row in file)` packed so that the order of files, then rows, is kept.
pub fn seq(file: usize, row: u64) -> u64 {
    ((file as u64) << 40) | (row & ((1 << 40) - 1))
}

impl Selection {
    /// Takes the rows of one batch into `winners`. `cols` are the scan's needed columns;
    /// `first_seq` is the position of the batch's first row.
    pub fn absorb(
        &self,
        cols: &[ArrayRef],
        rows: usize,
        first_seq: u64,
        winners: &mut Winners,
        stats: &mut SelectStats,
        file: &Location,
    ) -> Result<()> {
        let spec = &self.spec;
        let ts_name = &self.column_names[spec.ts];
        let events = encode::event_times(cols[spec.ts].as_ref())
            .map_err(|e| Error::InvalidValue(format!("{file}: timestamp column '{ts_name}': {e}")))?;
        let created = match spec.created {
            Some(c) => Some(encode::event_times(cols[c].as_ref()).map_err(|e| {
                Error::InvalidValue(format!("{file}: created timestamp column '{}': {e}", self.column_names[c]))
            })?),
            None => None,
        };
        let key_readers: Vec<KeyReader<'_>> =
            spec.keys.iter().map(|(c, _, ty)| KeyReader::new(cols[*c].as_ref(), *ty)).collect();
        let dummy = Value { val: Some(Val::StringVal(String::new())) };
        let mut key_values: Vec<Value> = Vec::with_capacity(spec.keys.len().max(1));
        let mut key = Vec::with_capacity(64);
        let mut dirty: Vec<u32> = Vec::new();

        'rows: for row in 0..rows {
            let event = events[row];
            if event == NULL_TIME || event < spec.start || event > spec.end {
                continue;
            }
            stats.rows_in_window += 1;
            key_values.clear();
            if key_readers.is_empty() {
                key_values.push(dummy.clone());
            }
            for (r, (c, name, _)) in key_readers.iter().zip(&spec.keys) {
                match r.value(row) {
                    Ok(Some(v)) => key_values.push(v),
                    Ok(None) => {
                        stats.rows_null_key += 1;
                        continue 'rows;
                    }
                    Err(e) => {
                        return Err(Error::InvalidValue(format!(
                            "{file}: join key '{name}' (column '{}'), row {}: {e}",
                            self.column_names[*c],
                            (first_seq & ((1 << 40) - 1)) + row as u64
                        )));
                    }
                }
            }
            key.clear();
            let encoded = if let [one] = key_values.as_slice() {
                // The common case, without collecting references.
                self.key_encoder.encode(&[one], &mut key)
            } else {
                self.key_encoder.encode(&key_values.iter().collect::<Vec<_>>(), &mut key)
            };
            encoded.map_err(|e| Error::InvalidValue(format!("{file}: row {row}: {e}")))?;
            let created_at = created.as_ref().map_or(NULL_TIME, |c| c[row]);
            let s = first_seq + row as u64;
            match winners.index.get(&key[..]) {
                Some(&i) => {
                    let slot = &mut winners.slots[i as usize];
                    if slot.beats(event, created_at, s) {
                        slot.event = event;
                        slot.created = created_at;
                        slot.seq = s;
                        if slot.pending == NO_ROW {
                            dirty.push(i);
                        }
                        slot.pending = row as u32;
                    }
                }
                None => {
                    let i = winners.slots.len() as u32;
                    winners.index.insert(key[..].into(), i);
                    let int_key = match key_values.as_slice() {
                        [Value { val: Some(Val::Int64Val(k)) }] => *k,
                        [Value { val: Some(Val::Int32Val(k)) }] => i64::from(*k),
                        _ => 0,
                    };
                    winners.slots.push(Slot {
                        event,
                        created: created_at,
                        seq: s,
                        int_key,
                        values: Vec::new(),
                        pending: row as u32,
                        sent: false,
                    });
                    dirty.push(i);
                }
            }
        }

        if dirty.is_empty() {
            return Ok(());
        }
        let encoders: Vec<ValueEncoder<'_>> =
            spec.features.iter().map(|(c, ty)| ValueEncoder::new(cols[*c].as_ref(), *ty)).collect();
        for i in dirty {
            let slot = &mut winners.slots[i as usize];
            let row = slot.pending as usize;
            slot.pending = NO_ROW;
            slot.values.clear();
            for (enc, (c, ty)) in encoders.iter().zip(&spec.features) {
                let at = slot.values.len();
                slot.values.extend_from_slice(&[0; 4]);
                enc.encode(row, &mut slot.values).map_err(|e| {
                    Error::InvalidValue(format!(
                        "{file}: column '{}' as {ty}, row {}: {e}",
                        self.column_names[*c],
                        (first_seq & ((1 << 40) - 1)) + row as u64
                    ))
                })?;
                let n = (slot.values.len() - at - 4) as u32;
                slot.values[at..at + 4].copy_from_slice(&n.to_le_bytes());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_order_files_then_rows() {
        assert_eq!(seq(0, 7), 7);
        assert_eq!(seq(2, 3), (2 << 40) | 3);
        // Any row of a later file comes after every row of an earlier one.
        assert!(seq(1, 0) > seq(0, (1 << 40) - 1));
    }
    use arrow_array::{Float32Array, Int64Array, TimestampMicrosecondArray};
    use std::sync::Arc;

    fn selection(start: i64, end: i64) -> Selection {
        Selection {
            spec: SelectionSpec {
                start: EventTime::new(start, 0),
                end: EventTime::new(end, 0),
                ts: 1,
                created: Some(2),
                keys: vec![(0, "id".into(), ValueType::Int64)],
                features: vec![(3, ValueType::Float)],
            },
            key_encoder: KeyEncoder::new(&["id"], 3).unwrap(),
            column_names: vec!["id".into(), "ts".into(), "created".into(), "x".into()],
        }
    }

    fn cols(ids: Vec<Option<i64>>, ts: Vec<i64>, created: Vec<i64>, x: Vec<Option<f32>>) -> Vec<ArrayRef> {
        vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(TimestampMicrosecondArray::from(ts.iter().map(|s| s * 1_000_000).collect::<Vec<_>>())),
            Arc::new(TimestampMicrosecondArray::from(created.iter().map(|s| s * 1_000_000).collect::<Vec<_>>())),
            Arc::new(Float32Array::from(x)),
        ]
    }

    fn value_of(w: &Winners, id: i64) -> Option<(i64, Vec<Vec<u8>>)> {
        let enc = KeyEncoder::new(&["id"], 3).unwrap();
        let mut key = Vec::new();
        enc.encode(&[&Value { val: Some(Val::Int64Val(id)) }], &mut key).unwrap();
        w.iter().find(|(k, _)| *k == &key[..]).map(|(_, s)| (s.event.secs, s.values().map(<[u8]>::to_vec).collect()))
    }

    fn float(f: f32) -> Vec<u8> {
        crate::value::encode(&Value { val: Some(Val::FloatVal(f)) })
    }

    #[test]
    fn keeps_latest_in_window_ties_by_created_then_position() {
        let sel = selection(10, 20);
        let mut w = Winners::default();
        let mut st = SelectStats::default();
        let f = Location::Local("/f".into());
        let c = cols(
            vec![Some(1), Some(1), Some(1), Some(2), Some(2), None, Some(3), Some(3)],
            vec![10, 20, 21, 15, 15, 15, 9, 12],
            vec![0, 0, 0, 5, 4, 0, 0, 0],
            vec![Some(1.0), Some(2.0), Some(3.0), Some(4.0), Some(5.0), Some(6.0), Some(7.0), None],
        );
        sel.absorb(&c, 8, seq(0, 0), &mut w, &mut st, &f).unwrap();
        // Both window ends are inclusive; 21 and 9 are outside.
        assert_eq!(value_of(&w, 1), Some((20, vec![float(2.0)])));
        // Same event time: the later created time wins even though it came first.
        assert_eq!(value_of(&w, 2), Some((15, vec![float(4.0)])));
        // A null feature is stored as an empty value.
        assert_eq!(value_of(&w, 3), Some((12, vec![vec![]])));
        assert_eq!(w.len(), 3);
        assert_eq!(st, SelectStats { rows_in_window: 6, rows_null_key: 1 });

        // A complete tie in a later batch: the later row wins.
        let c = cols(vec![Some(2)], vec![15], vec![5], vec![Some(9.0)]);
        sel.absorb(&c, 1, seq(0, 8), &mut w, &mut st, &f).unwrap();
        assert_eq!(value_of(&w, 2), Some((15, vec![float(9.0)])));
    }

    #[test]
    fn merging_workers_gives_the_same_winners() {
        let sel = selection(0, 100);
        let f = Location::Local("/f".into());
        let mut st = SelectStats::default();
        let a = cols(vec![Some(1), Some(2)], vec![5, 50], vec![0, 0], vec![Some(1.0), Some(2.0)]);
        let b = cols(vec![Some(1), Some(2)], vec![6, 40], vec![0, 0], vec![Some(3.0), Some(4.0)]);
        let (mut w1, mut w2, mut one) = (Winners::default(), Winners::default(), Winners::default());
        sel.absorb(&a, 2, seq(0, 0), &mut w1, &mut st, &f).unwrap();
        sel.absorb(&b, 2, seq(1, 0), &mut w2, &mut st, &f).unwrap();
        sel.absorb(&a, 2, seq(0, 0), &mut one, &mut st, &f).unwrap();
        sel.absorb(&b, 2, seq(1, 0), &mut one, &mut st, &f).unwrap();
        w2.merge(w1);
        for id in [1, 2] {
            assert_eq!(value_of(&w2, id), value_of(&one, id));
        }
        assert_eq!(value_of(&w2, 1).unwrap().0, 6);
        assert_eq!(value_of(&w2, 2).unwrap().0, 50);
    }
}
