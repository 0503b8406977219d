//! One text record before tokenization (inline, or a row of a prompt file) and the tokenizer
//! helpers every source shares.

use std::collections::BTreeMap;

use circuitry_models::{Encoded, Tokenizer};
use serde::{Deserialize, Serialize};

use crate::error::DataError;

/// One inline prompt with optional counterfactual and answers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub text: String,
    /// Counterfactual text; must tokenize to as many tokens as `text`. If one record of a
    /// dataset has one, all must.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corrupt: Option<String>,
    /// Answer name -> text that must tokenize to exactly one token (e.g. `"IO" -> " Mary"`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub answers: BTreeMap<String, String>,
    /// Pass-through metadata.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, String>,
    /// Named positions: token indices into the text's tokens (negative from the end); see
    /// [`name_positions`].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub positions: BTreeMap<String, i64>,
}

impl Record {
    pub fn new(text: impl Into<String>) -> Record {
        Record {
            text: text.into(),
            ..Record::default()
        }
    }

    pub fn with_corrupt(mut self, corrupt: impl Into<String>) -> Record {
        self.corrupt = Some(corrupt.into());
        self
    }

    pub fn with_answer(mut self, name: impl Into<String>, text: impl Into<String>) -> Record {
        self.answers.insert(name.into(), text.into());
        self
    }
}

/// A record with where it came from (`inline`, `<file> line N`, `<file> row N`).
#[derive(Clone, Debug)]
pub(crate) struct RawRecord {
    pub origin: String,
    pub record: Record,
}

impl RawRecord {
    pub(crate) fn inline(record: Record) -> RawRecord {
        RawRecord {
            origin: "inline".to_string(),
            record,
        }
    }
}

pub(crate) fn encode(
    dataset: &str,
    tokenizer: &Tokenizer,
    text: &str,
    origin: &str,
) -> Result<Vec<u32>, DataError> {
    tokenizer.encode(text).map_err(|e| DataError::Tokenize {
        dataset: dataset.to_string(),
        origin: origin.to_string(),
        message: e.to_string(),
    })
}

/// [`Tokenizer::encode_checked`]: the ids and the pieces of `text` the vocabulary does not know.
pub(crate) fn encode_checked(
    dataset: &str,
    tokenizer: &Tokenizer,
    text: &str,
    origin: &str,
) -> Result<Encoded, DataError> {
    tokenizer
        .encode_checked(text)
        .map_err(|e| DataError::Tokenize {
            dataset: dataset.to_string(),
            origin: origin.to_string(),
            message: e.to_string(),
        })
}

/// The pieces of a text the vocabulary does not know, for error messages: `"Mary" "Ann" would
/// be the unknown token "t0"`.
pub(crate) fn unknown_pieces(tokenizer: &Tokenizer, unknown: &[String]) -> String {
    let unk = tokenizer.unk_token().map_or("", |(_, t)| t);
    format!(
        "{} would silently become the unknown token {unk:?}",
        unknown
            .iter()
            .map(|p| format!("{p:?}"))
            .collect::<Vec<_>>()
            .join(" ")
    )
}

/// How a text splits into tokens, for error messages: `["ĠZ", "y"]` shown as `" Z" "y"`.
pub(crate) fn pieces(tokenizer: &Tokenizer, ids: &[u32]) -> String {
    ids.iter()
        .map(|&id| format!("{:?}", tokenizer.token_text(id)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Gives `prompt` the named `positions`, written as token indices into the `written` tokens
/// after the `bos_len` BOS tokens (negative counts from the end of them: -1 is the last), so a
/// prepended BOS moves each along with its token. The first index outside the tokens is the
/// error.
pub(crate) fn name_positions(
    prompt: &mut crate::Prompt,
    positions: &BTreeMap<String, i64>,
    bos_len: usize,
    written: usize,
) -> Result<(), String> {
    for (name, &index) in positions {
        let at = if index < 0 {
            written.checked_sub(index.unsigned_abs() as usize)
        } else {
            Some(index as usize).filter(|&i| i < written)
        };
        let Some(at) = at else {
            return Err(format!(
                "position `{name}` = {index} is outside its {written} tokens"
            ));
        };
        prompt.positions.insert(name.clone(), bos_len + at);
    }
    Ok(())
}
