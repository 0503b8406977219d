//! `[train.NAME]`: train a small transformer from scratch and save it where `[models.*]` entries
//! can load it. The spec defines and validates the section; training itself lives elsewhere.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::dataset::{DatasetSource, DatasetSpec};
use crate::paths::unsafe_output_dir;
use crate::spec_struct::spec_struct;
use crate::validate::Checker;

spec_struct! {
    /// A training run: a GPT-2-family transformer (LayerNorm, learned positions, untied
    /// unembedding), trained with AdamW from one seed, written where `[models.*]` entries can load
    /// it, with its learning curve written as the table `<train name>.parquet`.
    ///
    /// The training data is either the built-in repeated-token distribution (`repeats`: rows of
    /// `seq_len` tokens holding random sequences repeated at random distances, so that the second
    /// copy can only be predicted in context) or a `[datasets.*]` entry (`dataset`: its prompts
    /// concatenated, with random windows of `seq_len` tokens drawn per step). The learning curve is
    /// measured on a fixed held-out set of `[BOS] r r` rows.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct TrainSpec {
        /// Directory to write the trained model to (config.json, model.safetensors, tokenizer.json,
        /// training.json), relative to the experiment file's directory. It must not be that
        /// directory or one of its parents.
        pub output: String,
        /// Number of transformer blocks (> 0).
        #[schemars(range(min = 1))]
        pub n_layers: u32,
        /// Width of the residual stream (> 0).
        #[schemars(range(min = 1))]
        pub d_model: u32,
        /// Attention heads per layer (> 0); must divide `d_model`.
        #[schemars(range(min = 1))]
        pub n_heads: u32,
        /// Width of the MLP hidden layer. Default: `4 * d_model` (after loading, always set).
        #[schemars(range(min = 1))]
        pub d_mlp: Option<u32>,
        /// Attention-only blocks, without MLPs (the Mathematical Framework's toy models).
        #[serde(default)]
        pub attn_only: bool,
        /// Context length: the longest sequence the model accepts (> 0).
        #[schemars(range(min = 1))]
        pub n_ctx: u32,
        /// Vocabulary size (>= 3: BOS plus two tokens). Token 0 is BOS.
        #[schemars(range(min = 3))]
        pub d_vocab: u32,
        /// MLP activation function.
        #[serde(default)]
        pub act_fn: ActFn,
        /// Standard deviation of the normal initialisation of the weight matrices (> 0; GPT-2:
        /// 0.02; output projections are further scaled by 1/sqrt(2 n_layers)).
        #[schemars(range(min = 0.0))]
        #[serde(default = "default_init_std")]
        pub init_std: f64,
        /// Optimizer steps (> 0).
        #[schemars(range(min = 1))]
        pub steps: u32,
        /// Sequences per step (> 0).
        #[schemars(range(min = 1))]
        #[serde(default = "default_batch_size")]
        pub batch_size: u32,
        /// Length of the training rows in tokens (at most `n_ctx`). Default: `n_ctx`.
        #[schemars(range(min = 2))]
        pub seq_len: Option<u32>,
        /// Peak learning rate of AdamW (> 0).
        #[schemars(range(min = 0.0))]
        #[serde(default = "default_lr")]
        pub lr: f64,
        /// Steps of linear learning-rate warm-up (at most `steps`).
        #[serde(default)]
        pub warmup_steps: u32,
        /// How the learning rate falls after warm-up.
        #[serde(default)]
        pub decay: Decay,
        /// Learning rate at the end of the decay, as a fraction of `lr` (0 to 1).
        #[schemars(range(min = 0.0, max = 1.0))]
        #[serde(default)]
        pub min_lr_ratio: f64,
        /// AdamW decoupled weight decay on weight matrices (>= 0, with `lr * weight_decay < 1`;
        /// never on biases or LayerNorm).
        #[schemars(range(min = 0.0))]
        #[serde(default = "default_weight_decay")]
        pub weight_decay: f64,
        /// AdamW's first-moment decay (0 to 1).
        #[serde(default = "default_beta1")]
        pub beta1: f64,
        /// AdamW's second-moment decay (0 to 1).
        #[serde(default = "default_beta2")]
        pub beta2: f64,
        /// Clip the gradient's global norm to this value; 0 disables clipping.
        #[schemars(range(min = 0.0))]
        #[serde(default = "default_grad_clip")]
        pub grad_clip: f64,
        /// The built-in repeated-token training distribution (exactly one of `repeats` and
        /// `dataset`).
        pub repeats: Option<Repeats>,
        /// Train on this `[datasets.*]` entry instead: its prompts, tokenized with `tokenizer`,
        /// concatenated, and cut into random windows of `seq_len` tokens.
        pub dataset: Option<String>,
        /// How `dataset`'s prompts become training rows: "windows" (concatenated and cut into
        /// random windows of `seq_len` tokens; the default) or "prompts" (each row one whole prompt,
        /// drawn uniformly at random per step: for tasks whose prompts are examples, e.g. a
        /// `causal_model` dataset whose template ends with `{output}`; every prompt must then have
        /// `seq_len` tokens).
        #[serde(default)]
        pub rows: TrainRows,
        /// The tokenizer (`tokenizer.json`) that tokenizes `dataset` and ships with the model.
        /// Default: a word-level vocabulary `t0 .. t{d_vocab-1}` (text `"t5 t7"` is tokens 5, 7).
        pub tokenizer: Option<String>,
        /// Evaluate (and record a learning-curve row) every this many steps (> 0).
        #[schemars(range(min = 1))]
        #[serde(default = "default_eval_every")]
        pub eval_every: u32,
        /// Held-out `[BOS] r r` rows the learning curve is measured on (> 0).
        #[schemars(range(min = 1))]
        #[serde(default = "default_eval_sequences")]
        pub eval_sequences: u32,
        /// Length of `r` in the held-out rows (`2 * eval_repeat_len + 1 <= n_ctx`). Default:
        /// `min(20, (n_ctx - 1) / 2)`.
        #[schemars(range(min = 1))]
        pub eval_repeat_len: Option<u32>,
        /// Seed of every random stream (initialisation, batches, held-out set). Default: derived
        /// from the experiment's `seed` and the run's name (after loading, always set).
        pub seed: Option<u64>,
        /// Save a checkpoint every this many steps (> 0): model directories
        /// `<output>/checkpoints/step<N>/` after N = 0 (the initialisation), save_every,
        /// 2 x save_every, ... updates, and after the last. A `[models.*]` entry with
        /// `checkpoints = "<output>/checkpoints"` runs its analyses on every one, with a `step`
        /// column. At most one of `save_every` and `save_steps`.
        #[schemars(range(min = 1))]
        pub save_every: Option<u32>,
        /// Save checkpoints after exactly these numbers of updates (each at most `steps`; 0 is the
        /// initialisation), instead of `save_every`.
        pub save_steps: Option<Vec<u32>>,
    }
}

/// How a training dataset's prompts become rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TrainRows {
    /// Random windows of `seq_len` tokens of the concatenated prompts.
    #[default]
    Windows,
    /// Whole prompts of `seq_len` tokens, drawn uniformly.
    Prompts,
}

/// The built-in training distribution: rows of `seq_len` tokens `[BOS] noise r gap r noise`,
/// `r` a uniformly random sequence whose length is uniform in `[min_length, max_length]`; the
/// copies' distance varies, so only in-context learning (an induction circuit) predicts the
/// second copy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Repeats {
    /// Shortest repeated sequence (> 0).
    #[schemars(range(min = 1))]
    pub min_length: u32,
    /// Longest repeated sequence (>= `min_length`; `2 * max_length + 1 <= seq_len`, so that
    /// `[BOS] r r` fits a row).
    #[schemars(range(min = 1))]
    pub max_length: u32,
    /// Most noise tokens between the two copies.
    #[serde(default)]
    pub max_gap: u32,
    /// After the first pair, keep appending pairs while one fits (only the tail is noise).
    #[serde(default)]
    pub fill: bool,
}

/// Learning-rate decay after warm-up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Decay {
    /// Constant after warm-up.
    Constant,
    /// Linear down to `min_lr_ratio * lr`.
    Linear,
    /// Cosine down to `min_lr_ratio * lr` (default).
    #[default]
    Cosine,
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
fn default_eval_sequences() -> u32 {
    64
}
fn default_init_std() -> f64 {
    0.02
}
fn default_beta1() -> f64 {
    0.9
}
fn default_beta2() -> f64 {
    0.999
}

impl TrainSpec {
    /// Fills the defaults that depend on other values.
    pub(crate) fn resolve(&mut self, derived_seed: u64) {
        if self.d_mlp.is_none() {
            self.d_mlp = Some(self.d_model.saturating_mul(4));
        }
        self.seed.get_or_insert(derived_seed);
    }

    /// Head width: `d_model / n_heads` (GPT-2 checkpoints derive it that way).
    pub fn d_head(&self) -> u32 {
        self.d_model / self.n_heads.max(1)
    }

    /// Training row length (`n_ctx` unless given).
    pub fn seq_len(&self) -> u32 {
        self.seq_len.unwrap_or(self.n_ctx)
    }

    /// Length of `r` in the held-out `[BOS] r r` rows.
    pub fn eval_repeat_len(&self) -> u32 {
        self.eval_repeat_len
            .unwrap_or_else(|| 20.min(self.n_ctx.saturating_sub(1) / 2).max(1))
    }

    /// The steps checkpoints are saved at, ascending (empty: none).
    pub fn checkpoint_steps(&self) -> Vec<u32> {
        let mut steps: Vec<u32> = match (self.save_every, &self.save_steps) {
            (Some(every), _) if every > 0 => (0..=self.steps)
                .step_by(every as usize)
                .chain(std::iter::once(self.steps))
                .collect(),
            (_, Some(steps)) => steps.iter().copied().filter(|&s| s <= self.steps).collect(),
            _ => Vec::new(),
        };
        steps.sort_unstable();
        steps.dedup();
        steps
    }

    /// MLP width (`4 * d_model` unless given).
    pub fn d_mlp(&self) -> u32 {
        self.d_mlp.unwrap_or(self.d_model.saturating_mul(4))
    }

    /// Checks ranges and consistency, and, with a `dataset`, that it can be trained on.
    pub(crate) fn validate(&self, c: &mut Checker<'_, '_>) {
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
            ("eval_sequences", self.eval_sequences),
        ] {
            c.positive(key, value);
        }
        if let Some(d) = self.d_mlp {
            c.positive("d_mlp", d);
        }
        if self.n_heads > 0 && !self.d_model.is_multiple_of(self.n_heads) {
            c.error(
                "n_heads",
                format!(
                    "d_model = {} is not divisible by n_heads = {}",
                    self.d_model, self.n_heads
                ),
            )
            .hint = Some("choose n_heads dividing d_model (d_head = d_model / n_heads)".into());
        }
        if self.d_vocab > 0 && self.d_vocab < 3 {
            c.error(
                "d_vocab",
                format!(
                    "`d_vocab` must be at least 3 (BOS plus two tokens), found {}",
                    self.d_vocab
                ),
            );
        }
        if let Some(l) = self.eval_repeat_len {
            c.positive("eval_repeat_len", l);
        }
        c.positive("lr", self.lr);
        c.non_negative("weight_decay", self.weight_decay);
        if self.weight_decay * self.lr >= 1.0 {
            c.error(
                "weight_decay",
                format!(
                    "lr x weight_decay = {} x {} is at least 1: every step would zero or flip the weights",
                    self.lr, self.weight_decay
                ),
            )
            .hint = Some("AdamW multiplies the weights by 1 - lr x weight_decay each step; use a smaller weight_decay".into());
        }
        c.non_negative("grad_clip", self.grad_clip);
        c.positive("init_std", self.init_std);
        for (key, value) in [
            ("min_lr_ratio", self.min_lr_ratio),
            ("beta1", self.beta1),
            ("beta2", self.beta2),
        ] {
            if !(0.0..=1.0).contains(&value) || (key != "min_lr_ratio" && value >= 1.0) {
                c.error(key, format!("`{key}` must be in [0, 1), found {value}"));
            }
        }
        match (self.save_every, &self.save_steps) {
            (Some(_), Some(_)) => {
                c.error(
                    "save_steps",
                    "give at most one of `save_every` and `save_steps`",
                )
                .hint = Some("save_every = 100 saves steps 0, 100, 200, ... and the last".into());
            }
            (Some(every), None) => c.positive("save_every", every),
            (None, Some(steps)) => {
                if let Some(bad) = steps.iter().find(|&&s| s > self.steps) {
                    c.error(
                        "save_steps",
                        format!("step {bad} is past the last of steps = {}", self.steps),
                    );
                }
                c.distinct("save_steps", steps);
            }
            (None, None) => {}
        }
        if self.warmup_steps > self.steps {
            c.error(
                "warmup_steps",
                format!(
                    "warmup_steps = {} exceeds steps = {}",
                    self.warmup_steps, self.steps
                ),
            );
        }
        let seq_len = self.seq_len();
        if seq_len < 2 || seq_len > self.n_ctx {
            c.error(
                "seq_len",
                format!(
                    "seq_len = {seq_len} must be between 2 and n_ctx = {}",
                    self.n_ctx
                ),
            );
        }
        let l = self.eval_repeat_len();
        if 2 * l + 1 > self.n_ctx {
            c.error(
                "eval_repeat_len",
                format!(
                    "held-out rows [BOS] r r with |r| = {l} have {} tokens but n_ctx = {}",
                    2 * l + 1,
                    self.n_ctx
                ),
            );
        }
        if c.exactly_one_of(
            ("repeats", self.repeats.is_some()),
            ("dataset", self.dataset.is_some()),
            "a training run needs data: `repeats = { min_length = .., max_length = .. }` or `dataset = \"NAME\"`",
            "e.g. repeats = { min_length = 4, max_length = 31, fill = true }",
        ) && let Some(r) = &self.repeats
        {
            if r.min_length == 0 || r.max_length < r.min_length {
                c.error(
                    if r.min_length == 0 {
                        "repeats.min_length"
                    } else {
                        "repeats.max_length"
                    },
                    format!(
                        "`repeats` needs 0 < min_length <= max_length, found {} and {}",
                        r.min_length, r.max_length
                    ),
                );
            } else {
                // Every row holds [BOS] r r with |r| up to max_length.
                for (key, len) in [("min_length", r.min_length), ("max_length", r.max_length)] {
                    if 2 * u64::from(len) + 1 > u64::from(seq_len) {
                        c.error(
                            &format!("repeats.{key}"),
                            format!(
                                "two copies of {key} = {len} tokens plus BOS do not fit in seq_len = {seq_len}{}",
                                if self.seq_len.is_none() { " (n_ctx)" } else { "" }
                            ),
                        )
                        .hint = Some(format!(
                            "use {key} <= (seq_len - 1) / 2 = {}, or a longer seq_len (at most n_ctx)",
                            seq_len.saturating_sub(1) / 2
                        ));
                        break;
                    }
                }
            }
            if self.tokenizer.is_some() {
                c.error(
                    "tokenizer",
                    "`tokenizer` goes with `dataset`; `repeats` rows are token ids",
                );
            }
        }
        if self.dataset.is_none() && self.rows != TrainRows::Windows {
            c.error(
                "rows",
                "`rows` says how `dataset` prompts become rows; `repeats` makes its own",
            )
            .hint = Some("remove `rows`, or train on a dataset".into());
        }
        if let Some((name, dataset)) = c.dataset {
            self.validate_dataset(c, name, dataset);
        }
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
            }
            DatasetSource::Ioi(_) => {
                c.error(
                    "dataset",
                    format!("dataset `{name}` uses the ioi generator, which is for analyses, not training"),
                )
                .hint = Some("train on a repeated_tokens generator, inline prompts or a file".into());
            }
            DatasetSource::Prompts(_)
            | DatasetSource::Tokens(_)
            | DatasetSource::File(_)
            | DatasetSource::Text(_)
            | DatasetSource::CausalModel(_) => {}
            DatasetSource::Counterfactuals(_) => {
                c.error(
                    "dataset",
                    format!("dataset `{name}` is counterfactual pairs, which are for interventions, not training"),
                )
                .hint = Some("train on the base dataset, or on a causal_model dataset whose template ends with {output}".into());
            }
        }
    }
}
