//! `agg-bench`: what stream window aggregations cost, against the same work without them, in
//! the same run (`bench/aggregations.sh` runs it on a private Redis with the repo of
//! `bench/aggregations/`).
//!
//! - `push`: Kinesis batches of `--records` single-row records through the push function's
//!   handler, in process, from the raw event bytes to Redis: into three stream views of six
//!   aggregations each (source `readings`), and into three plain views of the same columns
//!   (source `plain`), and into one view of three `count_distinct` aggregations (source
//!   `distinct`), alternating. Every run uses new positions and event times, so every
//!   event is applied. Redis's own CPU per record (INFO cpu) is measured around each run.
//! - `read`: get-online-features through the function's router, in process: 1 entity x 7 plain
//!   features, against the same request with 6 aggregated features added; and the same for 100
//!   entities. Alternating, p50 and p99 of `--reads` requests each.
//! - `memory`: two hours of readings every 30 s for 200 sensors, then Redis's MEMORY USAGE of
//!   each view's tile keys: bytes per entity per aggregating view in steady state.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use clap::Parser;
use larder::api::{ApiRequest, Health, Retrieval, Router, Services};
use larder::aws::Aws;
use larder::config::RepoConfig;
use larder::push::PushSettings;
use larder::push::dead_letter::LogSink;
use larder::registry::RegistryCache;
use larder::time::EventTime;
use larder_bench::run_kinesis;
use push_function::App;
use serde_json::json;

#[derive(Parser)]
struct Args {
    /// The repo of bench/aggregations, applied, its feature_store.yaml naming the Redis.
    #[arg(long)]
    repo: PathBuf,
    /// host:port of that Redis (INFO and MEMORY USAGE are read from it).
    #[arg(long)]
    addr: String,
    /// Records per Kinesis batch.
    #[arg(long, default_value_t = 10_000)]
    records: usize,
    /// Distinct sensors in a batch.
    #[arg(long, default_value_t = 1_000)]
    sensors: usize,
    /// Measured runs per kind of batch (after one warm-up run each).
    #[arg(long, default_value_t = 15)]
    runs: usize,
    /// Requests per kind of read.
    #[arg(long, default_value_t = 3_000)]
    reads: usize,
    /// Which measurements: push, read, memory (comma-separated).
    #[arg(long, default_value = "push,read,memory")]
    only: String,
}

const SEQ_PREFIX: &str = "4965";

/// A Kinesis event of `n` records from `first_seq` on, sensor `i % sensors`, event times spread
/// over the ten seconds from `start`.
fn kinesis_event(n: usize, sensors: usize, first_seq: usize, start: EventTime) -> Vec<u8> {
    let arn = "arn:aws:kinesis:us-east-1:123456789012:stream/readings";
    let start_us = start.as_micros();
    let records: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            let seq = format!("{SEQ_PREFIX}{:052}", first_seq + i);
            let t = start_us + (i as i64 * 10_000_000) / n as i64;
            let s = i % sensors;
            let row = json!({"sensor_id": s, "event_timestamp": t, "value": (i % 97) as f64 * 0.5,
                             "temp": 20.0 + (s % 10) as f64, "humidity": 0.4, "pressure": 1013.2, "battery": 0.9,
                             "rssi": -60, "status": "ok"});
            json!({
                "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": s.to_string(), "sequenceNumber": seq,
                            "data": B64.encode(serde_json::to_vec(&row).unwrap()), "approximateArrivalTimestamp": 1767261600.5},
                "eventSource": "aws:kinesis", "eventVersion": "1.0", "eventID": format!("shardId-000000000000:{seq}"),
                "eventName": "aws:kinesis:record", "awsRegion": "us-east-1", "eventSourceARN": arn,
            })
        })
        .collect();
    serde_json::to_vec(&json!({ "Records": records })).unwrap()
}

/// Redis's CPU seconds so far (user + system), from INFO cpu.
fn redis_cpu(c: &mut redis::Connection) -> f64 {
    let info: String = redis::cmd("INFO").arg("cpu").query(c).unwrap();
    info.lines()
        .filter_map(|l| l.strip_prefix("used_cpu_user:").or_else(|| l.strip_prefix("used_cpu_sys:")))
        .map(|v| v.trim().parse::<f64>().unwrap())
        .sum()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 * p) as usize).min(v.len() - 1)]
}

fn main() -> larder::Result<()> {
    let args = Args::parse();
    // One thread, as the push function runs.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    rt.block_on(run(args))
}

async fn run(args: Args) -> larder::Result<()> {
    let cfg = RepoConfig::load(Some(&args.repo))?;
    let aws = Aws::new();
    let registry = RegistryCache::load(&cfg, &larder::storage::Storage::new(&aws)).await?;
    let store = larder::online::connect(&cfg, &aws).await?;
    let mut redis = redis::Client::open(format!("redis://{}", args.addr)).unwrap().get_connection().unwrap();
    let only: Vec<&str> = args.only.split(',').map(str::trim).collect();
    let app = |source: &str| {
        let services = Services::new(cfg.clone(), registry.clone(), store.clone());
        let settings = PushSettings { default_source: Some(source.into()), ..Default::default() };
        App::new(services, settings, &aws, Arc::new(LogSink))
    };

    if only.contains(&"push") {
        let (aggregated, plain, distinct) = (app("readings"), app("plain"), app("distinct"));
        // [aggregated, plain, distinct]: seconds per batch and Redis CPU seconds per batch.
        let mut times = [Vec::new(), Vec::new(), Vec::new()];
        let mut cpu = [Vec::new(), Vec::new(), Vec::new()];
        let start = EventTime::now();
        for run in 0..=args.runs {
            for (k, app) in [&aggregated, &plain, &distinct].into_iter().enumerate() {
                let seq = (run * 3 + k) * args.records;
                let bytes = kinesis_event(args.records, args.sensors, seq, start.add_secs(10 * run as i64));
                let before = redis_cpu(&mut redis);
                let t = run_kinesis(app, &bytes).await;
                let used = redis_cpu(&mut redis) - before;
                if run > 0 {
                    times[k].push(t.as_secs_f64());
                    cpu[k].push(used);
                }
            }
        }
        let n = args.records as f64;
        let labels =
            ["3 stream views x 6 aggregations", "3 plain views (no aggregations)", "1 view x 3 count_distinct"];
        let mut rates = [0.0; 3];
        for k in 0..3 {
            let t = median(&mut times[k]);
            let c = median(&mut cpu[k]);
            rates[k] = n / t;
            println!(
                "push {:<34} {} records, {} sensors: median {:>7.2} ms  {:>9.0} records/s  ({:>9.0} view-events/s)  Redis CPU {:>5.2} us/record",
                labels[k],
                args.records,
                args.sensors,
                t * 1e3,
                n / t,
                3.0 * n / t,
                c / n * 1e6
            );
        }
        println!("push aggregated / plain throughput: {:.2}", rates[0] / rates[1]);
        println!("push count_distinct / plain throughput: {:.2}", rates[2] / rates[1]);
    }

    if only.contains(&"read") {
        let services = Services::new(cfg.clone(), registry.clone(), store.clone());
        let router = Router::new(services).with(Health).with(Retrieval);
        let plain: Vec<String> = ["value", "temp", "humidity", "pressure", "battery", "rssi", "status"]
            .iter()
            .map(|f| format!("plain_a:{f}"))
            .collect();
        let aggregated: Vec<String> = [
            "agg_minute:avg_value_60s",
            "agg_minute:std_value_60s",
            "agg_hour:avg_value_3600s",
            "agg_hour:max_value_3600s",
            "agg_tiled:avg_value_600s",
            "agg_tiled:last_temp_600s",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for entities in [1usize, 100] {
            let ids: Vec<usize> = (0..entities).collect();
            let body = |features: &[String]| {
                serde_json::to_vec(&json!({"features": features, "entities": {"sensor_id": ids}})).unwrap()
            };
            let mixed: Vec<String> = aggregated.iter().chain(&plain).cloned().collect();
            let bodies = [body(&plain), body(&mixed)];
            let mut lat = [Vec::new(), Vec::new()];
            for i in 0..args.reads + 100 {
                for (k, b) in bodies.iter().enumerate() {
                    let start = Instant::now();
                    let r = router.handle(ApiRequest::new("POST", "/get-online-features", "", b)).await;
                    let t = start.elapsed();
                    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
                    if i >= 100 {
                        lat[k].push(t);
                    }
                }
            }
            let (p50p, p99p) = (percentile(&mut lat[0], 0.5), percentile(&mut lat[0], 0.99));
            let (p50m, p99m) = (percentile(&mut lat[1], 0.5), percentile(&mut lat[1], 0.99));
            println!(
                "read {entities:>3} entities: 7 plain p50 {:>7.1} us p99 {:>7.1} us | 6 aggregated + 7 plain p50 {:>7.1} us p99 {:>7.1} us | p50 ratio {:.2}",
                p50p.as_secs_f64() * 1e6,
                p99p.as_secs_f64() * 1e6,
                p50m.as_secs_f64() * 1e6,
                p99m.as_secs_f64() * 1e6,
                p50m.as_secs_f64() / p50p.as_secs_f64()
            );
        }
    }

    if only.contains(&"memory") {
        // Two hours of readings every 30 s for 200 sensors (sensors 100000..), pushed in order
        // through the handler in batches of 2,400 records: the tiles of a steady state.
        let (aggregated, distinct) = (app("readings"), app("distinct"));
        let sensors = 200usize;
        let now = EventTime::now().as_micros();
        let steps = 240usize;
        let mut seq = 1_000_000_000usize;
        for block in (0..steps).collect::<Vec<_>>().chunks(12) {
            let mut records = Vec::new();
            for &step in block {
                let t = now - 2 * 3_600_000_000 + step as i64 * 30_000_000;
                for s in 0..sensors {
                    seq += 1;
                    let id = 100_000 + s;
                    let row = json!({"sensor_id": id, "event_timestamp": t, "value": (step % 13) as f64, "temp": 20.5,
                                     "humidity": 0.4, "pressure": 1013.2, "battery": 0.9, "rssi": -60, "status": "ok"});
                    let sq = format!("{SEQ_PREFIX}{seq:052}");
                    records.push(json!({
                        "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": id.to_string(), "sequenceNumber": sq,
                                    "data": B64.encode(serde_json::to_vec(&row).unwrap()), "approximateArrivalTimestamp": 1767261600.5},
                        "eventSource": "aws:kinesis", "eventVersion": "1.0", "eventID": format!("shardId-000000000000:{sq}"),
                        "eventName": "aws:kinesis:record", "awsRegion": "us-east-1",
                        "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/readings",
                    }));
                }
            }
            let batch = serde_json::to_vec(&json!({ "Records": records })).unwrap();
            run_kinesis(&aggregated, &batch).await;
            run_kinesis(&distinct, &batch).await;
        }
        let reg = registry.get();
        for view in ["agg_minute", "agg_hour", "agg_tiled", "agg_distinct"] {
            let v = &reg.feature_views[view];
            let mut bytes = Vec::new();
            let mut fields = Vec::new();
            for s in 0..sensors {
                let id =
                    larder::value::Value { val: Some(larder::proto::types::value::Val::Int64Val(100_000 + s as i64)) };
                let key = v.layout.key_encoder.redis_key(&[&id], &reg.project).unwrap();
                let tile_key = larder::aggregate::tile_key(view, &key);
                let used: Option<f64> =
                    redis::cmd("MEMORY").arg("USAGE").arg(&tile_key).arg("SAMPLES").arg(0).query(&mut redis).unwrap();
                let n: f64 = redis::cmd("HLEN").arg(&tile_key).query(&mut redis).unwrap();
                bytes.push(used.expect("the tile key exists"));
                fields.push(n);
            }
            println!(
                "memory {view:<10} {:>6.0} bytes per entity (median of {sensors}), {:>4.0} fields (tiles and marks)",
                median(&mut bytes),
                median(&mut fields)
            );
        }
    }
    Ok(())
}
