//! Online retrieval: Feast's `get-online-features` over the online store.
//!
//! A request is planned against the registry (features grouped by view, output names), its
//! entity columns are typed by each view's join-key types and turned into Redis keys (once per
//! distinct entity set, not per view), every view is read in one round trip, and the answer is
//! Feast's column-oriented response: the request's join-key columns first (in the request's
//! order; every column that is a join key of the project, as Feast answers), then the features
//! grouped by view in the order views first appear (Feast's order).
//!
//! Where Feast's Python server is wrong Larder answers like Feast's Go server: an entity with
//! no row is `NOT_FOUND` (not `PRESENT` with a null), a stored null is `NULL_VALUE`, and a value
//! older than the view's TTL is `OUTSIDE_MAX_AGE` (value kept).

pub mod plan;
pub mod request;

use std::collections::HashMap;
use std::time::Duration;

pub use plan::Plan;
pub use request::{EntityColumns, Request};

use crate::aggregate::read::WindowAnswer;
use crate::error::{Error, Result};
use crate::online::{self, Cell, OnlineStore, ViewRead, WindowRead};
use crate::registry::{FeatureView, Registry};
use crate::telemetry;
use crate::time::EventTime;
use crate::value::{self, Value, ValueType};

/// `FieldStatus`. The order is [`telemetry::feature_answers`]' order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Present = 0,
    NullValue = 1,
    NotFound = 2,
    OutsideMaxAge = 3,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Present => "PRESENT",
            Status::NullValue => "NULL_VALUE",
            Status::NotFound => "NOT_FOUND",
            Status::OutsideMaxAge => "OUTSIDE_MAX_AGE",
        }
    }
}

/// One column of the answer: one entry per entity row.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub values: Vec<Value>,
    pub statuses: Vec<Status>,
    pub event_timestamps: Vec<EventTime>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Response {
    pub columns: Vec<Column>,
}

impl Response {
    /// Feast's JSON: `{"results": [{"values", "statuses", "event_timestamps"}...],
    /// "metadata": {"feature_names": [...]}}`, written directly from the decoded values.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"results\":[");
        for (i, col) in self.columns.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"values\":[");
            for (j, v) in col.values.iter().enumerate() {
                if j > 0 {
                    out.push(b',');
                }
                value::write_json(v, out);
            }
            out.extend_from_slice(b"],\"statuses\":[");
            for (j, s) in col.statuses.iter().enumerate() {
                if j > 0 {
                    out.push(b',');
                }
                out.push(b'"');
                out.extend_from_slice(s.name().as_bytes());
                out.push(b'"');
            }
            out.push(b']');
            // Feast leaves the list out when it is empty.
            if !col.event_timestamps.is_empty() {
                out.extend_from_slice(b",\"event_timestamps\":[");
                // Runs of equal times are common (join-key columns, entities updated together):
                // copy the previous text instead of formatting it again.
                let mut last: Option<(EventTime, std::ops::Range<usize>)> = None;
                for (j, t) in col.event_timestamps.iter().enumerate() {
                    if j > 0 {
                        out.push(b',');
                    }
                    out.push(b'"');
                    match &last {
                        Some((prev, range)) if prev == t => out.extend_from_within(range.clone()),
                        _ => {
                            let start = out.len();
                            t.write_rfc3339(out);
                            last = Some((*t, start..out.len()));
                        }
                    }
                    out.push(b'"');
                }
                out.push(b']');
            }
            out.push(b'}');
        }
        out.extend_from_slice(b"],\"metadata\":{\"feature_names\":[");
        for (i, col) in self.columns.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            value::write_str(&col.name, out);
        }
        out.extend_from_slice(b"]}}");
    }

    pub fn to_json(&self) -> Vec<u8> {
        let rows = self.columns.first().map_or(0, |c| c.values.len());
        // Roughly: a value, a status and a timestamp per cell.
        let mut out = Vec::with_capacity(64 + self.columns.len() * (64 + rows * 64));
        self.write_json(&mut out);
        out
    }
}

/// Answers a request from `registry` and `store`, judging TTLs against `now`. A request of more
/// than `max_entity_rows` entity rows is refused before anything is read.
pub async fn get_online_features(
    registry: &Registry,
    store: &dyn OnlineStore,
    req: &Request,
    max_entity_rows: usize,
    now: EventTime,
) -> Result<Response> {
    let plan = plan::plan(registry, &req.features, req.feature_service.as_deref(), req.full_feature_names)?;
    let rows = entity_row_count(&req.entities)?;
    if rows > max_entity_rows {
        return Err(Error::TooLarge(format!(
            "the request has {rows} entity rows; the limit is {max_entity_rows} (LARDER_MAX_ENTITY_ROWS)"
        )));
    }

    // Each view's request columns: a feature service's `join_key_map` renames a join key, but
    // a request that gives the original name instead is answered from it, as Feast does.
    let group_columns: Vec<Vec<&str>> = plan
        .groups
        .iter()
        .map(|g| {
            g.view
                .entity_columns
                .iter()
                .zip(&g.key_columns)
                .map(|(c, col)| match req.entities.get(col) {
                    None if col != &c.name && req.entities.get(&c.name).is_some() => c.name.as_str(),
                    _ => col.as_str(),
                })
                .collect()
        })
        .collect();

    // Keys are built once per distinct entity set (join keys, their types and request columns).
    let mut key_sets: HashMap<Vec<(&str, &str, ValueType)>, usize> = HashMap::new();
    let mut keys: Vec<Vec<Vec<u8>>> = Vec::new();
    let mut group_keys: Vec<usize> = Vec::with_capacity(plan.groups.len());
    // Each recognized join-key column, typed by the first view that uses it.
    let mut key_columns: HashMap<&str, (ValueType, &FeatureView)> = HashMap::new();
    for (g, columns) in plan.groups.iter().zip(&group_columns) {
        let signature: Vec<(&str, &str, ValueType)> =
            g.view.entity_columns.iter().zip(columns).map(|(c, col)| (c.name.as_str(), *col, c.dtype)).collect();
        for (_, col, dtype) in &signature {
            key_columns.entry(col).or_insert((*dtype, &g.view));
        }
        let idx = match key_sets.get(&signature) {
            Some(&i) => i,
            None => {
                keys.push(build_keys(&g.view, columns, &req.entities, rows, &registry.project)?);
                key_sets.insert(signature, keys.len() - 1);
                keys.len() - 1
            }
        };
        group_keys.push(idx);
    }

    let reads: Vec<ViewRead<'_>> = plan
        .groups
        .iter()
        .zip(&group_keys)
        .map(|(g, &k)| ViewRead { view: &g.view, features: &g.features, keys: &keys[k] })
        .collect();
    let now_us = now.as_micros();
    let window_reads: Vec<(usize, WindowRead<'_>)> = plan
        .groups
        .iter()
        .zip(&group_keys)
        .enumerate()
        .filter_map(|(i, (g, &k))| {
            let windows = g.windows.as_deref()?;
            let read = WindowRead { view: &g.view, windows, aggregations: &g.aggregations, keys: &keys[k], now_us };
            Some((i, read))
        })
        .collect();
    let window_list: Vec<WindowRead<'_>> = window_reads.iter().map(|(_, w)| w.clone()).collect();
    let read_started = std::time::Instant::now();
    let (mut results, windowed) = online::read_views_and_windows(store, &reads, &window_list).await?;
    // Per group, its window answers (per key, per aggregation) if it asked for any.
    let mut group_windows: Vec<Option<&Vec<Vec<WindowAnswer>>>> = vec![None; plan.groups.len()];
    for ((g, _), answers) in window_reads.iter().zip(&windowed) {
        group_windows[*g] = Some(answers);
    }
    telemetry::redis("read", read_started.elapsed());
    telemetry::entity_rows(rows);

    let mut columns = Vec::with_capacity(key_columns.len() + plan.outputs.len());
    // Every request column that is a join key of the project is answered, in request order,
    // even when no requested view uses it (Feast does); other columns are not.
    for (name, values) in &req.entities.0 {
        let typed_by = match key_columns.get(name.as_str()) {
            Some(&(dtype, view)) => Some((dtype, KeyOf::View(&view.name))),
            None => registry.join_key_types.get(name).map(|&dtype| (dtype, KeyOf::Project)),
        };
        if let Some((dtype, of)) = typed_by {
            let typed = values
                .iter()
                .enumerate()
                .map(|(row, j)| typed_entity_value(j, dtype, name, row, of))
                .collect::<Result<Vec<_>>>()?;
            columns.push(Column {
                name: name.clone(),
                values: typed,
                statuses: vec![Status::Present; rows],
                event_timestamps: vec![EventTime::EPOCH; rows],
            });
        }
    }
    // Answers per view and status, counted here and recorded once per view (a miss rate per
    // view is what an operator watches).
    let mut answers = vec![[0u64; 4]; plan.groups.len()];
    for out in &plan.outputs {
        let counts = &mut answers[out.group];
        if out.aggregated {
            let group = &plan.groups[out.group];
            let (windows, per_key) = match (&group.windows, group_windows[out.group]) {
                (Some(w), Some(a)) => (w, a),
                _ => return Err(Error::internal("an aggregated feature was planned without its windows")),
            };
            let computed = windows.aggregations[group.aggregations[out.slot]]
                .as_ref()
                .map_err(|e| Error::Unsupported(e.0.clone()))?;
            let mut col = Column {
                name: out.name.clone(),
                values: Vec::with_capacity(rows),
                statuses: Vec::with_capacity(rows),
                event_timestamps: Vec::with_capacity(rows),
            };
            for key_answers in per_key {
                let a = key_answers[out.slot];
                let (value, status) = match a.value {
                    Some(x) => (crate::aggregate::read::typed(x, computed.dtype), Status::Present),
                    None => (value::NULL, Status::NullValue),
                };
                counts[status as usize] += 1;
                col.values.push(value);
                col.statuses.push(status);
                col.event_timestamps.push(a.newest_us.map_or(EventTime::EPOCH, EventTime::from_micros));
            }
            columns.push(col);
            continue;
        }
        let ttl = plan.groups[out.group].view.ttl;
        let group_rows = &mut results[out.group];
        let mut col = Column {
            name: out.name.clone(),
            values: Vec::with_capacity(rows),
            statuses: Vec::with_capacity(rows),
            event_timestamps: Vec::with_capacity(rows),
        };
        for row in group_rows.iter_mut() {
            let (value, status, ts) = match row {
                None => (value::NULL, Status::NotFound, EventTime::EPOCH),
                Some(r) => match std::mem::replace(&mut r.cells[out.slot], Cell::Missing) {
                    Cell::Missing => (value::NULL, Status::NotFound, r.event_time),
                    Cell::Null => (value::NULL, Status::NullValue, r.event_time),
                    Cell::Value(v) if too_old(now, r.event_time, ttl) => (v, Status::OutsideMaxAge, r.event_time),
                    Cell::Value(v) => (v, Status::Present, r.event_time),
                },
            };
            counts[status as usize] += 1;
            col.values.push(value);
            col.statuses.push(status);
            col.event_timestamps.push(ts);
        }
        columns.push(col);
    }
    for (g, counts) in plan.groups.iter().zip(answers) {
        telemetry::feature_answers(&g.view.name, counts);
    }
    Ok(Response { columns })
}

/// All entity columns must have the same length (Feast: "All entity rows must have the same
/// columns"); that length is the number of rows.
fn entity_row_count(entities: &EntityColumns) -> Result<usize> {
    let mut iter = entities.0.iter();
    let Some((first, first_values)) = iter.next() else {
        return Err(Error::BadRequest("`entities` is empty: give at least one join-key column".into()));
    };
    for (name, values) in iter {
        if values.len() != first_values.len() {
            return Err(Error::BadRequest(format!(
                "entity column '{name}' has {} values but '{first}' has {}; every column needs one value per row",
                values.len(),
                first_values.len()
            )));
        }
    }
    Ok(first_values.len())
}

fn too_old(now: EventTime, event: EventTime, ttl: Option<Duration>) -> bool {
    let Some(ttl) = ttl else { return false };
    let age_nanos = (now.secs as i128 - event.secs as i128) * 1_000_000_000 + (now.nanos as i128 - event.nanos as i128);
    age_nanos > ttl.as_nanos() as i128
}

/// Whose join key a request column is, for error messages.
#[derive(Clone, Copy)]
enum KeyOf<'a> {
    View(&'a str),
    Project,
}

impl std::fmt::Display for KeyOf<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyOf::View(view) => write!(f, "join key of feature view '{view}'"),
            KeyOf::Project => f.write_str("a join key of the project's entities"),
        }
    }
}

fn typed_entity_value(
    j: &serde_json::Value,
    dtype: ValueType,
    column: &str,
    row: usize,
    of: KeyOf<'_>,
) -> Result<Value> {
    if j.is_null() {
        return Err(Error::InvalidValue(format!("entity column '{column}', row {row}: a join key cannot be null")));
    }
    let v = value::from_json(j, dtype)
        .map_err(|e| Error::InvalidValue(format!("entity column '{column}', row {row}: {e} ({of})")))?;
    if !value::type_of(&v).is_key_type() {
        return Err(Error::InvalidValue(format!(
            "entity column '{column}', row {row}: {} cannot be a join key (use a string or an integer)",
            value::type_of(&v)
        )));
    }
    Ok(v)
}

fn build_keys(
    view: &FeatureView,
    columns: &[&str],
    entities: &EntityColumns,
    rows: usize,
    project: &str,
) -> Result<Vec<Vec<u8>>> {
    if view.is_entityless() {
        // Views without entities are all under the dummy key.
        let dummy = Value { val: Some(crate::proto::types::value::Val::StringVal(String::new())) };
        let key = view.layout.key_encoder.redis_key(&[&dummy], project)?;
        return Ok(vec![key; rows]);
    }
    let mut typed: Vec<Vec<Value>> = Vec::with_capacity(columns.len());
    for (col, field) in columns.iter().zip(&view.entity_columns) {
        let values = entities.get(col).ok_or_else(|| {
            let also = if *col == field.name {
                String::new()
            } else {
                format!(" (the feature service's join_key_map name for '{}', which is also accepted)", field.name)
            };
            Error::BadRequest(format!("feature view '{}' needs join key '{col}'{also} in `entities`", view.name))
        })?;
        typed.push(
            values
                .iter()
                .enumerate()
                .map(|(row, j)| typed_entity_value(j, field.dtype, col, row, KeyOf::View(&view.name)))
                .collect::<Result<_>>()?,
        );
    }
    let mut keys = Vec::with_capacity(rows);
    let mut row_values: Vec<&Value> = Vec::with_capacity(columns.len());
    for row in 0..rows {
        row_values.clear();
        row_values.extend(typed.iter().map(|col| &col[row]));
        keys.push(view.layout.key_encoder.redis_key(&row_values, project)?);
    }
    Ok(keys)
}

#[cfg(test)]
mod tests;
