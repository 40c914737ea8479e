//! The limit for get-online-features: the same Redis reads a request makes, issued by a plain
//! Redis client with nothing else around them. `bench/retrieval.sh` runs this next to `wrk`
//! against `larder serve` and `feast serve`, on the same server and the same request body.
//!
//! From a get-online-features JSON body and the repository's registry, this computes exactly
//! the HMGETs Larder sends (one per distinct entity key, the requested features of every view
//! on that key plus each view's `_ts:<view>` field), then sends them as one pipeline per
//! "request", back to back, on `--connections` threads for `--duration` seconds, and prints
//! `NAME c=N p50 .. p99 .. req/s` like the script's wrk lines.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;
use larder::config::RepoConfig;
use larder::value::from_json;

#[derive(Parser)]
struct Args {
    /// Label of the output line.
    #[arg(long, default_value = "raw-hmget")]
    name: String,
    /// The feature repository whose registry the body refers to.
    #[arg(long)]
    repo: PathBuf,
    /// host:port of a Redis the caller started.
    #[arg(long)]
    addr: String,
    /// A get-online-features request body (`features` and `entities`).
    #[arg(long)]
    body: PathBuf,
    #[arg(long, default_value_t = 1)]
    connections: usize,
    /// Seconds per run.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
}

/// One HMGET of the pipeline.
struct Hmget {
    key: Vec<u8>,
    fields: Vec<Vec<u8>>,
}

fn plan(args: &Args) -> Vec<Hmget> {
    let config = RepoConfig::load(Some(&args.repo)).expect("feature_store.yaml");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let registry =
        rt.block_on(larder::registry::load(&config, &larder::storage::Storage::default())).expect("registry");
    let body: serde_json::Value = serde_json::from_slice(&std::fs::read(&args.body).expect("body file")).unwrap();
    let entities = body["entities"].as_object().expect("entities");
    let rows = entities.values().next().and_then(|v| v.as_array()).map_or(0, Vec::len);

    // Requested features grouped by view, in request order.
    let mut by_view: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for f in body["features"].as_array().expect("features: a list of view:feature") {
        let (view, feature) = f.as_str().unwrap().split_once(':').expect("view:feature");
        by_view.entry(view).or_default().push(feature);
    }

    let mut hmgets: Vec<Hmget> = Vec::new();
    let mut by_key: HashMap<Vec<u8>, usize> = HashMap::new();
    for (view_name, features) in &by_view {
        let view = registry.view(view_name).expect("view");
        for row in 0..rows {
            let values: Vec<_> = view
                .entity_columns
                .iter()
                .map(|c| from_json(&entities[&c.name][row], c.dtype).expect("entity value"))
                .collect();
            let refs: Vec<_> = values.iter().collect();
            let key = view.layout.key_encoder.redis_key(&refs, &config.project).unwrap();
            let h = *by_key.entry(key.clone()).or_insert_with(|| {
                hmgets.push(Hmget { key, fields: Vec::new() });
                hmgets.len() - 1
            });
            let fields = &mut hmgets[h].fields;
            for f in features {
                let (i, _) = view.feature(f).expect("feature");
                fields.push(view.layout.feature_fields[i].to_vec());
            }
            fields.push(view.layout.ts_field.clone());
        }
    }
    hmgets
}

fn main() {
    let args = Args::parse();
    let hmgets = plan(&args);
    let fields: usize = hmgets.iter().map(|h| h.fields.len()).sum();
    let mut pipe = redis::pipe();
    for h in &hmgets {
        pipe.cmd("HMGET").arg(&h.key).arg(&h.fields);
    }
    let client = redis::Client::open(format!("redis://{}/", args.addr)).unwrap();
    let duration = Duration::from_secs_f64(args.duration);

    let threads: Vec<_> = (0..args.connections)
        .map(|_| {
            let mut conn = client.get_connection().expect("connect");
            let pipe = pipe.clone();
            std::thread::spawn(move || {
                let mut latencies = Vec::new();
                let mut present = 0usize;
                let start = Instant::now();
                while start.elapsed() < duration {
                    let t = Instant::now();
                    let answers: Vec<Vec<Option<Vec<u8>>>> = pipe.query(&mut conn).expect("HMGET pipeline");
                    latencies.push(t.elapsed());
                    present = answers.iter().flatten().filter(|v| v.is_some()).count();
                }
                (latencies, present)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut present = 0;
    for t in threads {
        let (l, p) = t.join().unwrap();
        all.extend(l);
        present = p;
    }
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    let us = |d: Duration| format!("{:.0}us", d.as_secs_f64() * 1e6);
    println!(
        "{:<28} c={:<2} p50 {:<9} p99 {:<9} {:.2} req/s   ({} HMGETs, {} fields, {} present)",
        args.name,
        args.connections,
        us(pct(0.50)),
        us(pct(0.99)),
        all.len() as f64 / args.duration,
        hmgets.len(),
        fields,
        present
    );
}
