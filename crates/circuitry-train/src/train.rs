//! The training loop: next-token cross-entropy on batches from a [`BatchSource`], AdamW on an
//! autodiff device, and a learning curve evaluated on the fixed `[BOS] r r` set.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::prelude::*;

use circuitry_models::Transformer;

use crate::config::TrainConfig;
use crate::curve::CurveRow;
use crate::data::{BatchSource, RepeatedTokenBatches, eval_rows};
use crate::error::TrainError;
use crate::eval::{lm_loss, repeat_losses};
use crate::init::init_weights;
use crate::optim::AdamW;
use crate::output::save_model_dir;

/// Where and when a training run saves its model along the way: `dir/step<N>/`
/// (`circuitry_vocab::checkpoints`) after `N` updates for every `N` in `steps` (0 is the
/// initialisation; steps past the last update are never reached), each a model directory like
/// the final one.
#[derive(Clone, Debug)]
pub struct Checkpoints {
    pub steps: BTreeSet<usize>,
    pub dir: PathBuf,
    /// The `tokenizer.json` document each ships (`None`: the word-level one).
    pub tokenizer: Option<serde_json::Value>,
}

/// Reported after every update, and once more after the final evaluation.
#[derive(Clone, Debug)]
pub struct TrainProgress<'a> {
    /// Updates done so far, counting this one (`steps` at the final report).
    pub step: usize,
    pub steps: usize,
    /// Loss of this update's batch, before the update.
    pub loss: f32,
    pub lr: f64,
    /// Global gradient norm before clipping (0 at the final report).
    pub grad_norm: f64,
    /// The curve row recorded at this step, if any.
    pub eval: Option<&'a CurveRow>,
}

/// A trained model (on the non-autodiff device it was asked to train on), its learning curve and
/// the configuration that produced it.
#[derive(Debug)]
pub struct Trained {
    pub model: Transformer,
    pub curve: Vec<CurveRow>,
    pub config: TrainConfig,
}

/// Trains on the configuration's own seeded repeated-token distribution
/// ([`RepeatedTokenBatches::from_config`]).
pub fn train(
    cfg: &TrainConfig,
    device: &Device,
    checkpoints: Option<&Checkpoints>,
    progress: impl FnMut(&TrainProgress),
) -> Result<Trained, TrainError> {
    cfg.validate()?;
    let mut source = RepeatedTokenBatches::from_config(cfg);
    train_with(cfg, &mut source, device, checkpoints, progress)
}

/// Trains on batches from `source` (`cfg.data` and `cfg.optim.batch_size` are then unused, but
/// still validated). `device` may be plain or autodiff; training runs on its autodiff form.
pub fn train_with(
    cfg: &TrainConfig,
    source: &mut dyn BatchSource,
    device: &Device,
    checkpoints: Option<&Checkpoints>,
    mut progress: impl FnMut(&TrainProgress),
) -> Result<Trained, TrainError> {
    cfg.validate()?;
    let steps = cfg.optim.steps;
    let autodiff = device.clone().autodiff();
    let mut model = Transformer::from_weights(init_weights(cfg), &autodiff)?;
    let eval = eval_rows(cfg);
    let mut opt = AdamW::new(&cfg.optim);
    let mut curve = Vec::new();
    let start = Instant::now();
    for step in 0..=steps {
        let rows = source.batch(step);
        check_batch(cfg, step, &rows)?;
        let record = step % cfg.eval.every == 0 || step == steps;
        let lr = cfg.lr_at(step);
        let checkpoint = checkpoints.filter(|c| c.steps.contains(&step));
        let save = |c: &Checkpoints, model: &Transformer, curve: &[CurveRow]| {
            let row = curve.last().filter(|r| r.step == step);
            let dir = c
                .dir
                .join(circuitry_vocab::checkpoints::step_dir_name(step as u64));
            save_model_dir(model, Some((cfg, row)), c.tokenizer.as_ref(), &dir)
        };
        if step == steps {
            let valid = model.valid();
            let loss = lm_loss(&valid, &rows).into_scalar::<f32>();
            finite(step, loss)?;
            let row = evaluate(&valid, cfg, &eval, step, loss, lr, &start);
            curve.push(row);
            if let Some(c) = checkpoint {
                save(c, &valid, &curve)?;
            }
            progress(&TrainProgress {
                step,
                steps,
                loss,
                lr,
                grad_norm: 0.0,
                eval: curve.last(),
            });
            return Ok(Trained {
                model: valid,
                curve,
                config: cfg.clone(),
            });
        }
        let loss_t = lm_loss(&model, &rows);
        let loss = loss_t.clone().into_scalar::<f32>();
        finite(step, loss)?;
        if record {
            let row = evaluate(&model.valid(), cfg, &eval, step, loss, lr, &start);
            curve.push(row);
        }
        if let Some(c) = checkpoint {
            save(c, &model.valid(), &curve)?;
        }
        let grads = loss_t.backward();
        let (updated, stats) = opt.step(model, grads, lr);
        model = updated;
        progress(&TrainProgress {
            step: step + 1,
            steps,
            loss,
            lr,
            grad_norm: stats.grad_norm,
            eval: if record { curve.last() } else { None },
        });
    }
    unreachable!("the loop returns after the last step")
}

fn evaluate(
    model: &Transformer,
    cfg: &TrainConfig,
    eval: &[Vec<u32>],
    step: usize,
    train_loss: f32,
    lr: f64,
    start: &Instant,
) -> CurveRow {
    let r = repeat_losses(model, eval, cfg.eval.repeat_len);
    CurveRow {
        step,
        train_loss: train_loss as f64,
        eval_loss_first_repeat: r.first_repeat,
        eval_loss_second_repeat: r.second_repeat,
        icl_score: r.icl_score,
        lr,
        elapsed_s: start.elapsed().as_secs_f64(),
    }
}

fn finite(step: usize, value: f32) -> Result<(), TrainError> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(TrainError::NonFinite { step, value })
    }
}

fn check_batch(cfg: &TrainConfig, step: usize, rows: &[Vec<u32>]) -> Result<(), TrainError> {
    let err = |message: String| Err(TrainError::Batch { step, message });
    let Some(first) = rows.first() else {
        return err("the batch is empty".into());
    };
    let len = first.len();
    if len < 2 || len > cfg.arch.n_ctx {
        return err(format!(
            "rows must have 2 to n_ctx = {} tokens, found {len}",
            cfg.arch.n_ctx
        ));
    }
    for (i, row) in rows.iter().enumerate() {
        if row.len() != len {
            return err(format!(
                "row {i} has {} tokens, row 0 has {len}; rows must have equal length",
                row.len()
            ));
        }
        if let Some(&t) = row.iter().find(|&&t| t as usize >= cfg.arch.d_vocab) {
            return err(format!(
                "row {i} has token id {t}, outside the vocabulary of {}",
                cfg.arch.d_vocab
            ));
        }
    }
    Ok(())
}

impl Trained {
    /// Writes the model directory ([`crate::output`]) atomically to `dir`.
    pub fn save(&self, dir: &Path) -> Result<(), TrainError> {
        save_model_dir(
            &self.model,
            Some((&self.config, self.curve.last())),
            None,
            dir,
        )
    }

    /// Like [`Trained::save`], shipping `tokenizer` (a `tokenizer.json` document) instead of the
    /// synthetic word-level one.
    pub fn save_with_tokenizer(
        &self,
        tokenizer: &serde_json::Value,
        dir: &Path,
    ) -> Result<(), TrainError> {
        save_model_dir(
            &self.model,
            Some((&self.config, self.curve.last())),
            Some(tokenizer),
            dir,
        )
    }
}
