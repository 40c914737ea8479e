//! `push-bench`: the push function's handler on Kinesis batches of single-row records, in
//! process, from the raw event bytes (what the Lambda runtime hands over) to the online store.
//!
//! - `decode`: the same path with a store that drops writes: event parse, record parse,
//!   conversion, chunking; what the CPU costs before Redis.
//! - `end-to-end`: the same path writing to the repo's Redis (newest wins, one script call
//!   per key, pipelined).
//! - `http`: `POST /push` with 100 rows through the push function's router (no HTTP server: `push.sh`
//!   measures that through `larder serve` with wrk).
//!
//! Every run uses a new event time, so every row is really written. Prints one line per
//! measurement with the median, min and max of the runs.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use clap::Parser;
use larder::api::{ApiRequest, Health, PushRoutes, Router, Services};
use larder::aws::Aws;
use larder::config::RepoConfig;
use larder::online::testing::NullStore;
use larder::push::PushSettings;
use larder::push::dead_letter::LogSink;
use larder::registry::RegistryCache;
use larder_bench::run_kinesis;
use push_function::App;
use serde_json::json;

type Bytes = Vec<u8>;

#[derive(Parser)]
struct Args {
    /// Feature repository: feature_store.yaml naming the Redis to write to, registry applied.
    #[arg(long)]
    repo: PathBuf,
    /// Push source the rows belong to.
    #[arg(long, default_value = "driver_stats_push_source")]
    source: String,
    /// Records per Kinesis batch (one row each).
    #[arg(long, default_value_t = 10_000)]
    records: usize,
    /// Measured runs per measurement (after one warm-up run).
    #[arg(long, default_value_t = 15)]
    runs: usize,
    /// Which measurements: decode, end-to-end, http (comma-separated).
    #[arg(long, default_value = "decode,end-to-end,http")]
    only: String,
    /// Tokio scheduler: `current` (one thread, as the push function runs) or `multi`.
    #[arg(long, default_value = "current")]
    runtime: String,
}

fn row(driver: usize, ts: &str) -> serde_json::Value {
    json!({"driver_id": 1000 + driver, "event_timestamp": ts, "created": ts,
           "conv_rate": (driver % 100) as f64 / 100.0, "acc_rate": 0.9, "avg_daily_trips": driver % 50,
           "miles_driven": 120.5, "rating": 4.5, "city": "sf", "is_active": driver.is_multiple_of(2)})
}

fn ts(run: usize) -> String {
    let t = larder::time::EventTime::now().add_secs(run as i64);
    t.to_rfc3339()
}

/// A Kinesis event of `n` single-row records, as the Lambda runtime receives it.
fn kinesis_event(n: usize, ts: &str) -> Bytes {
    let arn = "arn:aws:kinesis:us-east-1:123456789012:stream/driver-events";
    let records: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            let seq = format!("4965{:052}", i);
            json!({
                "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": (1000 + i).to_string(), "sequenceNumber": seq,
                            "data": B64.encode(serde_json::to_vec(&row(i, ts)).unwrap()), "approximateArrivalTimestamp": 1767261600.5},
                "eventSource": "aws:kinesis", "eventVersion": "1.0", "eventID": format!("shardId-000000000000:{seq}"),
                "eventName": "aws:kinesis:record", "invokeIdentityArn": "arn:aws:iam::123456789012:role/larder-push",
                "awsRegion": "us-east-1", "eventSourceARN": arn,
            })
        })
        .collect();
    serde_json::to_vec(&json!({ "Records": records })).unwrap()
}

fn push_100(ts: &str) -> Bytes {
    let rows: Vec<serde_json::Value> = (0..100).map(|i| row(i, ts)).collect();
    let mut df = serde_json::Map::new();
    for key in rows[0].as_object().unwrap().keys() {
        df.insert(key.clone(), rows.iter().map(|r| r[key].clone()).collect());
    }
    serde_json::to_vec(&json!({"push_source_name": "driver_stats_push_source", "df": df, "to": "online"})).unwrap()
}

fn report(name: &str, rows: usize, mut times: Vec<Duration>) {
    times.sort();
    let median = times[times.len() / 2];
    let rate = rows as f64 / median.as_secs_f64();
    println!(
        "{name:<34} {rows:>6} rows  median {:>8.2} ms  ({:>9.0} rows/s)  min {:.2} ms  max {:.2} ms  runs {}",
        median.as_secs_f64() * 1e3,
        rate,
        times[0].as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3,
        times.len()
    );
}

fn main() -> larder::Result<()> {
    let args = Args::parse();
    let rt = match args.runtime.as_str() {
        "current" => tokio::runtime::Builder::new_current_thread().enable_all().build(),
        "multi" => tokio::runtime::Builder::new_multi_thread().enable_all().build(),
        other => panic!("--runtime {other}: use current or multi"),
    }
    .expect("tokio runtime");
    rt.block_on(run(args))
}

async fn run(args: Args) -> larder::Result<()> {
    let cfg = RepoConfig::load(Some(&args.repo))?;
    let aws = Aws::new();
    let registry = RegistryCache::load(&cfg, &larder::storage::Storage::new(&aws)).await?;
    let settings = PushSettings { default_source: Some(args.source.clone()), ..Default::default() };
    let only: Vec<&str> = args.only.split(',').map(str::trim).collect();

    if only.contains(&"decode") {
        let services = Services::new(cfg.clone(), registry.clone(), Arc::new(NullStore));
        let app = App::new(services, settings.clone(), &aws, Arc::new(LogSink));
        let mut times = Vec::new();
        for run in 0..=args.runs {
            let bytes = kinesis_event(args.records, &ts(run));
            let t = run_kinesis(&app, &bytes).await;
            if run > 0 {
                times.push(t);
            }
        }
        report("kinesis batch, decode only", args.records, times);
    }

    let store = if only.contains(&"end-to-end") || only.contains(&"http") {
        Some(larder::online::connect(&cfg, &aws).await?)
    } else {
        None
    };
    if let (true, Some(store)) = (only.contains(&"end-to-end"), &store) {
        let services = Services::new(cfg.clone(), registry.clone(), store.clone());
        let app = App::new(services, settings.clone(), &aws, Arc::new(LogSink));
        let mut times = Vec::new();
        for run in 0..=args.runs {
            let bytes = kinesis_event(args.records, &ts(1000 + run));
            let t = run_kinesis(&app, &bytes).await;
            if run > 0 {
                times.push(t);
            }
        }
        report("kinesis batch, end to end (Redis)", args.records, times);
    }
    if let (true, Some(store)) = (only.contains(&"http"), &store) {
        let services = Services::new(cfg.clone(), registry.clone(), store.clone());
        let router = Router::new(services).with(Health).with(PushRoutes::sync_only());
        let mut times = Vec::new();
        let runs = args.runs * 20;
        for run in 0..=runs {
            let body = push_100(&ts(100_000 + run));
            let start = Instant::now();
            let r = router.handle(ApiRequest::new("POST", "/push", "", &body)).await;
            let t = start.elapsed();
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
            if run > 0 {
                times.push(t);
            }
        }
        report("POST /push 100 rows, in process", 100, times);
    }
    Ok(())
}
