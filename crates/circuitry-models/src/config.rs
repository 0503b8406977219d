//! The architecture-independent description of a decoder-only transformer.
//!
//! Every supported family (GPT-2; Llama and its Qwen2/Qwen3/Mistral/Phi-3 variants; GPT-NeoX;
//! Gemma 1/2/3; OLMo-2) is expressed as a [`ModelConfig`]; the forward pass in
//! [`crate::transformer`] switches on these fields only.

use serde::{Deserialize, Serialize};

/// Which family a model belongs to; decides the weight-name mapping, not the forward pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Architecture {
    Gpt2,
    Llama,
    GptNeox,
    Gemma,
}

impl Architecture {
    pub fn name(self) -> &'static str {
        match self {
            Architecture::Gpt2 => "gpt2",
            Architecture::Llama => "llama",
            Architecture::GptNeox => "gpt_neox",
            Architecture::Gemma => "gemma",
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
    /// The kind with its learned parameters: what the norms that are never folded (post-norms,
    /// query/key norms) are, whatever folding did to the others.
    pub fn unfolded(self) -> NormKind {
        match self {
            NormKind::LayerNorm | NormKind::LayerNormPre => NormKind::LayerNorm,
            NormKind::RmsNorm | NormKind::RmsNormPre => NormKind::RmsNorm,
        }
    }
}

/// Where a block normalises.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockNorms {
    /// Before attention and the MLP (`ln1`, `ln2`): GPT-2, Llama, GPT-NeoX, Gemma 1.
    #[default]
    Pre,
    /// On attention's and the MLP's outputs before they join the residual stream (`ln1_post`,
    /// `ln2_post`): OLMo-2.
    Post,
    /// Both (Gemma 2 and 3).
    PreAndPost,
}

impl BlockNorms {
    pub fn pre(self) -> bool {
        matches!(self, BlockNorms::Pre | BlockNorms::PreAndPost)
    }
    pub fn post(self) -> bool {
        matches!(self, BlockNorms::Post | BlockNorms::PreAndPost)
    }
}

/// Normalisation of queries and keys before the rotary embedding (RMSNorm with a learned scale,
/// `attn.hook_q_normed` / `attn.hook_k_normed`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QkNorm {
    #[default]
    None,
    /// Each head's `d_head` features (Qwen3, Gemma 3).
    PerHead,
    /// All heads' features together, `n_heads * d_head` for queries (OLMo-2).
    Whole,
}

/// Sliding-window attention: a query sees only the `size` keys ending at its own position.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlidingWindow {
    pub size: usize,
    /// The layers that attend within the window (Gemma 2 and 3 alternate); `None`: every layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layers: Option<Vec<usize>>,
}

impl SlidingWindow {
    /// The window layer `l` attends within, if it is one of the window's layers.
    pub fn at(&self, l: usize) -> Option<usize> {
        match &self.layers {
            Some(layers) if !layers.contains(&l) => None,
            _ => Some(self.size),
        }
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// How position enters the model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
        /// The base of the sliding-window layers, which rotate without scaling (Gemma 3's
        /// `rope_local_base_freq`); `None`: every layer uses `theta` and `scaling`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        local_theta: Option<f64>,
    },
}

/// How rotary frequencies are rescaled for long contexts, exactly as Hugging Face transformers
/// 4.48 defines each `rope_type` (`modeling_rope_utils.py`); `components::rotary` computes them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
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
    /// Every frequency divided by its own factor, one per rotated pair: llama.cpp's
    /// `rope_freqs` tensor, which its converter computes from Llama 3's `rope_scaling` (GGUF
    /// files carry the factors, not the parameters).
    Factors { factors: Vec<f64> },
}

/// How `circuitry inspect` describes the scaling.
impl std::fmt::Display for RopeScaling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            RopeScaling::Factors { ref factors } => {
                let (lo, hi) = factors
                    .iter()
                    .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
                        (lo.min(x), hi.max(x))
                    });
                write!(
                    f,
                    "per-frequency factors {lo}..{hi} ({} frequencies, from the file's rope_freqs)",
                    factors.len()
                )
            }
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
    /// Sliding-window attention (Mistral, Phi-3; Gemma 2 and 3 in alternate layers). `None`:
    /// every earlier key.
    #[serde(default)]
    pub sliding_window: Option<SlidingWindow>,
    /// Attention and the MLP both read the block's input and add to it together (GPT-NeoX's
    /// `use_parallel_residual`): `resid_post = resid_pre + attn(ln1(resid_pre)) +
    /// mlp(ln2(resid_pre))`, with no `hook_resid_mid`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub parallel_attn_mlp: bool,
    /// Where blocks normalise. Post-norms keep their learned scale under weight processing (they
    /// write to the residual stream, so there is nothing to fold them into).
    #[serde(default, skip_serializing_if = "is_default")]
    pub block_norms: BlockNorms,
    #[serde(default, skip_serializing_if = "is_default")]
    pub qk_norm: QkNorm,
    /// Attention scores are `q . k / attn_scale`; `None`: `sqrt(d_head)` (Gemma 2 and 3 use
    /// `sqrt(query_pre_attn_scalar)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attn_scale: Option<f64>,
    /// Attention scores soft-capped to `cap * tanh(score / cap)` before the mask (Gemma 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attn_softcap: Option<f64>,
    /// Logits soft-capped to `cap * tanh(logit / cap)` (Gemma 2). Adding a constant to the
    /// logits then changes probabilities, so weight processing leaves the unembedding uncentred.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logit_softcap: Option<f64>,
}

fn is_default<T: Default + PartialEq>(x: &T) -> bool {
    *x == T::default()
}

impl ModelConfig {
    /// Query heads per key/value head.
    pub fn kv_group(&self) -> usize {
        self.n_heads / self.n_kv_heads
    }

    /// The sliding window block `l` attends within, if any.
    pub fn window(&self, l: usize) -> Option<usize> {
        self.sliding_window.as_ref().and_then(|w| w.at(l))
    }

    /// What attention scores are divided by.
    pub fn attn_divisor(&self) -> f64 {
        self.attn_scale.unwrap_or((self.d_head as f64).sqrt())
    }

    /// Why the blocks are not the sequential pre-norm blocks whose outputs sum linearly into
    /// the residual stream (as analyses that decompose it, or differentiate through its norms
    /// by hand, assume), or `None` when they are.
    pub fn nonstandard_blocks(&self) -> Option<&'static str> {
        if self.parallel_attn_mlp {
            Some("its attention and MLP read the same residual stream in parallel")
        } else if self.block_norms.post() {
            Some(
                "it normalises attention and MLP outputs before they join the residual stream, so a head's output is not its share of hook_attn_out",
            )
        } else if !self.block_norms.pre() {
            Some("it has no norms before attention and the MLP")
        } else if self.qk_norm != QkNorm::None {
            Some("it normalises queries and keys")
        } else if self.attn_softcap.is_some() || self.logit_softcap.is_some() {
            Some("it soft-caps attention scores or logits")
        } else {
            None
        }
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
        if self.sliding_window.as_ref().is_some_and(|w| w.size == 0) {
            return Err(ConfigIssue::new(
                "sliding_window",
                "a sliding window of 0 keys lets no query attend to anything".to_string(),
            ));
        }
        for (field, value) in [
            ("attn_scale", self.attn_scale),
            ("attn_softcap", self.attn_softcap),
            ("logit_softcap", self.logit_softcap),
        ] {
            if let Some(v) = value
                && !positive_f32(v)
            {
                return Err(ConfigIssue::new(
                    field,
                    format!("must be a positive finite number, found {v}"),
                ));
            }
        }
        if let Some(layers) = self.sliding_window.as_ref().and_then(|w| w.layers.as_ref())
            && let Some(bad) = layers.iter().find(|&&l| l >= self.n_layers)
        {
            return Err(ConfigIssue::new(
                "sliding_window",
                format!(
                    "layer {bad} of the sliding window does not exist ({} layers)",
                    self.n_layers
                ),
            ));
        }
        if let Positional::Rotary {
            local_theta: Some(local),
            ..
        } = self.positional
            && !positive_f32(local)
        {
            return Err(ConfigIssue::new(
                "rotary_local_theta",
                format!("the local rotary base must be a positive finite number, found {local}"),
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
