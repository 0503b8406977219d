//! Causal interventions on a model's forward pass: the math behind the activation-patching
//! family of analyses, as pure functions of a model and a batch of prompts.
//!
//! - [`metric`]: what is measured on the logits (logit difference, probability, log-probability,
//!   loss, KL divergence from the clean distribution, top-1 accuracy), per prompt, differentiable, and the
//!   normalised patching metric `(patched - corrupt) / (clean - corrupt)`.
//! - [`ablation`](mod@ablation): zero, mean (means accumulated batch by batch over a declared
//!   dataset) and resample ablation of heads, MLP layers, neurons and residual positions.
//! - [`patching`]: activation patching from a source run into a destination run (denoising:
//!   clean into corrupt; noising: corrupt into clean) at any residual, attention, MLP or per-head
//!   site, all positions at once or per position, reusing the destination's unpatched prefix
//!   (the blocks before the patched layer, and for residual-stream patches the positions before
//!   the patched one) and batching many patches into one forward pass.
//! - [`path_patching`](mod@path_patching): a sender's output patched only along its direct path
//!   into chosen receivers (heads' query/key/value inputs, or the logits), everything else
//!   frozen.
//! - [`attribution`]: attribution patching, the first-order (gradient) estimate of activation
//!   patching at every site from one forward and one backward pass.
//! - [`eap`](mod@eap): edge attribution patching (EAP) and EAP with integrated gradients over
//!   the graph of embedding, heads, MLPs and logits, and circuit extraction.
//! - [`subspace`]: interchange interventions in a subspace of the residual stream (pyvene's
//!   rotated-space interchange) and distributed alignment search, which learns the subspace.
//!
//! Every analysis takes one batch of [`Prompt`]s (the runner calls it batch by batch), returns
//! plain result structs, and has a function that turns results into a tidy
//! [`Table`](crate::table::Table). Nothing here reads files or schedules work.
//!
//! Clean and corrupt prompts: a [`Prompt`]'s `tokens` are the clean run and its
//! `corrupt_tokens` the corrupt run (same length, so named positions line up). Positions are
//! token indices of the unpadded prompt; padding is resolved with `TokenBatch::slot`.

pub mod ablation;
pub mod attribution;
pub mod eap;
pub(crate) mod engine;
pub mod metric;
pub mod patching;
pub mod path_patching;
pub mod subspace;

use std::fmt;

use circuitry_data::Prompt;
use circuitry_models::burn::prelude::*;
use circuitry_models::{HookKind, HookPoint, PaddingSide, TokenBatch, Transformer};

pub use ablation::{
    AblationConfig, AblationMethod, AblationResult, AblationUnit, Component, MeanAccumulator,
    MeanActivations, MeanOver, ablation, ablation_capturing, ablation_table, resample_donors,
};
pub use attribution::{
    AttributionConfig, AttributionResult, attribution_patching, attribution_table,
};
pub use eap::{CircuitSelection, EapConfig, EapScores, Edge, Node, ReceiverInput, eap, eap_ig};
pub use metric::{Metric, MetricKind, MetricPosition, ResolvedMetric, TokenRef, normalized};
pub use patching::{
    CapturedRun, HeadSweep, PatchOptions, PatchResult, PatchTarget, PatchUnit, PatchingConfig,
    PatchingSummary, PositionSweep, activation_patching, patch_units, patching_summary_table,
    patching_table,
};
pub use path_patching::{
    PathPatchResult, PathPatchingConfig, Receiver, Sender, path_patching, path_patching_table,
};

/// Why an intervention could not be computed. Configuration errors name what to change; data
/// errors name the prompt.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum InterventionError {
    #[error("prompt {prompt}: no position named `{name}` (this prompt has: {available})")]
    MissingPosition {
        prompt: u32,
        name: String,
        available: String,
    },
    #[error("prompt {prompt}: no answer named `{name}` (this prompt has: {available})")]
    MissingAnswer {
        prompt: u32,
        name: String,
        available: String,
    },
    #[error("prompt {prompt}: position {index} is beyond the prompt's {len} tokens")]
    PositionOutOfRange {
        prompt: u32,
        index: usize,
        len: usize,
    },
    #[error("prompt {prompt}: token id {token} is outside the vocabulary of {d_vocab} tokens")]
    TokenOutOfRange {
        prompt: u32,
        token: u32,
        d_vocab: usize,
    },
    #[error(
        "prompt {prompt} has no corrupt tokens; {analysis} needs clean/corrupt pairs (use a dataset with counterfactuals, e.g. the ioi generator)"
    )]
    NoCorrupt { prompt: u32, analysis: &'static str },
    #[error(
        "prompt {prompt}: corrupt prompt has {corrupt} tokens but the clean prompt has {clean}; they must line up"
    )]
    LengthMismatch {
        prompt: u32,
        clean: usize,
        corrupt: usize,
    },
    #[error("empty batch: no prompts to run")]
    EmptyBatch,
    #[error("{analysis} does not support this model: {reason}")]
    UnsupportedModel {
        analysis: &'static str,
        reason: &'static str,
    },
    #[error("{0}")]
    Config(String),
    /// A hook tensor missing or of the wrong rank (a bug in the caller).
    #[error("internal error: {0}")]
    Hook(#[from] circuitry_models::HookError),
}

pub type Result<T> = std::result::Result<T, InterventionError>;

/// How prompts are padded into a batch (see `circuitry_models::TokenBatch`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Padding {
    pub pad_id: u32,
    pub side: PaddingSide,
}

impl Default for Padding {
    fn default() -> Self {
        Padding {
            pad_id: 0,
            side: PaddingSide::Right,
        }
    }
}

pub use circuitry_vocab::Direction;

/// The positions one patch or ablation touches, in every prompt of a batch.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PromptPositions {
    /// Every (real) position of the prompt.
    #[default]
    All,
    /// One token index (prompts shorter than that are skipped).
    Index(usize),
    /// A named position (`IO`, `S1`, `END`, `last`...), resolved per prompt; prompts without it
    /// are skipped.
    Named(String),
    /// The `k`-th token from the end (`FromEnd(1)` is the last token), resolved per prompt;
    /// prompts shorter than `k` are skipped.
    FromEnd(usize),
}

impl PromptPositions {
    /// The token indices this selection covers in `prompt`, or `None` when it does not apply.
    pub fn token_indices(&self, prompt: &Prompt) -> Option<Vec<usize>> {
        match self {
            PromptPositions::All => Some((0..prompt.len()).collect()),
            PromptPositions::Index(i) => (*i < prompt.len()).then(|| vec![*i]),
            PromptPositions::Named(name) => prompt
                .position(name)
                .filter(|&i| i < prompt.len())
                .map(|i| vec![i]),
            PromptPositions::FromEnd(k) => {
                (*k >= 1 && *k <= prompt.len()).then(|| vec![prompt.len() - k])
            }
        }
    }

    /// The `position` column: the token index in `prompt` (`None` for all positions).
    pub fn column(&self, prompt: &Prompt) -> Option<i32> {
        match self {
            PromptPositions::All => None,
            PromptPositions::Index(i) => Some(*i as i32),
            PromptPositions::Named(name) => prompt.position(name).map(|i| i as i32),
            PromptPositions::FromEnd(k) => prompt.len().checked_sub(*k).map(|i| i as i32),
        }
    }

    /// The `position_name` column: the name, or `-k` for [`PromptPositions::FromEnd`].
    pub fn name(&self) -> Option<String> {
        match self {
            PromptPositions::Named(n) => Some(n.clone()),
            PromptPositions::FromEnd(k) => Some(format!("-{k}")),
            _ => None,
        }
    }
}

impl fmt::Display for PromptPositions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PromptPositions::All => f.write_str("all"),
            PromptPositions::Index(i) => write!(f, "{i}"),
            PromptPositions::Named(n) => f.write_str(n),
            PromptPositions::FromEnd(k) => write!(f, "-{k}"),
        }
    }
}

/// Checks that every prompt has a corrupt counterpart of the same length.
pub(crate) fn check_pairs(prompts: &[Prompt], analysis: &'static str) -> Result<()> {
    if prompts.is_empty() {
        return Err(InterventionError::EmptyBatch);
    }
    for p in prompts {
        let corrupt = p
            .corrupt_tokens
            .as_ref()
            .ok_or(InterventionError::NoCorrupt {
                prompt: p.id,
                analysis,
            })?;
        if corrupt.len() != p.tokens.len() {
            return Err(InterventionError::LengthMismatch {
                prompt: p.id,
                clean: p.tokens.len(),
                corrupt: corrupt.len(),
            });
        }
    }
    Ok(())
}

/// The clean or corrupt token rows of a batch (the corrupt ones must exist: see [`check_pairs`]).
pub(crate) fn token_rows(prompts: &[Prompt], corrupt: bool) -> Vec<Vec<u32>> {
    prompts
        .iter()
        .map(|p| match (corrupt, &p.corrupt_tokens) {
            (true, Some(c)) => c.clone(),
            _ => p.tokens.clone(),
        })
        .collect()
}

pub(crate) fn make_batch(
    rows: &[Vec<u32>],
    padding: Padding,
    device: &Device,
) -> Result<TokenBatch> {
    if rows.is_empty() {
        return Err(InterventionError::EmptyBatch);
    }
    if let Some(i) = rows.iter().position(Vec::is_empty) {
        return Err(InterventionError::Config(format!(
            "prompt at batch row {i} has no tokens"
        )));
    }
    Ok(TokenBatch::new(rows, padding.pad_id, padding.side, device))
}

/// The padded batches a patch copies from and into for `direction`: (clean, corrupt) when
/// denoising, (corrupt, clean) when noising.
pub(crate) fn source_and_dest(
    prompts: &[Prompt],
    padding: Padding,
    direction: Direction,
    device: &Device,
) -> Result<(TokenBatch, TokenBatch)> {
    let clean = make_batch(&token_rows(prompts, false), padding, device)?;
    let corrupt = make_batch(&token_rows(prompts, true), padding, device)?;
    Ok(clean_first(direction, clean, corrupt))
}

/// `(source, dest)` of a patch in `direction` as `(clean, corrupt)`, or the reverse: the map is
/// its own inverse.
pub(crate) fn clean_first<T>(direction: Direction, source: T, dest: T) -> (T, T) {
    match direction {
        Direction::Denoising => (source, dest),
        Direction::Noising => (dest, source),
    }
}

/// Checks that `hook` exists in `model` (layer in range, kind present in this architecture).
pub(crate) fn check_hook(model: &Transformer, hook: HookPoint) -> Result<()> {
    let cfg = &model.config;
    if let Some(l) = hook.layer
        && l >= cfg.n_layers
    {
        return Err(InterventionError::Config(format!(
            "layer {l} is out of range: the model has {} layers (0..{})",
            cfg.n_layers,
            cfg.n_layers - 1
        )));
    }
    if !model.hook_points().contains(&hook) {
        return Err(InterventionError::Config(format!(
            "the model has no hook point `{hook}`"
        )));
    }
    Ok(())
}

/// How many heads the head axis of a per-head hook has (`n_kv_heads` for keys and values).
pub(crate) fn head_count(model: &Transformer, kind: HookKind) -> usize {
    match kind {
        HookKind::K | HookKind::V | HookKind::RotK => model.config.n_kv_heads,
        _ => model.config.n_heads,
    }
}

/// Whether a hook has a head axis.
pub(crate) fn is_per_head(kind: HookKind) -> bool {
    kind.layout() != circuitry_models::HookLayout::BatchPosD
}

/// The shape a hook's tensor has for a batch of `b` rows of `t` slots.
pub(crate) fn hook_shape(model: &Transformer, kind: HookKind, b: usize, t: usize) -> Vec<usize> {
    let cfg = &model.config;
    match kind {
        HookKind::Q | HookKind::RotQ | HookKind::Z => vec![b, t, cfg.n_heads, cfg.d_head],
        HookKind::K | HookKind::V | HookKind::RotK => vec![b, t, cfg.n_kv_heads, cfg.d_head],
        HookKind::Result => vec![b, t, cfg.n_heads, cfg.d_model],
        HookKind::AttnScores | HookKind::Pattern => vec![b, cfg.n_heads, t, t],
        HookKind::MlpPre | HookKind::MlpPreLinear | HookKind::MlpPost => vec![b, t, cfg.d_mlp],
        HookKind::Ln1Scale | HookKind::Ln2Scale | HookKind::LnFinalScale => vec![b, t, 1],
        HookKind::Logits => vec![b, t, cfg.d_vocab],
        _ => vec![b, t, cfg.d_model],
    }
}

/// Pearson correlation of two equally long samples (`None` when either is constant).
pub fn pearson(a: &[f64], b: &[f64]) -> Option<f64> {
    assert_eq!(a.len(), b.len(), "pearson: samples of different length");
    let n = a.len() as f64;
    if a.len() < 2 {
        return None;
    }
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
        sbb += (y - mb) * (y - mb);
    }
    (saa > 0.0 && sbb > 0.0).then(|| sab / (saa * sbb).sqrt())
}
