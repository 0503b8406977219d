//! Runs experiments: plans an experiment file into a DAG (train -> load model -> tokenize ->
//! shared forward passes -> analyses -> table sinks), executes it batch by batch, and writes one
//! Parquet table per analysis plus a run manifest.
//!
//! The runner schedules and moves data; it does no tensor math beyond batching, and it never
//! parses TOML itself (the spec crate does).

pub mod datasets;
pub mod error;
pub mod execute;
pub mod manifest;
pub mod models;
pub mod plan;
pub mod progress;
pub mod sink;
pub mod training;

pub use error::RunError;
pub use execute::{RunOptions, RunReport, run};
pub use plan::{Plan, PlanFormat, plan};
