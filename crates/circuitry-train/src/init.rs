//! Seeded GPT-2-style parameter initialisation.
//!
//! Every weight matrix is drawn from `N(0, init_std^2)`, the attention and MLP output
//! projections (`W_O`, `W_out`) from `N(0, (init_std / sqrt(2 n_layers))^2)` as in GPT-2;
//! biases are zero, LayerNorm scales one and shifts zero. Each tensor has its own random stream,
//! seeded with `derive_seed(seed, "init/<canonical name>")`, so a tensor's values do not depend
//! on which other tensors the model has. Normal deviates come from [`Normal`] (Box–Muller over
//! circuitry-data's xoshiro256**), never from burn's or `rand`'s global generators.

use std::collections::BTreeMap;
use std::path::PathBuf;

use circuitry_data::{Rng, derive_seed};
use circuitry_models::weights::expected_tensors;
use circuitry_models::{HostTensor, Weights};

use crate::config::TrainConfig;

/// Standard normal deviates by the Box–Muller transform, two per pair of uniforms:
/// `u = (x >> 11 + 0.5) / 2^53` for 64-bit draws `x` (so `u` lies strictly inside (0, 1)),
/// `r = sqrt(-2 ln u1)`, deviates `r cos(2 pi u2)` then `r sin(2 pi u2)`.
#[derive(Clone, Debug)]
pub struct Normal {
    rng: Rng,
    spare: Option<f64>,
}

impl Normal {
    pub fn new(seed: u64) -> Normal {
        Normal {
            rng: Rng::new(seed),
            spare: None,
        }
    }

    fn uniform_open(&mut self) -> f64 {
        ((self.rng.next_u64() >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64)
    }

    /// The next standard normal deviate.
    pub fn sample(&mut self) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        let (u1, u2) = (self.uniform_open(), self.uniform_open());
        let r = (-2.0 * u1.ln()).sqrt();
        let theta = 2.0 * std::f64::consts::PI * u2;
        self.spare = Some(r * theta.sin());
        r * theta.cos()
    }
}

/// The endless stream of [`Normal::sample`]s.
impl Iterator for Normal {
    type Item = f64;

    fn next(&mut self) -> Option<f64> {
        Some(self.sample())
    }
}

/// The label of a tensor's initialisation stream.
pub fn init_stream_label(name: &str) -> String {
    format!("init/{name}")
}

/// Initial weights of the model `config` describes, under canonical names.
pub fn init_weights(config: &TrainConfig) -> Weights {
    let cfg = config.model_config();
    let std = config.arch.init_std;
    let out_std = std / ((2 * cfg.n_layers) as f64).sqrt();
    let mut tensors = BTreeMap::new();
    for (name, shape) in expected_tensors(&cfg) {
        let n: usize = shape.iter().product();
        let leaf = name.rsplit('.').next().unwrap_or(&name);
        let data = match leaf {
            "W_O" | "W_out" => normal(config.seed, &name, n, out_std),
            l if l.starts_with("W_") => normal(config.seed, &name, n, std),
            // LayerNorm scale
            "w" => vec![1.0; n],
            // biases and LayerNorm shifts
            _ => vec![0.0; n],
        };
        tensors.insert(name, HostTensor::new(shape, data));
    }
    Weights {
        config: cfg,
        tensors,
        source: PathBuf::from("<initialisation>"),
    }
}

fn normal(seed: u64, name: &str, n: usize, std: f64) -> Vec<f32> {
    Normal::new(derive_seed(seed, &init_stream_label(name)))
        .take(n)
        .map(|z| (z * std) as f32)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_deviates_have_unit_variance() {
        let xs: Vec<f64> = Normal::new(5).take(20_000).collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64;
        assert!(mean.abs() < 0.03, "mean {mean}");
        assert!((var - 1.0).abs() < 0.05, "var {var}");
    }

    #[test]
    fn init_follows_gpt2() {
        let mut cfg = TrainConfig::induction_2l();
        cfg.arch.init_std = 0.02;
        let w = init_weights(&cfg);
        w.check().unwrap();
        let t = &w.tensors;
        assert!(t["blocks.0.ln1.w"].data().iter().all(|&x| x == 1.0));
        assert!(t["blocks.1.attn.b_Q"].data().iter().all(|&x| x == 0.0));
        let sd = |v: &[f32]| {
            (v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
        };
        let q = sd(&t["blocks.0.attn.W_Q"].data());
        let o = sd(&t["blocks.0.attn.W_O"].data());
        assert!((q - 0.02).abs() < 0.002, "{q}");
        assert!((o - 0.01).abs() < 0.001, "{o}");
        // independent streams per tensor
        assert_ne!(t["blocks.0.attn.W_Q"].data(), t["blocks.0.attn.W_K"].data());
        assert_eq!(init_weights(&cfg).tensors, w.tensors);
    }
}
