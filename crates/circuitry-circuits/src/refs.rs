//! Resolving the experiment file's position and token references against concrete prompts.

use circuitry_data::Prompt;
use circuitry_models::Tokenizer;
use circuitry_spec::{PositionSpec, PositionsSpec, Target, TokenSpec};

use crate::analysis::AnalysisError;

/// The token index `r` names in `prompt`.
pub fn position(r: &PositionSpec, prompt: &Prompt) -> Result<usize, AnalysisError> {
    let len = prompt.len();
    match r {
        PositionSpec::First => Ok(0),
        PositionSpec::Last => Ok(len - 1),
        PositionSpec::Named(name) => prompt.position(name).ok_or_else(|| {
            let known: Vec<&str> = prompt.positions.keys().map(String::as_str).collect();
            AnalysisError::new(format!(
                "prompt {} has no position named `{name}` (it has: {})",
                prompt.id,
                known.join(", ")
            ))
        }),
        PositionSpec::Index(i) => {
            let idx = if *i < 0 { len as i64 + i } else { *i };
            if idx < 0 || idx >= len as i64 {
                Err(AnalysisError::new(format!(
                    "position {i} is outside prompt {} ({len} tokens)",
                    prompt.id
                )))
            } else {
                Ok(idx as usize)
            }
        }
    }
}

/// The token indices `positions` selects in `prompt`, ascending and without duplicates.
pub fn positions(positions: &PositionsSpec, prompt: &Prompt) -> Result<Vec<usize>, AnalysisError> {
    let mut out = match positions.as_list() {
        None => (0..prompt.len()).collect(),
        Some(list) => list
            .iter()
            .map(|r| position(r, prompt))
            .collect::<Result<Vec<_>, _>>()?,
    };
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// The vocabulary id `r` (the analysis parameter `key`, e.g. `target.token`) names for
/// `prompt`. Literal text must be exactly one token the vocabulary knows.
pub fn token(
    key: &str,
    r: &TokenSpec,
    prompt: &Prompt,
    tokenizer: &Tokenizer,
    d_vocab: usize,
) -> Result<u32, AnalysisError> {
    match r {
        TokenSpec::Answer(name) => prompt.answer(name).ok_or_else(|| {
            let known: Vec<&str> = prompt.answers.keys().map(String::as_str).collect();
            AnalysisError::at(key, format!(
                "prompt {} has no answer token named `{name}` (it has: {}); write {{ text = \"...\" }} for literal text",
                prompt.id,
                if known.is_empty() { "none".to_string() } else { known.join(", ") }
            ))
        }),
        TokenSpec::Text(text) => text_token(key, text, tokenizer),
        TokenSpec::Id(id) => {
            if (*id as usize) < d_vocab {
                Ok(*id)
            } else {
                Err(AnalysisError::at(key, format!("token id {id} is outside the vocabulary ({d_vocab} tokens)")))
            }
        }
    }
}

/// The one token the literal text of `{ text = "..." }` at `key` is: an error at `key` when it is
/// several tokens or not in the vocabulary (a word-level vocabulary would otherwise give its
/// unknown token without a word).
pub fn text_token(key: &str, text: &str, tokenizer: &Tokenizer) -> Result<u32, AnalysisError> {
    tokenizer.single_token(text).map_err(|e| {
        AnalysisError::at(
            key,
            format!(
                "`{key}` = {{ text = {text:?} }}: {e}; write text that is one token of the model's vocabulary (often with its leading space), or {{ id = N }}"
            ),
        )
    })
}

/// A target resolved at one position: `logit(plus) - logit(minus)` (or just `logit(plus)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResolvedTarget {
    pub plus: u32,
    pub minus: Option<u32>,
}

/// Resolves `target` (the analysis parameter `target`) for `prompt` explained at token index
/// `pos`.
pub fn target(
    target: &Target,
    prompt: &Prompt,
    pos: usize,
    tokenizer: &Tokenizer,
    d_vocab: usize,
) -> Result<ResolvedTarget, AnalysisError> {
    Ok(match target {
        Target::Next => {
            let next = prompt.tokens.get(pos + 1).copied().ok_or_else(|| {
                AnalysisError::new(format!(
                    "target \"next\" at the last position of prompt {}: no token follows it (explain an earlier position, or name a token)",
                    prompt.id
                ))
            })?;
            ResolvedTarget {
                plus: next,
                minus: None,
            }
        }
        Target::Token(t) => ResolvedTarget {
            plus: token("target.token", t, prompt, tokenizer, d_vocab)?,
            minus: None,
        },
        Target::Diff(a, b) => ResolvedTarget {
            plus: token("target.diff.0", a, prompt, tokenizer, d_vocab)?,
            minus: Some(token("target.diff.1", b, prompt, tokenizer, d_vocab)?),
        },
    })
}

/// Whether `i` is kept by an optional filter list.
pub fn keep(filter: Option<&[u32]>, i: usize) -> bool {
    filter.is_none_or(|f| f.contains(&(i as u32)))
}
