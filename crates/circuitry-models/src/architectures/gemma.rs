//! Gemma 1, 2 and 3 (`GemmaForCausalLM`, `Gemma2ForCausalLM`, `Gemma3ForCausalLM`): the Llama
//! layout (read by [`super::llama::map_weights`]) with GeGLU MLPs, RMSNorms that multiply by
//! `1 + w` (the canonical weight here is `1 + w`, as in TransformerLens), the embedding scaled by
//! `sqrt(d_model)` on the way in (folded into `W_E`; the tied unembedding is the unscaled
//! transpose). Gemma 2 adds post-norms, attention scaled by `query_pre_attn_scalar`, attention
//! and logit soft-capping, and a sliding window in alternate layers; Gemma 3 adds per-head
//! query/key norms, its own layer pattern, and a separate rotary base for its window layers.
//! All three are also read from GGUF files (`general.architecture` gemma, gemma2, gemma3).

use super::llama::{GgufArch, HF_NAMES, map_weights, rotary_from_json, validate_json};
use circuitry_vocab::WeightDtype;

use super::{JsonConfig, Mapper};
use crate::config::{
    ActFn, Architecture, BlockNorms, ModelConfig, NormKind, Positional, QkNorm, SlidingWindow,
};
use crate::error::LoadError;
use crate::loading::TensorSource;
use crate::weights::{BlockNames, HostTensor, Weights, names as canonical};

/// Which Gemma generation a config describes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Generation {
    One,
    Two,
    Three,
}

pub(crate) fn config_from_json(cfg: &JsonConfig) -> Result<ModelConfig, LoadError> {
    let model_type = cfg.str("model_type").unwrap_or("gemma");
    let generation = match model_type {
        "gemma" => Generation::One,
        "gemma2" => Generation::Two,
        "gemma3_text" | "gemma3" => Generation::Three,
        other => {
            return Err(cfg.unsupported(
                "model_type",
                format!("`{other}` is not a Gemma text model (gemma, gemma2, gemma3_text)"),
            ));
        }
    };
    let d_model = cfg.usize("hidden_size")?;
    let n_heads = cfg.usize("num_attention_heads")?;
    if n_heads == 0 {
        return Err(cfg.unsupported("num_attention_heads", "must be positive, found 0"));
    }
    let n_layers = cfg.usize("num_hidden_layers")?;
    let d_head = cfg.opt_usize("head_dim")?.unwrap_or(256);
    let n_ctx = cfg.opt_usize("max_position_embeddings")?.unwrap_or(8192);
    let (theta, dim, scaling, theta_key) = rotary_from_json(cfg, d_head, n_ctx)?;
    // Google's Gemma 1 configs say `hidden_act: gelu` but mean the tanh approximation, which
    // `hidden_activation` names (as TransformerLens reads them); Gemma 2 and 3 read only it.
    let act_key = if cfg.get("hidden_activation").is_some() {
        "hidden_activation"
    } else {
        "hidden_act"
    };
    let act_name = cfg.str(act_key).unwrap_or("gelu_pytorch_tanh");
    let act_fn = ActFn::from_hf_name(act_name)
        .ok_or_else(|| cfg.unsupported(act_key, format!("`{act_name}` is not supported")))?;
    let window_layers: Option<Vec<usize>> = match generation {
        Generation::One => None,
        _ => Some(match cfg.get("layer_types") {
            Some(serde_json::Value::Array(kinds)) => {
                let mut layers = Vec::new();
                for (l, kind) in kinds.iter().enumerate() {
                    match kind.as_str() {
                        Some("sliding_attention") => layers.push(l),
                        Some("full_attention") => {}
                        _ => {
                            return Err(cfg.unsupported(
                                &format!("layer_types.{l}"),
                                format!("expected \"sliding_attention\" or \"full_attention\", found {kind}"),
                            ));
                        }
                    }
                }
                if kinds.len() != n_layers {
                    return Err(cfg.unsupported(
                        "layer_types",
                        format!("{} entries for {n_layers} layers", kinds.len()),
                    ));
                }
                layers
            }
            // transformers' defaults: Gemma 2 slides in even layers, Gemma 3 in all but every
            // `sliding_window_pattern`-th.
            _ if generation == Generation::Two => (0..n_layers).step_by(2).collect(),
            _ => {
                let pattern = cfg.opt_usize("sliding_window_pattern")?.unwrap_or(6).max(1);
                (0..n_layers).filter(|l| (l + 1) % pattern != 0).collect()
            }
        }),
    };
    let sliding_window = match (window_layers, cfg.opt_usize("sliding_window")?) {
        (Some(layers), Some(size)) if !layers.is_empty() => Some(SlidingWindow {
            size,
            layers: Some(layers),
        }),
        _ => None,
    };
    let local_theta = match generation {
        Generation::Three => Some(cfg.opt_f64("rope_local_base_freq")?.unwrap_or(10000.0)),
        _ => None,
    };
    let attn_scale = match generation {
        Generation::One => None,
        _ => Some(
            cfg.opt_f64("query_pre_attn_scalar")?
                .unwrap_or(d_head as f64)
                .sqrt(),
        ),
    };
    let config = ModelConfig {
        architecture: Architecture::Gemma,
        d_model,
        n_layers,
        n_heads,
        n_kv_heads: cfg.opt_usize("num_key_value_heads")?.unwrap_or(n_heads),
        d_head,
        d_mlp: cfg.usize("intermediate_size")?,
        d_vocab: cfg.usize("vocab_size")?,
        n_ctx,
        norm: NormKind::RmsNorm,
        norm_eps: cfg.opt_f64("rms_norm_eps")?.unwrap_or(1e-6),
        positional: Positional::Rotary {
            theta,
            dim,
            scaling,
            local_theta,
        },
        act_fn,
        gated_mlp: true,
        attn_only: false,
        qkv_bias: cfg.bool_or("attention_bias", false)?,
        attn_out_bias: cfg.bool_or("attention_bias", false)?,
        mlp_bias: false,
        unembed_bias: false,
        tied_embeddings: cfg.bool_or("tie_word_embeddings", true)?,
        bos_token_id: cfg.opt_u32("bos_token_id")?,
        eos_token_id: cfg.opt_u32("eos_token_id")?,
        pad_token_id: cfg.opt_u32("pad_token_id")?,
        sliding_window,
        parallel_attn_mlp: false,
        block_norms: match generation {
            Generation::One => BlockNorms::Pre,
            _ => BlockNorms::PreAndPost,
        },
        qk_norm: match generation {
            Generation::Three => QkNorm::PerHead,
            _ => QkNorm::None,
        },
        attn_scale,
        attn_softcap: cfg.opt_f64("attn_logit_softcapping")?,
        logit_softcap: cfg.opt_f64("final_logit_softcapping")?,
    };
    validate_json(cfg, &config, &[("rotary_theta", &theta_key)])?;
    Ok(config)
}

/// Maps a Hugging Face Gemma checkpoint to canonical weights: Llama's names, then `1 + w` for
/// every norm and `W_E` scaled by `sqrt(d_model)` (after the tied unembedding was taken).
pub(crate) fn load_weights(
    config: ModelConfig,
    source: &dyn TensorSource,
    dtype: WeightDtype,
) -> Result<Weights, LoadError> {
    let mut m = Mapper::new(source, dtype);
    let w_e = map_weights(&mut m, &config, source, &HF_NAMES)?;
    let mut norms = vec![canonical::LN_FINAL_W.to_string()];
    for l in 0..config.n_layers {
        let c = BlockNames::new(l);
        norms.extend([
            c.ln1_w,
            c.ln1_post_w,
            c.ln2_w,
            c.ln2_post_w,
            c.q_norm_w,
            c.k_norm_w,
        ]);
    }
    for name in norms {
        if let Some(t) = m.out.get_mut(&name) {
            t.data_mut().iter_mut().for_each(|w| *w += 1.0);
        }
    }
    m.put(canonical::W_E, scaled_embedding(w_e, &config));
    m.finish(config, "gemma", HF_NAMES.ignored)
}

/// Maps a `gemma`, `gemma2` or `gemma3` GGUF file to canonical weights: llama.cpp's converter
/// already stored every norm as `1 + w`, and leaves the embedding unscaled, as Hugging Face does.
pub(crate) fn load_gguf_weights(
    config: ModelConfig,
    arch: GgufArch,
    source: &dyn TensorSource,
    dtype: WeightDtype,
) -> Result<Weights, LoadError> {
    let names = arch.names();
    let mut m = Mapper::new(source, dtype);
    let w_e = map_weights(&mut m, &config, source, names)?;
    m.put(canonical::W_E, scaled_embedding(w_e, &config));
    m.finish(config, arch.name(), names.ignored)
}

/// Folds Gemma's `sqrt(d_model)` input scaling into `W_E` (after the tied unembedding was
/// taken from it), in f32 as transformers' `normalizer` (a tensor of the hidden states' dtype).
fn scaled_embedding(mut w_e: HostTensor, config: &ModelConfig) -> HostTensor {
    let scale = (config.d_model as f64).sqrt() as f32;
    w_e.data_mut().iter_mut().for_each(|x| *x *= scale);
    w_e
}
