//! Loads a model directory with `circuitry_models::load_model` and reports, on held-out
//! `[BOS] r r` rows, the loss on each copy, the ICL score and every head's induction and
//! previous-token scores.
//!
//! cargo run --release -p circuitry-train --example inspect_model -- DIR [REPEAT_LEN ...]

use std::path::Path;

use circuitry_models::burn::prelude::Device;
use circuitry_models::{Processing, load_model};
use circuitry_train::{head_scores, repeat_losses, repeated_rows};

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .expect("usage: inspect_model DIR [REPEAT_LEN ...]");
    let mut lens: Vec<usize> = args.map(|a| a.parse().expect("repeat length")).collect();
    if lens.is_empty() {
        lens = vec![10, 20, 30];
    }
    let loaded =
        load_model(&dir, Path::new("."), Processing::none(), &Device::flex()).expect("load");
    let model = &loaded.model;
    let v = model.config.d_vocab;
    let bytes = std::fs::metadata(Path::new(&dir).join("model.safetensors")).map(|m| m.len());
    println!(
        "{dir}: {:?} params, model.safetensors {bytes:?} bytes",
        model.config.n_params()
    );
    for l in lens {
        // a seed no training run uses
        let rows = repeated_rows(987_654_321, 128, l, v);
        let r = repeat_losses(model, &rows, l);
        println!(
            "L={l}: first repeat {:.3} second repeat {:.3} icl {:+.3}",
            r.first_repeat, r.second_repeat, r.icl_score
        );
        for s in head_scores(model, &rows, l) {
            println!(
                "  L{}H{} induction {:.3} previous_token {:.3}",
                s.layer, s.head, s.induction, s.previous_token
            );
        }
    }
}
