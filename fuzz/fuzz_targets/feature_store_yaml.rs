//! `feature_store.yaml` text: `${VAR}` / `${VAR:-default}` expansion, Feast's keys, the online
//! and offline store sections, then the `LARDER_*` overrides, as every binary's `main` reads it.

#![no_main]

use std::path::Path;

use larder::config::RepoConfig;
use libfuzzer_sys::fuzz_target;

fn env(name: &str) -> Option<String> {
    match name {
        "REDIS_ADDR" => Some("redis.internal:6379".into()),
        "EMPTY" => Some(String::new()),
        "PROJECT" => Some("driver_demo".into()),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(text) = larder_fuzz::text(data) else { return };
    let Ok(config) = RepoConfig::parse(text, Path::new("/repo"), "feature_store.yaml", &env) else { return };
    let _ = config.redis();
    let _ = larder::online::WriteOptions::from_config(&config);
});
