//! Runs experiments: plans an experiment file into a DAG of content-addressed nodes (train ->
//! load model -> tokenize -> shared forward passes -> analyses -> tables), computes the nodes
//! its cache lacks (all of them, or one shard's share), and assembles and atomically publishes
//! one Parquet table per analysis plus a run manifest.
//!
//! The runner schedules, caches and moves data; it does no tensor math beyond batching, and it
//! never parses TOML itself (the spec crate does).

pub mod assemble;
pub mod cache;
pub mod checkpoints;
pub mod chunks;
pub mod datasets;
pub mod error;
pub mod estimate;
pub mod execute;
pub mod failpoint;
pub mod manifest;
pub mod models;
pub mod nodes;
pub mod plan;
pub mod progress;
pub mod publish;
pub mod sink;
pub mod slurm;
pub mod training;

pub use cache::Cache;
pub use error::RunError;
pub use execute::{RunOptions, RunReport, Shard, run};
pub use plan::{Plan, PlanFormat, device_name, plan};
