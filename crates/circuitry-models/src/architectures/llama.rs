//! Llama family (`LlamaForCausalLM`, with `MistralForCausalLM`, `Qwen2ForCausalLM`,
//! `Qwen3ForCausalLM`, `Phi3ForCausalLM` and `Olmo2ForCausalLM` as configuration variants):
//! RMSNorm, rotary embeddings, SwiGLU MLP, grouped-query attention, optional biases, tied or
//! separate unembedding; Mistral's and Phi-3's sliding window, Qwen3's per-head and OLMo-2's
//! whole query/key norms, OLMo-2's post-norms, Phi-3's fused `qkv_proj` and `gate_up_proj`.
//! Hugging Face `nn.Linear` weights are `[out, in]` and are transposed to `x @ W`. Gemma's
//! checkpoints share this layout ([`super::gemma`] maps them with [`map_weights`]).
//!
//! Two checkpoint layouts: Hugging Face (`config.json`, `model.layers.N.*`) and GGUF
//! (`llama.*` metadata, `blk.N.*` tensors, whose row-major shapes equal Hugging Face's), where
//! llama.cpp's converter has permuted the rows of the query and key projections for its
//! interleaved rotary layout; loading undoes that permutation as transformers does.

use circuitry_vocab::WeightDtype;

use super::{JsonConfig, Mapper};
use crate::config::{
    ActFn, Architecture, BlockNorms, ModelConfig, NormKind, Positional, QkNorm, RopeScaling,
    SlidingWindow,
};
use crate::error::LoadError;
use crate::loading::TensorSource;
use crate::loading::gguf::{GgufFile, GgufMetadata};
use crate::weights::{BlockNames, HostTensor, Weights, names as canonical};

/// Buffers some checkpoints carry that are not weights.
const IGNORED: &[&str] = &[".rotary_emb.inv_freq"];

/// The rotary scaling a config's `rope_scaling` / `rope_parameters` table (`r`, at `section`)
/// asks for, read as transformers 4.48 reads each `rope_type`; `n_ctx` is the config's
/// `max_position_embeddings`.
pub(crate) fn rope_scaling(
    cfg: &JsonConfig,
    section: &str,
    r: &serde_json::Value,
    n_ctx: usize,
) -> Result<RopeScaling, LoadError> {
    let kind = r
        .get("rope_type")
        .or_else(|| r.get("type"))
        .and_then(|v| v.as_str())
        .unwrap_or("default");
    let number = |key: &str| r.get(key).and_then(serde_json::Value::as_f64);
    let required = |key: &str| {
        number(key)
            .filter(|v| v.is_finite() && *v > 0.0)
            .ok_or_else(|| {
                cfg.unsupported(
                    &format!("{section}.{key}"),
                    format!("rope type `{kind}` needs a positive number `{key}`"),
                )
            })
    };
    Ok(match kind {
        "default" => RopeScaling::None,
        "linear" => RopeScaling::Linear {
            factor: required("factor")?,
        },
        "dynamic" => RopeScaling::Dynamic {
            factor: required("factor")?,
            max_positions: n_ctx,
        },
        "llama3" => RopeScaling::Llama3 {
            factor: required("factor")?,
            low_freq_factor: required("low_freq_factor")?,
            high_freq_factor: required("high_freq_factor")?,
            original_max: required("original_max_position_embeddings")? as usize,
        },
        "yarn" => {
            // transformers before 4.50 ignore `original_max_position_embeddings` here and later
            // ones derive the factor from it: the same config means two things unless it equals
            // `max_position_embeddings`.
            if let Some(original) = number("original_max_position_embeddings")
                && original != n_ctx as f64
            {
                return Err(cfg.unsupported(
                    &format!("{section}.original_max_position_embeddings"),
                    format!(
                        "yarn with original_max_position_embeddings = {original} and max_position_embeddings = {n_ctx} is read differently by different transformers versions"
                    ),
                ));
            }
            for key in ["mscale", "mscale_all_dim"] {
                if r.get(key).is_some() {
                    return Err(cfg.unsupported(
                        &format!("{section}.{key}"),
                        format!("yarn's `{key}` is not supported"),
                    ));
                }
            }
            let factor = required("factor")?;
            RopeScaling::Yarn {
                factor,
                max_positions: n_ctx,
                beta_fast: number("beta_fast").unwrap_or(32.0),
                beta_slow: number("beta_slow").unwrap_or(1.0),
                attention_factor: number("attention_factor")
                    .unwrap_or_else(|| 0.1 * factor.ln() + 1.0),
            }
        }
        other => {
            return Err(cfg.unsupported(
                section,
                format!(
                    "rope type `{other}` is not supported (default, linear, dynamic, llama3 and yarn are)"
                ),
            ));
        }
    })
}

/// The rotary settings of a Llama-layout config: base, rotated features and scaling, and the
/// key the base was read from (for errors). `n_ctx` is `max_position_embeddings`.
pub(crate) fn rotary_from_json(
    cfg: &JsonConfig,
    d_head: usize,
    n_ctx: usize,
) -> Result<(f64, usize, RopeScaling, String), LoadError> {
    // transformers >= 5 nests rope settings in `rope_parameters`; older configs have `rope_theta`
    // and `rope_scaling`.
    let rope = cfg
        .get("rope_parameters")
        .or_else(|| cfg.get("rope_scaling"));
    let mut theta = cfg.opt_f64("rope_theta")?;
    let mut theta_key = "rope_theta".to_string();
    let mut scaling = RopeScaling::None;
    if let Some(r) = rope {
        let section = if cfg.get("rope_parameters").is_some() {
            "rope_parameters"
        } else {
            "rope_scaling"
        };
        scaling = rope_scaling(cfg, section, r, n_ctx)?;
        if let Some(t) = r.get("rope_theta").and_then(|v| v.as_f64()) {
            theta = Some(t);
            theta_key = format!("{section}.rope_theta");
        }
    }
    let partial = cfg.opt_f64("partial_rotary_factor")?.unwrap_or(1.0);
    // Truncated, as transformers computes `int(head_dim * partial_rotary_factor)`.
    let dim = ((d_head as f64) * partial) as usize;
    Ok((theta.unwrap_or(10000.0), dim, scaling, theta_key))
}

/// A [`ModelConfig::validate`] issue as an error at the Hugging Face key of the field: the
/// family's own key where `keys` (field, key) names one, Llama's otherwise.
pub(crate) fn validate_json(
    cfg: &JsonConfig,
    config: &ModelConfig,
    keys: &[(&str, &str)],
) -> Result<(), LoadError> {
    config.validate().map_err(|issue| {
        let own = keys.iter().find(|(field, _)| *field == issue.field);
        let key = match issue.field {
            _ if own.is_some() => own.expect("just found").1,
            "d_model" => "hidden_size",
            "n_layers" => "num_hidden_layers",
            "n_heads" => "num_attention_heads",
            "n_kv_heads" => "num_key_value_heads",
            "d_head" => "head_dim",
            "d_mlp" => "intermediate_size",
            "d_vocab" => "vocab_size",
            "n_ctx" => "max_position_embeddings",
            "norm_eps" => "rms_norm_eps",
            "rotary_dim" => "partial_rotary_factor",
            "rotary_theta" => "rope_theta",
            "rotary_local_theta" => "rope_local_base_freq",
            "attn_scale" => "query_pre_attn_scalar",
            "attn_softcap" => "attn_logit_softcapping",
            "logit_softcap" => "final_logit_softcapping",
            _ => issue.field,
        };
        cfg.unsupported(key, issue.message)
    })
}

pub(crate) fn config_from_json(cfg: &JsonConfig) -> Result<ModelConfig, LoadError> {
    let model_type = cfg.str("model_type").unwrap_or("llama");
    let d_model = cfg.usize("hidden_size")?;
    let n_heads = cfg.usize("num_attention_heads")?;
    if n_heads == 0 {
        return Err(cfg.unsupported("num_attention_heads", "must be positive, found 0"));
    }
    let n_kv_heads = cfg.opt_usize("num_key_value_heads")?.unwrap_or(n_heads);
    let d_head = cfg.opt_usize("head_dim")?.unwrap_or(d_model / n_heads);
    let n_ctx = cfg.opt_usize("max_position_embeddings")?.unwrap_or(2048);
    let (theta, rotary_dim, scaling, theta_key) = rotary_from_json(cfg, d_head, n_ctx)?;
    let act_name = cfg.str("hidden_act").unwrap_or("silu");
    let act_fn = ActFn::from_hf_name(act_name)
        .ok_or_else(|| cfg.unsupported("hidden_act", format!("`{act_name}` is not supported")))?;
    // Qwen2 has biases on q/k/v only; Llama's `attention_bias` covers o_proj too.
    let (qkv_bias, attn_out_bias) = match model_type {
        "qwen2" => (true, false),
        "phi3" => (false, false),
        _ => {
            let b = cfg.bool_or("attention_bias", false)?;
            (b, b)
        }
    };
    // Mistral attends within `sliding_window`; Qwen2 configs carry one too but use it only with
    // `use_sliding_window`, and then only from layer `max_window_layers` on.
    let sliding_window = match model_type {
        "mistral" | "phi3" => cfg.opt_usize("sliding_window")?,
        "qwen2" if cfg.bool_or("use_sliding_window", false)? => {
            return Err(cfg.unsupported(
                "use_sliding_window",
                "Qwen2's per-layer sliding window is not supported",
            ));
        }
        "qwen3" if cfg.bool_or("use_sliding_window", false)? => {
            return Err(cfg.unsupported(
                "use_sliding_window",
                "Qwen3's per-layer sliding window is not supported",
            ));
        }
        _ => None,
    };
    let (block_norms, qk_norm) = match model_type {
        "qwen3" => (BlockNorms::Pre, QkNorm::PerHead),
        "olmo2" => (BlockNorms::Post, QkNorm::Whole),
        _ => (BlockNorms::Pre, QkNorm::None),
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
        n_ctx,
        norm: NormKind::RmsNorm,
        norm_eps: cfg.opt_f64("rms_norm_eps")?.unwrap_or(1e-6),
        positional: Positional::Rotary {
            theta,
            dim: rotary_dim,
            scaling,
            local_theta: None,
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
        sliding_window: sliding_window.map(|size| SlidingWindow { size, layers: None }),
        parallel_attn_mlp: false,
        block_norms,
        qk_norm,
        attn_scale: None,
        attn_softcap: None,
        logit_softcap: None,
    };
    validate_json(cfg, &config, &[("rotary_theta", &theta_key)])?;
    Ok(config)
}

/// Where a checkpoint format keeps each Llama-layout tensor. Hugging Face and GGUF differ only
/// in names and in GGUF's row permutation of the query and key projections.
pub(crate) struct NameScheme {
    embed: &'static str,
    final_norm: &'static str,
    lm_head: &'static str,
    /// Block prefix, e.g. `model.layers.` or `blk.`.
    block: &'static str,
    /// The norms before attention and the MLP, for pre-norm models.
    pre_norms: [&'static str; 2],
    /// The norms of a block that has both pre- and post-norms: before attention, after it,
    /// before the MLP, after it (Gemma 2 and 3).
    pre_and_post_norms: [&'static str; 4],
    /// The norms after attention and the MLP, for post-norm models (OLMo-2).
    post_norms: [&'static str; 2],
    /// Query and key norms.
    qk_norms: [&'static str; 2],
    /// Query, key, value and output projections.
    attn: [&'static str; 4],
    /// The fused query-key-value projection some checkpoints have instead (Phi-3).
    fused_qkv: &'static str,
    /// Gate, up and down projections.
    mlp: [&'static str; 3],
    /// The fused gate-up projection some checkpoints have instead (Phi-3).
    fused_gate_up: &'static str,
    /// Query and key rows are permuted for llama.cpp's rotary layout (GGUF).
    permuted_qk: bool,
    /// Checkpoint tensors that are not weights.
    pub(crate) ignored: &'static [&'static str],
}

pub(crate) const HF_NAMES: NameScheme = NameScheme {
    embed: "model.embed_tokens.weight",
    final_norm: "model.norm.weight",
    lm_head: "lm_head.weight",
    block: "model.layers.",
    pre_norms: ["input_layernorm", "post_attention_layernorm"],
    pre_and_post_norms: [
        "input_layernorm",
        "post_attention_layernorm",
        "pre_feedforward_layernorm",
        "post_feedforward_layernorm",
    ],
    post_norms: ["post_attention_layernorm", "post_feedforward_layernorm"],
    qk_norms: ["self_attn.q_norm", "self_attn.k_norm"],
    attn: [
        "self_attn.q_proj",
        "self_attn.k_proj",
        "self_attn.v_proj",
        "self_attn.o_proj",
    ],
    fused_qkv: "self_attn.qkv_proj",
    mlp: ["mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"],
    fused_gate_up: "mlp.gate_up_proj",
    permuted_qk: false,
    ignored: IGNORED,
};

const GGUF_NAMES: NameScheme = NameScheme {
    embed: "token_embd.weight",
    final_norm: "output_norm.weight",
    lm_head: "output.weight",
    block: "blk.",
    pre_norms: ["attn_norm", "ffn_norm"],
    pre_and_post_norms: [
        "attn_norm",
        "post_attention_norm",
        "ffn_norm",
        "post_ffw_norm",
    ],
    post_norms: ["post_attention_norm", "post_ffw_norm"],
    qk_norms: ["attn_q_norm", "attn_k_norm"],
    attn: ["attn_q", "attn_k", "attn_v", "attn_output"],
    fused_qkv: "attn_qkv",
    mlp: ["ffn_gate", "ffn_up", "ffn_down"],
    fused_gate_up: "ffn_up",
    permuted_qk: true,
    // Read into the configuration, not the weights.
    ignored: &[ROPE_FREQS],
};

/// llama.cpp's names for the architectures it runs with the NEOX rotary layout (no permutation).
const GGUF_NEOX_NAMES: NameScheme = NameScheme {
    permuted_qk: false,
    ..GGUF_NAMES
};

/// Maps a Hugging Face Llama checkpoint to canonical weights (`nn.Linear` weights are
/// `[out, in]`, transposed here to `x @ W`).
pub(crate) fn load_weights(
    config: ModelConfig,
    source: &dyn TensorSource,
    dtype: WeightDtype,
) -> Result<Weights, LoadError> {
    let mut m = Mapper::new(source, dtype);
    let w_e = map_weights(&mut m, &config, source, &HF_NAMES)?;
    m.put(canonical::W_E, w_e);
    m.finish(config, "llama", HF_NAMES.ignored)
}

/// Maps the tensors of a Llama-layout GGUF file to canonical weights. GGUF `blk.N.*` names,
/// shapes as Hugging Face's (`[out, in]`, transposed here to `x @ W`); in `llama` files the query
/// and key rows (and biases) are un-permuted per head.
pub(crate) fn load_gguf_weights(
    config: ModelConfig,
    arch: GgufArch,
    source: &dyn TensorSource,
    dtype: WeightDtype,
) -> Result<Weights, LoadError> {
    let mut m = Mapper::new(source, dtype);
    let w_e = map_weights(&mut m, &config, source, arch.names())?;
    m.put(canonical::W_E, w_e);
    m.finish(config, arch.name(), arch.names().ignored)
}

/// Reads every tensor of a Llama-layout checkpoint into `m` under canonical names, but for the
/// embedding `W_E`, which it returns in f32 for the caller to put (Gemma scales it first, so that
/// a half-precision embedding is rounded once).
pub(crate) fn map_weights(
    m: &mut Mapper,
    config: &ModelConfig,
    source: &dyn TensorSource,
    names: &NameScheme,
) -> Result<HostTensor, LoadError> {
    let (d, v, mlp) = (config.d_model, config.d_vocab, config.d_mlp);
    let qd = config.n_heads * config.d_head;
    let kvd = config.n_kv_heads * config.d_head;
    let w_e = m.read(names.embed, &[v, d])?;
    for l in 0..config.n_layers {
        let n = |part: &str, kind: &str| format!("{}{l}.{part}.{kind}", names.block);
        let c = BlockNames::new(l);
        let norms: Vec<(&str, &String)> = match config.block_norms {
            BlockNorms::Pre => vec![
                (names.pre_norms[0], &c.ln1_w),
                (names.pre_norms[1], &c.ln2_w),
            ],
            BlockNorms::PreAndPost => names
                .pre_and_post_norms
                .into_iter()
                .zip([&c.ln1_w, &c.ln1_post_w, &c.ln2_w, &c.ln2_post_w])
                .collect(),
            BlockNorms::Post => vec![
                (names.post_norms[0], &c.ln1_post_w),
                (names.post_norms[1], &c.ln2_post_w),
            ],
        };
        for (name, ours) in norms {
            let t = m.read(&n(name, "weight"), &[d])?;
            m.put(ours, t);
        }
        let (q_width, k_width) = match config.qk_norm {
            QkNorm::None => (0, 0),
            QkNorm::PerHead => (config.d_head, config.d_head),
            QkNorm::Whole => (qd, kvd),
        };
        if config.qk_norm != QkNorm::None {
            for (name, ours, width) in [
                (names.qk_norms[0], &c.q_norm_w, q_width),
                (names.qk_norms[1], &c.k_norm_w, k_width),
            ] {
                let t = m.read(&n(name, "weight"), &[width])?;
                m.put(ours, t);
            }
        }
        let permuted = |heads: usize| names.permuted_qk.then_some(heads);
        let [c_q, c_k, c_v] = c.qkv();
        // Phi-3 keeps the three projections in one `[q; k; v]` matrix.
        let fused = m.has(&n(names.fused_qkv, "weight")).then(|| {
            let name = n(names.fused_qkv, "weight");
            m.read(&name, &[qd + 2 * kvd, d])
        });
        let fused = fused.transpose()?;
        for (i, (part, (ours_w, ours_b), out_dim, permuted_heads)) in [
            (names.attn[0], c_q, qd, permuted(config.n_heads)),
            (names.attn[1], c_k, kvd, permuted(config.n_kv_heads)),
            (names.attn[2], c_v, kvd, None),
        ]
        .into_iter()
        .enumerate()
        {
            let name = n(part, "weight");
            let mut t = match &fused {
                Some(all) => {
                    let from = [0, qd, qd + kvd][i];
                    all.rows(from, from + out_dim)
                }
                None => m.read(&name, &[out_dim, d])?,
            };
            if let Some(heads) = permuted_heads {
                t = unpermute_rows(&t, heads, source, &name)?;
            }
            m.put(ours_w, t.transposed());
            if config.qkv_bias {
                let name = n(part, "bias");
                let mut t = m.read(&name, &[out_dim])?;
                if let Some(heads) = permuted_heads {
                    t = unpermute_rows(&t, heads, source, &name)?;
                }
                m.put(ours_b, t);
            }
        }
        let t = m.read(&n(names.attn[3], "weight"), &[d, qd])?;
        m.put(&c.w_o, t.transposed());
        if config.attn_out_bias {
            let t = m.read(&n(names.attn[3], "bias"), &[d])?;
            m.put(&c.b_o, t);
        }
        // Phi-3 keeps gate and up in one `[gate; up]` matrix.
        let gate_up = n(names.fused_gate_up, "weight");
        let fused = (!m.has(&n(names.mlp[0], "weight")) && m.has(&gate_up))
            .then(|| m.read(&gate_up, &[2 * mlp, d]))
            .transpose()?;
        for (i, (part, (ours_w, ours_b), shape)) in [
            (names.mlp[0], (&c.w_gate, &c.b_gate), [mlp, d]),
            (names.mlp[1], (&c.w_in, &c.b_in), [mlp, d]),
            (names.mlp[2], (&c.w_out, &c.b_out), [d, mlp]),
        ]
        .into_iter()
        .enumerate()
        {
            let t = match &fused {
                Some(all) if i < 2 => all.rows(i * mlp, (i + 1) * mlp),
                _ => m.read(&n(part, "weight"), &shape)?,
            };
            m.put(ours_w, t.transposed());
            if config.mlp_bias {
                let t = m.read(&n(part, "bias"), &[shape[0]])?;
                m.put(ours_b, t);
            }
        }
    }
    let t = m.read(names.final_norm, &[d])?;
    m.put(canonical::LN_FINAL_W, t);
    let w_u = m.unembedding(names.lm_head, &w_e, config)?;
    m.put(canonical::W_U, w_u);
    Ok(w_e)
}

/// The GGUF architectures read through the Llama layout (llama.cpp's `general.architecture`
/// names), each with what llama.cpp's converter and runtime imply beyond the metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GgufArch {
    Llama,
    Qwen2,
    Qwen3,
    Olmo2,
    Phi3,
    Gemma,
    Gemma2,
    Gemma3,
}

impl GgufArch {
    /// Every architecture read, in the order error messages list them.
    pub(crate) const ALL: [GgufArch; 8] = [
        GgufArch::Llama,
        GgufArch::Qwen2,
        GgufArch::Qwen3,
        GgufArch::Olmo2,
        GgufArch::Phi3,
        GgufArch::Gemma,
        GgufArch::Gemma2,
        GgufArch::Gemma3,
    ];

    /// Gemma 1, 2 or 3: norms stored as `1 + w`, the embedding scaled on the way in.
    pub(crate) fn is_gemma(self) -> bool {
        matches!(self, GgufArch::Gemma | GgufArch::Gemma2 | GgufArch::Gemma3)
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            GgufArch::Llama => "llama",
            GgufArch::Qwen2 => "qwen2",
            GgufArch::Qwen3 => "qwen3",
            GgufArch::Olmo2 => "olmo2",
            GgufArch::Phi3 => "phi3",
            GgufArch::Gemma => "gemma",
            GgufArch::Gemma2 => "gemma2",
            GgufArch::Gemma3 => "gemma3",
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<GgufArch> {
        GgufArch::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The tensor names: only `llama` files have the query and key rows permuted (llama.cpp
    /// runs the others with its NEOX rotary layout, which is Hugging Face's).
    pub(crate) fn names(self) -> &'static NameScheme {
        match self {
            GgufArch::Llama => &GGUF_NAMES,
            _ => &GGUF_NEOX_NAMES,
        }
    }
}

/// The configuration of a GGUF file of one of the [`GgufArch`] architectures, from its
/// `{arch}.*` metadata (key names as in transformers' `GGUF_CONFIG_MAPPING`) and its tensor
/// names (biases present or not; no `output.weight` means tied embeddings) and `rope_freqs`
/// (Llama 3's frequency factors). Defaults where a key
/// is absent are transformers' config defaults; what the metadata cannot say (activation, norm
/// layout) is what llama.cpp assumes for the architecture.
pub(crate) fn config_from_gguf(arch: GgufArch, file: &GgufFile) -> Result<ModelConfig, LoadError> {
    let meta = file.metadata();
    let tensors = &file.shapes();
    let prefix = arch.name();
    let key = |k: &str| format!("{prefix}.{k}");
    let d_model = meta.usize(&key("embedding_length"))?;
    let n_heads = meta.usize(&key("attention.head_count"))?;
    if n_heads == 0 {
        return Err(meta.error(&key("attention.head_count"), "must be positive"));
    }
    let n_kv_heads = meta
        .opt_usize(&key("attention.head_count_kv"))?
        .unwrap_or(n_heads);
    let d_head = match meta.opt_usize(&key("attention.key_length"))? {
        Some(k) => k,
        None if d_model.is_multiple_of(n_heads) => d_model / n_heads,
        None => {
            return Err(meta.error(
                &key("attention.head_count"),
                format!("embedding length {d_model} is not a multiple of the head count {n_heads}"),
            ));
        }
    };
    if let Some(v) = meta
        .opt_usize(&key("attention.value_length"))?
        .filter(|&v| v != d_head)
    {
        return Err(meta.error(
            &key("attention.value_length"),
            format!("{v} differs from the key length {d_head}; not supported"),
        ));
    }
    if meta.opt_usize(&key("expert_count"))?.unwrap_or(0) > 0 {
        return Err(meta.error(
            &key("expert_count"),
            "mixture-of-experts models are not supported",
        ));
    }
    let d_vocab = match meta.opt_usize(&key("vocab_size"))? {
        Some(v) => v,
        None => meta
            .opt_strings("tokenizer.ggml.tokens")?
            .map(|t| t.len())
            .ok_or_else(|| {
                meta.error(
                    &key("vocab_size"),
                    "missing, and there is no `tokenizer.ggml.tokens` to count",
                )
            })?,
    };
    let n_layers = meta.usize(&key("block_count"))?;
    let d_mlp = meta.usize(&key("feed_forward_length"))?;
    let n_ctx = meta.opt_usize(&key("context_length"))?.unwrap_or(2048);
    // Sizes from a corrupt file must not overflow the products computed from them (such as
    // n_heads * d_head) before the tensors' real shapes are checked.
    const MAX_SIZE: usize = 1 << 24;
    for (k, value) in [
        ("embedding_length", d_model),
        ("block_count", n_layers),
        ("feed_forward_length", d_mlp),
        ("attention.head_count", n_heads),
        ("attention.head_count_kv", n_kv_heads),
        ("attention.key_length", d_head),
        ("vocab_size", d_vocab),
        ("context_length", n_ctx),
    ] {
        if value > MAX_SIZE {
            let message = format!("{value} is implausibly large (over {MAX_SIZE})");
            return Err(meta.error(&key(k), message));
        }
    }
    let has = |name: &str| tensors.contains_key(name);
    // Scaled rotary frequencies must not be read as plain ones, silently.
    let scaling = match meta.opt_str(&key("rope.scaling.type"))? {
        None | Some("none") => RopeScaling::None,
        Some("linear") => {
            let factor = meta
                .opt_f64(&key("rope.scaling.factor"))?
                .filter(|f| f.is_finite() && *f > 0.0)
                .ok_or_else(|| {
                    meta.error(
                        &key("rope.scaling.factor"),
                        "linear rope scaling needs a positive factor",
                    )
                })?;
            RopeScaling::Linear { factor }
        }
        Some(kind) => {
            return Err(meta.error(
                &key("rope.scaling.type"),
                format!("rope scaling `{kind}` in GGUF files is not supported (none and linear are); load the Hugging Face checkpoint, whose config.json describes it"),
            ));
        }
    };
    if has("rope_factors_long.weight") {
        return Err(meta.error(
            "rope_factors_long.weight",
            "Phi-3 long-context rope factors in GGUF files are not supported yet; load the Hugging Face checkpoint",
        ));
    }
    let rotary_dim = meta
        .opt_usize(&key("rope.dimension_count"))?
        .unwrap_or(d_head);
    let scaling = match (scaling, has(ROPE_FREQS)) {
        (scaling, false) => scaling,
        (RopeScaling::None, true) => rope_freq_factors(file, rotary_dim)?,
        (_, true) => {
            return Err(meta.error(
                &key("rope.scaling.type"),
                format!("the file has both rope scaling and `{ROPE_FREQS}` factors; not supported"),
            ));
        }
    };
    let gemma = arch.is_gemma();
    let gemma_2_or_3 = matches!(arch, GgufArch::Gemma2 | GgufArch::Gemma3);
    let sliding_window = match arch {
        GgufArch::Phi3 => meta
            .opt_usize(&key("attention.sliding_window"))?
            .map(|size| SlidingWindow { size, layers: None }),
        _ if gemma_2_or_3 => gemma_window(arch, meta, n_layers)?,
        // llama.cpp applies no window to the others (Qwen2's needs `use_sliding_window`, which
        // GGUF does not carry).
        _ => None,
    };
    let config = ModelConfig {
        architecture: if gemma {
            Architecture::Gemma
        } else {
            Architecture::Llama
        },
        d_model,
        n_layers,
        n_heads,
        n_kv_heads,
        d_head,
        d_mlp,
        d_vocab,
        n_ctx,
        norm: NormKind::RmsNorm,
        norm_eps: meta
            .opt_f64(&key("attention.layer_norm_rms_epsilon"))?
            .unwrap_or(1e-6),
        positional: Positional::Rotary {
            theta: meta.opt_f64(&key("rope.freq_base"))?.unwrap_or(10000.0),
            dim: rotary_dim,
            scaling,
            // llama.cpp rotates Gemma 3's window layers with their own, unscaled base.
            local_theta: match arch {
                GgufArch::Gemma3 => {
                    Some(meta.opt_f64(&key("rope.freq_base_swa"))?.unwrap_or(10000.0))
                }
                _ => None,
            },
        },
        // llama.cpp runs Gemma's MLP with the tanh GELU whatever its config said.
        act_fn: if gemma { ActFn::GeluTanh } else { ActFn::Silu },
        gated_mlp: true,
        attn_only: false,
        // llama.cpp loads these biases when present (Qwen2-style files converted as llama).
        qkv_bias: has("blk.0.attn_q.bias"),
        attn_out_bias: has("blk.0.attn_output.bias"),
        mlp_bias: has("blk.0.ffn_up.bias"),
        unembed_bias: false,
        tied_embeddings: !has("output.weight"),
        bos_token_id: meta.opt_u32("tokenizer.ggml.bos_token_id")?,
        eos_token_id: meta.opt_u32("tokenizer.ggml.eos_token_id")?,
        pad_token_id: meta.opt_u32("tokenizer.ggml.padding_token_id")?,
        sliding_window,
        parallel_attn_mlp: false,
        block_norms: match arch {
            GgufArch::Olmo2 => BlockNorms::Post,
            GgufArch::Gemma2 | GgufArch::Gemma3 => BlockNorms::PreAndPost,
            _ => BlockNorms::Pre,
        },
        qk_norm: match arch {
            GgufArch::Qwen3 | GgufArch::Gemma3 => QkNorm::PerHead,
            GgufArch::Olmo2 => QkNorm::Whole,
            _ => QkNorm::None,
        },
        attn_scale: match gemma_2_or_3 {
            true => Some(gemma_attn_divisor(
                arch,
                meta,
                n_layers,
                d_model / n_heads,
                d_head,
            )?),
            false => None,
        },
        attn_softcap: match gemma_2_or_3 {
            true => meta.opt_f64(&key("attn_logit_softcapping"))?,
            false => None,
        },
        logit_softcap: match gemma_2_or_3 {
            true => meta.opt_f64(&key("final_logit_softcapping"))?,
            false => None,
        },
    };
    validate_gguf(meta, &config, prefix, &[])?;
    Ok(config)
}

/// A [`ModelConfig::validate`] issue as an error at the GGUF key of the field:
/// `{arch}.` + the family's own key suffix where `keys` (field, suffix) names one, the
/// Llama-layout one otherwise (llama.cpp spells them alike across architectures).
pub(crate) fn validate_gguf(
    meta: &GgufMetadata,
    config: &ModelConfig,
    arch: &str,
    keys: &[(&str, &str)],
) -> Result<(), LoadError> {
    config.validate().map_err(|issue| {
        let own = keys.iter().find(|(field, _)| *field == issue.field);
        let suffix = match issue.field {
            _ if own.is_some() => own.expect("just found").1,
            "d_model" => "embedding_length",
            "n_layers" => "block_count",
            "n_heads" => "attention.head_count",
            "n_kv_heads" => "attention.head_count_kv",
            "d_head" => "attention.key_length",
            "d_mlp" => "feed_forward_length",
            "d_vocab" => "vocab_size",
            "n_ctx" => "context_length",
            "norm_eps" => "attention.layer_norm_rms_epsilon",
            "rotary_dim" => "rope.dimension_count",
            "rotary_theta" => "rope.freq_base",
            "sliding_window" => "attention.sliding_window",
            "attn_scale" => "attention.scale",
            "attn_softcap" => "attn_logit_softcapping",
            "logit_softcap" => "final_logit_softcapping",
            "rotary_local_theta" => "rope.freq_base_swa",
            other => return meta.error(other, issue.message.clone()),
        };
        meta.error(&format!("{arch}.{suffix}"), issue.message)
    })
}

/// The sliding window of a Gemma 2 or 3 file: `attention.sliding_window` keys (llama.cpp's
/// default 4096 where absent) in the layers `attention.sliding_window_pattern` names (a period
/// `n`: every layer but each `n`-th; or one flag per layer), by default llama.cpp's pattern for
/// the generation (every other layer for Gemma 2, five of six for Gemma 3).
fn gemma_window(
    arch: GgufArch,
    meta: &GgufMetadata,
    n_layers: usize,
) -> Result<Option<SlidingWindow>, LoadError> {
    let key = |k: &str| format!("{}.{k}", arch.name());
    let size = meta
        .opt_usize(&key("attention.sliding_window"))?
        .unwrap_or(4096);
    let pattern_key = key("attention.sliding_window_pattern");
    let period = |n: usize| (0..n_layers).filter(|l| l % n < n - 1).collect::<Vec<_>>();
    let layers = match meta.get(&pattern_key) {
        None => period(if arch == GgufArch::Gemma2 { 2 } else { 6 }),
        Some(v) => match (v.as_u64(), v.as_array()) {
            (Some(n), _) if n > 0 => period(n as usize),
            (_, Some(flags)) if flags.len() == n_layers => {
                let mut layers = Vec::new();
                for (l, flag) in flags.iter().enumerate() {
                    match flag.as_bool() {
                        Some(true) => layers.push(l),
                        Some(false) => {}
                        None => {
                            return Err(
                                meta.error(&pattern_key, format!("entry {l} is not true or false"))
                            );
                        }
                    }
                }
                layers
            }
            _ => {
                return Err(meta.error(
                    &pattern_key,
                    format!("expected a positive period or one flag per layer ({n_layers})"),
                ));
            }
        },
    };
    Ok((!layers.is_empty()).then_some(SlidingWindow {
        size,
        layers: Some(layers),
    }))
}

/// What Gemma 2 or 3 divides its attention scores by: `1 / attention.scale` where the file
/// says, else llama.cpp's rule (the 27B models scale by `d_model / n_heads`, as their
/// `query_pre_attn_scalar` says; the others by `d_head`).
fn gemma_attn_divisor(
    arch: GgufArch,
    meta: &GgufMetadata,
    n_layers: usize,
    d_model_per_head: usize,
    d_head: usize,
) -> Result<f64, LoadError> {
    let key = format!("{}.attention.scale", arch.name());
    if let Some(scale) = meta.opt_f64(&key)? {
        if !(scale.is_finite() && scale > 0.0) {
            return Err(meta.error(&key, format!("{scale} is not a positive number")));
        }
        return Ok(1.0 / scale);
    }
    let is_27b = match arch {
        GgufArch::Gemma2 => n_layers == 46,
        _ => n_layers == 62,
    };
    let per_head = if is_27b { d_model_per_head } else { d_head };
    Ok((per_head as f64).sqrt())
}

/// llama.cpp's tensor of per-frequency rotary divisors.
const ROPE_FREQS: &str = "rope_freqs.weight";

/// The `rope_freqs` factors of a file whose rotation covers `rotary_dim` features: one positive
/// number per rotated pair.
fn rope_freq_factors(file: &GgufFile, rotary_dim: usize) -> Result<RopeScaling, LoadError> {
    let t = file.read(ROPE_FREQS)?;
    let meta = file.metadata();
    if t.shape != [rotary_dim / 2] {
        return Err(meta.error(
            ROPE_FREQS,
            format!(
                "shape {:?}, expected [{}] (one factor per rotated pair of the {rotary_dim} rotary dimensions)",
                t.shape,
                rotary_dim / 2
            ),
        ));
    }
    if let Some(bad) = t.data().iter().find(|f| !(f.is_finite() && **f > 0.0)) {
        return Err(meta.error(ROPE_FREQS, format!("factor {bad} is not a positive number")));
    }
    Ok(RopeScaling::Factors {
        factors: t.data().iter().map(|&f| f64::from(f)).collect(),
    })
}

/// Undoes llama.cpp's `permute` of query/key rows (transformers' `reverse_permute_weights`):
/// within each of `n_heads` heads, llama.cpp interleaves the two rotary halves (row `2j + i`
/// holds what Hugging Face keeps at row `i * d_head/2 + j`); this puts them back. Works on
/// weights `[rows, in]` and biases `[rows]` alike.
fn unpermute_rows(
    t: &HostTensor,
    n_heads: usize,
    source: &dyn TensorSource,
    name: &str,
) -> Result<HostTensor, LoadError> {
    let rows = t.shape[0];
    if n_heads == 0 || !rows.is_multiple_of(2 * n_heads) {
        return Err(LoadError::Format {
            path: source.path().to_path_buf(),
            format: "GGUF",
            message: format!(
                "tensor `{name}`: {rows} rows do not split into {n_heads} heads of even size, so llama.cpp's rotary permutation cannot be undone"
            ),
        });
    }
    let data = t.data();
    let cols = data.len() / rows;
    let half = rows / n_heads / 2;
    let mut out = vec![0f32; data.len()];
    for h in 0..n_heads {
        for i in 0..2 {
            for j in 0..half {
                let dst = h * 2 * half + i * half + j;
                let src = h * 2 * half + j * 2 + i;
                out[dst * cols..(dst + 1) * cols]
                    .copy_from_slice(&data[src * cols..(src + 1) * cols]);
            }
        }
    }
    Ok(HostTensor::new(t.shape.clone(), out))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::loading::gguf::GgufValue;

    /// llama.cpp's `permute` from `convert_hf_to_gguf.py`:
    /// `w.reshape(n_head, 2, rows // n_head // 2, *rest).swapaxes(1, 2).reshape(w.shape)`.
    fn permute(t: &HostTensor, n_heads: usize) -> HostTensor {
        let rows = t.shape[0];
        let data = t.data();
        let cols = data.len() / rows;
        let half = rows / n_heads / 2;
        let mut out = vec![0f32; data.len()];
        for h in 0..n_heads {
            for i in 0..2 {
                for j in 0..half {
                    let src = h * 2 * half + i * half + j;
                    let dst = h * 2 * half + j * 2 + i;
                    out[dst * cols..(dst + 1) * cols]
                        .copy_from_slice(&data[src * cols..(src + 1) * cols]);
                }
            }
        }
        HostTensor::new(t.shape.clone(), out)
    }

    struct NoSource;
    impl TensorSource for NoSource {
        fn path(&self) -> &std::path::Path {
            std::path::Path::new("test.gguf")
        }
        fn shapes(&self) -> BTreeMap<String, Vec<usize>> {
            BTreeMap::new()
        }
        fn read(&self, _: &str) -> Result<HostTensor, LoadError> {
            unreachable!()
        }
    }

    fn metadata(values: &[(&str, GgufValue)]) -> GgufMetadata {
        let values = values
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        GgufMetadata::new(std::path::Path::new("test.gguf"), values)
    }

    #[test]
    fn gemma_files_without_window_or_scale_keys_get_llama_cpp_defaults() {
        let none = metadata(&[]);
        let layers = |arch, meta: &GgufMetadata, n| {
            gemma_window(arch, meta, n)
                .unwrap()
                .and_then(|w| w.layers)
                .unwrap()
        };
        // Gemma 2 slides in every other layer, Gemma 3 in five of six; 4096 keys.
        assert_eq!(layers(GgufArch::Gemma2, &none, 5), [0, 2, 4]);
        assert_eq!(
            layers(GgufArch::Gemma3, &none, 13),
            [0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 12]
        );
        let w = gemma_window(GgufArch::Gemma2, &none, 2).unwrap().unwrap();
        assert_eq!(w.size, 4096);
        let period = metadata(&[("gemma3.attention.sliding_window_pattern", GgufValue::U32(3))]);
        assert_eq!(layers(GgufArch::Gemma3, &period, 6), [0, 1, 3, 4]);
        let flags = metadata(&[(
            "gemma2.attention.sliding_window_pattern",
            GgufValue::Array(vec![GgufValue::Bool(false), GgufValue::U8(2)]),
        )]);
        assert!(gemma_window(GgufArch::Gemma2, &flags, 2).is_err());

        // 27B models scale by d_model / n_heads, the others by d_head.
        let divisor = |arch, n_layers| gemma_attn_divisor(arch, &none, n_layers, 144, 128).unwrap();
        assert_eq!(divisor(GgufArch::Gemma2, 46), 12.0);
        assert_eq!(divisor(GgufArch::Gemma2, 42), 128f64.sqrt());
        assert_eq!(divisor(GgufArch::Gemma3, 62), 12.0);
        let scaled = metadata(&[("gemma2.attention.scale", GgufValue::F32(0.25))]);
        assert_eq!(
            gemma_attn_divisor(GgufArch::Gemma2, &scaled, 2, 16, 24).unwrap(),
            4.0
        );
    }

    #[test]
    fn unpermute_inverts_llama_cpp_permute() {
        let (heads, d_head, cols) = (3, 8, 5);
        let t = HostTensor::new(
            vec![heads * d_head, cols],
            (0..heads * d_head * cols).map(|x| x as f32).collect(),
        );
        let back = unpermute_rows(&permute(&t, heads), heads, &NoSource, "w").unwrap();
        assert_eq!(back, t);
        let bias = HostTensor::new(
            vec![heads * d_head],
            (0..heads * d_head).map(|x| x as f32).collect(),
        );
        assert_eq!(
            unpermute_rows(&permute(&bias, heads), heads, &NoSource, "b").unwrap(),
            bias
        );
        // Row 1 of a permuted head is Hugging Face's row d_head/2 (the second rotary half).
        let p = permute(&bias, heads);
        assert_eq!(p.data()[1], (d_head / 2) as f32);
        assert!(
            unpermute_rows(&HostTensor::new(vec![6], vec![0.0; 6]), 4, &NoSource, "odd").is_err()
        );
    }
}
