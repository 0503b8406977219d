//! `kind = "neuron_stats"`.

use circuitry_vocab::FeatureSite;

use super::AnalysisKind;
use super::neuron_top_contexts::{check_neuron_selection, default_top_k};
use crate::validate::Checker;

analysis_params! {
    /// Each neuron's activation statistics over the dataset, and how token-selective it is.
    ///
    /// Streams the moments (shifted sums in f64) and a top-k heap per neuron. Token selectivity
    /// reads the tokens at the neuron's top-k activating positions: the entropy of their
    /// distribution and the share of the most common one. Columns: layer, neuron, count, mean,
    /// std, min, max, skewness, kurtosis, frac_above, top_token_id, top_token, top_token_share,
    /// token_entropy, distinct_tokens.
    pub struct NeuronStatsParams {
        /// Whose features are neurons: "mlp_post" (the default), "mlp_pre", or a residual-stream
        /// hook ("resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out").
        #[serde(default)]
        pub site: FeatureSite,
        /// Layers whose neurons are studied (0-based). Default: every layer.
        pub layers: Option<Vec<u32>>,
        /// Neurons studied in every selected layer (0-based). Default: every neuron.
        pub neurons: Option<Vec<u32>>,
        /// Study this many neurons per layer, drawn at random (with `seed`) and sorted. Default:
        /// every neuron (or the `neurons` listed).
        #[schemars(range(min = 1))]
        pub sample: Option<u32>,
        /// `frac_above` is the fraction of tokens whose activation is above this value.
        #[serde(default)]
        pub threshold: f64,
        /// How many top-activating tokens token selectivity reads (> 0).
        #[schemars(range(min = 1))]
        #[serde(default = "default_top_k")]
        pub top_k: u32,
        /// Also count the BOS token at the start of a prompt.
        #[serde(default)]
        pub include_bos: bool,
        /// Seed of `sample`'s draw. Default: derived from the experiment's `seed` and the
        /// analysis's name.
        pub seed: Option<u64>,
    }
}

impl AnalysisKind for NeuronStatsParams {
    fn validate(&self, c: &mut Checker<'_, '_>) {
        check_neuron_selection(
            c,
            self.layers.as_deref(),
            self.neurons.as_deref(),
            self.sample,
        );
        c.positive("top_k", self.top_k);
        if !self.threshold.is_finite() {
            c.error("threshold", "`threshold` must be a finite number");
        }
    }

    fn resolve(&mut self, derived_seed: u64) {
        if self.sample.is_some() {
            self.seed.get_or_insert(derived_seed);
        }
    }
}
