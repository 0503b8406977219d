//! `icl_score`: Olsson et al.'s in-context learning score per prompt (the loss on a late token
//! minus the loss on an early one), the mean loss at every token index, and their summary.
//!
//! The loss on token `t` is `-log p(tokens[t] | tokens[..t])`, read from the logits at `t - 1`
//! ([`token_losses`]); `MetricKind::IclScore` is the same quantity as an intervention metric.

use circuitry_models::burn::prelude::*;
use circuitry_models::burn::tensor::activation::log_softmax;
use circuitry_models::host_values;
use circuitry_spec::IclScoreParams;

use super::prelude::*;

crate::table_row! {
    /// One prompt's score.
    pub struct IclScoreRow {
        prompt = "Prompt id (index in the dataset).",
        n_tokens: u32 = "Tokens in the prompt.",
        early: u32 = "The early token index.",
        late: u32 = "The late token index.",
        loss_early: f64 = "Loss on the early token, -log p(tokens[early] | tokens[..early]).",
        loss_late: f64 = "Loss on the late token.",
        icl_score: f64 = "loss_late - loss_early (negative: the model predicts better with more context).",
    }
}

crate::table_row! {
    /// The loss curve: one row per token index.
    pub struct IclPositionRow {
        token: u32 = "Token index t (>= 1) whose prediction from tokens[..t] is scored.",
        mean_loss: f64 = "Mean loss on token t over the prompts that have it.",
        sem_loss: Option<f64> = "Standard error of that mean (null for fewer than 2 prompts).",
        n_prompts: u32 = "Prompts with a token t.",
    }
}

crate::table_row! {
    /// The dataset's means.
    pub struct IclSummaryRow {
        early: u32 = "The early token index.",
        late: u32 = "The late token index.",
        loss_early: f64 = "Mean loss on the early token.",
        loss_late: f64 = "Mean loss on the late token.",
        icl_score: f64 = "Mean ICL score (loss_late - loss_early).",
        sem_icl_score: Option<f64> = "Standard error of the mean ICL score (null for fewer than 2 prompts).",
        n_prompts: u32 = "Prompts scored.",
    }
}

/// The loss on every token of every prompt of the batch: `losses[r][t - 1]` is the loss on token
/// `t` of prompt `r` (`t` in `1..len`), from the clean run's logits. One prompt's log-softmax at
/// a time, so the batch's logits are never copied whole.
pub fn token_losses(batch: &BatchContext) -> Result<Vec<Vec<f64>>, AnalysisError> {
    let logits =
        batch.clean_output.logits.as_ref().ok_or_else(|| {
            AnalysisError::new("internal error: the forward pass produced no logits")
        })?;
    let [_, t, v] = logits.dims();
    let device = logits.device();
    let mut out = Vec::with_capacity(batch.prompts.len());
    for (r, prompt) in batch.prompts.iter().enumerate() {
        let n = prompt.len();
        if n < 2 {
            out.push(Vec::new());
            continue;
        }
        // The next token of every slot's token, 0 where there is none (padding, the last token).
        let mut next = vec![0i64; t];
        for i in 0..n - 1 {
            next[batch.slot(r, i)] = i64::from(prompt.tokens[i + 1]);
        }
        let rows = logits.clone().slice([r..r + 1, 0..t, 0..v]).reshape([t, v]);
        let index = Tensor::<2, Int>::from_data(TensorData::new(next, [t, 1]), &device);
        let logp = host_values(&log_softmax(rows, 1).gather(1, index));
        out.push(
            (0..n - 1)
                .map(|i| -f64::from(logp[batch.slot(r, i)]))
                .collect(),
        );
    }
    Ok(out)
}

/// Every prompt of the batch must have a token `late` (an error at `late` otherwise).
pub(crate) fn check_lengths(batch: &BatchContext, late: usize) -> Result<(), AnalysisError> {
    match batch.prompts.iter().find(|p| p.len() <= late) {
        Some(p) => Err(AnalysisError::at(
            "late",
            format!(
                "prompt {} has {} tokens, so it has no token {late} (late); every prompt needs more than `late` tokens",
                p.id,
                p.len()
            ),
        )),
        None => Ok(()),
    }
}

/// Running sums of a quantity: count, sum, sum of squares.
#[derive(Clone, Copy, Default)]
struct Sums {
    n: u32,
    sum: f64,
    sum_sq: f64,
}

impl Sums {
    fn add(&mut self, x: f64) {
        self.n += 1;
        self.sum += x;
        self.sum_sq += x * x;
    }

    fn mean(&self) -> f64 {
        self.sum / f64::from(self.n)
    }

    /// The standard error of the mean (sample variance), `None` below two values.
    fn sem(&self) -> Option<f64> {
        (self.n >= 2).then(|| {
            let n = f64::from(self.n);
            let var = (self.sum_sq - self.sum * self.sum / n).max(0.0) / (n - 1.0);
            (var / n).sqrt()
        })
    }
}

pub struct IclScore {
    early: usize,
    late: usize,
    /// Per token index `t - 1`.
    positions: Vec<Sums>,
    loss_early: Sums,
    loss_late: Sums,
    score: Sums,
}

impl Kind for IclScore {
    type Params = IclScoreParams;
    const TABLES: &'static [TableDecl] = &[
        TableDecl::main::<IclScoreRow>(),
        TableDecl::part::<IclPositionRow>("positions"),
        TableDecl::part::<IclSummaryRow>("summary"),
    ];

    fn build(params: Self::Params, _: BuildContext) -> Result<Self, AnalysisError> {
        Ok(IclScore {
            early: params.early as usize,
            late: params.late as usize,
            positions: Vec::new(),
            loss_early: Sums::default(),
            loss_late: Sums::default(),
            score: Sums::default(),
        })
    }
}

impl Analysis for IclScore {
    fn process(
        &mut self,
        _: &ModelContext,
        batch: &BatchContext,
        sink: &mut dyn TableSink,
    ) -> Result<(), AnalysisError> {
        let losses = token_losses(batch)?;
        let mut table = Rows::<IclScoreRow>::new();
        check_lengths(batch, self.late)?;
        for (prompt, losses) in batch.prompts.iter().zip(&losses) {
            if self.positions.len() < losses.len() {
                self.positions.resize(losses.len(), Sums::default());
            }
            for (sums, &loss) in self.positions.iter_mut().zip(losses) {
                sums.add(loss);
            }
            let (early, late) = (losses[self.early - 1], losses[self.late - 1]);
            self.loss_early.add(early);
            self.loss_late.add(late);
            self.score.add(late - early);
            table.push(IclScoreRow {
                prompt: prompt.id,
                n_tokens: prompt.len() as u32,
                early: self.early as u32,
                late: self.late as u32,
                loss_early: early,
                loss_late: late,
                icl_score: late - early,
            });
        }
        emit(sink, None, table)
    }

    fn finish(&mut self, _: &ModelContext, sink: &mut dyn TableSink) -> Result<(), AnalysisError> {
        let mut positions = Rows::<IclPositionRow>::new();
        for (i, s) in self.positions.iter().enumerate() {
            positions.push(IclPositionRow {
                token: i as u32 + 1,
                mean_loss: s.mean(),
                sem_loss: s.sem(),
                n_prompts: s.n,
            });
        }
        emit(sink, Some("positions"), positions)?;
        let mut summary = Rows::<IclSummaryRow>::new();
        summary.push(IclSummaryRow {
            early: self.early as u32,
            late: self.late as u32,
            loss_early: self.loss_early.mean(),
            loss_late: self.loss_late.mean(),
            icl_score: self.score.mean(),
            sem_icl_score: self.score.sem(),
            n_prompts: self.score.n,
        });
        emit(sink, Some("summary"), summary)
    }
}
