//! Q-, K- and V-composition between attention heads, with a random-matrix baseline.
//!
//! The composition score of an earlier head `a` (layer `layer_a`) into a later head `b`
//! (`layer_b > layer_a`) is `‖W_A W_B‖_F / (‖W_A‖_F ‖W_B‖_F)` with `W_A = OV_a = W_V^a W_O^a` and
//! - Q-composition: `W_B = QK_b = W_Q^b W_K^bᵀ` (head `a` writes what `b`'s queries read),
//! - K-composition: `W_B = QK_bᵀ = W_K^b W_Q^bᵀ` (what `b`'s keys read),
//! - V-composition: `W_B = OV_b = W_V^b W_O^b` (what `b`'s values read),
//!
//! exactly as TransformerLens's `all_composition_scores(mode)` (norms through the collapsed
//! factors, so no `d_model x d_model` product is formed; under GQA the key/value heads are
//! repeated per query head). Pairs within one layer, or going backwards, have no score
//! (TransformerLens stores zeros there; see [`composition_score_tensor`]).
//!
//! **Baseline.** Scores of unrelated matrices are not zero: for independent Gaussian factors of
//! the same shapes the score concentrates around `1/sqrt(d_model)` (the Framework paper compares
//! scores against this). [`random_composition_baseline`] estimates its mean and standard
//! deviation by seeded Monte Carlo. Because every factor is `d_model x d_head` or its transpose
//! and i.i.d. Gaussian matrices are invariant in law under transposition, the baseline is the
//! same for Q-, K- and V-composition.

use rayon::prelude::*;

use crate::factored::FactoredMatrix;
use crate::matrix::{Mat, Strided, gemm_into};

use super::CircuitWeights;

/// Which input of the later head reads the earlier head's output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CompositionKind {
    Q,
    K,
    V,
}

impl CompositionKind {
    pub const ALL: [CompositionKind; 3] =
        [CompositionKind::Q, CompositionKind::K, CompositionKind::V];

    /// `"Q"`, `"K"` or `"V"` (TransformerLens's `mode`).
    pub fn name(self) -> &'static str {
        match self {
            CompositionKind::Q => "Q",
            CompositionKind::K => "K",
            CompositionKind::V => "V",
        }
    }
}

/// The score of one (earlier head, later head) pair.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CompositionScore {
    pub layer_a: usize,
    pub head_a: usize,
    pub layer_b: usize,
    pub head_b: usize,
    pub kind: CompositionKind,
    pub score: f64,
}

/// The right-hand matrix `W_B` of a composition of `kind` into head `(layer, head)`.
pub fn reading_circuit(
    w: &CircuitWeights,
    kind: CompositionKind,
    layer: usize,
    head: usize,
) -> FactoredMatrix {
    match kind {
        CompositionKind::Q => w.qk(layer, head),
        CompositionKind::K => w.qk(layer, head).transpose(),
        CompositionKind::V => w.ov(layer, head),
    }
}

/// The score of one pair, from the factored circuits (the reference path; the all-pairs
/// functions batch the same computation).
pub fn composition_score(
    w: &CircuitWeights,
    kind: CompositionKind,
    (layer_a, head_a): (usize, usize),
    (layer_b, head_b): (usize, usize),
) -> f64 {
    FactoredMatrix::composition_score(
        &w.ov(layer_a, head_a),
        &reading_circuit(w, kind, layer_b, head_b),
    )
}

/// Collapsed factors of one layer, stacked: `rows x d_model` (left) or `d_model x cols` (right),
/// with each head's Frobenius norm.
struct Stacked {
    mat: Mat,
    norms: Vec<f64>,
    /// Rows (left) or columns (right) per head.
    width: usize,
}

fn stack_left(w: &CircuitWeights, layer: usize) -> Stacked {
    stack(
        w,
        (0..w.n_heads)
            .map(|h| w.ov(layer, h).collapse_left())
            .collect(),
    )
}

fn stack_right(w: &CircuitWeights, kind: CompositionKind, layer: usize) -> Stacked {
    // Stored transposed (heads along rows), multiplied as the transpose.
    let parts = (0..w.n_heads)
        .map(|h| {
            reading_circuit(w, kind, layer, h)
                .collapse_right()
                .transpose()
        })
        .collect();
    stack(w, parts)
}

/// One layer's per-head `[width, d_model]` matrices stacked along the rows.
fn stack(w: &CircuitWeights, parts: Vec<Mat>) -> Stacked {
    let width = parts[0].rows();
    let norms = parts.iter().map(Mat::frobenius_norm).collect();
    let mut data = Vec::with_capacity(width * w.n_heads * w.d_model);
    for p in parts {
        data.extend_from_slice(p.as_slice());
    }
    Stacked {
        mat: Mat::from_vec(width * w.n_heads, w.d_model, data),
        norms,
        width,
    }
}

/// Every pair with `layer_a < layer_b`, ordered by `(layer_a, head_a, layer_b, head_b)`.
pub fn composition_scores(w: &CircuitWeights, kind: CompositionKind) -> Vec<CompositionScore> {
    if w.n_layers < 2 || w.n_heads == 0 {
        return Vec::new();
    }
    let lefts: Vec<Stacked> = (0..w.n_layers - 1)
        .into_par_iter()
        .map(|l| stack_left(w, l))
        .collect();
    let rights: Vec<Stacked> = (1..w.n_layers)
        .into_par_iter()
        .map(|l| stack_right(w, kind, l))
        .collect();
    let h = w.n_heads;
    // blocks[la][lb - la - 1][ha][hb]
    let blocks: Vec<Vec<Vec<Vec<f64>>>> = (0..w.n_layers - 1)
        .into_par_iter()
        .map(|la| {
            let left = &lefts[la];
            (la + 1..w.n_layers)
                .map(|lb| {
                    let right = &rights[lb - 1];
                    // (H p_l x d) · (H p_r x d)ᵀ
                    let (m, n) = (left.mat.rows(), right.mat.rows());
                    let mut prod = vec![0.0; m * n];
                    gemm_into(
                        &mut prod,
                        Strided::row_major(left.mat.as_slice(), m, w.d_model),
                        Strided::row_major(right.mat.as_slice(), n, w.d_model).t(),
                        gemm::Parallelism::None,
                    );
                    (0..h)
                        .map(|ha| {
                            (0..h)
                                .map(|hb| {
                                    let mut s = 0.0;
                                    for i in ha * left.width..(ha + 1) * left.width {
                                        let row = &prod[i * n + hb * right.width
                                            ..i * n + (hb + 1) * right.width];
                                        s += row.iter().map(|x| x * x).sum::<f64>();
                                    }
                                    s.sqrt() / (left.norms[ha] * right.norms[hb])
                                })
                                .collect()
                        })
                        .collect()
                })
                .collect()
        })
        .collect();
    let mut out = Vec::with_capacity(h * h * w.n_layers * (w.n_layers - 1) / 2);
    for (la, per_lb) in blocks.iter().enumerate() {
        for ha in 0..h {
            for (off, per_ha) in per_lb.iter().enumerate() {
                for (hb, &score) in per_ha[ha].iter().enumerate() {
                    out.push(CompositionScore {
                        layer_a: la,
                        head_a: ha,
                        layer_b: la + 1 + off,
                        head_b: hb,
                        kind,
                        score,
                    });
                }
            }
        }
    }
    out
}

/// TransformerLens's layout: a row-major `[n_layers, n_heads, n_layers, n_heads]` tensor indexed
/// `[layer_a, head_a, layer_b, head_b]`, zero where `layer_a >= layer_b`.
pub fn composition_score_tensor(w: &CircuitWeights, kind: CompositionKind) -> Vec<f64> {
    let (l, h) = (w.n_layers, w.n_heads);
    let mut t = vec![0.0; l * h * l * h];
    for s in composition_scores(w, kind) {
        t[((s.layer_a * h + s.head_a) * l + s.layer_b) * h + s.head_b] = s.score;
    }
    t
}

/// Monte Carlo estimate of the composition score of unrelated matrices.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Baseline {
    /// Mean score over the samples (NaN without samples).
    pub mean: f64,
    /// Sample standard deviation (`n - 1` denominator; NaN with fewer than two samples).
    pub std: f64,
    pub samples: usize,
    pub seed: u64,
}

/// Mean and standard deviation of `‖(A₁B₁)(A₂B₂)‖_F / (‖A₁B₁‖_F ‖A₂B₂‖_F)` for independent
/// standard Gaussian factors, `left = (m, k₁, n)` giving `A₁: m x k₁`, `B₁: k₁ x n` and
/// `right = (n, k₂, p)` giving `A₂: n x k₂`, `B₂: k₂ x p`.
///
/// Deterministic for a given `seed`, whatever the number of threads: sample `i` draws from its
/// own SplitMix64 stream whose seed is the `i`-th output of a SplitMix64 seeded with `seed`;
/// normals come from the Box–Muller transform.
///
/// # Panics
/// When `left.2 != right.0`.
pub fn random_composition_baseline(
    left: (usize, usize, usize),
    right: (usize, usize, usize),
    samples: usize,
    seed: u64,
) -> Baseline {
    assert_eq!(left.2, right.0, "left's columns must match right's rows");
    let mut master = SplitMix64::new(seed);
    let seeds: Vec<u64> = (0..samples).map(|_| master.next_u64()).collect();
    let scores: Vec<f64> = seeds
        .into_par_iter()
        .map(|s| {
            let mut rng = SplitMix64::new(s);
            let l = FactoredMatrix::new(
                rng.gaussian_matrix(left.0, left.1),
                rng.gaussian_matrix(left.1, left.2),
            );
            let r = FactoredMatrix::new(
                rng.gaussian_matrix(right.0, right.1),
                rng.gaussian_matrix(right.1, right.2),
            );
            FactoredMatrix::composition_score(&l, &r)
        })
        .collect();
    let (mean, std) = mean_std(&scores);
    Baseline {
        mean,
        std,
        samples,
        seed,
    }
}

/// Mean and sample standard deviation.
fn mean_std(x: &[f64]) -> (f64, f64) {
    let n = x.len();
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    let mean = x.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return (mean, f64::NAN);
    }
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1) as f64;
    (mean, var.sqrt())
}

/// The baseline for `kind` in this model: the factors' shapes are `d_model x d_head` and
/// `d_head x d_model` on both sides (the same for every kind).
pub fn composition_baseline(
    w: &CircuitWeights,
    kind: CompositionKind,
    samples: usize,
    seed: u64,
) -> Baseline {
    let (d, k) = (w.d_model, w.d_head);
    let shapes = match kind {
        // W_V W_O into W_Q W_Kᵀ, W_K W_Qᵀ or W_V W_O: all d x k times k x d.
        CompositionKind::Q | CompositionKind::K | CompositionKind::V => ((d, k, d), (d, k, d)),
    };
    random_composition_baseline(shapes.0, shapes.1, samples, seed)
}

/// SplitMix64 (Steele, Lea & Flood 2014) with Box–Muller normals: small, fast, and fully
/// determined by its seed.
#[derive(Clone, Debug)]
struct SplitMix64 {
    state: u64,
    spare: Option<f64>,
}

impl SplitMix64 {
    fn new(seed: u64) -> SplitMix64 {
        SplitMix64 {
            state: seed,
            spare: None,
        }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    fn next_gaussian(&mut self) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        let u1 = 1.0 - self.next_f64(); // (0, 1]
        let u2 = self.next_f64();
        let r = (-2.0 * u1.ln()).sqrt();
        let theta = std::f64::consts::TAU * u2;
        self.spare = Some(r * theta.sin());
        r * theta.cos()
    }

    fn gaussian_matrix(&mut self, rows: usize, cols: usize) -> Mat {
        Mat::from_fn(rows, cols, |_, _| self.next_gaussian())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_matches_reference_outputs() {
        // First outputs of SplitMix64 seeded with 1234567 (from the reference C implementation).
        let mut r = SplitMix64::new(1234567);
        let got: Vec<u64> = (0..3).map(|_| r.next_u64()).collect();
        assert_eq!(
            got,
            vec![
                6457827717110365317,
                3203168211198807973,
                9817491932198370423
            ]
        );
    }

    #[test]
    fn gaussians_have_unit_variance() {
        let mut r = SplitMix64::new(7);
        let x: Vec<f64> = (0..200_000).map(|_| r.next_gaussian()).collect();
        let (mean, std) = mean_std(&x);
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((std - 1.0).abs() < 0.01, "std {std}");
    }
}
