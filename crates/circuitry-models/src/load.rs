//! One entry point from a model location to a ready model and its tokenizer.

use std::path::Path;

use burn::prelude::Device;

use crate::architectures::{self, JsonConfig};
use crate::error::LoadError;
use crate::loading::ModelSource;
use crate::loading::safetensors_dir::SafetensorsDir;
use crate::processing::{Processing, process};
use crate::tokenizer::Tokenizer;
use crate::transformer::Transformer;
use crate::weights::Weights;

/// A model ready to run, with its tokenizer (absent when the source ships none).
#[derive(Debug)]
pub struct LoadedModel {
    pub model: Transformer,
    pub tokenizer: Option<Tokenizer>,
    pub source: ModelSource,
    pub processing: Processing,
}

/// Reads the unprocessed weights (and configuration) of a model.
pub fn load_weights(source: &ModelSource) -> Result<Weights, LoadError> {
    match source {
        ModelSource::HfDir(dir) => {
            let (path, json) = architectures::read_config_json(dir)?;
            let cfg = JsonConfig { path: &path, json: &json };
            let arch = json
                .get("architectures")
                .and_then(|a| a.get(0))
                .and_then(|a| a.as_str())
                .or_else(|| json.get("model_type").and_then(|m| m.as_str()))
                .unwrap_or("<none>")
                .to_string();
            let tensors = SafetensorsDir::open(dir)?;
            match arch.as_str() {
                "GPT2LMHeadModel" | "GPT2Model" | "gpt2" => {
                    let config = architectures::gpt2::config_from_json(&cfg)?;
                    architectures::gpt2::load_weights(config, &tensors)
                }
                "LlamaForCausalLM" | "MistralForCausalLM" | "Qwen2ForCausalLM" | "llama" | "mistral" | "qwen2" => {
                    let config = architectures::llama::config_from_json(&cfg)?;
                    architectures::llama::load_weights(config, &tensors)
                }
                other => Err(LoadError::UnsupportedArchitecture {
                    path,
                    found: other.to_string(),
                }),
            }
        }
        ModelSource::Gguf(path) => Err(LoadError::NotFound {
            path: path.clone(),
            message: "GGUF loading is not available in this build yet".into(),
        }),
    }
}

/// The tokenizer that ships with a model, if any.
pub fn load_tokenizer(source: &ModelSource, weights: &Weights) -> Result<Option<Tokenizer>, LoadError> {
    let cfg = &weights.config;
    let tokenizer = match source {
        ModelSource::HfDir(dir) => {
            let path = dir.join("tokenizer.json");
            if !path.is_file() {
                return Ok(None);
            }
            Tokenizer::from_file(&path)?
        }
        ModelSource::Gguf(_) => return Ok(None),
    };
    Ok(Some(tokenizer.with_special_tokens(cfg.bos_token_id, cfg.eos_token_id, cfg.pad_token_id)))
}

/// Resolves `location` (relative to `base_dir`), loads and processes the weights, and builds the
/// model on `device`.
pub fn load_model(location: &str, base_dir: &Path, processing: Processing, device: &Device) -> Result<LoadedModel, LoadError> {
    let source = ModelSource::resolve(location, base_dir)?;
    let weights = load_weights(&source)?;
    let tokenizer = load_tokenizer(&source, &weights)?;
    let weights = process(weights, processing);
    let model = Transformer::from_weights(&weights, device)?;
    Ok(LoadedModel {
        model,
        tokenizer,
        source,
        processing,
    })
}
