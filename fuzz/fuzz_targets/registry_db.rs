//! `registry.db` bytes (Feast's `Registry` protobuf), as the registry cache, `apply` and the
//! materialization bookkeeping read them: decoded and converted to the model for two projects,
//! split into wire fields, updated by `apply` with the example definitions (and the result read
//! back), and given a materialization interval.

#![no_main]

use larder::registry::Interval;
use larder::registry::convert::registry_from_bytes;
use larder::registry::edit;
use larder::time::EventTime;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let now = EventTime::new(1_704_085_200, 0);
    for project in [larder_fuzz::PROJECT, "anchor"] {
        let _ = registry_from_bytes(data, project, 3);
    }
    let _ = larder::proto::wire::split(data);
    let desired = larder_fuzz::registry();
    if let Ok((Some(updated), _)) = edit::apply(Some(data), desired, 3, now) {
        let back = registry_from_bytes(&updated, larder_fuzz::PROJECT, 3).expect("apply's output reads back");
        assert_eq!(
            back.feature_views.keys().collect::<Vec<_>>(),
            desired.feature_views.keys().collect::<Vec<_>>(),
            "apply's output holds exactly the defined views"
        );
    }
    let interval = Interval {
        view: "driver_hourly_stats".into(),
        start: EventTime::new(0, 0),
        end: EventTime::new(1_704_085_200, 0),
    };
    let _ = edit::record_materialization(data, larder_fuzz::PROJECT, &[interval], now);
});
