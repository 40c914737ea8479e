//! Payloads of the push function: Kinesis, MSK and self-managed Kafka events, API Gateway
//! events and direct invocations, told apart and parsed by `push_function::event::parse`, then
//! handled by the function's `App` (records decoded, pushed, poison records dead-lettered to
//! memory) over an in-memory store.

#![no_main]

use std::sync::Arc;

use larder::aws::Aws;
use larder::push::PushSettings;
use larder::push::dead_letter::MemorySink;
use libfuzzer_sys::fuzz_target;
use push_function::App;

fuzz_target!(|data: &[u8]| {
    let Some(payload) = larder_fuzz::text(data) else { return };
    let Ok(event) = push_function::event::parse(payload) else { return };
    let (services, _store) = larder_fuzz::services();
    // No async stream: `?mode=async` is answered 422 instead of reaching for Kinesis.
    let settings = PushSettings { default_source: Some("driver_stats_push_source".into()), ..Default::default() };
    let app = App::new(services, settings, &Aws::new(), Arc::new(MemorySink::new()));
    let _ = larder_fuzz::block_on(app.handle_event(event));
});
