//! Losses and attention-head diagnostics on token rows: the next-token loss used for training,
//! per-repeat losses and the in-context-learning score on `[BOS] r r` rows, and TransformerLens's
//! induction and previous-token scores.

use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use serde::{Deserialize, Serialize};

use circuitry_models::{
    HookKind, HookPoint, Intervention, Span, TokenBatch, Transformer, host_values,
};

/// Rows per forward pass when evaluating.
const EVAL_CHUNK: usize = 64;

/// Next-token negative log-likelihood `[batch, seq - 1]` of equal-length rows: entry `(r, i)` is
/// `-log p(rows[r][i + 1] | rows[r][..=i])`, so the first token (BOS) is never a target. Keeps
/// the autodiff graph when the model's parameters carry one.
pub fn token_nll(model: &Transformer, rows: &[Vec<u32>]) -> Tensor<2> {
    let device = model.device();
    let batch = TokenBatch::unpadded(rows, &device);
    let logits = model
        .forward(&batch, &Intervention::default(), Span::default())
        .logits
        .expect("a full forward pass has logits");
    let [b, t, _] = logits.dims();
    let logp = log_softmax(logits.narrow(1, 0, t - 1), 2);
    let targets: Vec<i64> = rows
        .iter()
        .flat_map(|r| r[1..].iter().map(|&x| x as i64))
        .collect();
    let targets = Tensor::<3, Int>::from_data(TensorData::new(targets, [b, t - 1, 1]), &device);
    logp.gather(2, targets).reshape([b, t - 1]).neg()
}

/// Mean next-token loss over every position after BOS (the training objective), `[1]`.
pub fn lm_loss(model: &Transformer, rows: &[Vec<u32>]) -> Tensor<1> {
    token_nll(model, rows).mean()
}

/// Host copy of [`token_nll`], computed in chunks (no autodiff graph is kept).
pub fn token_nll_host(model: &Transformer, rows: &[Vec<u32>]) -> Vec<Vec<f32>> {
    let mut out = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(EVAL_CHUNK) {
        let nll = token_nll(model, chunk);
        let [_, w] = nll.dims();
        let data = host_values(&nll);
        out.extend(data.chunks(w).map(<[f32]>::to_vec));
    }
    out
}

/// Losses on `[BOS] r r` rows with `|r| = L`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RepeatLosses {
    /// Mean loss of predicting the `L` tokens of the first copy of `r` (positions `1..=L`).
    pub first_repeat: f64,
    /// Mean loss of predicting the `L` tokens of the second copy (positions `L+1..=2L`). Its first
    /// token cannot be inferred from context, so it is at least `ln(V - 1) / L` in expectation.
    pub second_repeat: f64,
    /// In-context-learning score (Olsson et al. 2022: loss at a late token minus loss at an early
    /// token), here `second_repeat - first_repeat`: negative when the model uses the context.
    pub icl_score: f64,
}

/// [`RepeatLosses`] of `[BOS] r r` rows with `|r| = repeat_len`. Panics on rows of another
/// length.
pub fn repeat_losses(model: &Transformer, rows: &[Vec<u32>], repeat_len: usize) -> RepeatLosses {
    let l = repeat_len;
    let nll = token_nll_host(model, rows);
    let (mut first, mut second) = (0f64, 0f64);
    for r in &nll {
        assert_eq!(r.len(), 2 * l, "rows must be [BOS] r r with |r| = {l}");
        first += r[..l].iter().map(|&x| x as f64).sum::<f64>();
        second += r[l..].iter().map(|&x| x as f64).sum::<f64>();
    }
    let n = (nll.len() * l) as f64;
    let (first, second) = (first / n, second / n);
    RepeatLosses {
        first_repeat: first,
        second_repeat: second,
        icl_score: second - first,
    }
}

/// Attention-pattern scores of one head on `[BOS] r r` rows.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeadScores {
    pub layer: usize,
    pub head: usize,
    /// Mean attention from query `q` to key `q - L + 1` over `q = L..=2L` (TransformerLens's
    /// definition: the diagonal at offset `1 - L` of the pattern without its first entry).
    pub induction: f64,
    /// Mean attention from query `q` to key `q - 1` over `q = 1..=2L`.
    pub previous_token: f64,
}

/// [`HeadScores`] of every head, averaged over `rows` (`[BOS] r r`, `|r| = repeat_len`), in
/// layer-major order.
pub fn head_scores(model: &Transformer, rows: &[Vec<u32>], repeat_len: usize) -> Vec<HeadScores> {
    let cfg = &model.config;
    let (nl, nh, l) = (cfg.n_layers, cfg.n_heads, repeat_len);
    let t = 2 * l + 1;
    let hooks: Vec<HookPoint> = (0..nl)
        .map(|i| HookPoint::layer(i, HookKind::Pattern))
        .collect();
    let mut ind = vec![0f64; nl * nh];
    let mut prev = vec![0f64; nl * nh];
    let device = model.device();
    for chunk in rows.chunks(EVAL_CHUNK) {
        assert!(
            chunk.iter().all(|r| r.len() == t),
            "rows must be [BOS] r r with |r| = {l}"
        );
        let batch = TokenBatch::unpadded(chunk, &device);
        let out = model.forward(
            &batch,
            &Intervention::capture(hooks.iter().copied()),
            Span::default(),
        );
        for (layer, hook) in hooks.iter().enumerate() {
            let p = out.cache.get4(hook).expect("captured pattern");
            let data = host_values(&p);
            let at = |b: usize, h: usize, q: usize, k: usize| {
                data[((b * nh + h) * t + q) * t + k] as f64
            };
            for b in 0..chunk.len() {
                for h in 0..nh {
                    let i = layer * nh + h;
                    ind[i] += (l..=2 * l).map(|q| at(b, h, q, q + 1 - l)).sum::<f64>();
                    prev[i] += (1..t).map(|q| at(b, h, q, q - 1)).sum::<f64>();
                }
            }
        }
    }
    let n = rows.len() as f64;
    (0..nl * nh)
        .map(|i| HeadScores {
            layer: i / nh,
            head: i % nh,
            induction: ind[i] / (n * (l + 1) as f64),
            previous_token: prev[i] / (n * (t - 1) as f64),
        })
        .collect()
}
