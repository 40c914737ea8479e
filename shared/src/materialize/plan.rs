//! Work items: the unit one invocation materializes when a run is split across many.
//!
//! The contract (driven by a Step Functions Distributed Map, or by hand):
//! 1. `plan` resolves each view's window once (incremental starts included), lists the
//!    source files, reads their footers, drops row groups whose timestamp statistics fall
//!    outside every window, and cuts the rest into [`WorkItem`]s: one file and a range of
//!    row groups, with the views and windows to apply.
//! 2. Each item is materialized by its own invocation ([`super::run_item`]). Items write with
//!    newest-wins per entity key, so they can run in any order, in parallel, and be retried.
//!    An item that would overrun its deadline stops at a row-group boundary and returns the
//!    rest as one item to run next.
//! 3. `commit` records every view's window in the registry, once all items succeeded.
//!
//! Nothing is recorded before step 3, so a failed or abandoned run leaves the registry as it
//! was, and the next incremental run starts from the same place.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::ViewWindow;
use crate::time::EventTime;

/// A half-open range of row groups, `start..end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowGroups {
    pub start: usize,
    pub end: usize,
}

/// One file and a range of its row groups, with the views (and their windows) to
/// materialize from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkItem {
    pub views: Vec<ViewWindow>,
    /// `s3://bucket/key` or an absolute local path.
    pub file: String,
    /// The file's size in bytes (saves a request to find the footer).
    pub size: u64,
    pub row_groups: RowGroups,
    /// Rows in the item's row groups that statistics could not rule out (informational).
    #[serde(default)]
    pub rows: u64,
}

/// What `plan` answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Every view's window, as `commit` must record it.
    pub views: Vec<ViewWindow>,
    pub items: Vec<WorkItem>,
    pub files: usize,
    /// Row groups to read, and row groups skipped on their statistics.
    pub row_groups: usize,
    pub row_groups_skipped: usize,
    pub rows: u64,
    /// Views left out because they are already materialized up to the end asked for.
    #[serde(default)]
    pub up_to_date: Vec<String>,
}

pub(crate) fn ser_time<S: Serializer>(t: &EventTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339())
}

pub(crate) fn de_time<'de, D: Deserializer<'de>>(d: D) -> Result<EventTime, D::Error> {
    let text = String::deserialize(d)?;
    EventTime::parse(&text).map_err(D::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_round_trip_as_json() {
        let item = WorkItem {
            views: vec![ViewWindow {
                view: "driver_hourly_stats".into(),
                start: EventTime::parse("2026-01-01T00:00:00Z").unwrap(),
                end: EventTime::parse("2026-01-02T00:00:00.5Z").unwrap(),
            }],
            file: "s3://bucket/driver/part-0.parquet".into(),
            size: 1234,
            row_groups: RowGroups { start: 2, end: 5 },
            rows: 99,
        };
        let text = serde_json::to_string(&item).unwrap();
        assert!(text.contains(r#""start":"2026-01-01T00:00:00Z""#), "{text}");
        assert_eq!(serde_json::from_str::<WorkItem>(&text).unwrap(), item);
        let bad = text.replace("2026-01-01T00:00:00Z", "tomorrow");
        assert!(serde_json::from_str::<WorkItem>(&bad).unwrap_err().to_string().contains("tomorrow"));
    }
}
