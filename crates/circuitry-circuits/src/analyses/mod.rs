//! One module per analysis kind, and the registry that builds them from the experiment file.
//!
//! The modules, [`build`] and [`KINDS`] are generated from the spec's kind list
//! (`circuitry_spec::for_each_analysis_kind!`): kind `my_kind` is the module `my_kind` here,
//! whose type `MyKind` implements [`Kind`] with `Params = circuitry_spec::MyKindParams`. A kind
//! missing here, or a type or parameter mismatch, is a compile error.

mod causal;
pub mod decode;
mod head_circuits;
mod head_score_means;
mod prelude;
mod weights_only;

use circuitry_models::ModelConfig;
use circuitry_spec::{AnalysisParams, AnalysisSpec};

use crate::analysis::{Analysis, AnalysisError, BuildContext, Kind, TableDecl};

macro_rules! registry {
    ($($module:ident => $variant:ident($params:ident)),+ $(,)?) => {
        $(pub mod $module;)+

        /// Builds the analysis an experiment file's `[analyses.NAME]` describes, for a model with
        /// configuration `config`.
        pub fn build(
            spec: &AnalysisSpec,
            config: &ModelConfig,
        ) -> Result<Box<dyn Analysis>, AnalysisError> {
            Ok(match &spec.params {
                $(AnalysisParams::$variant(p) => {
                    let cx = BuildContext { analysis: spec, config };
                    Box::new(<$module::$variant as Kind>::build(p.clone(), cx)?)
                })+
            })
        }

        /// Every kind's name and the tables it can write, in the spec's listing order (the
        /// runner adds sweep columns, `step` for a checkpoint series, `model` and `dataset` in
        /// front).
        pub const KINDS: &[(&str, &[TableDecl])] =
            &[$((stringify!($module), <$module::$variant as Kind>::TABLES),)+];
    };
}

circuitry_spec::for_each_analysis_kind!(registry);

/// The tables kind `kind` can write, or `None` for an unknown kind.
pub fn declared_tables(kind: &str) -> Option<&'static [TableDecl]> {
    KINDS.iter().find(|(k, _)| *k == kind).map(|(_, t)| *t)
}

/// Checks layer and head filters against the model, so that a typo is an error rather than an
/// empty table.
pub(crate) fn check_filters(
    config: &ModelConfig,
    layers: Option<&[u32]>,
    heads: Option<&[u32]>,
) -> Result<(), AnalysisError> {
    if let Some(bad) = layers.and_then(|l| l.iter().find(|&&l| l as usize >= config.n_layers)) {
        return Err(AnalysisError::at(
            "layers",
            format!(
                "layer {bad} does not exist: the model has {} layers (0..{})",
                config.n_layers,
                config.n_layers - 1
            ),
        ));
    }
    if let Some(bad) = heads.and_then(|h| h.iter().find(|&&h| h as usize >= config.n_heads)) {
        return Err(AnalysisError::at(
            "heads",
            format!(
                "head {bad} does not exist: the model has {} heads per layer (0..{})",
                config.n_heads,
                config.n_heads - 1
            ),
        ));
    }
    Ok(())
}

/// The layers, and the heads of each, that `layers` and `heads` filters select (all when
/// unfiltered), after [`check_filters`].
pub(crate) fn selected_layers_heads(
    config: &ModelConfig,
    layers: Option<&[u32]>,
    heads: Option<&[u32]>,
) -> Result<(Vec<usize>, Vec<usize>), AnalysisError> {
    check_filters(config, layers, heads)?;
    Ok((
        selected(config.n_layers, layers),
        selected(config.n_heads, heads),
    ))
}

/// The selected layers (all when unfiltered).
pub(crate) fn selected(n: usize, filter: Option<&[u32]>) -> Vec<usize> {
    (0..n).filter(|&i| crate::refs::keep(filter, i)).collect()
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

/// Weight circuits read a head as linear maps between the residual stream and the logits or
/// other heads (`W_Q W_K^T`, `W_V W_O`, `W_out W_U`). Refuses models where the path `what` reads
/// is not linear: query/key norms for QK paths (`qk`), post-norms for paths out of a block (`out`),
/// a logit soft-cap for paths into the logits (`logits`).
pub(crate) fn check_linear_paths(
    config: &ModelConfig,
    qk: bool,
    out: bool,
    logits: bool,
) -> Result<(), AnalysisError> {
    let why = if qk && config.qk_norm != circuitry_models::QkNorm::None {
        Some("it normalises queries and keys, so W_Q W_K^T does not give its attention scores")
    } else if out && config.block_norms.post() {
        Some(
            "it normalises attention's and the MLPs' outputs (post-norms), so W_O and W_out do not give what they write",
        )
    } else if logits && config.logit_softcap.is_some() {
        Some("it soft-caps its logits, so W_U does not give them")
    } else {
        None
    };
    match why {
        Some(why) => Err(AnalysisError::new(format!(
            "weight circuits do not describe this model: {why}"
        ))),
        None => Ok(()),
    }
}

/// A hook site must exist in the model (see `circuitry_models::transformer::has_hook`): no MLP
/// site in an attention-only model, no `resid_mid` where attention and MLP run in parallel.
pub(crate) fn check_site(
    config: &ModelConfig,
    site: impl std::fmt::Display,
    kind: circuitry_models::HookKind,
    key: &str,
) -> Result<(), AnalysisError> {
    use circuitry_models::HookKind;
    if !circuitry_models::transformer::has_hook(config, kind) {
        let why = match kind {
            HookKind::ResidMid if !config.attn_only => {
                "the model's attention and MLP read the same residual stream in parallel, so there is no stream between them"
            }
            _ if config.attn_only => "the model is attention-only (it has no MLPs)",
            _ => "the model has no such hook",
        };
        return Err(AnalysisError::at(
            key,
            format!("site `{site}` does not exist: {why}"),
        ));
    }
    Ok(())
}
