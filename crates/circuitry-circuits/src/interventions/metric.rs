//! Metrics of a forward pass, evaluated per prompt from the logits at the prompt's own position.
//!
//! A [`Metric`] is declared by an analysis (`logit_diff` between two named answers at `END`, the
//! probability of a token at `last`, ...). [`Metric::resolve`] turns it into a
//! [`ResolvedMetric`] for one padded batch: for every row the slots whose logits it reads and the
//! token ids it compares. Evaluation is a differentiable tensor expression, so the same code
//! gives patching results and, on an autodiff device, the gradients of attribution patching.
//!
//! The patched forward passes only unembed the slots a metric reads
//! ([`ResolvedMetric::slots`]), so a sweep does not pay for `[rows, seq, d_vocab]` logits.

use std::fmt;

use circuitry_data::Prompt;
use circuitry_models::burn::prelude::*;
use circuitry_models::burn::tensor::activation::log_softmax;
use circuitry_models::{TokenBatch, Transformer, host_values};

use super::{InterventionError, Result};

/// A token the metric reads: a named answer of the prompt (`IO`, `S`), or a fixed id.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TokenRef {
    Answer(String),
    Id(u32),
}

impl TokenRef {
    pub fn resolve(&self, prompt: &Prompt) -> Result<u32> {
        match self {
            TokenRef::Id(id) => Ok(*id),
            TokenRef::Answer(name) => {
                prompt
                    .answer(name)
                    .ok_or_else(|| InterventionError::MissingAnswer {
                        prompt: prompt.id,
                        name: name.clone(),
                        available: names(prompt.answers.keys()),
                    })
            }
        }
    }
}

impl fmt::Display for TokenRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenRef::Answer(n) => f.write_str(n),
            TokenRef::Id(id) => write!(f, "#{id}"),
        }
    }
}

/// Where the metric reads the logits (the prediction made at that token).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum MetricPosition {
    /// The prompt's last token.
    #[default]
    Last,
    /// A named position of the prompt (`END`, `S2`, ...).
    Named(String),
    /// A token index.
    Index(usize),
    /// The `k`-th token from the end (`FromEnd(1)` is the last token).
    FromEnd(usize),
}

impl MetricPosition {
    pub fn resolve(&self, prompt: &Prompt) -> Result<usize> {
        let i = match self {
            MetricPosition::Last => return Ok(prompt.len() - 1),
            MetricPosition::Index(i) => *i,
            MetricPosition::FromEnd(k) => {
                if *k == 0 || *k > prompt.len() {
                    return Err(InterventionError::Config(format!(
                        "prompt {}: position -{k} is before the first of its {} tokens",
                        prompt.id,
                        prompt.len()
                    )));
                }
                prompt.len() - k
            }
            MetricPosition::Named(name) => {
                prompt
                    .position(name)
                    .ok_or_else(|| InterventionError::MissingPosition {
                        prompt: prompt.id,
                        name: name.clone(),
                        available: names(prompt.positions.keys()),
                    })?
            }
        };
        if i >= prompt.len() {
            return Err(InterventionError::PositionOutOfRange {
                prompt: prompt.id,
                index: i,
                len: prompt.len(),
            });
        }
        Ok(i)
    }
}

impl fmt::Display for MetricPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetricPosition::Last => f.write_str("last"),
            MetricPosition::Named(n) => f.write_str(n),
            MetricPosition::Index(i) => write!(f, "{i}"),
            MetricPosition::FromEnd(k) => write!(f, "-{k}"),
        }
    }
}

fn names<'a>(keys: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<&str> = keys.map(String::as_str).collect();
    if v.is_empty() {
        "none".to_string()
    } else {
        v.join(", ")
    }
}

/// What is measured.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum MetricKind {
    /// `logit[correct] - logit[incorrect]` at the position (raw logits).
    LogitDiff {
        correct: TokenRef,
        incorrect: TokenRef,
    },
    /// The raw logit of a token.
    Logit(TokenRef),
    /// The probability of a token (softmax over the vocabulary).
    Prob(TokenRef),
    /// The log-probability of a token.
    LogProb(TokenRef),
    /// Next-token cross-entropy of the prompt's clean tokens, averaged over every real position
    /// that has a next token (the metric's position is not used). In a corrupt or patched run it
    /// is still the loss of predicting the clean continuation.
    Loss,
    /// Olsson et al.'s in-context learning score: the loss on token `late` minus the loss on
    /// token `early` (token indices; the loss on token `t` is `-log p(tokens[t] | tokens[..t])`,
    /// read from the logits at `t - 1`). Negative when the model predicts later tokens better
    /// from their context. The metric's position is not used.
    IclScore { early: usize, late: usize },
    /// `KL(P_clean || P_run)` of the next-token distributions at the position, where `P_clean`
    /// is the clean, unpatched run's. Zero on the clean run itself.
    Kl,
    /// 1 when the token's logit is the largest at the position (the model's top prediction,
    /// ties counting), else 0. Averaged over prompts: accuracy; over counterfactual pairs
    /// against their counterfactual answer: interchange intervention accuracy. Not
    /// differentiable (its gradient is zero).
    Top1(TokenRef),
}

/// A metric declared by an analysis: what, and at which position.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Metric {
    pub kind: MetricKind,
    pub position: MetricPosition,
}

impl Metric {
    /// `logit[correct] - logit[incorrect]` between two named answers at a named position (IOI:
    /// `Metric::logit_diff("IO", "S", "END")`).
    pub fn logit_diff(correct: &str, incorrect: &str, position: &str) -> Metric {
        Metric {
            kind: MetricKind::LogitDiff {
                correct: TokenRef::Answer(correct.to_string()),
                incorrect: TokenRef::Answer(incorrect.to_string()),
            },
            position: MetricPosition::Named(position.to_string()),
        }
    }

    /// `top1(answer)`: whether the named answer is the top prediction at `position` (on
    /// counterfactual pairs with the answer `counterfactual`, interchange intervention accuracy).
    pub fn answer_top1(answer: &str, position: MetricPosition) -> Metric {
        Metric {
            kind: MetricKind::Top1(TokenRef::Answer(answer.to_string())),
            position,
        }
    }

    /// `logit[a] - logit[b]` for fixed token ids at the last position.
    pub fn logit_diff_ids(a: u32, b: u32) -> Metric {
        Metric {
            kind: MetricKind::LogitDiff {
                correct: TokenRef::Id(a),
                incorrect: TokenRef::Id(b),
            },
            position: MetricPosition::Last,
        }
    }

    pub fn new(kind: MetricKind, position: MetricPosition) -> Metric {
        Metric { kind, position }
    }

    /// Short name for tables: `logit_diff`, `logit`, `prob`, `logprob`, `loss`, `kl`.
    pub fn short_name(&self) -> &'static str {
        match self.kind {
            MetricKind::LogitDiff { .. } => "logit_diff",
            MetricKind::Logit(_) => "logit",
            MetricKind::Prob(_) => "prob",
            MetricKind::LogProb(_) => "logprob",
            MetricKind::Loss => "loss",
            MetricKind::IclScore { .. } => "icl_score",
            MetricKind::Kl => "kl",
            MetricKind::Top1(_) => "top1",
        }
    }

    /// Whether evaluating needs the clean run's distribution ([`ResolvedMetric::with_reference`]).
    pub fn needs_reference(&self) -> bool {
        self.kind == MetricKind::Kl
    }

    /// Resolves positions and tokens for the rows of `batch`, which holds `prompts` in order.
    pub fn resolve(
        &self,
        prompts: &[Prompt],
        batch: &TokenBatch,
        d_vocab: usize,
    ) -> Result<ResolvedMetric> {
        assert_eq!(
            prompts.len(),
            batch.batch_size(),
            "one batch row per prompt"
        );
        let rows = prompts.len();
        let check = |p: &Prompt, tok: u32| {
            if (tok as usize) < d_vocab {
                Ok(tok as i64)
            } else {
                Err(InterventionError::TokenOutOfRange {
                    prompt: p.id,
                    token: tok,
                    d_vocab,
                })
            }
        };
        let (kind, s) = match &self.kind {
            MetricKind::LogitDiff { .. } => (Kind::LogitDiff, 1),
            MetricKind::Logit(_) => (Kind::Logit, 1),
            MetricKind::Prob(_) => (Kind::Prob, 1),
            MetricKind::LogProb(_) => (Kind::LogProb, 1),
            MetricKind::Kl => (Kind::Kl, 1),
            MetricKind::Top1(_) => (Kind::Top1, 1),
            // Two weighted token losses per row: +1 at `late`, -1 at `early`.
            MetricKind::IclScore { .. } => (Kind::Loss, 2),
            MetricKind::Loss => (
                Kind::Loss,
                prompts
                    .iter()
                    .map(|p| p.len().saturating_sub(1))
                    .max()
                    .unwrap_or(0)
                    .max(1),
            ),
        };
        let mut slots = Vec::with_capacity(rows * s);
        let mut tok_a = Vec::with_capacity(rows * s);
        let mut tok_b = Vec::with_capacity(rows * s);
        let mut weights = Vec::with_capacity(rows * s);
        for (r, p) in prompts.iter().enumerate() {
            if let MetricKind::IclScore { early, late } = self.kind {
                for (t, weight) in [(late, 1.0), (early, -1.0)] {
                    if t == 0 || t >= p.len() {
                        return Err(InterventionError::Config(format!(
                            "prompt {} has {} tokens, so it has no token {t} for the ICL score (loss on token {late} minus loss on token {early}); the tokens must be 1 or later and before the prompt's end",
                            p.id,
                            p.len()
                        )));
                    }
                    slots.push(batch.slot(r, t - 1));
                    tok_a.push(check(p, p.tokens[t])?);
                    tok_b.push(0);
                    weights.push(weight);
                }
                continue;
            }
            if kind == Kind::Loss {
                let n = p.len().saturating_sub(1);
                for i in 0..s {
                    if i < n {
                        slots.push(batch.slot(r, i));
                        tok_a.push(check(p, p.tokens[i + 1])?);
                        weights.push(1.0 / n as f32);
                    } else {
                        slots.push(batch.slot(r, 0));
                        tok_a.push(0);
                        weights.push(0.0);
                    }
                    tok_b.push(0);
                }
                continue;
            }
            let pos = self.position.resolve(p)?;
            slots.push(batch.slot(r, pos));
            weights.push(1.0);
            let (a, b) = match &self.kind {
                MetricKind::LogitDiff { correct, incorrect } => {
                    (correct.resolve(p)?, incorrect.resolve(p)?)
                }
                MetricKind::Logit(t)
                | MetricKind::Prob(t)
                | MetricKind::LogProb(t)
                | MetricKind::Top1(t) => (t.resolve(p)?, 0),
                _ => (0, 0),
            };
            tok_a.push(check(p, a)?);
            tok_b.push(check(p, b)?);
        }
        Ok(ResolvedMetric {
            kind,
            rows,
            s,
            slots,
            tok_a,
            tok_b,
            weights,
            reference: None,
        })
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            MetricKind::LogitDiff { correct, incorrect } => {
                write!(f, "logit_diff({correct}, {incorrect})")?
            }
            MetricKind::Logit(t) => write!(f, "logit({t})")?,
            MetricKind::Prob(t) => write!(f, "prob({t})")?,
            MetricKind::LogProb(t) => write!(f, "logprob({t})")?,
            MetricKind::Loss => return f.write_str("loss"),
            MetricKind::IclScore { early, late } => {
                return write!(f, "icl_score(loss@{late} - loss@{early})");
            }
            MetricKind::Kl => f.write_str("kl")?,
            MetricKind::Top1(t) => write!(f, "top1({t})")?,
        }
        write!(f, "@{}", self.position)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    LogitDiff,
    Logit,
    Prob,
    LogProb,
    Loss,
    Kl,
    Top1,
}

/// A metric bound to the rows of one batch.
#[derive(Clone, Debug)]
pub struct ResolvedMetric {
    kind: Kind,
    rows: usize,
    /// Slots read per row.
    s: usize,
    /// `rows * s` slots, row-major.
    slots: Vec<usize>,
    tok_a: Vec<i64>,
    tok_b: Vec<i64>,
    weights: Vec<f32>,
    /// `[rows, s, d_vocab]` clean log-probabilities, for KL.
    reference: Option<Tensor<3>>,
}

impl ResolvedMetric {
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The slots whose logits the metric reads: `rows x per_row`, row-major, and `per_row`.
    pub fn slots(&self) -> (&[usize], usize) {
        (&self.slots, self.s)
    }

    pub fn needs_reference(&self) -> bool {
        self.kind == Kind::Kl
    }

    /// Sets the clean distribution for KL from the clean run's logits at [`Self::slots`]
    /// (`[rows, per_row, d_vocab]`, e.g. from [`logits_at`]). Other metrics ignore it.
    pub fn with_reference(mut self, clean_slot_logits: Tensor<3>) -> ResolvedMetric {
        if self.kind == Kind::Kl {
            self.reference = Some(log_softmax(clean_slot_logits.inner().detach(), 2));
        }
        self
    }

    /// [`Self::with_reference`] from the clean run's final residual stream, which `clean_resid`
    /// gives only when the metric needs it.
    pub fn with_reference_from(
        self,
        model: &Transformer,
        clean_resid: impl FnOnce() -> Tensor<3>,
    ) -> ResolvedMetric {
        if !self.needs_reference() {
            return self;
        }
        let (slots, s) = self.slots();
        let reference = logits_at(model, clean_resid(), slots, s);
        self.with_reference(reference)
    }

    /// The same metric for `times` copies of the batch stacked along the rows (copy-major: row
    /// `j * rows + i` is prompt `i` of copy `j`).
    pub fn repeat(&self, times: usize) -> ResolvedMetric {
        ResolvedMetric {
            kind: self.kind,
            rows: self.rows * times,
            s: self.s,
            slots: rep(&self.slots, times),
            tok_a: rep(&self.tok_a, times),
            tok_b: rep(&self.tok_b, times),
            weights: rep(&self.weights, times),
            reference: self.reference.clone().map(|r| r.repeat_dim(0, times)),
        }
    }

    /// Metric per row from the logits at [`Self::slots`] (`[rows, per_row, d_vocab]`).
    /// Differentiable.
    pub fn values(&self, slot_logits: Tensor<3>) -> Tensor<1> {
        let [rows, s, _] = slot_logits.dims();
        assert_eq!(
            (rows, s),
            (self.rows, self.s),
            "slot logits do not match the resolved metric"
        );
        let device = slot_logits.device();
        let idx = |v: &Vec<i64>| {
            Tensor::<3, Int>::from_data(TensorData::new(v.clone(), [rows, s, 1]), &device)
        };
        let per_slot: Tensor<3> = match self.kind {
            Kind::LogitDiff => {
                slot_logits.clone().gather(2, idx(&self.tok_a))
                    - slot_logits.gather(2, idx(&self.tok_b))
            }
            Kind::Logit => slot_logits.gather(2, idx(&self.tok_a)),
            Kind::LogProb => log_softmax(slot_logits, 2).gather(2, idx(&self.tok_a)),
            Kind::Prob => log_softmax(slot_logits, 2)
                .gather(2, idx(&self.tok_a))
                .exp(),
            Kind::Loss => {
                let w = Tensor::<3>::from_data(
                    TensorData::new(self.weights.clone(), [rows, s, 1]),
                    &device,
                );
                log_softmax(slot_logits, 2)
                    .gather(2, idx(&self.tok_a))
                    .neg()
                    * w
            }
            Kind::Top1 => {
                let chosen = slot_logits.clone().gather(2, idx(&self.tok_a));
                chosen.greater_equal(slot_logits.max_dim(2)).float()
            }
            Kind::Kl => {
                let reference = self
                    .reference
                    .clone()
                    .expect("KL needs the clean distribution: call with_reference");
                let logp = log_softmax(slot_logits, 2);
                (reference.clone().exp() * (reference - logp)).sum_dim(2)
            }
        };
        per_slot.sum_dim(1).reshape([rows])
    }

    /// Metric per row from full logits `[rows, seq, d_vocab]`.
    pub fn values_from_logits(&self, logits: Tensor<3>) -> Tensor<1> {
        self.values(select_slots(logits, &self.slots, self.s))
    }

    /// Metric per row from the residual stream after the last block (`[rows, seq, d_model]`):
    /// final norm and unembedding at the metric's slots only.
    pub fn values_from_resid(&self, model: &Transformer, resid: Tensor<3>) -> Tensor<1> {
        self.values(logits_at(model, resid, &self.slots, self.s))
    }

    /// Host copy of [`Self::values_from_resid`].
    pub fn eval_resid(&self, model: &Transformer, resid: Tensor<3>) -> Vec<f64> {
        let v = self.values_from_resid(model, resid).inner();
        host_values(&v).into_iter().map(f64::from).collect()
    }
}

fn rep<T: Clone>(v: &[T], times: usize) -> Vec<T> {
    (0..times).flat_map(|_| v.iter().cloned()).collect()
}

/// `[rows, seq, d]` -> `[rows, s, d]`: for each row, the entries at its `s` slots.
pub fn select_slots(x: Tensor<3>, slots: &[usize], s: usize) -> Tensor<3> {
    let [rows, t, d] = x.dims();
    assert_eq!(slots.len(), rows * s);
    let flat: Vec<i64> = slots
        .iter()
        .enumerate()
        .map(|(i, &slot)| ((i / s) * t + slot) as i64)
        .collect();
    let device = x.device();
    let idx = Tensor::<1, Int>::from_data(TensorData::new(flat, [rows * s]), &device);
    x.reshape([rows * t, d])
        .select(0, idx)
        .reshape([rows, s, d])
}

/// Logits at chosen slots of the residual stream after the last block: the model's final norm
/// and unembedding, as in `Transformer::forward`, on `[rows, s]` positions only.
pub fn logits_at(model: &Transformer, resid: Tensor<3>, slots: &[usize], s: usize) -> Tensor<3> {
    model.decode(select_slots(resid, slots, s))
}

/// The normalised patching metric `(patched - corrupt) / (clean - corrupt)`: 1 where the patched
/// run behaves like the clean run, 0 where it behaves like the corrupt run. `None` when clean and
/// corrupt agree (to 1e-12), where the ratio is undefined.
pub fn normalized(patched: f64, clean: f64, corrupt: f64) -> Option<f64> {
    let denom = clean - corrupt;
    (denom.abs() > 1e-12).then(|| (patched - corrupt) / denom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_maps_clean_to_one_and_corrupt_to_zero() {
        assert_eq!(normalized(3.0, 3.0, 1.0), Some(1.0));
        assert_eq!(normalized(1.0, 3.0, 1.0), Some(0.0));
        assert_eq!(normalized(2.0, 3.0, 1.0), Some(0.5));
        assert_eq!(normalized(2.0, 1.0, 1.0), None);
    }

    fn prompt(tokens: Vec<u32>) -> Prompt {
        let mut p = Prompt::from_tokens(0, tokens);
        p.answers.insert("A".into(), 1);
        p.answers.insert("B".into(), 2);
        p.positions.insert("mid".into(), 1);
        p
    }

    #[test]
    fn metrics_by_hand() {
        let device = Device::flex();
        let prompts = vec![prompt(vec![0, 1, 2]), prompt(vec![2, 1])];
        let batch = TokenBatch::new(
            &[vec![0, 1, 2], vec![2, 1]],
            0,
            circuitry_models::PaddingSide::Left,
            &device,
        );
        // logits [2 rows, 3 slots, vocab 3]
        let logits: Vec<f32> = vec![
            0.0, 1.0, 2.0, /**/ 1.0, 0.5, 0.0, /**/ 3.0, 0.0, -1.0, //
            9.0, 9.0, 9.0, /**/ 0.0, 2.0, 4.0, /**/ -1.0, 1.0, 0.0,
        ];
        let logits = Tensor::<3>::from_data(TensorData::new(logits, [2, 3, 3]), &device);
        let eval = |m: Metric| -> Vec<f32> {
            let r = m.resolve(&prompts, &batch, 3).unwrap();
            host_values(&r.values_from_logits(logits.clone()))
        };
        let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-5);
        // last position: row 0 slot 2, row 1 (left padded, len 2) slot 2
        let ld = eval(Metric::new(
            MetricKind::LogitDiff {
                correct: TokenRef::Answer("A".into()),
                incorrect: TokenRef::Answer("B".into()),
            },
            MetricPosition::Last,
        ));
        assert!(close(&ld, &[1.0, 1.0]), "{ld:?}");
        // named position `mid` = token 1: row 0 slot 1, row 1 slot 2 (left padding)
        let lg = eval(Metric::new(
            MetricKind::Logit(TokenRef::Id(2)),
            MetricPosition::Named("mid".into()),
        ));
        assert!(close(&lg, &[0.0, 0.0]), "{lg:?}");
        let lse = |v: [f32; 3]| v.iter().map(|x| x.exp()).sum::<f32>().ln();
        let lp = eval(Metric::new(
            MetricKind::LogProb(TokenRef::Id(0)),
            MetricPosition::Last,
        ));
        assert!(
            close(
                &lp,
                &[3.0 - lse([3.0, 0.0, -1.0]), -1.0 - lse([-1.0, 1.0, 0.0])]
            ),
            "{lp:?}"
        );
        let p = eval(Metric::new(
            MetricKind::Prob(TokenRef::Id(0)),
            MetricPosition::Last,
        ));
        assert!(close(&p, &[lp[0].exp(), lp[1].exp()]));
        // top1 at the last slots: [3, 0, -1] picks token 0, [-1, 1, 0] token 1
        let top = |t| {
            eval(Metric::new(
                MetricKind::Top1(TokenRef::Id(t)),
                MetricPosition::Last,
            ))
        };
        assert_eq!(top(0), [1.0, 0.0]);
        assert_eq!(top(1), [0.0, 1.0]);
        assert_eq!(top(2), [0.0, 0.0]);
        // loss: row 0 predicts 1 at slot 0 and 2 at slot 1; row 1 predicts 1 at slot 1
        let loss = eval(Metric::new(MetricKind::Loss, MetricPosition::Last));
        let want0 = ((lse([0.0, 1.0, 2.0]) - 1.0) + (lse([1.0, 0.5, 0.0]) - 0.0)) / 2.0;
        let want1 = lse([0.0, 2.0, 4.0]) - 2.0;
        assert!(close(&loss, &[want0, want1]), "{loss:?} vs {want0} {want1}");
        // ICL score of row 0 (tokens 0 1 2): loss on token 2 (read at slot 1) minus loss on
        // token 1 (slot 0); row 1 has no token 2.
        let icl = Metric::new(
            MetricKind::IclScore { early: 1, late: 2 },
            MetricPosition::Last,
        );
        let e = icl.resolve(&prompts, &batch, 3).unwrap_err().to_string();
        assert!(e.contains("has 2 tokens, so it has no token 2"), "{e}");
        let one = TokenBatch::new(
            &[vec![0, 1, 2]],
            0,
            circuitry_models::PaddingSide::Left,
            &device,
        );
        let r = icl.resolve(&prompts[..1], &one, 3).unwrap();
        let got = host_values(&r.values_from_logits(logits.clone().slice([0..1, 0..3, 0..3])));
        let want = (lse([1.0, 0.5, 0.0]) - 0.0) - (lse([0.0, 1.0, 2.0]) - 1.0);
        assert!(close(&got, &[want]), "{got:?} vs {want}");
        // KL of a distribution from itself is 0, from another is positive
        let m = Metric::new(MetricKind::Kl, MetricPosition::Last);
        let r = m.resolve(&prompts, &batch, 3).unwrap();
        let (slots, s) = r.slots();
        let reference = select_slots(logits.clone(), slots, s);
        let r = r.with_reference(reference);
        let kl = host_values(&r.values_from_logits(logits.clone()));
        assert!(close(&kl, &[0.0, 0.0]), "{kl:?}");
        let kl = host_values(&r.values_from_logits(logits.clone() * 2.0));
        assert!(kl.iter().all(|&x| x > 1e-3), "{kl:?}");
        // missing answers and positions are errors that name the prompt
        let bad = Metric::logit_diff("IO", "S", "END").resolve(&prompts, &batch, 3);
        assert!(matches!(
            bad,
            Err(InterventionError::MissingPosition { .. })
        ));
        let bad = Metric::new(MetricKind::Logit(TokenRef::Id(7)), MetricPosition::Last)
            .resolve(&prompts, &batch, 3);
        assert!(matches!(
            bad,
            Err(InterventionError::TokenOutOfRange { token: 7, .. })
        ));
    }
}
