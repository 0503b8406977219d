//! The sentencepiece BPE tokenizer of a GGUF file (`tokenizer.ggml.model = "llama"`: Llama 1/2,
//! Mistral, Gemma, ...), built as a Hugging Face BPE model that encodes as sentencepiece does:
//!
//! - The vocabulary is `tokenizer.ggml.tokens`; the merges are derived from `.scores` as
//!   transformers derives them for GGUF files without merges: every split of a normal piece into
//!   two pieces of the vocabulary, ranked by the piece's score (sentencepiece merges the adjacent
//!   pair whose concatenation scores highest).
//! - Spaces become `▁`, and with `tokenizer.ggml.add_space_prefix` (sentencepiece's dummy
//!   prefix, on unless the file says otherwise) one `▁` is prepended to the whole text.
//! - Characters outside the vocabulary fall back to their UTF-8 bytes (`<0xXX>` pieces).
//! - User-defined pieces (token type 4) are matched whole in the normalised text, as
//!   sentencepiece matches them: the text is split around them before BPE, and BPE returns a
//!   split that is itself a piece as that piece (`ignore_merges`). Control pieces (3) are
//!   special tokens, as transformers adds them.
//! - Decoding turns `▁` back into spaces, bytes back into characters, and drops the dummy prefix.

use std::collections::HashMap;

use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::models::bpe::{BPE, Merges, Vocab};
use tokenizers::normalizers::{Prepend, Replace, Sequence as NormalizerSequence};
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{
    AddedToken, DecoderWrapper, NormalizerWrapper, SplitDelimiterBehavior, Tokenizer,
};

use super::GgufMetadata;
use super::token_type::{CONTROL, NORMAL, USER_DEFINED};
use crate::error::LoadError;

/// sentencepiece's stand-in for a space.
const SPACE: &str = "\u{2581}";

/// Builds the tokenizer (model, normaliser, decoder, control and user-defined tokens).
pub(super) fn build(
    meta: &GgufMetadata,
    tokens: &[&str],
    token_types: &[i64],
) -> Result<Tokenizer, LoadError> {
    let scores = meta.opt_f64s("tokenizer.ggml.scores")?.ok_or_else(|| {
        meta.error(
            "tokenizer.ggml.scores",
            "missing (a sentencepiece vocabulary ranks its merges by these scores)",
        )
    })?;
    if scores.len() != tokens.len() {
        return Err(meta.error(
            "tokenizer.ggml.scores",
            format!("{} scores for {} tokens", scores.len(), tokens.len()),
        ));
    }
    let tokenizer_error = |message: String| LoadError::Tokenizer {
        path: meta.path().to_path_buf(),
        message,
    };
    let kind = |id: usize| token_types.get(id).copied().unwrap_or(NORMAL);
    let mut vocab = Vocab::default();
    for (id, token) in tokens.iter().enumerate() {
        // A later duplicate wins, as in the Python dict transformers builds.
        vocab.insert(token.to_string(), id as u32);
    }
    let merges = merges_by_score(tokens, &scores, &|id| kind(id) == NORMAL);
    let user_defined: Vec<&str> = tokens
        .iter()
        .enumerate()
        .filter(|(id, _)| kind(*id) == USER_DEFINED)
        .map(|(_, t)| *t)
        .collect();
    let mut bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .byte_fallback(true)
        .fuse_unk(true)
        .ignore_merges(!user_defined.is_empty());
    if let Some(unk) = meta.opt_u32("tokenizer.ggml.unknown_token_id")? {
        let token = tokens.get(unk as usize).ok_or_else(|| {
            meta.error(
                "tokenizer.ggml.unknown_token_id",
                format!(
                    "token id {unk} is beyond the vocabulary ({} tokens)",
                    tokens.len()
                ),
            )
        })?;
        bpe = bpe.unk_token(token.to_string());
    }
    let bpe = bpe.build().map_err(|e| {
        tokenizer_error(format!(
            "cannot build the BPE model from `tokenizer.ggml.tokens` and `.scores`: {e}"
        ))
    })?;
    let mut tokenizer = Tokenizer::new(bpe);

    let space_prefix = meta
        .opt_bool("tokenizer.ggml.add_space_prefix")?
        .unwrap_or(true);
    let spaces =
        Replace::new(" ", SPACE).map_err(|e| tokenizer_error(format!("space replacement: {e}")))?;
    let mut normalizers: Vec<NormalizerWrapper> = Vec::new();
    if space_prefix {
        normalizers.push(Prepend::new(SPACE.to_string()).into());
    }
    normalizers.push(spaces.into());
    tokenizer
        .with_normalizer(Some(NormalizerSequence::new(normalizers)))
        .map_err(|e| tokenizer_error(format!("normaliser: {e}")))?;
    let spaces_back =
        Replace::new(SPACE, " ").map_err(|e| tokenizer_error(format!("space decoding: {e}")))?;
    let mut decoders: Vec<DecoderWrapper> = vec![
        DecoderWrapper::Replace(spaces_back),
        ByteFallback::new().into(),
        Fuse::new().into(),
    ];
    if space_prefix {
        decoders.push(Strip::new(' ', 1, 0).into());
    }
    tokenizer.with_decoder(Some(DecoderSequence::new(decoders)));

    let typed = |wanted: i64| {
        tokens
            .iter()
            .enumerate()
            .filter(move |(id, _)| kind(*id) == wanted)
            .map(|(_, t)| *t)
    };
    let control: Vec<AddedToken> = typed(CONTROL)
        .map(|t| AddedToken::from(t, true).normalized(false))
        .collect();
    tokenizer
        .add_special_tokens(control)
        .map_err(|e| tokenizer_error(format!("control tokens: {e}")))?;
    // Split off after normalisation, so that the dummy prefix and spaces stay their own pieces
    // before a user-defined one, as in sentencepiece.
    if !user_defined.is_empty() {
        let pattern = user_defined
            .iter()
            .map(|t| regex_escape(t))
            .collect::<Vec<_>>()
            .join("|");
        let split = Split::new(
            SplitPattern::Regex(pattern),
            SplitDelimiterBehavior::Isolated,
            false,
        )
        .map_err(|e| tokenizer_error(format!("user-defined tokens: {e}")))?;
        tokenizer.with_pre_tokenizer(Some(split));
    }
    Ok(tokenizer)
}

/// `text` as a regular expression that matches it literally.
fn regex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Every split of a mergeable piece into two pieces of the vocabulary, the pieces with the
/// highest scores first (transformers' `GGUFTokenizerSkeleton`, which orders the splits of one
/// piece by the scores of their halves).
fn merges_by_score(tokens: &[&str], scores: &[f64], mergeable: &dyn Fn(usize) -> bool) -> Merges {
    let score: HashMap<&str, f64> = tokens.iter().copied().zip(scores.iter().copied()).collect();
    let mut merges: Vec<(f64, &str, &str)> = Vec::new();
    for (id, piece) in tokens.iter().enumerate() {
        if !mergeable(id) {
            continue;
        }
        let mut local: Vec<(f64, f64, &str, &str)> = Vec::new();
        for (at, _) in piece.char_indices().skip(1) {
            let (l, r) = piece.split_at(at);
            if let (Some(&sl), Some(&sr)) = (score.get(l), score.get(r)) {
                local.push((sl, sr, l, r));
            }
        }
        local.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.total_cmp(&a.1)));
        merges.extend(local.into_iter().map(|(_, _, l, r)| (scores[id], l, r)));
    }
    // Stable, so pieces of equal score keep the vocabulary's order.
    merges.sort_by(|a, b| b.0.total_cmp(&a.0));
    merges
        .into_iter()
        .map(|(_, l, r)| (l.to_string(), r.to_string()))
        .collect()
}
