//! Forward-pass throughput of a real model on every compiled-in CPU backend, and the machine's
//! f32 matmul peak, for the numbers in ARCHITECTURE.md.
//!
//! Run (release, both cores):
//!   cargo bench -p circuitry-models --bench forward
//!   cargo bench -p circuitry-models --bench forward --features ndarray   # add NdArray
//! `scripts/bench-forward.sh` runs this and the PyTorch reference side by side.
//! Environment: CIRCUITRY_SMOLLM2_GGUF (model path; default ~/.cache/circuitry/models/...),
//! BENCH_BATCH (8), BENCH_SEQ (64), BENCH_ITERS (5).

use std::path::Path;
use std::time::Instant;

use circuitry_models::burn::prelude::*;
use circuitry_models::burn::tensor::Distribution;
use circuitry_models::loading::expand_home;
use circuitry_models::{Processing, TokenBatch, load_model, parse_device};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Best-of-n f32 GEMM throughput for a square matrix product on `device`.
fn matmul_peak(device: &Device, n: usize) -> f64 {
    let a: Tensor<2> = Tensor::random([n, n], Distribution::Normal(0.0, 1.0), device);
    let b: Tensor<2> = Tensor::random([n, n], Distribution::Normal(0.0, 1.0), device);
    let _ = a.clone().matmul(b.clone()).into_data();
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        let _ = a.clone().matmul(b.clone()).into_data();
        best = best.min(t.elapsed().as_secs_f64());
    }
    2.0 * (n as f64).powi(3) / best / 1e9
}

fn main() {
    let path = std::env::var("CIRCUITRY_SMOLLM2_GGUF")
        .unwrap_or_else(|_| "~/.cache/circuitry/models/SmolLM2-135M-Instruct.Q4_1.gguf".into());
    let path = expand_home(&path);
    let (batch, seq, iters) = (
        env_usize("BENCH_BATCH", 8),
        env_usize("BENCH_SEQ", 64),
        env_usize("BENCH_ITERS", 5),
    );
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "model: {}  batch {batch} x {seq} tokens, {iters} iterations, {threads} threads",
        path.display()
    );
    for name in ["flex", "ndarray", "tch"] {
        let Ok(device) = parse_device(name) else {
            println!("{name:8} not compiled in (see --features)");
            continue;
        };
        let peak = matmul_peak(&device, 2048);
        let loaded = load_model(
            path.to_str().expect("utf-8 path"),
            Path::new("."),
            Processing::all(),
            &device,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let model = loaded.model;
        let vocab = model.config.d_vocab as u32;
        // Deterministic pseudo-random tokens.
        let rows: Vec<Vec<u32>> = (0..batch)
            .map(|b| {
                (0..seq)
                    .map(|i| ((b * 7919 + i * 104729) as u32) % vocab)
                    .collect()
            })
            .collect();
        let tokens = TokenBatch::unpadded(&rows, &device);
        let _ = model.logits(&tokens).into_data(); // warm-up
        let mut times = Vec::new();
        for _ in 0..iters {
            let t = Instant::now();
            let _ = model.logits(&tokens).into_data();
            times.push(t.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        let flops = 2.0 * model.config.n_params() as f64 * (batch * seq) as f64;
        println!(
            "{name:8} forward median {:7.1} ms  {:8.0} tokens/s  {:6.1} GFLOP/s  (matmul peak {:6.1} GFLOP/s, {:4.1}% of peak)",
            median * 1e3,
            (batch * seq) as f64 / median,
            flops / median / 1e9,
            peak,
            100.0 * flops / median / 1e9 / peak
        );
    }
}
