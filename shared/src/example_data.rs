//! Synthetic driver statistics for the example repo, tests and benchmarks.
//!
//! The same shape as the Feast anchor's generator (`shared/anchors/feast/gen_data.py`), so
//! Larder and Feast are measured on comparable files: `drivers` x `hours` rows, one per
//! driver per hour ending at `end`, columns driver_id int64, event_timestamp and created
//! (timestamp[us, UTC], created = event + 60 s), conv_rate f32, acc_rate f32,
//! avg_daily_trips i64, miles_driven f64, rating f32, city string, is_active bool; row groups
//! of 128 Ki rows. Values come from a seeded generator, so a file is reproducible.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{
    ArrayRef, BooleanArray, Float32Array, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::error::{Error, Result};
use crate::time::EventTime;

pub const ROW_GROUP_ROWS: usize = 128 * 1024;
const CITIES: [&str; 4] = ["sf", "nyc", "la", "sea"];

/// xorshift64*: small, fast, and reproducible across platforms. Not for anything secret.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

pub fn schema() -> Arc<Schema> {
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("driver_id", DataType::Int64, false),
        Field::new("event_timestamp", ts.clone(), false),
        Field::new("created", ts, false),
        Field::new("conv_rate", DataType::Float32, true),
        Field::new("acc_rate", DataType::Float32, true),
        Field::new("avg_daily_trips", DataType::Int64, true),
        Field::new("miles_driven", DataType::Float64, true),
        Field::new("rating", DataType::Float32, true),
        Field::new("city", DataType::Utf8, true),
        Field::new("is_active", DataType::Boolean, true),
    ]))
}

/// Writes `drivers` x `hours` rows to `path`; driver ids start at 1000 and the last hour of
/// each driver is `end - 1h`. Memory stays at one row group whatever the size.
pub fn write_driver_stats(path: &Path, drivers: u64, hours: u64, end: EventTime, seed: u64) -> Result<u64> {
    let io = |e: &dyn std::fmt::Display| Error::storage(format!("writing {}: {e}", path.display()));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| io(&e))?;
    }
    let file = File::create(path).map_err(|e| io(&e))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .build();
    let schema = schema();
    let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(props)).map_err(|e| io(&e))?;
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let total = drivers * hours;
    let first_us = (end.secs - hours as i64 * 3600) * 1_000_000;
    let mut row = 0u64;
    while row < total {
        let n = (total - row).min(ROW_GROUP_ROWS as u64) as usize;
        let mut ids = Vec::with_capacity(n);
        let mut ts = Vec::with_capacity(n);
        let mut created = Vec::with_capacity(n);
        let (mut conv, mut acc, mut trips, mut miles, mut rating, mut city, mut active) =
            (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
        for i in row..row + n as u64 {
            let (driver, hour) = (i / hours, i % hours);
            ids.push(1000 + driver as i64);
            let t = first_us + hour as i64 * 3_600_000_000;
            ts.push(t);
            created.push(t + 60_000_000);
            conv.push(rng.unit() as f32);
            acc.push(rng.unit() as f32);
            trips.push((rng.next() % 1000) as i64);
            miles.push(rng.unit() * 500.0);
            rating.push(rng.unit() as f32 * 5.0);
            city.push(CITIES[(rng.next() % 4) as usize]);
            active.push(rng.unit() > 0.2);
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(TimestampMicrosecondArray::from(ts).with_timezone("UTC")),
            Arc::new(TimestampMicrosecondArray::from(created).with_timezone("UTC")),
            Arc::new(Float32Array::from(conv)),
            Arc::new(Float32Array::from(acc)),
            Arc::new(Int64Array::from(trips)),
            Arc::new(Float64Array::from(miles)),
            Arc::new(Float32Array::from(rating)),
            Arc::new(StringArray::from(city)),
            Arc::new(BooleanArray::from(active)),
        ];
        let batch = RecordBatch::try_new(schema.clone(), columns).map_err(|e| io(&e))?;
        writer.write(&batch).map_err(|e| io(&e))?;
        row += n as u64;
    }
    writer.close().map_err(|e| io(&e))?;
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    #[test]
    fn writes_the_documented_shape_reproducibly() {
        let dir = tempfile::tempdir().unwrap();
        let end = EventTime::parse("2026-11-20T00:00:00Z").unwrap();
        let (a, b) = (dir.path().join("a.parquet"), dir.path().join("b.parquet"));
        assert_eq!(write_driver_stats(&a, 3, 4, end, 7).unwrap(), 12);
        write_driver_stats(&b, 3, 4, end, 7).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&a).unwrap()).unwrap().build().unwrap();
        let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
        assert_eq!(batches.iter().map(RecordBatch::num_rows).sum::<usize>(), 12);
        let batch = &batches[0];
        assert_eq!(batch.schema().fields().len(), 10);
        let ids = batch.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!((ids.value(0), ids.value(4), ids.value(11)), (1000, 1001, 1002));
        let ts = batch.column(1).as_any().downcast_ref::<TimestampMicrosecondArray>().unwrap();
        assert_eq!(EventTime::from_micros(ts.value(3)), end.add_secs(-3600));
    }
}
