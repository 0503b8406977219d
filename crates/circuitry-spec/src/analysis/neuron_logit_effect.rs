//! `kind = "neuron_logit_effect"`.

use super::AnalysisKind;
use super::neuron_top_contexts::check_neuron_selection;
use crate::validate::Checker;

analysis_params! {
    /// Each MLP neuron's direct effect on the logits, from the weights alone: its output row
    /// `W_out[n]` through the final norm's weights (centred first under LayerNorm, as direct
    /// logit attribution does; the per-token scale is left out) and the unembedding.
    ///
    /// Columns: layer, neuron, kind ("top" or "bottom"), rank, token_id, token, effect (the logit
    /// added per unit of activation), and effect_std (the spread of the neuron's effect over the
    /// vocabulary, for comparing neurons).
    pub struct NeuronLogitEffectParams {
        /// Layers whose neurons are read (0-based). Default: every layer.
        pub layers: Option<Vec<u32>>,
        /// Neurons read in every selected layer (0-based). Default: every neuron (a product with
        /// the whole unembedding per neuron: name or sample a few on large models).
        pub neurons: Option<Vec<u32>>,
        /// Read this many neurons per layer, drawn at random (with `seed`) and sorted.
        #[schemars(range(min = 1))]
        pub sample: Option<u32>,
        /// Tokens reported per neuron at each end: the k it promotes most ("top") and the k it
        /// suppresses most ("bottom") (> 0).
        #[schemars(range(min = 1))]
        #[serde(default = "default_top_k")]
        pub top_k: u32,
        /// Seed of `sample`'s draw. Default: derived from the experiment's `seed` and the
        /// analysis's name.
        pub seed: Option<u64>,
    }
}

fn default_top_k() -> u32 {
    10
}

impl AnalysisKind for NeuronLogitEffectParams {
    fn validate(&self, c: &mut Checker<'_, '_>) {
        check_neuron_selection(
            c,
            self.layers.as_deref(),
            self.neurons.as_deref(),
            self.sample,
        );
        c.positive("top_k", self.top_k);
    }

    fn reads_dataset(&self) -> bool {
        false
    }

    fn resolve(&mut self, derived_seed: u64) {
        if self.sample.is_some() {
            self.seed.get_or_insert(derived_seed);
        }
    }
}
