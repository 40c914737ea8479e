//! Window aggregation tiles, the same on every store: each store's `aggregate` against the rule
//! in Rust (`larder::aggregate::tiles::apply`) over a long, seeded sequence of batches
//! (several entities and lanes, out-of-order and late events, redeliveries, bisected and
//! overlapping batches, pruning), comparing every outcome and every stored byte. On Redis that
//! proves `tiles.lua` and the Rust rule store the same bits.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use larder::aggregate::read::WindowReads;
use larder::aggregate::tiles::{self, Event, FeastLayout, FeastTarget, KeyOutcome, KeyWrite};
use larder::aggregate::{ViewWindows, tile_key};
use larder::online::{ViewRead, WindowRead, read_views_and_windows};
use larder::proto::types::value::Val;
use larder::registry::aggregation::Aggregation;
use larder::registry::{FeatureView, Field};
use larder::time::EventTime;
use larder::value::{self, Value, ValueType};

use super::{Subject, key, registry};
use crate::Rng;

/// A view of `x` with every function over a 60 s tumbling window and a 60 s window sliding by
/// 20 s, and a sum over 300 s sliding by 30 s; lateness 30 s (`larder:allowed_lateness`).
pub fn windowed_view(project: &str) -> FeatureView {
    let reg = registry(project, &[("w", &[("id", "Int64")], &[("x", "Float64")])]);
    let mut view = (**reg.view("w").unwrap()).clone();
    let agg = |function: &str, slide: Option<u64>| Aggregation {
        column: "x".into(),
        function: function.into(),
        window: Duration::from_secs(60),
        slide: slide.map(Duration::from_secs),
        name: format!("{function}_{}", if slide.is_some() { "sliding" } else { "tumbling" }),
    };
    for slide in [None, Some(20)] {
        for f in ["count", "sum", "mean", "min", "max", "std", "var", "last", "count_distinct"] {
            view.aggregations.push(agg(f, slide));
        }
    }
    // A longer window of its own hop: its tiles are kept longer than the others'.
    view.aggregations.push(Aggregation {
        column: "x".into(),
        function: "sum".into(),
        window: Duration::from_secs(300),
        slide: Some(Duration::from_secs(30)),
        name: "sum_long".into(),
    });
    view.tags.insert(larder::aggregate::LATENESS_TAG.into(), "30".into());
    // Every output declared, in every type a final value can be stored as (sums rounded to
    // Int32 saturate on the 1e12 readings; a mean as Float32; a max as Bool).
    view.outputs = view
        .aggregations
        .iter()
        .map(|a| {
            let dtype = match (a.function.as_str(), a.slide.is_some()) {
                ("count", _) | ("count_distinct", false) => ValueType::Int64,
                ("sum", false) => ValueType::Int32,
                ("sum", true) => ValueType::Int64,
                ("mean", _) => ValueType::Float,
                ("max", true) => ValueType::Bool,
                _ => ValueType::Double,
            };
            Field::new(a.output(), dtype)
        })
        .collect();
    view
}

/// The hash `count_distinct` counts a reading of `x` by.
fn id(x: Option<f64>) -> Option<u64> {
    x.and_then(|x| larder::aggregate::distinct::id(&Value { val: Some(Val::DoubleVal(x)) }))
}

/// Where the final values and plain rows go in these tests: entity hashes kept an hour.
fn feast_target(view: &FeatureView, w: &ViewWindows) -> FeastTarget {
    FeastTarget { layout: Arc::new(FeastLayout::of(view, w)), ttl_seconds: Some(3600) }
}

type Model = HashMap<Vec<u8>, HashMap<Vec<u8>, Bytes>>;

/// Decisions seen: applied, duplicate and late runs, and redone keys.
#[derive(Default, Debug)]
struct Seen([usize; 4]);

impl Seen {
    fn note(&mut self, outcome: &KeyOutcome) {
        match outcome {
            KeyOutcome::Redo => self.0[3] += 1,
            KeyOutcome::Done { runs, .. } => {
                for s in runs {
                    self.0[*s as usize] += 1;
                }
            }
        }
    }
}

/// Applies a key's write to the model: its tile key and entity hash.
fn apply_model(model: &mut Model, write: &KeyWrite) -> KeyOutcome {
    let feast_key = write.feast.as_ref().map(|f| f.key.clone());
    let mut feast = feast_key.as_ref().map(|k| model.remove(k).unwrap_or_default());
    let applied =
        tiles::apply(model.entry(write.key.clone()).or_default(), feast.as_mut(), write, EventTime::now().as_micros());
    if let (Some(k), Some(h)) = (feast_key, feast)
        && !h.is_empty()
    {
        model.insert(k, h);
    }
    applied.outcome
}

/// Applies `events` to the store and to the model (with their entity hashes, given `feast`);
/// checks both decided alike. Redone keys are sent again one event per run, to both.
async fn apply_both(
    s: &Subject,
    model: &mut Model,
    (view, w, feast): (&FeatureView, &ViewWindows, Option<&FeastTarget>),
    events: &[&Event],
    seen: &mut Seen,
) {
    let writes = tiles::build_with(&view.name, w, events, false, feast);
    let got = s.store.aggregate(&writes).await.unwrap_or_else(|e| panic!("aggregate: {e}"));
    let mut redo = Vec::new();
    for (write, outcome) in writes.iter().zip(&got) {
        let want = apply_model(model, write);
        assert_eq!(*outcome, want, "key {:?}", String::from_utf8_lossy(&write.key));
        seen.note(&want);
        if want == KeyOutcome::Redo {
            redo.push(write.key.clone());
        }
    }
    if redo.is_empty() {
        return;
    }
    let again: Vec<&Event> =
        events.iter().copied().filter(|e| redo.contains(&tiles::tile_key_of(&view.name, e))).collect();
    let writes: Vec<KeyWrite> = tiles::build_with(&view.name, w, &again, true, feast);
    let got = s.store.aggregate(&writes).await.unwrap();
    for (write, outcome) in writes.iter().zip(got) {
        let want = apply_model(model, write);
        assert_eq!(outcome, want);
        seen.note(&want);
        assert_ne!(want, KeyOutcome::Redo, "single-event runs are always decided");
    }
}

pub async fn aggregation_tiles_follow_the_rule(s: &Subject) {
    let project = "tiles";
    let view = windowed_view(project);
    let mut w = ViewWindows::of(&view).unwrap();
    // Few idempotency keys remembered, so some are forgotten along the way.
    w.idem_cap = 3;
    let target = feast_target(&view, &w);
    let entities: Vec<Vec<u8>> = (1..=3).map(|id| key(&view, project, id)).collect();
    let lanes: [Option<&str>; 3] = [Some("kinesis:s:shard-0"), Some("kafka:t-1"), None];
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    // Around now, so the tile keys' expiries are in the future; ten minutes of event time, so
    // old tiles are pruned along the way.
    // On a minute boundary, so the runs (and so the decisions) do not depend on the clock.
    let start = EventTime::now().as_micros().div_euclid(60_000_000) * 60_000_000 - 60_000_000;
    let mut clock = start;
    let mut seq = [0u64; 3];
    let mut sent: Vec<Vec<Event>> = Vec::new();
    let mut model: Model = HashMap::new();
    let mut seen = Seen::default();
    for step in 0..60 {
        let batch: Vec<Event> = match rng.below(10) {
            // A redelivery of an earlier batch, whole or its first half (a bisect).
            0 | 1 if !sent.is_empty() => {
                let earlier = &sent[rng.below(sent.len() as u64) as usize];
                let upto = if rng.below(2) == 0 { earlier.len() } else { earlier.len().div_ceil(2) };
                earlier[..upto].to_vec()
            }
            kind => {
                let lane = lanes[rng.below(3) as usize];
                // Overlap: the last batch's events again, then new ones (a retry from an earlier
                // position than the one applied).
                let mut events = match (kind, sent.last()) {
                    (2, Some(last)) if lane.is_some() => last.clone(),
                    _ => Vec::new(),
                };
                for _ in 0..1 + rng.below(12) {
                    clock += rng.below(9_000_000) as i64;
                    // Mostly in order, some behind (a few past the lateness).
                    let behind = if rng.below(5) == 0 { rng.below(45_000_000) as i64 } else { 0 };
                    let x = match rng.below(12) {
                        0 => None,
                        1 => Some(1e12 + rng.below(1000) as f64 * 1e-3),
                        2 => Some(-(rng.below(1000) as f64) * 1e-9),
                        _ => Some(rng.below(10_000) as f64 / 8.0 - 300.0),
                    };
                    let l = lane.map(|l| {
                        let n = lanes.iter().position(|x| *x == Some(l)).unwrap();
                        seq[n] += 1;
                        (Arc::<str>::from(l), larder::aggregate::position(&seq[n].to_string(), 0).unwrap())
                    });
                    // Most events carry their row (x as the plain feature), some none (chosen
                    // without the generator, so the batches stay as they were).
                    let plain = match (step + events.len()) % 4 {
                        0 => Vec::new(),
                        _ => vec![value::encode(&Value { val: x.map(Val::DoubleVal) })],
                    };
                    events.push(Event {
                        key: entities[rng.below(3) as usize].clone(),
                        time_us: clock - behind,
                        values: vec![x],
                        ids: vec![id(x)],
                        origin: l,
                        record: step,
                        row: 0,
                        plain,
                    });
                }
                // Every other batch without a lane is an HTTP push with an Idempotency-Key.
                if lane.is_none() && step % 2 == 0 {
                    let idem: Arc<str> = Arc::from(format!("idem:k{step}"));
                    for (i, e) in events.iter_mut().enumerate() {
                        e.origin = Some((Arc::clone(&idem), larder::aggregate::position("1", i).unwrap()));
                    }
                }
                events
            }
        };
        let refs: Vec<&Event> = batch.iter().collect();
        apply_both(s, &mut model, (&view, &w, Some(&target)), &refs, &mut seen).await;
        for e in &entities {
            let k = tile_key(&view.name, e);
            let stored = s.raw.hash(&k).unwrap_or_default();
            let want: BTreeMap<Vec<u8>, Vec<u8>> =
                model.get(&k).map(|h| h.iter().map(|(f, v)| (f.clone(), v.to_vec())).collect()).unwrap_or_default();
            assert_eq!(stored, want, "step {step}: tile key of entity {e:?}");
            // The entity hash: plain row, final values and `_ts`, byte for byte.
            let stored = s.raw.hash(e).unwrap_or_default();
            let want: BTreeMap<Vec<u8>, Vec<u8>> =
                model.get(e).map(|h| h.iter().map(|(f, v)| (f.clone(), v.to_vec())).collect()).unwrap_or_default();
            assert_eq!(stored, want, "step {step}: entity hash {e:?}");
        }
        sent.push(batch);
    }
    // Keyed pushes were remembered up to the cap, the oldest forgotten.
    for e in &entities {
        let h = &model[&tile_key(&view.name, e)];
        let marks = h.keys().filter(|f| f.starts_with(b"\0w|idem:")).count();
        let queue = String::from_utf8_lossy(&h[tiles::IDEM_QUEUE_FIELD]).lines().count();
        assert_eq!((marks, queue), (3, 3), "entity {e:?}: one mark per key remembered, three at most");
    }
    // Every kind of decision came up, and old tiles were pruned.
    assert!(seen.0.iter().all(|n| *n > 0), "applied, duplicate, late, redo: {seen:?}");
    let first_tile = format!("x|60000000|{}", start.div_euclid(60_000_000)).into_bytes();
    assert!(model.values().all(|h| !h.contains_key(&first_tile)), "the first minute's tiles were pruned");
    // The 30 s tiles are kept 600 s, the others 120 s: some are older than 120 s and stayed.
    let kept_longer = model.values().any(|h| {
        let newest: Option<i64> = h.get(tiles::MAX_FIELD).map(|m| std::str::from_utf8(m).unwrap().parse().unwrap());
        h.keys().filter_map(|f| f.strip_prefix(b"x|30000000|")).any(|i| {
            let end = (std::str::from_utf8(i).unwrap().parse::<i64>().unwrap() + 1) * 30_000_000;
            newest.is_some_and(|n| end <= n - 120_000_000)
        })
    });
    assert!(kept_longer, "30 s tiles older than the 60 s windows' keep stayed");
    assert!(model.values().all(|h| h.len() <= w.field_cap + 5));
    for e in &entities {
        let k = tile_key(&view.name, e);
        let left = s.raw.expires_in(&k).expect("tile keys expire");
        let entity_left = s.raw.expires_in(e).expect("entity hashes expire");
        assert!(entity_left.as_secs() > 3500 && entity_left.as_secs() <= 3600, "{entity_left:?}");
        let newest: i64 = std::str::from_utf8(&model[&k][tiles::MAX_FIELD]).unwrap().parse().unwrap();
        let now = EventTime::now();
        let want_ms = (newest.max(now.as_micros()) + w.keep_us) / 1000 + 1 - now.as_millis();
        assert!((left.as_millis() as i64 - want_ms).abs() < 3000, "{left:?} vs {want_ms} ms");
    }
}

pub async fn aggregations_are_read_with_the_features(s: &Subject) {
    let project = "windows_read";
    let view = windowed_view(project);
    let w = ViewWindows::of(&view).unwrap();
    let keys: Vec<Vec<u8>> = (1..=5).map(|id| key(&view, project, id)).collect();
    let now = EventTime::now().as_micros();
    // The tumbling window answered is the last closed minute: put events in it and in the
    // current one.
    let last_closed = (now.div_euclid(60_000_000) - 1) * 60_000_000;
    let events: Vec<Event> = (0..40)
        .map(|i| Event {
            key: keys[i % 4].clone(),
            time_us: last_closed + (i as i64) * 2_000_000,
            values: vec![Some(i as f64)],
            ids: vec![id(Some((i % 3) as f64))],
            origin: None,
            record: i,
            row: 0,
            plain: Vec::new(),
        })
        .collect();
    let mut model = Model::new();
    let events: Vec<&Event> = events.iter().collect();
    apply_both(s, &mut model, (&view, &w, None), &events, &mut Seen::default()).await;
    // A plain row for some keys, so the read mixes both kinds.
    let row = super::row(&keys[0], EventTime::from_micros(now), 1.5, 1);
    super::write(s, &view, vec![row], larder::online::WriteMode::NewestWins, None).await;

    let aggregations: Vec<usize> = (0..view.aggregations.len()).collect();
    let reads = [ViewRead { view: &view, features: &[0], keys: &keys }];
    let windows = [WindowRead { view: &view, windows: &w, aggregations: &aggregations, keys: &keys, now_us: now }];
    let (plain, answers) = read_views_and_windows(&*s.store, &reads, &windows).await.unwrap();
    assert!(plain[0][0].is_some() && plain[0][1].is_none());
    let wr = WindowReads::new(&w, &aggregations, now);
    for (k, key) in keys.iter().enumerate() {
        let stored = model.get(&tile_key(&view.name, key));
        let values: Vec<Option<Bytes>> =
            wr.fields.iter().map(|f| stored.and_then(|h| h.get(f.as_slice()).cloned())).collect();
        assert_eq!(answers[0][k], wr.answers(&w, &aggregations, &values), "entity {k}");
    }
    // Entity 5 had no events: count 0, every other answer null.
    assert_eq!(answers[0][4][0].value, Some(0.0));
    assert!(answers[0][4][1..8].iter().all(|a| a.value.is_none() && a.newest_us.is_none()));
    assert_eq!(answers[0][4][8].value, Some(0.0), "count_distinct of nothing is 0");
    // Entity 1 had events 0, 4, 8, ... of the last closed minute (those before its end).
    let want: Vec<f64> = (0..40).filter(|i| i % 4 == 0 && (*i as i64) * 2 < 60).map(|i| i as f64).collect();
    assert_eq!(answers[0][0][0].value, Some(want.len() as f64));
    assert_eq!(answers[0][0][1].value, Some(want.iter().sum()));
    // Its distinct values: i % 3 of those events.
    let distinct: std::collections::BTreeSet<usize> = want.iter().map(|i| *i as usize % 3).collect();
    assert_eq!(answers[0][0][8].value, Some(distinct.len() as f64));
}

/// `count_distinct` past its exact bound: tiles become HyperLogLog sketches, merged into other
/// sketches and exact sets in the store as in the Rust rule, byte for byte; a redelivery
/// changes nothing and the final value estimates the true count.
pub async fn distinct_sketches_follow_the_rule(s: &Subject) {
    let project = "sketches";
    let view = windowed_view(project);
    let w = ViewWindows::of(&view).unwrap();
    let target = feast_target(&view, &w);
    let entity = key(&view, project, 1);
    let start = EventTime::now().as_micros().div_euclid(60_000_000) * 60_000_000 - 60_000_000;
    let mut model = Model::new();
    let mut seen = Seen::default();
    let lane: Arc<str> = Arc::from("kinesis:s:shard-0");
    // Batches of 300 readings, 2,100 distinct values overall, within one minute: the first
    // 20 s tile stays exact, later ones pass 512 and then merge sketches with exact sets.
    let mut seq = 0u64;
    let mut batches: Vec<Vec<Event>> = Vec::new();
    for b in 0..10i64 {
        let batch = (0..300i64)
            .map(|i| {
                seq += 1;
                let n = b * 300 + i;
                let x = match b {
                    0 => (n % 40) as f64,
                    _ => (n % 2100) as f64 + 0.5,
                };
                Event {
                    key: entity.clone(),
                    time_us: start + n * 19_000,
                    values: vec![Some(x)],
                    ids: vec![id(Some(x))],
                    origin: Some((Arc::clone(&lane), larder::aggregate::position(&seq.to_string(), 0).unwrap())),
                    record: n as usize,
                    row: 0,
                    plain: Vec::new(),
                }
            })
            .collect();
        batches.push(batch);
    }
    let mut kinds = std::collections::BTreeSet::new();
    for (b, batch) in batches.iter().enumerate() {
        let refs: Vec<&Event> = batch.iter().collect();
        apply_both(s, &mut model, (&view, &w, Some(&target)), &refs, &mut seen).await;
        if b == 4 {
            // Delivered again: every run a duplicate.
            apply_both(s, &mut model, (&view, &w, Some(&target)), &refs, &mut seen).await;
        }
        let k = tile_key(&view.name, &entity);
        let stored = s.raw.hash(&k).unwrap_or_default();
        let want: BTreeMap<Vec<u8>, Vec<u8>> = model[&k].iter().map(|(f, v)| (f.clone(), v.to_vec())).collect();
        assert_eq!(stored, want, "batch {b}: tile key");
        kinds.extend(model[&k].iter().filter(|(f, _)| f.starts_with(b"x|d|")).map(|(_, v)| v[0]));
        let stored = s.raw.hash(&entity).unwrap_or_default();
        let want: BTreeMap<Vec<u8>, Vec<u8>> = model[&entity].iter().map(|(f, v)| (f.clone(), v.to_vec())).collect();
        assert_eq!(stored, want, "batch {b}: entity hash");
    }
    assert!(seen.0[1] > 0, "the redelivery was recognized");
    assert_eq!(kinds, [b'E', b'H'].into(), "exact tiles and sketches both stored");
    // The final value of the tumbling minute: the 2,140 distinct readings, estimated.
    let field = larder::keys::feature_field(&view.name, "count_distinct_tumbling");
    let got = value::decode(&model[&entity][&field[..]]).unwrap();
    let Some(Val::Int64Val(n)) = got.val else { panic!("{got:?}") };
    assert!((n - 2140).abs() < 2140 / 20, "estimated {n} of 2140 distinct");
}
