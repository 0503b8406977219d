//! GGUF files of every architecture read through the Llama layout, and GPT-NeoX's, load to the
//! same model as the Hugging Face checkpoint they were converted from.
//! `tests/fixtures/gguf/arch-*.gguf` come from
//! `scripts/reference/gguf_architectures.py`, which converts the tiny fixtures as llama.cpp's
//! `convert_hf_to_gguf.py` does (the `gguf` package's tensor-name table; Gemma's norms stored as
//! `1 + w`; query/key rows permuted for `llama` only; Phi-3's fused projections kept; GPT-NeoX's fused
//! rows reordered to `[q; k; v]`), in F32,
//! so the loaded weights must be equal, not merely close. A Llama 3 file's `rope_freqs` factors
//! must rotate as Hugging Face's `llama3` scaling.

use circuitry_models::burn::prelude::*;
use circuitry_models::components::rotary::frequencies;
use circuitry_models::load::read_config;
use circuitry_models::{
    Architecture, BlockNorms, ModelSource, Positional, QkNorm, RopeScaling, TokenBatch,
    Transformer, Weights, load_weights,
};
use circuitry_testkit::fixture_dir;

/// (GGUF file stem, Hugging Face directory under tests/fixtures).
const CONVERTED: [(&str, &str); 9] = [
    ("qwen2", "gguf/qwen2-hf"),
    ("gptneox", "gptneox-tiny"),
    ("qwen3", "qwen3-tiny"),
    ("olmo2", "olmo2-tiny"),
    ("phi3", "phi3-tiny"),
    ("gemma", "gemma-tiny"),
    ("gemma2", "gemma2-tiny"),
    ("gemma3", "gemma3-tiny"),
    ("llama-rope-linear", "rope-linear"),
];

fn gguf(stem: &str) -> ModelSource {
    ModelSource::Gguf(fixture_dir("gguf").join(format!("arch-{stem}.gguf")))
}

#[test]
fn every_converted_architecture_loads_the_hugging_face_weights() {
    for (stem, hf) in CONVERTED {
        let from_gguf = load_weights(&gguf(stem)).unwrap_or_else(|e| panic!("{stem}: {e}"));
        let from_hf = load_weights(&ModelSource::HfDir(fixture_dir(hf))).unwrap();
        // GGUF stores eps as f32; everything else must be read the same.
        let mut expected = from_hf.config.clone();
        expected.norm_eps = expected.norm_eps as f32 as f64;
        let stored_scale = from_gguf.config.attn_scale.map(|s| 1.0 / s);
        if stored_scale.is_some_and(|m| m as f32 as f64 == m) {
            // Gemma 2's `attention.scale` is the f32 multiplier 1 / divisor.
            expected.attn_scale = expected.attn_scale.map(|s| 1.0 / ((1.0 / s) as f32 as f64));
        }
        assert_eq!(from_gguf.config, expected, "{stem}: configuration");
        assert_eq!(
            from_gguf.tensors.keys().collect::<Vec<_>>(),
            from_hf.tensors.keys().collect::<Vec<_>>(),
            "{stem}: tensor names"
        );
        for (name, t) in &from_hf.tensors {
            assert!(from_gguf.tensors[name] == *t, "{stem}: {name} differs");
        }

        // The same weights run to the same logits.
        let device = Device::flex();
        let tokens = TokenBatch::unpadded(&[vec![1, 5, 7, 3, 9, 2, 11, 4]], &device);
        let a = Transformer::from_weights(from_gguf, &device).unwrap();
        let b = Transformer::from_weights(from_hf, &device).unwrap();
        let diff: f32 = (a.logits(&tokens) - b.logits(&tokens))
            .abs()
            .max()
            .into_scalar();
        assert!(diff < 1e-5, "{stem}: logits differ by {diff}");
    }
}

#[test]
fn each_architecture_brings_its_own_features() {
    // The equality above would also hold if both readers ignored a feature; these pin what each
    // file must turn on.
    let config = |stem| read_config(&gguf(stem)).unwrap();
    let qwen2 = config("qwen2");
    assert!(qwen2.qkv_bias && !qwen2.attn_out_bias);
    assert_eq!(config("qwen3").qk_norm, QkNorm::PerHead);
    let olmo2 = config("olmo2");
    assert_eq!(
        (olmo2.block_norms, olmo2.qk_norm),
        (BlockNorms::Post, QkNorm::Whole)
    );
    let phi3 = config("phi3");
    assert_eq!(phi3.sliding_window.map(|w| w.size), Some(6));
    assert!(matches!(phi3.positional, Positional::Rotary { dim: 8, .. }));
    let neox = config("gptneox");
    assert!(neox.parallel_attn_mlp && neox.qkv_bias);
    let gemma = config("gemma");
    assert_eq!(gemma.architecture, Architecture::Gemma);
    assert!(gemma.tied_embeddings);
    let gemma2 = config("gemma2");
    assert_eq!(
        (
            gemma2.block_norms,
            gemma2.attn_softcap,
            gemma2.logit_softcap
        ),
        (BlockNorms::PreAndPost, Some(5.0), Some(3.0))
    );
    assert_eq!(gemma2.window(0), Some(4));
    assert_eq!(gemma2.window(1), None);
    assert!((gemma2.attn_divisor() - 32f64.sqrt()).abs() < 1e-6);
    let gemma3 = config("gemma3");
    assert_eq!(gemma3.qk_norm, QkNorm::PerHead);
    assert_eq!(
        (0..3).map(|l| gemma3.window(l)).collect::<Vec<_>>(),
        [Some(4), None, Some(4)]
    );
    assert!(matches!(
        gemma3.positional,
        Positional::Rotary {
            local_theta: Some(10000.0),
            scaling: RopeScaling::Linear { factor: 4.0 },
            ..
        }
    ));
    let Positional::Rotary { scaling, .. } = config("llama-rope-linear").positional else {
        panic!("rotary expected");
    };
    assert_eq!(scaling, RopeScaling::Linear { factor: 4.0 });
}

/// A Llama 3.x GGUF file carries its rope scaling as `rope_freqs` factors (as llama.cpp's
/// converter writes them), which rotate as Hugging Face's `rope_type = "llama3"` does.
#[test]
fn llama3_frequency_factors_rotate_as_hugging_face_llama3() {
    let from_gguf = load_weights(&gguf("llama-rope-llama3")).unwrap();
    let from_hf = load_weights(&ModelSource::HfDir(fixture_dir("rope-llama3"))).unwrap();
    let rotary = |w: &Weights| match &w.config.positional {
        &Positional::Rotary {
            theta,
            dim,
            ref scaling,
            ..
        } => (theta, dim, scaling.clone()),
        Positional::Learned => panic!("rotary expected"),
    };
    let (theta, dim, factors) = rotary(&from_gguf);
    let (_, _, llama3) = rotary(&from_hf);
    assert!(matches!(llama3, RopeScaling::Llama3 { .. }));
    let RopeScaling::Factors { factors: f } = &factors else {
        panic!("factors expected, found {factors:?}");
    };
    // The slow frequencies divided by the full factor 8, the fastest blended (its wavelength
    // lies between the original context's bounds).
    assert!(
        f.contains(&8.0) && f.iter().any(|&x| x > 1.0 && x < 8.0),
        "{f:?}"
    );
    let (got, _) = frequencies(dim, theta, &factors, 64);
    let (want, _) = frequencies(dim, theta, &llama3, 64);
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() <= 1e-6 * w.abs(), "inv_freq {g} vs {w}");
    }

    // Positions past the original context (16), where the scaling matters.
    let device = Device::flex();
    let ids: Vec<u32> = (0..48).map(|i| (i * 7 + 3) % 64).collect();
    let tokens = TokenBatch::unpadded(&[ids], &device);
    let logits = |w: &Weights| {
        Transformer::from_weights(w.clone(), &device)
            .unwrap()
            .logits(&tokens)
    };
    let gap = |a: Tensor<3>, b: Tensor<3>| -> f32 { (a - b).abs().max().into_scalar() };
    let diff = gap(logits(&from_gguf), logits(&from_hf));
    assert!(diff < 1e-5, "logits differ by {diff}");
    let mut unscaled = from_gguf.clone();
    if let Positional::Rotary { scaling, .. } = &mut unscaled.config.positional {
        *scaling = RopeScaling::None;
    }
    let shift = gap(logits(&unscaled), logits(&from_hf));
    assert!(shift > 1e-2, "the factors move the logits by only {shift}");
}

/// `stem`'s file with the first occurrence of `find` replaced by `replace`, in a temporary
/// directory.
fn patched(stem: &str, find: &[u8], replace: &[u8]) -> (tempfile::TempDir, ModelSource) {
    let mut bytes = std::fs::read(fixture_dir("gguf").join(format!("arch-{stem}.gguf"))).unwrap();
    let at = bytes
        .windows(find.len())
        .position(|w| w == find)
        .expect("pattern in the fixture");
    bytes[at..at + replace.len()].copy_from_slice(replace);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.gguf");
    std::fs::write(&path, bytes).unwrap();
    (dir, ModelSource::Gguf(path))
}

#[test]
fn bad_rope_scaling_is_an_error_at_its_key() {
    let config_error = |source: &ModelSource| match read_config(source) {
        Err(circuitry_models::LoadError::Config { key, message, .. }) => (key, message),
        other => panic!("expected a config error, got {other:?}"),
    };
    // A factor that is not positive (the f32 after the key's name and value type 6).
    let key = b"llama.rope.scaling.factor";
    let mut find = key.to_vec();
    find.extend(6u32.to_le_bytes());
    let mut replace = find.clone();
    replace.extend((-4.0f32).to_le_bytes());
    let (_dir, source) = patched("llama-rope-linear", &find, &replace);
    let (at, message) = config_error(&source);
    assert_eq!(at, "llama.rope.scaling.factor", "{message}");
    assert!(message.contains("positive"), "{message}");

    // A scaling type circuitry does not read from GGUF (same length, so the file stays valid).
    let (_dir, source) = patched("llama-rope-linear", b"linear", b"yarn__");
    let (at, message) = config_error(&source);
    assert_eq!(at, "llama.rope.scaling.type", "{message}");
    assert!(
        message.contains("`yarn__`") && message.contains("Hugging Face"),
        "{message}"
    );

    // A rope_freqs factor that is not a positive number.
    let (_dir, source) = patched(
        "llama-rope-llama3",
        &8.0f32.to_le_bytes(),
        &f32::NAN.to_le_bytes(),
    );
    let (at, message) = config_error(&source);
    assert_eq!(at, "rope_freqs.weight", "{message}");
    assert!(message.contains("NaN"), "{message}");
}
