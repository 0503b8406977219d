//! Times the SmolLM2 IOI residual-stream patching sweep (`hook_resid_pre`, every layer x every
//! position, a handful of IOI prompts, denoising, logit difference IO - S at END) two ways:
//!
//! - fast (the default `PatchOptions`): the destination runs once; each patch starts at its
//!   layer from the cached residual stream (prefix reuse across layers), recomputes only the
//!   positions from the patched one on, attending to the destination's cached keys and values
//!   for the positions before (prefix reuse along the sequence), and patches of a layer run as
//!   rows of one batch (at most `max_rows` rows);
//! - naive: every patched run recomputed from the embedding, one patch at a time (all prompts of
//!   the patch in one batch), as a plain loop over `run_with_hooks` would.
//!
//! Prints both times, the ratio, and the largest difference between the two sweeps' results.
//!
//! ```sh
//! cargo bench -p circuitry-circuits --bench patching_sweep
//! # quicker to build (dependencies are optimised in the dev profile too):
//! cargo test -p circuitry-circuits --bench patching_sweep
//! # options: CIRCUITRY_BENCH_PROMPTS (default 4), CIRCUITRY_SMOLLM2_GGUF (model path),
//! # CIRCUITRY_BENCH_ALL=1 also times layer-prefix reuse + batching alone (every position
//! # recomputed, `reuse_positions = false`)
//! ```

#[path = "../tests/iv_smollm2/mod.rs"]
mod smollm2;

use std::time::Instant;

use circuitry_circuits::interventions::{
    PatchOptions, PatchingConfig, PositionSweep, activation_patching,
};
use circuitry_models::HookKind;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n: usize = std::env::var("CIRCUITRY_BENCH_PROMPTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4);
    let t = Instant::now();
    let loaded = smollm2::load();
    let prompts = smollm2::ioi_prompts(&loaded, n, 0);
    let padding = smollm2::padding(&loaded);
    let model = &loaded.model;
    let lens: Vec<usize> = prompts.iter().map(|p| p.len()).collect();
    println!(
        "SmolLM2-135M-Instruct loaded in {:.1?}: {} layers; {n} IOI prompts of {lens:?} tokens",
        t.elapsed(),
        model.config.n_layers
    );
    let mut cfg = PatchingConfig::new(HookKind::ResidPre, smollm2::ioi_metric());
    cfg.positions = PositionSweep::Each;
    // warm-up
    let mut warm = cfg.clone();
    warm.layers = Some(vec![model.config.n_layers - 1]);
    activation_patching(model, &prompts, padding, &warm).unwrap();

    let t = Instant::now();
    let fast = activation_patching(model, &prompts, padding, &cfg).unwrap();
    let t_fast = t.elapsed();
    println!(
        "resid_pre sweep: {} patched (layer, position) units x {n} prompts = {} results",
        fast.len() / n.max(1),
        fast.len()
    );
    println!("  fast (prefix reuse over layers and positions, batched): {t_fast:.2?}");
    let diff = |a: &[circuitry_circuits::interventions::PatchResult],
                b: &[circuitry_circuits::interventions::PatchResult]| {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x.metric - y.metric).abs())
            .fold(0.0, f64::max)
    };
    if std::env::var_os("CIRCUITRY_BENCH_ALL").is_some() {
        let mut layers_only = cfg.clone();
        layers_only.options.reuse_positions = false;
        let t = Instant::now();
        let mid = activation_patching(model, &prompts, padding, &layers_only).unwrap();
        println!(
            "  layer-prefix reuse + batching, every position recomputed: {:.2?} (largest difference {:.2e})",
            t.elapsed(),
            diff(&fast, &mid)
        );
    }
    let mut naive = cfg.clone();
    naive.options = PatchOptions::naive();
    let t = Instant::now();
    let slow = activation_patching(model, &prompts, padding, &naive).unwrap();
    let t_slow = t.elapsed();
    println!("  naive (recompute from the embedding, one patch at a time): {t_slow:.2?}");
    println!(
        "  speed-up: {:.2}x",
        t_slow.as_secs_f64() / t_fast.as_secs_f64()
    );
    println!(
        "  largest difference between fast and naive results: {:.2e}",
        diff(&fast, &slow)
    );
    let clean = fast.iter().map(|r| r.metric_clean).sum::<f64>() / fast.len() as f64;
    let corrupt = fast.iter().map(|r| r.metric_corrupt).sum::<f64>() / fast.len() as f64;
    println!("  mean logit diff IO - S: clean {clean:.3}, corrupt {corrupt:.3}");
}
