//! What metrics cost per lookup, without the noise of two servers on a busy machine: the
//! get-online-features handler (the shared router over the in-memory store, 1 entity x 7
//! features, no network) run in process with and without `larder serve`'s Prometheus recorder,
//! in alternating rounds, each round on fresh threads (two at once by default, as
//! `larder serve` runs on two cores). (Fresh threads because the telemetry
//! keeps metric handles per thread, registered with whichever recorder the thread first met.)
//! The recorder gets the server's buckets and its upkeep every 250k lookups (5 s at 50k/s).
//!
//!     cargo run --profile bench-fast -p larder-bench --bin metrics-cost -- [--rounds 15] [--lookups 200000] [--threads 2]
//!
//! Prints each round's ns per lookup, then the medians, their difference (the metrics' cost
//! per lookup) and the ratio; `bench/metrics.sh` relates it to the server's CPU per request.

use std::time::Instant;

use clap::Parser;
use larder::api::ApiRequest;
use larder_bench::{gof_body, in_memory_router};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};

/// `larder serve`'s latency buckets (cli/src/commands/serve.rs).
const SECONDS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
const UPKEEP_EVERY: u64 = 250_000;

#[derive(Parser)]
struct Args {
    /// Rounds per variant (alternating, the order swapped every round).
    #[arg(long, default_value_t = 15)]
    rounds: usize,
    /// Lookups per round and thread.
    #[arg(long, default_value_t = 200_000)]
    lookups: u64,
    /// Threads looking up at once, sharing the recorder (as `larder serve`'s runtime workers
    /// do: one per core), so contention on the shared histograms is in the figure.
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

/// One round on `threads` fresh threads at once: the median thread's ns per lookup.
fn round(threads: usize, lookups: u64, recorder: Option<&PrometheusRecorder>) -> f64 {
    let per_thread: Vec<f64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let go = || {
                        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
                        let router = in_memory_router(&rt);
                        let body = gof_body(1);
                        let upkeep = recorder.map(PrometheusRecorder::handle);
                        let lookup = || {
                            let resp =
                                rt.block_on(router.handle(ApiRequest::new("POST", "/get-online-features", "", &body)));
                            assert_eq!(resp.status, 200);
                        };
                        for _ in 0..lookups / 10 {
                            lookup();
                        }
                        let started = Instant::now();
                        for i in 1..=lookups {
                            lookup();
                            if i % UPKEEP_EVERY == 0
                                && let Some(h) = &upkeep
                            {
                                h.run_upkeep();
                            }
                        }
                        started.elapsed().as_nanos() as f64 / lookups as f64
                    };
                    match recorder {
                        Some(r) => metrics::with_local_recorder(r, go),
                        None => go(),
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("round")).collect()
    });
    median(&per_thread)
}

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

fn main() {
    let args = Args::parse();
    let recorder = PrometheusBuilder::new().set_buckets(SECONDS).expect("buckets").build_recorder();
    let (mut on, mut off) = (Vec::new(), Vec::new());
    println!("round  off ns/lookup  on ns/lookup");
    for r in 0..args.rounds {
        let (a, b) = if r % 2 == 0 {
            let a = round(args.threads, args.lookups, None);
            (a, round(args.threads, args.lookups, Some(&recorder)))
        } else {
            let b = round(args.threads, args.lookups, Some(&recorder));
            (round(args.threads, args.lookups, None), b)
        };
        println!("{:>5}  {a:>13.0}  {b:>12.0}", r + 1);
        off.push(a);
        on.push(b);
    }
    // The recorder saw every lookup of the "on" rounds (warm-up included).
    let text = recorder.handle().render();
    let line = text
        .lines()
        .find(|l| l.starts_with("larder_requests_total{route=\"/get-online-features\",status=\"200\"}"))
        .expect("the recorder counted the lookups");
    let counted: f64 = line.rsplit(' ').next().and_then(|n| n.parse().ok()).expect("a count");
    let want = (args.rounds as u64 * args.threads as u64 * (args.lookups + args.lookups / 10)) as f64;
    assert_eq!(counted, want, "lookups counted by the recorder");
    let paired: Vec<f64> = on.iter().zip(&off).map(|(a, b)| a - b).collect();
    let (mon, moff) = (median(&on), median(&off));
    println!(
        "median: off {moff:.0} ns, on {mon:.0} ns per lookup; metrics cost {:.0} ns per lookup \
         (median of per-round differences {:.0} ns), on/off {:.3}",
        mon - moff,
        median(&paired),
        mon / moff
    );
}
