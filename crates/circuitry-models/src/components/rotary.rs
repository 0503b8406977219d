//! Rotary position embeddings in Hugging Face's `rotate_half` layout.

use std::f64::consts::PI;

use burn::prelude::*;

use crate::config::RopeScaling;

/// The rotary frequencies (`inv_freq`, one per rotated pair of features) and the factor cosines
/// and sines are multiplied by, for a batch whose longest prompt has `len` tokens: Hugging Face's
/// `ROPE_INIT_FUNCTIONS` (transformers 4.48). The plain frequencies are computed in f32 as there;
/// the scalings in f64 from them, rounded once (which reproduces Hugging Face's values).
pub fn frequencies(dim: usize, theta: f64, scaling: &RopeScaling, len: usize) -> (Vec<f32>, f32) {
    let half = dim / 2;
    let exponent = |i: usize| (2 * i) as f32 / dim as f32;
    let plain: Vec<f32> = (0..half)
        .map(|i| 1.0 / (theta as f32).powf(exponent(i)))
        .collect();
    let scaled = |f: &dyn Fn(usize, f64) -> f64| -> Vec<f32> {
        plain
            .iter()
            .enumerate()
            .map(|(i, &p)| f(i, f64::from(p)) as f32)
            .collect()
    };
    match *scaling {
        RopeScaling::None => (plain, 1.0),
        RopeScaling::Linear { factor } => (scaled(&|_, p| p / factor), 1.0),
        RopeScaling::Factors { ref factors } => (scaled(&|i, p| p / factors[i]), 1.0),
        RopeScaling::Dynamic {
            factor,
            max_positions,
        } => {
            if len <= max_positions {
                return (plain, 1.0);
            }
            let ratio = factor * len as f64 / max_positions as f64 - (factor - 1.0);
            let base = theta * ratio.powf(dim as f64 / (dim as f64 - 2.0));
            let freqs = (0..half)
                .map(|i| (1.0 / base.powf((2 * i) as f64 / dim as f64)) as f32)
                .collect();
            (freqs, 1.0)
        }
        RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max,
        } => {
            let old = original_max as f64;
            let (low_wavelen, high_wavelen) = (old / low_freq_factor, old / high_freq_factor);
            let freqs = scaled(&|_, p| {
                let wavelen = 2.0 * PI / p;
                if wavelen < high_wavelen {
                    p
                } else if wavelen > low_wavelen {
                    p / factor
                } else {
                    let smooth =
                        (old / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
                    (1.0 - smooth) * p / factor + smooth * p
                }
            });
            (freqs, 1.0)
        }
        RopeScaling::Yarn {
            factor,
            max_positions,
            beta_fast,
            beta_slow,
            attention_factor,
        } => {
            // The dimension whose frequency turns `rotations` times over `max_positions`.
            let correction = |rotations: f64| {
                dim as f64 * (max_positions as f64 / (rotations * 2.0 * PI)).ln()
                    / (2.0 * theta.ln())
            };
            let low = correction(beta_fast).floor().max(0.0);
            let mut high = correction(beta_slow).ceil().min(dim as f64 - 1.0);
            if low == high {
                high += 0.001;
            }
            let freqs = scaled(&|i, p| {
                let ramp = ((i as f64 - low) / (high - low)).clamp(0.0, 1.0);
                let extrapolation = 1.0 - ramp;
                p / factor * (1.0 - extrapolation) + p * extrapolation
            });
            (freqs, attention_factor as f32)
        }
    }
}

/// Cosine and sine tables for the positions of one batch, `[batch, pos, 1, dim]` each.
pub struct RotaryTables {
    cos: Tensor<4>,
    sin: Tensor<4>,
    dim: usize,
}

impl RotaryTables {
    /// Tables for `positions` (`[batch, seq]`, each below `n_positions`, the batch's longest
    /// prompt) with `dim` rotated features, base `theta` and `scaling`; `row_lens` are the rows'
    /// lengths (dynamic scaling reads each prompt's own, so that its result never depends on
    /// the batch). Computed in f32 like Hugging Face's `LlamaRotaryEmbedding`.
    pub fn new(
        positions: &Tensor<2, Int>,
        n_positions: usize,
        row_lens: &[usize],
        dim: usize,
        theta: f64,
        scaling: &RopeScaling,
    ) -> Self {
        if matches!(scaling, RopeScaling::Dynamic { .. }) {
            return Self::per_row(positions, row_lens, dim, theta, scaling);
        }
        let device = positions.device();
        let half = dim / 2;
        let (inv_freq, attention_factor) = frequencies(dim, theta, scaling, n_positions);
        let mut cos = vec![0f32; n_positions * dim];
        let mut sin = vec![0f32; n_positions * dim];
        for p in 0..n_positions {
            for (i, f) in inv_freq.iter().enumerate() {
                let angle = p as f32 * f;
                let (s, c) = angle.sin_cos();
                for j in [i, i + half] {
                    cos[p * dim + j] = c * attention_factor;
                    sin[p * dim + j] = s * attention_factor;
                }
            }
        }
        let [b, t] = positions.dims();
        let idx = positions.clone().reshape([b * t]);
        let table = |v: Vec<f32>| {
            Tensor::<2>::from_data(TensorData::new(v, [n_positions, dim]), &device)
                .select(0, idx.clone())
                .reshape([b, t, 1, dim])
        };
        RotaryTables {
            cos: table(cos),
            sin: table(sin),
            dim,
        }
    }

    /// Tables whose frequencies depend on each row's length, computed slot by slot.
    fn per_row(
        positions: &Tensor<2, Int>,
        row_lens: &[usize],
        dim: usize,
        theta: f64,
        scaling: &RopeScaling,
    ) -> Self {
        let device = positions.device();
        let [b, t] = positions.dims();
        let host = crate::host::host_ints(positions);
        let half = dim / 2;
        let mut cos = vec![0f32; b * t * dim];
        let mut sin = vec![0f32; b * t * dim];
        for (r, &len) in row_lens.iter().enumerate().take(b) {
            let (inv_freq, factor) = frequencies(dim, theta, scaling, len);
            for slot in 0..t {
                let p = host[r * t + slot] as f32;
                let at = (r * t + slot) * dim;
                for (i, f) in inv_freq.iter().enumerate() {
                    let (s, c) = (p * f).sin_cos();
                    for j in [i, i + half] {
                        cos[at + j] = c * factor;
                        sin[at + j] = s * factor;
                    }
                }
            }
        }
        let table =
            |v: Vec<f32>| Tensor::<4>::from_data(TensorData::new(v, [b, t, 1, dim]), &device);
        RotaryTables {
            cos: table(cos),
            sin: table(sin),
            dim,
        }
    }

    /// Rotates the first `dim` features of each head of `x` (`[batch, pos, head, d_head]`).
    pub fn apply(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, t, h, d] = x.dims();
        let (rot, pass) = if self.dim < d {
            (
                x.clone().slice([0..b, 0..t, 0..h, 0..self.dim]),
                Some(x.slice([0..b, 0..t, 0..h, self.dim..d])),
            )
        } else {
            (x, None)
        };
        let half = self.dim / 2;
        let x1 = rot.clone().slice([0..b, 0..t, 0..h, 0..half]);
        let x2 = rot.clone().slice([0..b, 0..t, 0..h, half..self.dim]);
        let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
        let out = rot * self.cos.clone() + rotated * self.sin.clone();
        match pass {
            Some(p) => Tensor::cat(vec![out, p], 3),
            None => out,
        }
    }
}
