//! What the caller of a materialization can watch while it runs. The scan and the writer both
//! count here, so it sits below both.

use std::sync::atomic::AtomicU64;

/// Counters the caller can watch while a scan runs (the CLI's progress bar).
#[derive(Debug, Default)]
pub struct Progress {
    /// Rows in the row groups that will be read.
    pub rows_total: AtomicU64,
    /// Rows decoded so far.
    pub rows_read: AtomicU64,
    /// Entity rows written to the online store so far (all views).
    pub keys_written: AtomicU64,
    /// Entity rows handed to the writer so far (all views); grows while the scan runs.
    pub keys_total: AtomicU64,
}
