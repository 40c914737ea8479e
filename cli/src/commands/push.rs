//! `larder push`: Feast push requests, write requests or flat rows from files or stdin,
//! written to the online store the way the push function writes a stream batch: in order,
//! newest event wins, a bad record reported (and kept with `--dead-letters`) while the others
//! are written.
//!
//! Input: one JSON object, a JSON array of objects, or JSON lines (one object per line).

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use larder::aws::Aws;
use larder::online::OnlineStore;
use larder::online::memory::MemoryStore;
use larder::push::dead_letter::{DeadLetter, MemorySink, Position};
use larder::push::stream::{Lane, OnFailure, Processor, StreamRecord};
use larder::push::{PushSettings, WriteOptions, enqueue, prepare, request};
use larder::registry::RegistryCache;
use larder::storage::Storage;
use larder::{Error, Result};
use serde_json::value::RawValue;

use super::RepoArgs;

#[derive(Args)]
pub struct PushArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// Files to push: a JSON object, a JSON array of objects, or JSON lines. Each object is a
    /// Feast push request, a write request, or a flat row. None, or `-`: standard input.
    pub files: Vec<PathBuf>,
    /// Push source of rows that name none (default: LARDER_PUSH_SOURCE).
    #[arg(long, conflicts_with = "view")]
    pub source: Option<String>,
    /// Write rows that name no push source to this one feature view instead.
    #[arg(long)]
    pub view: Option<String>,
    /// Put the pushes on a Kinesis stream (the push function applies them) instead of writing.
    #[arg(long = "async")]
    pub enqueue: bool,
    /// Kinesis stream (name or ARN) for --async.
    #[arg(long, env = "LARDER_PUSH_STREAM")]
    pub stream: Option<String>,
    /// Write rejected records to this file as dead letters (JSON lines), to fix and push again.
    #[arg(long)]
    pub dead_letters: Option<PathBuf>,
    /// Check every record against the registry without writing anything.
    #[arg(long, conflicts_with = "enqueue")]
    pub dry_run: bool,
}

/// One input record and where it is.
fn split(path: &str, data: &[u8]) -> Vec<StreamRecord> {
    let line_of = |offset: usize| data[..offset].iter().filter(|b| **b == b'\n').count() + 1;
    let record =
        |line: usize, bytes: &[u8]| StreamRecord::new(Position::File { path: path.to_string(), line }, bytes.to_vec());
    if let Ok(whole) = serde_json::from_slice::<&RawValue>(data) {
        let text = whole.get();
        if text.starts_with('[')
            && let Ok(items) = serde_json::from_str::<Vec<&RawValue>>(text)
        {
            return items
                .into_iter()
                .map(|item| {
                    let offset = item.get().as_ptr() as usize - data.as_ptr() as usize;
                    record(line_of(offset), item.get().as_bytes())
                })
                .collect();
        }
        let offset = text.as_ptr() as usize - data.as_ptr() as usize;
        return vec![record(line_of(offset), text.as_bytes())];
    }
    data.split(|b| *b == b'\n')
        .enumerate()
        .filter(|(_, l)| !l.iter().all(u8::is_ascii_whitespace))
        .map(|(i, l)| record(i + 1, l))
        .collect()
}

fn read_inputs(files: &[PathBuf]) -> Result<Vec<StreamRecord>> {
    let mut records = Vec::new();
    let stdin = [PathBuf::from("-")];
    for path in if files.is_empty() { &stdin[..] } else { files } {
        let (name, data) = if path.as_os_str() == "-" {
            let mut data = Vec::new();
            std::io::stdin().read_to_end(&mut data).map_err(|e| Error::Config(format!("cannot read stdin: {e}")))?;
            ("stdin".to_string(), data)
        } else {
            let data =
                std::fs::read(path).map_err(|e| Error::Config(format!("cannot read {}: {e}", path.display())))?;
            (path.display().to_string(), data)
        };
        records.extend(split(&name, &data));
    }
    Ok(records)
}

/// `--view V`: a flat row that names no destination is written to V.
fn with_view(records: &mut [StreamRecord], view: &str) {
    for r in records {
        if let Ok(serde_json::Value::Object(mut o)) = serde_json::from_slice(&r.data) {
            let named = ["push_source_name", "feature_view_name", "df"].iter().any(|k| o.contains_key(*k));
            if !named {
                o.insert("feature_view_name".into(), serde_json::Value::String(view.to_string()));
                r.data = serde_json::to_vec(&o).unwrap_or_default();
            }
        }
    }
}

fn report(letters: &[DeadLetter], file: Option<&PathBuf>) -> Result<()> {
    for l in letters {
        eprintln!("rejected {}: {}", l.position, l.reason);
    }
    if let Some(path) = file {
        let mut out = Vec::new();
        for l in letters {
            out.extend_from_slice(&l.to_json(usize::MAX));
            out.push(b'\n');
        }
        std::fs::write(path, out).map_err(|e| Error::Config(format!("cannot write {}: {e}", path.display())))?;
    }
    Ok(())
}

pub async fn run(a: PushArgs, aws: &Aws) -> Result<()> {
    let cfg = a.repo.config()?;
    let mut settings = PushSettings::from_env()?;
    if a.source.is_some() {
        settings.default_source = a.source.clone();
    }
    let mut records = read_inputs(&a.files)?;
    if let Some(view) = &a.view {
        with_view(&mut records, view);
    }
    let registry = RegistryCache::load(&cfg, &Storage::new(aws)).await?;
    let total = records.len();
    if a.enqueue {
        return enqueue_all(&a, &settings, &registry, aws, records).await;
    }
    let store: Arc<dyn OnlineStore> =
        if a.dry_run { Arc::new(MemoryStore::new()) } else { larder::online::connect(&cfg, aws).await? };
    let sink = MemorySink::new();
    let lane = Lane { stream: "input".into(), records };
    let processor = Processor {
        registry: &registry,
        store: store.as_ref(),
        settings: &settings,
        options: WriteOptions::from_config(&cfg),
        dead_letters: &sink,
    };
    let outcome = processor.process(std::slice::from_ref(&lane), OnFailure::RetryFromFirstFailure).await;
    let letters = sink.letters();
    report(&letters, a.dead_letters.as_ref())?;
    if let (Some(from), Some(e)) = (outcome.lanes[0].failed_from, &outcome.error) {
        // Rows are newest-wins, so pushing them again changes nothing; window aggregations of
        // lines of a file are applied at least once, so for them only the rest should go again.
        let again = if outcome.stats.aggregated > 0 {
            format!(
                "push the lines from {} on again (window aggregations would count the others twice)",
                lane.records[from].position
            )
        } else {
            "pushing everything again is harmless".to_string()
        };
        return Err(Error::unavailable(format!(
            "records from {} on were not written ({e}); the {} before were: {again}",
            lane.records[from].position, from
        )));
    }
    if a.dry_run {
        // Checked against an empty in-memory store: what the online store holds is not read, so
        // nothing can be said of which rows would be newer.
        println!("checked (nothing written): {} records, {} rows valid", total - letters.len(), outcome.stats.rows);
    } else {
        let s = &outcome.stats;
        // Stream views' window aggregations: events applied, and late ones (listed as rejected).
        let windows = if s.aggregated + s.late > 0 {
            format!("; window aggregations: {} events applied, {} late", s.aggregated, s.late)
        } else {
            String::new()
        };
        println!(
            "pushed: {} records, {} rows; {} written, {} not newer than the stored event{windows}",
            total - letters.len(),
            s.rows,
            s.written,
            s.skipped
        );
    }
    if letters.is_empty() {
        Ok(())
    } else {
        Err(Error::InvalidValue(format!("{} of {total} records were rejected (listed above)", letters.len())))
    }
}

async fn enqueue_all(
    a: &PushArgs,
    settings: &PushSettings,
    registry: &Arc<RegistryCache>,
    aws: &Aws,
    records: Vec<StreamRecord>,
) -> Result<()> {
    let stream =
        a.stream.clone().or_else(|| settings.async_stream.clone()).ok_or_else(|| {
            Error::Config("--async needs a Kinesis stream: --stream NAME or LARDER_PUSH_STREAM".into())
        })?;
    let reg = registry.get();
    let mut queued = Vec::new();
    let mut letters = Vec::new();
    for r in &records {
        let checked = request::parse_record(&r.data, settings.default_source.as_deref(), "the input")
            .and_then(|push| prepare(&reg, &push).and_then(|p| enqueue::records_for(&push, &p)));
        match checked {
            Ok(q) => queued.extend(q),
            Err(e) => letters.push(DeadLetter::new(r.position.clone(), &e, r.data.clone())),
        }
    }
    report(&letters, a.dead_letters.as_ref())?;
    enqueue::put_records(aws.kinesis().get().await, &stream, &queued).await?;
    println!(
        "enqueued: {} records ({} rows) on Kinesis stream {stream}",
        queued.len(),
        queued.iter().map(|q| q.rows).sum::<usize>()
    );
    if letters.is_empty() {
        Ok(())
    } else {
        Err(Error::InvalidValue(format!("{} of {} records were rejected (listed above)", letters.len(), records.len())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(records: &[StreamRecord]) -> Vec<(usize, String)> {
        records
            .iter()
            .map(|r| match &r.position {
                Position::File { line, .. } => (*line, String::from_utf8(r.data.clone()).unwrap()),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn inputs_are_an_object_an_array_or_json_lines() {
        assert_eq!(lines(&split("f", b"\n{\"a\": 1}\n")), vec![(2, "{\"a\": 1}".to_string())]);
        assert_eq!(
            lines(&split("f", b"[\n  {\"a\": 1},\n  {\"a\": 2}\n]")),
            vec![(2, "{\"a\": 1}".to_string()), (3, "{\"a\": 2}".to_string())]
        );
        assert_eq!(
            lines(&split("f", b"{\"a\": 1}\n\nnot json\n{\"a\": 3}\n")),
            vec![(1, "{\"a\": 1}".to_string()), (3, "not json".to_string()), (4, "{\"a\": 3}".to_string())]
        );
    }

    #[test]
    fn view_applies_only_to_rows_that_name_nothing() {
        let mut r = split("f", b"{\"a\": 1}\n{\"a\": 2, \"push_source_name\": \"s\"}\n");
        with_view(&mut r, "v");
        let first: serde_json::Value = serde_json::from_slice(&r[0].data).unwrap();
        let second: serde_json::Value = serde_json::from_slice(&r[1].data).unwrap();
        assert_eq!(first["feature_view_name"], "v");
        assert!(second.get("feature_view_name").is_none());
    }
}
