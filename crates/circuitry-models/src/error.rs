//! Errors from loading models and tokenizers. Each names the file and, where there is one, the
//! tensor or key at fault.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a valid {format} file: {message}")]
    Format {
        path: PathBuf,
        format: &'static str,
        message: String,
    },
    #[error("{path}: config key `{key}`: {message}")]
    Config {
        path: PathBuf,
        key: String,
        message: String,
    },
    #[error(
        "{path}: unsupported architecture `{found}`; supported: GPT2LMHeadModel (gpt2), LlamaForCausalLM / MistralForCausalLM / Qwen2ForCausalLM (llama)"
    )]
    UnsupportedArchitecture { path: PathBuf, found: String },
    #[error(
        "{path}: GGUF `general.architecture` is `{found}`; supported in GGUF files: {supported} (for the others, load the Hugging Face checkpoint)"
    )]
    UnsupportedGgufArchitecture {
        path: PathBuf,
        found: String,
        supported: String,
    },
    #[error("{path}: tensor `{name}` is missing (expected shape {expected:?})")]
    MissingTensor {
        path: PathBuf,
        name: String,
        expected: Vec<usize>,
    },
    #[error(
        "{path}: tensor `{name}` holds {value} at index {index}; every output would be NaN (the checkpoint is corrupt, or was saved from a diverged run)"
    )]
    NonFinite {
        path: PathBuf,
        name: String,
        index: usize,
        value: f32,
    },
    #[error("{path}: tensor `{name}` has shape {found:?}, expected {expected:?}")]
    ShapeMismatch {
        path: PathBuf,
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("{path}: tensor `{name}` has unsupported data type {dtype}; supported: {supported}")]
    UnsupportedDtype {
        path: PathBuf,
        name: String,
        dtype: String,
        supported: &'static str,
    },
    #[error("{path}: unexpected tensors not used by the {architecture} architecture: {names}")]
    UnusedTensors {
        path: PathBuf,
        architecture: &'static str,
        names: String,
    },
    #[error("{path}: {message}")]
    NotFound { path: PathBuf, message: String },
    #[error("{path}: tokenizer: {message}")]
    Tokenizer { path: PathBuf, message: String },
}

impl LoadError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> LoadError {
        LoadError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Why a text is not one vocabulary token ([`crate::Tokenizer::single_token`]).
#[derive(Debug, thiserror::Error)]
pub enum TokenTextError {
    #[error("{0}")]
    Encode(LoadError),
    #[error(
        "{text:?} is not in the vocabulary of `{}`: {} would silently become its unknown token {unk:?}",
        tokenizer.display(),
        .pieces.iter().map(|p| format!("{p:?}")).collect::<Vec<_>>().join(", ")
    )]
    Unknown {
        text: String,
        tokenizer: PathBuf,
        /// The pieces of `text` the vocabulary does not know.
        pieces: Vec<String>,
        /// The unknown token's spelling.
        unk: String,
    },
    #[error("{text:?} is {} tokens, not one: [{pieces}]", .ids.len())]
    NotOne {
        text: String,
        ids: Vec<u32>,
        /// How the tokens read (`" M" "ary"`).
        pieces: String,
    },
}
