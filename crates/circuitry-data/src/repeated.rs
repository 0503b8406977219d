//! The `repeated_tokens` generator: random token sequences repeated, for induction heads.

use std::collections::BTreeSet;

use circuitry_models::Tokenizer;
use circuitry_vocab::limits::{MAX_PROMPTS, MAX_TOKENS};

use crate::dataset::Prompt;
use crate::error::{DataError, RowCheck, RowIssue};
use crate::rng::Rng;

/// Position name of the first random token (0, or 1 after a BOS).
pub const SEQ_START: &str = "seq_start";
/// Position name of the first token of the second repetition (present when `repeats >= 2`).
pub const REPEAT_START: &str = "repeat_start";

/// Gives prompts that a dataset declares to be `repeats` copies of one sequence after the
/// `bos_len` BOS tokens (`[BOS?] r r ...`) the positions `seq_start` and `repeat_start`, as the
/// generator's prompts have them; every prompt that is not such copies is reported at once.
pub(crate) fn mark_repeats(
    dataset: &str,
    prompts: &mut [(Prompt, String)],
    bos_len: usize,
    repeats: usize,
) -> Result<(), DataError> {
    let mut bad = Vec::new();
    for (prompt, origin) in prompts.iter_mut() {
        let body = &prompt.tokens[bos_len.min(prompt.tokens.len())..];
        let length = body.len() / repeats.max(1);
        let copies = repeats >= 2
            && length >= 1
            && body.len() == length * repeats
            && body.chunks(length).all(|c| c == &body[..length]);
        if !copies {
            bad.push(RowIssue {
                id: prompt.id,
                origin: origin.clone(),
                detail: format!(
                    "its {} tokens after the BOS are not {repeats} copies of one sequence",
                    body.len()
                ),
            });
            continue;
        }
        prompt.positions.insert(SEQ_START.to_string(), bos_len);
        prompt
            .positions
            .insert(REPEAT_START.to_string(), bos_len + length);
    }
    RowCheck::Invalid.result(dataset, bad)
}

/// `n` prompts of `[BOS?] r r ... r`: `r` is `length` tokens drawn independently and uniformly
/// (with replacement) from the candidate tokens, repeated `repeats` times.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepeatedTokensConfig {
    pub n: usize,
    pub length: usize,
    /// Copies of the random sequence (default 2).
    pub repeats: usize,
    /// Candidate tokens `[lo, hi)`; `None`: the whole vocabulary.
    pub token_range: Option<(u32, u32)>,
    /// Leave out the tokenizer's special tokens and its BOS/EOS/pad ids (default true).
    pub exclude_special: bool,
    /// The stream's seed; the runner passes `derive_seed(experiment_seed, dataset_name)` unless
    /// the dataset sets its own.
    pub seed: u64,
}

impl RepeatedTokensConfig {
    /// `n` prompts of a `length`-token sequence repeated twice, over the whole vocabulary minus
    /// the special tokens.
    pub fn new(n: usize, length: usize, seed: u64) -> RepeatedTokensConfig {
        RepeatedTokensConfig {
            n,
            length,
            repeats: 2,
            token_range: None,
            exclude_special: true,
            seed,
        }
    }
}

/// The token ids a tokenizer marks special, plus its BOS, EOS and pad ids.
pub fn special_token_ids(tokenizer: &Tokenizer) -> BTreeSet<u32> {
    let mut ids: BTreeSet<u32> = tokenizer
        .inner()
        .get_added_tokens_decoder()
        .into_iter()
        .filter(|(_, t)| t.special)
        .map(|(id, _)| id)
        .collect();
    ids.extend(
        [
            tokenizer.bos_token_id,
            tokenizer.eos_token_id,
            tokenizer.pad_token_id,
        ]
        .into_iter()
        .flatten(),
    );
    ids
}

/// Checks the sizes before a token is drawn, so that a huge `n` or `length` is a located error,
/// not an allocation that aborts the process: at most [`MAX_PROMPTS`] prompts, every prompt
/// (`bos` tokens, then `repeats` copies of `length` tokens) within a context of `n_ctx` tokens
/// when one is given, and at most [`MAX_TOKENS`] tokens in all.
pub(crate) fn check_size(
    dataset: &str,
    cfg: &RepeatedTokensConfig,
    bos: usize,
    n_ctx: Option<usize>,
) -> Result<(), DataError> {
    if cfg.n as u64 > MAX_PROMPTS {
        return Err(DataError::too_many_prompts(dataset, cfg.n));
    }
    let len = cfg
        .length
        .checked_mul(cfg.repeats)
        .and_then(|l| l.checked_add(bos));
    let shown = || len.map_or_else(|| "more than 2^64".to_string(), |l| l.to_string());
    // The key to point at when a prompt is too long: the larger factor.
    let longer = if cfg.length >= cfg.repeats {
        "length"
    } else {
        "repeats"
    };
    if let Some(n_ctx) = n_ctx
        && len.is_none_or(|l| l > n_ctx)
    {
        return Err(DataError::config_at(
            dataset,
            longer,
            format!(
                "every prompt would be {} tokens ({bos} BOS + {} repeats x length {}), longer than the model's context of {n_ctx} tokens",
                shown(),
                cfg.repeats,
                cfg.length
            ),
            format!(
                "lower length or repeats so that {bos} + repeats x length <= {n_ctx}, or use a model with a longer context"
            ),
        ));
    }
    let total = len.and_then(|l| (l as u64).checked_mul(cfg.n as u64));
    if total.is_none_or(|t| t > MAX_TOKENS) {
        // One prompt alone over the bound: its length is at fault, else the number of prompts.
        let at = if len.is_none_or(|l| l as u64 > MAX_TOKENS) {
            longer
        } else {
            "n"
        };
        return Err(DataError::config_at(
            dataset,
            at,
            format!(
                "{} prompts of {} tokens would hold {} tokens, more than the {MAX_TOKENS} one dataset may hold",
                cfg.n,
                shown(),
                total.map_or_else(|| "more than 2^64".to_string(), |t| t.to_string()),
            ),
            format!(
                "lower n or length so that n x ({bos} + repeats x length) <= {MAX_TOKENS}; split a larger study into several datasets (e.g. sweep the seed)"
            ),
        ));
    }
    Ok(())
}

pub(crate) fn generate_repeated(
    dataset: &str,
    cfg: &RepeatedTokensConfig,
    tokenizer: &Tokenizer,
    bos: &[u32],
) -> Result<Vec<Prompt>, DataError> {
    let vocab = tokenizer.vocab_size() as u64;
    if cfg.length == 0 || cfg.repeats == 0 {
        return Err(DataError::config_at(
            dataset,
            if cfg.length == 0 { "length" } else { "repeats" },
            format!(
                "repeated_tokens needs length >= 1 and repeats >= 1 (got length {}, repeats {})",
                cfg.length, cfg.repeats
            ),
            "set length and repeats to positive numbers",
        ));
    }
    let (lo, hi) = cfg
        .token_range
        .map_or((0, vocab), |(lo, hi)| (lo.into(), hi.into()));
    if lo >= hi || hi > vocab {
        return Err(DataError::config_at(
            dataset,
            "token_range",
            format!(
                "token range [{lo}, {hi}) is not a non-empty range inside the vocabulary of {vocab}"
            ),
            "use 0 <= lo < hi <= vocab_size",
        ));
    }
    let excluded = if cfg.exclude_special {
        special_token_ids(tokenizer)
    } else {
        BTreeSet::new()
    };
    let candidates: Vec<u32> = (lo..hi)
        .map(|t| t as u32)
        .filter(|t| !excluded.contains(t))
        .collect();
    if candidates.is_empty() {
        return Err(DataError::config_at(
            dataset,
            "token_range",
            format!(
                "no candidate tokens in [{lo}, {hi}) once the special tokens {excluded:?} are left out"
            ),
            "widen the token range, or set exclude_special = false",
        ));
    }
    let mut rng = Rng::new(cfg.seed);
    let mut prompts = Vec::with_capacity(cfg.n);
    for i in 0..cfg.n {
        let seq: Vec<u32> = (0..cfg.length)
            .map(|_| candidates[rng.index(candidates.len())])
            .collect();
        let mut tokens = bos.to_vec();
        for _ in 0..cfg.repeats {
            tokens.extend_from_slice(&seq);
        }
        let mut p = Prompt::from_tokens(i as u32, tokens);
        p.positions.insert(SEQ_START.to_string(), bos.len());
        if cfg.repeats >= 2 {
            p.positions
                .insert(REPEAT_START.to_string(), bos.len() + cfg.length);
        }
        prompts.push(p);
    }
    Ok(prompts)
}
