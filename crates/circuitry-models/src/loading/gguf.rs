//! GGUF files (llama.cpp's format, versions 2 and 3): a header with typed metadata and tensor
//! descriptions, then aligned tensor data, memory-mapped and dequantized to f32 on demand.
//!
//! Layout, all little-endian: magic `GGUF`, `version: u32`, `n_tensors: u64`, `n_kv: u64`; `n_kv`
//! pairs of (key string, `type: u32`, value); `n_tensors` infos of (name string, `n_dims: u32`,
//! `dims: [u64; n_dims]` innermost first, `type: u32`, `offset: u64`); padding to
//! `general.alignment` (default 32); tensor data, each tensor at its offset from there.
//!
//! Every count, size and offset is checked against the file before it is used, so a truncated or
//! corrupt file gives an error naming the file and the item at fault, never a panic or a huge
//! allocation.

mod cursor;
mod dequant;
mod dequant_k;
mod ggml_type;
mod metadata;
mod sentencepiece;
mod token_type;
pub mod tokenizer;

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use self::cursor::Cursor;
pub use self::ggml_type::{GgmlType, SUPPORTED};
pub use self::metadata::{GgufMetadata, GgufValue};
use super::TensorSource;
use crate::error::LoadError;
use crate::weights::HostTensor;

const MAGIC: &[u8; 4] = b"GGUF";
const DEFAULT_ALIGNMENT: u64 = 32;
/// ggml tensors have at most four dimensions.
const MAX_DIMS: u32 = 4;

/// Where one tensor's data lives and how it is stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GgufTensorInfo {
    /// Row-major (numpy/torch) shape: GGUF's dimension list reversed.
    pub shape: Vec<usize>,
    /// How the values are stored.
    pub ggml_type: GgmlType,
    /// Byte offset of the data from the start of the file.
    pub start: usize,
    /// Byte length of the data; `None` for a type whose layout is unknown.
    pub len: Option<usize>,
}

/// An open GGUF file: its metadata and tensor directory, with the data memory-mapped.
pub struct GgufFile {
    path: PathBuf,
    mmap: Mmap,
    version: u32,
    metadata: GgufMetadata,
    tensors: BTreeMap<String, GgufTensorInfo>,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

impl GgufFile {
    /// Opens and validates `path`: header, metadata and every tensor's extent.
    pub fn open(path: &Path) -> Result<GgufFile, LoadError> {
        let file = File::open(path).map_err(|e| LoadError::io(path, e))?;
        // SAFETY: the file is opened read-only and not expected to change while mapped.
        let mmap = unsafe { Mmap::map(&file) }.map_err(|e| LoadError::io(path, e))?;
        let format_error = |message: String| LoadError::Format {
            path: path.to_path_buf(),
            format: "GGUF",
            message,
        };
        let header = parse_header(&mmap, path).map_err(format_error)?;
        Ok(GgufFile {
            path: path.to_path_buf(),
            mmap,
            version: header.version,
            metadata: header.metadata,
            tensors: header.tensors,
        })
    }

    /// The GGUF format version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The key-value metadata (hyperparameters, tokenizer, ...).
    pub fn metadata(&self) -> &GgufMetadata {
        &self.metadata
    }

    /// Every tensor by name.
    pub fn tensor_infos(&self) -> &BTreeMap<String, GgufTensorInfo> {
        &self.tensors
    }

    /// `general.architecture` (e.g. `llama`).
    pub fn architecture(&self) -> Result<&str, LoadError> {
        self.metadata.str("general.architecture")
    }
}

impl TensorSource for GgufFile {
    fn path(&self) -> &Path {
        &self.path
    }

    fn shapes(&self) -> BTreeMap<String, Vec<usize>> {
        self.tensors
            .iter()
            .map(|(k, t)| (k.clone(), t.shape.clone()))
            .collect()
    }

    fn read(&self, name: &str) -> Result<HostTensor, LoadError> {
        let info = self
            .tensors
            .get(name)
            .ok_or_else(|| LoadError::MissingTensor {
                path: self.path.clone(),
                name: name.to_string(),
                expected: vec![],
            })?;
        let unsupported = || LoadError::UnsupportedDtype {
            path: self.path.clone(),
            name: name.to_string(),
            dtype: format!("{} (GGML type {})", info.ggml_type.name(), info.ggml_type.0),
            supported: SUPPORTED,
        };
        let len = info.len.ok_or_else(unsupported)?;
        // Extents were checked against the file in `open`.
        let bytes = &self.mmap[info.start..info.start + len];
        let data = ggml_type::dequantize(info.ggml_type, bytes).ok_or_else(unsupported)?;
        Ok(HostTensor::new(info.shape.clone(), data))
    }
}

/// What the header describes.
struct Header {
    version: u32,
    metadata: GgufMetadata,
    tensors: BTreeMap<String, GgufTensorInfo>,
}

/// Parses and validates the header of a GGUF file held in `bytes`.
fn parse_header(bytes: &[u8], path: &Path) -> Result<Header, String> {
    let mut cur = Cursor::new(bytes);
    let magic = cur.take(4, &|| "the magic number".into())?;
    if magic != MAGIC {
        return Err(format!(
            "bad magic number {magic:02x?} (expected \"GGUF\"); this is not a GGUF file"
        ));
    }
    let version = cur.u32(&|| "the version".into())?;
    match version {
        2 | 3 => {}
        1 => return Err("GGUF version 1 (32-bit counts) is not supported; reconvert the model with a recent llama.cpp".into()),
        v if v.swap_bytes() == 2 || v.swap_bytes() == 3 => {
            return Err("big-endian GGUF files are not supported".into());
        }
        v => return Err(format!("unknown GGUF version {v} (supported: 2, 3)")),
    }
    let n_tensors = cur.u64(&|| "the tensor count".into())?;
    let n_kv = cur.u64(&|| "the metadata count".into())?;
    // A metadata pair takes at least 13 bytes (empty key, type, one-byte value), a tensor info at
    // least 24; larger counts cannot be honest, and must not drive allocations.
    if n_kv > (cur.remaining() / 13) as u64 {
        return Err(format!(
            "metadata count {n_kv} cannot fit in the {} bytes of the file",
            bytes.len()
        ));
    }
    if n_tensors > (cur.remaining() / 24) as u64 {
        return Err(format!(
            "tensor count {n_tensors} cannot fit in the {} bytes of the file",
            bytes.len()
        ));
    }

    let mut values = BTreeMap::new();
    for i in 0..n_kv {
        let key = cur.string(&|| format!("the key of metadata entry {i}"))?;
        let what = || format!("metadata `{key}`");
        let ty = cur.u32(&what)?;
        let value = GgufValue::read(&mut cur, ty, &what, 0)?;
        if values.insert(key.clone(), value).is_some() {
            return Err(format!("metadata key `{key}` appears twice"));
        }
    }
    let metadata = GgufMetadata::new(path, values);

    let alignment = match metadata.get("general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some(v) => match v.as_u64() {
            Some(a) if a.is_power_of_two() => a,
            _ => {
                return Err(format!(
                    "metadata `general.alignment` is {v:?}; it must be a power of two"
                ));
            }
        },
    };

    let mut raw = Vec::new();
    let mut names = HashSet::new();
    for i in 0..n_tensors {
        let name = cur.string(&|| format!("the name of tensor {i}"))?;
        let what = || format!("the info of tensor `{name}`");
        let n_dims = cur.u32(&what)?;
        if n_dims > MAX_DIMS {
            return Err(format!(
                "tensor `{name}` has {n_dims} dimensions (ggml allows at most {MAX_DIMS})"
            ));
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            dims.push(cur.u64(&what)?);
        }
        let ggml_type = GgmlType(cur.u32(&what)?);
        let offset = cur.u64(&what)?;
        if !names.insert(name.clone()) {
            return Err(format!("tensor `{name}` appears twice"));
        }
        raw.push((name, dims, ggml_type, offset));
    }
    let data_start = (cur.pos() as u64).next_multiple_of(alignment);

    let mut tensors = BTreeMap::new();
    for (name, dims, ggml_type, offset) in raw {
        let info = tensor_info(
            &name,
            &dims,
            ggml_type,
            offset,
            data_start,
            alignment,
            bytes.len(),
        )?;
        tensors.insert(name, info);
    }
    Ok(Header {
        version,
        metadata,
        tensors,
    })
}

/// Checks one tensor's dimensions and extent against its type and the file size.
fn tensor_info(
    name: &str,
    dims: &[u64],
    ggml_type: GgmlType,
    offset: u64,
    data_start: u64,
    alignment: u64,
    file_len: usize,
) -> Result<GgufTensorInfo, String> {
    let count = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= usize::MAX as u64)
        .ok_or_else(|| format!("tensor `{name}` has absurd dimensions {dims:?}"))?;
    let shape: Vec<usize> = dims.iter().rev().map(|&d| d as usize).collect();
    if !offset.is_multiple_of(alignment) {
        return Err(format!(
            "tensor `{name}` starts at data offset {offset}, not a multiple of the alignment {alignment}"
        ));
    }
    let start = data_start
        .checked_add(offset)
        .filter(|&s| s <= file_len as u64)
        .ok_or_else(|| {
            format!("tensor `{name}` starts at byte {data_start} + {offset}, beyond the end of the file ({file_len} bytes); the file is truncated or corrupt")
        })?;
    let Some((block, block_bytes)) = ggml_type.layout() else {
        // Unknown type: its size is unknown, so reading it fails with a clear error later.
        return Ok(GgufTensorInfo {
            shape,
            ggml_type,
            start: start as usize,
            len: None,
        });
    };
    let inner = dims.first().copied().unwrap_or(1);
    if !inner.is_multiple_of(block as u64) {
        return Err(format!(
            "tensor `{name}` of type {} has {inner} values per row, not a multiple of its block size {block}",
            ggml_type.name()
        ));
    }
    let len = (count / block as u64) * block_bytes as u64;
    let end = start.checked_add(len).filter(|&e| e <= file_len as u64).ok_or_else(|| {
        format!(
            "tensor `{name}` ({} bytes of {}) runs from byte {start} past the end of the file ({file_len} bytes); the file is truncated or corrupt",
            len,
            ggml_type.name()
        )
    })?;
    Ok(GgufTensorInfo {
        shape,
        ggml_type,
        start: start as usize,
        len: Some((end - start) as usize),
    })
}
