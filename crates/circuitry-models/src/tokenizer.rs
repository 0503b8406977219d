//! Tokenizers: a Hugging Face `tokenizer.json`, or the BPE vocabulary stored in a GGUF file.

use std::path::{Path, PathBuf};

use crate::error::LoadError;
use crate::loading::gguf::GgufFile;

/// Text to token ids and back, with the special tokens a model declares.
#[derive(Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    /// Where it was loaded from, for error messages.
    pub source: PathBuf,
    pub bos_token_id: Option<u32>,
    pub eos_token_id: Option<u32>,
    pub pad_token_id: Option<u32>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("source", &self.source)
            .field("vocab_size", &self.vocab_size())
            .finish()
    }
}

impl Tokenizer {
    /// Wraps a `tokenizers` tokenizer.
    pub fn from_inner(inner: tokenizers::Tokenizer, source: PathBuf) -> Tokenizer {
        Tokenizer {
            inner,
            source,
            bos_token_id: None,
            eos_token_id: None,
            pad_token_id: None,
        }
    }

    /// Loads a Hugging Face `tokenizer.json`.
    pub fn from_file(path: &Path) -> Result<Tokenizer, LoadError> {
        let inner = tokenizers::Tokenizer::from_file(path).map_err(|e| LoadError::Tokenizer {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Ok(Tokenizer::from_inner(inner, path.to_path_buf()))
    }

    /// Builds the tokenizer stored in a GGUF file's metadata, as Hugging Face transformers does
    /// (see [`crate::loading::gguf::tokenizer`]); byte-level BPE vocabularies only. Special token
    /// ids are set from `tokenizer.ggml.*_token_id`.
    pub fn from_gguf(file: &GgufFile) -> Result<Tokenizer, LoadError> {
        let meta = file.metadata();
        let inner = crate::loading::gguf::tokenizer::build(meta)?;
        let tokenizer = Tokenizer::from_inner(inner, meta.path().to_path_buf());
        Ok(tokenizer.with_special_tokens(
            meta.opt_u32("tokenizer.ggml.bos_token_id")?,
            meta.opt_u32("tokenizer.ggml.eos_token_id")?,
            meta.opt_u32("tokenizer.ggml.padding_token_id")?,
        ))
    }

    /// Sets the special token ids (from the model's configuration).
    pub fn with_special_tokens(
        mut self,
        bos: Option<u32>,
        eos: Option<u32>,
        pad: Option<u32>,
    ) -> Tokenizer {
        self.bos_token_id = bos;
        self.eos_token_id = eos;
        self.pad_token_id = pad;
        self
    }

    /// Token ids of `text`, without adding special tokens (special-token text such as
    /// `<|im_start|>` is still recognised as one token).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, LoadError> {
        self.inner
            .encode(text, false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| LoadError::Tokenizer {
                path: self.source.clone(),
                message: format!("cannot encode {text:?}: {e}"),
            })
    }

    /// Text of a sequence of ids (special tokens kept).
    pub fn decode(&self, ids: &[u32]) -> String {
        self.inner.decode(ids, false).unwrap_or_default()
    }

    /// Text of one token, as it reads in context (e.g. `" Mary"`).
    pub fn token_text(&self, id: u32) -> String {
        self.decode(&[id])
    }

    /// The id of a vocabulary entry spelled exactly as stored (e.g. `"Ġthe"` in byte-level BPE).
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The underlying `tokenizers` object.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }
}
