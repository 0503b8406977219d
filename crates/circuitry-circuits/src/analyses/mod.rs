//! One module per analysis kind, and the registry that builds them from the experiment file.

pub mod ablation;
pub mod activation_patching;
pub mod attention_pattern;
pub mod attribution_patching;
mod causal;
pub mod composition_scores;
pub mod decode;
pub mod direct_logit_attribution;
pub mod edge_attribution_patching;
pub mod head_detector;
pub mod induction_scores;
pub mod logit_lens;
pub mod next_token;
pub mod ov_circuit;
pub mod path_patching;
pub mod qk_circuit;
pub mod tokens;

use circuitry_models::ModelConfig;
use circuitry_spec::{AnalysisParams, AnalysisSpec};

use crate::analysis::{Analysis, AnalysisError};
use crate::table::ColumnSpec;
use crate::weight_circuits::{ov, qk};

/// Builds the analysis an experiment file's `[analyses.NAME]` describes, for a model with
/// configuration `config`.
pub fn build(
    spec: &AnalysisSpec,
    config: &ModelConfig,
) -> Result<Box<dyn Analysis>, AnalysisError> {
    Ok(match &spec.params {
        AnalysisParams::AttentionPattern(p) => {
            Box::new(attention_pattern::AttentionPattern::new(p.clone(), config)?)
        }
        AnalysisParams::LogitLens(p) => Box::new(logit_lens::LogitLens::new(p.clone(), config)?),
        AnalysisParams::DirectLogitAttribution(p) => Box::new(
            direct_logit_attribution::DirectLogitAttribution::new(p.clone(), config)?,
        ),
        AnalysisParams::HeadDetector(p) => {
            Box::new(head_detector::HeadDetector::new(p.clone(), config)?)
        }
        AnalysisParams::NextToken(p) => Box::new(next_token::NextToken::new(p.clone())),
        AnalysisParams::OvCircuit(p) => Box::new(ov_circuit::OvCircuit::new(p.clone(), config)?),
        AnalysisParams::QkCircuit(p) => Box::new(qk_circuit::QkCircuit::new(p.clone(), config)?),
        AnalysisParams::CompositionScores(p) => Box::new(
            composition_scores::CompositionScores::new(p.clone(), config)?,
        ),
        AnalysisParams::InductionScores(p) => {
            Box::new(induction_scores::InductionScores::new(p.clone(), config)?)
        }
        AnalysisParams::Tokens(p) => Box::new(tokens::Tokens::new(p.clone())),
        AnalysisParams::ActivationPatching(p) => Box::new(
            activation_patching::ActivationPatching::new(p.clone(), config)?,
        ),
        AnalysisParams::Ablation(p) => Box::new(ablation::Ablation::new(
            p.clone(),
            spec.dataset.clone(),
            config,
        )?),
        AnalysisParams::PathPatching(p) => {
            Box::new(path_patching::PathPatching::new(p.clone(), config)?)
        }
        AnalysisParams::AttributionPatching(p) => Box::new(
            attribution_patching::AttributionPatching::new(p.clone(), config)?,
        ),
        AnalysisParams::EdgeAttributionPatching(p) => Box::new(
            edge_attribution_patching::EdgeAttributionPatching::new(p.clone()),
        ),
    })
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

/// The selected layers (all when unfiltered).
pub(crate) fn selected(n: usize, filter: Option<&[u32]>) -> Vec<usize> {
    (0..n).filter(|&i| crate::refs::keep(filter, i)).collect()
}

/// A table an analysis kind writes, for `circuitry analyses`.
pub struct OutputTable {
    /// `<analysis>.parquet` or `<analysis>.<part>.parquet`.
    pub file: String,
    pub columns: Vec<ColumnSpec>,
    /// When the table (or this column set) applies.
    pub note: &'static str,
}

fn output(part: Option<&str>, columns: &[ColumnSpec], note: &'static str) -> OutputTable {
    OutputTable {
        file: match part {
            Some(p) => format!("<analysis>.{p}.parquet"),
            None => "<analysis>.parquet".to_string(),
        },
        columns: columns.to_vec(),
        note,
    }
}

/// The tables a kind writes (the runner adds `model`, `dataset` and sweep columns in front).
pub fn output_tables(kind: &str) -> Vec<OutputTable> {
    match kind {
        "attention_pattern" => vec![output(None, &attention_pattern::COLUMNS, "")],
        "logit_lens" => vec![output(None, &logit_lens::COLUMNS, "")],
        "direct_logit_attribution" => vec![output(None, &direct_logit_attribution::COLUMNS, "")],
        "head_detector" => vec![
            output(
                None,
                &head_detector::AVERAGED_COLUMNS,
                "per_prompt = false (default)",
            ),
            output(
                None,
                &head_detector::PER_PROMPT_COLUMNS,
                "per_prompt = true",
            ),
        ],
        "next_token" => vec![output(None, &next_token::COLUMNS, "")],
        "tokens" => vec![output(None, &tokens::COLUMNS, "")],
        "ov_circuit" => vec![
            output(None, &ov::OV_SCORE_COLUMNS, ""),
            output(
                Some("top_pairs"),
                &ov_circuit::TOP_PAIR_COLUMNS,
                "top_k > 0",
            ),
            output(
                Some("singular_values"),
                &ov::SINGULAR_VALUE_COLUMNS,
                "singular_values > 0",
            ),
        ],
        "qk_circuit" => vec![
            output(None, &qk_circuit::COLUMNS, ""),
            output(
                Some("top_pairs"),
                &qk_circuit::TOP_PAIR_COLUMNS,
                "top_k > 0",
            ),
            output(
                Some("positional"),
                &qk::QK_POSITIONAL_COLUMNS,
                "learned positions, max_positions > 0",
            ),
            output(
                Some("singular_values"),
                &ov::SINGULAR_VALUE_COLUMNS,
                "singular_values > 0",
            ),
        ],
        "composition_scores" => vec![output(None, &composition_scores::COLUMNS, "")],
        "induction_scores" => vec![
            output(
                None,
                &induction_scores::AVERAGED_COLUMNS,
                "per_prompt = false (default)",
            ),
            output(
                None,
                &induction_scores::PER_PROMPT_COLUMNS,
                "per_prompt = true",
            ),
        ],
        "activation_patching" => vec![
            output(None, &crate::interventions::patching::PATCHING_COLUMNS, ""),
            output(
                Some(activation_patching::SUMMARY),
                &crate::interventions::patching::PATCHING_SUMMARY_COLUMNS,
                "summary = true (default)",
            ),
        ],
        "ablation" => vec![output(
            None,
            &crate::interventions::ablation::ABLATION_COLUMNS,
            "",
        )],
        "path_patching" => vec![output(
            None,
            &crate::interventions::path_patching::PATH_PATCHING_COLUMNS,
            "",
        )],
        "attribution_patching" => vec![output(
            None,
            &crate::interventions::attribution::ATTRIBUTION_COLUMNS,
            "",
        )],
        "edge_attribution_patching" => vec![
            output(
                None,
                &crate::interventions::eap::EDGE_COLUMNS,
                "one row per edge",
            ),
            output(
                Some(edge_attribution_patching::NODES),
                &crate::interventions::eap::NODE_COLUMNS,
                "one row per node",
            ),
        ],
        _ => vec![],
    }
}
