use std::time::Duration;

use super::*;
use crate::aggregate::Function;
use crate::registry::aggregation::Aggregation;

const S: i64 = 1_000_000;

fn done(runs: Vec<RunStatus>) -> KeyOutcome {
    KeyOutcome::Done { runs, row_written: false }
}

/// [`apply`] to tiles only: the outcome and the tile key's expiry.
fn ap(hash: &mut HashMap<Vec<u8>, Bytes>, write: &KeyWrite, now_us: i64) -> (KeyOutcome, Option<i64>) {
    let a = apply(hash, None, write, now_us);
    assert!(!a.feast_written);
    (a.outcome, a.expire_at_ms)
}

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
        ids: Vec::new(),
        origin: lane.map(|(l, seq)| (Arc::from(l), crate::aggregate::position(&seq.to_string(), 0).unwrap())),
        record,
        row: 0,
        plain: Vec::new(),
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
    assert_eq!(moments(&runs[0].tiles[0].1).sum, 3.0);
    // The null counts nowhere, but its record is the run's.
    assert_eq!(runs[1].records, [3, 4]);
    assert_eq!(moments(&runs[1].tiles[1].1).n, 1.0);
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
    let (outcome, _) = ap(&mut hash, &build("v", &w, &refs, false)[0], 0);
    assert_eq!(outcome, done(vec![RunStatus::Applied, RunStatus::Late, RunStatus::Applied]));
}

fn moments(p: &Partial) -> crate::aggregate::TileState {
    match p {
        Partial::Moments(m) => *m,
        other => panic!("not moments: {other:?}"),
    }
}

fn sum_of(hash: &HashMap<Vec<u8>, Bytes>, field: &[u8]) -> f64 {
    crate::aggregate::TileState::decode(&hash[field]).unwrap().sum
}

#[test]
fn a_redelivered_batch_counts_once() {
    let w = windows();
    let evs: Vec<Event> =
        (0..6).map(|i| event("a", i * 10 * S, Some(1.0), Some(("s1", 10 + i as u64)), i as usize)).collect();
    let refs: Vec<&Event> = evs.iter().collect();
    let mut hash = HashMap::new();
    let first = build("v", &w, &refs, false);
    let (outcome, expire) = ap(&mut hash, &first[0], 0);
    assert!(matches!(outcome, KeyOutcome::Done { runs: s, .. } if s.iter().all(|s| *s == RunStatus::Applied)));
    assert_eq!(expire, Some((50 * S + 120 * S) / 1000 + 1));
    // Kept past now when now is later than the newest event.
    let mut again = HashMap::new();
    assert_eq!(ap(&mut again, &first[0], 1000 * S).1, Some((1000 * S + 120 * S) / 1000 + 1));
    assert_eq!(sum_of(&hash, b"reading|60000000|0"), 6.0);
    // The same batch again: every run a duplicate, nothing changes.
    let before = hash.clone();
    let (outcome, expire) = ap(&mut hash, &first[0], 0);
    assert!(matches!(outcome, KeyOutcome::Done { runs: s, .. } if s.iter().all(|s| *s == RunStatus::Duplicate)));
    assert_eq!((hash, expire), (before.clone(), None));
    // A bisected half is a duplicate too.
    let mut hash = before.clone();
    let half = build("v", &w, &refs[..3], false);
    assert!(
        matches!(ap(&mut hash, &half[0], 0).0, KeyOutcome::Done { runs: s, .. } if s.iter().all(|s| *s == RunStatus::Duplicate))
    );
    assert_eq!(hash, before);
}

#[test]
fn a_delivery_that_overlaps_partway_into_a_run_is_redone_one_event_at_a_time() {
    let w = windows();
    let evs: Vec<Event> = (0..4).map(|i| event("a", i * S, Some(1.0), Some(("s1", i as u64)), i as usize)).collect();
    let refs: Vec<&Event> = evs.iter().collect();
    let mut hash = HashMap::new();
    ap(&mut hash, &build("v", &w, &refs[..2], false)[0], 0);
    // Records 0..4 in one run, two of them already applied.
    let all = build("v", &w, &refs, false);
    assert_eq!(all[0].runs.len(), 1);
    let before = hash.clone();
    assert_eq!(ap(&mut hash, &all[0], 0), (KeyOutcome::Redo, None));
    assert_eq!(hash, before, "a redo applies nothing");
    let (outcome, _) = ap(&mut hash, &build("v", &w, &refs, true)[0], 0);
    assert_eq!(outcome, done(vec![RunStatus::Duplicate, RunStatus::Duplicate, RunStatus::Applied, RunStatus::Applied]));
    assert_eq!(sum_of(&hash, b"reading|60000000|0"), 4.0, "each event once");
}

#[test]
fn lateness_is_measured_from_the_newest_event_applied() {
    let w = windows();
    let mut hash = HashMap::new();
    let newest = event("a", 200 * S, Some(1.0), None, 0);
    ap(&mut hash, &build("v", &w, &[&newest], false)[0], 0);
    let within = event("a", 170 * S, Some(2.0), None, 1);
    let late = event("a", 170 * S - 1, Some(4.0), None, 2);
    let (outcome, _) = ap(&mut hash, &build("v", &w, &[&within], false)[0], 0);
    assert_eq!(outcome, done(vec![RunStatus::Applied]), "exactly the lateness behind is in time");
    let (outcome, expire) = ap(&mut hash, &build("v", &w, &[&late], false)[0], 0);
    assert_eq!((outcome, expire), (done(vec![RunStatus::Late]), None));
    assert_eq!(sum_of(&hash, b"reading|60000000|2"), 2.0);
    // A run partly late (both events fall in one run when sent together) is redone.
    let a = event("a", 175 * S, Some(1.0), None, 3);
    let b = event("a", 169 * S, Some(1.0), None, 4);
    let writes = build("v", &w, &[&a, &b], false);
    assert_eq!(writes[0].runs.len(), 1);
    assert_eq!(ap(&mut hash, &writes[0], 0).0, KeyOutcome::Redo);
}

#[test]
fn old_tiles_are_pruned_once_the_key_holds_too_many() {
    let w = windows();
    let mut hash = HashMap::new();
    // One event a minute for an hour: far more tiles than kept.
    for m in 0..60 {
        let e = event("a", m * 60 * S, Some(1.0), None, 0);
        ap(&mut hash, &build("v", &w, &[&e], false)[0], 0);
        assert!(hash.len() <= w.field_cap + 2, "minute {m}: {} fields", hash.len());
    }
    assert!(!hash.contains_key(&b"reading|60000000|0"[..]), "the first hour's tiles went");
    assert!(!hash.contains_key(&b"reading|20000000|0"[..]));
    assert!(hash.contains_key(&b"reading|60000000|59"[..]));
    assert_eq!(tile_end(b"\0max"), None);
    assert_eq!(tile_end(b"x|10|-2"), Some((10, -10)));
}

#[test]
fn each_hop_keeps_its_tiles_for_twice_its_longest_window() {
    let mut view = {
        let yaml = "entities: {sensor: {join_key: sensor_id, type: Int64}}\n\
                    sources: {s: {type: file, path: x.parquet, timestamp_field: ts}}\n\
                    feature_views: {v: {entities: [sensor], source: s, features: {reading: Float64}}}\n";
        (*crate::registry::yaml::parse(yaml, "features.yaml", "p", 3).unwrap().feature_views["v"]).clone()
    };
    let agg = |function: &str, window: u64, slide: Option<u64>| Aggregation {
        column: "reading".into(),
        function: function.into(),
        window: Duration::from_secs(window),
        slide: slide.map(Duration::from_secs),
        name: String::new(),
    };
    // One-minute tiles for a minute's sum and count; five-minute tiles for an hour's max.
    view.aggregations = vec![agg("sum", 60, None), agg("count_distinct", 60, None), agg("max", 3600, Some(300))];
    let w = ViewWindows::of(&view).unwrap();
    assert_eq!(&w.hop_keep[..], [(60 * S, 120 * S), (300 * S, 7200 * S)]);
    assert_eq!(w.keep_us, 7200 * S, "the key lives as long as its longest window needs");
    // 8 + (2 + 2) + (2 + 2) + (24 + 2): far fewer than two hours of one-minute tiles.
    assert_eq!(w.field_cap, 42);
    let mut hash = HashMap::new();
    for m in 0..120 {
        let mut e = event("a", m * 60 * S, Some(1.0), None, 0);
        e.ids = vec![Some(7)];
        ap(&mut hash, &build("v", &w, &[&e], false)[0], 0);
        assert!(hash.len() <= w.field_cap + 3, "minute {m}: {} fields", hash.len());
    }
    // Newest event at 119 min: one-minute tiles ending more than 2 min before it went, every
    // five-minute tile of the two hours stayed.
    assert!(!hash.contains_key(&b"reading|60000000|100"[..]));
    assert!(!hash.contains_key(&b"reading|d|60000000|100"[..]));
    assert!(hash.contains_key(&b"reading|60000000|119"[..]));
    assert!(hash.contains_key(&b"reading|300000000|0"[..]), "the first five minutes are still in the hours kept");
}

/// The test view with both outputs declared (the sum as Int64), and its layout.
fn feast_view() -> (FeatureView, ViewWindows, FeastTarget) {
    let yaml = "entities: {sensor: {join_key: sensor_id, type: Int64}}\n\
                sources: {f: {type: file, path: x.parquet, timestamp_field: ts}, s: {type: push, batch_source: f}}\n\
                stream_feature_views: {v: {entities: [sensor], source: s, features: {reading: Float64, \
                sum_reading_60s: Int64}, tags: {'larder:allowed_lateness': '30'}, aggregations: [\
                {column: reading, function: sum, time_window: 1m}, \
                {column: reading, function: max, time_window: 1m, slide_interval: 20s}]}}\n";
    let reg = crate::registry::yaml::parse(yaml, "features.yaml", "p", 3).unwrap();
    let view = (*reg.feature_views["v"]).clone();
    let w = ViewWindows::of(&view).unwrap();
    let target = FeastTarget { layout: Arc::new(FeastLayout::of(&view, &w)), ttl_seconds: None };
    (view, w, target)
}

fn with_row(mut e: Event, x: f64) -> Event {
    e.plain = vec![crate::value::encode(&crate::aggregate::read::typed(x, ValueType::Double))];
    e
}

#[test]
fn outputs_are_declared_and_laid_out_for_feast() {
    let (view, _, target) = feast_view();
    let names: Vec<(&str, ValueType)> = view.outputs.iter().map(|f| (f.name.as_str(), f.dtype)).collect();
    assert_eq!(names, [("sum_reading_60s", ValueType::Int64), ("max_reading_60s", ValueType::Double)]);
    assert_eq!(view.features.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(), ["reading"]);
    let l = &target.layout;
    assert_eq!(l.ts_field, b"_ts:v");
    assert_eq!(l.plain_fields, [crate::keys::feature_field("v", "reading")]);
    let o = &l.outputs;
    assert_eq!(o[0].field, crate::keys::feature_field("v", "sum_reading_60s"));
    assert_eq!((o[0].prefix.as_str(), o[0].hop_us, o[0].tiles, o[0].sliding), ("reading|60000000|", 60 * S, 1, false));
    assert_eq!((o[1].prefix.as_str(), o[1].hop_us, o[1].tiles, o[1].sliding), ("reading|20000000|", 20 * S, 3, true));
    assert_eq!((o[0].function, o[1].function), (Function::Sum, Function::Max));
    assert_eq!((o[0].dtype, o[1].dtype), (ValueType::Int64, ValueType::Double));
    // The final windows as of an event at 130 s: the minute [120, 180) s; the tiles of 20 s
    // ending with [120, 140) s.
    assert_eq!(final_window(&o[0], 130 * S), (2, 2, 180 * S));
    assert_eq!(final_window(&o[1], 130 * S), (4, 6, 140 * S));
    assert_eq!(final_window(&o[1], -1), (-3, -1, 0), "before the epoch too");
}

#[test]
fn the_entity_hash_gets_the_newest_row_and_the_final_values() {
    let (_, w, target) = feast_view();
    let l = &target.layout;
    let value = |h: &HashMap<Vec<u8>, Bytes>, f: &[u8; 4]| h.get(&f[..]).map(|b| crate::value::decode(b).unwrap());
    let ts = |h: &HashMap<Vec<u8>, Bytes>| EventTime::from_proto_bytes(&h[&l.ts_field]).unwrap().as_micros();
    let (mut tiles, mut feast) = (HashMap::new(), HashMap::new());
    // Two events in [120, 140) s, given newest first; a third without a row.
    let evs = [
        with_row(event("a", 130 * S, Some(2.6), None, 0), 2.6),
        with_row(event("a", 125 * S, Some(1.0), None, 1), 1.0),
    ];
    let refs: Vec<&Event> = evs.iter().collect();
    let writes = build_with("v", &w, &refs, false, Some(&target));
    let f = writes[0].feast.as_ref().unwrap();
    assert_eq!((f.key.as_slice(), f.plain.as_ref().unwrap().0), (&b"a"[..], 130 * S), "the newest event's row");
    let a = apply(&mut tiles, Some(&mut feast), &writes[0], 0);
    assert!(a.feast_written);
    assert_eq!(a.outcome, KeyOutcome::Done { runs: vec![RunStatus::Applied], row_written: true });
    assert_eq!(value(&feast, &l.plain_fields[0]), Some(crate::aggregate::read::typed(2.6, ValueType::Double)));
    // The sum (3.6) as Int64, rounded; the max over the sliding window.
    assert_eq!(value(&feast, &l.outputs[0].field), Some(crate::aggregate::read::typed(4.0, ValueType::Int64)));
    assert_eq!(value(&feast, &l.outputs[1].field), Some(crate::aggregate::read::typed(2.6, ValueType::Double)));
    assert_eq!(ts(&feast), 180 * S, "the latest window end");
    // An older row in the same window: the row stays, the values grow, `_ts` moves on by 1 us.
    let old = with_row(event("a", 121 * S, Some(10.0), None, 2), 10.0);
    let a = apply(&mut tiles, Some(&mut feast), &build_with("v", &w, &[&old], false, Some(&target))[0], 0);
    assert_eq!(a.outcome, KeyOutcome::Done { runs: vec![RunStatus::Applied], row_written: false });
    assert_eq!(value(&feast, &l.plain_fields[0]), Some(crate::aggregate::read::typed(2.6, ValueType::Double)));
    assert_eq!(value(&feast, &l.outputs[0].field), Some(crate::aggregate::read::typed(14.0, ValueType::Int64)));
    assert_eq!(value(&feast, &l.outputs[1].field), Some(crate::aggregate::read::typed(10.0, ValueType::Double)));
    assert_eq!(ts(&feast), 180 * S + 1);
    // A newer event with a null reading at 170 s: the row is written; the sliding window now
    // ends with the tile [160, 180) s and still holds the 10; both windows end at 180 s.
    let next = with_row(event("a", 170 * S, None, None, 3), f64::NAN);
    let a = apply(&mut tiles, Some(&mut feast), &build_with("v", &w, &[&next], false, Some(&target))[0], 0);
    assert_eq!(a.outcome, KeyOutcome::Done { runs: vec![RunStatus::Applied], row_written: true });
    assert_eq!(value(&feast, &l.outputs[1].field), Some(crate::aggregate::read::typed(10.0, ValueType::Double)));
    assert_eq!(ts(&feast), 180 * S + 2, "both windows end at 180 s");
    // At 185 s: a minute with no values yet (the sum's null is an empty value).
    let later = with_row(event("a", 185 * S, None, None, 4), 0.0);
    apply(&mut tiles, Some(&mut feast), &build_with("v", &w, &[&later], false, Some(&target))[0], 0);
    assert_eq!(feast[&l.outputs[0].field[..]], Bytes::new(), "an empty minute: null");
    assert_eq!(ts(&feast), 240 * S);
    // The same events again without positions: applied again (at least once), rows not newer.
    let before = feast.clone();
    let a = apply(&mut tiles, Some(&mut feast), &build_with("v", &w, &[&later], false, Some(&target))[0], 0);
    assert_eq!(a.outcome, KeyOutcome::Done { runs: vec![RunStatus::Applied], row_written: false });
    assert_eq!(ts(&feast), 240 * S + 1);
    assert_eq!(feast.len(), before.len());
}

#[test]
fn a_row_alone_or_a_late_event_writes_what_changed() {
    let (_, w, target) = feast_view();
    let l = &target.layout;
    let ts = |h: &HashMap<Vec<u8>, Bytes>| EventTime::from_proto_bytes(&h[&l.ts_field]).unwrap().as_micros();
    let (mut tiles, mut feast) = (HashMap::new(), HashMap::new());
    let first = with_row(event("a", 200 * S, Some(1.0), Some(("s1", 1)), 0), 1.0);
    apply(&mut tiles, Some(&mut feast), &build_with("v", &w, &[&first], false, Some(&target))[0], 0);
    // A late event (more than 30 s behind): not applied, its older row not written: nothing changes.
    let late = with_row(event("a", 100 * S, Some(5.0), Some(("s1", 2)), 1), 5.0);
    let (t0, f0) = (tiles.clone(), feast.clone());
    let a = apply(&mut tiles, Some(&mut feast), &build_with("v", &w, &[&late], false, Some(&target))[0], 0);
    assert_eq!(a.outcome, KeyOutcome::Done { runs: vec![RunStatus::Late], row_written: false });
    assert!(!a.feast_written);
    assert_eq!(feast, f0);
    assert_eq!(tiles.len(), t0.len(), "only the lane mark moved");
    // A redelivery: nothing written at all.
    let again = apply(&mut tiles, Some(&mut feast), &build_with("v", &w, &[&first], false, Some(&target))[0], 0);
    assert_eq!(again.outcome, KeyOutcome::Done { runs: vec![RunStatus::Duplicate], row_written: false });
    assert_eq!((again.expire_at_ms, again.feast_written), (None, false));
    // A view with no outputs declared writes rows only, timed by the row.
    let mut bare = (*target.layout).clone();
    bare.outputs.clear();
    let bare = FeastTarget { layout: Arc::new(bare), ttl_seconds: Some(60) };
    let (mut tiles, mut feast) = (HashMap::new(), HashMap::new());
    let e = with_row(event("a", 200 * S, Some(1.0), None, 0), 1.0);
    let write = &build_with("v", &w, &[&e], false, Some(&bare))[0];
    assert_eq!(write.feast.as_ref().unwrap().ttl_seconds, Some(60));
    apply(&mut tiles, Some(&mut feast), write, 0);
    assert_eq!(feast.len(), 2);
    assert_eq!(ts(&feast), 200 * S);
    // An event without a row and no outputs: the entity hash is not touched.
    let no_row = event("a", 210 * S, Some(1.0), None, 1);
    let a = apply(&mut tiles, Some(&mut feast), &build_with("v", &w, &[&no_row], false, Some(&bare))[0], 0);
    assert!(!a.feast_written);
    assert_eq!(ts(&feast), 200 * S);
}

#[test]
fn idempotency_keys_are_remembered_up_to_the_cap() {
    let mut w = windows();
    w.idem_cap = 2;
    let mut hash = HashMap::new();
    let keyed = |key: &str, t: i64| {
        let mut e = event("a", t, Some(1.0), None, 0);
        e.origin = Some((Arc::from(format!("{IDEM_PREFIX}{key}")), crate::aggregate::position("1", 0).unwrap()));
        e
    };
    let push = |hash: &mut HashMap<Vec<u8>, Bytes>, key: &str, t: i64| {
        let e = keyed(key, t);
        match ap(hash, &build("v", &w, &[&e], false)[0], 0).0 {
            KeyOutcome::Done { runs, .. } => runs[0],
            KeyOutcome::Redo => panic!("redo"),
        }
    };
    assert_eq!(push(&mut hash, "k1", 10 * S), RunStatus::Applied);
    assert_eq!(push(&mut hash, "k1", 10 * S), RunStatus::Duplicate, "a retry with the same key");
    assert_eq!(push(&mut hash, "k2", 11 * S), RunStatus::Applied);
    assert_eq!(&hash[IDEM_QUEUE_FIELD][..], b"idem:k1\nidem:k2");
    // A third key forgets the first: its retry counts again.
    assert_eq!(push(&mut hash, "k3", 12 * S), RunStatus::Applied);
    assert_eq!(&hash[IDEM_QUEUE_FIELD][..], b"idem:k2\nidem:k3");
    assert!(!hash.contains_key(&lane_field("idem:k1")));
    assert_eq!(push(&mut hash, "k2", 11 * S), RunStatus::Duplicate);
    assert_eq!(push(&mut hash, "k1", 10 * S), RunStatus::Applied);
    assert_eq!(sum_of(&hash, b"reading|60000000|0"), 4.0);
}

#[test]
fn count_distinct_keeps_a_series_of_its_own() {
    let yaml = "entities: {card: {join_key: card_id, type: Int64}}\n\
                sources: {s: {type: file, path: x.parquet, timestamp_field: ts}}\n\
                feature_views: {v: {entities: [card], source: s, features: {merchant: String, amount: Float64}}}\n";
    let reg = crate::registry::yaml::parse(yaml, "features.yaml", "p", 3).unwrap();
    let mut view = (*reg.feature_views["v"]).clone();
    let agg = |function: &str, column: &str| Aggregation {
        column: column.into(),
        function: function.into(),
        window: Duration::from_secs(60),
        slide: None,
        name: String::new(),
    };
    view.aggregations = vec![agg("count_distinct", "merchant"), agg("count_distinct", "amount"), agg("sum", "amount")];
    let w = ViewWindows::of(&view).unwrap();
    assert!(w.aggregations.iter().all(Result::is_ok), "{:?}", w.aggregations);
    assert_eq!(w.columns, ["merchant", "amount"]);
    assert_eq!((w.needs_number.clone(), w.needs_id.clone()), (vec![false, true], vec![true, true]));
    let prefixes: Vec<&str> = w.series.iter().map(|s| s.prefix()).collect();
    assert_eq!(prefixes, ["merchant|d|60000000|", "amount|d|60000000|", "amount|60000000|"]);
    assert_eq!(w.aggregations[0].as_ref().unwrap().dtype, crate::value::ValueType::Int64);
    // A sum over the string column is refused, naming it.
    view.aggregations.push(agg("sum", "merchant"));
    let w2 = ViewWindows::of(&view).unwrap();
    assert!(w2.aggregations[3].as_ref().unwrap_err().0.contains("column 'merchant' is String"));

    // Three events of two merchants, one a null: two distinct, in one run.
    let str_id = |s: &str| {
        crate::aggregate::distinct::id(&crate::value::Value {
            val: Some(crate::proto::types::value::Val::StringVal(s.into())),
        })
    };
    let evs: Vec<Event> = [Some("m1"), Some("m2"), Some("m1"), None]
        .iter()
        .enumerate()
        .map(|(i, m)| Event {
            key: b"a".to_vec(),
            time_us: i as i64 * S,
            values: vec![None, Some(2.0)],
            ids: vec![m.and_then(str_id), Some(7)],
            origin: None,
            record: i,
            row: 0,
            plain: Vec::new(),
        })
        .collect();
    let refs: Vec<&Event> = evs.iter().collect();
    let writes = build("v", &w, &refs, false);
    assert_eq!(writes[0].runs.len(), 1);
    let mut hash = HashMap::new();
    ap(&mut hash, &writes[0], 0);
    let read = |hash: &HashMap<Vec<u8>, Bytes>, field: &[u8], function| {
        Partial::decode(function == Function::CountDistinct, &hash[field]).unwrap().finish(function)
    };
    assert_eq!(read(&hash, b"merchant|d|60000000|0", Function::CountDistinct), Some(2.0));
    assert_eq!(read(&hash, b"amount|d|60000000|0", Function::CountDistinct), Some(1.0));
    assert_eq!(read(&hash, b"amount|60000000|0", Function::Sum), Some(8.0));
    // Applied again from elsewhere (no lane): the distinct counts stay, the sum doubles.
    ap(&mut hash, &writes[0], 0);
    assert_eq!(read(&hash, b"merchant|d|60000000|0", Function::CountDistinct), Some(2.0));
    assert_eq!(read(&hash, b"amount|60000000|0", Function::Sum), Some(16.0));
}
