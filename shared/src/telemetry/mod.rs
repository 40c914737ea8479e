//! Metrics: one set of names ([`names`]), recorded through the `metrics` facade, exported by
//! whichever recorder the binary installs: CloudWatch embedded metric format lines in the
//! Lambda functions ([`emf`]), Prometheus text on `larder serve`'s `GET /metrics`. With no
//! recorder installed (tests, `--no-metrics`) every call here is a no-op. The calls made per
//! request or per pushed batch reuse handles registered once per thread ([`handles`]).
//!
//! This module depends on nothing of Larder's: the operations call it with plain values, so any
//! layer may record without a cycle. Cardinality is bounded by what callers pass as labels:
//! routes, views, statuses, triggers and error codes, never an entity key.

pub mod emf;
mod handles;
pub mod names;

use std::time::Duration;

use metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};

/// Describes every metric of [`names::ALL`] to the installed recorder (help text and unit).
/// Call once, after installing a recorder.
pub fn describe() {
    for m in names::ALL {
        let unit = match m.unit {
            names::Unit::Count => Unit::Count,
            names::Unit::Seconds => Unit::Seconds,
            names::Unit::Bytes => Unit::Bytes,
        };
        match m.kind {
            names::Kind::Counter => describe_counter!(m.name, unit, m.help),
            names::Kind::Gauge => describe_gauge!(m.name, unit, m.help),
            names::Kind::Histogram => describe_histogram!(m.name, unit, m.help),
        }
    }
}

/// One HTTP request answered. `route` is a route the router serves, or `"unmatched"`.
pub fn request(route: &'static str, status: u16, elapsed: Duration) {
    handles::request(route, status, elapsed.as_secs_f64());
}

/// One online-store round trip (`operation`: `read` or `write`).
pub fn redis(operation: &'static str, elapsed: Duration) {
    handles::redis(operation, elapsed.as_secs_f64());
}

/// Entity rows of one get-online-features request.
pub fn entity_rows(rows: usize) {
    handles::entity_rows(rows as f64);
}

/// Feature values answered for one view: counts of PRESENT, NULL_VALUE, NOT_FOUND and
/// OUTSIDE_MAX_AGE, in that order (`retrieval::Status` order).
pub fn feature_answers(view: &str, counts: [u64; 4]) {
    handles::feature_answers(view, counts);
}

/// What one push did (`trigger`: `http`, `kinesis` or `kafka`): records (or requests) received,
/// rows converted, written, and not newer than stored.
pub fn push(trigger: &'static str, records: u64, rows: u64, written: u64, not_newer: u64) {
    handles::push(trigger, [records, rows, written, not_newer]);
}

/// Stream records dead-lettered, by error code.
pub fn dead_letters(reason: &'static str, n: u64) {
    counter!(names::PUSH_DEAD_LETTERS, "reason" => reason).increment(n);
}

/// Write time minus the event time of the newest row written to `view` by one write.
pub fn push_lag(view: &str, seconds: f64) {
    handles::push_lag(view, seconds);
}

/// The age of a stream batch's oldest record when it is processed.
pub fn stream_batch_age(trigger: &'static str, seconds: f64) {
    histogram!(names::STREAM_BATCH_AGE_SECONDS, "trigger" => trigger).record(seconds);
}

/// What one materialization run (or work item) read and how it ended (`outcome`: `recorded`,
/// `incomplete`, `failed`, or `item` for one work item of a split run).
pub fn materialize_run(outcome: &'static str, elapsed: Duration) {
    counter!(names::MATERIALIZE_RUNS, "outcome" => outcome).increment(1);
    histogram!(names::MATERIALIZE_SECONDS).record(elapsed.as_secs_f64());
}

/// Parquet read by a materialization run: rows, and row groups skipped.
pub fn materialize_read(rows: u64, row_groups_skipped: u64) {
    counter!(names::MATERIALIZE_ROWS_READ).increment(rows);
    counter!(names::MATERIALIZE_ROW_GROUPS_SKIPPED).increment(row_groups_skipped);
}

/// Parquet bytes fetched (one ranged read).
pub fn parquet_bytes(bytes: u64) {
    counter!(names::MATERIALIZE_BYTES_READ).increment(bytes);
}

/// Keys one view got from materialization.
pub fn materialize_keys(view: &str, keys: u64) {
    counter!(names::MATERIALIZE_KEYS_WRITTEN, "view" => view.to_owned()).increment(keys);
}

/// The end of a view's last recorded materialization interval, in Unix seconds.
pub fn materialized_until(view: &str, unix_seconds: f64) {
    gauge!(names::MATERIALIZED_UNTIL, "view" => view.to_owned()).set(unix_seconds);
}

/// How old a view's data is: the newest event found in its keys and its last materialization
/// (each if known); staleness is the smaller of the two.
pub fn view_freshness(view: &str, newest_event_age: Option<f64>, materialized_age: Option<f64>) {
    if let Some(age) = newest_event_age {
        gauge!(names::VIEW_NEWEST_EVENT_AGE, "view" => view.to_owned()).set(age);
    }
    if let Some(age) = materialized_age {
        gauge!(names::VIEW_MATERIALIZED_AGE, "view" => view.to_owned()).set(age);
    }
    let staleness = match (newest_event_age, materialized_age) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    if let Some(s) = staleness {
        gauge!(names::VIEW_STALENESS, "view" => view.to_owned()).set(s);
    }
}

/// The age of the served registry copy.
pub fn registry_age(age: Duration) {
    gauge!(names::REGISTRY_AGE).set(age.as_secs_f64());
}

/// A registry refresh failed.
pub fn registry_refresh_error() {
    counter!(names::REGISTRY_REFRESH_ERRORS).increment(1);
}
