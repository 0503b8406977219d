//! GPT-NeoX (`GPTNeoXForCausalLM`: Pythia, GPT-NeoX-20B): LayerNorm, rotary embeddings on the
//! first `rotary_pct` of each head's features, biases everywhere, GELU, a fused
//! `query_key_value` projection laid out head by head (`[q_h; k_h; v_h]` for each head `h`),
//! attention and MLP in parallel (`use_parallel_residual`, the default) or in sequence, and a
//! separate unembedding `embed_out`. `nn.Linear` weights are `[out, in]`, transposed to `x @ W`.

use super::llama::{rope_scaling, validate_json};
use super::{JsonConfig, Mapper};
use crate::config::{
    ActFn, Architecture, BlockNorms, ModelConfig, NormKind, Positional, QkNorm, RopeScaling,
};
use crate::error::LoadError;
use crate::loading::TensorSource;
use crate::weights::{BlockNames, HostTensor, Weights, names as canonical};

/// Buffers some checkpoints carry that are not weights (the Pythia checkpoints on the hub
/// carry their causal mask and rotary frequencies).
const IGNORED: &[&str] = &[
    ".attention.bias",
    ".attention.masked_bias",
    ".rotary_emb.inv_freq",
];

pub(crate) fn config_from_json(cfg: &JsonConfig) -> Result<ModelConfig, LoadError> {
    let d_model = cfg.usize("hidden_size")?;
    let n_heads = cfg.usize("num_attention_heads")?;
    if n_heads == 0 || !d_model.is_multiple_of(n_heads) {
        return Err(cfg.unsupported(
            "num_attention_heads",
            format!("hidden_size ({d_model}) must be a positive multiple of it ({n_heads})"),
        ));
    }
    let d_head = d_model / n_heads;
    let n_ctx = cfg.opt_usize("max_position_embeddings")?.unwrap_or(2048);
    // Hub configs spell these `rotary_pct` and `rotary_emb_base`; transformers also writes
    // `partial_rotary_factor` and `rope_theta` with the same values.
    let (pct_key, pct) = match cfg.opt_f64("rotary_pct")? {
        Some(p) => ("rotary_pct", p),
        None => (
            "partial_rotary_factor",
            cfg.opt_f64("partial_rotary_factor")?.unwrap_or(0.25),
        ),
    };
    let (theta_key, theta) = match cfg.opt_f64("rotary_emb_base")? {
        Some(t) => ("rotary_emb_base", t),
        None => ("rope_theta", cfg.opt_f64("rope_theta")?.unwrap_or(10000.0)),
    };
    let scaling = match cfg.get("rope_scaling") {
        Some(r) => rope_scaling(cfg, "rope_scaling", r, n_ctx)?,
        None => RopeScaling::None,
    };
    let act_name = cfg.str("hidden_act").unwrap_or("gelu");
    let act_fn = ActFn::from_hf_name(act_name)
        .ok_or_else(|| cfg.unsupported("hidden_act", format!("`{act_name}` is not supported")))?;
    let bias = cfg.bool_or("attention_bias", true)?;
    let config = ModelConfig {
        architecture: Architecture::GptNeox,
        d_model,
        n_layers: cfg.usize("num_hidden_layers")?,
        n_heads,
        n_kv_heads: n_heads,
        d_head,
        d_mlp: cfg.usize("intermediate_size")?,
        d_vocab: cfg.usize("vocab_size")?,
        n_ctx,
        norm: NormKind::LayerNorm,
        norm_eps: cfg.opt_f64("layer_norm_eps")?.unwrap_or(1e-5),
        positional: Positional::Rotary {
            theta,
            // Truncated, as transformers computes `int(head_size * rotary_pct)`.
            dim: ((d_head as f64) * pct) as usize,
            scaling,
            local_theta: None,
        },
        act_fn,
        gated_mlp: false,
        attn_only: false,
        qkv_bias: bias,
        attn_out_bias: bias,
        mlp_bias: true,
        unembed_bias: false,
        tied_embeddings: cfg.bool_or("tie_word_embeddings", false)?,
        bos_token_id: cfg.opt_u32("bos_token_id")?,
        eos_token_id: cfg.opt_u32("eos_token_id")?,
        pad_token_id: cfg.opt_u32("pad_token_id")?,
        sliding_window: None,
        parallel_attn_mlp: cfg.bool_or("use_parallel_residual", true)?,
        block_norms: BlockNorms::Pre,
        qk_norm: QkNorm::None,
        attn_scale: None,
        attn_softcap: None,
        logit_softcap: None,
    };
    validate_json(
        cfg,
        &config,
        &[
            ("n_kv_heads", "num_attention_heads"),
            ("d_head", "num_attention_heads"),
            ("norm_eps", "layer_norm_eps"),
            ("rotary_dim", pct_key),
            ("rotary_theta", theta_key),
        ],
    )?;
    Ok(config)
}

/// Maps a Hugging Face GPT-NeoX checkpoint to canonical weights.
pub(crate) fn load_weights(
    config: ModelConfig,
    source: &dyn TensorSource,
) -> Result<Weights, LoadError> {
    let mut m = Mapper::new(source);
    let (d, v, mlp) = (config.d_model, config.d_vocab, config.d_mlp);
    let (h, dh) = (config.n_heads, config.d_head);
    let w_e = m.read("gpt_neox.embed_in.weight", &[v, d])?;
    for l in 0..config.n_layers {
        let n = |s: &str| format!("gpt_neox.layers.{l}.{s}");
        let c = BlockNames::new(l);
        for (part, w, b) in [
            ("input_layernorm", &c.ln1_w, &c.ln1_b),
            ("post_attention_layernorm", &c.ln2_w, &c.ln2_b),
        ] {
            let t = m.read(&n(&format!("{part}.weight")), &[d])?;
            m.put(w, t);
            let t = m.read(&n(&format!("{part}.bias")), &[d])?;
            m.put(b, t);
        }
        let qkv = m.read(&n("attention.query_key_value.weight"), &[3 * h * dh, d])?;
        let qkv_b = config
            .qkv_bias
            .then(|| m.read(&n("attention.query_key_value.bias"), &[3 * h * dh]))
            .transpose()?;
        let [c_q, c_k, c_v] = c.qkv();
        for (i, (ours_w, ours_b)) in [c_q, c_k, c_v].into_iter().enumerate() {
            m.put(ours_w, head_part(&qkv, h, dh, i).transposed());
            if let Some(b) = &qkv_b {
                let part = head_part(
                    &HostTensor::new(vec![3 * h * dh, 1], b.data.clone()),
                    h,
                    dh,
                    i,
                );
                m.put(ours_b, HostTensor::new(vec![h * dh], part.data));
            }
        }
        let t = m.read(&n("attention.dense.weight"), &[d, h * dh])?;
        m.put(&c.w_o, t.transposed());
        if config.attn_out_bias {
            let t = m.read(&n("attention.dense.bias"), &[d])?;
            m.put(&c.b_o, t);
        }
        for (part, w, b, shape) in [
            ("mlp.dense_h_to_4h", &c.w_in, &c.b_in, [mlp, d]),
            ("mlp.dense_4h_to_h", &c.w_out, &c.b_out, [d, mlp]),
        ] {
            let t = m.read(&n(&format!("{part}.weight")), &shape)?;
            m.put(w, t.transposed());
            let t = m.read(&n(&format!("{part}.bias")), &[shape[0]])?;
            m.put(b, t);
        }
    }
    let t = m.read("gpt_neox.final_layer_norm.weight", &[d])?;
    m.put(canonical::LN_FINAL_W, t);
    let t = m.read("gpt_neox.final_layer_norm.bias", &[d])?;
    m.put(canonical::LN_FINAL_B, t);
    let w_u = m.unembedding("embed_out.weight", &w_e, &config)?;
    m.put(canonical::W_E, w_e);
    m.put(canonical::W_U, w_u);
    m.finish(config, "gpt_neox", IGNORED)
}

/// Part `i` (0 query, 1 key, 2 value) of a fused projection `[n_heads * 3 * d_head, in]` whose
/// rows hold, head by head, that head's query, key and value rows: `[n_heads * d_head, in]`.
fn head_part(fused: &HostTensor, n_heads: usize, d_head: usize, i: usize) -> HostTensor {
    let cols = fused.shape[1];
    let mut out = Vec::with_capacity(n_heads * d_head * cols);
    for head in 0..n_heads {
        let from = (head * 3 + i) * d_head * cols;
        out.extend_from_slice(&fused.data[from..from + d_head * cols]);
    }
    HostTensor::new(vec![n_heads * d_head, cols], out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fused_rows_split_head_by_head() {
        // 2 heads of 2 features, 1 input: rows q0 q0 k0 k0 v0 v0 q1 q1 k1 k1 v1 v1.
        let fused = HostTensor::new(vec![12, 1], (0..12).map(|x| x as f32).collect());
        assert_eq!(head_part(&fused, 2, 2, 0).data, [0.0, 1.0, 6.0, 7.0]);
        assert_eq!(head_part(&fused, 2, 2, 1).data, [2.0, 3.0, 8.0, 9.0]);
        assert_eq!(head_part(&fused, 2, 2, 2).data, [4.0, 5.0, 10.0, 11.0]);
    }
}
