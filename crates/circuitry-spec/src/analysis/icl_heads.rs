//! `kind = "icl_heads"`.

use circuitry_vocab::MeanOver;

use super::AblationMethodSpec;
use super::AnalysisKind;
use super::icl_score::{check_early_late, fifty, five_hundred};
use super::induction_scores::require_repeated_tokens;
use crate::validate::Checker;

analysis_params! {
    /// The heads that carry in-context learning: each head ablated alone, the change in the ICL
    /// score and in the other heads' induction scores, beside its own prefix-matching score.
    ///
    /// Needs repeated prompts (`[BOS] r r`, whose second copy only an induction circuit predicts):
    /// a `repeated_tokens` dataset, or one that declares `repeats = 2`. Per head, averaged over prompts: its prefix-matching score (attention from the
    /// second copy to the token after the earlier occurrence, `induction_scores`'s
    /// induction_score) and previous-token score on the clean run; the ICL score (loss on token
    /// `late` minus loss on token `early`, as `icl_score`) of the clean run and with the head
    /// ablated (the `ablation` kind's machinery: the same numbers as `ablation` with
    /// `metric = { icl_score = [early, late] }`); and the highest prefix-matching score among the
    /// other heads, clean and with the head ablated (ablating a previous-token head lowers the
    /// induction heads' scores: K-composition). Columns: layer, head, method, prefix_matching_score,
    /// previous_token_score, icl_score_clean, icl_score_ablated, icl_score_change,
    /// induction_score_clean, induction_score_ablated, induction_score_change, n_prompts.
    pub struct IclHeadsParams {
        /// The early token of the ICL score (>= 1).
        #[schemars(range(min = 1))]
        #[serde(default = "fifty")]
        pub early: u32,
        /// The late token of the ICL score (> early).
        #[serde(default = "five_hundred")]
        pub late: u32,
        /// How a head's output is knocked out: "zero", "mean" (its mean over the `reference`
        /// dataset) or "resample" (its value on another prompt of the dataset).
        #[serde(default = "zero")]
        pub method: AblationMethodSpec,
        /// For `method = "mean"`: the `[datasets.*]` entry whose mean activations replace the
        /// ablated ones. Default: the analysis's own dataset.
        pub reference: Option<String>,
        /// For `method = "mean"`: "prompts" (per token index) or "prompts_and_positions".
        #[serde(default)]
        pub mean_over: MeanOver,
        /// Layers whose heads are ablated (0-based). Default: every layer.
        pub layers: Option<Vec<u32>>,
        /// Heads ablated in every selected layer (0-based). Default: every head.
        pub heads: Option<Vec<u32>>,
        /// For `method = "resample"`: the seed of the donor permutation. Default: derived from the
        /// experiment's `seed` and the analysis's name.
        pub seed: Option<u64>,
    }
}

fn zero() -> AblationMethodSpec {
    AblationMethodSpec::Zero
}

impl AnalysisKind for IclHeadsParams {
    fn validate(&self, c: &mut Checker<'_, '_>) {
        check_early_late(c, self.early, self.late);
        c.filter("layers", self.layers.as_deref());
        c.filter("heads", self.heads.as_deref());
        if matches!(
            self.method,
            AblationMethodSpec::Scale | AblationMethodSpec::Set
        ) {
            c.error(
                "method",
                format!(
                    "icl_heads ablates heads: method \"{}\" steers instead",
                    self.method
                ),
            )
            .hint =
                Some("use \"zero\", \"mean\" or \"resample\"; steer with the ablation kind".into());
        }
        if let Some(r) = &self.reference {
            c.dataset_reference("reference", r);
            if self.method != AblationMethodSpec::Mean {
                c.error("reference", "`reference` is only read by method = \"mean\"");
            }
        }
        require_repeated_tokens(c, "icl_heads");
    }

    fn resolve(&mut self, derived_seed: u64) {
        if self.method == AblationMethodSpec::Resample && self.seed.is_none() {
            self.seed = Some(derived_seed);
        }
    }
}
