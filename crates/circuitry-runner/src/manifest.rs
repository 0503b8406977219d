//! `manifest.json`: what a run wrote (tables with row counts and file hashes), which nodes it
//! computed and which it reused from the cache, and the timings (kept out of the tables so that
//! tables are byte-reproducible).

use std::path::{Path, PathBuf};

use circuitry_spec::Experiment;
use serde::Serialize;

use crate::cache::NodeRecord;
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

/// One node of the plan, as this run used it.
#[derive(Clone, Debug, Serialize)]
pub struct NodeEntry {
    /// `train` or `analysis`.
    pub kind: String,
    pub name: String,
    /// The sweep variant.
    pub run: usize,
    pub hash: String,
    /// For a prompt-range node: its prompts `[start, end)`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompts: Option<[usize; 2]>,
    /// Computed by this run (false: read from the cache).
    pub computed: bool,
    /// Seconds the computation took (when it was computed, by whichever run).
    pub seconds: f64,
}

impl NodeEntry {
    pub fn new(run: usize, record: &NodeRecord, computed: bool) -> NodeEntry {
        NodeEntry {
            kind: record.kind.clone(),
            name: record.name.clone(),
            run,
            hash: record.hash.clone(),
            prompts: None,
            computed,
            seconds: record.seconds,
        }
    }
}

/// The run manifest.
#[derive(Clone, Debug, Serialize)]
pub struct Manifest {
    pub tool: &'static str,
    pub tool_version: &'static str,
    pub experiment: String,
    /// The experiment file, relative to its repository root (see [`recorded_path`]).
    pub experiment_file: String,
    pub experiment_hash: String,
    pub overrides: Vec<String>,
    pub seed: u64,
    pub device: String,
    pub runs: usize,
    /// Wall-clock seconds of this run.
    pub seconds: f64,
    /// Forward passes over datasets this run made (0 when every node came from the cache).
    pub forward_passes: usize,
    pub tables: Vec<TableEntry>,
    pub nodes: Vec<NodeEntry>,
}

impl Manifest {
    pub fn new(
        plan: &Plan,
        experiment: &Experiment,
        tables: Vec<TableEntry>,
        nodes: Vec<NodeEntry>,
        seconds: f64,
    ) -> Manifest {
        Manifest {
            tool: "circuitry",
            tool_version: env!("CARGO_PKG_VERSION"),
            experiment: experiment.name.clone(),
            experiment_file: recorded_path(experiment, experiment.path()),
            experiment_hash: plan.hash.clone(),
            overrides: experiment.overrides().to_vec(),
            seed: experiment.seed,
            device: plan.device.clone(),
            runs: plan.runs(),
            seconds,
            forward_passes: 0,
            tables,
            nodes,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("manifest serializes") + "\n"
    }
}

/// `path` as outputs record it: relative to the experiment's root (the nearest directory above
/// the experiment file holding `.git`, else the file's own directory), so that a moved checkout
/// writes the same bytes. Paths outside the root stay as they are.
pub fn recorded_path(experiment: &Experiment, path: &Path) -> String {
    let absolute = |p: &Path| {
        if p.is_absolute() {
            crate::publish::normalize(p)
        } else {
            crate::publish::normalize(
                &std::env::current_dir()
                    .map(|d| d.join(p))
                    .unwrap_or_else(|_| p.to_path_buf()),
            )
        }
    };
    let base = absolute(&experiment.base_dir());
    let root = base
        .ancestors()
        .find(|d| d.join(".git").exists())
        .unwrap_or(&base)
        .to_path_buf();
    let path = absolute(path);
    path.strip_prefix(&root)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| path.display().to_string())
}
