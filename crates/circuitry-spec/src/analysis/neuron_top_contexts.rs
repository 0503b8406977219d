//! `kind = "neuron_top_contexts"`, and the neuron selection the neuron kinds share.

use circuitry_vocab::FeatureSite;

use super::AnalysisKind;
use crate::validate::Checker;

analysis_params! {
    /// What each neuron responds to: its top-k (and optionally bottom-k) activating tokens over
    /// the whole dataset, each with its context.
    ///
    /// Streams every batch through a bounded heap per neuron, so memory does not grow with the
    /// dataset. Ties are ordered by prompt, then position. Columns: layer, neuron, kind ("top" or
    /// "bottom"), rank, activation, prompt, position, token_id, token, context_before,
    /// context_after, document, offset.
    pub struct NeuronTopContextsParams {
        /// Whose features are neurons: "mlp_post" (the MLP's neurons after the activation, the
        /// default), "mlp_pre", or a residual-stream hook ("resid_pre", "resid_mid",
        /// "resid_post", "attn_out", "mlp_out") whose dimensions are then the "neurons".
        #[serde(default)]
        pub site: FeatureSite,
        /// Layers whose neurons are studied (0-based). Default: every layer.
        pub layers: Option<Vec<u32>>,
        /// Neurons studied in every selected layer (0-based). Default: every neuron, or a sample
        /// (`sample`).
        pub neurons: Option<Vec<u32>>,
        /// Study this many neurons per layer, drawn at random (with `seed`) and sorted. Default:
        /// every neuron (or the `neurons` listed).
        #[schemars(range(min = 1))]
        pub sample: Option<u32>,
        /// The most activating tokens kept per neuron (> 0).
        #[schemars(range(min = 1))]
        #[serde(default = "default_top_k")]
        pub top_k: u32,
        /// Also keep the k least activating tokens per neuron (0: none).
        #[serde(default)]
        pub bottom_k: u32,
        /// Tokens of context shown before the activating token.
        #[serde(default = "default_context_before")]
        pub context_before: u32,
        /// Tokens of context shown after the activating token.
        #[serde(default = "default_context_after")]
        pub context_after: u32,
        /// Also count the BOS token at the start of a prompt (its activations are often extreme
        /// and say nothing about the text).
        #[serde(default)]
        pub include_bos: bool,
        /// Seed of `sample`'s draw. Default: derived from the experiment's `seed` and the
        /// analysis's name.
        pub seed: Option<u64>,
    }
}

pub(crate) fn default_top_k() -> u32 {
    20
}

fn default_context_before() -> u32 {
    12
}

fn default_context_after() -> u32 {
    4
}

impl AnalysisKind for NeuronTopContextsParams {
    fn validate(&self, c: &mut Checker<'_, '_>) {
        check_neuron_selection(
            c,
            self.layers.as_deref(),
            self.neurons.as_deref(),
            self.sample,
        );
        c.positive("top_k", self.top_k);
    }

    fn resolve(&mut self, derived_seed: u64) {
        if self.sample.is_some() {
            self.seed.get_or_insert(derived_seed);
        }
    }
}

/// The checks of the `layers`, `neurons` and `sample` keys every neuron kind has.
pub(crate) fn check_neuron_selection(
    c: &mut Checker<'_, '_>,
    layers: Option<&[u32]>,
    neurons: Option<&[u32]>,
    sample: Option<u32>,
) {
    c.filter("layers", layers);
    c.filter("neurons", neurons);
    if let Some(n) = sample {
        c.positive("sample", n);
        if neurons.is_some() {
            c.error("sample", "give either `neurons` or `sample`, not both")
                .hint =
                Some("`neurons` lists the neurons; `sample` draws that many at random".into());
        }
    }
}
