//! Shared helpers for tests against the reference fixtures in `tests/fixtures/`.
#![allow(dead_code)]

use std::path::Path;

use circuitry_models::burn::prelude::*;
use circuitry_models::{Processing, Transformer, load_model};

#[allow(unused_imports)] // each test binary uses its own subset
pub use circuitry_testkit::{RefTensor, fixture_dir, load_reference};

/// Every tiny fixture model with reference activations: one per architecture and variant
/// (GPT-2, Llama; GPT-NeoX, Gemma 1/2/3, Qwen3, OLMo-2 and Phi-3 from
/// `scripts/reference/architectures.py`).
pub const FIXTURE_MODELS: &[&str] = &[
    "gpt2-tiny",
    "llama-tiny",
    "gptneox-tiny",
    "gemma-tiny",
    "gemma2-tiny",
    "gemma3-tiny",
    "qwen3-tiny",
    "olmo2-tiny",
    "phi3-tiny",
];

/// The model in directory `dir` (a fixture or a checkpoint a test wrote), with `processing`.
pub fn load_dir(dir: &Path, processing: Processing) -> Transformer {
    load_model(
        dir.to_str().unwrap(),
        Path::new("."),
        processing,
        &Device::flex(),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
    .model
}

/// Fixture model `name`, with `processing`.
pub fn load_fixture(name: &str, processing: Processing) -> Transformer {
    load_dir(&fixture_dir(name), processing)
}

/// Token rows of an `*.input_ids` reference tensor.
pub fn rows(t: &RefTensor) -> Vec<Vec<u32>> {
    t.rows()
}

pub fn tensor_values<const D: usize>(t: &Tensor<D>) -> Vec<f32> {
    t.to_data().convert::<f32>().try_into_vec::<f32>().unwrap()
}

/// Largest absolute difference, skipping entries where `skip(index)` is true.
pub fn max_abs_diff(a: &[f32], b: &[f32], skip: impl Fn(usize) -> bool) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .enumerate()
        .filter(|(i, _)| !skip(*i))
        .map(|(_, (x, y))| (x - y).abs())
        .fold(0.0, f32::max)
}
