//! Runs experiments: plans an experiment file into a DAG (load model -> tokenize -> shared
//! forward passes -> analyses -> table sinks), executes it batch by batch, and writes one Parquet
//! table per analysis plus a run manifest.
//!
//! The runner schedules and moves data; it does no tensor math beyond batching, and it never
//! parses TOML itself (the spec crate does).

pub mod error;
pub mod sink;

pub use error::RunError;
