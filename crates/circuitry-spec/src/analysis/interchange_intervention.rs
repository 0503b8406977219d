//! `kind = "interchange_intervention"`: interchange intervention accuracy of candidate sites.

use circuitry_vocab::{HeadSweep, Site};

use super::AnalysisKind;
use super::activation_patching::{PositionSweepSpec, check_heads, check_patch_positions};
use crate::dataset::COUNTERFACTUAL_ANSWERS;
use crate::refs::PositionSpec;
use crate::validate::Checker;

analysis_params! {
    /// Interchange interventions (Geiger et al.): for each candidate site, the activation of the
    /// source prompt of each counterfactual pair written into the base run, and how often the
    /// intervened model's top prediction is the causal model's counterfactual output, i.e. the
    /// interchange intervention accuracy (IIA) of aligning the intervened variable with the site.
    ///
    /// Reads a `counterfactuals` dataset (each prompt a base, its counterfactual the source, its
    /// answers `base` and `counterfactual`). Sites are swept like activation patching's (every
    /// selected layer, each head for per-head sites, each listed position), with its prefix reuse
    /// and batching. Columns: site, layer, head, position, position_name, iia (mean over pairs of
    /// top1(counterfactual) in the intervened run), iia_base (the same in the base run: the share
    /// of pairs whose counterfactual output is the base's own prediction), iia_source (in the
    /// source run), task_accuracy (top1(base) in the base run), n_pairs.
    pub struct InterchangeInterventionParams {
        /// The activation interchanged: "resid_pre", "resid_mid", "resid_post" (the default),
        /// "attn_out", "mlp_out", or per head "z", "q", "k", "v", "pattern", "result".
        #[serde(default = "resid_post")]
        pub site: Site,
        /// Layers to sweep (0-based). Default: every layer.
        pub layers: Option<Vec<u32>>,
        /// For per-head sites: "each" (the default), "all" or a list of heads.
        #[serde(default)]
        pub heads: HeadSweep,
        /// Which positions one intervention covers: "each" (one per token index, the default),
        /// "all", or a list of positions, each intervened separately.
        #[serde(default = "each")]
        pub positions: PositionSweepSpec,
        /// The position whose next-token prediction is the model's output. Default: "last".
        #[serde(default = "super::last")]
        pub position: PositionSpec,
    }
}

pub(super) fn resid_post() -> Site {
    Site::ResidPost
}

fn each() -> PositionSweepSpec {
    PositionSweepSpec::Each
}

/// The dataset must be counterfactual pairs (corrupt prompts with the answers `base` and
/// `counterfactual`).
pub(super) fn require_pairs(c: &mut Checker<'_, '_>, kind: &str) {
    let Some((name, dataset)) = c.dataset else {
        return;
    };
    let answers = dataset.answer_names();
    if dataset.has_corrupt()
        && COUNTERFACTUAL_ANSWERS
            .iter()
            .all(|a| answers.iter().any(|n| n == a))
    {
        return;
    }
    let source = dataset.source_name();
    c.error(
        "dataset",
        format!("`{kind}` reads counterfactual pairs, but dataset `{name}` ({source}) is not one"),
    )
    .hint = Some(format!(
        "define [datasets.pairs] counterfactuals = \"{name}\" with a causal_model and the variables to intervene on"
    ));
}

impl AnalysisKind for InterchangeInterventionParams {
    fn validate(&self, c: &mut Checker<'_, '_>) {
        c.filter("layers", self.layers.as_deref());
        check_heads(c, self.site, &self.heads);
        check_patch_positions(c, "positions", &self.positions);
        c.position("position", &self.position);
        require_pairs(c, "interchange_intervention");
    }
}
