//! Weights held at half precision (`dtype = "bf16"` or `"f16"`): the matrices are rounded once as
//! they are read and stay narrow on the device; norm weights and biases stay f32; computation is
//! f32, so a half-precision model computes exactly what an f32 model of the rounded weights does.

use std::path::Path;

use circuitry_models::burn::prelude::*;
use circuitry_models::burn::tensor::{DType, bf16, f16};
use circuitry_models::processing::process;
use circuitry_models::{
    HostTensor, Intervention, ModelSource, Processing, Span, TokenBatch, Transformer, WeightDtype,
    Weights, load_weights, load_weights_as,
};

use crate::common::{FIXTURE_MODELS, fixture_dir, tensor_values};

const HALVES: [WeightDtype; 2] = [WeightDtype::Bf16, WeightDtype::F16];

fn source(name: &str) -> ModelSource {
    ModelSource::resolve(fixture_dir(name).to_str().unwrap(), Path::new(".")).unwrap()
}

/// `x` rounded to `dtype` and widened back.
fn round(x: f32, dtype: WeightDtype) -> f32 {
    match dtype {
        WeightDtype::F32 => x,
        WeightDtype::Bf16 => bf16::from_f32(x).to_f32(),
        WeightDtype::F16 => f16::from_f32(x).to_f32(),
    }
}

/// f32 weights whose matrices are `full`'s rounded to `dtype` (vectors unchanged).
fn rounded_in_f32(full: &Weights, dtype: WeightDtype) -> Weights {
    let mut w = full.clone();
    for t in w.tensors.values_mut() {
        if t.shape.len() >= 2 {
            let values = t.data().iter().map(|&x| round(x, dtype)).collect();
            *t = HostTensor::new(t.shape.clone(), values);
        }
    }
    w
}

fn batch(device: &Device) -> TokenBatch {
    TokenBatch::unpadded(&[vec![1, 5, 7, 3, 9, 2, 11, 4], vec![2, 8, 8, 6]], device)
}

#[test]
fn matrices_are_held_rounded_and_vectors_stay_f32() {
    for name in FIXTURE_MODELS {
        let full = load_weights(&source(name)).unwrap();
        for dtype in HALVES {
            let half = load_weights_as(&source(name), dtype).unwrap();
            assert_eq!(half.config, full.config, "{name}");
            let (mut matrices, mut vectors) = (0, 0);
            for (key, f) in &full.tensors {
                let h = &half.tensors[key];
                assert_eq!(h.shape, f.shape, "{name} {key}");
                if f.shape.len() >= 2 {
                    matrices += 1;
                    assert_eq!(h.dtype(), dtype, "{name} {key}");
                    let (got, want) = (h.data(), f.data());
                    if let Some(i) = (0..want.len()).find(|&i| got[i] != round(want[i], dtype)) {
                        panic!(
                            "{name} {key} {dtype:?}[{i}]: {} is not {} rounded",
                            got[i], want[i]
                        );
                    }
                } else {
                    vectors += 1;
                    assert_eq!(h, f, "{name} {key} stays f32");
                }
            }
            assert!(matrices > 0 && vectors > 0, "{name}");
        }
    }
}

#[test]
fn a_half_precision_model_computes_in_f32_on_its_rounded_weights() {
    let device = Device::flex();
    let batch = batch(&device);
    for name in FIXTURE_MODELS {
        let full = load_weights(&source(name)).unwrap();
        for dtype in HALVES {
            let half =
                Transformer::from_weights(load_weights_as(&source(name), dtype).unwrap(), &device)
                    .unwrap();
            assert_eq!(half.weight_dtype(), dtype, "{name}");
            assert_eq!(
                half.w_u().dtype(),
                DType::F32,
                "{name}: weights read as f32"
            );
            let reference =
                Transformer::from_weights(rounded_in_f32(&full, dtype), &device).unwrap();
            assert_eq!(reference.weight_dtype(), WeightDtype::F32);
            let hooks = half.hook_points();
            let run = |m: &Transformer| {
                m.forward(
                    &batch,
                    &Intervention::capture(hooks.clone()),
                    Span::default(),
                )
            };
            let (a, b) = (run(&half), run(&reference));
            assert_eq!(
                tensor_values(a.logits.as_ref().unwrap()),
                tensor_values(b.logits.as_ref().unwrap()),
                "{name} {dtype:?} logits"
            );
            for hook in &hooks {
                let (x, y) = (a.cache.get(hook).unwrap(), b.cache.get(hook).unwrap());
                assert_eq!(x.to_vec(), y.to_vec(), "{name} {dtype:?} {hook}");
            }
            // Round trip: the host copy is the narrow one.
            let back = half.to_weights(Path::new("mem"));
            assert_eq!(
                back.tensors[circuitry_models::weights::names::W_U].dtype(),
                dtype
            );
        }
    }
}

/// Log-probabilities of every position.
fn log_probs(model: &Transformer, batch: &TokenBatch) -> Vec<f32> {
    let logits = model.logits(batch);
    tensor_values(&circuitry_models::burn::tensor::activation::log_softmax(
        logits, 2,
    ))
}

#[test]
fn processing_keeps_the_precision_and_the_probabilities() {
    let device = Device::flex();
    let batch = batch(&device);
    for name in FIXTURE_MODELS {
        let half = load_weights_as(&source(name), WeightDtype::Bf16).unwrap();
        let processed = process(half.clone(), Processing::all());
        for (key, t) in &processed.tensors {
            let want = if t.shape.len() >= 2 {
                WeightDtype::Bf16
            } else {
                WeightDtype::F32
            };
            assert_eq!(t.dtype(), want, "{name} {key} after processing");
        }
        let run = |w: Weights| log_probs(&Transformer::from_weights(w, &device).unwrap(), &batch);
        let full = load_weights(&source(name)).unwrap();
        let (half_raw, half_processed) = (run(half), run(processed));
        let (full_raw, full_processed) = (run(full.clone()), run(process(full, Processing::all())));
        let gap = |a: &[f32], b: &[f32]| {
            a.iter()
                .zip(b)
                .map(|(x, y)| (x - y).abs())
                .fold(0f32, f32::max)
        };
        // Rounding the weights to bf16 moves the log-probabilities by some amount; processing
        // at bf16 rounds each changed matrix once more, so it may move them by about as much
        // again, but never by more than a few times bf16's own rounding.
        let rounding = gap(&half_raw, &full_raw);
        let moved = gap(&half_processed, &half_raw);
        let from_f32 = gap(&half_processed, &full_processed);
        assert!(
            rounding > 0.0 && rounding < 0.5,
            "{name}: bf16 rounding moved log-probs by {rounding}"
        );
        assert!(
            moved < 3.0 * rounding,
            "{name}: processing at bf16 moved log-probs by {moved}"
        );
        assert!(
            from_f32 < 3.0 * rounding,
            "{name}: bf16 differs from f32 by {from_f32}"
        );
    }
}
