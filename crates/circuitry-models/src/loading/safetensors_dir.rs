//! Hugging Face model directories: `config.json` and `model.safetensors`, or shards listed in
//! `model.safetensors.index.json`. Files are memory-mapped; f32, f16 and bf16 are accepted.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};

use super::TensorSource;
use crate::error::LoadError;
use crate::weights::HostTensor;

/// The safetensors files of one model directory.
pub struct SafetensorsDir {
    dir: PathBuf,
    files: Vec<(PathBuf, Mmap)>,
    /// Tensor name -> (file index, shape).
    index: BTreeMap<String, (usize, Vec<usize>)>,
}

impl SafetensorsDir {
    pub fn open(dir: &Path) -> Result<SafetensorsDir, LoadError> {
        let single = dir.join("model.safetensors");
        let index_path = dir.join("model.safetensors.index.json");
        let names: Vec<PathBuf> = if single.is_file() {
            vec![single]
        } else if index_path.is_file() {
            let text =
                std::fs::read_to_string(&index_path).map_err(|e| LoadError::io(&index_path, e))?;
            let json: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| LoadError::Format {
                    path: index_path.clone(),
                    format: "safetensors index",
                    message: e.to_string(),
                })?;
            let map = json
                .get("weight_map")
                .and_then(|m| m.as_object())
                .ok_or_else(|| LoadError::Format {
                    path: index_path.clone(),
                    format: "safetensors index",
                    message: "no `weight_map` object".into(),
                })?;
            let mut files: Vec<String> = map
                .values()
                .filter_map(|v| v.as_str().map(String::from))
                .collect();
            files.sort();
            files.dedup();
            files.into_iter().map(|f| dir.join(f)).collect()
        } else {
            return Err(LoadError::NotFound {
                path: dir.to_path_buf(),
                message: "no model.safetensors or model.safetensors.index.json (PyTorch .bin checkpoints are not supported; convert them to safetensors)".into(),
            });
        };
        let mut files = Vec::new();
        let mut index = BTreeMap::new();
        for path in names {
            let file = File::open(&path).map_err(|e| LoadError::io(&path, e))?;
            // SAFETY: the file is opened read-only and not expected to change while mapped.
            let mmap = unsafe { Mmap::map(&file) }.map_err(|e| LoadError::io(&path, e))?;
            let st = SafeTensors::deserialize(&mmap).map_err(|e| LoadError::Format {
                path: path.clone(),
                format: "safetensors",
                message: e.to_string(),
            })?;
            for (name, view) in st.tensors() {
                index.insert(name, (files.len(), view.shape().to_vec()));
            }
            files.push((path, mmap));
        }
        Ok(SafetensorsDir {
            dir: dir.to_path_buf(),
            files,
            index,
        })
    }
}

impl TensorSource for SafetensorsDir {
    fn path(&self) -> &Path {
        &self.dir
    }

    fn shapes(&self) -> BTreeMap<String, Vec<usize>> {
        self.index
            .iter()
            .map(|(k, (_, s))| (k.clone(), s.clone()))
            .collect()
    }

    fn read(&self, name: &str) -> Result<HostTensor, LoadError> {
        let (file_idx, _) = self
            .index
            .get(name)
            .ok_or_else(|| LoadError::MissingTensor {
                path: self.dir.clone(),
                name: name.to_string(),
                expected: vec![],
            })?;
        let (path, mmap) = &self.files[*file_idx];
        let st = SafeTensors::deserialize(mmap).map_err(|e| LoadError::Format {
            path: path.clone(),
            format: "safetensors",
            message: e.to_string(),
        })?;
        let view = st.tensor(name).map_err(|e| LoadError::Format {
            path: path.clone(),
            format: "safetensors",
            message: e.to_string(),
        })?;
        let bytes = view.data();
        let data: Vec<f32> = match view.dtype() {
            Dtype::F32 => bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            Dtype::F16 => bytes
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            Dtype::BF16 => bytes
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            other => {
                return Err(LoadError::UnsupportedDtype {
                    path: path.clone(),
                    name: name.to_string(),
                    dtype: format!("{other:?}"),
                    supported: "F32, F16, BF16",
                });
            }
        };
        Ok(HostTensor::new(view.shape().to_vec(), data))
    }
}
