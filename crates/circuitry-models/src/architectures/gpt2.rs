//! GPT-2 (`GPT2LMHeadModel`): LayerNorm, learned absolute positions, fused QKV with biases,
//! GELU, tied or separate unembedding. Hugging Face stores GPT-2's linear maps as `Conv1D`,
//! already `[in, out]`: they are used as they are, never transposed.

use std::collections::BTreeMap;

use serde_json::json;

use circuitry_vocab::WeightDtype;

use super::{JsonConfig, Mapper};
use crate::config::{ActFn, Architecture, BlockNorms, ModelConfig, NormKind, Positional, QkNorm};
use crate::error::LoadError;
use crate::loading::TensorSource;
use crate::weights::{BlockNames, HostTensor, Weights, names};

/// Buffers some checkpoints carry that are not weights.
const IGNORED: &[&str] = &[".attn.bias", ".attn.masked_bias"];

pub(crate) fn config_from_json(cfg: &JsonConfig) -> Result<ModelConfig, LoadError> {
    let d_model = cfg.usize("n_embd")?;
    let n_heads = cfg.usize("n_head")?;
    if n_heads == 0 {
        return Err(cfg.unsupported("n_head", "must be positive, found 0"));
    }
    if cfg.bool_or("scale_attn_by_inverse_layer_idx", false)? {
        return Err(cfg.unsupported("scale_attn_by_inverse_layer_idx", "true is not supported"));
    }
    if !cfg.bool_or("scale_attn_weights", true)? {
        return Err(cfg.unsupported("scale_attn_weights", "false is not supported"));
    }
    let act_name = cfg.str("activation_function").unwrap_or("gelu_new");
    let act_fn = ActFn::from_hf_name(act_name).ok_or_else(|| {
        cfg.unsupported(
            "activation_function",
            format!("`{act_name}` is not supported"),
        )
    })?;
    if d_model % n_heads != 0 {
        return Err(cfg.unsupported(
            "n_head",
            format!("n_embd ({d_model}) is not a multiple of n_head ({n_heads})"),
        ));
    }
    let config = ModelConfig {
        architecture: Architecture::Gpt2,
        d_model,
        n_layers: cfg.usize("n_layer")?,
        n_heads,
        n_kv_heads: n_heads,
        d_head: d_model / n_heads,
        d_mlp: cfg.opt_usize("n_inner")?.unwrap_or(4 * d_model),
        d_vocab: cfg.usize("vocab_size")?,
        n_ctx: cfg.usize("n_positions")?,
        norm: NormKind::LayerNorm,
        norm_eps: cfg.opt_f64("layer_norm_epsilon")?.unwrap_or(1e-5),
        positional: Positional::Learned,
        act_fn,
        gated_mlp: false,
        // circuitry's own extension key (Hugging Face has no attention-only GPT-2).
        attn_only: cfg.bool_or("attn_only", false)?,
        qkv_bias: true,
        attn_out_bias: true,
        mlp_bias: true,
        unembed_bias: false,
        tied_embeddings: cfg.bool_or("tie_word_embeddings", true)?,
        bos_token_id: cfg.opt_u32("bos_token_id")?,
        eos_token_id: cfg.opt_u32("eos_token_id")?,
        pad_token_id: cfg.opt_u32("pad_token_id")?,
        sliding_window: None,
        parallel_attn_mlp: false,
        block_norms: BlockNorms::Pre,
        qk_norm: QkNorm::None,
        attn_scale: None,
        attn_softcap: None,
        logit_softcap: None,
    };
    config.validate().map_err(|issue| {
        let key = match issue.field {
            "d_model" => "n_embd",
            "n_layers" => "n_layer",
            "n_heads" | "n_kv_heads" | "d_head" => "n_head",
            "d_mlp" => "n_inner",
            "d_vocab" => "vocab_size",
            "n_ctx" => "n_positions",
            "norm_eps" => "layer_norm_epsilon",
            _ => issue.field,
        };
        cfg.unsupported(key, issue.message)
    })?;
    Ok(config)
}

pub(crate) fn load_weights(
    config: ModelConfig,
    source: &dyn TensorSource,
    dtype: WeightDtype,
) -> Result<Weights, LoadError> {
    let mut m = Mapper::new(source, dtype);
    let prefix = if m.has("transformer.wte.weight") {
        "transformer."
    } else {
        ""
    };
    let n = |s: &str| format!("{prefix}{s}");
    let (d, v, mlp) = (config.d_model, config.d_vocab, config.d_mlp);
    let w_e = m.read(&n("wte.weight"), &[v, d])?;
    let w_pos = m.read(&n("wpe.weight"), &[config.n_ctx, d])?;
    for l in 0..config.n_layers {
        let h = |s: &str| n(&format!("h.{l}.{s}"));
        let c = BlockNames::new(l);
        let t = m.read(&h("ln_1.weight"), &[d])?;
        m.put(&c.ln1_w, t);
        let t = m.read(&h("ln_1.bias"), &[d])?;
        m.put(&c.ln1_b, t);
        let qkv = m.read(&h("attn.c_attn.weight"), &[d, 3 * d])?;
        let qkv_b = m.read(&h("attn.c_attn.bias"), &[3 * d])?;
        for (i, (w, b)) in c.qkv().into_iter().enumerate() {
            m.put(w, qkv.columns(i * d, (i + 1) * d));
            let bias = qkv_b.data()[i * d..(i + 1) * d].to_vec();
            m.put(b, HostTensor::new(vec![d], bias));
        }
        let t = m.read(&h("attn.c_proj.weight"), &[d, d])?;
        m.put(&c.w_o, t);
        let t = m.read(&h("attn.c_proj.bias"), &[d])?;
        m.put(&c.b_o, t);
        if config.attn_only {
            continue;
        }
        let t = m.read(&h("ln_2.weight"), &[d])?;
        m.put(&c.ln2_w, t);
        let t = m.read(&h("ln_2.bias"), &[d])?;
        m.put(&c.ln2_b, t);
        let t = m.read(&h("mlp.c_fc.weight"), &[d, mlp])?;
        m.put(&c.w_in, t);
        let t = m.read(&h("mlp.c_fc.bias"), &[mlp])?;
        m.put(&c.b_in, t);
        let t = m.read(&h("mlp.c_proj.weight"), &[mlp, d])?;
        m.put(&c.w_out, t);
        let t = m.read(&h("mlp.c_proj.bias"), &[d])?;
        m.put(&c.b_out, t);
    }
    let t = m.read(&n("ln_f.weight"), &[d])?;
    m.put(names::LN_FINAL_W, t);
    let t = m.read(&n("ln_f.bias"), &[d])?;
    m.put(names::LN_FINAL_B, t);
    let w_u = m.unembedding("lm_head.weight", &w_e, &config)?;
    m.put(names::W_E, w_e);
    m.put(names::W_POS, w_pos);
    m.put(names::W_U, w_u);
    m.finish(config, "gpt2", IGNORED)
}

/// The Hugging Face `config.json` for a GPT-2-family configuration.
pub fn config_to_json(cfg: &ModelConfig) -> serde_json::Value {
    json!({
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "n_embd": cfg.d_model,
        "n_layer": cfg.n_layers,
        "n_head": cfg.n_heads,
        "n_inner": cfg.d_mlp,
        "n_positions": cfg.n_ctx,
        "vocab_size": cfg.d_vocab,
        "activation_function": cfg.act_fn.hf_name(),
        "layer_norm_epsilon": cfg.norm_eps,
        "resid_pdrop": 0.0,
        "embd_pdrop": 0.0,
        "attn_pdrop": 0.0,
        "tie_word_embeddings": false,
        "bos_token_id": cfg.bos_token_id,
        "eos_token_id": cfg.eos_token_id,
        "pad_token_id": cfg.pad_token_id,
        "dtype": "float32",
        "attn_only": cfg.attn_only,
    })
}

/// Canonical weights -> Hugging Face GPT-2 tensor names (the inverse of [`load_weights`]).
pub fn to_hf_tensors(weights: &Weights) -> Result<BTreeMap<String, HostTensor>, String> {
    let cfg = &weights.config;
    if cfg.architecture != Architecture::Gpt2 || cfg.norm != NormKind::LayerNorm {
        return Err(
            "only unprocessed GPT-2-family weights can be written as a GPT-2 checkpoint".into(),
        );
    }
    let get = |k: &str| {
        weights
            .tensors
            .get(k)
            .cloned()
            .ok_or_else(|| format!("missing `{k}`"))
    };
    let mut out = BTreeMap::new();
    out.insert("transformer.wte.weight".to_string(), get(names::W_E)?);
    out.insert("transformer.wpe.weight".to_string(), get(names::W_POS)?);
    let d = cfg.d_model;
    for l in 0..cfg.n_layers {
        let c = BlockNames::new(l);
        let h = |s: &str| format!("transformer.h.{l}.{s}");
        out.insert(h("ln_1.weight"), get(&c.ln1_w)?);
        out.insert(h("ln_1.bias"), get(&c.ln1_b)?);
        let (q, k, v) = (get(&c.w_q)?, get(&c.w_k)?, get(&c.w_v)?);
        let mut fused = Vec::with_capacity(d * 3 * d);
        let (q, k, v) = (q.data(), k.data(), v.data());
        for i in 0..d {
            for w in [&q, &k, &v] {
                fused.extend_from_slice(&w[i * d..(i + 1) * d]);
            }
        }
        out.insert(
            h("attn.c_attn.weight"),
            HostTensor::new(vec![d, 3 * d], fused),
        );
        let mut fused_b = Vec::with_capacity(3 * d);
        for (_, b) in c.qkv() {
            fused_b.extend_from_slice(&get(b)?.data());
        }
        out.insert(h("attn.c_attn.bias"), HostTensor::new(vec![3 * d], fused_b));
        out.insert(h("attn.c_proj.weight"), get(&c.w_o)?);
        out.insert(h("attn.c_proj.bias"), get(&c.b_o)?);
        if cfg.attn_only {
            continue;
        }
        out.insert(h("ln_2.weight"), get(&c.ln2_w)?);
        out.insert(h("ln_2.bias"), get(&c.ln2_b)?);
        out.insert(h("mlp.c_fc.weight"), get(&c.w_in)?);
        out.insert(h("mlp.c_fc.bias"), get(&c.b_in)?);
        out.insert(h("mlp.c_proj.weight"), get(&c.w_out)?);
        out.insert(h("mlp.c_proj.bias"), get(&c.b_out)?);
    }
    out.insert(
        "transformer.ln_f.weight".to_string(),
        get(names::LN_FINAL_W)?,
    );
    out.insert("transformer.ln_f.bias".to_string(), get(names::LN_FINAL_B)?);
    out.insert("lm_head.weight".to_string(), get(names::W_U)?.transposed());
    Ok(out)
}
