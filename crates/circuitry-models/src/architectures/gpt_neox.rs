//! GPT-NeoX (`GPTNeoXForCausalLM`: Pythia, GPT-NeoX-20B): LayerNorm, rotary embeddings on the
//! first `rotary_pct` of each head's features, biases everywhere, GELU, a fused
//! `query_key_value` projection laid out head by head (`[q_h; k_h; v_h]` for each head `h`),
//! attention and MLP in parallel (`use_parallel_residual`, the default) or in sequence, and a
//! separate unembedding `embed_out`. `nn.Linear` weights are `[out, in]`, transposed to `x @ W`.
//! Also read from GGUF files (`general.architecture = gptneox`), whose fused projection llama.cpp's
//! converter has reordered to `[q; k; v]`.

use super::llama::{rope_scaling, validate_gguf, validate_json};
use circuitry_vocab::WeightDtype;

use super::{JsonConfig, Mapper};
use crate::config::{
    ActFn, Architecture, BlockNorms, ModelConfig, NormKind, Positional, QkNorm, RopeScaling,
};
use crate::error::LoadError;
use crate::loading::TensorSource;
use crate::loading::gguf::GgufFile;
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

/// Where a checkpoint format keeps each GPT-NeoX tensor.
struct NameScheme {
    embed: &'static str,
    final_norm: &'static str,
    lm_head: &'static str,
    /// Block prefix, e.g. `gpt_neox.layers.` or `blk.`.
    block: &'static str,
    /// The norms before attention and before the MLP.
    norms: [&'static str; 2],
    /// The fused query-key-value projection, the attention output, the MLP's in and out.
    qkv: &'static str,
    attn_out: &'static str,
    mlp: [&'static str; 2],
    /// `[q_h; k_h; v_h]` head by head (Hugging Face), or `[q; k; v]` (llama.cpp's converter
    /// reorders the rows).
    head_by_head: bool,
    ignored: &'static [&'static str],
}

const HF_NAMES: NameScheme = NameScheme {
    embed: "gpt_neox.embed_in.weight",
    final_norm: "gpt_neox.final_layer_norm",
    lm_head: "embed_out.weight",
    block: "gpt_neox.layers.",
    norms: ["input_layernorm", "post_attention_layernorm"],
    qkv: "attention.query_key_value",
    attn_out: "attention.dense",
    mlp: ["mlp.dense_h_to_4h", "mlp.dense_4h_to_h"],
    head_by_head: true,
    ignored: IGNORED,
};

const GGUF_NAMES: NameScheme = NameScheme {
    embed: "token_embd.weight",
    final_norm: "output_norm",
    lm_head: "output.weight",
    block: "blk.",
    norms: ["attn_norm", "ffn_norm"],
    qkv: "attn_qkv",
    attn_out: "attn_output",
    mlp: ["ffn_up", "ffn_down"],
    head_by_head: false,
    ignored: &[],
};

/// Maps a Hugging Face GPT-NeoX checkpoint to canonical weights.
pub(crate) fn load_weights(
    config: ModelConfig,
    source: &dyn TensorSource,
    dtype: WeightDtype,
) -> Result<Weights, LoadError> {
    map_weights(config, source, &HF_NAMES, dtype)
}

/// Maps a `gptneox` GGUF file to canonical weights.
pub(crate) fn load_gguf_weights(
    config: ModelConfig,
    source: &dyn TensorSource,
    dtype: WeightDtype,
) -> Result<Weights, LoadError> {
    map_weights(config, source, &GGUF_NAMES, dtype)
}

fn map_weights(
    config: ModelConfig,
    source: &dyn TensorSource,
    names: &NameScheme,
    dtype: WeightDtype,
) -> Result<Weights, LoadError> {
    let mut m = Mapper::new(source, dtype);
    let (d, v, mlp) = (config.d_model, config.d_vocab, config.d_mlp);
    let (h, dh) = (config.n_heads, config.d_head);
    let w_e = m.read(names.embed, &[v, d])?;
    for l in 0..config.n_layers {
        let n = |part: &str, kind: &str| format!("{}{l}.{part}.{kind}", names.block);
        let c = BlockNames::new(l);
        for (part, w, b) in [
            (names.norms[0], &c.ln1_w, &c.ln1_b),
            (names.norms[1], &c.ln2_w, &c.ln2_b),
        ] {
            let t = m.read(&n(part, "weight"), &[d])?;
            m.put(w, t);
            let t = m.read(&n(part, "bias"), &[d])?;
            m.put(b, t);
        }
        let qkv = m.read(&n(names.qkv, "weight"), &[3 * h * dh, d])?;
        let qkv_b = config
            .qkv_bias
            .then(|| m.read(&n(names.qkv, "bias"), &[3 * h * dh]))
            .transpose()?;
        let part = |fused: &HostTensor, i: usize| {
            if names.head_by_head {
                head_part(fused, h, dh, i)
            } else {
                fused.rows(i * h * dh, (i + 1) * h * dh)
            }
        };
        let [c_q, c_k, c_v] = c.qkv();
        for (i, (ours_w, ours_b)) in [c_q, c_k, c_v].into_iter().enumerate() {
            m.put(ours_w, part(&qkv, i).transposed());
            if let Some(b) = &qkv_b {
                let column = part(&HostTensor::new(vec![3 * h * dh, 1], b.data().to_vec()), i);
                m.put(ours_b, HostTensor::new(vec![h * dh], column.into_data()));
            }
        }
        let t = m.read(&n(names.attn_out, "weight"), &[d, h * dh])?;
        m.put(&c.w_o, t.transposed());
        if config.attn_out_bias {
            let t = m.read(&n(names.attn_out, "bias"), &[d])?;
            m.put(&c.b_o, t);
        }
        for (part, w, b, shape) in [
            (names.mlp[0], &c.w_in, &c.b_in, [mlp, d]),
            (names.mlp[1], &c.w_out, &c.b_out, [d, mlp]),
        ] {
            let t = m.read(&n(part, "weight"), &shape)?;
            m.put(w, t.transposed());
            let t = m.read(&n(part, "bias"), &[shape[0]])?;
            m.put(b, t);
        }
    }
    let t = m.read(&format!("{}.weight", names.final_norm), &[d])?;
    m.put(canonical::LN_FINAL_W, t);
    let t = m.read(&format!("{}.bias", names.final_norm), &[d])?;
    m.put(canonical::LN_FINAL_B, t);
    let w_u = m.unembedding(names.lm_head, &w_e, &config)?;
    m.put(canonical::W_E, w_e);
    m.put(canonical::W_U, w_u);
    m.finish(config, "gpt_neox", names.ignored)
}

/// The configuration of a `gptneox` GGUF file from its `gptneox.*` metadata (the keys llama.cpp's
/// `GPTNeoXModel` converter writes) and its tensor names (biases; no `output.weight` means tied
/// embeddings). The MLP's GELU is the exact one the Hugging Face checkpoints use (llama.cpp runs
/// the tanh approximation).
pub(crate) fn config_from_gguf(file: &GgufFile) -> Result<ModelConfig, LoadError> {
    let meta = file.metadata();
    let tensors = file.shapes();
    let has = |name: &str| tensors.contains_key(name);
    let d_model = meta.usize("gptneox.embedding_length")?;
    let n_heads = meta.usize("gptneox.attention.head_count")?;
    if n_heads == 0 || !d_model.is_multiple_of(n_heads) {
        return Err(meta.error(
            "gptneox.attention.head_count",
            format!(
                "the embedding length ({d_model}) must be a positive multiple of it ({n_heads})"
            ),
        ));
    }
    let d_head = d_model / n_heads;
    if let Some(kind) = meta
        .opt_str("gptneox.rope.scaling.type")?
        .filter(|k| *k != "none")
    {
        return Err(meta.error(
            "gptneox.rope.scaling.type",
            format!("rope scaling `{kind}` in GPT-NeoX GGUF files is not supported; load the Hugging Face checkpoint"),
        ));
    }
    let config = ModelConfig {
        architecture: Architecture::GptNeox,
        d_model,
        n_layers: meta.usize("gptneox.block_count")?,
        n_heads,
        n_kv_heads: n_heads,
        d_head,
        d_mlp: meta.usize("gptneox.feed_forward_length")?,
        d_vocab: match meta.opt_usize("gptneox.vocab_size")? {
            Some(v) => v,
            None => tensors
                .get("token_embd.weight")
                .map(|s| s[0])
                .ok_or_else(|| {
                    meta.error(
                        "gptneox.vocab_size",
                        "missing, and there is no `token_embd.weight`",
                    )
                })?,
        },
        n_ctx: meta.opt_usize("gptneox.context_length")?.unwrap_or(2048),
        norm: NormKind::LayerNorm,
        norm_eps: meta
            .opt_f64("gptneox.attention.layer_norm_epsilon")?
            .unwrap_or(1e-5),
        positional: Positional::Rotary {
            theta: meta.opt_f64("gptneox.rope.freq_base")?.unwrap_or(10000.0),
            dim: meta
                .opt_usize("gptneox.rope.dimension_count")?
                .unwrap_or(d_head / 4),
            scaling: RopeScaling::None,
            local_theta: None,
        },
        act_fn: ActFn::Gelu,
        gated_mlp: false,
        attn_only: false,
        qkv_bias: has("blk.0.attn_qkv.bias"),
        attn_out_bias: has("blk.0.attn_output.bias"),
        mlp_bias: true,
        unembed_bias: false,
        tied_embeddings: !has("output.weight"),
        bos_token_id: meta.opt_u32("tokenizer.ggml.bos_token_id")?,
        eos_token_id: meta.opt_u32("tokenizer.ggml.eos_token_id")?,
        pad_token_id: meta.opt_u32("tokenizer.ggml.padding_token_id")?,
        sliding_window: None,
        parallel_attn_mlp: meta
            .opt_bool("gptneox.use_parallel_residual")?
            .unwrap_or(true),
        block_norms: BlockNorms::Pre,
        qk_norm: QkNorm::None,
        attn_scale: None,
        attn_softcap: None,
        logit_softcap: None,
    };
    validate_gguf(
        meta,
        &config,
        "gptneox",
        &[("norm_eps", "attention.layer_norm_epsilon")],
    )?;
    Ok(config)
}

/// Part `i` (0 query, 1 key, 2 value) of a fused projection `[n_heads * 3 * d_head, in]` whose
/// rows hold, head by head, that head's query, key and value rows: `[n_heads * d_head, in]`.
fn head_part(fused: &HostTensor, n_heads: usize, d_head: usize, i: usize) -> HostTensor {
    let cols = fused.shape[1];
    let data = fused.data();
    let mut out = Vec::with_capacity(n_heads * d_head * cols);
    for head in 0..n_heads {
        let from = (head * 3 + i) * d_head * cols;
        out.extend_from_slice(&data[from..from + d_head * cols]);
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
        assert_eq!(*head_part(&fused, 2, 2, 0).data(), [0.0, 1.0, 6.0, 7.0]);
        assert_eq!(*head_part(&fused, 2, 2, 1).data(), [2.0, 3.0, 8.0, 9.0]);
        assert_eq!(*head_part(&fused, 2, 2, 2).data(), [4.0, 5.0, 10.0, 11.0]);
    }
}
