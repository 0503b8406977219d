//! Llama GGUF files map to the same canonical weights as the equivalent Hugging Face checkpoint:
//! `tests/fixtures/gguf/llama-bias.gguf` (from `scripts/make_gguf_fixtures.py`) holds a tiny random
//! Llama with q/k/v biases and an untied unembedding, its query/key rows and biases permuted as
//! llama.cpp's converter does; `llama-bias.expected.safetensors` holds the original Hugging Face
//! tensors. Loading both must give identical weights.

use std::path::PathBuf;

use circuitry_models::burn::prelude::*;
use circuitry_models::{
    LoadError, ModelSource, Positional, RopeScaling, Transformer, load_weights,
};
use circuitry_testkit::fixture_dir;

fn fixture(name: &str) -> PathBuf {
    fixture_dir("gguf").join(name)
}

/// The expected tensors as a Hugging Face Qwen2 directory (Llama with q/k/v biases only).
fn hf_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture("llama-bias.expected.safetensors"),
        dir.path().join("model.safetensors"),
    )
    .unwrap();
    let config = serde_json::json!({
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "hidden_size": 16,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "intermediate_size": 24,
        "vocab_size": 32,
        "max_position_embeddings": 32,
        "rms_norm_eps": 1e-6,
        "rope_theta": 5000.0,
        "tie_word_embeddings": false,
        "bos_token_id": 1,
        "eos_token_id": 2,
    });
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    dir
}

#[test]
fn gguf_and_hugging_face_layouts_give_identical_weights() {
    let gguf = load_weights(&ModelSource::Gguf(fixture("llama-bias.gguf"))).unwrap();
    let dir = hf_dir();
    let hf = load_weights(&ModelSource::HfDir(dir.path().to_path_buf())).unwrap();

    let cfg = &gguf.config;
    assert_eq!(
        (
            cfg.n_layers,
            cfg.d_model,
            cfg.n_heads,
            cfg.n_kv_heads,
            cfg.d_head,
            cfg.d_mlp
        ),
        (2, 16, 2, 1, 8, 24)
    );
    assert!(cfg.qkv_bias && !cfg.attn_out_bias && !cfg.mlp_bias && !cfg.tied_embeddings);
    assert_eq!(
        cfg.positional,
        Positional::Rotary {
            theta: 5000.0,
            dim: 8,
            scaling: RopeScaling::None,
            local_theta: None,
        }
    );
    // The file stores eps as f32.
    assert_eq!(cfg.norm_eps, 1e-6f32 as f64);
    let mut hf_cfg = hf.config.clone();
    hf_cfg.norm_eps = cfg.norm_eps;
    assert_eq!(&hf_cfg, cfg);

    assert_eq!(
        gguf.tensors.keys().collect::<Vec<_>>(),
        hf.tensors.keys().collect::<Vec<_>>()
    );
    for (name, t) in &hf.tensors {
        assert_eq!(&gguf.tensors[name], t, "{name}");
    }
    assert!(gguf.tensors.contains_key("blocks.1.attn.b_K"));

    // And it runs.
    let model = Transformer::from_weights(gguf, &Device::flex()).unwrap();
    let logits = model.logits(&circuitry_models::TokenBatch::unpadded(
        &[vec![1, 5, 7]],
        &Device::flex(),
    ));
    assert_eq!(logits.dims(), [1, 3, 32]);
}

#[test]
fn llama_file_without_tensors_names_the_missing_tensor() {
    // The tokenizer fixtures carry a Llama configuration but no tensors.
    let err = load_weights(&ModelSource::Gguf(fixture("tokenizer-qwen2.gguf"))).unwrap_err();
    assert!(matches!(err, LoadError::MissingTensor { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("tokenizer-qwen2.gguf") && msg.contains("token_embd.weight"),
        "{msg}"
    );
}
