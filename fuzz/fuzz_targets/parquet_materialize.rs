//! Parquet files read by materialization: the input is written as the source file of each
//! repository (`larder_fuzz::parquet_repos`), then planned (footer, schema, row-group
//! statistics and pruning) and every work item run (column chunks and pages decoded, event and
//! created times read, the newest row per entity selected, values encoded for Feast) into an
//! in-memory store. Nothing is recorded in the registry, so every input meets the same one.

#![no_main]

use larder::materialize::{self, Options, Request};
use larder::online::memory::MemoryStore;
use larder::storage::Storage;
use larder::time::EventTime;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let storage = Storage::default();
    // Years 1 to 9999: every row a file can hold.
    let request = Request::Range {
        start: EventTime::new(-62_135_596_800, 0),
        end: EventTime::new(253_402_300_799, 0),
        views: None,
    };
    let options = Options { parallelism: 1, write_batch: 64, write_concurrency: 1, ..Options::default() };
    for repo in larder_fuzz::parquet_repos() {
        std::fs::write(&repo.data, data).expect("the input written as the source file");
        let Ok(plan) = larder_fuzz::block_on(materialize::plan(&repo.config, &storage, &request, &options)) else {
            continue;
        };
        let store = MemoryStore::new();
        for item in &plan.items {
            let _ = larder_fuzz::block_on(materialize::run_item(&repo.config, &storage, &store, item, &options));
        }
    }
});
