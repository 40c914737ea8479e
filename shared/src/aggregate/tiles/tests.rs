use std::time::Duration;

use super::*;
use crate::aggregate::Function;
use crate::registry::aggregation::Aggregation;

const S: i64 = 1_000_000;

/// A view of `reading` with a sum over 60 s tumbling windows and a max over a 60 s window
/// sliding by 20 s: two series of one column. Lateness 30 s.
fn windows() -> ViewWindows {
    let yaml = "entities: {sensor: {join_key: sensor_id, type: Int64}}\n\
                sources: {s: {type: file, path: x.parquet, timestamp_field: ts}}\n\
                feature_views: {v: {entities: [sensor], source: s, features: {reading: Float64}, \
                tags: {'larder:allowed_lateness': '30'}}}\n";
    let reg = crate::registry::yaml::parse(yaml, "features.yaml", "p", 3).unwrap();
    let mut view = (*reg.feature_views["v"]).clone();
    let agg = |function: &str, slide: Option<u64>| Aggregation {
        column: "reading".into(),
        function: function.into(),
        window: Duration::from_secs(60),
        slide: slide.map(Duration::from_secs),
        name: String::new(),
    };
    view.aggregations = vec![agg("sum", None), agg("max", Some(20))];
    ViewWindows::of(&view).unwrap()
}

fn event(key: &str, t: i64, x: Option<f64>, lane: Option<(&str, u64)>, record: usize) -> Event {
    Event {
        key: key.as_bytes().to_vec(),
        time_us: t,
        values: vec![x],
        origin: lane.map(|(l, seq)| (Arc::from(l), crate::aggregate::position(&seq.to_string(), 0).unwrap())),
        record,
        row: 0,
    }
}

#[test]
fn the_view_has_two_series_of_one_column() {
    let w = windows();
    assert_eq!(w.columns, ["reading"]);
    assert_eq!(w.series.iter().map(|s| s.hop_us).collect::<Vec<_>>(), [60 * S, 20 * S]);
    assert_eq!(w.lateness_us, 30 * S, "the tag sets it");
    assert_eq!(w.keep_us, 120 * S);
    assert_eq!(w.aggregations[1].as_ref().unwrap().plan.function, Function::Max);
}

#[test]
fn runs_follow_entity_lane_and_tile() {
    let w = windows();
    let evs = [
        event("a", 0, Some(1.0), Some(("s1", 1)), 0),
        event("b", 1, Some(5.0), Some(("s1", 2)), 1),
        event("a", 5 * S, Some(2.0), Some(("s1", 3)), 2),
        // A new 20 s tile: a new run.
        event("a", 25 * S, None, Some(("s1", 4)), 3),
        event("a", 26 * S, Some(4.0), Some(("s1", 5)), 4),
    ];
    let refs: Vec<&Event> = evs.iter().collect();
    let writes = build("v", &w, &refs, false);
    assert_eq!(writes.len(), 2, "one tile key per entity");
    assert_eq!(writes[0].key, crate::aggregate::tile_key("v", b"a"));
    let runs = &writes[0].runs;
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0].records, [0, 2]);
    assert_eq!((runs[0].min_us, runs[0].max_us), (0, 5 * S));
    assert_eq!(runs[0].first, crate::aggregate::position("1", 0).unwrap());
    assert_eq!(runs[0].last, crate::aggregate::position("3", 0).unwrap());
    let fields: Vec<&[u8]> = runs[0].tiles.iter().map(|(f, _)| f.as_slice()).collect();
    assert_eq!(fields, [&b"reading|60000000|0"[..], b"reading|20000000|0"]);
    assert_eq!(runs[0].tiles[0].1.sum, 3.0);
    // The null counts nowhere, but its record is the run's.
    assert_eq!(runs[1].records, [3, 4]);
    assert_eq!(runs[1].tiles[1].1.n, 1.0);
    assert_eq!(runs[1].tiles[1].0, b"reading|20000000|1");

    let single = build("v", &w, &refs, true);
    assert_eq!(single[0].runs.len(), 4);
    assert!(single[0].runs[2].tiles.is_empty(), "an event of nulls touches no tile");
}

#[test]
fn an_event_late_within_the_batch_stands_alone() {
    let w = windows();
    let evs = [
        event("a", 100 * S, Some(1.0), None, 0),
        event("a", 65 * S, Some(2.0), None, 1),
        event("a", 101 * S, Some(3.0), None, 2),
    ];
    let refs: Vec<&Event> = evs.iter().collect();
    let runs = &build("v", &w, &refs, false)[0].runs;
    assert_eq!(runs.iter().map(|r| r.records.clone()).collect::<Vec<_>>(), [vec![0], vec![1], vec![2]]);
    let mut hash = HashMap::new();
    let (outcome, _) = apply(&mut hash, &build("v", &w, &refs, false)[0], 0);
    assert_eq!(outcome, KeyOutcome::Done(vec![RunStatus::Applied, RunStatus::Late, RunStatus::Applied]));
}

fn sum_of(hash: &HashMap<Vec<u8>, Bytes>, field: &[u8]) -> f64 {
    TileState::decode(&hash[field]).unwrap().sum
}

#[test]
fn a_redelivered_batch_counts_once() {
    let w = windows();
    let evs: Vec<Event> =
        (0..6).map(|i| event("a", i * 10 * S, Some(1.0), Some(("s1", 10 + i as u64)), i as usize)).collect();
    let refs: Vec<&Event> = evs.iter().collect();
    let mut hash = HashMap::new();
    let first = build("v", &w, &refs, false);
    let (outcome, expire) = apply(&mut hash, &first[0], 0);
    assert!(matches!(outcome, KeyOutcome::Done(s) if s.iter().all(|s| *s == RunStatus::Applied)));
    assert_eq!(expire, Some((50 * S + 120 * S) / 1000 + 1));
    // Kept past now when now is later than the newest event.
    let mut again = HashMap::new();
    assert_eq!(apply(&mut again, &first[0], 1000 * S).1, Some((1000 * S + 120 * S) / 1000 + 1));
    assert_eq!(sum_of(&hash, b"reading|60000000|0"), 6.0);
    // The same batch again: every run a duplicate, nothing changes.
    let before = hash.clone();
    let (outcome, expire) = apply(&mut hash, &first[0], 0);
    assert!(matches!(outcome, KeyOutcome::Done(s) if s.iter().all(|s| *s == RunStatus::Duplicate)));
    assert_eq!((hash, expire), (before.clone(), None));
    // A bisected half is a duplicate too.
    let mut hash = before.clone();
    let half = build("v", &w, &refs[..3], false);
    assert!(
        matches!(apply(&mut hash, &half[0], 0).0, KeyOutcome::Done(s) if s.iter().all(|s| *s == RunStatus::Duplicate))
    );
    assert_eq!(hash, before);
}

#[test]
fn a_delivery_that_overlaps_partway_into_a_run_is_redone_one_event_at_a_time() {
    let w = windows();
    let evs: Vec<Event> = (0..4).map(|i| event("a", i * S, Some(1.0), Some(("s1", i as u64)), i as usize)).collect();
    let refs: Vec<&Event> = evs.iter().collect();
    let mut hash = HashMap::new();
    apply(&mut hash, &build("v", &w, &refs[..2], false)[0], 0);
    // Records 0..4 in one run, two of them already applied.
    let all = build("v", &w, &refs, false);
    assert_eq!(all[0].runs.len(), 1);
    let before = hash.clone();
    assert_eq!(apply(&mut hash, &all[0], 0), (KeyOutcome::Redo, None));
    assert_eq!(hash, before, "a redo applies nothing");
    let (outcome, _) = apply(&mut hash, &build("v", &w, &refs, true)[0], 0);
    assert_eq!(
        outcome,
        KeyOutcome::Done(vec![RunStatus::Duplicate, RunStatus::Duplicate, RunStatus::Applied, RunStatus::Applied])
    );
    assert_eq!(sum_of(&hash, b"reading|60000000|0"), 4.0, "each event once");
}

#[test]
fn lateness_is_measured_from_the_newest_event_applied() {
    let w = windows();
    let mut hash = HashMap::new();
    let newest = event("a", 200 * S, Some(1.0), None, 0);
    apply(&mut hash, &build("v", &w, &[&newest], false)[0], 0);
    let within = event("a", 170 * S, Some(2.0), None, 1);
    let late = event("a", 170 * S - 1, Some(4.0), None, 2);
    let (outcome, _) = apply(&mut hash, &build("v", &w, &[&within], false)[0], 0);
    assert_eq!(outcome, KeyOutcome::Done(vec![RunStatus::Applied]), "exactly the lateness behind is in time");
    let (outcome, expire) = apply(&mut hash, &build("v", &w, &[&late], false)[0], 0);
    assert_eq!((outcome, expire), (KeyOutcome::Done(vec![RunStatus::Late]), None));
    assert_eq!(sum_of(&hash, b"reading|60000000|2"), 2.0);
    // A run partly late (both events fall in one run when sent together) is redone.
    let a = event("a", 175 * S, Some(1.0), None, 3);
    let b = event("a", 169 * S, Some(1.0), None, 4);
    let writes = build("v", &w, &[&a, &b], false);
    assert_eq!(writes[0].runs.len(), 1);
    assert_eq!(apply(&mut hash, &writes[0], 0).0, KeyOutcome::Redo);
}

#[test]
fn old_tiles_are_pruned_once_the_key_holds_too_many() {
    let w = windows();
    let mut hash = HashMap::new();
    // One event a minute for an hour: far more tiles than kept.
    for m in 0..60 {
        let e = event("a", m * 60 * S, Some(1.0), None, 0);
        apply(&mut hash, &build("v", &w, &[&e], false)[0], 0);
        assert!(hash.len() <= w.field_cap + 2, "minute {m}: {} fields", hash.len());
    }
    assert!(!hash.contains_key(&b"reading|60000000|0"[..]), "the first hour's tiles went");
    assert!(!hash.contains_key(&b"reading|20000000|0"[..]));
    assert!(hash.contains_key(&b"reading|60000000|59"[..]));
    assert_eq!(tile_end(b"\0max"), None);
    assert_eq!(tile_end(b"x|10|-2"), Some(-10));
}
