//! The random-matrix baseline of composition scores: deterministic per seed, close to
//! `1/sqrt(d_model)`, and in agreement with an independent dense Monte Carlo (different PRNG,
//! different normal sampler, explicit `d x d` products).

use crate::wc_common;

use std::path::Path;

use circuitry_circuits::weight_circuits::CircuitWeights;
use circuitry_circuits::weight_circuits::composition::{
    CompositionKind, composition_baseline, random_composition_baseline,
};
use circuitry_models::burn::prelude::Device;
use circuitry_models::{Processing, load_model};
use wc_common::*;

fn dense_monte_carlo(d: usize, k: usize, samples: usize, seed: u64) -> (f64, f64) {
    let mut rng = Rng::new(seed);
    let scores: Vec<f64> = (0..samples)
        .map(|_| {
            let l = naive_matmul(&rng.matrix(d, k), &rng.matrix(k, d));
            let r = naive_matmul(&rng.matrix(d, k), &rng.matrix(k, d));
            naive_frobenius(&naive_matmul(&l, &r)) / (naive_frobenius(&l) * naive_frobenius(&r))
        })
        .collect();
    let n = samples as f64;
    let mean = scores.iter().sum::<f64>() / n;
    let var = scores.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

#[test]
fn baseline_is_deterministic_for_a_seed() {
    let a = random_composition_baseline((40, 8, 40), (40, 8, 40), 64, 17);
    let b = random_composition_baseline((40, 8, 40), (40, 8, 40), 64, 17);
    assert_eq!(a, b, "same seed, same result (bit for bit)");
    assert_eq!((a.samples, a.seed), (64, 17));
    let c = random_composition_baseline((40, 8, 40), (40, 8, 40), 64, 18);
    assert_ne!(a.mean, c.mean, "another seed draws other matrices");
    // The number of threads does not matter: a one-thread pool gives the same numbers.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let d = pool.install(|| random_composition_baseline((40, 8, 40), (40, 8, 40), 64, 17));
    assert_eq!(a, d);
    // Degenerate sample counts.
    let one = random_composition_baseline((10, 2, 10), (10, 2, 10), 1, 0);
    assert!(one.mean.is_finite() && one.std.is_nan());
    assert!(
        random_composition_baseline((10, 2, 10), (10, 2, 10), 0, 0)
            .mean
            .is_nan()
    );
}

#[test]
fn baseline_mean_is_about_one_over_sqrt_d_model() {
    // Full-rank square factors and low-rank d_head factors alike.
    for (d, k) in [(32, 32), (64, 64), (64, 16), (128, 16)] {
        let b = random_composition_baseline((d, k, d), (d, k, d), 200, 1);
        let expected = 1.0 / (d as f64).sqrt();
        assert!(
            (b.mean - expected).abs() < 0.05 * expected,
            "d={d} k={k}: mean {} vs 1/sqrt(d) = {expected}",
            b.mean
        );
        assert!(
            b.std > 0.0 && b.std < 0.3 * b.mean,
            "d={d} k={k}: std {}",
            b.std
        );
    }
}

#[test]
fn baseline_agrees_with_an_independent_dense_monte_carlo() {
    for (d, k) in [(48, 8), (24, 24)] {
        let n = 400;
        let lib = random_composition_baseline((d, k, d), (d, k, d), n, 99);
        let (mean, std) = dense_monte_carlo(d, k, n, 12345);
        let se = (lib.std.powi(2) / n as f64 + std.powi(2) / n as f64).sqrt();
        assert!(
            (lib.mean - mean).abs() < 4.0 * se,
            "d={d} k={k}: library {} ± {}, dense {mean} ± {std}",
            lib.mean,
            lib.std
        );
        assert!(
            lib.std / std > 0.75 && lib.std / std < 1.33,
            "d={d} k={k}: std {} vs dense {std}",
            lib.std
        );
    }
}

#[test]
fn model_baseline_uses_the_model_shapes() {
    let dir = fixture_dir("gpt2-tiny");
    let loaded = load_model(
        dir.to_str().unwrap(),
        Path::new("."),
        Processing::all(),
        &Device::flex(),
    )
    .unwrap();
    let w = CircuitWeights::from_transformer(&loaded.model);
    let q = composition_baseline(&w, CompositionKind::Q, 100, 5);
    let want = random_composition_baseline(
        (w.d_model, w.d_head, w.d_model),
        (w.d_model, w.d_head, w.d_model),
        100,
        5,
    );
    assert_eq!(q, want);
    for kind in [CompositionKind::K, CompositionKind::V] {
        assert_eq!(composition_baseline(&w, kind, 100, 5), q, "{kind:?}");
    }
}
