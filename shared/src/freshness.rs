//! How old each feature view's stored features are: what `larder freshness` prints and what a
//! staleness alarm is about.
//!
//! Two ends can fall behind, and they are measured apart because they fail apart: the batch
//! side (the end of the view's last materialized interval, from the registry) and what is
//! actually in the online store (the newest `_ts:<view>` among a sample of keys: pushes and
//! streams move it, materialization may not). Entity keys are not known in advance, so the
//! store is sampled ([`OnlineStore::sample_keys`]), not walked: the newest event found is a
//! lower bound of the newest stored, close to it when writes touch many entities.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::online::{KeyRead, OnlineStore};
use crate::registry::{FeatureView, Registry};
use crate::time::EventTime;

/// Keys read per round trip: a sample of any size is read in pipelines of this many HMGETs,
/// so one call never holds Redis (or a Lambda's memory) for long.
const KEYS_PER_READ: usize = 1000;

/// One online feature view's freshness.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewFreshness {
    pub view: String,
    /// The newest `_ts:<view>` among the sampled keys; `None` when no sampled key holds the
    /// view.
    pub newest_event: Option<EventTime>,
    /// Keys of the project sampled (the same for every view: one sample serves them all).
    pub sampled_keys: usize,
    /// Sampled keys holding a row of this view.
    pub keys_with_view: usize,
    /// The end of the view's last materialized interval; `None` when never materialized.
    pub materialized_until: Option<EventTime>,
    /// The time ages are measured from (the `now` [`freshness`] was given), kept so every age
    /// of one report is measured from the same instant.
    pub as_of: EventTime,
}

impl ViewFreshness {
    /// Seconds from the newest stored event to [`Self::as_of`]. Negative when the event is in
    /// the future (a writer's clock ahead of ours): shown, not hidden, since it is a finding.
    pub fn newest_age_secs(&self) -> Option<i64> {
        self.newest_event.map(|t| age_secs(t, self.as_of))
    }

    /// Seconds from the end of the last materialized interval to [`Self::as_of`].
    pub fn materialized_age_secs(&self) -> Option<i64> {
        self.materialized_until.map(|t| age_secs(t, self.as_of))
    }
}

/// Whole seconds from `then` to `now` (rounded down; negative when `then` is later).
pub fn age_secs(then: EventTime, now: EventTime) -> i64 {
    let nanos = (now.secs as i128 - then.secs as i128) * 1_000_000_000 + (now.nanos as i128 - then.nanos as i128);
    nanos.div_euclid(1_000_000_000).clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

/// An age as people read it: the two largest units, e.g. `42s`, `3m12s`, `5h03m`, `2d04h`;
/// `-7s` for a time ahead of now.
pub fn format_age(secs: i64) -> String {
    let sign = if secs < 0 { "-" } else { "" };
    let s = secs.unsigned_abs();
    let (d, h, m, sec) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    let text = if d > 0 {
        format!("{d}d{h:02}h")
    } else if h > 0 {
        format!("{h}h{m:02}m")
    } else if m > 0 {
        format!("{m}m{sec:02}s")
    } else {
        format!("{sec}s")
    };
    format!("{sign}{text}")
}

/// The freshness of every online view of `registry`, in name order, from up to `sample` keys
/// of the project in `store`, ages measured from `now`.
///
/// One sample serves every view: a key is an entity, and every view of that entity keeps its
/// `_ts:<view>` in the entity's hash, so one HMGET per key reads all views' times. A view whose
/// entity is rare among the project's keys is seen in few of them (`keys_with_view` says how
/// many). A stored time that is not a protobuf Timestamp is an error naming the view, as a
/// read would report it: a report that skipped it would look fresher than the store is.
pub async fn freshness(
    registry: &Registry,
    store: &dyn OnlineStore,
    sample: usize,
    now: EventTime,
) -> Result<Vec<ViewFreshness>> {
    let views: Vec<&Arc<FeatureView>> = registry.feature_views.values().filter(|v| v.online).collect();
    let mut out: Vec<ViewFreshness> = views
        .iter()
        .map(|v| ViewFreshness {
            view: v.name.clone(),
            newest_event: None,
            sampled_keys: 0,
            keys_with_view: 0,
            materialized_until: v.last_materialized_end(),
            as_of: now,
        })
        .collect();
    if views.is_empty() || sample == 0 {
        return Ok(out);
    }
    let keys = store.sample_keys(&registry.project, sample).await?;
    let fields: Vec<&[u8]> = views.iter().map(|v| v.layout.ts_field.as_slice()).collect();
    for chunk in keys.chunks(KEYS_PER_READ) {
        let reads: Vec<KeyRead<'_>> = chunk.iter().map(|k| KeyRead { key: k, fields: fields.clone() }).collect();
        let answers = store.read(&reads).await?;
        for answer in answers {
            for ((f, view), stored) in out.iter_mut().zip(&views).zip(answer) {
                let Some(bytes) = stored else { continue };
                let t = EventTime::from_proto_bytes(&bytes)
                    .map_err(|e| Error::storage(format!("view '{}': {e}", view.name)))?;
                f.keys_with_view += 1;
                f.newest_event = Some(f.newest_event.map_or(t, |n| n.max(t)));
            }
        }
    }
    for f in &mut out {
        f.sampled_keys = keys.len();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::online::memory::MemoryStore;
    use crate::online::testing::NullStore;
    use crate::online::{ViewWrite, WriteMode, WriteRow};
    use serde_json::json;

    const PROJECT: &str = "fresh";

    /// Two online views of `driver`, one of `rider`, and an offline-only view.
    fn registry() -> Registry {
        let yaml = r#"
entities:
  driver: {join_key: driver_id, type: Int64}
  rider: {join_key: rider_id, type: String}
sources:
  src: {type: push, batch_source: files}
  files: {type: file, path: data/x.parquet, timestamp_field: ts}
feature_views:
  stats:
    entities: [driver]
    source: src
    features: {a: Float64}
  trips:
    entities: [driver]
    source: src
    features: {n: Int64}
  riders:
    entities: [rider]
    source: src
    features: {r: Float64}
  archive:
    entities: [driver]
    source: src
    online: false
    features: {z: Float64}
"#;
        crate::registry::yaml::parse(yaml, "features.yaml", PROJECT, 3).unwrap()
    }

    async fn put(store: &MemoryStore, reg: &Registry, view: &str, entity: serde_json::Value, secs: i64) {
        let v = reg.view(view).unwrap();
        let features: Vec<serde_json::Value> = v.features.iter().map(|_| json!(1)).collect();
        let row = WriteRow::from_json(v, &reg.project, &[entity], &features, EventTime::new(secs, 0)).unwrap();
        store.write(&ViewWrite::for_view(v, vec![row], WriteMode::NewestWins, None)).await.unwrap();
    }

    fn by_view<'a>(report: &'a [ViewFreshness], name: &str) -> &'a ViewFreshness {
        report.iter().find(|f| f.view == name).unwrap_or_else(|| panic!("{name} missing from {report:?}"))
    }

    #[tokio::test]
    async fn newest_event_and_counts_per_online_view() {
        let reg = registry();
        let store = MemoryStore::new();
        for (id, secs) in [(1, 100), (2, 300), (3, 200)] {
            put(&store, &reg, "stats", json!(id), secs).await;
        }
        put(&store, &reg, "trips", json!(2), 50).await;
        put(&store, &reg, "riders", json!("r1"), 400).await;
        let now = EventTime::new(1_000, 0);
        let report = freshness(&reg, &store, 1000, now).await.unwrap();

        // Online views only, in name order.
        let names: Vec<&str> = report.iter().map(|f| f.view.as_str()).collect();
        assert_eq!(names, ["riders", "stats", "trips"]);
        // 3 driver keys (trips shares driver 2's hash) and 1 rider key.
        assert!(report.iter().all(|f| f.sampled_keys == 4), "{report:?}");
        let stats = by_view(&report, "stats");
        assert_eq!((stats.newest_event, stats.keys_with_view), (Some(EventTime::new(300, 0)), 3));
        assert_eq!(stats.newest_age_secs(), Some(700));
        let trips = by_view(&report, "trips");
        assert_eq!((trips.newest_event, trips.keys_with_view), (Some(EventTime::new(50, 0)), 1));
        let riders = by_view(&report, "riders");
        assert_eq!((riders.newest_event, riders.keys_with_view), (Some(EventTime::new(400, 0)), 1));
        assert!(report.iter().all(|f| f.materialized_until.is_none() && f.as_of == now));
    }

    #[tokio::test]
    async fn materialized_until_is_the_end_of_the_latest_interval() {
        let mut reg = registry();
        let view = Arc::make_mut(reg.feature_views.get_mut("stats").unwrap());
        view.materialization_intervals = vec![
            (EventTime::new(0, 0), EventTime::new(500, 0)),
            (EventTime::new(500, 0), EventTime::new(900, 0)),
            (EventTime::new(100, 0), EventTime::new(200, 0)),
        ];
        let report = freshness(&reg, &NullStore, 10, EventTime::new(1_080, 0)).await.unwrap();
        let stats = by_view(&report, "stats");
        assert_eq!(stats.materialized_until, Some(EventTime::new(900, 0)));
        assert_eq!(stats.materialized_age_secs(), Some(180));
        // Nothing stored: nothing sampled, no newest event.
        assert_eq!((stats.newest_event, stats.sampled_keys, stats.keys_with_view), (None, 0, 0));
        assert_eq!(by_view(&report, "trips").materialized_until, None);
    }

    #[tokio::test]
    async fn the_sample_is_bounded_and_other_projects_are_left_out() {
        let reg = registry();
        let store = MemoryStore::new();
        for id in 0..20 {
            put(&store, &reg, "stats", json!(id), 100 + id).await;
        }
        // A project whose name ends in this one's, with a newer row of a view of the same name.
        let other = crate::registry::yaml::parse(
            "entities:\n  driver: {join_key: driver_id, type: Int64}\nsources:\n  s: {type: file, path: x.parquet, timestamp_field: ts}\nfeature_views:\n  stats:\n    entities: [driver]\n    source: s\n    features: {a: Float64}\n",
            "features.yaml",
            "not_fresh",
            3,
        )
        .unwrap();
        put(&store, &other, "stats", json!(1), 10_000).await;

        let report = freshness(&reg, &store, 1000, EventTime::new(0, 0)).await.unwrap();
        let stats = by_view(&report, "stats");
        assert_eq!((stats.sampled_keys, stats.keys_with_view), (20, 20));
        assert_eq!(stats.newest_event, Some(EventTime::new(119, 0)));

        let report = freshness(&reg, &store, 5, EventTime::new(0, 0)).await.unwrap();
        let stats = by_view(&report, "stats");
        assert_eq!((stats.sampled_keys, stats.keys_with_view), (5, 5));
        assert!(stats.newest_event.unwrap() >= EventTime::new(100, 0));

        let report = freshness(&reg, &store, 0, EventTime::new(0, 0)).await.unwrap();
        assert!(report.iter().all(|f| f.sampled_keys == 0 && f.newest_event.is_none()));
    }

    #[tokio::test]
    async fn a_stored_time_that_is_not_a_timestamp_is_an_error_naming_the_view() {
        let reg = registry();
        let store = MemoryStore::new();
        put(&store, &reg, "stats", json!(1), 100).await;
        let v = reg.view("trips").unwrap();
        let key = v
            .layout
            .key_encoder
            .redis_key(&[&crate::value::from_json(&json!(1), v.entity_columns[0].dtype).unwrap()], PROJECT)
            .unwrap();
        store.set_field(&key, &v.layout.ts_field, b"\xff\xff\xff");
        let err = freshness(&reg, &store, 10, EventTime::new(0, 0)).await.unwrap_err();
        assert!(err.to_string().contains("view 'trips'"), "{err}");
    }

    #[test]
    fn ages_read_like_people_write_them() {
        assert_eq!(format_age(0), "0s");
        assert_eq!(format_age(42), "42s");
        assert_eq!(format_age(192), "3m12s");
        assert_eq!(format_age(3600 + 3 * 60 + 59), "1h03m");
        assert_eq!(format_age(2 * 86_400 + 4 * 3600 + 59), "2d04h");
        assert_eq!(format_age(-7), "-7s");
        assert_eq!(age_secs(EventTime::new(10, 500_000_000), EventTime::new(12, 0)), 1);
        assert_eq!(age_secs(EventTime::new(12, 0), EventTime::new(10, 500_000_000)), -2);
    }
}
