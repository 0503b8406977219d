//! From an experiment file's `[models.NAME]` to a loaded, processed model with its tokenizer.

use std::path::{Path, PathBuf};

use circuitry_models::burn::prelude::Device;
use circuitry_models::load::{load_tokenizer, read_config};
use circuitry_models::loading::hub;
use circuitry_models::{
    ModelConfig, ModelSource, Processing, Tokenizer, Transformer, load_weights, processing,
};
use circuitry_spec::{ModelLocation, ModelSpec};

use crate::error::RunError;

/// A model ready for analyses.
pub struct ReadyModel {
    pub name: String,
    pub model: Transformer,
    pub tokenizer: Tokenizer,
    pub source: ModelSource,
    /// blake3 of the weight and tokenizer files (hex).
    pub content_hash: String,
}

fn model_err(name: &str, message: impl Into<String>) -> RunError {
    RunError::Model {
        model: name.to_string(),
        message: message.into(),
    }
}

/// Where model `name`'s files are.
pub fn source(name: &str, spec: &ModelSpec, base_dir: &Path) -> Result<ModelSource, RunError> {
    let err = |e: circuitry_models::LoadError| model_err(name, e.to_string());
    match spec.location(base_dir) {
        // Already resolved against the experiment's directory.
        ModelLocation::Local(path) => {
            ModelSource::resolve(path.to_str().unwrap_or_default(), Path::new(".")).map_err(err)
        }
        ModelLocation::Hub { repo_id, revision } => {
            let id = match revision {
                Some(rev) => format!("{repo_id}@{rev}"),
                None => repo_id,
            };
            hub::resolve_cached(&id)
                .map(ModelSource::HfDir)
                .map_err(err)
        }
    }
}

/// The configuration of model `name`, read without loading its weights.
pub fn config(name: &str, source: &ModelSource) -> Result<ModelConfig, RunError> {
    read_config(source).map_err(|e| model_err(name, e.to_string()))
}

pub fn processing_of(spec: &ModelSpec) -> Processing {
    spec.processing
}

/// Loads, processes and places model `name` on `device`.
pub fn load(
    name: &str,
    spec: &ModelSpec,
    base_dir: &Path,
    device: &Device,
) -> Result<ReadyModel, RunError> {
    let source = source(name, spec, base_dir)?;
    let err = |e: circuitry_models::LoadError| model_err(name, e.to_string());
    let weights = load_weights(&source).map_err(err)?;
    let tokenizer = match spec.tokenizer_path(base_dir) {
        Some(path) => Tokenizer::from_file(&path).map_err(err)?.with_special_tokens(
            weights.config.bos_token_id,
            weights.config.eos_token_id,
            weights.config.pad_token_id,
        ),
        None => load_tokenizer(&source, &weights).map_err(err)?.ok_or_else(|| {
            model_err(
                name,
                format!(
                    "{} ships no tokenizer (no tokenizer.json); give one with `tokenizer = \"path/to/tokenizer.json\"`",
                    source.path().display()
                ),
            )
        })?,
    };
    let weights = processing::process(weights, processing_of(spec));
    let model = Transformer::from_weights(&weights, device).map_err(err)?;
    let mut files = model_files(&source);
    files.extend(spec.tokenizer_path(base_dir));
    let content_hash = hash_files(&files).map_err(|e| model_err(name, e.to_string()))?;
    Ok(ReadyModel {
        name: name.to_string(),
        model,
        tokenizer,
        source,
        content_hash,
    })
}

/// The files whose bytes define a model.
fn model_files(source: &ModelSource) -> Vec<PathBuf> {
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

fn hash_files(files: &[PathBuf]) -> std::io::Result<String> {
    let mut hasher = blake3::Hasher::new();
    for f in files {
        hasher.update(
            f.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("")
                .as_bytes(),
        );
        hasher.update_reader(std::fs::File::open(f)?)?;
    }
    Ok(hasher.finalize().to_hex().to_string())
}
