//! The rows of one push: Feast's column-oriented `df`, or one flat row object.
//!
//! Feast builds a pandas DataFrame from `df`, so a column is a list with one value per row and
//! a single (non-list) value is repeated on every row. A [`Frame`] keeps exactly that shape
//! without copying values per row: a column is either [`Column::Values`] or
//! [`Column::Scalar`].

use serde_json::{Map, Value as Json};

use crate::error::{Error, Result};

/// One column of a frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    /// One value per row.
    Values(Vec<Json>),
    /// One value for every row (pandas broadcasts a scalar).
    Scalar(Json),
}

/// Named columns of equal length.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Frame {
    names: Vec<String>,
    columns: Vec<Column>,
    rows: usize,
}

impl Frame {
    /// From Feast's `df` (`{column: [values]}`). Every list must have the same length; a
    /// value that is not a list is broadcast to all rows. A `df` of only single values is one
    /// row (pandas refuses it without an index; Larder takes the obvious meaning).
    pub fn from_columns(df: Map<String, Json>) -> Result<Frame> {
        let mut frame = Frame { names: Vec::with_capacity(df.len()), columns: Vec::with_capacity(df.len()), rows: 0 };
        let mut length: Option<(usize, usize)> = None; // (rows, index of the column that set it)
        for (name, value) in df {
            let column = match value {
                Json::Array(values) => {
                    match length {
                        None => length = Some((values.len(), frame.names.len())),
                        Some((n, first)) if n != values.len() => {
                            return Err(Error::BadRequest(format!(
                                "df columns differ in length: '{}' has {n} values but '{name}' has {} \
                                 (give every column one value per row, or a single value for all rows)",
                                frame.names[first],
                                values.len()
                            )));
                        }
                        Some(_) => {}
                    }
                    Column::Values(values)
                }
                scalar => Column::Scalar(scalar),
            };
            frame.names.push(name);
            frame.columns.push(column);
        }
        frame.rows = match length {
            Some((n, _)) => n,
            None if frame.columns.is_empty() => 0,
            None => 1,
        };
        Ok(frame)
    }

    /// One row from a flat object (`{"driver_id": 1001, "conv_rate": 0.5, ...}`). Every field
    /// is a column, lists included (a list-typed feature's value is a list).
    pub fn from_row(row: Map<String, Json>) -> Frame {
        let mut frame = Frame { names: Vec::with_capacity(row.len()), columns: Vec::with_capacity(row.len()), rows: 1 };
        for (name, value) in row {
            frame.names.push(name);
            frame.columns.push(Column::Scalar(value));
        }
        frame
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    pub fn column_names(&self) -> &[String] {
        &self.names
    }

    /// The index of a column by name.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// The value of column `col` in `row` (`row < rows()`).
    pub fn value(&self, col: usize, row: usize) -> &Json {
        match &self.columns[col] {
            Column::Values(v) => &v[row],
            Column::Scalar(v) => v,
        }
    }

    /// The given rows as a Feast `df` (single values stay single), for re-sending part of a
    /// push (async mode sends each entity's rows as their own record).
    pub fn select_rows(&self, rows: &[usize]) -> Map<String, Json> {
        self.names
            .iter()
            .zip(&self.columns)
            .map(|(name, column)| {
                let value = match column {
                    Column::Values(v) => Json::Array(rows.iter().map(|&r| v[r].clone()).collect()),
                    Column::Scalar(v) => v.clone(),
                };
                (name.clone(), value)
            })
            .collect()
    }

    /// The names as a short list for messages: `[driver_id, conv_rate, ...]`.
    pub fn describe_columns(&self) -> String {
        const SHOWN: usize = 12;
        let mut s = String::from("[");
        for (i, n) in self.names.iter().take(SHOWN).enumerate() {
            if i > 0 {
                s.push_str(", ");
            }
            s.push_str(n);
        }
        if self.names.len() > SHOWN {
            s.push_str(&format!(", ... {} more", self.names.len() - SHOWN));
        }
        s.push(']');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Json) -> Map<String, Json> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn columns_and_broadcast_scalars() {
        let f = Frame::from_columns(obj(json!({"id": [1, 2, 3], "city": "sf", "rate": [0.1, 0.2, 0.3]}))).unwrap();
        assert_eq!(f.rows(), 3);
        let city = f.column("city").unwrap();
        assert_eq!((0..3).map(|r| f.value(city, r).clone()).collect::<Vec<_>>(), vec![json!("sf"); 3]);
        assert_eq!(f.value(f.column("rate").unwrap(), 2), &json!(0.3));
        assert_eq!(f.column("missing"), None);
    }

    #[test]
    fn all_scalars_is_one_row_and_empty_is_none() {
        assert_eq!(Frame::from_columns(obj(json!({"id": 1, "x": 2}))).unwrap().rows(), 1);
        assert_eq!(Frame::from_columns(Map::new()).unwrap().rows(), 0);
        assert_eq!(Frame::from_columns(obj(json!({"id": [], "x": "a"}))).unwrap().rows(), 0);
    }

    #[test]
    fn unequal_lengths_name_both_columns() {
        let e = Frame::from_columns(obj(json!({"id": [1, 2], "rate": [0.5]}))).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("'id' has 2") && msg.contains("'rate' has 1"), "{msg}");
        assert_eq!(e.status(), 400);
    }

    #[test]
    fn flat_row_keeps_lists_as_values() {
        let f = Frame::from_row(obj(json!({"id": 7, "tags": ["a", "b"]})));
        assert_eq!(f.rows(), 1);
        assert_eq!(f.value(f.column("tags").unwrap(), 0), &json!(["a", "b"]));
    }

    #[test]
    fn select_rows_keeps_scalars() {
        let f = Frame::from_columns(obj(json!({"id": [1, 2, 3], "city": "sf"}))).unwrap();
        assert_eq!(Json::Object(f.select_rows(&[0, 2])), json!({"id": [1, 3], "city": "sf"}));
    }
}
