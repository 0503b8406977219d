//! `kind = "edge_attribution_patching"`.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{AnalysisKind, last, noising};
use circuitry_vocab::Direction;

use super::activation_patching::{check_metric, require_corrupt};
use crate::refs::{MetricSpec, PositionSpec};
use crate::validate::Checker;

analysis_params! {
    /// Edge attribution patching (EAP, Syed et al. 2023; EAP-IG, Hanna et al. 2024): a score for
    /// every edge of the graph of input embedding, attention heads, MLPs and logits, and the circuit
    /// of the highest-scoring edges.
    ///
    /// The score of an edge `u -> v` is `(a_u^source - a_u^dest) · dmetric/d(input of v)` at the
    /// destination run, summed over positions and averaged over prompts (every batch merged); EAP-IG
    /// averages the gradient over `ig_steps` inputs interpolated between the source and destination
    /// embeddings. The default direction is noising (corrupt activations into the clean run), as in
    /// both papers. The circuit is the `top_n` edges by absolute score, or every edge whose absolute
    /// score reaches `threshold`. Needs a dataset with corrupt prompts. Main table, one row per
    /// edge: sender, sender_layer, sender_head, receiver, receiver_layer, receiver_head,
    /// receiver_input, score, in_circuit, method. Part `nodes` (`<name>.nodes.parquet`), one row per
    /// node: node, kind, layer, head, attribution, in_circuit, circuit_edges.
    pub struct EdgeAttributionPatchingParams {
        /// "eap" (one gradient at the destination run, the default) or "eap_ig" (gradients averaged
        /// over `ig_steps` interpolated inputs: slower, more faithful).
        #[serde(default)]
        pub method: EapMethod,
        /// For `method = "eap_ig"`: interpolation steps (> 0). Default: 5 (the EAP-IG paper's).
        pub ig_steps: Option<u32>,
        /// The circuit: the `top_n` edges with the largest absolute score. Default: 100 when
        /// `threshold` is not given.
        pub top_n: Option<u32>,
        /// The circuit: every edge whose absolute score is at least this (in the metric's units, or
        /// in units of the clean - corrupt metric gap when the metric is normalized). Exclusive
        /// with `top_n`.
        pub threshold: Option<f64>,
        /// "noising" (corrupt activations into the clean run, the default, as in the EAP papers) or
        /// "denoising" (clean activations into the corrupt run).
        #[serde(default = "noising")]
        pub direction: Direction,
        /// What is measured, e.g. { logit_diff = ["IO", "S"] }. With `normalize = true`, scores are
        /// divided by the mean clean - corrupt metric gap: noising, an edge scoring -1 estimates
        /// losing the whole gap; denoising, +1 restoring it.
        pub metric: MetricSpec,
        /// The position whose next-token prediction the metric reads (IOI: "END"). Ignored by the
        /// loss metric.
        #[serde(default = "last")]
        pub position: PositionSpec,
    }
}

/// How edge scores are computed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EapMethod {
    /// Edge attribution patching: one gradient at the destination run.
    #[default]
    Eap,
    /// EAP with integrated gradients over interpolated input embeddings.
    EapIg,
}

impl fmt::Display for EapMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EapMethod::Eap => "eap",
            EapMethod::EapIg => "eap_ig",
        })
    }
}

/// EAP-IG's default number of interpolation steps.
pub const DEFAULT_IG_STEPS: u32 = 5;

/// The circuit size when neither `top_n` nor `threshold` is given.
pub const DEFAULT_TOP_N: u32 = 100;

impl EdgeAttributionPatchingParams {
    /// The interpolation steps (1 for EAP).
    pub fn steps(&self) -> u32 {
        match self.method {
            EapMethod::Eap => 1,
            EapMethod::EapIg => self.ig_steps.unwrap_or(DEFAULT_IG_STEPS),
        }
    }
}

impl AnalysisKind for EdgeAttributionPatchingParams {
    fn validate(&self, c: &mut Checker<'_, '_>) {
        if let Some(steps) = self.ig_steps {
            c.positive("ig_steps", steps);
            if self.method != EapMethod::EapIg {
                c.error(
                    "ig_steps",
                    "`ig_steps` applies to method = \"eap_ig\", but `method` is \"eap\"",
                )
                .hint = Some("set method = \"eap_ig\", or remove `ig_steps`".into());
            }
        }
        if let Some(n) = self.top_n {
            c.positive("top_n", n);
        }
        if let Some(t) = self.threshold {
            c.non_negative("threshold", t);
            if self.top_n.is_some() {
                c.error("threshold", "give either `top_n` or `threshold`, not both")
                    .hint =
                    Some("the circuit is the top_n edges or the edges above threshold".into());
            }
        }
        check_metric(c, &self.metric, &self.position);
        require_corrupt(c, "edge_attribution_patching");
    }
}
