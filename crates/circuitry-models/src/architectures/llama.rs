//! Llama family (`LlamaForCausalLM`, and `MistralForCausalLM` / `Qwen2ForCausalLM` as
//! configuration variants): RMSNorm, rotary embeddings, SwiGLU MLP, grouped-query attention,
//! optional biases, tied or separate unembedding. Hugging Face `nn.Linear` weights are
//! `[out, in]` and are transposed to `x @ W`.

use super::{JsonConfig, Mapper};
use crate::config::{ActFn, Architecture, ModelConfig, NormKind, Positional};
use crate::error::LoadError;
use crate::loading::TensorSource;
use crate::weights::Weights;

/// Buffers some checkpoints carry that are not weights.
const IGNORED: &[&str] = &[".rotary_emb.inv_freq"];

pub(crate) fn config_from_json(cfg: &JsonConfig) -> Result<ModelConfig, LoadError> {
    let model_type = cfg.str("model_type").unwrap_or("llama");
    let d_model = cfg.usize("hidden_size")?;
    let n_heads = cfg.usize("num_attention_heads")?;
    let n_kv_heads = cfg.opt_usize("num_key_value_heads")?.unwrap_or(n_heads);
    let d_head = cfg.opt_usize("head_dim")?.unwrap_or(d_model / n_heads);
    // transformers >= 5 nests rope settings in `rope_parameters`; older configs have `rope_theta`
    // and `rope_scaling`.
    let rope = cfg.get("rope_parameters").or_else(|| cfg.get("rope_scaling"));
    let mut theta = cfg.opt_f64("rope_theta")?;
    if let Some(r) = rope {
        let kind = r
            .get("rope_type")
            .or_else(|| r.get("type"))
            .and_then(|v| v.as_str())
            .unwrap_or("default");
        if kind != "default" {
            return Err(cfg.unsupported(
                "rope_parameters",
                format!("rope type `{kind}` is not supported (only the default rotary embedding is)"),
            ));
        }
        if let Some(t) = r.get("rope_theta").and_then(|v| v.as_f64()) {
            theta = Some(t);
        }
    }
    let partial = cfg.opt_f64("partial_rotary_factor")?.unwrap_or(1.0);
    let rotary_dim = ((d_head as f64) * partial).round() as usize;
    let act_name = cfg.str("hidden_act").unwrap_or("silu");
    let act_fn = ActFn::from_hf_name(act_name)
        .ok_or_else(|| cfg.unsupported("hidden_act", format!("`{act_name}` is not supported")))?;
    // Qwen2 has biases on q/k/v only; Llama's `attention_bias` covers o_proj too.
    let (qkv_bias, attn_out_bias) = match model_type {
        "qwen2" => (true, false),
        _ => {
            let b = cfg.bool_or("attention_bias", false)?;
            (b, b)
        }
    };
    let config = ModelConfig {
        architecture: Architecture::Llama,
        d_model,
        n_layers: cfg.usize("num_hidden_layers")?,
        n_heads,
        n_kv_heads,
        d_head,
        d_mlp: cfg.usize("intermediate_size")?,
        d_vocab: cfg.usize("vocab_size")?,
        n_ctx: cfg.opt_usize("max_position_embeddings")?.unwrap_or(2048),
        norm: NormKind::RmsNorm,
        norm_eps: cfg.opt_f64("rms_norm_eps")?.unwrap_or(1e-6),
        positional: Positional::Rotary {
            theta: theta.unwrap_or(10000.0),
            dim: rotary_dim,
        },
        act_fn,
        gated_mlp: true,
        attn_only: false,
        qkv_bias,
        attn_out_bias,
        mlp_bias: cfg.bool_or("mlp_bias", false)?,
        unembed_bias: false,
        tied_embeddings: cfg.bool_or("tie_word_embeddings", false)?,
        bos_token_id: cfg.opt_u32("bos_token_id")?,
        eos_token_id: cfg.opt_u32("eos_token_id")?,
        pad_token_id: cfg.opt_u32("pad_token_id")?,
    };
    config
        .validate()
        .map_err(|m| cfg.unsupported("num_attention_heads", m))?;
    Ok(config)
}

pub(crate) fn load_weights(config: ModelConfig, source: &dyn TensorSource) -> Result<Weights, LoadError> {
    let mut m = Mapper::new(source);
    let (d, v, mlp) = (config.d_model, config.d_vocab, config.d_mlp);
    let qd = config.n_heads * config.d_head;
    let kvd = config.n_kv_heads * config.d_head;
    let w_e = m.read("model.embed_tokens.weight", &[v, d])?;
    for l in 0..config.n_layers {
        let h = |s: &str| format!("model.layers.{l}.{s}");
        let c = |s: &str| format!("blocks.{l}.{s}");
        let t = m.read(&h("input_layernorm.weight"), &[d])?;
        m.put(c("ln1.w"), t);
        for (hf, ours, out_dim) in [("q_proj", "Q", qd), ("k_proj", "K", kvd), ("v_proj", "V", kvd)] {
            let t = m.read(&h(&format!("self_attn.{hf}.weight")), &[out_dim, d])?;
            m.put(c(&format!("attn.W_{ours}")), t.transposed());
            if config.qkv_bias {
                let t = m.read(&h(&format!("self_attn.{hf}.bias")), &[out_dim])?;
                m.put(c(&format!("attn.b_{ours}")), t);
            }
        }
        let t = m.read(&h("self_attn.o_proj.weight"), &[d, qd])?;
        m.put(c("attn.W_O"), t.transposed());
        if config.attn_out_bias {
            let t = m.read(&h("self_attn.o_proj.bias"), &[d])?;
            m.put(c("attn.b_O"), t);
        }
        let t = m.read(&h("post_attention_layernorm.weight"), &[d])?;
        m.put(c("ln2.w"), t);
        for (hf, ours, shape) in [
            ("gate_proj", "gate", [mlp, d]),
            ("up_proj", "in", [mlp, d]),
            ("down_proj", "out", [d, mlp]),
        ] {
            let t = m.read(&h(&format!("mlp.{hf}.weight")), &shape)?;
            m.put(c(&format!("mlp.W_{ours}")), t.transposed());
            if config.mlp_bias {
                let t = m.read(&h(&format!("mlp.{hf}.bias")), &[shape[0]])?;
                m.put(c(&format!("mlp.b_{ours}")), t);
            }
        }
    }
    let t = m.read("model.norm.weight", &[d])?;
    m.put("ln_final.w", t);
    let w_u = if !config.tied_embeddings && m.has("lm_head.weight") {
        m.read("lm_head.weight", &[v, d])?.transposed()
    } else {
        w_e.transposed()
    };
    m.put("embed.W_E", w_e);
    m.put("unembed.W_U", w_u);
    m.finish(config, "llama", IGNORED)
}
