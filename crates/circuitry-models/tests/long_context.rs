//! The attention settings of long-context models against Hugging Face. Rotary scaling
//! (`rope_scaling` of Hugging Face configs: linear, dynamic, llama3, yarn) against
//! transformers 4.48.3 on tiny random Llama checkpoints (`scripts/reference/rope_scaling.py`):
//! the frequencies, the cosine/sine factor and the logits of 40-token prompts, past each
//! checkpoint's original context, where the scaling moves the logits by whole units; and
//! Mistral's sliding-window attention, the other position-dependent attention setting.

use crate::common;

use circuitry_models::burn::prelude::*;
use circuitry_models::components::rotary::frequencies;
use circuitry_models::load::read_config;
use circuitry_models::{LoadError, ModelSource, Positional, Processing, TokenBatch};
use common::*;
use serde_json::Value;

fn reference(kind: &str) -> Value {
    let path = fixture_dir(&format!("rope-{kind}")).join("reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f32> {
    match v {
        Value::Array(items) => items.iter().flat_map(floats).collect(),
        other => vec![other.as_f64().unwrap() as f32],
    }
}

fn input_ids(r: &Value) -> Vec<Vec<u32>> {
    r["input_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| floats(row).iter().map(|&x| x as u32).collect())
        .collect()
}

#[test]
fn rotary_scaling_equals_transformers() {
    for kind in ["linear", "dynamic", "llama3", "yarn"] {
        let r = reference(kind);
        let model = load_fixture(&format!("rope-{kind}"), Processing::none());
        let Positional::Rotary {
            theta,
            dim,
            scaling,
            ..
        } = model.config.positional.clone()
        else {
            panic!("{kind}: a rotary model");
        };
        let ids: Vec<Vec<u32>> = r["input_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| floats(row).iter().map(|&x| x as u32).collect())
            .collect();
        let len = ids[0].len();

        let (inv_freq, factor) = frequencies(dim, theta, &scaling, len);
        let want = floats(&r["inv_freq"]);
        for (got, want) in inv_freq.iter().zip(&want) {
            assert!(
                (got - want).abs() <= 1e-6 * want.abs(),
                "{kind} inv_freq {got} vs {want}"
            );
        }
        let scale = r["attention_scaling"].as_f64().unwrap() as f32;
        assert!(
            (factor - scale).abs() < 1e-6,
            "{kind} attention factor {factor} vs {scale}"
        );
        // Their cosine table, position by position.
        let cos = floats(&r["cos"]);
        let half = dim / 2;
        for p in 0..len {
            for j in 0..dim {
                let got = (p as f32 * inv_freq[j % half]).cos() * factor;
                let want = cos[p * dim + j];
                assert!(
                    (got - want).abs() < 1e-5,
                    "{kind} cos[{p}][{j}] {got} vs {want}"
                );
            }
        }

        let batch = TokenBatch::unpadded(&ids, &Device::flex());
        let logits = tensor_values(&model.logits(&batch));
        let diff = max_abs_diff(&logits, &floats(&r["logits"]), |_| false);
        assert!(diff < 1e-4, "{kind}: logits differ by {diff}");
        let moved = r["max_abs_diff_vs_unscaled"].as_f64().unwrap();
        assert!(
            moved > 1.0,
            "{kind}: the fixture exercises the scaling ({moved})"
        );
    }
}

/// A copy of `rope-llama3`'s configuration with `rope_scaling` replaced.
fn config_error(scaling: Value) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(fixture_dir("rope-llama3").join("config.json")).unwrap();
    let mut json: Value = serde_json::from_str(&text).unwrap();
    json["rope_scaling"] = scaling;
    std::fs::write(dir.path().join("config.json"), json.to_string()).unwrap();
    match read_config(&ModelSource::HfDir(dir.path().to_path_buf())) {
        Err(LoadError::Config { key, message, .. }) => (key, message),
        other => panic!("expected a config error, got {other:?}"),
    }
}

#[test]
fn rotary_scalings_that_cannot_be_read_are_errors_at_their_keys() {
    let (key, message) = config_error(serde_json::json!({"rope_type": "longrope", "factor": 2.0}));
    assert_eq!(key, "rope_scaling", "{message}");
    assert!(message.contains("`longrope` is not supported"), "{message}");
    let (key, message) = config_error(serde_json::json!({
        "rope_type": "llama3", "factor": 8.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 16
    }));
    assert_eq!(key, "rope_scaling.low_freq_factor", "{message}");
    let (key, _) = config_error(serde_json::json!({"rope_type": "linear", "factor": -1.0}));
    assert_eq!(key, "rope_scaling.factor");
    // Read one way by transformers 4.48 and another by later versions.
    let (key, message) = config_error(serde_json::json!({
        "rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 16
    }));
    assert_eq!(
        key, "rope_scaling.original_max_position_embeddings",
        "{message}"
    );
    // The older spelling of the type key reads the same.
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(fixture_dir("rope-linear").join("config.json")).unwrap();
    let mut json: Value = serde_json::from_str(&text).unwrap();
    json["rope_scaling"] = serde_json::json!({"type": "linear", "factor": 4.0});
    std::fs::write(dir.path().join("config.json"), json.to_string()).unwrap();
    let config = read_config(&ModelSource::HfDir(dir.path().to_path_buf())).unwrap();
    let linear = read_config(&ModelSource::HfDir(fixture_dir("rope-linear"))).unwrap();
    assert_eq!(config.positional, linear.positional);
}

/// With every scaling, padding a prompt into a batch with a shorter one (either side) leaves
/// both prompts' logits as they are alone: dynamic scaling reads each prompt's own length.
#[test]
fn scaled_rotary_results_do_not_depend_on_the_batch() {
    use circuitry_models::PaddingSide;
    for kind in ["linear", "dynamic", "llama3", "yarn"] {
        let model = load_fixture(&format!("rope-{kind}"), Processing::none());
        let r = reference(kind);
        let long: Vec<u32> = floats(&r["input_ids"][0])
            .iter()
            .map(|&x| x as u32)
            .collect();
        let short = long[..20].to_vec();
        let alone = |row: &[u32]| {
            tensor_values(&model.logits(&TokenBatch::unpadded(&[row.to_vec()], &Device::flex())))
        };
        let (long_alone, short_alone) = (alone(&long), alone(&short));
        let v = model.config.d_vocab;
        for side in [PaddingSide::Right, PaddingSide::Left] {
            let batch = TokenBatch::new(&[long.clone(), short.clone()], 0, side, &Device::flex());
            let logits = tensor_values(&model.logits(&batch));
            let n = long.len();
            let diff = max_abs_diff(&logits[..n * v], &long_alone, |_| false);
            assert!(
                diff < 1e-4,
                "{kind} {side:?}: the long prompt moved by {diff}"
            );
            let offset = if side == PaddingSide::Left {
                n - short.len()
            } else {
                0
            };
            let start = (n + offset) * v;
            let got = &logits[start..start + short.len() * v];
            let diff = max_abs_diff(got, &short_alone, |_| false);
            assert!(
                diff < 1e-4,
                "{kind} {side:?}: the short prompt moved by {diff}"
            );
        }
    }
}

/// Mistral's sliding window (8 keys) on 20-token prompts against transformers 4.48.3 (eager
/// attention; `scripts/reference/sliding_window.py`), where the window moves the logits by
/// whole units; and a prompt's logits are the same alone and padded into a batch.
#[test]
fn sliding_window_attention_equals_transformers() {
    use circuitry_models::PaddingSide;
    let path = fixture_dir("mistral-window").join("reference.json");
    let r: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let model = load_fixture("mistral-window", Processing::none());
    assert_eq!(model.config.window(0), Some(8));
    assert_eq!(model.config.window(1), Some(8));
    let ids = input_ids(&r);
    let logits = tensor_values(&model.logits(&TokenBatch::unpadded(&ids, &Device::flex())));
    let diff = max_abs_diff(&logits, &floats(&r["logits"]), |_| false);
    assert!(diff < 1e-4, "logits differ by {diff}");
    assert!(r["max_abs_diff_vs_no_window"].as_f64().unwrap() > 1.0);
    let v = model.config.d_vocab;
    let short = ids[1][..12].to_vec();
    let alone = tensor_values(&model.logits(&TokenBatch::unpadded(
        std::slice::from_ref(&short),
        &Device::flex(),
    )));
    let batch = TokenBatch::new(
        &[ids[0].clone(), short.clone()],
        0,
        PaddingSide::Left,
        &Device::flex(),
    );
    let padded = tensor_values(&model.logits(&batch));
    let start = (ids[0].len() + ids[0].len() - short.len()) * v;
    let diff = max_abs_diff(&padded[start..start + short.len() * v], &alone, |_| false);
    assert!(
        diff < 1e-4,
        "left padding moved the windowed prompt by {diff}"
    );
}
