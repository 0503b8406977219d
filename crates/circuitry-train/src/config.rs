//! The declared training procedure: architecture, optimiser, data, evaluation and seed.
//!
//! A [`TrainConfig`] fully determines a training run: the same configuration (and the same
//! batch source) gives the same checkpoint bit for bit on one machine. It is plain serde data so
//! that callers can read it from their own files and record it next to the model.

use serde::{Deserialize, Serialize};

use circuitry_models::{
    ActFn, Architecture, BlockNorms, ModelConfig, NormKind, Positional, QkNorm,
};

use crate::error::TrainError;

/// Token id of the beginning-of-sequence token in synthetic vocabularies (`t0`).
pub const BOS_TOKEN: u32 = 0;

/// Architecture of a GPT-2-family model: LayerNorm (with learned scale and bias), learned
/// absolute positions, biases on every linear map except the unembedding, untied unembedding.
/// Only the sizes and the MLP nonlinearity are configurable.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchConfig {
    pub n_layers: usize,
    pub d_model: usize,
    pub n_heads: usize,
    /// Must equal `d_model / n_heads` (GPT-2 checkpoints derive it that way).
    pub d_head: usize,
    /// MLP width; ignored (but still validated as positive) when `attn_only`.
    pub d_mlp: usize,
    /// Blocks without MLPs, as in the Mathematical Framework's toy models.
    pub attn_only: bool,
    /// Longest sequence (size of the learned position table).
    pub n_ctx: usize,
    /// Vocabulary size; token 0 is BOS.
    pub d_vocab: usize,
    #[serde(default = "default_act_fn")]
    pub act_fn: ActFn,
    #[serde(default = "default_norm_eps")]
    pub norm_eps: f64,
    /// Standard deviation of the normal initialisation of every weight matrix (GPT-2: 0.02).
    /// The output projections (`W_O`, MLP `W_out`) are further scaled by `1/sqrt(2 n_layers)`.
    #[serde(default = "default_init_std")]
    pub init_std: f64,
}

fn default_act_fn() -> ActFn {
    ActFn::GeluTanh
}
fn default_norm_eps() -> f64 {
    1e-5
}
fn default_init_std() -> f64 {
    0.02
}

/// How the learning rate falls after warm-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LrDecay {
    Constant,
    Linear,
    Cosine,
}

/// AdamW (decoupled weight decay, PyTorch semantics) with a warm-up and decay schedule and
/// clipping by global gradient norm.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimConfig {
    /// Number of parameter updates.
    pub steps: usize,
    /// Sequences per batch.
    pub batch_size: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Updates over which the learning rate rises linearly from `lr / warmup_steps` to `lr`.
    #[serde(default)]
    pub warmup_steps: usize,
    #[serde(default = "default_decay")]
    pub decay: LrDecay,
    /// Learning rate at the end of the decay, as a fraction of `lr`.
    #[serde(default)]
    pub min_lr_ratio: f64,
    /// Decoupled weight decay, applied to weight matrices (embeddings included) only, never to
    /// biases or LayerNorm parameters.
    #[serde(default)]
    pub weight_decay: f64,
    #[serde(default = "default_beta1")]
    pub beta1: f64,
    #[serde(default = "default_beta2")]
    pub beta2: f64,
    #[serde(default = "default_eps")]
    pub eps: f64,
    /// Largest global L2 norm of the gradient (over all parameters); `None`: no clipping.
    #[serde(default)]
    pub grad_clip: Option<f64>,
}

fn default_decay() -> LrDecay {
    LrDecay::Cosine
}
fn default_beta1() -> f64 {
    0.9
}
fn default_beta2() -> f64 {
    0.999
}
fn default_eps() -> f64 {
    1e-8
}

/// The built-in synthetic training distribution (see [`crate::data::RepeatedTokenBatches`]):
/// rows of `seq_len` tokens, `[BOS] noise r gap r noise`, where `r` is a uniformly random
/// sequence of `L` tokens (`L` uniform in `[min_repeat, max_repeat]`), the gap between the two
/// copies holds up to `max_gap` noise tokens, the first copy starts at a uniformly random
/// offset, and every other token is uniform noise. Tokens are drawn uniformly from `1..d_vocab`.
/// With `min_repeat == max_repeat == L`, `max_gap == 0` and `seq_len == 2L + 1` the rows are
/// exactly `[BOS] r r`. Random lengths, gaps and offsets make the distance between the copies
/// vary, so that the model cannot predict the second copy from positions alone and has to learn
/// in context (an induction circuit).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    pub seq_len: usize,
    pub min_repeat: usize,
    pub max_repeat: usize,
    /// Largest number of noise tokens between the two copies.
    #[serde(default)]
    pub max_gap: usize,
    /// After the first pair, keep appending `r gap r` pairs (fresh `r`, no leading noise) while
    /// one of at least `min_repeat` tokens fits; only the tail is noise.
    #[serde(default)]
    pub fill: bool,
}

/// The fixed held-out evaluation set: `sequences` rows of `[BOS] r r` with `|r| = repeat_len`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalConfig {
    pub sequences: usize,
    pub repeat_len: usize,
    /// Evaluate (and record a curve row) every this many updates, and after the last one.
    pub every: usize,
}

/// A complete, seeded training procedure.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Root of every random stream (initialisation, training batches, evaluation set), each
    /// derived with `circuitry_data::derive_seed(seed, label)`.
    pub seed: u64,
    pub arch: ArchConfig,
    pub optim: OptimConfig,
    pub data: DataConfig,
    pub eval: EvalConfig,
}

fn invalid(field: &str, message: impl Into<String>) -> TrainError {
    TrainError::Config {
        field: field.to_string(),
        message: message.into(),
    }
}

impl TrainConfig {
    /// Checks every field and the consistency between them, naming the first problem found.
    pub fn validate(&self) -> Result<(), TrainError> {
        let a = &self.arch;
        for (name, value) in [
            ("arch.n_layers", a.n_layers),
            ("arch.d_model", a.d_model),
            ("arch.n_heads", a.n_heads),
            ("arch.d_head", a.d_head),
            ("arch.d_mlp", a.d_mlp),
            ("arch.n_ctx", a.n_ctx),
            ("optim.steps", self.optim.steps),
            ("optim.batch_size", self.optim.batch_size),
            ("eval.sequences", self.eval.sequences),
            ("eval.repeat_len", self.eval.repeat_len),
            ("eval.every", self.eval.every),
            ("data.min_repeat", self.data.min_repeat),
        ] {
            if value == 0 {
                return Err(invalid(name, "must be positive"));
            }
        }
        if a.d_vocab < 3 {
            return Err(invalid(
                "arch.d_vocab",
                format!(
                    "must be at least 3 (BOS plus two tokens), got {}",
                    a.d_vocab
                ),
            ));
        }
        if a.d_vocab > u32::MAX as usize {
            return Err(invalid("arch.d_vocab", "does not fit token ids in u32"));
        }
        if a.n_heads * a.d_head != a.d_model {
            return Err(invalid(
                "arch.d_head",
                format!(
                    "n_heads * d_head must equal d_model for a GPT-2 checkpoint ({} * {} != {})",
                    a.n_heads, a.d_head, a.d_model
                ),
            ));
        }
        let positive_finite = |name: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(invalid(
                    name,
                    format!("must be a positive finite number, got {v}"),
                ))
            }
        };
        positive_finite("arch.norm_eps", a.norm_eps)?;
        positive_finite("arch.init_std", a.init_std)?;
        let o = &self.optim;
        positive_finite("optim.lr", o.lr)?;
        positive_finite("optim.eps", o.eps)?;
        if let Some(clip) = o.grad_clip {
            positive_finite("optim.grad_clip", clip)?;
        }
        if !(o.weight_decay.is_finite() && o.weight_decay >= 0.0 && o.weight_decay * o.lr < 1.0) {
            return Err(invalid(
                "optim.weight_decay",
                format!(
                    "must be >= 0 with lr * weight_decay < 1, got {}",
                    o.weight_decay
                ),
            ));
        }
        for (name, beta) in [("optim.beta1", o.beta1), ("optim.beta2", o.beta2)] {
            if !(0.0..1.0).contains(&beta) {
                return Err(invalid(name, format!("must lie in [0, 1), got {beta}")));
            }
        }
        if !(0.0..=1.0).contains(&o.min_lr_ratio) {
            return Err(invalid(
                "optim.min_lr_ratio",
                format!("must lie in [0, 1], got {}", o.min_lr_ratio),
            ));
        }
        if o.warmup_steps > o.steps {
            return Err(invalid(
                "optim.warmup_steps",
                format!("({}) exceeds optim.steps ({})", o.warmup_steps, o.steps),
            ));
        }
        let d = &self.data;
        if d.min_repeat > d.max_repeat {
            return Err(invalid(
                "data.min_repeat",
                format!(
                    "({}) exceeds data.max_repeat ({})",
                    d.min_repeat, d.max_repeat
                ),
            ));
        }
        if d.seq_len < 2 * d.max_repeat + 1 {
            return Err(invalid(
                "data.seq_len",
                format!(
                    "({}) must hold [BOS] r r with |r| = max_repeat ({}), i.e. at least {}",
                    d.seq_len,
                    d.max_repeat,
                    2 * d.max_repeat + 1
                ),
            ));
        }
        if d.seq_len > a.n_ctx {
            return Err(invalid(
                "data.seq_len",
                format!("({}) exceeds arch.n_ctx ({})", d.seq_len, a.n_ctx),
            ));
        }
        if 2 * self.eval.repeat_len + 1 > a.n_ctx {
            return Err(invalid(
                "eval.repeat_len",
                format!(
                    "[BOS] r r needs 2 * {} + 1 positions, more than arch.n_ctx ({})",
                    self.eval.repeat_len, a.n_ctx
                ),
            ));
        }
        Ok(())
    }

    /// The model configuration this procedure trains (GPT-2 family).
    pub fn model_config(&self) -> ModelConfig {
        let a = &self.arch;
        ModelConfig {
            architecture: Architecture::Gpt2,
            d_model: a.d_model,
            n_layers: a.n_layers,
            n_heads: a.n_heads,
            n_kv_heads: a.n_heads,
            d_head: a.d_head,
            d_mlp: a.d_mlp,
            d_vocab: a.d_vocab,
            n_ctx: a.n_ctx,
            norm: NormKind::LayerNorm,
            norm_eps: a.norm_eps,
            positional: Positional::Learned,
            act_fn: a.act_fn,
            gated_mlp: false,
            attn_only: a.attn_only,
            qkv_bias: true,
            attn_out_bias: true,
            mlp_bias: true,
            unembed_bias: false,
            tied_embeddings: false,
            bos_token_id: Some(BOS_TOKEN),
            eos_token_id: Some(BOS_TOKEN),
            pad_token_id: None,
            sliding_window: None,
            parallel_attn_mlp: false,
            block_norms: BlockNorms::Pre,
            qk_norm: QkNorm::None,
            attn_scale: None,
            attn_softcap: None,
            logit_softcap: None,
        }
    }

    /// Learning rate of update `step` (0-based): linear warm-up to `lr` over `warmup_steps`
    /// updates (`lr * (step + 1) / warmup_steps`), then `Constant`, `Linear` or `Cosine` decay
    /// from `lr` towards `lr * min_lr_ratio`, reached at `step == steps`.
    pub fn lr_at(&self, step: usize) -> f64 {
        let o = &self.optim;
        if step < o.warmup_steps {
            return o.lr * (step + 1) as f64 / o.warmup_steps as f64;
        }
        let span = (o.steps - o.warmup_steps).max(1) as f64;
        let p = ((step - o.warmup_steps) as f64 / span).min(1.0);
        let min = o.min_lr_ratio;
        let factor = match o.decay {
            LrDecay::Constant => 1.0,
            LrDecay::Linear => 1.0 - (1.0 - min) * p,
            LrDecay::Cosine => min + (1.0 - min) * 0.5 * (1.0 + (std::f64::consts::PI * p).cos()),
        };
        o.lr * factor
    }

    /// The configuration of circuitry's shipped induction-head model: GPT-2 family, 2 layers,
    /// attention only, d_model 64, 4 heads of 16, vocabulary 64 (`t0` = BOS), context 64,
    /// initialisation std 0.1 (with 0.02 attention stays uniform for thousands of steps at this
    /// width), AdamW 6000 steps of 32 sequences, lr 1e-3 with 100 warm-up steps and cosine decay
    /// to 1e-4, weight decay 0.01, betas (0.9, 0.99), gradient clipping at norm 1; trained on
    /// 64-token rows filled with `r r` pairs of random length 4..=31 (random lengths keep the
    /// distance between copies variable, so the second copy can only be predicted in context);
    /// evaluated every 250 steps on 64 held-out `[BOS] r r` rows with `|r| = 20`.
    pub fn induction_2l() -> TrainConfig {
        TrainConfig {
            seed: 0,
            arch: ArchConfig {
                n_layers: 2,
                d_model: 64,
                n_heads: 4,
                d_head: 16,
                d_mlp: 256,
                attn_only: true,
                n_ctx: 64,
                d_vocab: 64,
                act_fn: ActFn::GeluTanh,
                norm_eps: 1e-5,
                init_std: 0.1,
            },
            optim: OptimConfig {
                steps: 6000,
                batch_size: 32,
                lr: 1e-3,
                warmup_steps: 100,
                decay: LrDecay::Cosine,
                min_lr_ratio: 0.1,
                weight_decay: 0.01,
                beta1: 0.9,
                beta2: 0.99,
                eps: 1e-8,
                grad_clip: Some(1.0),
            },
            data: DataConfig {
                seq_len: 64,
                min_repeat: 4,
                max_repeat: 31,
                max_gap: 0,
                fill: true,
            },
            eval: EvalConfig {
                sequences: 64,
                repeat_len: 20,
                every: 250,
            },
        }
    }
}
