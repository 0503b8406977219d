//! `manifest.json`: what a run wrote, with row counts, file hashes and timing.

use std::path::PathBuf;

use circuitry_spec::Experiment;
use serde::Serialize;

use crate::plan::Plan;

/// One table file of a run.
#[derive(Clone, Debug, Serialize)]
pub struct TableEntry {
    /// File stem: the analysis name, or `analysis.part` for secondary tables.
    pub name: String,
    /// File name within the output directory.
    pub path: PathBuf,
    pub rows: usize,
    /// blake3 of the file (hex).
    pub hash: String,
}

/// The run manifest.
#[derive(Clone, Debug, Serialize)]
pub struct Manifest {
    pub tool: &'static str,
    pub tool_version: &'static str,
    pub experiment: String,
    pub experiment_file: String,
    pub experiment_hash: String,
    pub overrides: Vec<String>,
    pub seed: u64,
    pub device: String,
    pub runs: usize,
    pub seconds: f64,
    pub tables: Vec<TableEntry>,
}

impl Manifest {
    pub fn new(
        plan: &Plan,
        experiment: &Experiment,
        device: &str,
        tables: Vec<TableEntry>,
        seconds: f64,
    ) -> Manifest {
        Manifest {
            tool: "circuitry",
            tool_version: env!("CARGO_PKG_VERSION"),
            experiment: experiment.name.clone(),
            experiment_file: experiment.path().display().to_string(),
            experiment_hash: plan.hash.clone(),
            overrides: experiment.overrides().to_vec(),
            seed: experiment.seed,
            device: device.to_string(),
            runs: plan.variants.len(),
            seconds,
            tables,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("manifest serializes") + "\n"
    }
}
