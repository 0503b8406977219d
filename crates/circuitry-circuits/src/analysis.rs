//! The contract between analyses and the runner.
//!
//! An analysis states what it needs ([`Requirements`]: hook points captured on the shared clean
//! forward pass, whether the dataset's corrupt prompts must be run too), which tables it writes
//! ([`TableDecl`]), and then receives the dataset batch by batch ([`Analysis::process`]) and
//! once at the end ([`Analysis::finish`]). Analyses that read only weights receive no batches.
//! The runner owns the order of work; analyses never schedule, read files or write files.

use std::collections::BTreeSet;

use circuitry_data::Prompt;
use circuitry_models::{
    HookKind, HookPoint, ModelConfig, Output, TokenBatch, Tokenizer, Transformer,
};

use circuitry_spec::AnalysisSpec;

use crate::table::{ColumnSpec, Row, TableSink};

/// Why an analysis could not run: bad input it discovered (a token that is not in the
/// vocabulary, a position a prompt does not have) or a sink failure.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct AnalysisError {
    pub message: String,
    /// The analysis parameter at fault (e.g. `layers`), so the runner can point at it in the
    /// experiment file.
    pub key: Option<String>,
}

impl AnalysisError {
    pub fn new(message: impl Into<String>) -> AnalysisError {
        AnalysisError {
            message: message.into(),
            key: None,
        }
    }

    /// An error about the parameter `key` of the analysis.
    pub fn at(key: &str, message: impl Into<String>) -> AnalysisError {
        AnalysisError {
            message: message.into(),
            key: Some(key.to_string()),
        }
    }
}

impl From<String> for AnalysisError {
    fn from(message: String) -> Self {
        AnalysisError::new(message)
    }
}

/// What an analysis needs from the shared forward passes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Requirements {
    /// Whether the analysis reads a dataset at all (false for weight-only analyses).
    pub dataset: bool,
    /// Hook points to capture on the clean prompts.
    pub hooks: BTreeSet<HookPoint>,
    /// Whether the dataset's corrupt (counterfactual) prompts must be run too.
    pub corrupt_run: bool,
    /// Hook points to capture on the corrupt prompts.
    pub corrupt_hooks: BTreeSet<HookPoint>,
}

impl Requirements {
    /// An analysis of weights only.
    pub fn weights_only() -> Requirements {
        Requirements::default()
    }

    /// An analysis of the clean forward pass with these hooks.
    pub fn hooks<I: IntoIterator<Item = HookPoint>>(hooks: I) -> Requirements {
        Requirements {
            dataset: true,
            hooks: hooks.into_iter().collect(),
            ..Requirements::default()
        }
    }

    /// An analysis of the clean forward pass reading hook `kind` of each of `layers`.
    pub fn at_layers(layers: &[usize], kind: HookKind) -> Requirements {
        Requirements::hooks(layers.iter().map(|&l| HookPoint::layer(l, kind)))
    }
}

/// A pass over another dataset that an analysis needs before its main one (e.g. the reference
/// distribution of a mean ablation). The runner runs it with the same model and feeds every
/// batch to [`Analysis::absorb`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prepass {
    /// The `[datasets.*]` entry to run.
    pub dataset: String,
    /// Hook points to capture on it.
    pub hooks: BTreeSet<HookPoint>,
}

/// A table an analysis writes: its main table (`part = None`, `<analysis>.parquet`) or a
/// secondary one (`<analysis>.<part>.parquet`), its columns, and when it is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableDecl {
    pub part: Option<&'static str>,
    pub columns: &'static [ColumnSpec],
    /// When the table (or this column set) is written, for `circuitry analyses` (empty: always).
    pub when: &'static str,
}

impl TableDecl {
    /// The main table, with one column per field of `R`.
    pub const fn main<R: Row>() -> TableDecl {
        TableDecl {
            part: None,
            columns: R::COLUMNS,
            when: "",
        }
    }

    /// A secondary table, written as `<analysis>.<part>.parquet`.
    pub const fn part<R: Row>(part: &'static str) -> TableDecl {
        TableDecl {
            part: Some(part),
            columns: R::COLUMNS,
            when: "",
        }
    }

    /// The same table, noted as written only when `condition` holds.
    pub const fn when(self, condition: &'static str) -> TableDecl {
        TableDecl {
            when: condition,
            ..self
        }
    }

    /// The file name, relative to the experiment's output directory, for an analysis `name`.
    pub fn file_name(&self, name: &str) -> String {
        match self.part {
            Some(p) => format!("{name}.{p}.parquet"),
            None => format!("{name}.parquet"),
        }
    }
}

/// Where an analysis reports long work it does after its forward passes (`finish`: DAS's
/// training, the probes' fits), one step per site, so the runner can draw a bar. This crate
/// draws nothing itself.
pub trait WorkProgress {
    /// `done` of the analysis's `total` steps are complete.
    fn advance(&self, done: u64, total: u64);
}

/// Reports nowhere: for callers that draw no progress.
pub struct NoProgress;

impl WorkProgress for NoProgress {
    fn advance(&self, _done: u64, _total: u64) {}
}

/// The model an analysis runs on.
#[derive(Clone, Copy)]
pub struct ModelContext<'a> {
    pub model: &'a Transformer,
    pub tokenizer: &'a Tokenizer,
    /// Where `finish` reports long work.
    pub progress: &'a dyn WorkProgress,
}

impl ModelContext<'_> {
    /// Text of one token (e.g. `" Mary"`), for table columns.
    pub fn token_text(&self, id: u32) -> String {
        self.tokenizer.token_text(id)
    }
}

/// One batch of prompts after the shared forward pass(es).
pub struct BatchContext<'a> {
    /// The prompts of this batch, in batch-row order.
    pub prompts: &'a [Prompt],
    /// The padded clean batch and its forward output (logits and captured hooks).
    pub clean: &'a TokenBatch,
    pub clean_output: &'a Output,
    /// The corrupt batch and its output, when [`Requirements::corrupt_run`] asked for it.
    pub corrupt: Option<(&'a TokenBatch, &'a Output)>,
}

impl BatchContext<'_> {
    /// The batch slot (column) of token `i` of row `r`, with padding taken into account.
    pub fn slot(&self, r: usize, i: usize) -> usize {
        self.clean.slot(r, i)
    }
}

/// What an analysis is built for: its `[analyses.NAME]` entry and the model's configuration.
#[derive(Clone, Copy)]
pub struct BuildContext<'a> {
    pub analysis: &'a AnalysisSpec,
    pub config: &'a ModelConfig,
}

/// An analysis kind: the circuits side of one entry of the spec's kind list
/// (`circuitry_spec::for_each_analysis_kind!`). The registry in [`crate::analyses`] builds
/// every kind through it and lists every kind's tables from [`Kind::TABLES`].
pub trait Kind: Analysis + Sized + 'static {
    /// The kind's parameters, as the experiment file gives them.
    type Params;

    /// Every table the kind can write; [`Analysis::tables`] of each instance is a subset.
    const TABLES: &'static [TableDecl];

    /// Builds the analysis `[analyses.NAME]` describes, whose parameters are `params`; bad
    /// parameters are errors that name their key.
    fn build(params: Self::Params, cx: BuildContext) -> Result<Self, AnalysisError>;

    /// The tables this instance writes: every one of [`Kind::TABLES`], unless the kind writes
    /// some only under a condition (their [`TableDecl::when`]) and picks them here.
    fn tables(&self) -> Vec<TableDecl> {
        Self::TABLES.to_vec()
    }
}

/// The tables an analysis writes (the runner prepends `model`, `dataset` and any sweep
/// columns): [`Kind::tables`] of its kind.
pub trait Tables {
    fn tables(&self) -> Vec<TableDecl>;
}

impl<K: Kind> Tables for K {
    fn tables(&self) -> Vec<TableDecl> {
        Kind::tables(self)
    }
}

/// One analysis of one (model, dataset) pair, fed by the runner.
pub trait Analysis: Send + Tables {
    /// What the shared forward pass must provide. Default: the dataset's prompts and logits,
    /// with no hook captured (what analyses that read only the logits or the prompts, or run
    /// their own forward passes, need; the shared pass they ride on costs them nothing extra).
    fn requirements(&self) -> Requirements {
        Requirements::hooks([])
    }

    /// A pass over another dataset to run before the main one, if the analysis needs it.
    fn prepass(&self) -> Option<Prepass> {
        None
    }

    /// Whether each batch's rows depend on that batch alone (no state carried between batches,
    /// no prepass) and [`Analysis::finish`] writes nothing. The runner may then split the
    /// dataset into batch-aligned prompt ranges computed apart (by shards, or kept as resume
    /// points); each range alone gives the rows of its prompts. Default: false.
    fn batch_local(&self) -> bool {
        false
    }

    /// Consumes one batch of the [`Analysis::prepass`] dataset.
    fn absorb(
        &mut self,
        _model: &ModelContext,
        _batch: &BatchContext,
    ) -> Result<(), AnalysisError> {
        Ok(())
    }

    /// Consumes one batch. Rows may be written now or kept for [`Analysis::finish`]. Weight-only
    /// analyses receive no batches.
    fn process(
        &mut self,
        _model: &ModelContext,
        _batch: &BatchContext,
        _sink: &mut dyn TableSink,
    ) -> Result<(), AnalysisError> {
        Ok(())
    }

    /// Called once after the last batch (and alone for weight-only analyses): write what was
    /// kept, or, for weight-only analyses, everything.
    fn finish(
        &mut self,
        _model: &ModelContext,
        _sink: &mut dyn TableSink,
    ) -> Result<(), AnalysisError> {
        Ok(())
    }
}

/// Writes a chunk to the sink, turning a sink failure into an [`AnalysisError`].
pub fn emit(
    sink: &mut dyn TableSink,
    part: Option<&str>,
    chunk: impl Into<crate::table::Table>,
) -> Result<(), AnalysisError> {
    sink.write(part, chunk.into()).map_err(AnalysisError::new)
}
