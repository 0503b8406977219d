//! `[train.NAME]`: training runs that write a model directory other sections can load, and a
//! learning-curve table `<train name>.parquet`.

use std::path::Path;

use circuitry_circuits::table::{Rows, Table};
use circuitry_data::{Rng, derive_seed};
use circuitry_models::burn::prelude::Device;
use circuitry_models::{ActFn, ModelConfig, Tokenizer};
use circuitry_spec::{Decay, Experiment, TrainRows, TrainSpec};
use circuitry_train::{
    ArchConfig, Checkpoints, CurveRow, DataConfig, EvalConfig, LrDecay, OptimConfig, TrainConfig,
    Trained, train, train_with, word_level_tokenizer_json,
};

use crate::error::RunError;
use crate::progress::Progress;

circuitry_circuits::table_row! {
    /// The learning-curve table of a training run.
    pub struct LearningCurveRow {
        step: u32 = "Updates done when the row was measured.",
        train_loss: f64 = "Next-token loss of the training batch at this step.",
        eval_loss_first_repeat: f64 = "Mean loss on the first copy of r in the held-out [BOS] r r rows.",
        eval_loss_second_repeat: f64 = "Mean loss on the second copy of r (falls when an induction circuit forms).",
        icl_score: f64 = "In-context learning score: eval_loss_second_repeat - eval_loss_first_repeat (negative when the model learns in context).",
        lr: f64 = "Learning rate of the update at this step.",
    }
}

/// The training procedure a `[train.*]` section declares.
pub fn train_config(spec: &TrainSpec) -> TrainConfig {
    let seq_len = spec.seq_len() as usize;
    let data = match &spec.repeats {
        Some(r) => DataConfig {
            seq_len,
            min_repeat: r.min_length as usize,
            max_repeat: r.max_length as usize,
            max_gap: r.max_gap as usize,
            fill: r.fill,
        },
        // Training on a dataset: the repeat distribution is unused but must be valid.
        None => DataConfig {
            seq_len,
            min_repeat: 1,
            max_repeat: 1.max((seq_len - 1) / 2),
            max_gap: 0,
            fill: false,
        },
    };
    TrainConfig {
        seed: spec.seed.unwrap_or(0),
        arch: ArchConfig {
            n_layers: spec.n_layers as usize,
            d_model: spec.d_model as usize,
            n_heads: spec.n_heads as usize,
            d_head: spec.d_head() as usize,
            d_mlp: spec.d_mlp() as usize,
            attn_only: spec.attn_only,
            n_ctx: spec.n_ctx as usize,
            d_vocab: spec.d_vocab as usize,
            act_fn: match spec.act_fn {
                circuitry_spec::ActFn::GeluNew => ActFn::GeluTanh,
                circuitry_spec::ActFn::Gelu => ActFn::Gelu,
                circuitry_spec::ActFn::Relu => ActFn::Relu,
                circuitry_spec::ActFn::Silu => ActFn::Silu,
            },
            norm_eps: 1e-5,
            init_std: spec.init_std,
        },
        optim: OptimConfig {
            steps: spec.steps as usize,
            batch_size: spec.batch_size as usize,
            lr: spec.lr,
            warmup_steps: spec.warmup_steps as usize,
            decay: match spec.decay {
                Decay::Constant => LrDecay::Constant,
                Decay::Linear => LrDecay::Linear,
                Decay::Cosine => LrDecay::Cosine,
            },
            min_lr_ratio: spec.min_lr_ratio,
            weight_decay: spec.weight_decay,
            beta1: spec.beta1,
            beta2: spec.beta2,
            eps: 1e-8,
            grad_clip: (spec.grad_clip > 0.0).then_some(spec.grad_clip),
        },
        data,
        eval: EvalConfig {
            sequences: spec.eval_sequences as usize,
            repeat_len: spec.eval_repeat_len() as usize,
            every: spec.eval_every as usize,
        },
    }
}

/// The configuration of the model a training run writes.
pub fn model_config(spec: &TrainSpec) -> ModelConfig {
    train_config(spec).model_config()
}

fn train_err(experiment: &Experiment, name: &str, key: &str, message: String) -> RunError {
    RunError::Located(Box::new(experiment.diagnostic_at(
        &format!("train.{name}.{key}"),
        format!("train `{name}`: {message}"),
    )))
}

/// Runs training `name` of `experiment`: writes its model directory to `output`, its
/// checkpoints (if it saves any) to `checkpoints/step<N>/`, and returns its learning curve
/// (wall-clock times are the caller's to record: the table is reproducible).
pub fn run(
    name: &str,
    experiment: &Experiment,
    progress: &Progress,
    device: &Device,
    output: &Path,
    checkpoints: &Path,
) -> Result<Table, RunError> {
    let spec = &experiment.train[name];
    let config = train_config(spec);
    let saving = |tokenizer: Option<serde_json::Value>| {
        let steps = spec.checkpoint_steps();
        (!steps.is_empty()).then(|| Checkpoints {
            steps: steps.into_iter().map(|s| s as usize).collect(),
            dir: checkpoints.to_path_buf(),
            tokenizer,
        })
    };
    let bar = progress.bar(&format!("train {name}"), config.optim.steps as u64);
    let report = |p: &circuitry_train::TrainProgress| {
        bar.set_position(p.step as u64);
        bar.set_message(format!("train {name} (loss {:.3})", p.loss));
    };
    let trained = match &spec.dataset {
        None => train(&config, device, saving(None).as_ref(), report),
        Some(dataset) => {
            let (tokenizer, json) = tokenizer_for(experiment, name, spec)?;
            let prompts = dataset_prompts(experiment, name, dataset, &tokenizer, spec)?;
            let (seq_len, batch_size) = (config.data.seq_len, config.optim.batch_size);
            let mut source: Box<dyn FnMut(usize) -> Vec<Vec<u32>>> = match spec.rows {
                TrainRows::Windows => {
                    Box::new(windows(prompts.concat(), seq_len, batch_size, config.seed))
                }
                TrainRows::Prompts => Box::new(whole_prompts(prompts, batch_size, config.seed)),
            };
            let saves = saving(Some(json.clone()));
            let trained = train_with(&config, &mut source, device, saves.as_ref(), report);
            bar.finish_and_clear();
            let trained =
                trained.map_err(|e| train_err(experiment, name, "steps", e.to_string()))?;
            save(&trained, Some(&json), output, experiment, name)?;
            return Ok(curve_table(&trained.curve));
        }
    };
    bar.finish_and_clear();
    let trained = trained.map_err(|e| train_err(experiment, name, "steps", e.to_string()))?;
    save(&trained, None, output, experiment, name)?;
    progress.status(&format!(
        "trained `{name}`: second-repeat loss {:.3} (first {:.3})",
        trained
            .curve
            .last()
            .map_or(f64::NAN, |r| r.eval_loss_second_repeat),
        trained
            .curve
            .last()
            .map_or(f64::NAN, |r| r.eval_loss_first_repeat),
    ));
    Ok(curve_table(&trained.curve))
}

fn save(
    trained: &Trained,
    tokenizer: Option<&serde_json::Value>,
    output: &Path,
    experiment: &Experiment,
    name: &str,
) -> Result<(), RunError> {
    let result = match tokenizer {
        Some(t) => trained.save_with_tokenizer(t, output),
        None => trained.save(output),
    };
    result.map_err(|e| train_err(experiment, name, "output", e.to_string()))
}

/// The tokenizer a dataset-trained run uses: the given `tokenizer.json`, or the synthetic
/// word-level one.
fn tokenizer_for(
    experiment: &Experiment,
    name: &str,
    spec: &TrainSpec,
) -> Result<(Tokenizer, serde_json::Value), RunError> {
    let json = match &spec.tokenizer {
        Some(path) => {
            let path = experiment.resolve_path(path);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                train_err(
                    experiment,
                    name,
                    "tokenizer",
                    format!("{}: {e}", path.display()),
                )
            })?;
            serde_json::from_str(&text).map_err(|e| {
                train_err(
                    experiment,
                    name,
                    "tokenizer",
                    format!("{}: {e}", path.display()),
                )
            })?
        }
        None => word_level_tokenizer_json(spec.d_vocab as usize),
    };
    let inner = tokenizers::Tokenizer::from_bytes(json.to_string().as_bytes())
        .map_err(|e| train_err(experiment, name, "tokenizer", e.to_string()))?;
    let bos = Some(circuitry_train::BOS_TOKEN);
    let tokenizer = Tokenizer::from_inner(inner, experiment.resolve_path(&spec.output))
        .with_special_tokens(bos, bos, None);
    if tokenizer.vocab_size() > spec.d_vocab as usize {
        return Err(train_err(
            experiment,
            name,
            "d_vocab",
            format!(
                "the tokenizer has {} tokens but d_vocab = {}",
                tokenizer.vocab_size(),
                spec.d_vocab
            ),
        ));
    }
    Ok((tokenizer, json))
}

/// Every prompt of the training dataset, tokenized: enough tokens for a row, and with `rows =
/// "prompts"`, each prompt exactly one row long.
fn dataset_prompts(
    experiment: &Experiment,
    name: &str,
    dataset: &str,
    tokenizer: &Tokenizer,
    spec: &TrainSpec,
) -> Result<Vec<Vec<u32>>, RunError> {
    let built = crate::datasets::build(experiment, dataset, tokenizer, usize::MAX)
        .map_err(|e| e.located(experiment, &format!("datasets.{dataset}")))?;
    let seq_len = spec.seq_len() as usize;
    if spec.rows == TrainRows::Prompts
        && let Some(p) = built.prompts.iter().find(|p| p.len() != seq_len)
    {
        return Err(train_err(
            experiment,
            name,
            "rows",
            format!(
                "with rows = \"prompts\" every prompt is one training row of seq_len = {seq_len} tokens, but prompt {} of dataset `{dataset}` has {}",
                p.id,
                p.len()
            ),
        ));
    }
    let prompts: Vec<Vec<u32>> = built.prompts.into_iter().map(|p| p.tokens).collect();
    let total: usize = prompts.iter().map(Vec::len).sum();
    if total < seq_len {
        return Err(train_err(
            experiment,
            name,
            "seq_len",
            format!(
                "dataset `{dataset}` has {total} tokens in all, fewer than one training row of seq_len = {}",
                spec.seq_len()
            ),
        ));
    }
    Ok(prompts)
}

/// Batches of whole prompts drawn uniformly; batch `step` depends only on the seed.
fn whole_prompts(
    prompts: Vec<Vec<u32>>,
    batch_size: usize,
    seed: u64,
) -> impl FnMut(usize) -> Vec<Vec<u32>> {
    move |step| {
        let mut rng = Rng::new(derive_seed(seed, &format!("train/prompts/{step}")));
        (0..batch_size)
            .map(|_| prompts[rng.index(prompts.len())].clone())
            .collect()
    }
}

/// Batches of random windows of the token stream; batch `step` depends only on the seed.
fn windows(
    stream: Vec<u32>,
    seq_len: usize,
    batch_size: usize,
    seed: u64,
) -> impl FnMut(usize) -> Vec<Vec<u32>> {
    move |step| {
        let mut rng = Rng::new(derive_seed(seed, &format!("train/windows/{step}")));
        let starts = stream.len() - seq_len + 1;
        (0..batch_size)
            .map(|_| {
                let start = rng.below(starts as u64) as usize;
                stream[start..start + seq_len].to_vec()
            })
            .collect()
    }
}

fn curve_table(curve: &[CurveRow]) -> Table {
    let mut t = Rows::<LearningCurveRow>::new();
    for r in curve {
        t.push(LearningCurveRow {
            step: r.step as u32,
            train_loss: r.train_loss,
            eval_loss_first_repeat: r.eval_loss_first_repeat,
            eval_loss_second_repeat: r.eval_loss_second_repeat,
            icl_score: r.icl_score,
            lr: r.lr,
        });
    }
    t.into_table()
}
