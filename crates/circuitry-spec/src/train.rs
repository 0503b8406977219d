//! `[train.NAME]`: train a small transformer from scratch and save it where `[models.*]` entries
//! can load it. The spec defines and validates the section; training itself lives elsewhere.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::dataset::{DatasetSource, DatasetSpec};
use crate::paths::unsafe_output_dir;
use crate::validate::Checker;

/// A training run: architecture, data and optimizer settings, and where the model is written.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrainSpec {
    /// Directory to write the trained model to (config.json, model.safetensors, tokenizer.json),
    /// relative to the experiment file's directory. It must not be that directory or one of its
    /// parents.
    pub output: String,
    /// The training data: a `[datasets.*]` entry with the `repeated_tokens` generator, inline
    /// `prompts` or a `file`.
    pub dataset: String,
    /// Number of transformer blocks (> 0).
    #[schemars(range(min = 1))]
    pub n_layers: u32,
    /// Width of the residual stream (> 0).
    #[schemars(range(min = 1))]
    pub d_model: u32,
    /// Attention heads per layer (> 0).
    #[schemars(range(min = 1))]
    pub n_heads: u32,
    /// Width of each head. Default: `d_model / n_heads` (after loading, always set).
    #[schemars(range(min = 1))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub d_head: Option<u32>,
    /// Width of the MLP hidden layer. Default: `4 * d_model` (after loading, always set).
    #[schemars(range(min = 1))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub d_mlp: Option<u32>,
    /// Attention-only blocks, without MLPs.
    #[serde(default)]
    pub attn_only: bool,
    /// Context length: the longest sequence the model accepts (> 0).
    #[schemars(range(min = 1))]
    pub n_ctx: u32,
    /// Vocabulary size (> 0).
    #[schemars(range(min = 1))]
    pub d_vocab: u32,
    /// MLP activation function.
    #[serde(default)]
    pub act_fn: ActFn,
    /// Optimizer steps (> 0).
    #[schemars(range(min = 1))]
    pub steps: u32,
    /// Sequences per step (> 0).
    #[schemars(range(min = 1))]
    #[serde(default = "default_batch_size")]
    pub batch_size: u32,
    /// Peak learning rate of AdamW (> 0).
    #[schemars(range(min = 0.0))]
    #[serde(default = "default_lr")]
    pub lr: f64,
    /// Steps of linear learning-rate warm-up (at most `steps`).
    #[serde(default)]
    pub warmup_steps: u32,
    /// AdamW weight decay (>= 0).
    #[schemars(range(min = 0.0))]
    #[serde(default = "default_weight_decay")]
    pub weight_decay: f64,
    /// Clip the gradient's global norm to this value; 0 disables clipping.
    #[schemars(range(min = 0.0))]
    #[serde(default = "default_grad_clip")]
    pub grad_clip: f64,
    /// Evaluate and log the loss every this many steps (> 0).
    #[schemars(range(min = 1))]
    #[serde(default = "default_eval_every")]
    pub eval_every: u32,
    /// Seed for initialization and batch order. Default: derived from the experiment's `seed`
    /// and the run's name (after loading, always set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

/// An MLP activation function.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActFn {
    /// GELU, tanh approximation (GPT-2's `gelu_new`; default).
    #[default]
    GeluNew,
    /// GELU, exact (erf).
    Gelu,
    /// ReLU.
    Relu,
    /// SiLU (swish).
    Silu,
}

fn default_batch_size() -> u32 {
    32
}
fn default_lr() -> f64 {
    1e-3
}
fn default_weight_decay() -> f64 {
    0.01
}
fn default_grad_clip() -> f64 {
    1.0
}
fn default_eval_every() -> u32 {
    100
}

impl TrainSpec {
    /// Fills the defaults that depend on other values.
    pub(crate) fn resolve(&mut self, derived_seed: u64) {
        if self.d_head.is_none() && self.n_heads > 0 {
            self.d_head = Some(self.d_model / self.n_heads);
        }
        if self.d_mlp.is_none() {
            self.d_mlp = Some(self.d_model.saturating_mul(4));
        }
        self.seed.get_or_insert(derived_seed);
    }

    /// Head width (`d_model / n_heads` unless given).
    pub fn d_head(&self) -> u32 {
        self.d_head.unwrap_or(self.d_model / self.n_heads.max(1))
    }

    /// MLP width (`4 * d_model` unless given).
    pub fn d_mlp(&self) -> u32 {
        self.d_mlp.unwrap_or(self.d_model.saturating_mul(4))
    }

    /// Checks ranges and, when `dataset` is valid, that the data fits the model.
    pub(crate) fn validate(&self, c: &mut Checker<'_, '_>, given_d_head: bool) {
        if let Some(why) = unsafe_output_dir(&self.output) {
            c.error(
                "output",
                format!("cannot train into `{}`: {why}", self.output),
            )
            .hint =
                Some("write a directory of its own, e.g. output = \"models/attn-only-2l\"".into());
        }
        for (key, value) in [
            ("n_layers", self.n_layers),
            ("d_model", self.d_model),
            ("n_heads", self.n_heads),
            ("n_ctx", self.n_ctx),
            ("d_vocab", self.d_vocab),
            ("steps", self.steps),
            ("batch_size", self.batch_size),
            ("eval_every", self.eval_every),
        ] {
            c.positive(key, value);
        }
        if let Some(d) = self.d_head {
            c.positive("d_head", d);
        }
        if let Some(d) = self.d_mlp {
            c.positive("d_mlp", d);
        }
        if !given_d_head && self.n_heads > 0 && !self.d_model.is_multiple_of(self.n_heads) {
            c.error(
                "n_heads",
                format!(
                    "d_model = {} is not divisible by n_heads = {}",
                    self.d_model, self.n_heads
                ),
            )
            .hint = Some("set d_head explicitly, or choose n_heads dividing d_model".into());
        }
        c.positive("lr", self.lr);
        c.non_negative("weight_decay", self.weight_decay);
        c.non_negative("grad_clip", self.grad_clip);
        if self.warmup_steps > self.steps {
            c.error(
                "warmup_steps",
                format!(
                    "warmup_steps = {} exceeds steps = {}",
                    self.warmup_steps, self.steps
                ),
            );
        }
        let Some((name, dataset)) = c.dataset else {
            return;
        };
        self.validate_dataset(c, name, dataset);
    }

    fn validate_dataset(&self, c: &mut Checker<'_, '_>, name: &str, dataset: &DatasetSpec) {
        match &dataset.source {
            DatasetSource::RepeatedTokens(r) => {
                if let Some([_, hi]) = r.token_range
                    && hi > self.d_vocab
                {
                    c.error(
                        "d_vocab",
                        format!(
                            "dataset `{name}` draws token ids up to {} but d_vocab = {}",
                            hi - 1,
                            self.d_vocab
                        ),
                    );
                }
                let len =
                    u64::from(r.length) * u64::from(r.repeats) + u64::from(dataset.prepend_bos);
                if len > u64::from(self.n_ctx) {
                    c.error(
                        "n_ctx",
                        format!(
                            "dataset `{name}` has sequences of {len} tokens but n_ctx = {}",
                            self.n_ctx
                        ),
                    );
                }
            }
            DatasetSource::Ioi(_) => {
                c.error(
                    "dataset",
                    format!("dataset `{name}` uses the ioi generator, which is for analyses, not training"),
                )
                .hint = Some("train on a repeated_tokens generator, inline prompts or a file".into());
            }
            DatasetSource::Prompts(_) | DatasetSource::Tokens(_) | DatasetSource::File(_) => {}
        }
    }
}
