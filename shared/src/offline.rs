//! Reading feature history from parquet (local files or S3) for materialization.
//! (Filled in by the materialization work.)
