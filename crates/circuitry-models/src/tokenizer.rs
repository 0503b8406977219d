//! Tokenizers: a Hugging Face `tokenizer.json`, or the BPE vocabulary stored in a GGUF file.

use std::path::{Path, PathBuf};

use crate::error::{LoadError, TokenTextError};
use crate::loading::gguf::GgufFile;

/// Text to token ids and back, with the special tokens a model declares.
#[derive(Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    /// The unknown token (id and spelling), when the model has one.
    unk: Option<(u32, String)>,
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
        let unk = unknown_token(&inner);
        Tokenizer {
            inner,
            unk,
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

    /// Token ids of `text` (as [`Tokenizer::encode`]) and the pieces of `text` the vocabulary
    /// does not know: each became the unknown token (see [`Tokenizer::unk_token`]). A piece
    /// spelled as the unknown token itself (a word-level vocabulary's `t0`) is known.
    pub fn encode_checked(&self, text: &str) -> Result<Encoded, LoadError> {
        let encoding = self
            .inner
            .encode(text, false)
            .map_err(|e| LoadError::Tokenizer {
                path: self.source.clone(),
                message: format!("cannot encode {text:?}: {e}"),
            })?;
        let mut unknown = Vec::new();
        if let Some((unk_id, unk_text)) = &self.unk {
            for (&id, &(start, end)) in encoding.get_ids().iter().zip(encoding.get_offsets()) {
                let piece = text.get(start..end).unwrap_or("");
                if id == *unk_id && piece.trim() != unk_text && !piece.is_empty() {
                    unknown.push(piece.to_string());
                }
            }
        }
        Ok(Encoded {
            ids: encoding.get_ids().to_vec(),
            unknown,
        })
    }

    /// The one vocabulary token `text` is: an error when it encodes to several tokens (or none),
    /// or when the vocabulary does not know it (it would silently be the unknown token).
    pub fn single_token(&self, text: &str) -> Result<u32, TokenTextError> {
        let encoded = self.encode_checked(text).map_err(TokenTextError::Encode)?;
        if !encoded.unknown.is_empty() {
            return Err(TokenTextError::Unknown {
                text: text.to_string(),
                tokenizer: self.source.clone(),
                pieces: encoded.unknown,
                unk: self.unk.as_ref().map(|u| u.1.clone()).unwrap_or_default(),
            });
        }
        match encoded.ids.as_slice() {
            [id] => Ok(*id),
            ids => Err(TokenTextError::NotOne {
                text: text.to_string(),
                ids: ids.to_vec(),
                pieces: self.pieces(ids),
            }),
        }
    }

    /// How ids read, token by token, for messages: `" M" "ary"`.
    pub fn pieces(&self, ids: &[u32]) -> String {
        ids.iter()
            .map(|&id| format!("{:?}", self.token_text(id)))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The token (id and spelling) the tokenizer turns text it cannot spell into (`[UNK]`,
    /// `<unk>`, a word-level vocabulary's `unk_token`); `None` when it has none (byte-level BPE,
    /// such as GPT-2's and every GGUF vocabulary read here, spells every text).
    pub fn unk_token(&self) -> Option<(u32, &str)> {
        self.unk.as_ref().map(|(id, t)| (*id, t.as_str()))
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

/// A text's token ids, and the pieces of it that became the unknown token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encoded {
    pub ids: Vec<u32>,
    /// The pieces of the text (as written) the vocabulary does not know, in order.
    pub unknown: Vec<String>,
}

/// The unknown token of a `tokenizers` model, if it declares one that is in its vocabulary.
fn unknown_token(inner: &tokenizers::Tokenizer) -> Option<(u32, String)> {
    use tokenizers::models::ModelWrapper;
    let unk = match inner.get_model() {
        ModelWrapper::BPE(m) => m.get_unk_token().clone()?,
        ModelWrapper::WordPiece(m) => m.unk_token.clone(),
        ModelWrapper::WordLevel(m) => m.unk_token.clone(),
        ModelWrapper::Unigram(m) => {
            // The unknown id is private; the serialized model carries it.
            let id = serde_json::to_value(m).ok()?.get("unk_id")?.as_u64()?;
            let id = u32::try_from(id).ok()?;
            return inner.id_to_token(id).map(|t| (id, t));
        }
    };
    inner.token_to_id(&unk).map(|id| (id, unk))
}
