//! Shared helpers for tests against the reference fixtures in `tests/fixtures/`.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use circuitry_models::burn::prelude::*;
use safetensors::{Dtype, SafeTensors};

pub fn fixture_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

/// A reference tensor: shape and values (f32, or i64 converted to f64 for ids).
#[derive(Clone, Debug)]
pub struct RefTensor {
    pub shape: Vec<usize>,
    pub f32: Vec<f32>,
    pub i64: Vec<i64>,
}

pub fn load_reference(model: &str) -> BTreeMap<String, RefTensor> {
    let path = fixture_dir(model).join("reference.safetensors");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = SafeTensors::deserialize(&bytes).expect("reference safetensors");
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
            let data = view.data();
            let (f, i) = match view.dtype() {
                Dtype::F32 => (
                    data.chunks_exact(4)
                        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                        .collect(),
                    vec![],
                ),
                Dtype::I64 => (
                    vec![],
                    data.chunks_exact(8)
                        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                        .collect(),
                ),
                other => panic!("unexpected dtype {other:?} for {name}"),
            };
            (
                name,
                RefTensor {
                    shape: view.shape().to_vec(),
                    f32: f,
                    i64: i,
                },
            )
        })
        .collect()
}

/// Token rows of an `*.input_ids` reference tensor.
pub fn rows(t: &RefTensor) -> Vec<Vec<u32>> {
    t.i64
        .chunks(t.shape[1])
        .map(|r| r.iter().map(|&x| x as u32).collect())
        .collect()
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
