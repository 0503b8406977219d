//! `[train.NAME]`: training runs that write a model directory other sections can load.

use circuitry_models::{ActFn, Architecture, ModelConfig, NormKind, Positional};
use circuitry_spec::TrainSpec;

/// The configuration of the model a training run writes (GPT-2 family: LayerNorm, learned
/// positions; BOS is token 0 of the synthetic vocabulary).
pub fn model_config(spec: &TrainSpec) -> ModelConfig {
    ModelConfig {
        architecture: Architecture::Gpt2,
        d_model: spec.d_model as usize,
        n_layers: spec.n_layers as usize,
        n_heads: spec.n_heads as usize,
        n_kv_heads: spec.n_heads as usize,
        d_head: spec.d_head() as usize,
        d_mlp: spec.d_mlp() as usize,
        d_vocab: spec.d_vocab as usize,
        n_ctx: spec.n_ctx as usize,
        norm: NormKind::LayerNorm,
        norm_eps: 1e-5,
        positional: Positional::Learned,
        act_fn: match spec.act_fn {
            circuitry_spec::ActFn::GeluNew => ActFn::GeluTanh,
            circuitry_spec::ActFn::Gelu => ActFn::Gelu,
            circuitry_spec::ActFn::Relu => ActFn::Relu,
            circuitry_spec::ActFn::Silu => ActFn::Silu,
        },
        gated_mlp: false,
        attn_only: spec.attn_only,
        qkv_bias: true,
        attn_out_bias: true,
        mlp_bias: true,
        unembed_bias: false,
        tied_embeddings: false,
        bos_token_id: Some(0),
        eos_token_id: Some(0),
        pad_token_id: None,
    }
}

/// Runs training `name` of `experiment`, writing its model directory and curve table.
pub fn run(
    name: &str,
    _experiment: &circuitry_spec::Experiment,
    _out_dir: &std::path::Path,
    _progress: &crate::progress::Progress,
    _device: &circuitry_models::burn::prelude::Device,
) -> Result<(), crate::RunError> {
    Err(crate::RunError::Spec(format!(
        "train `{name}`: training runs are not wired into the runner yet"
    )))
}
