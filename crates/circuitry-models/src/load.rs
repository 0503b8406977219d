//! One entry point from a model location to a ready model and its tokenizer.

use std::path::Path;

use burn::prelude::Device;
use circuitry_vocab::WeightDtype;

use crate::architectures::llama::GgufArch;
use crate::architectures::{self, JsonConfig};
use crate::config::{Architecture, ModelConfig};
use crate::error::LoadError;
use crate::loading::ModelSource;
use crate::loading::gguf::GgufFile;
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

/// The checkpoint families circuitry reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    Gpt2,
    Llama,
    GptNeox,
    Gemma,
}

/// Which family a Hugging Face `config.json` describes.
fn hf_family(path: &Path, json: &serde_json::Value) -> Result<Family, LoadError> {
    let arch = json
        .get("architectures")
        .and_then(|a| a.get(0))
        .and_then(|a| a.as_str())
        .or_else(|| json.get("model_type").and_then(|m| m.as_str()))
        .unwrap_or("<none>");
    match arch {
        "GPT2LMHeadModel" | "GPT2Model" | "gpt2" => Ok(Family::Gpt2),
        "LlamaForCausalLM" | "MistralForCausalLM" | "Qwen2ForCausalLM" | "Qwen3ForCausalLM"
        | "Phi3ForCausalLM" | "Olmo2ForCausalLM" | "llama" | "mistral" | "qwen2" | "qwen3"
        | "phi3" | "olmo2" => Ok(Family::Llama),
        "GPTNeoXForCausalLM" | "gpt_neox" => Ok(Family::GptNeox),
        "GemmaForCausalLM" | "Gemma2ForCausalLM" | "Gemma3ForCausalLM" | "gemma" | "gemma2"
        | "gemma3_text" => Ok(Family::Gemma),
        other => Err(LoadError::UnsupportedArchitecture {
            path: path.to_path_buf(),
            found: other.to_string(),
        }),
    }
}

/// The architectures read from GGUF files: GPT-NeoX, or one read through the Llama layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GgufFamily {
    GptNeox,
    LlamaLayout(GgufArch),
}

/// llama.cpp's name for GPT-NeoX.
const GGUF_GPT_NEOX: &str = "gptneox";

/// Which architecture a GGUF file describes.
fn gguf_family(path: &Path, file: &GgufFile) -> Result<GgufFamily, LoadError> {
    let found = file.architecture()?;
    if found == GGUF_GPT_NEOX {
        return Ok(GgufFamily::GptNeox);
    }
    GgufArch::from_name(found)
        .map(GgufFamily::LlamaLayout)
        .ok_or_else(|| {
            let mut supported: Vec<&str> = GgufArch::ALL.map(GgufArch::name).to_vec();
            supported.push(GGUF_GPT_NEOX);
            LoadError::UnsupportedGgufArchitecture {
                path: path.to_path_buf(),
                found: found.to_string(),
                supported: supported.join(", "),
            }
        })
}

/// The configuration of a model, read from its metadata without loading the weights.
pub fn read_config(source: &ModelSource) -> Result<ModelConfig, LoadError> {
    match source {
        ModelSource::HfDir(dir) => {
            let (path, json) = architectures::read_config_json(dir)?;
            let cfg = JsonConfig {
                path: &path,
                json: &json,
            };
            match hf_family(&path, &json)? {
                Family::Gpt2 => architectures::gpt2::config_from_json(&cfg),
                Family::Llama => architectures::llama::config_from_json(&cfg),
                Family::GptNeox => architectures::gpt_neox::config_from_json(&cfg),
                Family::Gemma => architectures::gemma::config_from_json(&cfg),
            }
        }
        ModelSource::Gguf(path) => {
            let file = GgufFile::open(path)?;
            match gguf_family(path, &file)? {
                GgufFamily::GptNeox => architectures::gpt_neox::config_from_gguf(&file),
                GgufFamily::LlamaLayout(arch) => {
                    architectures::llama::config_from_gguf(arch, &file)
                }
            }
        }
    }
}

/// Reads the unprocessed weights (and configuration) of a model, in f32.
pub fn load_weights(source: &ModelSource) -> Result<Weights, LoadError> {
    load_weights_as(source, WeightDtype::F32)
}

/// Reads the unprocessed weights (and configuration) of a model, its matrices held as `dtype`
/// as each is read ([`crate::HostTensor::held_as`]), so a half-precision model never sits whole
/// in f32.
pub fn load_weights_as(source: &ModelSource, dtype: WeightDtype) -> Result<Weights, LoadError> {
    let config = read_config(source)?;
    match source {
        ModelSource::HfDir(dir) => {
            let tensors = SafetensorsDir::open(dir)?;
            match config.architecture {
                Architecture::Gpt2 => architectures::gpt2::load_weights(config, &tensors, dtype),
                Architecture::Llama => architectures::llama::load_weights(config, &tensors, dtype),
                Architecture::GptNeox => {
                    architectures::gpt_neox::load_weights(config, &tensors, dtype)
                }
                Architecture::Gemma => architectures::gemma::load_weights(config, &tensors, dtype),
            }
        }
        ModelSource::Gguf(path) => {
            let file = GgufFile::open(path)?;
            match gguf_family(path, &file)? {
                GgufFamily::GptNeox => {
                    architectures::gpt_neox::load_gguf_weights(config, &file, dtype)
                }
                GgufFamily::LlamaLayout(arch) if arch.is_gemma() => {
                    architectures::gemma::load_gguf_weights(config, arch, &file, dtype)
                }
                GgufFamily::LlamaLayout(arch) => {
                    architectures::llama::load_gguf_weights(config, arch, &file, dtype)
                }
            }
        }
    }
}

/// The tokenizer that ships with a model, if any, with the special tokens of its configuration
/// (from [`read_config`]: no weights are read).
pub fn load_tokenizer(
    source: &ModelSource,
    cfg: &ModelConfig,
) -> Result<Option<Tokenizer>, LoadError> {
    let tokenizer = match source {
        ModelSource::HfDir(dir) => {
            let path = dir.join("tokenizer.json");
            if !path.is_file() {
                return Ok(None);
            }
            Tokenizer::from_file(&path)?
        }
        ModelSource::Gguf(path) => Tokenizer::from_gguf(&GgufFile::open(path)?)?,
    };
    Ok(Some(tokenizer.with_special_tokens(
        cfg.bos_token_id,
        cfg.eos_token_id,
        cfg.pad_token_id,
    )))
}

/// Resolves `location` (relative to `base_dir`), loads and processes the weights, and builds the
/// model on `device`.
pub fn load_model(
    location: &str,
    base_dir: &Path,
    processing: Processing,
    device: &Device,
) -> Result<LoadedModel, LoadError> {
    let source = ModelSource::resolve(location, base_dir)?;
    let weights = load_weights(&source)?;
    let tokenizer = load_tokenizer(&source, &weights.config)?;
    let weights = process(weights, processing);
    let model = Transformer::from_weights(weights, device)?;
    Ok(LoadedModel {
        model,
        tokenizer,
        source,
        processing,
    })
}
