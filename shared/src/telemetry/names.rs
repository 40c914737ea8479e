//! Every metric Larder emits, in one list: the code records them through the constants below,
//! the exporters describe them from [`ALL`], and the dashboards (infra/template.yaml,
//! infra/grafana/larder.json) are checked against it by a test.
//!
//! Names follow Prometheus' conventions (unit suffix, `_total` on counters) and are the same in
//! CloudWatch, where each label is a dimension. Labels are bounded: routes, views, statuses,
//! triggers, reasons (error codes), operations; never an entity key.

/// What kind of metric a name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// The unit CloudWatch is told (EMF `Unit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Seconds,
    Bytes,
}

/// One metric: its name, kind, unit, labels and what it means.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    pub name: &'static str,
    pub kind: Kind,
    pub unit: Unit,
    pub labels: &'static [&'static str],
    pub help: &'static str,
}

// Serving (every HTTP route, in the functions and `larder serve`).
pub const REQUESTS: &str = "larder_requests_total";
pub const REQUEST_SECONDS: &str = "larder_request_duration_seconds";
pub const REDIS_SECONDS: &str = "larder_redis_duration_seconds";
pub const ENTITY_ROWS: &str = "larder_request_entity_rows";
pub const FEATURE_ANSWERS: &str = "larder_feature_answers_total";

// Push (HTTP, Kinesis, Kafka).
pub const PUSH_RECORDS: &str = "larder_push_records_total";
pub const PUSH_ROWS: &str = "larder_push_rows_total";
pub const PUSH_ROWS_WRITTEN: &str = "larder_push_rows_written_total";
pub const PUSH_ROWS_NOT_NEWER: &str = "larder_push_rows_not_newer_total";
pub const PUSH_DEAD_LETTERS: &str = "larder_push_dead_letters_total";
pub const PUSH_LAG_SECONDS: &str = "larder_push_lag_seconds";
pub const STREAM_BATCH_AGE_SECONDS: &str = "larder_stream_batch_age_seconds";

// Materialization.
pub const MATERIALIZE_RUNS: &str = "larder_materialize_runs_total";
pub const MATERIALIZE_SECONDS: &str = "larder_materialize_duration_seconds";
pub const MATERIALIZE_ROWS_READ: &str = "larder_materialize_rows_read_total";
pub const MATERIALIZE_ROW_GROUPS_SKIPPED: &str = "larder_materialize_row_groups_skipped_total";
pub const MATERIALIZE_BYTES_READ: &str = "larder_materialize_bytes_read_total";
pub const MATERIALIZE_KEYS_WRITTEN: &str = "larder_materialize_keys_written_total";
pub const MATERIALIZED_UNTIL: &str = "larder_materialized_until_timestamp_seconds";

// Freshness (the materialize function after each scheduled run; `larder freshness`).
pub const VIEW_NEWEST_EVENT_AGE: &str = "larder_view_newest_event_age_seconds";
pub const VIEW_MATERIALIZED_AGE: &str = "larder_view_materialized_age_seconds";
pub const VIEW_STALENESS: &str = "larder_view_staleness_seconds";

// Registry.
pub const REGISTRY_AGE: &str = "larder_registry_age_seconds";
pub const REGISTRY_REFRESH_ERRORS: &str = "larder_registry_refresh_errors_total";

const fn m(name: &'static str, kind: Kind, unit: Unit, labels: &'static [&'static str], help: &'static str) -> Metric {
    Metric { name, kind, unit, labels, help }
}

use Kind::{Counter, Gauge, Histogram};
use Unit::{Bytes, Count, Seconds};

pub const ALL: &[Metric] = &[
    m(REQUESTS, Counter, Count, &["route", "status"], "HTTP requests answered, by route and status code"),
    m(REQUEST_SECONDS, Histogram, Seconds, &["route"], "time to answer a request, end to end"),
    m(
        REDIS_SECONDS,
        Histogram,
        Seconds,
        &["operation"],
        "one online-store round trip (read: a lookup; write: a push's writes)",
    ),
    m(ENTITY_ROWS, Histogram, Count, &[], "entity rows per get-online-features request"),
    m(
        FEATURE_ANSWERS,
        Counter,
        Count,
        &["view", "status"],
        "feature values answered, by view and status (PRESENT, NOT_FOUND, OUTSIDE_MAX_AGE, NULL_VALUE)",
    ),
    m(PUSH_RECORDS, Counter, Count, &["trigger"], "records or requests received by push (http, kinesis, kafka)"),
    m(PUSH_ROWS, Counter, Count, &["trigger"], "rows converted for writing, over every view a push feeds"),
    m(PUSH_ROWS_WRITTEN, Counter, Count, &["trigger"], "rows the online store took"),
    m(
        PUSH_ROWS_NOT_NEWER,
        Counter,
        Count,
        &["trigger"],
        "rows not written because the store (or an earlier row) held a newer or equal event",
    ),
    m(
        PUSH_DEAD_LETTERS,
        Counter,
        Count,
        &["reason"],
        "stream records sent to the dead-letter destination, by error code",
    ),
    m(
        PUSH_LAG_SECONDS,
        Histogram,
        Seconds,
        &["view"],
        "write time minus event time of the newest row of each write (how far behind pushes are)",
    ),
    m(
        STREAM_BATCH_AGE_SECONDS,
        Histogram,
        Seconds,
        &["trigger"],
        "age of a stream batch's oldest record at processing (Kinesis approximateArrivalTimestamp)",
    ),
    m(
        MATERIALIZE_RUNS,
        Counter,
        Count,
        &["outcome"],
        "materialization runs, by outcome (recorded, incomplete, failed)",
    ),
    m(MATERIALIZE_SECONDS, Histogram, Seconds, &[], "duration of a materialization run or work item"),
    m(MATERIALIZE_ROWS_READ, Counter, Count, &[], "parquet rows read by materialization"),
    m(
        MATERIALIZE_ROW_GROUPS_SKIPPED,
        Counter,
        Count,
        &[],
        "parquet row groups never fetched (statistics outside every window)",
    ),
    m(MATERIALIZE_BYTES_READ, Counter, Bytes, &[], "parquet bytes fetched (S3 ranged reads, or local reads)"),
    m(MATERIALIZE_KEYS_WRITTEN, Counter, Count, &["view"], "entity keys written by materialization, by view"),
    m(
        MATERIALIZED_UNTIL,
        Gauge,
        Seconds,
        &["view"],
        "end of the view's last recorded materialization interval (Unix seconds)",
    ),
    m(
        VIEW_NEWEST_EVENT_AGE,
        Gauge,
        Seconds,
        &["view"],
        "age of the newest event time found in a sample of the view's keys",
    ),
    m(
        VIEW_MATERIALIZED_AGE,
        Gauge,
        Seconds,
        &["view"],
        "age of the end of the view's last recorded materialization interval",
    ),
    m(
        VIEW_STALENESS,
        Gauge,
        Seconds,
        &["view"],
        "the smaller of the two ages above: how old the freshest data of a view is",
    ),
    m(REGISTRY_AGE, Gauge, Seconds, &[], "time since the served registry copy was last checked against its store"),
    m(REGISTRY_REFRESH_ERRORS, Counter, Count, &[], "registry refreshes that failed (the last good copy is kept)"),
];

/// The metric named `name`.
pub fn find(name: &str) -> Option<&'static Metric> {
    ALL.iter().find(|m| m.name == name)
}
