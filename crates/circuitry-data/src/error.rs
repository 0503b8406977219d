//! The crate's one error type. Every message names the dataset, the file / row / column where
//! they apply, and ends with a hint.

use std::fmt;
use std::path::PathBuf;

use circuitry_vocab::limits::MAX_PROMPTS;

/// Where in a file a problem was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RowLocation {
    /// The file as a whole (e.g. it cannot be opened or its schema cannot be read).
    File,
    /// The header of a CSV file.
    Header,
    /// A 1-based line of a JSONL or CSV file (for CSV, where the record starts; the header is
    /// line 1).
    Line(usize),
    /// A 1-based row of a Parquet file.
    Row(usize),
}

impl fmt::Display for RowLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RowLocation::File => write!(f, "file"),
            RowLocation::Header => write!(f, "header"),
            RowLocation::Line(n) => write!(f, "line {n}"),
            RowLocation::Row(n) => write!(f, "row {n}"),
        }
    }
}

/// One offending prompt in an error that lists every offender.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowIssue {
    /// The prompt id the row would have had (its index in the dataset).
    pub id: u32,
    /// Where it came from: `inline`, `generated`, or `<file> line N` / `<file> row N`.
    pub origin: String,
    /// What is wrong with it.
    pub detail: String,
}

impl fmt::Display for RowIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "prompt {} ({}): {}", self.id, self.origin, self.detail)
    }
}

fn fmt_rows(list: &[RowIssue]) -> String {
    list.iter().map(|r| format!("\n  - {r}")).collect()
}

fn fmt_items(list: &[String]) -> String {
    list.iter().map(|r| format!("\n  - {r}")).collect()
}

fn columns(list: &[String]) -> String {
    if list.is_empty() {
        "(none)".to_string()
    } else {
        list.iter()
            .map(|c| format!("`{c}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Everything that can go wrong while building a dataset.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("dataset `{dataset}`: cannot read `{}`: {source}\n  hint: check the path (relative paths are resolved against the experiment file's folder)", path.display())]
    Io {
        dataset: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("dataset `{dataset}`: cannot tell the format of `{}` from its extension\n  hint: name the file *.jsonl, *.csv or *.parquet, or set the format explicitly (jsonl, csv, parquet)", path.display())]
    UnknownFormat { dataset: String, path: PathBuf },

    #[error("dataset `{dataset}`: `{}` ({location}): no column `{column}`; the columns are {}\n  hint: set the column names in the dataset section (text column, corrupt column, answer columns) to existing columns", path.display(), columns(.available))]
    MissingColumn {
        dataset: String,
        path: PathBuf,
        location: RowLocation,
        column: String,
        available: Vec<String>,
    },

    #[error("dataset `{dataset}`: `{}` {location}, column `{column}`: {message}\n  hint: text, corrupt and answer columns hold strings (no nulls); field columns hold strings, numbers, booleans or nulls", path.display())]
    BadValue {
        dataset: String,
        path: PathBuf,
        location: RowLocation,
        column: String,
        message: String,
    },

    #[error("dataset `{dataset}`: `{}` {location}: {message}\n  hint: {hint}", path.display())]
    Malformed {
        dataset: String,
        path: PathBuf,
        location: RowLocation,
        message: String,
        hint: &'static str,
    },

    #[error("dataset `{dataset}`: {message}\n  hint: {hint}")]
    Config {
        dataset: String,
        /// The setting at fault, named as in the source's description (see [`DataError::key`]).
        key: Option<String>,
        message: String,
        hint: String,
    },

    #[error("dataset `{dataset}`: prepend_bos is set but the tokenizer `{}` has no BOS token\n  hint: set prepend_bos = false, or give the model a bos_token_id", tokenizer.display())]
    NoBos { dataset: String, tokenizer: PathBuf },

    #[error(
        "dataset `{dataset}`: cannot tokenize {origin}: {message}\n  hint: check the text, or the tokenizer"
    )]
    Tokenize {
        dataset: String,
        origin: String,
        message: String,
    },

    #[error("dataset `{dataset}`: {} prompt(s) are invalid:{}\n  hint: fix or drop these rows", .rows.len(), fmt_rows(.rows))]
    InvalidPrompts {
        dataset: String,
        rows: Vec<RowIssue>,
    },

    #[error("dataset `{dataset}`: {} answer(s) are not exactly one token of the vocabulary:{}\n  hint: an answer must be a single token the model's tokenizer knows, usually with its leading space (\" Mary\", not \"Mary\")", .rows.len(), fmt_rows(.rows))]
    AnswerTokens {
        dataset: String,
        rows: Vec<RowIssue>,
    },

    #[error("dataset `{dataset}`: {} corrupt prompt(s) differ in token length from their clean prompt:{}\n  hint: clean and corrupt prompts must have the same number of tokens so that positions line up; change the words that differ to ones with equally many tokens", .rows.len(), fmt_rows(.rows))]
    CorruptLength {
        dataset: String,
        rows: Vec<RowIssue>,
    },

    #[error("dataset `{dataset}`: {} prompt(s) are longer than the model's context of {n_ctx} tokens:{}\n  hint: shorten these prompts, or use a model with a longer context", .rows.len(), fmt_rows(.rows))]
    TooLong {
        dataset: String,
        n_ctx: usize,
        rows: Vec<RowIssue>,
    },

    #[error("dataset `{dataset}`: {} {what}(s) are not a single token under the tokenizer `{}`:{}\n  hint: {hint}", .items.len(), tokenizer.display(), fmt_items(.items))]
    NotSingleTokens {
        dataset: String,
        /// What the items are: `name`, `template`...
        what: &'static str,
        /// The setting that lists them (`names`).
        key: &'static str,
        tokenizer: PathBuf,
        /// Each offender with how it tokenizes.
        items: Vec<String>,
        hint: &'static str,
    },

    #[error("dataset `{dataset}`: {} IOI template(s) are invalid:{}\n  hint: a template has exactly one [A] (the indirect object) and two [B] (the subject) before an optional final \" [A]\" (the answer, dropped), each name placeholder preceded by a space; [PLACE] and [OBJECT] are optional", .items.len(), fmt_items(.items))]
    BadTemplates { dataset: String, items: Vec<String> },
}

impl DataError {
    /// The dataset the error is about.
    pub fn dataset(&self) -> &str {
        match self {
            DataError::Io { dataset, .. }
            | DataError::UnknownFormat { dataset, .. }
            | DataError::MissingColumn { dataset, .. }
            | DataError::BadValue { dataset, .. }
            | DataError::Malformed { dataset, .. }
            | DataError::Config { dataset, .. }
            | DataError::NoBos { dataset, .. }
            | DataError::Tokenize { dataset, .. }
            | DataError::InvalidPrompts { dataset, .. }
            | DataError::AnswerTokens { dataset, .. }
            | DataError::CorruptLength { dataset, .. }
            | DataError::TooLong { dataset, .. }
            | DataError::NotSingleTokens { dataset, .. }
            | DataError::BadTemplates { dataset, .. } => dataset,
        }
    }

    /// The setting of the dataset's description the error is about, when it is one: a field of
    /// the generator's configuration ([`crate::RepeatedTokensConfig`]: `n`, `length`, `repeats`,
    /// `token_range`; [`crate::IoiConfig`]: `n`, `names`, `templates`, `places`, `objects`,
    /// `corruption`, with `.K` for the K-th list item; [`crate::TextConfig`]: `window`, `stride`,
    /// `min_tokens`, `n`), `path` for a problem with a file (its contents, a row or a column; a
    /// corpus's files), `prepend_bos`, or `None` for the errors that list offending
    /// prompts ([`DataError::rows`]) and the rest. The runner turns it into the key of the
    /// experiment file (`datasets.NAME.length`).
    pub fn key(&self) -> Option<&str> {
        match self {
            DataError::Config { key, .. } => key.as_deref(),
            DataError::Io { .. }
            | DataError::UnknownFormat { .. }
            | DataError::MissingColumn { .. }
            | DataError::BadValue { .. }
            | DataError::Malformed { .. } => Some("path"),
            DataError::NoBos { .. } => Some("prepend_bos"),
            DataError::NotSingleTokens { key, .. } => Some(key),
            DataError::BadTemplates { .. } => Some("templates"),
            DataError::Tokenize { .. }
            | DataError::InvalidPrompts { .. }
            | DataError::AnswerTokens { .. }
            | DataError::CorruptLength { .. }
            | DataError::TooLong { .. } => None,
        }
    }

    /// The offending rows of an error that lists them (empty for other errors).
    pub fn rows(&self) -> &[RowIssue] {
        match self {
            DataError::InvalidPrompts { rows, .. }
            | DataError::AnswerTokens { rows, .. }
            | DataError::CorruptLength { rows, .. }
            | DataError::TooLong { rows, .. } => rows,
            _ => &[],
        }
    }

    pub(crate) fn config(
        dataset: &str,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> DataError {
        DataError::Config {
            dataset: dataset.to_string(),
            key: None,
            message: message.into(),
            hint: hint.into(),
        }
    }

    /// A [`DataError::Config`] about the setting `key` (see [`DataError::key`]).
    pub(crate) fn config_at(
        dataset: &str,
        key: impl Into<String>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> DataError {
        DataError::Config {
            dataset: dataset.to_string(),
            key: Some(key.into()),
            message: message.into(),
            hint: hint.into(),
        }
    }

    /// A generator asked for `n` prompts, more than [`MAX_PROMPTS`].
    pub(crate) fn too_many_prompts(dataset: &str, n: usize) -> DataError {
        DataError::config_at(
            dataset,
            "n",
            format!("n = {n} prompts is more than the {MAX_PROMPTS} one dataset may have"),
            format!(
                "lower n to at most {MAX_PROMPTS} (every prompt is held in memory for the whole run); split a larger study into several datasets (e.g. sweep the seed)"
            ),
        )
    }
}

/// A check that collects every offending prompt and reports them all in one [`DataError`].
#[derive(Clone, Copy, Debug)]
pub(crate) enum RowCheck {
    /// [`DataError::InvalidPrompts`].
    Invalid,
    /// [`DataError::AnswerTokens`].
    AnswerTokens,
    /// [`DataError::CorruptLength`].
    CorruptLength,
    /// [`DataError::TooLong`], for a context of `n_ctx` tokens.
    TooLong { n_ctx: usize },
}

impl RowCheck {
    /// `Ok` when no prompt failed the check, else the error of `dataset` listing `rows`.
    pub(crate) fn result(self, dataset: &str, rows: Vec<RowIssue>) -> Result<(), DataError> {
        if rows.is_empty() {
            return Ok(());
        }
        let dataset = dataset.to_string();
        Err(match self {
            RowCheck::Invalid => DataError::InvalidPrompts { dataset, rows },
            RowCheck::AnswerTokens => DataError::AnswerTokens { dataset, rows },
            RowCheck::CorruptLength => DataError::CorruptLength { dataset, rows },
            RowCheck::TooLong { n_ctx } => DataError::TooLong {
                dataset,
                n_ctx,
                rows,
            },
        })
    }
}
