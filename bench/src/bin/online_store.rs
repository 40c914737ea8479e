//! Load driver for the Redis online store, measured against `redis-benchmark` on the same
//! server by `bench/online_store.sh` (which starts that server; this binary never does).
//!
//! - `write`: newest-wins writes of N distinct keys x 7 features (the driver-stats shape), one
//!   `OnlineStore::write` call per run on an emptied database, so every row is written.
//! - `read`: `read_views` of K keys x 7 features (one pipelined round trip), repeated; the mean
//!   time per call of each run.
//! - `setup-reference`: fills `key:000000000000`.. with 8-field hashes of the same sizes, for
//!   redis-benchmark's HMGET reference.
//!
//! Prints one line per run and a `median` line: `write rows_per_s=...`, `read us_per_call=...`.

use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};
use larder::config::RedisType;
use larder::online::redis::{RedisOptions, RedisStore};
use larder::online::{KeyRead, OnlineStore, ViewRead, ViewWrite, WriteMode, WriteRow, read_views};
use larder::proto::types::{Value, value::Val};
use larder::registry::Registry;
use larder::time::EventTime;

#[derive(Parser)]
struct Args {
    /// The Redis to use, as a Feast connection_string (a server the caller started).
    #[arg(long)]
    addr: String,
    #[arg(long, value_enum, default_value_t = Runtime::Current)]
    runtime: Runtime,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum Runtime {
    /// One thread (a Lambda function has one or two vCPUs).
    Current,
    /// Tokio's multi-threaded scheduler, as `#[tokio::main]` sets up.
    Multi,
}

#[derive(Subcommand)]
enum Cmd {
    Write {
        #[arg(long, default_value_t = 100_000)]
        rows: usize,
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Rows per pipeline (RedisOptions::write_chunk_rows).
        #[arg(long, default_value_t = RedisOptions::default().write_chunk_rows)]
        chunk: usize,
        /// Pipelines in flight (RedisOptions::write_concurrency).
        #[arg(long, default_value_t = RedisOptions::default().write_concurrency)]
        concurrency: usize,
    },
    Read {
        /// Keys per call.
        #[arg(long, default_value_t = 100)]
        keys: usize,
        /// Calls per run.
        #[arg(long, default_value_t = 2000)]
        calls: usize,
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Distinct keys written beforehand, read in turn.
        #[arg(long, default_value_t = 100_000)]
        population: usize,
        /// Time `OnlineStore::read` (the HMGET round trip, raw bytes) instead of `read_views`
        /// (which also merges keys and decodes the values): splits the client's cost.
        #[arg(long)]
        raw: bool,
    },
    SetupReference {
        #[arg(long, default_value_t = 100_000)]
        keys: usize,
    },
}

const PROJECT: &str = "bench";

fn registry() -> Registry {
    let yaml = "
entities:
  driver: {join_key: driver_id, type: Int64}
sources:
  files: {type: file, path: data/driver_stats.parquet, timestamp_field: event_timestamp}
feature_views:
  driver_hourly_stats:
    entities: [driver]
    source: files
    features:
      conv_rate: Float32
      acc_rate: Float32
      avg_daily_trips: Int64
      miles_driven: Float64
      rating: Float32
      city: String
      is_active: Bool
";
    larder::registry::yaml::parse(yaml, "bench.yaml", PROJECT, 3).expect("bench registry")
}

fn v(val: Val) -> Value {
    Value { val: Some(val) }
}

/// The driver-stats row of driver `i`, as materialization would write it.
fn row(view: &larder::registry::FeatureView, i: usize, time: EventTime) -> WriteRow {
    let key = view.layout.key_encoder.redis_key(&[&v(Val::Int64Val(1000 + i as i64))], PROJECT).unwrap();
    let x = (i % 1000) as f32 / 1000.0;
    let values = [
        v(Val::FloatVal(x)),
        v(Val::FloatVal(1.0 - x)),
        v(Val::Int64Val((i % 997) as i64)),
        v(Val::DoubleVal(i as f64 * 0.37)),
        v(Val::FloatVal(x * 5.0)),
        v(Val::StringVal(["sf", "nyc", "la", "sea"][i % 4].into())),
        v(Val::BoolVal(!i.is_multiple_of(5))),
    ];
    WriteRow::encode(key, time, &values)
}

fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[xs.len() / 2]
}

fn raw(addr: &str) -> redis::Connection {
    redis::Client::open(format!("redis://{addr}/")).unwrap().get_connection().expect("connect for setup")
}

async fn run(args: Args) {
    let reg = registry();
    let view = reg.view("driver_hourly_stats").unwrap();
    match args.cmd {
        Cmd::Write { rows, runs, chunk, concurrency } => {
            let options =
                RedisOptions { write_chunk_rows: chunk, write_concurrency: concurrency, ..RedisOptions::default() };
            let store = RedisStore::open(&args.addr, RedisType::Redis, options).unwrap();
            store.ping().await.unwrap();
            let batch: Vec<WriteRow> = (0..rows).map(|i| row(view, i, EventTime::new(1_763_596_800, 0))).collect();
            let mut rates = Vec::new();
            for r in 0..runs {
                let _: () = redis::cmd("FLUSHALL").query(&mut raw(&args.addr)).unwrap();
                let w = ViewWrite::for_view(view, batch.clone(), WriteMode::NewestWins, None);
                let started = Instant::now();
                let stats = store.write(&w).await.unwrap();
                let took = started.elapsed();
                assert_eq!(stats.written, rows, "every row is new");
                let rate = rows as f64 / took.as_secs_f64();
                println!("write run={r} rows={rows} secs={:.3} rows_per_s={rate:.0}", took.as_secs_f64());
                rates.push(rate);
            }
            println!("write median rows_per_s={:.0}", median(&mut rates));
        }
        Cmd::Read { keys, calls, runs, population, raw } => {
            let store = RedisStore::open(&args.addr, RedisType::Redis, RedisOptions::default()).unwrap();
            let batch: Vec<WriteRow> =
                (0..population).map(|i| row(view, i, EventTime::new(1_763_596_800, 0))).collect();
            let all_keys: Vec<Vec<u8>> = batch.iter().map(|r| r.key.clone()).collect();
            store.write(&ViewWrite::for_view(view, batch, WriteMode::NewestWins, None)).await.unwrap();
            let features: Vec<usize> = (0..view.features.len()).collect();
            let request = |n: usize| -> Vec<Vec<u8>> {
                let start = (n * keys) % (population - keys + 1);
                all_keys[start..start + keys].to_vec()
            };
            // Warm up: connection, allocator, caches.
            for n in 0..calls.min(200) {
                let ks = request(n);
                read_views(&store, &[ViewRead { view, features: &features, keys: &ks }]).await.unwrap();
            }
            let mut means = Vec::new();
            for r in 0..runs {
                let requests: Vec<Vec<Vec<u8>>> = (0..calls).map(|n| request(n + r * calls)).collect();
                let mut total = Duration::ZERO;
                let mut found = 0usize;
                let mut fields: Vec<&[u8]> = view.layout.feature_fields.iter().map(|f| &f[..]).collect();
                fields.push(&view.layout.ts_field);
                for ks in &requests {
                    if raw {
                        let reads: Vec<KeyRead<'_>> =
                            ks.iter().map(|k| KeyRead { key: k, fields: fields.clone() }).collect();
                        let started = Instant::now();
                        let answer = store.read(&reads).await.unwrap();
                        total += started.elapsed();
                        found += answer.iter().filter(|r| r[7].is_some()).count();
                        continue;
                    }
                    let started = Instant::now();
                    let rows = read_views(&store, &[ViewRead { view, features: &features, keys: ks }]).await.unwrap();
                    total += started.elapsed();
                    found += rows[0].iter().filter(|r| r.is_some()).count();
                }
                assert_eq!(found, calls * keys, "every key is found");
                let us = total.as_secs_f64() * 1e6 / calls as f64;
                println!("read run={r} keys={keys} calls={calls} us_per_call={us:.1}");
                means.push(us);
            }
            println!("read median keys={keys} us_per_call={:.1}", median(&mut means));
        }
        Cmd::SetupReference { keys } => {
            // Field and value sizes like the store's: 4-byte feature fields, a 23-byte _ts field,
            // 2 to 9 byte values.
            let mut c = raw(&args.addr);
            for start in (0..keys).step_by(1000) {
                let mut p = redis::pipe();
                for i in start..(start + 1000).min(keys) {
                    p.cmd("HSET")
                        .arg(format!("key:{i:012}"))
                        .arg("f1")
                        .arg("5aaaa")
                        .arg("f2")
                        .arg("5bbbb")
                        .arg("f3")
                        .arg("ccc")
                        .arg("f4")
                        .arg("9dddddddd")
                        .arg("f5")
                        .arg("5eeee")
                        .arg("f6")
                        .arg("4fff")
                        .arg("f7")
                        .arg("2g")
                        .arg("f8")
                        .arg("6hhhhh")
                        .ignore();
                }
                p.exec(&mut c).unwrap();
            }
            println!("setup-reference keys={keys}");
        }
    }
}

fn main() {
    let args = Args::parse();
    let rt = match args.runtime {
        Runtime::Current => tokio::runtime::Builder::new_current_thread().enable_all().build(),
        Runtime::Multi => tokio::runtime::Builder::new_multi_thread().enable_all().build(),
    }
    .expect("tokio runtime");
    rt.block_on(run(args));
}
