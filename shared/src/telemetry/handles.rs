//! Metric handles registered once per thread and reused, for the per-request calls.
//!
//! `counter!` and `histogram!` ask the recorder for a handle on every call: building the key
//! (name and labels), hashing it and looking it up in the recorder's map. On the serving path
//! that is five lookups per request, about 3% of `larder serve`'s CPU at 8 connections
//! (BENCHMARKS.md, "Metrics"). A handle stays valid for the recorder's lifetime, so each thread
//! keeps the ones it has used, keyed by the label values (a `&'static str` route, an HTTP status,
//! a view name), and a request costs one small map lookup per metric instead.
//!
//! Thread-local rather than shared: no lock on the serving path, and a worker thread only ever
//! meets the few routes, statuses and views of its own requests. The handles are those of the
//! recorder installed when a thread first records, so binaries install theirs before serving
//! (they do: `larder serve` and the three functions install at start-up). Both recorders keep
//! every series they hand out for their lifetime (the Prometheus one has no idle timeout set;
//! the EMF one resets counters at each flush but keeps them), so a cached handle never goes
//! stale.

use std::cell::RefCell;
use std::collections::HashMap;

use metrics::{Counter, Histogram, counter, histogram};

use super::names;

/// The statuses of `larder_feature_answers_total`, in `retrieval::Status` order.
const STATUSES: [&str; 4] = ["PRESENT", "NULL_VALUE", "NOT_FOUND", "OUTSIDE_MAX_AGE"];

#[derive(Default)]
struct Handles {
    requests: HashMap<(&'static str, u16), Counter>,
    request_seconds: HashMap<&'static str, Histogram>,
    redis_seconds: HashMap<&'static str, Histogram>,
    entity_rows: Option<Histogram>,
    /// Per view, one counter per status, registered when that status first occurs (a status
    /// never answered stays out of the exposition, as it would without the cache).
    answers: HashMap<Box<str>, [Option<Counter>; 4]>,
    push_lag: HashMap<Box<str>, Histogram>,
    /// Per trigger: records, rows, written, not newer.
    push: HashMap<&'static str, [Counter; 4]>,
}

thread_local! {
    static HANDLES: RefCell<Handles> = RefCell::new(Handles::default());
}

fn with<R>(f: impl FnOnce(&mut Handles) -> R) -> R {
    HANDLES.with(|h| f(&mut h.borrow_mut()))
}

pub(super) fn request(route: &'static str, status: u16, seconds: f64) {
    with(|h| {
        h.requests
            .entry((route, status))
            .or_insert_with(|| counter!(names::REQUESTS, "route" => route, "status" => status.to_string()))
            .increment(1);
        h.request_seconds
            .entry(route)
            .or_insert_with(|| histogram!(names::REQUEST_SECONDS, "route" => route))
            .record(seconds);
    });
}

pub(super) fn redis(operation: &'static str, seconds: f64) {
    with(|h| {
        h.redis_seconds
            .entry(operation)
            .or_insert_with(|| histogram!(names::REDIS_SECONDS, "operation" => operation))
            .record(seconds)
    });
}

pub(super) fn entity_rows(rows: f64) {
    with(|h| h.entity_rows.get_or_insert_with(|| histogram!(names::ENTITY_ROWS)).record(rows));
}

pub(super) fn feature_answers(view: &str, counts: [u64; 4]) {
    with(|h| {
        // Look up by `&str` first: the view's name is copied once per thread, not per request.
        if !h.answers.contains_key(view) {
            h.answers.insert(view.into(), Default::default());
        }
        let slots = h.answers.get_mut(view).expect("inserted above");
        for ((slot, status), n) in slots.iter_mut().zip(STATUSES).zip(counts) {
            if n > 0 {
                slot.get_or_insert_with(
                    || counter!(names::FEATURE_ANSWERS, "view" => view.to_owned(), "status" => status),
                )
                .increment(n);
            }
        }
    });
}

pub(super) fn push_lag(view: &str, seconds: f64) {
    with(|h| {
        if let Some(lag) = h.push_lag.get(view) {
            lag.record(seconds);
        } else {
            let lag = histogram!(names::PUSH_LAG_SECONDS, "view" => view.to_owned());
            lag.record(seconds);
            h.push_lag.insert(view.into(), lag);
        }
    });
}

pub(super) fn push(trigger: &'static str, counts: [u64; 4]) {
    with(|h| {
        let counters = h.push.entry(trigger).or_insert_with(|| {
            [names::PUSH_RECORDS, names::PUSH_ROWS, names::PUSH_ROWS_WRITTEN, names::PUSH_ROWS_NOT_NEWER]
                .map(|name| counter!(name, "trigger" => trigger))
        });
        for (c, n) in counters.iter().zip(counts) {
            c.increment(n);
        }
    });
}

#[cfg(test)]
mod tests {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    use super::*;

    /// Cached handles count exactly as fresh ones do: the same series, the same totals, and a
    /// status that never occurred stays absent.
    #[test]
    fn cached_handles_record_into_the_recorder_they_came_from() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        // A fresh thread: its cache starts empty, so its handles come from this recorder.
        std::thread::scope(|s| {
            s.spawn(|| {
                metrics::with_local_recorder(&recorder, || {
                    for _ in 0..3 {
                        request("/get-online-features", 200, 0.001);
                        feature_answers("driver_hourly_stats", [2, 0, 1, 0]);
                    }
                    request("/get-online-features", 400, 0.001);
                    push_lag("driver_hourly_stats", 1.5);
                    push_lag("driver_hourly_stats", 2.5);
                })
            });
        });
        let snapshot = snapshotter.snapshot().into_vec();
        // What a series holds, as text: "counter 3", "values [1.5, 2.5]".
        let find = |name: &str, labels: &[(&str, &str)]| -> Option<String> {
            snapshot.iter().find_map(|(key, _, _, value)| {
                let k = key.key();
                let matches = k.name() == name
                    && k.labels().count() == labels.len()
                    && labels.iter().all(|(n, v)| k.labels().any(|l| l.key() == *n && l.value() == *v));
                matches.then(|| match value {
                    DebugValue::Counter(n) => format!("counter {n}"),
                    DebugValue::Histogram(v) => {
                        format!("values {:?}", v.iter().map(|x| x.into_inner()).collect::<Vec<_>>())
                    }
                    DebugValue::Gauge(g) => format!("gauge {}", g.into_inner()),
                })
            })
        };
        let route = ("route", "/get-online-features");
        assert_eq!(find(names::REQUESTS, &[route, ("status", "200")]), Some("counter 3".into()));
        assert_eq!(find(names::REQUESTS, &[route, ("status", "400")]), Some("counter 1".into()));
        let view = ("view", "driver_hourly_stats");
        assert_eq!(find(names::FEATURE_ANSWERS, &[view, ("status", "PRESENT")]), Some("counter 6".into()));
        assert_eq!(find(names::FEATURE_ANSWERS, &[view, ("status", "NOT_FOUND")]), Some("counter 3".into()));
        assert_eq!(find(names::FEATURE_ANSWERS, &[view, ("status", "NULL_VALUE")]), None);
        assert_eq!(find(names::PUSH_LAG_SECONDS, &[view]), Some("values [1.5, 2.5]".into()));
        assert_eq!(find(names::REQUEST_SECONDS, &[route]), Some("values [0.001, 0.001, 0.001, 0.001]".into()));
    }
}
