//! `kind = "composition_scores"`.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::AnalysisKind;
use crate::validate::Checker;

analysis_params! {
    /// How strongly each later attention head reads what each earlier head writes: Q-, K- and
    /// V-composition scores, from the weights alone, against a random-matrix baseline.
    ///
    /// Reads only the model's weights (under its `processing` settings; TransformerLens's defaults
    /// reproduce `all_composition_scores`): `dataset` must name a dataset but is not read. The score
    /// of an earlier head a into a later head b is `‖W_A W_B‖_F / (‖W_A‖_F ‖W_B‖_F)` with
    /// `W_A = W_V W_O` of head a and `W_B` = `W_Q W_Kᵀ` (q), `W_K W_Qᵀ` (k) or `W_V W_O` (v) of
    /// head b. Unrelated matrices score about `1/sqrt(d_model)`, not 0: baseline_mean and
    /// baseline_std are the mean and standard deviation of the score of independent Gaussian
    /// matrices of the same shapes (seeded Monte Carlo; the same for every kind). Columns: layer_a,
    /// head_a, layer_b, head_b, kind, score, baseline_mean, baseline_std; one row per kind and pair
    /// of heads in different layers (layer_a < layer_b).
    pub struct CompositionScoresParams {
        /// Which compositions to score: "q" (head a writes what head b's queries read), "k" (what its
        /// keys read), "v" (what its values read).
        #[serde(default = "all_compositions")]
        pub kinds: Vec<Composition>,
        /// Monte Carlo samples of the random-matrix baseline (0: no baseline, the baseline columns
        /// are null; otherwise at least 2, for a standard deviation).
        #[serde(default = "default_baseline_samples")]
        pub baseline_samples: u32,
        /// Seed of the baseline's random matrices. The baseline depends only on this seed and the
        /// model's shapes, so the default is a fixed 0 (not the experiment's `seed`): tables of
        /// different experiments share it.
        #[serde(default)]
        pub seed: u64,
    }
}

/// Which input of the later head reads the earlier head's output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Composition {
    /// Q-composition: the later head's queries (`W_B = W_Q W_Kᵀ`).
    Q,
    /// K-composition: the later head's keys (`W_B = W_K W_Qᵀ`).
    K,
    /// V-composition: the later head's values (`W_B = W_V W_O`).
    V,
}

impl Composition {
    /// Every kind, in the default order.
    pub const ALL: [Composition; 3] = [Composition::Q, Composition::K, Composition::V];

    /// The value as written in the file and in the table's `kind` column.
    pub fn name(self) -> &'static str {
        match self {
            Composition::Q => "q",
            Composition::K => "k",
            Composition::V => "v",
        }
    }
}

impl fmt::Display for Composition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

fn all_compositions() -> Vec<Composition> {
    Composition::ALL.to_vec()
}

fn default_baseline_samples() -> u32 {
    200
}

impl AnalysisKind for CompositionScoresParams {
    fn reads_dataset(&self) -> bool {
        false
    }

    fn validate(&self, c: &mut Checker<'_, '_>) {
        c.distinct("kinds", &self.kinds);
        if self.baseline_samples == 1 {
            let full = c.full("baseline_samples");
            c.error(
                "baseline_samples",
                format!("`{full}` must be 0 (no baseline) or at least 2, found 1"),
            )
            .hint = Some("a standard deviation needs two samples; the default is 200".into());
        }
    }
}
