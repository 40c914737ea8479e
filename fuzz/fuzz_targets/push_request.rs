//! `POST /push` and `POST /write-to-online-store` bodies: Feast's `PushFeaturesRequest` and
//! `WriteToFeatureStoreRequest`, parsed, their `df` framed, converted for every view they feed
//! (typing, keys, event times) and written to an in-memory store.

#![no_main]

use larder::push::{PushRequest, WriteOptions, WriteRequest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (services, _store) = larder_fuzz::services();
    let pushes = [
        PushRequest::parse(data).and_then(PushRequest::into_push),
        WriteRequest::parse(data).and_then(WriteRequest::into_push),
    ];
    for push in pushes.into_iter().flatten() {
        let _ = larder_fuzz::block_on(larder::push::apply(
            &services.registry,
            services.store.as_ref(),
            WriteOptions::default(),
            &push,
        ));
    }
});
