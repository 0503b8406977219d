//! `kind = "effective_dimension"`.

use circuitry_vocab::FeatureSite;

use super::{AnalysisKind, yes};
use crate::validate::Checker;

analysis_params! {
    /// How many dimensions each layer's residual stream and each head's output really use: the
    /// PCA spectrum, participation ratio, components for 90% and 99% of the variance, and the
    /// TwoNN intrinsic dimension (Facco et al. 2017).
    ///
    /// The covariance is accumulated over every token of the dataset (f64, shifted sums), so
    /// memory does not grow with it; TwoNN reads a seeded reservoir sample of `twonn_points`
    /// tokens (duplicates dropped; a line through the origin fitted to the first 90% of the
    /// sorted neighbour ratios). A head's output (`attn.hook_result`) is computed from its
    /// `hook_z` and `W_O`, so its covariance is `W_O^T cov(z) W_O` (rank at most d_head). Main
    /// table columns: layer, head, hook, tokens, dimension, total_variance, participation_ratio,
    /// components_90, components_99, top_variance_share, twonn, twonn_points. The `spectrum`
    /// table: layer, head, hook, component, variance, share, cumulative_share.
    pub struct EffectiveDimensionParams {
        /// The residual-stream hook of every selected layer: "resid_post" (the default),
        /// "resid_pre", "resid_mid", "attn_out", "mlp_out" (or an MLP's "mlp_post"/"mlp_pre").
        #[serde(default = "resid_post")]
        pub site: FeatureSite,
        /// Layers studied (0-based). Default: every layer.
        pub layers: Option<Vec<u32>>,
        /// Also study each head's output (`attn.hook_result`) in the selected layers.
        #[serde(default = "yes")]
        pub head_outputs: bool,
        /// For `head_outputs`: the heads studied in every selected layer (0-based). Default: every
        /// head.
        pub heads: Option<Vec<u32>>,
        /// Tokens sampled for the TwoNN estimate (each a vector kept in memory per hook; its cost
        /// grows with the square); 0 skips TwoNN (its columns are then null). At least 3.
        #[serde(default = "default_twonn_points")]
        pub twonn_points: u32,
        /// Also count the BOS token at the start of a prompt (an attention sink whose residual
        /// stream is large and the same in every prompt).
        #[serde(default)]
        pub include_bos: bool,
        /// Seed of the TwoNN sample. Default: derived from the experiment's `seed` and the
        /// analysis's name.
        pub seed: Option<u64>,
    }
}

fn resid_post() -> FeatureSite {
    FeatureSite::ResidPost
}

fn default_twonn_points() -> u32 {
    1000
}

impl AnalysisKind for EffectiveDimensionParams {
    fn validate(&self, c: &mut Checker<'_, '_>) {
        c.filter("layers", self.layers.as_deref());
        c.filter("heads", self.heads.as_deref());
        if self.heads.is_some() && !self.head_outputs {
            c.error(
                "heads",
                "`heads` selects head outputs, but `head_outputs` is false",
            )
            .hint = Some("set head_outputs = true, or remove `heads`".into());
        }
        if self.twonn_points > 0 && self.twonn_points < 3 {
            c.error(
                "twonn_points",
                format!(
                    "`twonn_points` = {} is too few: TwoNN needs at least 3 points (0 skips it)",
                    self.twonn_points
                ),
            );
        }
        if self.twonn_points > 20_000 {
            c.error(
                "twonn_points",
                format!(
                    "`twonn_points` = {} is more than 20000 (TwoNN's cost grows with the square)",
                    self.twonn_points
                ),
            );
        }
    }

    fn resolve(&mut self, derived_seed: u64) {
        if self.twonn_points > 0 {
            self.seed.get_or_insert(derived_seed);
        }
    }
}
