//! Node identities: what a node's output depends on, hashed into the name of its cache entry.
//!
//! A key holds the node's resolved configuration, the content hashes of its inputs (model
//! files, dataset files, tokenizer files, or the training node that writes a model), the tool
//! build and the device. Locations (`path`, `hub`, `output`) are not part of a key: the same
//! bytes at another path are the same input, so experiments and users share entries.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use circuitry_models::ModelSource;
use circuitry_spec::{DatasetSource, Experiment};
use serde_json::{Value, json};

use crate::error::RunError;

/// The tool build: the version and a hash of the running executable, so that a rebuilt
/// circuitry never reads entries an older build computed.
pub fn tool_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        let build = std::env::current_exe()
            .and_then(|exe| {
                let mut hasher = blake3::Hasher::new();
                hasher.update_reader(std::fs::File::open(exe)?)?;
                Ok(hasher.finalize().to_hex()[..16].to_string())
            })
            .unwrap_or_else(|_| "unknown-build".to_string());
        format!("circuitry {} ({build})", env!("CARGO_PKG_VERSION"))
    })
}

/// The hash naming the node with `key`.
pub fn node_hash(key: &Value) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"circuitry-node\0");
    hasher.update(circuitry_spec::canonical_json(key).as_bytes());
    hasher.finalize().to_hex().to_string()
}

/// blake3 of the names and bytes of `files`, in order (hex).
pub fn files_hash(files: &[PathBuf]) -> Result<String, RunError> {
    let mut hasher = blake3::Hasher::new();
    for f in files {
        hasher.update(
            f.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("")
                .as_bytes(),
        );
        let file = std::fs::File::open(f).map_err(|e| RunError::io(f, e))?;
        hasher.update_reader(file).map_err(|e| RunError::io(f, e))?;
    }
    Ok(hasher.finalize().to_hex().to_string())
}

/// Content hashes of the input files one plan reads, each set of files hashed once however
/// many variants, analyses and training runs name it.
#[derive(Default)]
pub struct ContentHashes {
    known: BTreeMap<Vec<PathBuf>, String>,
}

impl ContentHashes {
    /// [`files_hash`] of `files`; a file that cannot be read is an error at `key` of the
    /// experiment file.
    pub fn files(
        &mut self,
        exp: &Experiment,
        key: &str,
        files: Vec<PathBuf>,
    ) -> Result<String, RunError> {
        if let Some(h) = self.known.get(&files) {
            return Ok(h.clone());
        }
        let h = files_hash(&files).map_err(|e| e.located_io(exp, key))?;
        self.known.insert(files, h.clone());
        Ok(h)
    }

    /// The content hash of the one input file `path` that key `key` names.
    pub fn input(&mut self, exp: &Experiment, key: &str, path: &Path) -> Result<String, RunError> {
        self.files(exp, key, vec![path.to_path_buf()])
    }
}

/// The files whose bytes define a model.
pub fn model_files(source: &ModelSource) -> Vec<PathBuf> {
    match source {
        ModelSource::Gguf(p) => vec![p.clone()],
        ModelSource::HfDir(dir) => {
            let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
                .map(|entries| {
                    entries
                        .filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| {
                            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                            name == "config.json"
                                || name == "tokenizer.json"
                                || name.ends_with(".safetensors")
                        })
                        .collect()
                })
                .unwrap_or_default();
            files.sort();
            files
        }
    }
}

/// The content hash of every checkpoint a training run saved under `dir` (`step<N>` model
/// directories), by step; empty when it saved none (no `dir`).
pub fn checkpoint_hashes(dir: &Path) -> Result<BTreeMap<u64, String>, RunError> {
    let mut out = BTreeMap::new();
    let steps = match crate::checkpoints::step_dirs(dir) {
        Ok(steps) => steps,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(RunError::io(dir, e)),
    };
    for (step, path) in steps {
        out.insert(step, files_hash(&model_files(&ModelSource::HfDir(path)))?);
    }
    Ok(out)
}

/// A section's resolved configuration as JSON without the keys that only say where files are.
fn without(value: Value, keys: &[&str]) -> Value {
    match value {
        Value::Object(mut map) => {
            for k in keys {
                map.remove(*k);
            }
            Value::Object(map)
        }
        other => other,
    }
}

/// What a dataset's prompts depend on: its resolved configuration (with its derived seed) and,
/// for a file, the file's bytes.
pub fn dataset_identity(
    exp: &Experiment,
    name: &str,
    hashes: &mut ContentHashes,
) -> Result<Value, RunError> {
    let spec = &exp.datasets[name];
    let file = match &spec.source {
        DatasetSource::File(f) => Some(hashes.input(
            exp,
            &format!("datasets.{name}.file"),
            &exp.resolve_path(&f.file),
        )?),
        DatasetSource::Text(t) => {
            let key = format!("datasets.{name}.text");
            let root = exp.resolve_path(&t.text);
            let files = circuitry_data::text::corpus_files(&root)
                .map_err(|e| RunError::io(&root, e).located_io(exp, &key))?;
            Some(hashes.files(exp, &key, files)?)
        }
        _ => None,
    };
    let mut config = serde_json::to_value(spec).unwrap_or(Value::Null);
    if file.is_some() {
        config = without(config, &["file", "text"]);
    }
    Ok(json!({ "config": config, "file": file }))
}

/// The key of training run `name`.
pub fn train_key(
    exp: &Experiment,
    name: &str,
    device: &str,
    hashes: &mut ContentHashes,
) -> Result<Value, RunError> {
    let spec = &exp.train[name];
    let tokenizer = spec
        .tokenizer
        .as_ref()
        .map(|t| {
            hashes.input(
                exp,
                &format!("train.{name}.tokenizer"),
                &exp.resolve_path(t),
            )
        })
        .transpose()?;
    let dataset = spec
        .dataset
        .as_ref()
        .map(|d| dataset_identity(exp, d, hashes))
        .transpose()?;
    Ok(json!({
        "node": "train",
        "tool": tool_id(),
        "device": device,
        "train": without(serde_json::to_value(spec).unwrap_or(Value::Null), &["output", "tokenizer", "dataset"]),
        "tokenizer": tokenizer,
        "dataset": dataset,
    }))
}

/// The inputs of one analysis node besides its own configuration.
pub struct AnalysisInputs<'a> {
    /// The model's content hash, or `train:<node hash>` for a model a training node writes.
    pub model_identity: &'a str,
    pub dataset: Option<Value>,
    pub prepass: Option<Value>,
    /// Prompts per batch of the forward pass it reads (results may depend on batching).
    pub batch_size: Option<usize>,
    pub device: &'a str,
}

/// The key of analysis `name`.
pub fn analysis_key(exp: &Experiment, name: &str, inputs: &AnalysisInputs<'_>) -> Value {
    let spec = &exp.analyses[name];
    let model = &exp.models[&spec.model];
    json!({
        "node": "analysis",
        "tool": tool_id(),
        "device": inputs.device,
        "seed": exp.seed,
        "analysis": serde_json::to_value(spec).unwrap_or(Value::Null),
        "model": {
            "content": inputs.model_identity,
            "config": without(serde_json::to_value(model).unwrap_or(Value::Null), &["path", "hub", "tokenizer", "checkpoints", "steps"]),
        },
        "dataset": inputs.dataset,
        "prepass": inputs.prepass,
        "batch_size": inputs.batch_size,
    })
}
