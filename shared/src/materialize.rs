//! Materialization: the latest row per entity in a window, from parquet into the online store.
//! (Filled in by the materialization work.)
