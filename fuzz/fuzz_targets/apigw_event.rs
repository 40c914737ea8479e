//! API Gateway events (HTTP API 2.0, REST API 1.0, function URLs), parsed by
//! `larder_apigw::HttpEvent::parse` and answered by `larder_apigw::answer` over a router of
//! every route group (health, retrieval, push, materialize) on the example registry and an
//! in-memory store. The answer must always be an API Gateway response, never a panic.

#![no_main]

use larder::api::{Health, Materialize, PushRoutes, Retrieval, Router};
use larder_apigw::HttpEvent;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(payload) = larder_fuzz::text(data) else { return };
    let Ok(event) = HttpEvent::parse(payload) else { return };
    let (services, _store) = larder_fuzz::services();
    let router = Router::new(services).with(Health).with(Retrieval).with(PushRoutes::sync_only()).with(Materialize);
    let response = larder_fuzz::block_on(larder_apigw::answer(&router, event));
    serde_json::to_vec(&response).expect("the response serializes");
});
