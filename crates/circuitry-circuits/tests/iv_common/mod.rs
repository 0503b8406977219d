//! Shared helpers for the intervention tests: the tiny reference models, their reference
//! tensors, and prompt pairs.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;

use circuitry_circuits::analysis::{ModelContext, NoProgress};
use circuitry_circuits::interventions::{Metric, Padding};
use circuitry_data::Prompt;
use circuitry_models::burn::prelude::*;
use circuitry_models::{LoadedModel, PaddingSide, Processing, Transformer, load_model};

pub const MODELS: [&str; 2] = ["gpt2-tiny", "llama-tiny"];

#[allow(unused_imports)] // each test binary uses its own subset
pub use circuitry_testkit::{RefTensor, fixture_dir, load_reference};

/// A tiny fixture model and its tokenizer, with TransformerLens's default weight processing.
pub fn loaded(name: &str) -> LoadedModel {
    loaded_with(name, Processing::all())
}

/// A tiny fixture model and its tokenizer, with `processing`.
pub fn loaded_with(name: &str, processing: Processing) -> LoadedModel {
    let dir = fixture_dir(name);
    load_model(
        dir.to_str().unwrap(),
        Path::new("."),
        processing,
        &Device::flex(),
    )
    .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// A tiny fixture model with TransformerLens's default weight processing.
pub fn tiny(name: &str) -> Transformer {
    loaded(name).model
}

/// What an analysis is given to run on `m`.
pub fn context(m: &LoadedModel) -> ModelContext<'_> {
    ModelContext {
        model: &m.model,
        tokenizer: m.tokenizer.as_ref().expect("fixture tokenizer"),
        progress: &NoProgress,
    }
}

pub fn ids(t: &RefTensor) -> Vec<u32> {
    t.i64.iter().map(|&x| x as u32).collect()
}

/// A clean/corrupt pair with answers `A` = 5 and `B` = 7 (the fixtures' metric tokens).
pub fn pair(id: u32, clean: Vec<u32>, corrupt: Vec<u32>) -> Prompt {
    assert_eq!(clean.len(), corrupt.len());
    let mut p = Prompt::from_tokens(id, clean);
    p.corrupt_tokens = Some(corrupt);
    p.answers.insert("A".into(), 5);
    p.answers.insert("B".into(), 7);
    p
}

/// The fixtures' patching pair (`processed.patch_clean_ids` / `patch_corrupt_ids`).
pub fn fixture_pair(reference: &BTreeMap<String, RefTensor>) -> Prompt {
    pair(
        0,
        ids(&reference["processed.patch_clean_ids"]),
        ids(&reference["processed.patch_corrupt_ids"]),
    )
}

/// logit(5) - logit(7) at the last position, as the fixtures.
pub fn fixture_metric() -> Metric {
    Metric::logit_diff_ids(5, 7)
}

/// Deterministic pseudo-random token rows.
pub fn random_tokens(seed: u64, len: usize, vocab: u32) -> Vec<u32> {
    let mut rng = circuitry_data::Rng::new(seed);
    (0..len)
        .map(|_| rng.below(u64::from(vocab)) as u32)
        .collect()
}

/// `n` random pairs of different lengths (the corrupt prompt differs in a few tokens).
pub fn random_pairs(n: usize, seed: u64) -> Vec<Prompt> {
    (0..n)
        .map(|i| {
            let len = 6 + (i * 3) % 7;
            let clean = random_tokens(seed * 100 + i as u64, len, 128);
            let mut corrupt = clean.clone();
            for (j, t) in corrupt.iter_mut().enumerate() {
                if j % 3 == 1 {
                    *t = (*t + 11) % 128;
                }
            }
            let mut p = pair(i as u32, clean, corrupt);
            p.positions.insert("mid".into(), len / 2);
            p
        })
        .collect()
}

pub fn left() -> Padding {
    Padding {
        pad_id: 0,
        side: PaddingSide::Left,
    }
}

pub fn right() -> Padding {
    Padding::default()
}

pub fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.to_data().convert::<f32>().try_into_vec::<f32>().unwrap()
}

pub fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}
