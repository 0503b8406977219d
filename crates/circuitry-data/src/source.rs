//! What a dataset is built from, the options every dataset takes, and [`build_dataset`].

use std::collections::BTreeMap;

use circuitry_models::Tokenizer;
use circuitry_vocab::limits::MAX_TOKENS;
use serde::{Deserialize, Serialize};

use crate::dataset::{Dataset, Prompt};
use crate::error::{DataError, RowCheck, RowIssue};
use crate::files::{FileSource, read_file};
use crate::ioi::{IoiConfig, generate_ioi};
use crate::record::{RawRecord, Record, encode_checked, name_positions, pieces, unknown_pieces};
use crate::repeated::{self, RepeatedTokensConfig, generate_repeated};
use crate::text::{TextConfig, generate_text};

/// Options that apply to every dataset, whatever its source.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DatasetOptions {
    /// Prepend the tokenizer's BOS id to every prompt (and corrupt prompt); an error if the
    /// tokenizer has none. Named positions count the BOS token (`first` is then the BOS).
    pub prepend_bos: bool,
    /// The model's context length: every prompt longer than this is reported (all in one error).
    pub n_ctx: Option<usize>,
    /// The prompts (after the BOS, if prepended) are this many copies of one sequence, `r r ...`:
    /// each is checked, and gets the positions `seq_start` and `repeat_start` as the
    /// `repeated_tokens` generator's prompts do.
    pub repeats: Option<usize>,
}

/// One prompt given as token ids.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub tokens: Vec<u32>,
    /// Counterfactual token ids (as many as `tokens`).
    pub corrupt: Option<Vec<u32>>,
    /// Named answer tokens: an id, or a text that must be one token.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub answers: BTreeMap<String, AnswerToken>,
    /// Named positions: indices into `tokens` (negative from the end).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub positions: BTreeMap<String, i64>,
}

/// An answer of a [`TokenRecord`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AnswerToken {
    Id(u32),
    Text(String),
}

impl From<Vec<u32>> for TokenRecord {
    fn from(tokens: Vec<u32>) -> Self {
        TokenRecord {
            tokens,
            ..TokenRecord::default()
        }
    }
}

impl Source {
    /// Plain token-id prompts without counterfactuals.
    pub fn token_ids(rows: Vec<Vec<u32>>) -> Source {
        Source::TokenIds(rows.into_iter().map(TokenRecord::from).collect())
    }
}

/// Where a dataset's prompts come from.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// Plain texts, one prompt each.
    Texts(Vec<String>),
    /// Texts with optional counterfactuals, answers and fields.
    Records(Vec<Record>),
    /// Raw token-id lists (each id must be below the vocabulary size), with optional
    /// counterfactuals of the same length.
    TokenIds(Vec<TokenRecord>),
    /// A JSONL, CSV or Parquet file.
    File(FileSource),
    /// Generator: random token sequences repeated (induction).
    RepeatedTokens(RepeatedTokensConfig),
    /// Generator: Indirect Object Identification sentences with counterfactuals.
    Ioi(IoiConfig),
    /// A text corpus cut into windows of tokens.
    Text(TextConfig),
}

/// Builds the dataset `name` from `source`, tokenized with `tokenizer`, and validates it:
/// non-empty, every prompt non-empty, answers single tokens, corrupt prompts as long as their
/// clean ones, and (with `options.n_ctx`) no prompt longer than the context. Each check reports
/// every offending row at once.
pub fn build_dataset(
    name: &str,
    source: &Source,
    tokenizer: &Tokenizer,
    options: &DatasetOptions,
) -> Result<Dataset, DataError> {
    let bos = bos_prefix(name, tokenizer, options)?;
    let mut prompts = match source {
        Source::Texts(texts) => {
            let records = texts
                .iter()
                .map(|t| RawRecord::inline(Record::new(t.clone())))
                .collect();
            prompts_from_records(name, records, tokenizer, &bos)?
        }
        Source::Records(records) => {
            let records = records.iter().cloned().map(RawRecord::inline).collect();
            prompts_from_records(name, records, tokenizer, &bos)?
        }
        Source::TokenIds(rows) => prompts_from_ids(name, rows, tokenizer, &bos)?,
        Source::File(file) => {
            let records = read_file(name, file)?;
            prompts_from_records(name, records, tokenizer, &bos)?
        }
        Source::RepeatedTokens(cfg) => {
            repeated::check_size(name, cfg, bos.len(), options.n_ctx)?;
            generated(generate_repeated(name, cfg, tokenizer, &bos)?)
        }
        Source::Ioi(cfg) => generated(generate_ioi(name, cfg, tokenizer, &bos)?),
        Source::Text(cfg) => generate_text(name, cfg, tokenizer, &bos)?
            .into_iter()
            .map(|p| {
                let origin = format!("document {}", p.fields["document"]);
                (p, origin)
            })
            .collect(),
    };
    if let Some(repeats) = options.repeats {
        repeated::mark_repeats(name, &mut prompts, bos.len(), repeats)?;
    }
    finish(name, prompts, options)
}

/// `[bos]` when the options ask for it, else empty.
pub(crate) fn bos_prefix(
    dataset: &str,
    tokenizer: &Tokenizer,
    options: &DatasetOptions,
) -> Result<Vec<u32>, DataError> {
    if !options.prepend_bos {
        return Ok(Vec::new());
    }
    match tokenizer.bos_token_id {
        Some(id) => Ok(vec![id]),
        None => Err(DataError::NoBos {
            dataset: dataset.to_string(),
            tokenizer: tokenizer.source.clone(),
        }),
    }
}

/// Prompts paired with where each came from (for error messages).
type WithOrigin = Vec<(Prompt, String)>;

fn generated(prompts: Vec<Prompt>) -> WithOrigin {
    prompts
        .into_iter()
        .map(|p| (p, "generated".to_string()))
        .collect()
}

/// Checks emptiness and the context length, then numbers and hashes the prompts.
fn finish(name: &str, prompts: WithOrigin, options: &DatasetOptions) -> Result<Dataset, DataError> {
    if prompts.is_empty() {
        return Err(DataError::config(
            name,
            "the dataset has no prompts",
            "give at least one prompt (for files: check the file is not empty and the limit is not 0; for generators: n >= 1)",
        ));
    }
    if let Some(n_ctx) = options.n_ctx {
        let rows: Vec<RowIssue> = prompts
            .iter()
            .enumerate()
            .filter(|(_, (p, _))| p.len() > n_ctx)
            .map(|(i, (p, origin))| RowIssue {
                id: i as u32,
                origin: origin.clone(),
                detail: format!("length {}", p.len()),
            })
            .collect();
        RowCheck::TooLong { n_ctx }.result(name, rows)?;
    }
    Ok(Dataset::new(
        name,
        prompts.into_iter().map(|(p, _)| p).collect(),
    ))
}

fn prompts_from_records(
    dataset: &str,
    records: Vec<RawRecord>,
    tokenizer: &Tokenizer,
    bos: &[u32],
) -> Result<WithOrigin, DataError> {
    let any_corrupt = records.iter().any(|r| r.record.corrupt.is_some());
    let mut total = TokenTotal::default();
    let mut invalid = Vec::new();
    let mut bad_answers = Vec::new();
    let mut bad_lengths = Vec::new();
    let mut prompts = Vec::with_capacity(records.len());
    for (i, raw) in records.into_iter().enumerate() {
        let id = i as u32;
        let RawRecord { origin, record } = raw;
        let issue = |detail: String| RowIssue {
            id,
            origin: origin.clone(),
            detail,
        };
        let text = encode_checked(dataset, tokenizer, &record.text, &origin)?;
        if !text.unknown.is_empty() {
            invalid.push(issue(format!(
                "text {:?} has words that are not in the vocabulary: {}",
                record.text,
                unknown_pieces(tokenizer, &text.unknown)
            )));
            continue;
        }
        if text.ids.is_empty() {
            invalid.push(issue(format!("text {:?} has no tokens", record.text)));
            continue;
        }
        total.add(dataset, bos.len() + text.ids.len(), &origin)?;
        let tokens: Vec<u32> = bos.iter().copied().chain(text.ids).collect();
        let mut prompt = Prompt::from_tokens(id, tokens);
        prompt.text = Some(record.text.clone());
        if any_corrupt {
            match &record.corrupt {
                None => invalid.push(issue(
                    "no corrupt text, but other prompts of the dataset have one".to_string(),
                )),
                Some(c) => {
                    let corrupt = encode_checked(dataset, tokenizer, c, &origin)?;
                    if !corrupt.unknown.is_empty() {
                        invalid.push(issue(format!(
                            "corrupt text {c:?} has words that are not in the vocabulary: {}",
                            unknown_pieces(tokenizer, &corrupt.unknown)
                        )));
                    }
                    let c_ids: Vec<u32> = bos.iter().copied().chain(corrupt.ids).collect();
                    if c_ids.len() != prompt.tokens.len() {
                        bad_lengths.push(issue(format!(
                            "clean {:?} has {} tokens, corrupt {:?} has {}",
                            record.text,
                            prompt.tokens.len(),
                            c,
                            c_ids.len()
                        )));
                    }
                    prompt.corrupt_tokens = Some(c_ids);
                    prompt.corrupt_text = Some(c.clone());
                }
            }
        }
        for (name, text) in &record.answers {
            let encoded = encode_checked(dataset, tokenizer, text, &origin)?;
            let ids = encoded.ids;
            if !encoded.unknown.is_empty() {
                bad_answers.push(issue(format!(
                    "answer `{name}` = {text:?} is not in the vocabulary: {}",
                    unknown_pieces(tokenizer, &encoded.unknown)
                )));
            } else if ids.len() == 1 {
                prompt.answers.insert(name.clone(), ids[0]);
            } else {
                bad_answers.push(issue(format!(
                    "answer `{name}` = {text:?} is {} tokens [{}]",
                    ids.len(),
                    pieces(tokenizer, &ids)
                )));
            }
        }
        prompt.fields = record.fields;
        let written = prompt.tokens.len() - bos.len();
        if let Err(e) = name_positions(&mut prompt, &record.positions, bos.len(), written) {
            invalid.push(issue(e));
            continue;
        }
        prompts.push((prompt, origin));
    }
    RowCheck::Invalid.result(dataset, invalid)?;
    RowCheck::AnswerTokens.result(dataset, bad_answers)?;
    RowCheck::CorruptLength.result(dataset, bad_lengths)?;
    Ok(prompts)
}

fn prompts_from_ids(
    dataset: &str,
    rows: &[TokenRecord],
    tokenizer: &Tokenizer,
    bos: &[u32],
) -> Result<WithOrigin, DataError> {
    let vocab = tokenizer.vocab_size();
    let mut total = TokenTotal::default();
    let mut invalid = Vec::new();
    let mut bad_answers = Vec::new();
    let mut prompts = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        let issue = |detail: String| RowIssue {
            id: i as u32,
            origin: "inline".to_string(),
            detail,
        };
        if row.tokens.is_empty() {
            invalid.push(issue("no token ids".to_string()));
            continue;
        }
        let out: Vec<u32> = row
            .tokens
            .iter()
            .chain(row.corrupt.iter().flatten())
            .copied()
            .filter(|&t| t as usize >= vocab)
            .collect();
        if !out.is_empty() {
            invalid.push(issue(format!(
                "token id(s) {out:?} out of range for a vocabulary of {vocab}"
            )));
            continue;
        }
        if let Some(c) = &row.corrupt
            && c.len() != row.tokens.len()
        {
            invalid.push(issue(format!(
                "corrupt has {} token ids but the prompt has {}",
                c.len(),
                row.tokens.len()
            )));
            continue;
        }
        total.add(dataset, bos.len() + row.tokens.len(), "inline")?;
        let tokens = bos.iter().chain(&row.tokens).copied().collect();
        let mut prompt = Prompt::from_tokens(i as u32, tokens);
        prompt.corrupt_tokens = row
            .corrupt
            .as_ref()
            .map(|c| bos.iter().chain(c).copied().collect());
        if let Err(e) = name_positions(&mut prompt, &row.positions, bos.len(), row.tokens.len()) {
            invalid.push(issue(e));
            continue;
        }
        for (name, answer) in &row.answers {
            match answer {
                AnswerToken::Id(id) if (*id as usize) < vocab => {
                    prompt.answers.insert(name.clone(), *id);
                }
                AnswerToken::Id(id) => bad_answers.push(issue(format!(
                    "answer `{name}` = {id} is out of range for a vocabulary of {vocab}"
                ))),
                AnswerToken::Text(text) => {
                    let encoded = encode_checked(dataset, tokenizer, text, "inline")?;
                    if encoded.unknown.is_empty() && encoded.ids.len() == 1 {
                        prompt.answers.insert(name.clone(), encoded.ids[0]);
                    } else {
                        bad_answers.push(issue(format!(
                            "answer `{name}` = {text:?} is not one token: [{}]",
                            pieces(tokenizer, &encoded.ids)
                        )));
                    }
                }
            }
        }
        prompts.push((prompt, "inline".to_string()));
    }
    RowCheck::Invalid.result(dataset, invalid)?;
    RowCheck::AnswerTokens.result(dataset, bad_answers)?;
    Ok(prompts)
}

/// The running count of a dataset's tokens, held to [`MAX_TOKENS`] while prompts are built.
#[derive(Default)]
struct TokenTotal(u64);

impl TokenTotal {
    /// Counts `tokens` more tokens of the prompt from `origin`.
    fn add(&mut self, dataset: &str, tokens: usize, origin: &str) -> Result<(), DataError> {
        self.0 += tokens as u64;
        if self.0 <= MAX_TOKENS {
            return Ok(());
        }
        Err(DataError::config(
            dataset,
            format!(
                "the prompts up to {origin} hold more than {MAX_TOKENS} tokens, the most one dataset may hold"
            ),
            "read fewer rows (a file's `limit`), or split the prompts into several datasets",
        ))
    }
}
