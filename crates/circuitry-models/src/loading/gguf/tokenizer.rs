//! The tokenizer a GGUF file describes in its metadata (`tokenizer.ggml.*`), built in memory the
//! way Hugging Face transformers builds it from the same file (`integrations/gguf/
//! gguf_tokenizer_mapping.py` and `GPT2Tokenizer`), so that both give the same token ids.
//!
//! Byte-level BPE vocabularies (`tokenizer.ggml.model = "gpt2"`: GPT-2, Llama 3, Qwen2, SmolLM,
//! ...) are built here, sentencepiece ones (`llama`) in [`super::sentencepiece`]; unigram (`t5`)
//! and other models are rejected with an error naming the key. Both share steps 4 (its named
//! tokens) and 5.
//!
//! What transformers does for byte-level BPE, step by step, and so what this file does:
//! 1. BPE over the vocabulary and merges, no unknown token, no subword prefix or suffix. Tokens
//!    spelled outside the byte-level alphabet are re-spelled as the alphabet characters of their
//!    UTF-8 bytes (a later token with the same spelling wins, as in a Python dict).
//! 2. ByteLevel pre-tokenization without a prefix space: transformers ignores
//!    `tokenizer.ggml.add_space_prefix` for byte-level vocabularies, as llama.cpp does. When
//!    `tokenizer.ggml.pre` names a known split regex (Llama 3, Qwen2, GPT-4o, ... families), text
//!    is first split with it and ByteLevel runs without its own GPT-2 regex.
//! 3. ByteLevel decoding.
//! 4. Control tokens (`token_type` 3) become special added tokens, except those spelled outside
//!    the byte alphabet (llama.cpp mislabels; adding them would grow the vocabulary);
//!    user-defined tokens (4) already in the vocabulary become plain added tokens; then the bos,
//!    eos, unk and pad tokens named by id become special added tokens if they are not yet.
//! 5. A post-processor that prepends bos / appends eos when `tokenizer.ggml.add_bos_token` /
//!    `add_eos_token` say so (only used when encoding with special tokens).

use std::collections::HashSet;

use tokenizers::models::bpe::{BPE, Merges, Vocab};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, PreTokenizerWrapper, SplitDelimiterBehavior, Tokenizer};

use super::GgufMetadata;
use super::token_type::{CONTROL, USER_DEFINED};
use crate::error::LoadError;

const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const TEKKEN_SPLIT: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const GPT4O_SPLIT: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN35_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// transformers' `GGUF_PRE_TOKENIZER_SPLITS`: `tokenizer.ggml.pre` values whose vocabularies were
/// trained on text split by a regex other than GPT-2's. Any other value means GPT-2's.
const PRE_TOKENIZER_SPLITS: &[(&str, &str)] = &[
    ("llama3", LLAMA3_SPLIT),
    ("llama-v3", LLAMA3_SPLIT),
    ("llama-bpe", LLAMA3_SPLIT),
    ("falcon3", LLAMA3_SPLIT),
    ("falcon-h1", LLAMA3_SPLIT),
    ("pixtral", LLAMA3_SPLIT),
    ("midm-2.0", LLAMA3_SPLIT),
    ("lfm2", LLAMA3_SPLIT),
    ("jina-v5-nano", LLAMA3_SPLIT),
    ("dbrx", LLAMA3_SPLIT),
    ("smaug-bpe", LLAMA3_SPLIT),
    ("tekken", TEKKEN_SPLIT),
    ("qwen2", QWEN2_SPLIT),
    ("deepseek-r1-qwen", QWEN2_SPLIT),
    ("kormo", QWEN2_SPLIT),
    ("f2llmv2", QWEN2_SPLIT),
    ("megrez", QWEN2_SPLIT),
    ("qwen35", QWEN35_SPLIT),
    ("gpt-4o", GPT4O_SPLIT),
    ("llama4", GPT4O_SPLIT),
    ("kanana2", GPT4O_SPLIT),
    ("talkie", GPT4O_SPLIT),
    ("minimax-m2", GPT4O_SPLIT),
];

/// The split regex for a `tokenizer.ggml.pre` value, if it is not GPT-2's.
pub fn split_regex(pre: &str) -> Option<&'static str> {
    PRE_TOKENIZER_SPLITS
        .iter()
        .find(|(k, _)| *k == pre)
        .map(|(_, v)| *v)
}

/// GPT-2's byte-to-character table: printable bytes stand for themselves, the others are mapped
/// to characters from U+0100 up, so every byte string spells as printable text.
fn bytes_to_unicode() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut next = 256u32;
    for b in 0..=255u8 {
        let printable = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        table[b as usize] = if printable {
            b as char
        } else {
            next += 1;
            char::from_u32(next - 1).expect("below the surrogate range")
        };
    }
    table
}

/// Builds the tokenizer described by `meta` (see the module documentation).
pub fn build(meta: &GgufMetadata) -> Result<Tokenizer, LoadError> {
    let model = meta.str("tokenizer.ggml.model")?;
    let tokens = meta
        .opt_strings("tokenizer.ggml.tokens")?
        .ok_or_else(|| meta.error("tokenizer.ggml.tokens", "missing"))?;
    let token_types = meta
        .opt_ints("tokenizer.ggml.token_type")?
        .unwrap_or_default();
    let mut tokenizer = match model {
        "gpt2" => byte_level_bpe(meta, &tokens, &token_types)?,
        "llama" => super::sentencepiece::build(meta, &tokens, &token_types)?,
        _ => {
            return Err(meta.error(
                "tokenizer.ggml.model",
                format!("`{model}`: this tokenizer model is not supported; supported: `gpt2` (byte-level BPE) and `llama` (sentencepiece BPE)"),
            ));
        }
    };
    let tokenizer_error = |message: String| LoadError::Tokenizer {
        path: meta.path().to_path_buf(),
        message,
    };

    // The named special tokens, spelled as the file spells them.
    let named = |key: &str| -> Result<Option<String>, LoadError> {
        match meta.opt_u32(key)? {
            None => Ok(None),
            Some(id) => tokens
                .get(id as usize)
                .map(|t| Some(t.to_string()))
                .ok_or_else(|| {
                    meta.error(
                        key,
                        format!(
                            "token id {id} is beyond the vocabulary ({} tokens)",
                            tokens.len()
                        ),
                    )
                }),
        }
    };
    let bos = named("tokenizer.ggml.bos_token_id")?;
    let eos = named("tokenizer.ggml.eos_token_id")?;
    let unk = named("tokenizer.ggml.unknown_token_id")?;
    let pad = named("tokenizer.ggml.padding_token_id")?;
    let added: HashSet<String> = tokenizer
        .get_added_tokens_decoder()
        .values()
        .map(|t| t.content.clone())
        .collect();
    let mut missing: Vec<AddedToken> = Vec::new();
    for t in [&bos, &eos, &unk, &pad].into_iter().flatten() {
        if !added.contains(t) && !missing.iter().any(|m| &m.content == t) {
            missing.push(AddedToken::from(t.as_str(), true));
        }
    }
    tokenizer
        .add_tokens(missing)
        .map_err(|e| tokenizer_error(format!("bos/eos/unk/pad tokens: {e}")))?;

    let add_bos = meta
        .opt_bool("tokenizer.ggml.add_bos_token")?
        .unwrap_or(false)
        && bos.is_some();
    let add_eos = meta
        .opt_bool("tokenizer.ggml.add_eos_token")?
        .unwrap_or(false)
        && eos.is_some();
    let post = post_processor(
        &tokenizer,
        bos.as_deref().filter(|_| add_bos),
        eos.as_deref().filter(|_| add_eos),
    )
    .map_err(|e| tokenizer_error(format!("post-processor: {e}")))?;
    tokenizer.with_post_processor(Some(post));
    Ok(tokenizer)
}

/// The byte-level BPE model with its pre-tokenizer, decoder, control and user-defined tokens
/// (steps 1 to 4 of the module documentation, before the named tokens).
fn byte_level_bpe(
    meta: &GgufMetadata,
    tokens: &[&str],
    token_types: &[i64],
) -> Result<Tokenizer, LoadError> {
    let merges = meta.opt_strings("tokenizer.ggml.merges")?.ok_or_else(|| {
        meta.error(
            "tokenizer.ggml.merges",
            "missing (a byte-level BPE vocabulary needs its merges)",
        )
    })?;
    let tokenizer_error = |message: String| LoadError::Tokenizer {
        path: meta.path().to_path_buf(),
        message,
    };

    let spelling = bytes_to_unicode();
    let alphabet: HashSet<char> = spelling.iter().copied().collect();
    let in_alphabet = |t: &str| t.chars().all(|c| alphabet.contains(&c));
    let mut vocab = Vocab::default();
    for (id, token) in tokens.iter().enumerate() {
        let key = if in_alphabet(token) {
            token.to_string()
        } else {
            token.bytes().map(|b| spelling[b as usize]).collect()
        };
        vocab.insert(key, id as u32);
    }
    let merges: Merges = merges
        .iter()
        .enumerate()
        .map(|(i, m)| match m.split(' ').collect::<Vec<_>>()[..] {
            [a, b] => Ok((a.to_string(), b.to_string())),
            _ => Err(meta.error(
                "tokenizer.ggml.merges",
                format!("merge {i} ({m:?}) is not two tokens separated by one space"),
            )),
        })
        .collect::<Result<_, _>>()?;
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .continuing_subword_prefix(String::new())
        .end_of_word_suffix(String::new())
        .fuse_unk(false)
        .build()
        .map_err(|e| tokenizer_error(format!("cannot build the BPE model from `tokenizer.ggml.tokens` and `tokenizer.ggml.merges`: {e}")))?;
    let mut tokenizer = Tokenizer::new(bpe);

    let pre = meta.opt_str("tokenizer.ggml.pre")?;
    let pre_tokenizer: PreTokenizerWrapper = match pre.and_then(split_regex) {
        Some(regex) => {
            let split = Split::new(
                SplitPattern::Regex(regex.to_string()),
                SplitDelimiterBehavior::Isolated,
                false,
            )
            .map_err(|e| {
                tokenizer_error(format!(
                    "split regex for `tokenizer.ggml.pre` = {pre:?}: {e}"
                ))
            })?;
            Sequence::new(vec![
                split.into(),
                ByteLevel::new(false, true, false).into(),
            ])
            .into()
        }
        None => ByteLevel::new(false, true, true).into(),
    };
    tokenizer.with_pre_tokenizer(Some(pre_tokenizer));
    tokenizer.with_decoder(Some(ByteLevel::default()));

    // Control tokens (special), then user-defined ones (plain), as transformers adds them.
    let typed = |kind: i64| {
        tokens
            .iter()
            .zip(token_types)
            .filter(move |(_, t)| **t == kind)
            .map(|(token, _)| *token)
    };
    let control: Vec<AddedToken> = typed(CONTROL)
        .filter(|t| in_alphabet(t))
        .map(|t| AddedToken::from(t, true).normalized(false))
        .collect();
    tokenizer
        .add_special_tokens(control)
        .map_err(|e| tokenizer_error(format!("control tokens: {e}")))?;
    let known = tokenizer.get_vocab(true);
    let user_defined: Vec<AddedToken> = typed(USER_DEFINED)
        .filter(|t| known.contains_key(*t))
        .map(|t| AddedToken::from(t, false).normalized(false))
        .collect();
    tokenizer
        .add_tokens(user_defined)
        .map_err(|e| tokenizer_error(format!("user-defined tokens: {e}")))?;

    Ok(tokenizer)
}

/// transformers' `update_post_processor`: `[bos] $A [eos]` and `[bos] $A [eos] [bos] $B [eos]`.
fn post_processor(
    tokenizer: &Tokenizer,
    bos: Option<&str>,
    eos: Option<&str>,
) -> Result<TemplateProcessing, String> {
    let mut special = Vec::new();
    let mut parts = |type_id: u32, seq: &str| -> Result<Vec<String>, String> {
        let mut out = Vec::new();
        for (token, before) in [(bos, true), (eos, false)] {
            let Some(token) = token else { continue };
            let id = tokenizer
                .token_to_id(token)
                .ok_or_else(|| format!("{token:?} is not in the vocabulary"))?;
            if !special.iter().any(|(t, _): &(String, u32)| t == token) {
                special.push((token.to_string(), id));
            }
            let piece = format!("{token}:{type_id}");
            if before {
                out.insert(0, piece);
            } else {
                out.push(piece);
            }
        }
        out.insert(usize::from(bos.is_some()), format!("${seq}:{type_id}"));
        Ok(out)
    };
    let single = parts(0, "A")?;
    let mut pair = single.clone();
    pair.extend(parts(1, "B")?);
    TemplateProcessing::builder()
        .try_single(single)
        .map_err(|e| e.to_string())?
        .try_pair(pair)
        .map_err(|e| e.to_string())?
        .special_tokens(special)
        .build()
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_split_regex_compiles() {
        for (pre, regex) in PRE_TOKENIZER_SPLITS {
            Split::new(
                SplitPattern::Regex(regex.to_string()),
                SplitDelimiterBehavior::Isolated,
                false,
            )
            .unwrap_or_else(|e| panic!("{pre}: {e}"));
        }
        assert_eq!(split_regex("qwen2"), Some(QWEN2_SPLIT));
        assert_eq!(split_regex("smollm"), None);
    }

    #[test]
    fn byte_alphabet_matches_gpt2() {
        let t = bytes_to_unicode();
        assert_eq!(t[b' ' as usize], '\u{120}'); // Ġ
        assert_eq!(t[b'\n' as usize], '\u{10A}'); // Ċ
        assert_eq!(t[b'a' as usize], 'a');
        assert_eq!(t[0xAD], '\u{143}');
        assert_eq!(t.iter().collect::<HashSet<_>>().len(), 256);
    }
}
