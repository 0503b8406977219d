//! Scale checks at SmolLM2-135M sizes (vocabulary 49152, d_model 576, d_head 64), ignored by
//! default: `cargo test -p circuitry-circuits --release --test integration factored_scale -- --ignored --nocapture`.

use crate::wc_common;

use std::time::Instant;

use circuitry_circuits::factored::{BlockOptions, FactoredMatrix, Ranking};
use wc_common::*;

#[test]
#[ignore = "minutes at full vocabulary size; run explicitly"]
fn token_space_circuit_at_smollm2_size() {
    let (vocab, d_head) = (49_152, 64);
    let mut rng = Rng::new(3);
    let f = FactoredMatrix::new(rng.matrix(vocab, d_head), rng.matrix(d_head, vocab));
    let t = Instant::now();
    let ev = f.eigenvalues().unwrap();
    eprintln!("eigenvalues ({}): {:?}", ev.len(), t.elapsed());
    let t = Instant::now();
    let s = f.singular_values();
    eprintln!("singular values ({}): {:?}", s.len(), t.elapsed());
    let t = Instant::now();
    let norm = f.frobenius_norm();
    eprintln!("norm {norm}: {:?}", t.elapsed());
    let t = Instant::now();
    let top = f.top_k(100, Ranking::Largest, &BlockOptions::default());
    eprintln!("top-100 of {vocab}^2: {:?}", t.elapsed());
    assert_eq!(top.len(), 100);
    assert!(top.windows(2).all(|w| w[0].value >= w[1].value));
    // Spot-check the winners against direct dot products.
    for e in &top[..5] {
        assert!((f.entry(e.row, e.col) - e.value).abs() < 1e-9 * e.value.abs());
    }
    // Top entries of each row of the first 10 rows agree with the global ranking's bound.
    let best_in_rows = f.top_k_per_row(1, Ranking::Largest, &BlockOptions::default());
    let best = best_in_rows
        .iter()
        .map(|r| r[0].value)
        .fold(f64::MIN, f64::max);
    assert!((best - top[0].value).abs() < 1e-9 * best.abs());
}
