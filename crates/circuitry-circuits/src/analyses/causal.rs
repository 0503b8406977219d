//! What the causal-intervention kinds (`activation_patching`, `ablation`, `path_patching`,
//! `attribution_patching`, `edge_attribution_patching`) share: the experiment file's metrics,
//! positions, directions and sites as the intervention library's types, model checks that point
//! at the offending key, and the padding of the runner's batches.
//!
//! These analyses run their own forward passes (clean, corrupt and patched) with
//! `ModelContext::model`; they ask the shared pass for nothing but the prompts.

use circuitry_models::{HookKind, ModelConfig, Tokenizer};
use circuitry_spec as spec;

use crate::analysis::{AnalysisError, BatchContext, ModelContext};
use crate::interventions::{
    self, InterventionError, Metric, MetricKind, Padding, PositionSel, PositionSweep, TokenRef,
};

/// The hook kind of a site.
pub(crate) fn site_kind(site: spec::Site) -> HookKind {
    match site {
        spec::Site::ResidPre => HookKind::ResidPre,
        spec::Site::ResidMid => HookKind::ResidMid,
        spec::Site::ResidPost => HookKind::ResidPost,
        spec::Site::AttnOut => HookKind::AttnOut,
        spec::Site::MlpOut => HookKind::MlpOut,
        spec::Site::Z => HookKind::Z,
        spec::Site::Q => HookKind::Q,
        spec::Site::K => HookKind::K,
        spec::Site::V => HookKind::V,
        spec::Site::Pattern => HookKind::Pattern,
        spec::Site::Result => HookKind::Result,
    }
}

/// A site must exist in the model (no MLP sites in attention-only models).
pub(crate) fn check_site(
    config: &ModelConfig,
    site: spec::Site,
    key: &str,
) -> Result<(), AnalysisError> {
    if site.needs_mlp() && config.attn_only {
        return Err(AnalysisError::at(
            key,
            format!("site `{site}` does not exist: the model is attention-only (it has no MLPs)"),
        ));
    }
    Ok(())
}

/// Heads of a per-head hook (`n_kv_heads` for keys and values).
pub(crate) fn head_count(config: &ModelConfig, site: spec::Site) -> usize {
    match site {
        spec::Site::K | spec::Site::V => config.n_kv_heads,
        _ => config.n_heads,
    }
}

pub(crate) fn direction(d: spec::Direction) -> interventions::Direction {
    match d {
        spec::Direction::Denoising => interventions::Direction::Denoising,
        spec::Direction::Noising => interventions::Direction::Noising,
    }
}

/// One position of a sweep: names (and `first`/`last`, which every prompt names) stay names so
/// that tables keep them; negative indices count from the end.
pub(crate) fn position_sel(p: &spec::PositionRef) -> PositionSel {
    match p {
        spec::PositionRef::First => PositionSel::Named(circuitry_data::FIRST.into()),
        spec::PositionRef::Last => PositionSel::Named(circuitry_data::LAST.into()),
        spec::PositionRef::Named(n) => PositionSel::Named(n.clone()),
        spec::PositionRef::Index(i) if *i >= 0 => PositionSel::Index(*i as usize),
        spec::PositionRef::Index(i) => PositionSel::FromEnd(i.unsigned_abs() as usize),
    }
}

pub(crate) fn position_sweep(p: &spec::PatchPositions) -> PositionSweep {
    match p {
        spec::PatchPositions::All => PositionSweep::All,
        spec::PatchPositions::Each => PositionSweep::Each,
        spec::PatchPositions::List(l) => PositionSweep::List(l.iter().map(position_sel).collect()),
    }
}

fn metric_position(p: &spec::PositionRef) -> interventions::PositionRef {
    use interventions::PositionRef as P;
    match p {
        spec::PositionRef::First => P::Index(0),
        spec::PositionRef::Last => P::Last,
        spec::PositionRef::Named(n) => P::Named(n.clone()),
        spec::PositionRef::Index(i) if *i >= 0 => P::Index(*i as usize),
        spec::PositionRef::Index(i) => P::FromEnd(i.unsigned_abs() as usize),
    }
}

fn token(
    t: &spec::TokenRef,
    tokenizer: &Tokenizer,
    d_vocab: usize,
) -> Result<TokenRef, AnalysisError> {
    match t {
        spec::TokenRef::Answer(name) => Ok(TokenRef::Answer(name.clone())),
        spec::TokenRef::Id(id) if (*id as usize) < d_vocab => Ok(TokenRef::Id(*id)),
        spec::TokenRef::Id(id) => Err(AnalysisError::at(
            "metric",
            format!("token id {id} is outside the vocabulary ({d_vocab} tokens)"),
        )),
        spec::TokenRef::Text(text) => {
            let ids = tokenizer
                .encode(text)
                .map_err(|e| AnalysisError::at("metric", e.to_string()))?;
            match ids.as_slice() {
                [id] => Ok(TokenRef::Id(*id)),
                _ => Err(AnalysisError::at(
                    "metric",
                    format!(
                        "{{ text = {text:?} }} is {} tokens, not one: {ids:?}",
                        ids.len()
                    ),
                )),
            }
        }
    }
}

/// The experiment file's metric, read at `position`, as the intervention library's metric
/// (literal-text tokens are tokenized here).
pub(crate) fn metric(
    m: &spec::Metric,
    position: &spec::PositionRef,
    tokenizer: &Tokenizer,
    d_vocab: usize,
) -> Result<Metric, AnalysisError> {
    let tok = |t| token(t, tokenizer, d_vocab);
    let kind = match &m.measure {
        spec::Measure::LogitDiff(a, b) => MetricKind::LogitDiff {
            correct: tok(a)?,
            incorrect: tok(b)?,
        },
        spec::Measure::Logprob(t) => MetricKind::LogProb(tok(t)?),
        spec::Measure::Prob(t) => MetricKind::Prob(tok(t)?),
        spec::Measure::Loss => MetricKind::Loss,
        spec::Measure::Kl => MetricKind::Kl,
    };
    Ok(Metric::new(kind, metric_position(position)))
}

/// How the runner padded this batch (the interventions pad their own batches the same way).
pub(crate) fn padding(model: &ModelContext, batch: &BatchContext) -> Padding {
    Padding {
        pad_id: circuitry_data::pad_id(model.tokenizer),
        side: batch.clean.side,
    }
}

/// An intervention error as an analysis error, pointed at the key it is about.
pub(crate) fn error(e: InterventionError) -> AnalysisError {
    let key = match &e {
        InterventionError::MissingPosition { .. }
        | InterventionError::PositionOutOfRange { .. } => Some("position"),
        InterventionError::MissingAnswer { .. } | InterventionError::TokenOutOfRange { .. } => {
            Some("metric")
        }
        InterventionError::NoCorrupt { .. } | InterventionError::LengthMismatch { .. } => {
            Some("dataset")
        }
        _ => None,
    };
    match key {
        Some(k) => AnalysisError::at(k, e.to_string()),
        None => AnalysisError::new(e.to_string()),
    }
}

/// Layers `0..n` kept by an optional filter, after checking it against the model.
pub(crate) fn layers(
    config: &ModelConfig,
    filter: Option<&[u32]>,
) -> Result<Vec<usize>, AnalysisError> {
    super::check_filters(config, filter, None)?;
    Ok(super::selected(config.n_layers, filter))
}

/// Indices of an optional filter below `n` (all when absent); `what` names them in the error.
pub(crate) fn indices(
    key: &str,
    what: &str,
    filter: Option<&[u32]>,
    n: usize,
) -> Result<Vec<usize>, AnalysisError> {
    if let Some(bad) = filter.and_then(|f| f.iter().find(|&&i| i as usize >= n)) {
        return Err(AnalysisError::at(
            key,
            format!(
                "{what} {bad} does not exist: the model has {n} {what}s (0..{})",
                n.saturating_sub(1)
            ),
        ));
    }
    Ok(match filter {
        Some(f) => f.iter().map(|&i| i as usize).collect(),
        None => (0..n).collect(),
    })
}
