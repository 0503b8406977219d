//! Interchange interventions in a subspace of the residual stream between blocks, and
//! distributed alignment search (DAS), which learns the subspace.
//!
//! For a counterfactual pair, the residual stream entering block `layer` of the base run, `h`,
//! takes at the site's positions the source run's coordinates in the span of an orthonormal
//! basis `W` (`d_model x k`): `h' = h + W W^T (s - h)`; blocks `layer..` then run from `h'`
//! (`Span::from_layer`). This is pyvene's `RotatedSpaceIntervention` with rotation `R` and
//! `interchange_dim = k`, for `W = R[:, :k]` (tested against pyvene 0.1.8 on a fixture model).
//! `k = d_model` with `W = I` is the full interchange of the vector.
//!
//! DAS trains `W` by Adam on the cross-entropy of the counterfactual answer: the gradient at
//! `h'` comes from burn's autodiff through the frozen later blocks, and the gradient at `W` from
//! `h'`'s formula, `dL/dW = g (W^T d)^T + d (W^T g)^T` with `d = s - h`; after each step `W` is
//! re-orthonormalised (thin QR).

use circuitry_data::{Prompt, Rng, derive_seed};
use circuitry_models::burn::prelude::*;
use circuitry_models::{Intervention, PaddingSide, Span, TokenBatch, Transformer, host_values};

use super::metric::{Metric, MetricKind, MetricPosition, TokenRef};
use super::{InterventionError, Result};
use crate::matrix::Mat;

/// One counterfactual pair at a residual site.
#[derive(Clone, Debug, PartialEq)]
pub struct ResidPair {
    /// The base prompt (tokens, positions and answers).
    pub prompt: Prompt,
    /// The base's residual stream entering the block: `[len, d]`, row-major.
    pub base: Vec<f32>,
    /// The source's residual vectors at `positions`: `[positions, d]`.
    pub source: Vec<f32>,
    /// Token indices intervened on.
    pub positions: Vec<usize>,
}

/// An orthonormal basis of a `k`-dimensional subspace of `R^d`: `w` is `d x k`, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Basis {
    pub d: usize,
    pub k: usize,
    pub w: Vec<f64>,
}

impl Basis {
    /// The first `k` columns of `rotation` (`d x d`, row-major: `rotation[i][j]`).
    pub fn from_rotation(rotation: &[Vec<f64>], k: usize) -> Basis {
        let d = rotation.len();
        let w = rotation
            .iter()
            .flat_map(|row| row[..k].iter().copied())
            .collect();
        Basis { d, k, w }
    }

    /// The whole space (`W = I`).
    pub fn full(d: usize) -> Basis {
        let mut w = vec![0.0; d * d];
        for i in 0..d {
            w[i * d + i] = 1.0;
        }
        Basis { d, k: d, w }
    }

    /// A uniformly random basis: the QR `Q` of a standard normal `d x k` matrix drawn from
    /// `Rng::new(seed)` (Box-Muller, column by column).
    pub fn random(d: usize, k: usize, seed: u64) -> Basis {
        let mut rng = Rng::new(seed);
        let mut w = vec![0.0; d * k];
        for j in 0..k {
            for i in 0..d {
                w[i * k + j] = gaussian(&mut rng);
            }
        }
        let mut b = Basis { d, k, w };
        b.orthonormalize();
        b
    }

    fn at(&self, i: usize, j: usize) -> f64 {
        self.w[i * self.k + j]
    }

    /// Replaces the columns by an orthonormal basis of their span (thin QR's `Q`).
    pub fn orthonormalize(&mut self) {
        let w = std::mem::take(&mut self.w);
        self.w = Mat::from_vec(self.d, self.k, w).qr().0.into_vec();
    }

    /// `W^T v`.
    fn project(&self, v: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; self.k];
        for (i, &x) in v.iter().enumerate() {
            for (j, o) in out.iter_mut().enumerate() {
                *o += self.at(i, j) * x;
            }
        }
        out
    }

    /// `h + W W^T (s - h)`.
    fn interchange(&self, h: &[f32], s: &[f32]) -> Vec<f32> {
        let delta: Vec<f64> = s
            .iter()
            .zip(h)
            .map(|(a, b)| f64::from(*a) - f64::from(*b))
            .collect();
        let c = self.project(&delta);
        h.iter()
            .enumerate()
            .map(|(i, &x)| {
                let back: f64 = (0..self.k).map(|j| self.at(i, j) * c[j]).sum();
                (f64::from(x) + back) as f32
            })
            .collect()
    }
}

fn gaussian(rng: &mut Rng) -> f64 {
    let u = |rng: &mut Rng| ((rng.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    let (a, b) = (u(rng), u(rng));
    (-2.0 * a.ln()).sqrt() * (2.0 * std::f64::consts::PI * b).cos()
}

/// The pairs' mixed residual streams and their batch (pairs must have one length).
fn mixed_batch(
    model: &Transformer,
    pairs: &[&ResidPair],
    basis: &Basis,
) -> Result<(TokenBatch, Vec<f32>, usize)> {
    let len = pairs[0].prompt.len();
    if pairs.iter().any(|p| p.prompt.len() != len) {
        return Err(InterventionError::Config(
            "a subspace interchange batch needs pairs of one length".into(),
        ));
    }
    let d = basis.d;
    let mut resid = Vec::with_capacity(pairs.len() * len * d);
    for p in pairs {
        let mut h = p.base.clone();
        for (q, &pos) in p.positions.iter().enumerate() {
            let row = &mut h[pos * d..(pos + 1) * d];
            let mixed = basis.interchange(row, &p.source[q * d..(q + 1) * d]);
            row.copy_from_slice(&mixed);
        }
        resid.extend(h);
    }
    let rows: Vec<Vec<u32>> = pairs.iter().map(|p| p.prompt.tokens.clone()).collect();
    let batch = TokenBatch::new(&rows, 0, PaddingSide::Right, &model.device());
    Ok((batch, resid, len))
}

/// Logits at every position of the base runs after the interchange at block `layer`'s input:
/// `[pairs, len, d_vocab]`, row-major.
pub fn interchange_logits(
    model: &Transformer,
    layer: usize,
    pairs: &[&ResidPair],
    basis: &Basis,
) -> Result<Vec<f32>> {
    let (batch, resid, len) = mixed_batch(model, pairs, basis)?;
    let resid = Tensor::<3>::from_data(
        TensorData::new(resid, [pairs.len(), len, basis.d]),
        &model.device(),
    );
    let out = model.forward(
        &batch,
        &Intervention::default(),
        Span::from_layer(layer, resid),
    );
    Ok(host_values(
        &out.logits.expect("a full forward pass has logits"),
    ))
}

/// The metric of each pair's intervened run, and with `grad`, the gradient of their summed
/// metric at the mixed residual stream (`[pairs, len, d]`).
fn run(
    model: &Transformer,
    layer: usize,
    pairs: &[&ResidPair],
    basis: &Basis,
    metric: &Metric,
    grad: bool,
) -> Result<(Vec<f64>, Option<Vec<f32>>)> {
    let (batch, resid, len) = mixed_batch(model, pairs, basis)?;
    let prompts: Vec<Prompt> = pairs.iter().map(|p| p.prompt.clone()).collect();
    let resolved = metric.resolve(&prompts, &batch, model.config.d_vocab)?;
    let device = model.device();
    let mut resid =
        Tensor::<3>::from_data(TensorData::new(resid, [pairs.len(), len, basis.d]), &device);
    if grad {
        resid = resid.autodiff().require_grad();
    }
    let span = Span {
        start: Some((layer, resid.clone())),
        stop_before: Some(model.config.n_layers),
        ..Span::default()
    };
    let out = model.forward(&batch, &Intervention::default(), span);
    let values = resolved.values_from_resid(model, out.resid);
    let host: Vec<f64> = host_values(&values.clone().detach().inner())
        .into_iter()
        .map(f64::from)
        .collect();
    if !grad {
        return Ok((host, None));
    }
    let grads = values.sum().backward();
    let g = resid
        .grad(&grads)
        .map(|g| host_values(&g))
        .unwrap_or_else(|| vec![0.0; pairs.len() * len * basis.d]);
    Ok((host, Some(g)))
}

/// Groups pair indices by prompt length (in first-appearance order), each group cut into
/// chunks of at most `size`.
fn chunks(pairs: &[&ResidPair], indices: &[usize], size: usize) -> Vec<Vec<usize>> {
    let mut groups: Vec<(usize, Vec<usize>)> = Vec::new();
    for &i in indices {
        let len = pairs[i].prompt.len();
        match groups.iter_mut().find(|(l, _)| *l == len) {
            Some((_, g)) => g.push(i),
            None => groups.push((len, vec![i])),
        }
    }
    groups
        .into_iter()
        .flat_map(|(_, g)| {
            g.chunks(size.max(1))
                .map(<[usize]>::to_vec)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The share of `pairs` whose intervened run's top prediction at `position` is their answer
/// `answer`, run `batch` pairs at a time.
pub fn accuracy(
    model: &Transformer,
    layer: usize,
    pairs: &[&ResidPair],
    basis: &Basis,
    answer: &str,
    position: &MetricPosition,
    batch: usize,
) -> Result<f64> {
    if pairs.is_empty() {
        return Ok(f64::NAN);
    }
    let metric = Metric::answer_top1(answer, position.clone());
    let all: Vec<usize> = (0..pairs.len()).collect();
    let mut right = 0.0;
    for chunk in chunks(pairs, &all, batch) {
        let group: Vec<&ResidPair> = chunk.iter().map(|&i| pairs[i]).collect();
        right += run(model, layer, &group, basis, &metric, false)?
            .0
            .iter()
            .sum::<f64>();
    }
    Ok(right / pairs.len() as f64)
}

/// How DAS trains.
#[derive(Clone, Debug, PartialEq)]
pub struct DasConfig {
    pub steps: usize,
    pub lr: f64,
    pub pairs_per_step: usize,
    pub seed: u64,
    /// The answer trained towards (`counterfactual`) and where it is read.
    pub answer: String,
    pub position: MetricPosition,
}

/// A trained basis and the training loss (mean cross-entropy of the answer) at the first and
/// last step.
#[derive(Clone, Debug, PartialEq)]
pub struct DasFit {
    pub basis: Basis,
    pub loss_initial: f64,
    pub loss_final: f64,
}

/// Trains `basis` on `pairs` (see the module docs). Minibatches hold pairs of one length: each
/// epoch shuffles the pairs with `derive_seed(seed, "das/epoch<E>")`, groups them by length and
/// cuts the groups into chunks of `pairs_per_step`; step `s` takes the next chunk.
pub fn train_das(
    model: &Transformer,
    layer: usize,
    pairs: &[&ResidPair],
    mut basis: Basis,
    cfg: &DasConfig,
) -> Result<DasFit> {
    if pairs.is_empty() {
        return Err(InterventionError::Config("DAS needs training pairs".into()));
    }
    let metric = Metric::new(
        MetricKind::LogProb(TokenRef::Answer(cfg.answer.clone())),
        cfg.position.clone(),
    );
    let (d, k) = (basis.d, basis.k);
    let (b1, b2, eps) = (0.9, 0.999, 1e-8);
    let mut m = vec![0.0; d * k];
    let mut v = vec![0.0; d * k];
    let mut queue: Vec<Vec<usize>> = Vec::new();
    let mut epoch = 0;
    let (mut loss_initial, mut loss_final) = (f64::NAN, f64::NAN);
    for step in 0..cfg.steps {
        if queue.is_empty() {
            let mut order: Vec<usize> = (0..pairs.len()).collect();
            Rng::new(derive_seed(cfg.seed, &format!("das/epoch{epoch}"))).shuffle(&mut order);
            queue = chunks(pairs, &order, cfg.pairs_per_step);
            queue.reverse();
            epoch += 1;
        }
        let chunk = queue.pop().expect("a refilled queue");
        let group: Vec<&ResidPair> = chunk.iter().map(|&i| pairs[i]).collect();
        let (logp, g) = run(model, layer, &group, &basis, &metric, true)?;
        let g = g.expect("asked for the gradient");
        let n = group.len() as f64;
        let loss = -logp.iter().sum::<f64>() / n;
        if step == 0 {
            loss_initial = loss;
        }
        loss_final = loss;
        // dL/dW with L = -mean log p: the metric's gradient, negated and averaged.
        let mut grad_w = vec![0.0; d * k];
        let len = group[0].prompt.len();
        for (r, p) in group.iter().enumerate() {
            for (q, &pos) in p.positions.iter().enumerate() {
                let gv: Vec<f64> = g[(r * len + pos) * d..(r * len + pos + 1) * d]
                    .iter()
                    .map(|&x| -f64::from(x) / n)
                    .collect();
                let delta: Vec<f64> = (0..d)
                    .map(|i| f64::from(p.source[q * d + i]) - f64::from(p.base[pos * d + i]))
                    .collect();
                let (wd, wg) = (basis.project(&delta), basis.project(&gv));
                for i in 0..d {
                    for j in 0..k {
                        grad_w[i * k + j] += gv[i] * wd[j] + delta[i] * wg[j];
                    }
                }
            }
        }
        let t = (step + 1) as i32;
        for i in 0..d * k {
            m[i] = b1 * m[i] + (1.0 - b1) * grad_w[i];
            v[i] = b2 * v[i] + (1.0 - b2) * grad_w[i] * grad_w[i];
            let mh = m[i] / (1.0 - b1.powi(t));
            let vh = v[i] / (1.0 - b2.powi(t));
            basis.w[i] -= cfg.lr * mh / (vh.sqrt() + eps);
        }
        basis.orthonormalize();
    }
    Ok(DasFit {
        basis,
        loss_initial,
        loss_final,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bases_are_orthonormal_and_interchange_as_written() {
        let b = Basis::random(6, 3, 7);
        for p in 0..3 {
            for q in 0..3 {
                let dot: f64 = (0..6).map(|i| b.at(i, p) * b.at(i, q)).sum();
                assert!((dot - f64::from(u8::from(p == q))).abs() < 1e-12);
            }
        }
        assert_eq!(b, Basis::random(6, 3, 7));
        // W = e0: only coordinate 0 comes from the source.
        let e0 = Basis::from_rotation(&[vec![1.0, 0.0], vec![0.0, 1.0]], 1);
        assert_eq!(e0.interchange(&[1.0, 2.0], &[5.0, 7.0]), [5.0, 2.0]);
        // W = (1, 1) / sqrt 2: the mean of the two coordinates' difference moves.
        let s = std::f64::consts::FRAC_1_SQRT_2;
        let diag = Basis::from_rotation(&[vec![s, s], vec![s, -s]], 1);
        let out = diag.interchange(&[0.0, 0.0], &[2.0, 0.0]);
        assert!(
            (out[0] - 1.0).abs() < 1e-6 && (out[1] - 1.0).abs() < 1e-6,
            "{out:?}"
        );
        assert_eq!(
            Basis::full(2).interchange(&[1.0, 2.0], &[5.0, 7.0]),
            [5.0, 7.0]
        );
    }
}
