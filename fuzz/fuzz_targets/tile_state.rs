//! Bytes read from a tile key: a tile's partial state of either kind (moments, or
//! `count_distinct`'s exact hashes or HyperLogLog registers). Decoded as both kinds; a state
//! that decodes encodes back to the same bytes, merges into an empty state as itself, and
//! answers every function without panicking (a distinct count finite and at least 0, the
//! union of a distinct state with itself the same state). Then planted as every tile of a
//! window and answered as get-online-features would.

#![no_main]

use std::time::Duration;

use larder::aggregate::read::WindowReads;
use larder::aggregate::{Function, Partial, ViewWindows};
use larder::registry::aggregation::Aggregation;
use libfuzzer_sys::fuzz_target;

const FUNCTIONS: [Function; 9] = [
    Function::Count,
    Function::Sum,
    Function::Mean,
    Function::Min,
    Function::Max,
    Function::Std,
    Function::Var,
    Function::Last,
    Function::CountDistinct,
];

fuzz_target!(|data: &[u8]| {
    for distinct in [false, true] {
        let Some(p) = Partial::decode(distinct, data) else { continue };
        assert_eq!(p.encode(), data, "a decoded state encodes to its bytes");
        if !p.is_empty() {
            let mut e = Partial::empty(distinct);
            e.merge(&p);
            assert_eq!(e.encode(), data, "merged into nothing, a state is itself");
        }
        for f in FUNCTIONS {
            let _ = p.finish(f);
        }
        if let Partial::Distinct(d) = &p {
            let n = d.count();
            assert!(n.is_finite() && n >= 0.0, "count {n}");
            let mut twice = p.clone();
            twice.merge(&p);
            assert_eq!(twice, p, "a set united with itself is itself");
        }
    }

    // Every tile of a 60 s window of 10 s tiles holds the input.
    let mut view = (**larder_fuzz::registry().view("driver_hourly_stats").expect("the example view")).clone();
    view.aggregations = ["count", "sum", "std", "last", "count_distinct"]
        .iter()
        .map(|f| Aggregation {
            column: "conv_rate".into(),
            function: f.to_string(),
            window: Duration::from_secs(60),
            slide: Some(Duration::from_secs(10)),
            name: String::new(),
        })
        .collect();
    let windows = ViewWindows::of(&view).expect("a view with aggregations");
    let asked: Vec<usize> = (0..view.aggregations.len()).collect();
    let reads = WindowReads::new(&windows, &asked, 1_767_261_600_000_000);
    let values: Vec<Option<bytes::Bytes>> =
        reads.fields.iter().map(|_| Some(bytes::Bytes::copy_from_slice(data))).collect();
    let answers = reads.answers(&windows, &asked, &values);
    assert_eq!(answers.len(), asked.len());
});
