//! The real SmolLM2-135M-Instruct (Q4_1 GGUF) loaded by circuitry agrees with Hugging Face
//! transformers running the same file in float32 (`tests/fixtures/smollm2-135m-instruct.reference.json`,
//! made by `make_smollm2_reference.py`): tokenization, per-position top-10 next tokens and their
//! logits, logsumexp, and the norm of the residual stream before every block. Also: weight
//! processing changes the logits only by a per-position constant.
//!
//! The model file is not in the repository. Tests find it through `CIRCUITRY_SMOLLM2_GGUF`,
//! defaulting to `$HOME/.cache/circuitry/models/SmolLM2-135M-Instruct.Q4_1.gguf`; when it is
//! absent they fail and say how to fetch it (`scripts/fetch-smollm2.sh`).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use circuitry_models::burn::prelude::*;
use circuitry_models::processing::process;
use circuitry_models::{
    HookPoint, HostTensor, Intervention, LoadedModel, Processing, Span, TokenBatch, Transformer,
    Weights, load_model, load_weights,
};
use circuitry_models::{ModelSource, Positional, RopeScaling};
use circuitry_testkit::fixture_dir;
use serde_json::Value;

const FILE_NAME: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

fn gguf_path() -> PathBuf {
    circuitry_testkit::smollm2_gguf()
}

fn reference() -> Value {
    let path = fixture_dir("smollm2-135m-instruct.reference.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// The model as the public loader gives it, unprocessed, loaded once per test binary.
fn model() -> &'static LoadedModel {
    static MODEL: OnceLock<LoadedModel> = OnceLock::new();
    MODEL.get_or_init(|| {
        let path = gguf_path();
        let start = Instant::now();
        let loaded = load_model(
            path.to_str().unwrap(),
            Path::new("."),
            Processing::none(),
            &Device::flex(),
        )
        .unwrap_or_else(|e| panic!("loading {}: {e}", path.display()));
        eprintln!("load_model({FILE_NAME}) took {:.2?}", start.elapsed());
        loaded
    })
}

fn ids_of(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

#[test]
fn configuration_from_metadata() {
    let cfg = &model().model.config;
    assert_eq!(
        (
            cfg.n_layers,
            cfg.d_model,
            cfg.n_heads,
            cfg.n_kv_heads,
            cfg.d_head,
            cfg.d_mlp,
            cfg.d_vocab,
            cfg.n_ctx
        ),
        (30, 576, 9, 3, 64, 1536, 49152, 8192)
    );
    assert_eq!(
        cfg.positional,
        Positional::Rotary {
            theta: 100000.0,
            dim: 64,
            scaling: RopeScaling::None,
            local_theta: None,
        }
    );
    assert!(cfg.tied_embeddings && !cfg.qkv_bias && !cfg.attn_out_bias && !cfg.mlp_bias);
    assert!((cfg.norm_eps - 1e-5).abs() < 1e-10);
    assert_eq!(
        (cfg.bos_token_id, cfg.eos_token_id, cfg.pad_token_id),
        (Some(1), Some(2), Some(2))
    );
}

#[test]
fn tokenization_matches_transformers() {
    let tokenizer = model()
        .tokenizer
        .as_ref()
        .expect("the GGUF file carries a tokenizer");
    assert_eq!(tokenizer.vocab_size(), 49152);
    let reference = reference();
    for case in reference["tokenization"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        assert_eq!(
            tokenizer.encode(text).unwrap(),
            ids_of(&case["ids"]),
            "{text:?}"
        );
    }
    for prompt in reference["prompts"].as_array().unwrap() {
        let text = prompt["text"].as_str().unwrap();
        assert_eq!(
            tokenizer.encode(text).unwrap(),
            ids_of(&prompt["ids"]),
            "{text:?}"
        );
        assert_eq!(tokenizer.decode(&ids_of(&prompt["ids"])), text);
    }
}

/// `[seq, d_vocab]` logits and `[layer][pos]` residual norms of one unbatched prompt.
fn run(model: &Transformer, ids: &[u32]) -> (Vec<Vec<f32>>, Vec<Vec<f64>>) {
    let device = Device::flex();
    let batch = TokenBatch::unpadded(&[ids.to_vec()], &device);
    let n_layers = model.config.n_layers;
    let out = model.forward(
        &batch,
        &Intervention::capture((0..n_layers).map(HookPoint::resid_pre)),
        Span::default(),
    );
    let logits = HostTensor::from_tensor(&out.logits.expect("full pass"));
    let vocab = logits.shape[2];
    let rows = logits.data().chunks(vocab).map(<[f32]>::to_vec).collect();
    let norms = (0..n_layers)
        .map(|l| {
            let resid = HostTensor::from_tensor(
                &out.cache.get3(&HookPoint::resid_pre(l)).expect("captured"),
            );
            let d = resid.shape[2];
            resid
                .data()
                .chunks(d)
                .map(|x| {
                    x.iter()
                        .map(|&v| (v as f64) * (v as f64))
                        .sum::<f64>()
                        .sqrt()
                })
                .collect()
        })
        .collect();
    (rows, norms)
}

fn logsumexp(x: &[f32]) -> f64 {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    max + x.iter().map(|&v| (v as f64 - max).exp()).sum::<f64>().ln()
}

/// Ids of the ten largest logits, largest first.
fn top10(x: &[f32]) -> Vec<u32> {
    let mut ids: Vec<u32> = (0..x.len() as u32).collect();
    ids.sort_by(|&a, &b| x[b as usize].total_cmp(&x[a as usize]).then(a.cmp(&b)));
    ids.truncate(10);
    ids
}

#[test]
fn logits_and_residual_norms_match_transformers() {
    let model = &model().model;
    let reference = reference();
    let mut worst_logit = 0f64;
    let mut worst_lse = 0f64;
    let mut worst_norm = 0f64;
    for prompt in reference["prompts"].as_array().unwrap() {
        let text = prompt["text"].as_str().unwrap();
        let ids = ids_of(&prompt["ids"]);
        let (logits, norms) = run(model, &ids);
        for (pos, row) in logits.iter().enumerate() {
            let want_ids = ids_of(&prompt["top10_ids"][pos]);
            let want_logits = floats(&prompt["top10_logits"][pos]);
            let got_ids = top10(row);
            for k in 0..10 {
                let (got, want) = (got_ids[k], want_ids[k]);
                let (lg, lw) = (row[got as usize] as f64, row[want as usize] as f64);
                // Near-ties may come out in either order.
                assert!(
                    got == want || (lg - lw).abs() <= 1e-3,
                    "{text:?} position {pos} rank {k}: token {got} (logit {lg}) where transformers has {want} (our logit {lw})"
                );
                let diff = (lg - want_logits[k]).abs();
                worst_logit = worst_logit.max(diff);
                assert!(
                    diff <= 1e-2,
                    "{text:?} position {pos} rank {k}: logit {lg} vs {}",
                    want_logits[k]
                );
                let diff = (lw - want_logits[k]).abs();
                assert!(
                    diff <= 1e-2,
                    "{text:?} position {pos}: logit of token {want} is {lw}, transformers {}",
                    want_logits[k]
                );
            }
            let want_lse = prompt["logsumexp"][pos].as_f64().unwrap();
            let diff = (logsumexp(row) - want_lse).abs();
            worst_lse = worst_lse.max(diff);
            assert!(
                diff <= 1e-2,
                "{text:?} position {pos}: logsumexp {} vs {want_lse}",
                logsumexp(row)
            );
        }
        for (layer, want_row) in prompt["resid_pre_norm"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
        {
            for (pos, want) in floats(want_row).into_iter().enumerate() {
                let got = norms[layer][pos];
                let rel = (got - want).abs() / want.abs().max(1e-12);
                worst_norm = worst_norm.max(rel);
                assert!(
                    rel <= 1e-3,
                    "{text:?} layer {layer} position {pos}: |resid_pre| {got} vs {want} (relative {rel:.2e})"
                );
            }
        }
    }
    eprintln!(
        "worst differences: top-10 logit {worst_logit:.2e}, logsumexp {worst_lse:.2e}, resid norm (relative) {worst_norm:.2e}"
    );
}

/// The unprocessed weights, for comparison with processed ones.
fn weights() -> Weights {
    load_weights(&ModelSource::Gguf(gguf_path())).unwrap()
}

#[test]
fn processing_changes_logits_only_by_a_per_position_constant() {
    let raw = weights();
    let device = Device::flex();
    let processed =
        Transformer::from_weights(process(raw.clone(), Processing::all()), &device).unwrap();
    let unprocessed = Transformer::from_weights(raw, &device).unwrap();
    for prompt in reference()["prompts"].as_array().unwrap() {
        let ids = ids_of(&prompt["ids"]);
        let (a, _) = run(&unprocessed, &ids);
        let (b, _) = run(&processed, &ids);
        for (pos, (ra, rb)) in a.iter().zip(&b).enumerate() {
            let (la, lb) = (logsumexp(ra), logsumexp(rb));
            let worst = ra
                .iter()
                .zip(rb)
                .map(|(&x, &y)| ((x as f64 - la).exp() - (y as f64 - lb).exp()).abs())
                .fold(0.0, f64::max);
            assert!(
                worst <= 1e-5,
                "position {pos}: probabilities differ by {worst:.2e}"
            );
        }
    }
}
