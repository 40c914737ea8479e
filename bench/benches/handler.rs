//! The get-online-features handler alone: the shared router over the in-memory store, no
//! network. Issue target: <= 20 us for 1 entity x 7 features.
//!
//!     cargo bench --workspace --profile bench-fast --bench handler

use criterion::{Criterion, criterion_group, criterion_main};
use larder::api::ApiRequest;
use larder_bench::{gof_body, in_memory_router};

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let services = in_memory_router(&rt);
    for n in [1, 100] {
        let body = gof_body(n);
        c.bench_function(&format!("handler {n}x7 (in-memory store)"), |b| {
            b.iter(|| {
                let req = ApiRequest::new("POST", "/get-online-features", "", &body);
                let resp = rt.block_on(services.handle(req));
                assert_eq!(resp.status, 200);
                resp
            })
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
