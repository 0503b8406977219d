//! Reading checkpoints: where a model lives ([`ModelSource`]), and the readers for each format.
//! Readers only produce host tensors under checkpoint names; [`crate::architectures`] maps them.

pub mod gguf;
pub mod hub;
pub mod safetensors_dir;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::LoadError;
use crate::weights::HostTensor;

/// A checkpoint's tensors, read on demand and converted to f32.
pub trait TensorSource {
    /// The file the tensors come from (for errors).
    fn path(&self) -> &Path;
    /// Every tensor name with its shape as stored.
    fn shapes(&self) -> BTreeMap<String, Vec<usize>>;
    /// Reads one tensor as f32, in the stored shape.
    fn read(&self, name: &str) -> Result<HostTensor, LoadError>;
}

/// Where a model's files are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelSource {
    /// A Hugging Face model directory (`config.json` + safetensors).
    HfDir(PathBuf),
    /// A GGUF file.
    Gguf(PathBuf),
}

impl ModelSource {
    /// Resolves a user-given location: a `.gguf` file, a model directory, or a Hugging Face hub
    /// id (`ORG/NAME`, optionally `@REVISION`) found in the local hub cache (never downloaded).
    pub fn resolve(location: &str, base_dir: &Path) -> Result<ModelSource, LoadError> {
        let expanded = expand_home(location);
        let path = if expanded.is_absolute() || base_dir == Path::new(".") {
            expanded
        } else {
            base_dir.join(expanded)
        };
        if path.is_file() {
            return if path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
            {
                Ok(ModelSource::Gguf(path))
            } else {
                Err(LoadError::NotFound {
                    path,
                    message: "a model file must be a .gguf file; for safetensors give the model directory (with config.json)".into(),
                })
            };
        }
        if path.is_dir() {
            return if path.join("config.json").is_file() {
                Ok(ModelSource::HfDir(path))
            } else {
                Err(LoadError::NotFound {
                    path,
                    message:
                        "directory has no config.json (expected a Hugging Face model directory)"
                            .into(),
                })
            };
        }
        if hub::looks_like_hub_id(location) {
            return hub::resolve_cached(location).map(ModelSource::HfDir);
        }
        Err(LoadError::NotFound {
            path,
            message: "no such file or directory (expected a .gguf file, a Hugging Face model directory, or a hub id ORG/NAME present in the local hub cache)".into(),
        })
    }

    pub fn path(&self) -> &Path {
        match self {
            ModelSource::HfDir(p) | ModelSource::Gguf(p) => p,
        }
    }
}

/// `~/x` -> `$HOME/x`.
pub fn expand_home(path: &str) -> PathBuf {
    match path.strip_prefix("~/") {
        Some(rest) => std::env::var_os("HOME")
            .map(|h| PathBuf::from(h).join(rest))
            .unwrap_or_else(|| PathBuf::from(path)),
        None => PathBuf::from(path),
    }
}
