//! CloudWatch embedded metric format (EMF) for the Lambda functions: the metrics of one
//! invocation are collected in memory and written to stdout as EMF JSON lines after it, which
//! CloudWatch Logs turns into metrics without any API call.
//!
//! Built on `metrics_cloudwatch_embedded`: one JSON document per distinct label set (CloudWatch
//! dimensions), counters as the count since the last flush, histograms as value arrays (so
//! CloudWatch computes percentiles), gauges as their current value. Each document carries the
//! invocation's request id as a property, so a metric line can be found next to its logs.
//!
//! The collector keeps at most 100 values per histogram between flushes (EMF's limit per
//! metric); Larder records histograms per request, per write or per batch, never per row, so
//! one invocation stays far below it.

use std::io::Write;

use metrics_cloudwatch_embedded::Builder;

use crate::error::{Error, Result};

/// The namespace when `LARDER_METRICS_NAMESPACE` is not set (the SAM template sets
/// `Larder/<stack name>`).
pub const DEFAULT_NAMESPACE: &str = "Larder";

/// The installed EMF recorder of a Lambda function.
pub struct Emf {
    collector: &'static metrics_cloudwatch_embedded::Collector,
}

impl Emf {
    /// Installs the process's recorder, with the namespace from `LARDER_METRICS_NAMESPACE`;
    /// `None` when `LARDER_METRICS` is `off` (metrics then cost nothing).
    pub fn from_env() -> Result<Option<Emf>> {
        if std::env::var("LARDER_METRICS").is_ok_and(|v| v.eq_ignore_ascii_case("off")) {
            return Ok(None);
        }
        let namespace = std::env::var("LARDER_METRICS_NAMESPACE")
            .ok()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string());
        Self::install(namespace).map(Some)
    }

    /// Installs the process's recorder. Fails if another recorder is installed already.
    pub fn install(namespace: String) -> Result<Emf> {
        let collector = Builder::new()
            .cloudwatch_namespace(namespace)
            .init()
            .map_err(|e| Error::Config(format!("cannot install the metrics recorder: {e}")))?;
        super::describe();
        Ok(Emf { collector })
    }

    /// Writes what was recorded since the last flush to stdout (where Lambda's log stream
    /// picks it up), tagged with the invocation's `request_id`.
    pub fn flush(&self, request_id: &str) {
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        if let Err(e) = self.flush_to(request_id, &mut out) {
            tracing::warn!(error = %e, "could not write the invocation's metrics");
        }
    }

    /// [`Emf::flush`] into any writer (tests).
    pub fn flush_to(&self, request_id: &str, out: &mut impl Write) -> std::io::Result<()> {
        self.collector.set_property("requestId", request_id.to_string());
        // One buffered write: a log line must not interleave with another writer's.
        let mut buf = Vec::with_capacity(4096);
        self.collector.flush(&mut buf)?;
        out.write_all(&buf)?;
        out.flush()
    }
}
