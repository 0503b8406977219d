//! What the causal-intervention kinds (`activation_patching`, `ablation`, `path_patching`,
//! `attribution_patching`, `edge_attribution_patching`) share: the experiment file's positions,
//! tokens and metrics resolved into the intervention library's types (names and negative indices
//! become per-prompt selections, literal texts token ids; sites, directions, head inputs and head
//! sweeps are the shared `circuitry_vocab` types and need nothing), model checks that point at the
//! offending key, and the padding of the runner's batches.
//!
//! These analyses run their own forward passes (clean, corrupt and patched) with
//! `ModelContext::model`; they ask the shared pass for nothing but the prompts.

use circuitry_models::{ModelConfig, Tokenizer};
use circuitry_spec as spec;
use circuitry_vocab::Site;

use crate::analysis::{AnalysisError, BatchContext, ModelContext};
use crate::interventions::{
    self, InterventionError, Metric, MetricKind, Padding, PositionSweep, PromptPositions, TokenRef,
};
use crate::refs;

/// Heads of a per-head hook (`n_kv_heads` for keys and values).
pub(crate) fn head_count(config: &ModelConfig, site: Site) -> usize {
    match site {
        Site::K | Site::V => config.n_kv_heads,
        _ => config.n_heads,
    }
}

/// One position of a sweep: names (and `first`/`last`, which every prompt names) stay names so
/// that tables keep them; negative indices count from the end.
pub(crate) fn prompt_positions(p: &spec::PositionSpec) -> PromptPositions {
    match p {
        spec::PositionSpec::First => PromptPositions::Named(circuitry_data::FIRST.into()),
        spec::PositionSpec::Last => PromptPositions::Named(circuitry_data::LAST.into()),
        spec::PositionSpec::Named(n) => PromptPositions::Named(n.clone()),
        spec::PositionSpec::Index(i) if *i >= 0 => PromptPositions::Index(*i as usize),
        spec::PositionSpec::Index(i) => PromptPositions::FromEnd(i.unsigned_abs() as usize),
    }
}

pub(crate) fn position_sweep(p: &spec::PositionSweepSpec) -> PositionSweep {
    match p {
        spec::PositionSweepSpec::All => PositionSweep::All,
        spec::PositionSweepSpec::Each => PositionSweep::Each,
        spec::PositionSweepSpec::List(l) => {
            PositionSweep::List(l.iter().map(prompt_positions).collect())
        }
    }
}

pub(crate) fn metric_position(p: &spec::PositionSpec) -> interventions::MetricPosition {
    use interventions::MetricPosition as P;
    match p {
        spec::PositionSpec::First => P::Index(0),
        spec::PositionSpec::Last => P::Last,
        spec::PositionSpec::Named(n) => P::Named(n.clone()),
        spec::PositionSpec::Index(i) if *i >= 0 => P::Index(*i as usize),
        spec::PositionSpec::Index(i) => P::FromEnd(i.unsigned_abs() as usize),
    }
}

/// The token `t` (the analysis parameter `key`, e.g. `metric.logprob`) names: answers stay
/// names (resolved per prompt), literal text must be one token the vocabulary knows.
fn token(
    key: &str,
    t: &spec::TokenSpec,
    tokenizer: &Tokenizer,
    d_vocab: usize,
) -> Result<TokenRef, AnalysisError> {
    match t {
        spec::TokenSpec::Answer(name) => Ok(TokenRef::Answer(name.clone())),
        spec::TokenSpec::Id(id) if (*id as usize) < d_vocab => Ok(TokenRef::Id(*id)),
        spec::TokenSpec::Id(id) => Err(AnalysisError::at(
            key,
            format!("token id {id} is outside the vocabulary ({d_vocab} tokens)"),
        )),
        spec::TokenSpec::Text(text) => refs::text_token(key, text, tokenizer).map(TokenRef::Id),
    }
}

/// The experiment file's metric, read at `position`, as the intervention library's metric
/// (literal-text tokens are tokenized here).
pub(crate) fn metric(
    m: &spec::MetricSpec,
    position: &spec::PositionSpec,
    model: &ModelContext,
) -> Result<Metric, AnalysisError> {
    let tok = |key, t| token(key, t, model.tokenizer, model.model.config.d_vocab);
    let kind = match &m.measure {
        spec::Measure::LogitDiff(a, b) => MetricKind::LogitDiff {
            correct: tok("metric.logit_diff.0", a)?,
            incorrect: tok("metric.logit_diff.1", b)?,
        },
        spec::Measure::Logprob(t) => MetricKind::LogProb(tok("metric.logprob", t)?),
        spec::Measure::Prob(t) => MetricKind::Prob(tok("metric.prob", t)?),
        spec::Measure::Loss => MetricKind::Loss,
        spec::Measure::IclScore { early, late } => MetricKind::IclScore {
            early: *early as usize,
            late: *late as usize,
        },
        spec::Measure::Kl => MetricKind::Kl,
        spec::Measure::Top1(t) => MetricKind::Top1(tok("metric.top1", t)?),
    };
    Ok(Metric::new(kind, metric_position(position)))
}

/// The value in `slot`, made by `make` on first use: the intervention kinds make their
/// configuration with the first batch, because its metric needs the tokenizer.
pub(crate) fn on_first_use<T>(
    slot: &mut Option<T>,
    make: impl FnOnce() -> Result<T, AnalysisError>,
) -> Result<&T, AnalysisError> {
    if slot.is_none() {
        *slot = Some(make()?);
    }
    Ok(slot.as_ref().expect("just set"))
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

/// A sweep's list of heads checked against the model: heads of the site's layer (key/value
/// heads for `k` and `v` of grouped-query models).
pub(crate) fn check_heads(
    config: &ModelConfig,
    site: Site,
    heads: &spec::HeadSweep,
) -> Result<(), AnalysisError> {
    if let spec::HeadSweep::List(list) = heads {
        let n = head_count(config, site);
        let what = if n == config.n_heads {
            "head"
        } else {
            "key/value head"
        };
        super::indices("heads", what, Some(list), n)?;
    }
    Ok(())
}

/// Layers `0..n` kept by an optional filter, after checking it against the model.
pub(crate) fn layers(
    config: &ModelConfig,
    filter: Option<&[u32]>,
) -> Result<Vec<usize>, AnalysisError> {
    super::check_filters(config, filter, None)?;
    Ok(super::selected(config.n_layers, filter))
}
