//! A frame's rows for one feature view, as Feast's `write_to_online_store` builds them:
//! column names go through the batch source's `field_mapping`; the entity key comes from the
//! view's join keys, typed by `entity_columns`; features are typed by the view schema; the event
//! time is the batch source's `timestamp_field`; `created_timestamp_column`, when present, must
//! hold times (Redis does not store it, as in Feast).
//!
//! Every error names the target (push source and view), the column and the row.

use serde_json::Value as Json;

use super::frame::Frame;
use crate::aggregate::ViewWindows;
use crate::aggregate::tiles::Event;
use crate::error::{Error, Result};
use crate::online::WriteRow;
use crate::registry::FeatureView;
use crate::time::EventTime;
use crate::value::{self, Value};

/// What is being written, for messages: `push source 's' (feature view 'v')` or
/// `feature view 'v'`.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub push_source: Option<&'a str>,
    pub view: &'a str,
}

impl std::fmt::Display for Target<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.push_source {
            Some(s) => write!(f, "push source '{s}' (feature view '{}')", self.view),
            None => write!(f, "feature view '{}'", self.view),
        }
    }
}

/// Where each column the view needs sits in the frame.
struct Columns {
    keys: Vec<Option<usize>>,
    features: Vec<usize>,
    timestamp: usize,
    created: Option<(usize, String)>,
}

/// The frame column holding view field `name`: a column the field mapping renames to `name`,
/// otherwise a column called `name` that the mapping does not rename to something else.
fn find_column(frame: &Frame, mapping: &std::collections::BTreeMap<String, String>, name: &str) -> Option<usize> {
    if mapping.is_empty() {
        return frame.column(name);
    }
    if let Some(i) = mapping.iter().filter(|(_, to)| to.as_str() == name).find_map(|(from, _)| frame.column(from)) {
        return Some(i);
    }
    frame.column(name).filter(|_| !mapping.contains_key(name))
}

fn resolve(view: &FeatureView, frame: &Frame, target: Target<'_>) -> Result<Columns> {
    let batch = view.offline_source().ok_or_else(|| {
        Error::Config(format!("{target}: the view has no batch source, so its timestamp column is unknown"))
    })?;
    if batch.timestamp_field.is_empty() {
        return Err(Error::Config(format!("{target}: batch source '{}' has no timestamp_field", batch.name)));
    }
    let mapping = &batch.field_mapping;
    let missing = |what: &str, name: &str| {
        let mapped: Vec<&str> =
            mapping.iter().filter(|(_, to)| to.as_str() == name).map(|(from, _)| from.as_str()).collect();
        let alias = if mapped.is_empty() {
            String::new()
        } else {
            format!(" (or '{}', which field_mapping renames to it)", mapped.join("', '"))
        };
        Error::InvalidValue(format!(
            "{target}: {what} column '{name}'{alias} is missing; the pushed columns are {}",
            frame.describe_columns()
        ))
    };
    let mut keys = Vec::with_capacity(view.entity_columns.len());
    for col in &view.entity_columns {
        match find_column(frame, mapping, &col.name) {
            Some(i) => keys.push(Some(i)),
            // A view without entities is keyed by the dummy entity, which no push carries.
            None if view.is_entityless() => keys.push(None),
            None => return Err(missing("join key", &col.name)),
        }
    }
    let mut features = Vec::with_capacity(view.features.len());
    for f in &view.features {
        features.push(find_column(frame, mapping, &f.name).ok_or_else(|| missing("feature", &f.name))?);
    }
    let ts = &batch.timestamp_field;
    let timestamp =
        find_column(frame, mapping, ts).or_else(|| frame.column(ts)).ok_or_else(|| missing("timestamp", ts))?;
    let created = batch
        .created_timestamp_column
        .as_deref()
        .filter(|c| !c.is_empty())
        .and_then(|c| find_column(frame, mapping, c).or_else(|| frame.column(c)).map(|i| (i, c.to_string())));
    Ok(Columns { keys, features, timestamp, created })
}

/// The rows of `frame` for `view`, ready to write: `None` when Feast writes nothing (no rows,
/// or every feature value null).
pub fn rows_for_view(
    view: &FeatureView,
    frame: &Frame,
    project: &str,
    target: Target<'_>,
) -> Result<Option<Vec<WriteRow>>> {
    if frame.is_empty() {
        return Ok(None);
    }
    let cols = resolve(view, frame, target)?;
    // Feast skips the whole write when every feature column is null.
    if !view.features.is_empty()
        && cols.features.iter().all(|&c| (0..frame.rows()).all(|r| frame.value(c, r).is_null()))
    {
        return Ok(None);
    }
    let cell_error = |col: usize, row: usize, e: String| {
        Error::InvalidValue(format!("{target}: column '{}', row {row}: {e}", frame.column_names()[col]))
    };
    let dummy = Value { val: Some(crate::proto::types::value::Val::StringVal(String::new())) };
    let mut rows = Vec::with_capacity(frame.rows());
    let mut key_values: Vec<Value> = Vec::with_capacity(cols.keys.len());
    for row in 0..frame.rows() {
        key_values.clear();
        for (k, col) in cols.keys.iter().enumerate() {
            let Some(col) = *col else {
                key_values.push(dummy.clone());
                continue;
            };
            let j = frame.value(col, row);
            if j.is_null() {
                return Err(cell_error(col, row, format!("join key '{}' is null", view.entity_columns[k].name)));
            }
            let v = value::from_json(j, view.entity_columns[k].dtype).map_err(|e| cell_error(col, row, e))?;
            key_values.push(v);
        }
        let refs: Vec<&Value> = key_values.iter().collect();
        let key = view.layout.key_encoder.redis_key(&refs, project).map_err(|e| {
            let col = cols.keys.iter().flatten().next().copied().unwrap_or(0);
            cell_error(col, row, e.to_string())
        })?;
        let event_time =
            event_time(frame.value(cols.timestamp, row)).map_err(|e| cell_error(cols.timestamp, row, e))?;
        if let Some((c, _)) = &cols.created {
            let j = frame.value(*c, row);
            if !j.is_null() {
                event_time_of(j).map_err(|e| cell_error(*c, row, e))?;
            }
        }
        let mut values = Vec::with_capacity(cols.features.len());
        for (f, &col) in view.features.iter().zip(&cols.features) {
            let v = value::from_json(frame.value(col, row), f.dtype).map_err(|e| cell_error(col, row, e))?;
            values.push(value::encode(&v));
        }
        rows.push(WriteRow { key, event_time, values });
    }
    Ok(Some(rows))
}

/// The events of `frame` for `view`'s window aggregations, one per row (in frame order): the
/// entity key and event time of `rows` (what [`rows_for_view`] made of the same frame), and
/// each aggregated column's value as a number (`None` for a null or NaN, which no function
/// counts). `record` and `origin` are left for the caller; `row` is the frame row.
pub fn events_for_view(
    view: &FeatureView,
    windows: &ViewWindows,
    frame: &Frame,
    rows: &[WriteRow],
    target: Target<'_>,
) -> Result<Vec<Event>> {
    let mapping = view.offline_source().map(|b| &b.field_mapping);
    let empty = std::collections::BTreeMap::new();
    let mapping = mapping.unwrap_or(&empty);
    let mut columns = Vec::with_capacity(windows.columns.len());
    for name in &windows.columns {
        let col = find_column(frame, mapping, name).ok_or_else(|| {
            Error::InvalidValue(format!(
                "{target}: column '{name}', which the view's aggregations read, is missing; the pushed columns are {}",
                frame.describe_columns()
            ))
        })?;
        columns.push((col, view.feature(name).map(|(_, f)| f.dtype)));
    }
    // Hashes only for a view with count_distinct: no second vector per event otherwise.
    let hashed = windows.needs_id.contains(&true);
    let mut events = Vec::with_capacity(rows.len());
    for (row, written) in rows.iter().enumerate() {
        let mut values = Vec::with_capacity(columns.len());
        let mut ids = Vec::with_capacity(if hashed { columns.len() } else { 0 });
        for (c, &(col, dtype)) in columns.iter().enumerate() {
            let (x, h) = value_of(frame.value(col, row), dtype)
                .and_then(|v| crate::aggregate::cell(windows, c, &v))
                .map_err(|e| {
                    Error::InvalidValue(format!("{target}: column '{}', row {row}: {e}", frame.column_names()[col]))
                })?;
            values.push(x);
            if hashed {
                ids.push(h);
            }
        }
        events.push(Event {
            key: written.key.clone(),
            time_us: written.event_time.as_micros(),
            values,
            ids,
            origin: None,
            record: 0,
            row,
            plain: Vec::new(),
        });
    }
    Ok(events)
}

/// A cell of an aggregated column as a value: of the feature's type when the view declares
/// the column, else as JSON has it (numbers as doubles).
fn value_of(j: &Json, dtype: Option<crate::value::ValueType>) -> std::result::Result<value::Value, String> {
    use crate::proto::types::value::Val;
    let val = match dtype {
        Some(t) => return value::from_json(j, t),
        None => match j {
            Json::Null => None,
            Json::Bool(b) => Some(Val::BoolVal(*b)),
            Json::Number(n) => n.as_f64().map(Val::DoubleVal),
            Json::String(s) => Some(Val::StringVal(s.clone())),
            other => return Err(format!("expected a single value to aggregate, got {other}")),
        },
    };
    Ok(value::Value { val })
}

/// The event time of a row: required.
fn event_time(j: &Json) -> std::result::Result<EventTime, String> {
    if j.is_null() {
        return Err("the event timestamp is null".into());
    }
    event_time_of(j)
}

/// A time as pushed: RFC 3339 or pandas text (a time without an offset is UTC, as in Feast),
/// or a number since the epoch whose unit follows from its size: seconds below 1e11,
/// milliseconds below 1e14, microseconds below 1e17, nanoseconds above. (Feast hands numbers
/// to `pd.to_datetime`, which reads them as nanoseconds: epoch seconds land in 1970. Larder
/// reads any unit a producer is likely to send, for any time after 1973.)
pub fn event_time_of(j: &Json) -> std::result::Result<EventTime, String> {
    match j {
        Json::String(s) => EventTime::parse(s),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                let a = i.unsigned_abs();
                Ok(if a < 100_000_000_000 {
                    EventTime::from_units(i, 1)
                } else if a < 100_000_000_000_000 {
                    EventTime::from_units(i, 1_000)
                } else if a < 100_000_000_000_000_000 {
                    EventTime::from_micros(i)
                } else {
                    EventTime::from_nanos(i)
                })
            } else {
                let f = n
                    .as_f64()
                    .filter(|f| f.is_finite() && f.abs() < 1e11)
                    .ok_or_else(|| format!("{n} is not a timestamp"))?;
                let secs = f.floor();
                let nanos = ((f - secs) * 1e9).round().min(999_999_999.0) as u32;
                Ok(EventTime::new(secs as i64, nanos))
            }
        }
        other => Err(format!("expected a timestamp (RFC 3339 text or epoch seconds), got {other}")),
    }
}
