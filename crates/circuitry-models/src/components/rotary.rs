//! Rotary position embeddings in Hugging Face's `rotate_half` layout.

use burn::prelude::*;

/// Cosine and sine tables for the positions of one batch, `[batch, pos, 1, dim]` each.
pub struct RotaryTables {
    cos: Tensor<4>,
    sin: Tensor<4>,
    dim: usize,
}

impl RotaryTables {
    /// Tables for `positions` (`[batch, seq]`) with `dim` rotated features and base `theta`.
    /// Computed in f32 like Hugging Face's `LlamaRotaryEmbedding`.
    pub fn new(positions: &Tensor<2, Int>, n_positions: usize, dim: usize, theta: f64) -> Self {
        let device = positions.device();
        let half = dim / 2;
        let inv_freq: Vec<f32> = (0..half)
            .map(|i| 1.0 / (theta as f32).powf((2 * i) as f32 / dim as f32))
            .collect();
        let mut cos = vec![0f32; n_positions * dim];
        let mut sin = vec![0f32; n_positions * dim];
        for p in 0..n_positions {
            for (i, f) in inv_freq.iter().enumerate() {
                let angle = p as f32 * f;
                let (s, c) = angle.sin_cos();
                for j in [i, i + half] {
                    cos[p * dim + j] = c;
                    sin[p * dim + j] = s;
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
