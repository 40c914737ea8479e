//! Backfill: a stream view's window aggregations computed from its batch source, so stream and
//! batch agree (docs/aggregations.md, "Backfill").
//!
//! Materializing a view with window aggregations is not "the newest row per entity": every row
//! of the window is an event. The rows of every file are read (only the columns the view
//! needs), turned into the events a push of the same rows makes (key, time, aggregated values,
//! the row's features), put in time order (ties in file order) and applied through the same
//! tile script as pushes, a chunk at a time. The events carry positions on a lane of their
//! own, `materialize:<view>`, made of the event time and the row's rank among rows of that
//! time: a second run over the same window finds them at or before the lane's mark and counts
//! nothing twice, and an incremental run that starts where the last one ended goes on from
//! there. The rows travel with the events, so the entity hash gets the newest row and the
//! final values as a push would write them.
//!
//! Memory grows with the rows of the window (about 100 bytes per event plus its features):
//! a backfill holds the window's events to sort them.

use std::collections::HashSet;
use std::sync::Arc;

use futures::StreamExt;
use parquet::arrow::ParquetRecordBatchStreamBuilder;
use parquet::arrow::ProjectionMask;

use super::{ViewReport, ViewWindow};
use crate::aggregate::ViewWindows;
use crate::aggregate::tiles::Event;
use crate::config::RepoConfig;
use crate::error::{Error, Result};
use crate::offline::encode::{KeyReader, ValueEncoder, event_times};
use crate::offline::{self, Location, columns};
use crate::online::{OnlineStore, WriteOptions};
use crate::proto::types::value::Val;
use crate::push::ViewEvents;
use crate::registry::FeatureView;
use crate::storage::Storage;
use crate::value::{Value, ValueType};

/// Events applied per store call (in time order).
const CHUNK_EVENTS: usize = 20_000;
/// Rows per decoded batch.
const BATCH_ROWS: usize = 64 * 1024;

/// Whether materializing `view` is a backfill of its window aggregations.
pub fn aggregates(view: &FeatureView) -> bool {
    ViewWindows::of(view).is_some_and(|w| w.any())
}

/// What a backfill did, beyond a view report's counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backfilled {
    pub report: ViewReport,
    pub rows_read: u64,
    pub files: usize,
}

/// The lane a view's backfill events come from.
pub fn lane(view: &str) -> Arc<str> {
    Arc::from(format!("materialize:{view}"))
}

/// Backfills `w`'s view: reads every row of its window from its batch source and applies
/// them as events. The window is recorded by the caller.
pub async fn backfill(
    cfg: &RepoConfig,
    storage: &Storage,
    store: &dyn OnlineStore,
    view: &Arc<FeatureView>,
    w: &ViewWindow,
) -> Result<Backfilled> {
    let windows = Arc::new(ViewWindows::of(view).filter(ViewWindows::any).ok_or_else(|| {
        Error::internal(format!("feature view '{}' has no window aggregations to backfill", view.name))
    })?);
    let (_, path) = super::parquet_source(view)?;
    let root = Location::parse(path, &cfg.repo_dir)?;
    let tree = storage.files(&root);
    let files = offline::list_files(tree.as_ref(), &root).await?;
    let mut rows_read = 0;
    let mut report = ViewReport {
        view: view.name.clone(),
        start: w.start,
        end: w.end,
        rows_in_window: 0,
        entities: 0,
        written: 0,
        not_newer: 0,
        rows_null_key: 0,
    };
    let mut events: Vec<Event> = Vec::new();
    for file in &files {
        let (reader, meta) = offline::open_metadata(tree.as_ref(), file).await?;
        let read = FileColumns::resolve(view, meta.schema(), &file.location)?;
        let mask = ProjectionMask::roots(meta.parquet_schema(), read.indexes.iter().copied());
        let storage_error = |e: parquet::errors::ParquetError| {
            Error::storage(format!("reading {} for feature view '{}': {e}", file.location, view.name))
        };
        let mut stream = ParquetRecordBatchStreamBuilder::new_with_metadata(reader, meta)
            .with_projection(mask)
            .with_batch_size(BATCH_ROWS)
            .build()
            .map_err(storage_error)?;
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(storage_error)?;
            rows_read += batch.num_rows() as u64;
            read.events(view, &windows, &cfg.project, w, &batch, &file.location, &mut events, &mut report)?;
        }
    }
    // Time order; rows of one time keep their file order (a stable sort), which ranks them.
    events.sort_by_key(|e| e.time_us);
    let lane = lane(&view.name);
    let mut rank = 0;
    for i in 0..events.len() {
        rank = if i > 0 && events[i - 1].time_us == events[i].time_us { rank + 1 } else { 0 };
        let t = events[i].time_us;
        events[i].record = i;
        events[i].origin = (t >= 0)
            .then(|| crate::aggregate::position(&t.to_string(), rank))
            .flatten()
            .map(|p| (Arc::clone(&lane), p));
    }
    report.rows_in_window = events.len() as u64;
    report.entities = events.iter().map(|e| e.key.as_slice()).collect::<HashSet<_>>().len() as u64;
    let ttl = WriteOptions::from_config(cfg).key_ttl_seconds;
    let mut late = 0;
    let mut rest = events;
    while !rest.is_empty() {
        let tail = rest.split_off(rest.len().min(CHUNK_EVENTS));
        let chunk = ViewEvents { view: Arc::clone(view), windows: Arc::clone(&windows), events: rest };
        let (stats, late_events) = crate::push::aggregate(store, std::slice::from_ref(&chunk), ttl).await?;
        report.written += stats.rows_written as u64;
        report.not_newer += (stats.rows - stats.rows_written) as u64;
        late += late_events.len();
        rest = tail;
    }
    if late > 0 {
        tracing::warn!(
            view = %view.name,
            late,
            "backfill events were more than the allowed lateness behind events the stream had already applied: not \
             counted (backfill a view before its stream writes to it)"
        );
    }
    Ok(Backfilled { report, rows_read, files: files.len() })
}

/// The columns of one file a view's events are made of: indexes into the file's Arrow schema.
struct FileColumns {
    /// Every column read, in schema order (the projection).
    indexes: Vec<usize>,
    ts: String,
    keys: Vec<(String, ValueType)>,
    features: Vec<(String, ValueType)>,
}

impl FileColumns {
    fn resolve(view: &FeatureView, schema: &arrow_schema::Schema, file: &Location) -> Result<FileColumns> {
        let mapping = view.field_mapping();
        let batch = view.offline_source().expect("checked by the caller");
        let col = |name: &str| columns::source_column(mapping, name);
        let ts = col(&batch.timestamp_field);
        let keys: Vec<(String, ValueType)> = if view.is_entityless() {
            Vec::new()
        } else {
            view.entity_columns.iter().map(|k| (col(&k.name), k.dtype)).collect()
        };
        let features: Vec<(String, ValueType)> = view.features.iter().map(|f| (col(&f.name), f.dtype)).collect();
        let mut indexes = Vec::new();
        // The aggregated columns are features of the view (apply checks it), so among these.
        let wanted = std::iter::once(&ts).chain(keys.iter().map(|(n, _)| n)).chain(features.iter().map(|(n, _)| n));
        for name in wanted {
            let i = schema.index_of(name).map_err(|_| {
                Error::storage(format!(
                    "{file} has no column '{name}', which feature view '{}' needs (columns: {})",
                    view.name,
                    schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ")
                ))
            })?;
            if !indexes.contains(&i) {
                indexes.push(i);
            }
        }
        indexes.sort_unstable();
        Ok(FileColumns { indexes, ts, keys, features })
    }

    /// Appends the events of `batch`'s rows inside the window.
    #[allow(clippy::too_many_arguments)]
    fn events(
        &self,
        view: &FeatureView,
        windows: &ViewWindows,
        project: &str,
        w: &ViewWindow,
        batch: &arrow_array::RecordBatch,
        file: &Location,
        out: &mut Vec<Event>,
        report: &mut ViewReport,
    ) -> Result<()> {
        let column = |name: &str| batch.column_by_name(name).expect("projected").as_ref();
        let bad = |name: &str, row: usize, e: String| {
            Error::InvalidValue(format!("{file}: feature view '{}', column '{name}', row {row}: {e}", view.name))
        };
        let times = event_times(column(&self.ts)).map_err(|e| bad(&self.ts, 0, e))?;
        let keys: Vec<KeyReader<'_>> = self.keys.iter().map(|(n, t)| KeyReader::new(column(n), *t)).collect();
        let features: Vec<ValueEncoder<'_>> =
            self.features.iter().map(|(n, t)| ValueEncoder::new(column(n), *t)).collect();
        // Each aggregated column through its feature: (source name, column, type).
        let mut aggregated: Vec<(&str, &dyn arrow_array::Array, ValueType)> = Vec::with_capacity(windows.columns.len());
        for c in &windows.columns {
            let (i, f) = view.feature(c).ok_or_else(|| {
                Error::Config(format!(
                    "feature view '{}' aggregates '{c}', which is not one of its features",
                    view.name
                ))
            })?;
            let name = self.features[i].0.as_str();
            aggregated.push((name, column(name), f.dtype));
        }
        let dummy = Value { val: Some(Val::StringVal(String::new())) };
        let mut key_values: Vec<Value> = Vec::with_capacity(keys.len().max(1));
        // Hashes only for a view with count_distinct: no second vector per event otherwise.
        let hashed = windows.needs_id.contains(&true);
        for (row, t) in times.iter().enumerate() {
            if *t < w.start || *t > w.end {
                continue;
            }
            key_values.clear();
            let mut null_key = false;
            for (k, reader) in keys.iter().enumerate() {
                match reader.value(row).map_err(|e| bad(&self.keys[k].0, row, e))? {
                    Some(v) => key_values.push(v),
                    None => null_key = true,
                }
            }
            if null_key {
                report.rows_null_key += 1;
                continue;
            }
            if keys.is_empty() {
                key_values.push(dummy.clone());
            }
            let refs: Vec<&Value> = key_values.iter().collect();
            let key = view.layout.key_encoder.redis_key(&refs, project)?;
            let mut plain = Vec::with_capacity(features.len());
            for (f, enc) in features.iter().enumerate() {
                let mut bytes = Vec::new();
                enc.encode(row, &mut bytes).map_err(|e| bad(&self.features[f].0, row, e))?;
                plain.push(bytes);
            }
            // A row whose features are all null is no event, as for a push (Feast writes
            // nothing for it).
            if plain.iter().all(Vec::is_empty) {
                continue;
            }
            let mut values = Vec::with_capacity(aggregated.len());
            let mut ids = Vec::with_capacity(if hashed { aggregated.len() } else { 0 });
            for (c, (name, array, dtype)) in aggregated.iter().enumerate() {
                let v = crate::value::from_arrow(*array, row, *dtype).map_err(|e| bad(name, row, e))?;
                let (x, h) = crate::aggregate::cell(windows, c, &v).map_err(|e| bad(name, row, e))?;
                values.push(x);
                if hashed {
                    ids.push(h);
                }
            }
            out.push(Event { key, time_us: t.as_micros(), values, ids, origin: None, record: 0, row, plain });
        }
        Ok(())
    }
}
