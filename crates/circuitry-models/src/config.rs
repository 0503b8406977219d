//! The architecture-independent description of a decoder-only transformer.
//!
//! Every supported family (GPT-2, Llama and its Qwen2/Mistral-style variants) is expressed as a
//! [`ModelConfig`]; the forward pass in [`crate::transformer`] switches on these fields only.

use serde::{Deserialize, Serialize};

/// Which family a model belongs to; decides the weight-name mapping, not the forward pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Architecture {
    Gpt2,
    Llama,
}

impl Architecture {
    pub fn name(self) -> &'static str {
        match self {
            Architecture::Gpt2 => "gpt2",
            Architecture::Llama => "llama",
        }
    }
}

/// Normalisation layer kind. The `*Pre` kinds are what weight processing leaves behind after
/// folding the learned scale (and bias) into the next linear map, as in TransformerLens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NormKind {
    /// Centre, divide by `sqrt(var + eps)`, then scale and shift.
    LayerNorm,
    /// LayerNorm without the learned scale and shift.
    LayerNormPre,
    /// Divide by `sqrt(mean(x^2) + eps)`, then scale.
    RmsNorm,
    /// RMSNorm without the learned scale.
    RmsNormPre,
}

impl NormKind {
    pub fn centers(self) -> bool {
        matches!(self, NormKind::LayerNorm | NormKind::LayerNormPre)
    }
    pub fn has_weight(self) -> bool {
        matches!(self, NormKind::LayerNorm | NormKind::RmsNorm)
    }
    /// The kind left after folding the learned parameters away.
    pub fn folded(self) -> NormKind {
        match self {
            NormKind::LayerNorm | NormKind::LayerNormPre => NormKind::LayerNormPre,
            NormKind::RmsNorm | NormKind::RmsNormPre => NormKind::RmsNormPre,
        }
    }
}

/// How position enters the model.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Positional {
    /// A learned table `W_pos [n_ctx, d_model]` added to the token embedding.
    Learned,
    /// Rotary embeddings on queries and keys (Hugging Face `rotate_half` layout), applied to the
    /// first `dim` features of each head, with frequencies scaled as `scaling` says.
    Rotary {
        theta: f64,
        dim: usize,
        #[serde(default)]
        scaling: RopeScaling,
    },
}

/// How rotary frequencies are rescaled for long contexts, exactly as Hugging Face transformers
/// 4.48 defines each `rope_type` (`modeling_rope_utils.py`); `components::rotary` computes them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum RopeScaling {
    /// The plain frequencies `theta^(-2i/dim)`.
    #[default]
    None,
    /// Every frequency divided by `factor` (positions interpolated).
    Linear { factor: f64 },
    /// NTK-aware: for a prompt longer than `max_positions`, the base becomes
    /// `theta * (factor * len / max_positions - (factor - 1))^(dim / (dim - 2))` with `len` the
    /// prompt's length (Hugging Face reads the batch's longest prompt instead, the same for one
    /// prompt or prompts of one length; here a prompt's result never depends on its batch).
    Dynamic { factor: f64, max_positions: usize },
    /// Llama 3.x: wavelengths longer than `original_max / low_freq_factor` divided by `factor`,
    /// shorter than `original_max / high_freq_factor` kept, smoothly blended between.
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max: usize,
    },
    /// YaRN: interpolated (divided by `factor`) and extrapolated frequencies blended by a linear
    /// ramp over the dimensions whose rotations over `max_positions` lie between `beta_slow` and
    /// `beta_fast`; cosines and sines multiplied by `attention_factor`.
    Yarn {
        factor: f64,
        max_positions: usize,
        beta_fast: f64,
        beta_slow: f64,
        attention_factor: f64,
    },
}

/// How `circuitry inspect` describes the scaling.
impl std::fmt::Display for RopeScaling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            RopeScaling::None => write!(f, "no scaling"),
            RopeScaling::Linear { factor } => write!(f, "linear scaling x{factor}"),
            RopeScaling::Dynamic {
                factor,
                max_positions,
            } => write!(
                f,
                "dynamic NTK scaling x{factor} beyond {max_positions} tokens"
            ),
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max,
            } => write!(
                f,
                "llama3 scaling x{factor} (low/high frequency factors {low_freq_factor}/{high_freq_factor}, original context {original_max})"
            ),
            RopeScaling::Yarn {
                factor,
                max_positions,
                beta_fast,
                beta_slow,
                attention_factor,
            } => write!(
                f,
                "yarn scaling x{factor} (context {max_positions}, beta {beta_fast}/{beta_slow}, attention factor {attention_factor:.4})"
            ),
        }
    }
}

/// MLP nonlinearity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActFn {
    /// GELU, tanh approximation (GPT-2's `gelu_new`).
    GeluTanh,
    /// GELU with the exact erf form.
    Gelu,
    Relu,
    /// SiLU / swish, as used by SwiGLU.
    Silu,
}

impl ActFn {
    pub fn from_hf_name(name: &str) -> Option<ActFn> {
        Some(match name {
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" | "gelu_tanh" => ActFn::GeluTanh,
            "gelu" => ActFn::Gelu,
            "relu" => ActFn::Relu,
            "silu" | "swish" => ActFn::Silu,
            _ => return None,
        })
    }
    pub fn hf_name(self) -> &'static str {
        match self {
            ActFn::GeluTanh => "gelu_new",
            ActFn::Gelu => "gelu",
            ActFn::Relu => "relu",
            ActFn::Silu => "silu",
        }
    }
}

/// A problem [`ModelConfig::validate`] found: the field at fault and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigIssue {
    /// The [`ModelConfig`] field (`norm_eps`, `n_heads`, ...); the rotary settings are
    /// `rotary_dim` and `rotary_theta`.
    pub field: &'static str,
    pub message: String,
}

impl ConfigIssue {
    fn new(field: &'static str, message: impl Into<String>) -> ConfigIssue {
        ConfigIssue {
            field,
            message: message.into(),
        }
    }
}

/// A complete description of the computation. Sizes follow TransformerLens's names.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub architecture: Architecture,
    pub d_model: usize,
    pub n_layers: usize,
    pub n_heads: usize,
    /// Key/value heads; smaller than `n_heads` under grouped-query attention.
    pub n_kv_heads: usize,
    pub d_head: usize,
    pub d_mlp: usize,
    pub d_vocab: usize,
    /// Longest sequence the model accepts.
    pub n_ctx: usize,
    pub norm: NormKind,
    pub norm_eps: f64,
    pub positional: Positional,
    pub act_fn: ActFn,
    /// SwiGLU-style MLP: `act(x W_gate) * (x W_in)`.
    pub gated_mlp: bool,
    /// Blocks have attention only (no second norm, no MLP), as in the Mathematical Framework's
    /// toy models.
    #[serde(default)]
    pub attn_only: bool,
    /// Biases on the query/key/value projections.
    pub qkv_bias: bool,
    /// Bias on the attention output projection.
    pub attn_out_bias: bool,
    pub mlp_bias: bool,
    /// Bias on the unembedding.
    pub unembed_bias: bool,
    /// The unembedding is the transposed token embedding in the source checkpoint.
    pub tied_embeddings: bool,
    pub bos_token_id: Option<u32>,
    pub eos_token_id: Option<u32>,
    pub pad_token_id: Option<u32>,
    /// Sliding-window attention (Mistral): a query sees only the `w` keys ending at its own
    /// position. `None`: every earlier key.
    #[serde(default)]
    pub sliding_window: Option<usize>,
}

impl ModelConfig {
    /// Query heads per key/value head.
    pub fn kv_group(&self) -> usize {
        self.n_heads / self.n_kv_heads
    }

    /// Checks the sizes and numbers a forward pass depends on: every size positive, heads that
    /// group, a rotary dimension that fits a head, and the norm epsilon and rotary base positive
    /// and finite (a negative or zero epsilon divides by zero, or by the root of a negative
    /// number, on a constant or zero vector; a base <= 0 gives NaN frequencies: either makes
    /// outputs NaN). Names the first problem found by its [`ModelConfig`] field, which each
    /// loader turns into the key of its own file (`rms_norm_eps`,
    /// `llama.attention.layer_norm_rms_epsilon`, ...).
    pub fn validate(&self) -> Result<(), ConfigIssue> {
        let positive = [
            ("d_model", self.d_model),
            ("n_layers", self.n_layers),
            ("n_heads", self.n_heads),
            ("n_kv_heads", self.n_kv_heads),
            ("d_head", self.d_head),
            ("d_mlp", self.d_mlp),
            ("d_vocab", self.d_vocab),
            ("n_ctx", self.n_ctx),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(ConfigIssue::new(name, "must be positive, found 0"));
            }
        }
        if !self.n_heads.is_multiple_of(self.n_kv_heads) {
            return Err(ConfigIssue::new(
                "n_kv_heads",
                format!(
                    "n_heads ({}) must be a multiple of n_kv_heads ({})",
                    self.n_heads, self.n_kv_heads
                ),
            ));
        }
        // The forward pass computes in f32: a value that is positive as f64 but 0 or infinite as
        // f32 is as bad as 0.
        let positive_f32 = |v: f64| v.is_finite() && (v as f32) > 0.0 && (v as f32).is_finite();
        if !positive_f32(self.norm_eps) {
            return Err(ConfigIssue::new(
                "norm_eps",
                format!(
                    "the norm epsilon must be a positive finite number, found {}; with it the {} of a constant or zero vector is NaN, and so is every output",
                    self.norm_eps,
                    if self.norm.centers() {
                        "LayerNorm"
                    } else {
                        "RMSNorm"
                    }
                ),
            ));
        }
        if self.sliding_window == Some(0) {
            return Err(ConfigIssue::new(
                "sliding_window",
                "a sliding window of 0 keys lets no query attend to anything".to_string(),
            ));
        }
        if let Positional::Rotary { dim, theta, .. } = self.positional {
            if dim == 0 || dim > self.d_head || !dim.is_multiple_of(2) {
                return Err(ConfigIssue::new(
                    "rotary_dim",
                    format!(
                        "rotary dimension {dim} must be even, positive and at most d_head ({})",
                        self.d_head
                    ),
                ));
            }
            if !positive_f32(theta) {
                return Err(ConfigIssue::new(
                    "rotary_theta",
                    format!(
                        "the rotary base must be a positive finite number, found {theta}; otherwise the rotary frequencies, and every output, are NaN"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Parameter count (embeddings and unembedding included, tied ones once).
    pub fn n_params(&self) -> usize {
        let d = self.d_model;
        let attn = d * self.n_heads * self.d_head * 2 + d * self.n_kv_heads * self.d_head * 2;
        let mlp = if self.attn_only {
            0
        } else {
            d * self.d_mlp * if self.gated_mlp { 3 } else { 2 }
        };
        let embed = self.d_vocab * d;
        let unembed = if self.tied_embeddings {
            0
        } else {
            d * self.d_vocab
        };
        let pos = if self.positional == Positional::Learned {
            self.n_ctx * d
        } else {
            0
        };
        self.n_layers * (attn + mlp) + embed + unembed + pos
    }
}
