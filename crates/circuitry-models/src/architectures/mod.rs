//! Checkpoint families. Each file translates one family's configuration and tensor names into
//! [`ModelConfig`] and canonical [`Weights`]; this is the only place checkpoint names appear.

pub mod gemma;
pub mod gpt2;
pub mod gpt_neox;
pub mod llama;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use circuitry_vocab::WeightDtype;

use crate::config::ModelConfig;
use crate::error::LoadError;
use crate::loading::TensorSource;
use crate::weights::{HostTensor, Weights};

/// Reads checkpoint tensors by name, checks their shapes, and remembers which were used; the
/// canonical tensors it is given are held at the model's precision as they arrive, so that a
/// half-precision model is never whole in f32.
pub(crate) struct Mapper<'a> {
    source: &'a dyn TensorSource,
    dtype: WeightDtype,
    shapes: BTreeMap<String, Vec<usize>>,
    used: BTreeSet<String>,
    pub(crate) out: BTreeMap<String, HostTensor>,
}

impl<'a> Mapper<'a> {
    pub(crate) fn new(source: &'a dyn TensorSource, dtype: WeightDtype) -> Self {
        Mapper {
            shapes: source.shapes(),
            source,
            dtype,
            used: BTreeSet::new(),
            out: BTreeMap::new(),
        }
    }

    pub(crate) fn has(&self, name: &str) -> bool {
        self.shapes.contains_key(name)
    }

    /// Reads `name`, which must have `shape` as stored.
    pub(crate) fn read(&mut self, name: &str, shape: &[usize]) -> Result<HostTensor, LoadError> {
        let path = self.source.path().to_path_buf();
        match self.shapes.get(name) {
            None => Err(LoadError::MissingTensor {
                path,
                name: name.to_string(),
                expected: shape.to_vec(),
            }),
            Some(found) if found != shape => Err(LoadError::ShapeMismatch {
                path,
                name: name.to_string(),
                expected: shape.to_vec(),
                found: found.clone(),
            }),
            Some(_) => {
                self.used.insert(name.to_string());
                self.source.read(name)
            }
        }
    }

    /// The unembedding `[d_model, d_vocab]` at the model's precision: `lm_head` (stored
    /// `[d_vocab, d_model]`) transposed,
    /// or the embedding `w_e` transposed when the embeddings are tied or there is no `lm_head`.
    pub(crate) fn unembedding(
        &mut self,
        lm_head: &str,
        w_e: &HostTensor,
        config: &ModelConfig,
    ) -> Result<HostTensor, LoadError> {
        if !self.has(lm_head) {
            return Ok(w_e.transposed_as(self.dtype));
        }
        // Read even when tied, so a redundant copy is not reported as unused.
        let t = self.read(lm_head, &[config.d_vocab, config.d_model])?;
        Ok(if config.tied_embeddings {
            w_e.transposed_as(self.dtype)
        } else {
            t.transposed_as(self.dtype)
        })
    }

    pub(crate) fn put(&mut self, canonical: impl Into<String>, t: HostTensor) {
        self.out.insert(canonical.into(), t.held_as(self.dtype));
    }

    /// Fails on checkpoint tensors that were neither used nor match an `ignored` suffix.
    pub(crate) fn finish(
        self,
        config: ModelConfig,
        architecture: &'static str,
        ignored: &[&str],
    ) -> Result<Weights, LoadError> {
        let unused: Vec<&String> = self
            .shapes
            .keys()
            .filter(|k| !self.used.contains(*k) && !ignored.iter().any(|s| k.ends_with(s)))
            .collect();
        if !unused.is_empty() {
            let mut names: Vec<String> = unused.iter().take(8).map(|s| s.to_string()).collect();
            if unused.len() > 8 {
                names.push(format!("... ({} in all)", unused.len()));
            }
            return Err(LoadError::UnusedTensors {
                path: self.source.path().to_path_buf(),
                architecture,
                names: names.join(", "),
            });
        }
        let weights = Weights {
            config,
            tensors: self.out,
            source: self.source.path().to_path_buf(),
        };
        weights.check()?;
        weights.check_finite()?;
        Ok(weights)
    }
}

/// Reads `config.json` of a Hugging Face model directory.
pub(crate) fn read_config_json(
    dir: &Path,
) -> Result<(std::path::PathBuf, serde_json::Value), LoadError> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| LoadError::io(&path, e))?;
    let json = serde_json::from_str(&text).map_err(|e| LoadError::Format {
        path: path.clone(),
        format: "JSON",
        message: e.to_string(),
    })?;
    Ok((path, json))
}

/// Typed access to `config.json` keys with errors naming the key.
pub(crate) struct JsonConfig<'a> {
    pub(crate) path: &'a Path,
    pub(crate) json: &'a serde_json::Value,
}

impl JsonConfig<'_> {
    fn err(&self, key: &str, message: impl Into<String>) -> LoadError {
        LoadError::Config {
            path: self.path.to_path_buf(),
            key: key.to_string(),
            message: message.into(),
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<&serde_json::Value> {
        self.json.get(key).filter(|v| !v.is_null())
    }

    pub(crate) fn usize(&self, key: &str) -> Result<usize, LoadError> {
        self.opt_usize(key)?.ok_or_else(|| self.err(key, "missing"))
    }

    pub(crate) fn opt_usize(&self, key: &str) -> Result<Option<usize>, LoadError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.as_u64().map(|n| Some(n as usize)).ok_or_else(|| {
                self.err(key, format!("expected a non-negative integer, found {v}"))
            }),
        }
    }

    pub(crate) fn opt_u32(&self, key: &str) -> Result<Option<u32>, LoadError> {
        // Some configs give a list of eos ids; the first one is used.
        match self.get(key) {
            Some(serde_json::Value::Array(a)) => {
                Ok(a.first().and_then(|v| v.as_u64()).map(|n| n as u32))
            }
            _ => Ok(self.opt_usize(key)?.map(|n| n as u32)),
        }
    }

    pub(crate) fn opt_f64(&self, key: &str) -> Result<Option<f64>, LoadError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| self.err(key, format!("expected a number, found {v}"))),
        }
    }

    pub(crate) fn bool_or(&self, key: &str, default: bool) -> Result<bool, LoadError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_bool()
                .ok_or_else(|| self.err(key, format!("expected true or false, found {v}"))),
        }
    }

    pub(crate) fn str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(|v| v.as_str())
    }

    pub(crate) fn unsupported(&self, key: &str, message: impl Into<String>) -> LoadError {
        self.err(key, message)
    }
}
