//! `POST /get-online-features` bodies: Feast's request JSON, parsed, planned against the example
//! registry, its entity values typed and turned into keys, read from a store holding drivers
//! 1001 to 1005, and the answer written as Feast's JSON.

#![no_main]

use larder::retrieval::{Request, get_online_features};
use larder::time::EventTime;
use libfuzzer_sys::fuzz_target;

/// The default `LARDER_MAX_ENTITY_ROWS`.
const MAX_ENTITY_ROWS: usize = 10_000;

fuzz_target!(|data: &[u8]| {
    let Ok(request) = Request::parse(data) else { return };
    let store = larder_fuzz::driver_store();
    let now = EventTime::new(1_704_085_200, 0);
    if let Ok(response) = larder_fuzz::block_on(get_online_features(
        larder_fuzz::registry(),
        store.as_ref(),
        &request,
        MAX_ENTITY_ROWS,
        now,
    )) {
        let json = response.to_json();
        serde_json::from_slice::<serde_json::Value>(&json).expect("the answer is JSON");
    }
});
