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
//! re-orthonormalised (thin QR). It starts from `gradient_basis` (the subspace along which the
//! interchange lowers the loss fastest, from the loss's second-order expansion in `W`) or from
//! a random basis, and keeps the start when training ends worse on the training pairs.

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

    /// The empty subspace (`k = 0`): the interchange changes nothing.
    pub fn none(d: usize) -> Basis {
        Basis {
            d,
            k: 0,
            w: Vec::new(),
        }
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

/// A trained basis and the mean cross-entropy of the answer over all training pairs at the start
/// and for the basis returned (never higher).
#[derive(Clone, Debug, PartialEq)]
pub struct DasFit {
    pub basis: Basis,
    pub loss_initial: f64,
    pub loss_final: f64,
}

/// What DAS minimises, the cross-entropy of the answer `cfg.answer`, is this metric's negation.
fn training_metric(pairs: &[&ResidPair], cfg: &DasConfig) -> Result<Metric> {
    if pairs.is_empty() {
        return Err(InterventionError::Config("DAS needs training pairs".into()));
    }
    Ok(Metric::new(
        MetricKind::LogProb(TokenRef::Answer(cfg.answer.clone())),
        cfg.position.clone(),
    ))
}

/// For each intervened position of each pair in `group`: the gradient there of the loss
/// `L = -(sum of log p) / n`, from `g` (the summed metric's gradient at the mixed residual stream,
/// `[pairs, len, d]`), and the source-minus-base difference `delta` (W moves `W W^T delta`).
fn loss_gradients(group: &[&ResidPair], g: &[f32], d: usize, n: f64) -> Vec<(Vec<f64>, Vec<f64>)> {
    let len = group[0].prompt.len();
    let mut out = Vec::new();
    for (r, p) in group.iter().enumerate() {
        for (q, &pos) in p.positions.iter().enumerate() {
            let gv = g[(r * len + pos) * d..(r * len + pos + 1) * d]
                .iter()
                .map(|&x| -f64::from(x) / n)
                .collect();
            let delta = (0..d)
                .map(|i| f64::from(p.source[q * d + i]) - f64::from(p.base[pos * d + i]))
                .collect();
            out.push((gv, delta));
        }
    }
    out
}

/// The `k`-dimensional subspace along which interchanging lowers the training loss fastest
/// from `W = 0`. To second order in W the loss is `L0 + tr(W^T S W)`, with `S` the symmetric
/// part of the sum of `delta g^T` over the pairs' intervened positions (`g`: the loss gradient
/// of the unintervened base run), so the best start is the eigenvectors of `S` with the most
/// negative eigenvalues. A random basis instead starts nearly orthogonal to any particular
/// direction, where the loss is flat (W enters it squared), and training can stall there.
pub fn gradient_basis(
    model: &Transformer,
    layer: usize,
    pairs: &[&ResidPair],
    k: usize,
    cfg: &DasConfig,
) -> Result<Basis> {
    let metric = training_metric(pairs, cfg)?;
    let d = model.config.d_model;
    let unintervened = Basis::none(d);
    let n = pairs.len() as f64;
    let mut s = Mat::zeros(d, d);
    let all: Vec<usize> = (0..pairs.len()).collect();
    for chunk in chunks(pairs, &all, cfg.pairs_per_step) {
        let group: Vec<&ResidPair> = chunk.iter().map(|&i| pairs[i]).collect();
        let (_, g) = run(model, layer, &group, &unintervened, &metric, true)?;
        let g = g.expect("asked for the gradient");
        for (gv, delta) in loss_gradients(&group, &g, d, n) {
            let sym = s.as_mut_slice();
            for i in 0..d {
                for j in 0..d {
                    sym[i * d + j] += 0.5 * (delta[i] * gv[j] + gv[i] * delta[j]);
                }
            }
        }
    }
    let (_, vectors) = s
        .symmetric_eigen()
        .map_err(|e| InterventionError::Config(format!("DAS's starting subspace: {e}")))?;
    // Eigenvalues come in decreasing order: the last k columns, most negative first.
    let w = (0..d)
        .flat_map(|i| (0..k).map(move |j| (i, d - 1 - j)))
        .map(|(i, j)| vectors.as_slice()[i * d + j])
        .collect();
    Ok(Basis { d, k, w })
}

/// The mean cross-entropy of `metric`'s answer over `pairs` after interchanging along `basis`,
/// `batch` pairs at a time.
fn mean_loss(
    model: &Transformer,
    layer: usize,
    pairs: &[&ResidPair],
    basis: &Basis,
    metric: &Metric,
    batch: usize,
) -> Result<f64> {
    let all: Vec<usize> = (0..pairs.len()).collect();
    let mut total = 0.0;
    for chunk in chunks(pairs, &all, batch) {
        let group: Vec<&ResidPair> = chunk.iter().map(|&i| pairs[i]).collect();
        total -= run(model, layer, &group, basis, metric, false)?
            .0
            .iter()
            .sum::<f64>();
    }
    Ok(total / pairs.len() as f64)
}

/// Trains `basis` on `pairs` (see the module docs). Minibatches hold pairs of one length: each
/// epoch shuffles the pairs with `derive_seed(seed, "das/epoch<E>")`, groups them by length and
/// cuts the groups into chunks of `pairs_per_step`; step `s` takes the next chunk. Returns the
/// trained basis, or the start where that fits all training pairs better: Adam's steps stay
/// about `lr` long where the gradient vanishes, so from a start that already fits they wander.
pub fn train_das(
    model: &Transformer,
    layer: usize,
    pairs: &[&ResidPair],
    mut basis: Basis,
    cfg: &DasConfig,
) -> Result<DasFit> {
    let metric = training_metric(pairs, cfg)?;
    let (d, k) = (basis.d, basis.k);
    let start = basis.clone();
    let loss_initial = mean_loss(model, layer, pairs, &start, &metric, cfg.pairs_per_step)?;
    let (b1, b2, eps) = (0.9, 0.999, 1e-8);
    let mut m = vec![0.0; d * k];
    let mut v = vec![0.0; d * k];
    let mut queue: Vec<Vec<usize>> = Vec::new();
    let mut epoch = 0;
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
        let (_, g) = run(model, layer, &group, &basis, &metric, true)?;
        let g = g.expect("asked for the gradient");
        let n = group.len() as f64;
        // dL/dW = sum of (g (W^T delta)^T + delta (W^T g)^T) over intervened positions.
        let mut grad_w = vec![0.0; d * k];
        for (gv, delta) in loss_gradients(&group, &g, d, n) {
            let (wd, wg) = (basis.project(&delta), basis.project(&gv));
            for i in 0..d {
                for j in 0..k {
                    grad_w[i * k + j] += gv[i] * wd[j] + delta[i] * wg[j];
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
    let loss_final = mean_loss(model, layer, pairs, &basis, &metric, cfg.pairs_per_step)?;
    Ok(if loss_final <= loss_initial {
        DasFit {
            basis,
            loss_initial,
            loss_final,
        }
    } else {
        DasFit {
            basis: start,
            loss_initial,
            loss_final: loss_initial,
        }
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
