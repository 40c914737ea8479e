//! One Kinesis record's data or Kafka record's value, as `larder::push::stream` reads it: a
//! push request, a write request or a flat row (with and without a default push source),
//! converted and written to an in-memory store.

#![no_main]

use larder::push::WriteOptions;
use larder::push::request::parse_record;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (services, _store) = larder_fuzz::services();
    for default_source in [None, Some("driver_stats_push_source")] {
        let Ok(push) = parse_record(data, default_source, "stream 'fuzz'") else { continue };
        let _ = larder_fuzz::block_on(larder::push::apply(
            &services.registry,
            services.store.as_ref(),
            WriteOptions::default(),
            &push,
        ));
    }
});
