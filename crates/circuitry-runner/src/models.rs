//! From an experiment file's `[models.NAME]` to a loaded, processed model with its tokenizer.

use std::path::Path;

use circuitry_models::burn::prelude::Device;
use circuitry_models::load::{load_tokenizer, read_config};
use circuitry_models::loading::hub;
use circuitry_models::{
    ModelConfig, ModelSource, Processing, Tokenizer, Transformer, load_weights_as, processing,
};
use circuitry_spec::{ModelLocation, ModelSpec};

use crate::error::RunError;

/// A model ready for analyses.
pub struct ReadyModel {
    pub name: String,
    pub model: Transformer,
    pub tokenizer: Tokenizer,
    pub source: ModelSource,
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

/// Model `name`'s tokenizer: the `tokenizer` override, else the one its files ship, with the
/// special tokens of `config` (no weights are read).
pub fn tokenizer(
    name: &str,
    spec: &ModelSpec,
    source: &ModelSource,
    base_dir: &Path,
    config: &ModelConfig,
) -> Result<Tokenizer, RunError> {
    let err = |e: circuitry_models::LoadError| model_err(name, e.to_string());
    match spec.tokenizer_path(base_dir) {
        Some(path) => Ok(Tokenizer::from_file(&path).map_err(err)?.with_special_tokens(
            config.bos_token_id,
            config.eos_token_id,
            config.pad_token_id,
        )),
        None => load_tokenizer(source, config).map_err(err)?.ok_or_else(|| {
            model_err(
                name,
                format!(
                    "{} ships no tokenizer (no tokenizer.json); give one with `tokenizer = \"path/to/tokenizer.json\"`",
                    source.path().display()
                ),
            )
        }),
    }
}

/// Loads, processes and places model `name` (files at `source`) on `device`.
pub fn load(
    name: &str,
    spec: &ModelSpec,
    source: ModelSource,
    base_dir: &Path,
    device: &Device,
) -> Result<ReadyModel, RunError> {
    let err = |e: circuitry_models::LoadError| model_err(name, e.to_string());
    let weights = load_weights_as(&source, spec.dtype).map_err(err)?;
    let tokenizer = tokenizer(name, spec, &source, base_dir, &weights.config)?;
    let weights = processing::process(weights, processing_of(spec));
    let model = Transformer::from_weights(weights, device).map_err(err)?;
    Ok(ReadyModel {
        name: name.to_string(),
        model,
        tokenizer,
        source,
    })
}
