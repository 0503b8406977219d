//! Hugging Face checkpoint layouts the loader must accept: sharded safetensors with an index,
//! f16 and bf16 tensors, and the local hub cache (`models--ORG--NAME/snapshots/REV`), resolved
//! offline. Built from the gpt2-tiny fixture, so the expected weights are known exactly.

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;

use circuitry_models::burn::prelude::*;
use circuitry_models::{ModelSource, Processing, TokenBatch, load_weights};
use common::*;
use safetensors::{Dtype, SafeTensors, tensor::TensorView};

/// The fixture's tensors as (name, shape, f32 values).
fn fixture_tensors() -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(fixture_dir("gpt2-tiny").join("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut out: Vec<_> = st
        .tensors()
        .into_iter()
        .map(|(name, v)| {
            let values = v
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect();
            (name, v.shape().to_vec(), values)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Writes `tensors` in `dtype` as `shards` files plus an index (or one file when `shards == 1`).
fn write_checkpoint(
    dir: &Path,
    tensors: &[(String, Vec<usize>, Vec<f32>)],
    dtype: Dtype,
    shards: usize,
) {
    std::fs::create_dir_all(dir).unwrap();
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(fixture_dir("gpt2-tiny").join(f), dir.join(f)).unwrap();
    }
    let encode = |v: &[f32]| -> Vec<u8> {
        match dtype {
            Dtype::F32 => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Dtype::F16 => v
                .iter()
                .flat_map(|x| half::f16::from_f32(*x).to_le_bytes())
                .collect(),
            Dtype::BF16 => v
                .iter()
                .flat_map(|x| half::bf16::from_f32(*x).to_le_bytes())
                .collect(),
            other => panic!("{other:?}"),
        }
    };
    let encoded: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(n, s, v)| (n.clone(), s.clone(), encode(v)))
        .collect();
    let mut weight_map = BTreeMap::new();
    let per_shard = encoded.len().div_ceil(shards);
    for (i, chunk) in encoded.chunks(per_shard).enumerate() {
        let file = if shards == 1 {
            "model.safetensors".to_string()
        } else {
            format!("model-{:05}-of-{shards:05}.safetensors", i + 1)
        };
        let views: Vec<(String, TensorView)> = chunk
            .iter()
            .map(|(n, s, b)| (n.clone(), TensorView::new(dtype, s.clone(), b).unwrap()))
            .collect();
        for (n, _) in &views {
            weight_map.insert(n.clone(), file.clone());
        }
        std::fs::write(
            dir.join(&file),
            safetensors::serialize(views, None).unwrap(),
        )
        .unwrap();
    }
    if shards > 1 {
        let index = serde_json::json!({ "metadata": {}, "weight_map": weight_map });
        std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
    }
}

fn logits(dir: &Path) -> Vec<f32> {
    let device = Device::flex();
    let model = load_dir(dir, Processing::none());
    let rows = rows(&load_reference("gpt2-tiny")["plain.input_ids"]);
    tensor_values(&model.logits(&TokenBatch::unpadded(&rows, &device)))
}

/// A NaN or infinite weight would make every output NaN: loading fails, naming the tensor.
#[test]
fn non_finite_weights_are_an_error_naming_the_tensor() {
    for (bad, shown) in [(f32::NAN, "NaN"), (f32::INFINITY, "inf")] {
        let tmp = tempfile::tempdir().unwrap();
        let mut tensors = fixture_tensors();
        let (name, _, values) = tensors
            .iter_mut()
            .find(|(n, _, _)| n.ends_with("h.1.attn.c_attn.weight"))
            .expect("a layer-1 attention weight");
        values[7] = bad;
        let name = name.clone();
        write_checkpoint(tmp.path(), &tensors, Dtype::F32, 1);
        let err = load_weights(&ModelSource::HfDir(tmp.path().to_path_buf())).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains(&format!("holds {shown} at index")) && message.contains("blocks.1."),
            "{name}: {message}"
        );
    }
}

#[test]
fn sharded_checkpoints_load_like_single_files() {
    let tmp = tempfile::tempdir().unwrap();
    let tensors = fixture_tensors();
    write_checkpoint(&tmp.path().join("sharded"), &tensors, Dtype::F32, 3);
    assert!(
        tmp.path()
            .join("sharded/model.safetensors.index.json")
            .is_file()
    );
    let expected = logits(&fixture_dir("gpt2-tiny"));
    let got = logits(&tmp.path().join("sharded"));
    assert_eq!(got, expected, "sharding must not change anything");
}

#[test]
fn half_precision_checkpoints_are_upcast_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let tensors = fixture_tensors();
    for (dtype, round) in [
        (
            Dtype::F16,
            (|x: f32| half::f16::from_f32(x).to_f32()) as fn(f32) -> f32,
        ),
        (Dtype::BF16, |x: f32| half::bf16::from_f32(x).to_f32()),
    ] {
        let dir = tmp.path().join(format!("{dtype:?}"));
        write_checkpoint(&dir, &tensors, dtype, 1);
        // The same weights rounded to that precision, written as f32, give identical results.
        let rounded: Vec<_> = tensors
            .iter()
            .map(|(n, s, v)| (n.clone(), s.clone(), v.iter().map(|&x| round(x)).collect()))
            .collect();
        let reference_dir = tmp.path().join(format!("{dtype:?}-as-f32"));
        write_checkpoint(&reference_dir, &rounded, Dtype::F32, 1);
        let half = load_weights(&ModelSource::HfDir(dir.clone())).unwrap();
        let full = load_weights(&ModelSource::HfDir(reference_dir.clone())).unwrap();
        assert_eq!(half.tensors, full.tensors, "{dtype:?} upcast");
        assert_eq!(logits(&dir), logits(&reference_dir), "{dtype:?} logits");
        // ...and close to the f32 original.
        let diff = max_abs_diff(&logits(&dir), &logits(&fixture_dir("gpt2-tiny")), |_| false);
        assert!(
            diff > 0.0 && diff < 0.5,
            "{dtype:?} differs from f32 by {diff}"
        );
    }
}

#[test]
fn hub_cache_ids_resolve_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("hub/models--tiny-org--gpt2-tiny");
    let commit = "0123456789abcdef0123456789abcdef01234567";
    write_checkpoint(
        &repo.join("snapshots").join(commit),
        &fixture_tensors(),
        Dtype::F32,
        1,
    );
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), format!("{commit}\n")).unwrap();
    // All of this crate's integration tests share one binary (tests/main.rs), but no other test
    // in it resolves a hub id or reads HF_HUB_CACHE or HF_HOME (every other load gets an
    // existing file or directory, which resolves before the hub cache is consulted), so setting
    // the variable here races with nothing.
    unsafe { std::env::set_var("HF_HUB_CACHE", tmp.path().join("hub")) };
    let source = ModelSource::resolve("tiny-org/gpt2-tiny", Path::new("/nonexistent")).unwrap();
    assert_eq!(
        source,
        ModelSource::HfDir(repo.join("snapshots").join(commit))
    );
    let pinned =
        ModelSource::resolve(&format!("tiny-org/gpt2-tiny@{commit}"), Path::new(".")).unwrap();
    assert_eq!(pinned, source);
    assert_eq!(logits(source.path()), logits(&fixture_dir("gpt2-tiny")));
    let missing = ModelSource::resolve("tiny-org/other", Path::new("."))
        .unwrap_err()
        .to_string();
    assert!(
        missing.contains("not in the local cache") && missing.contains("never downloads"),
        "{missing}"
    );
    let bad_rev = ModelSource::resolve("tiny-org/gpt2-tiny@v9", Path::new("."))
        .unwrap_err()
        .to_string();
    assert!(bad_rev.contains("revision `v9`"), "{bad_rev}");
}
