//! `neuron_logit_effect`: each MLP neuron's direct effect on the logits from the weights alone,
//! `W_out[n]` through the final norm's weights and the unembedding, with the tokens it promotes
//! and suppresses most.

use circuitry_models::burn::prelude::*;
use circuitry_models::{Transformer, host_ints, host_values};
use circuitry_spec::NeuronLogitEffectParams;
use circuitry_vocab::FeatureSite;

use super::prelude::*;
use super::weights_only::{HostWeights, WeightsOnly};
use crate::neurons::{FeatureSelection, select_features};

crate::table_row! {
    pub struct NeuronLogitEffectRow {
        layer = "Layer of the neuron.",
        neuron: i32 = "Index of the neuron in `mlp.hook_post`.",
        kind: &'static str = "`top` (tokens the neuron promotes most) or `bottom` (suppresses most).",
        rank: u32 = "Rank of the token among this kind (0 = largest effect).",
        token_id: u32 = "Vocabulary id of the token.",
        token = "Text of the token.",
        effect: f32 = "Logit added to the token per unit of the neuron's activation (before the final norm's per-token scale).",
        effect_std: f32 = "Standard deviation of the neuron's effect over the whole vocabulary (population), to compare neurons.",
    }
}

pub struct NeuronLogitEffect {
    top_k: usize,
    selection: FeatureSelection,
}

impl Kind for NeuronLogitEffect {
    type Params = NeuronLogitEffectParams;
    const TABLES: &'static [TableDecl] = &[TableDecl::main::<NeuronLogitEffectRow>()];

    fn build(params: Self::Params, cx: BuildContext) -> Result<Self, AnalysisError> {
        super::check_linear_paths(cx.config, false, true, true)?;
        Ok(NeuronLogitEffect {
            top_k: (params.top_k as usize).min(cx.config.d_vocab),
            selection: select_features(
                cx.config,
                FeatureSite::MlpPost,
                params.layers.as_deref(),
                params.neurons.as_deref(),
                params.sample,
                params.seed,
            )?,
        })
    }
}

/// The logits `[n, d_vocab]` that unit activations of `neurons` of block `layer` add directly:
/// each output row through the final norm's centring (LayerNorm) and weight, and `W_U`.
pub fn neuron_logits(model: &Transformer, layer: usize, neurons: &[usize]) -> Option<Tensor<2>> {
    let mlp = model.blocks()[layer].mlp()?;
    let device = model.device();
    let index: Vec<i64> = neurons.iter().map(|&n| n as i64).collect();
    let index = Tensor::<1, Int>::from_data(TensorData::new(index, [neurons.len()]), &device);
    let mut rows = mlp.w_out().select(0, index); // [n, d_model]
    let norm = model.ln_final();
    if norm.kind().centers() {
        rows = rows.clone() - rows.mean_dim(1);
    }
    if let Some(w) = norm.w() {
        rows = rows * w.unsqueeze::<2>();
    }
    Some(rows.matmul(model.w_u()))
}

// Computed on the device: the host copies of `HostWeights` are never made.
impl WeightsOnly for NeuronLogitEffect {
    fn write(
        &mut self,
        _: &HostWeights,
        model: &ModelContext,
        sink: &mut dyn TableSink,
    ) -> Result<(), AnalysisError> {
        // Neurons per product with the unembedding: bounds the [n, d_vocab] logits in memory.
        const CHUNK: usize = 256;
        for (layer, features) in &self.selection {
            let mut rows = Rows::<NeuronLogitEffectRow>::new();
            for chunk in features.chunks(CHUNK) {
                let logits = neuron_logits(model.model, *layer, chunk)
                    .ok_or_else(|| AnalysisError::new("internal error: a layer without MLP"))?;
                let std = host_values(&logits.clone().var_bias(1).sqrt());
                let k = self.top_k;
                let ends: Vec<(&'static str, f32, Vec<f32>, Vec<i64>)> =
                    [("top", 1.0f32), ("bottom", -1.0)]
                        .into_iter()
                        .map(|(kind, sign)| {
                            let (values, ids) = (logits.clone() * sign).topk_with_indices(k, 1);
                            (kind, sign, host_values(&values), host_ints(&ids))
                        })
                        .collect();
                for (i, &neuron) in chunk.iter().enumerate() {
                    for (kind, sign, values, ids) in &ends {
                        for rank in 0..k {
                            let id = ids[i * k + rank] as u32;
                            rows.push(NeuronLogitEffectRow {
                                layer: *layer as i32,
                                neuron: neuron as i32,
                                kind,
                                rank: rank as u32,
                                token_id: id,
                                token: model.token_text(id),
                                effect: sign * values[i * k + rank],
                                effect_std: std[i],
                            });
                        }
                    }
                }
            }
            emit(sink, None, rows)?;
        }
        Ok(())
    }
}
