//! Which columns of a file a scan reads, and which row groups it can skip.

use std::collections::BTreeMap;

use arrow_array::ArrayRef;
use arrow_schema::DataType;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ArrowReaderMetadata;
use parquet::arrow::arrow_reader::statistics::StatisticsConverter;

use super::{Location, encode};
use crate::error::{Error, Result};
use crate::time::EventTime;
use crate::value::ValueType;

/// The source column holding `name` (a feature, join key or timestamp field): the field
/// mapping run in reverse (`source column -> name`), or the name itself.
pub fn source_column(mapping: &BTreeMap<String, String>, name: &str) -> String {
    mapping.iter().find(|(_, to)| to.as_str() == name).map(|(from, _)| from.clone()).unwrap_or_else(|| name.to_string())
}

/// How a needed column is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnUse {
    /// An event or created timestamp.
    Time,
    /// A feature or join key of this declared type.
    Value(ValueType),
}

/// A column a scan needs, and who needs it (for error messages).
#[derive(Debug, Clone)]
pub struct Needed {
    pub name: String,
    pub usage: ColumnUse,
    /// e.g. "feature 'conv_rate' of feature view 'driver_hourly_stats'".
    pub purpose: String,
}

/// Where each needed column of one file comes from.
#[derive(Debug, Clone)]
pub enum ColumnFrom {
    /// The projected batch column of this name.
    File(String),
    /// A hive partition value in the file's path.
    Partition(String),
}

/// What to read from one file: the projection, and where each needed column comes from.
#[derive(Debug, Clone)]
pub struct FileColumns {
    pub mask: ProjectionMask,
    pub from: Vec<ColumnFrom>,
}

/// Checks that the file has every needed column (or its partition path does) with a type that
/// fits, and builds the projection. An error names the column, what needs it, and the file.
pub fn resolve(
    meta: &ArrowReaderMetadata,
    needed: &[Needed],
    partitions: &[(String, String)],
    file: &Location,
) -> Result<FileColumns> {
    let schema = meta.schema();
    let mut roots = Vec::new();
    let mut from = Vec::with_capacity(needed.len());
    for n in needed {
        match schema.index_of(&n.name) {
            Ok(i) => {
                let t = schema.field(i).data_type();
                let fits = match n.usage {
                    ColumnUse::Time => encode::is_time_type(t),
                    ColumnUse::Value(ty) => encode::compatible(t, ty),
                };
                if !fits {
                    let want = match n.usage {
                        ColumnUse::Time => "a timestamp".to_string(),
                        ColumnUse::Value(ty) => ty.to_string(),
                    };
                    return Err(Error::InvalidValue(format!(
                        "column '{}' in {file} has Arrow type {t}, which cannot be read as {want} (it is the {})",
                        n.name, n.purpose
                    )));
                }
                roots.push(i);
                from.push(ColumnFrom::File(n.name.clone()));
            }
            Err(_) => match partitions.iter().find(|(k, _)| k == &n.name) {
                Some((_, v)) => from.push(ColumnFrom::Partition(v.clone())),
                None => {
                    return Err(Error::InvalidValue(format!(
                        "column '{}' is not in {file} (it is the {}); the file has: {}",
                        n.name,
                        n.purpose,
                        schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ")
                    )));
                }
            },
        }
    }
    roots.sort_unstable();
    roots.dedup();
    Ok(FileColumns { mask: ProjectionMask::roots(meta.parquet_schema(), roots), from })
}

impl FileColumns {
    /// The needed columns of a decoded batch, in `needed` order.
    pub fn columns(
        &self,
        batch: &arrow_array::RecordBatch,
        needed: &[Needed],
        file: &Location,
    ) -> Result<Vec<ArrayRef>> {
        self.from
            .iter()
            .zip(needed)
            .map(|(f, n)| match f {
                ColumnFrom::File(name) => batch.column_by_name(name).cloned().ok_or_else(|| {
                    Error::internal(format!("projected column '{name}' missing from a batch of {file}"))
                }),
                ColumnFrom::Partition(text) => {
                    let ty = match n.usage {
                        ColumnUse::Time => None,
                        ColumnUse::Value(t) => Some(t),
                    };
                    encode::constant_column(text, ty, batch.num_rows()).map_err(|e| {
                        Error::InvalidValue(format!("{file}: {e} (column '{}', the {})", n.name, n.purpose))
                    })
                }
            })
            .collect()
    }
}

/// Each row group's minimums and maximums of `column` from the footer statistics, when the
/// column exists with a type `usable` accepts and the statistics can be read.
fn statistics(
    meta: &ArrowReaderMetadata,
    column: &str,
    usable: impl Fn(&DataType) -> bool,
) -> Option<(ArrayRef, ArrayRef)> {
    let groups = meta.metadata().row_groups();
    let schema = meta.schema();
    let field = schema.field_with_name(column).ok()?;
    if !usable(field.data_type()) {
        return None;
    }
    let conv = StatisticsConverter::try_new(column, schema, meta.parquet_schema()).ok()?;
    Some((conv.row_group_mins(groups.iter()).ok()?, conv.row_group_maxes(groups.iter()).ok()?))
}

/// The time range of each row group's timestamp column, from the footer statistics:
/// `None` when a row group has no usable statistics (it must then be read).
pub fn time_ranges(meta: &ArrowReaderMetadata, column: &str) -> Vec<Option<(EventTime, EventTime)>> {
    let unknown = || vec![None; meta.metadata().num_row_groups()];
    let time = |t: &DataType| matches!(t, DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64);
    let Some((mins, maxes)) = statistics(meta, column, time) else {
        return unknown();
    };
    let (Ok(mins), Ok(maxes)) = (encode::event_times(mins.as_ref()), encode::event_times(maxes.as_ref())) else {
        return unknown();
    };
    mins.into_iter()
        .zip(maxes)
        .map(|(lo, hi)| (lo != encode::NULL_TIME && hi != encode::NULL_TIME).then_some((lo, hi)))
        .collect()
}

/// The range of each row group's values of an integer column (a join key), from the footer
/// statistics: `None` when a row group has none, or when the column is not an integer column
/// (statistics of text or floats would order keys differently from their values).
pub fn int_ranges(meta: &ArrowReaderMetadata, column: &str) -> Vec<Option<(i64, i64)>> {
    use DataType as D;
    let int = |t: &DataType| matches!(t, D::Int8 | D::Int16 | D::Int32 | D::Int64 | D::UInt8 | D::UInt16 | D::UInt32);
    let Some((Some(mins), Some(maxes))) = statistics(meta, column, int).map(|(lo, hi)| (integers(&lo), integers(&hi)))
    else {
        return vec![None; meta.metadata().num_row_groups()];
    };
    // A minimum above the maximum (statistics a legacy writer ordered as signed for an unsigned
    // column) would cover no key at all, the unsafe direction: treat it as unknown.
    mins.into_iter().zip(maxes).map(|(lo, hi)| lo.zip(hi).filter(|(lo, hi)| lo <= hi)).collect()
}

/// An integer array's values as i64 (every type [`int_ranges`] takes fits).
fn integers(a: &ArrayRef) -> Option<Vec<Option<i64>>> {
    use arrow_array::cast::AsArray;
    use arrow_array::types as t;
    macro_rules! widen {
        ($t:ty) => {
            a.as_primitive_opt::<$t>().map(|p| p.iter().map(|v| v.map(i64::from)).collect())
        };
    }
    match a.data_type() {
        DataType::Int8 => widen!(t::Int8Type),
        DataType::Int16 => widen!(t::Int16Type),
        DataType::Int32 => widen!(t::Int32Type),
        DataType::Int64 => widen!(t::Int64Type),
        DataType::UInt8 => widen!(t::UInt8Type),
        DataType::UInt16 => widen!(t::UInt16Type),
        DataType::UInt32 => widen!(t::UInt32Type),
        _ => None,
    }
}

/// Whether a row group whose times span `range` may hold rows in `[start, end]`.
pub fn may_overlap(range: Option<(EventTime, EventTime)>, start: EventTime, end: EventTime) -> bool {
    match range {
        Some((lo, hi)) => hi >= start && lo <= end,
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_maps_fields() {
        let m: BTreeMap<String, String> = [("raw_rate".to_string(), "conv_rate".to_string())].into();
        assert_eq!(source_column(&m, "conv_rate"), "raw_rate");
        assert_eq!(source_column(&m, "acc_rate"), "acc_rate");
    }

    #[test]
    fn integer_statistics_give_key_ranges_and_nothing_else_does() {
        use arrow_array::{Int32Array, Int64Array, RecordBatch, StringArray, UInt32Array};
        use arrow_schema::{Field, Schema};
        use std::sync::Arc;
        let schema = Arc::new(Schema::new(vec![
            Field::new("i32", DataType::Int32, false),
            Field::new("u32", DataType::UInt32, false),
            Field::new("maybe", DataType::Int64, true),
            Field::new("text", DataType::Utf8, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int32Array::from(vec![-5, 3, 7, 7])),
                Arc::new(UInt32Array::from(vec![4_000_000_000, 1, 9, 2])),
                Arc::new(Int64Array::from(vec![Some(1), Some(2), None, None])),
                Arc::new(StringArray::from(vec!["b", "a", "d", "c"])),
            ],
        )
        .unwrap();
        let props = parquet::file::properties::WriterProperties::builder().set_max_row_group_row_count(Some(2)).build();
        let mut buf = Vec::new();
        let mut w = parquet::arrow::ArrowWriter::try_new(&mut buf, schema, Some(props)).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let meta = ArrowReaderMetadata::load(&bytes::Bytes::from(buf), Default::default()).unwrap();
        assert_eq!(int_ranges(&meta, "i32"), vec![Some((-5, 3)), Some((7, 7))]);
        // Unsigned values keep their value (no wrap to negative).
        assert_eq!(int_ranges(&meta, "u32"), vec![Some((1, 4_000_000_000)), Some((2, 9))]);
        // A row group of nulls only has no range.
        assert_eq!(int_ranges(&meta, "maybe"), vec![Some((1, 2)), None]);
        // Text orders differently from numbers; a missing column has no statistics.
        assert_eq!(int_ranges(&meta, "text"), vec![None, None]);
        assert_eq!(int_ranges(&meta, "absent"), vec![None, None]);
    }

    #[test]
    fn overlap_is_inclusive_at_both_ends() {
        let t = |s| EventTime::new(s, 0);
        assert!(may_overlap(Some((t(10), t(20))), t(20), t(30)));
        assert!(may_overlap(Some((t(10), t(20))), t(0), t(10)));
        assert!(!may_overlap(Some((t(10), t(20))), t(21), t(30)));
        assert!(!may_overlap(Some((t(10), t(20))), t(0), t(9)));
        assert!(may_overlap(None, t(0), t(1)));
    }
}
