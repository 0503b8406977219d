//! Every hook point of the tiny GPT-2 and Llama fixtures, loaded through the public loader,
//! against TransformerLens / Hugging Face reference activations (1e-4 absolute).

use crate::common;

use std::path::Path;

use circuitry_models::burn::prelude::*;
use circuitry_models::{
    HookKind, HookPoint, Intervention, Processing, Span, TokenBatch, load_model,
};
use common::*;

const ATOL: f32 = 1e-4;

fn check_model(name: &str) {
    let device = Device::flex();
    let dir = fixture_dir(name);
    let loaded = load_model(
        dir.to_str().unwrap(),
        Path::new("."),
        Processing::none(),
        &device,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let model = loaded.model;
    let reference = load_reference(name);
    let mut compared = 0;
    for set in ["plain", "repeated"] {
        let ids = &reference[&format!("{set}.input_ids")];
        let batch = TokenBatch::unpadded(&rows(ids), &device);
        let hooks = model.hook_points();
        let out = model.forward(
            &batch,
            &Intervention::capture(hooks.clone()),
            Span::default(),
        );
        let logits = tensor_values(out.logits.as_ref().unwrap());
        let expected = &reference[&format!("{set}.logits")];
        let diff = max_abs_diff(&logits, &expected.f32, |_| false);
        assert!(diff < ATOL, "{name} {set} logits differ by {diff}");
        compared += 1;
        for hook in hooks {
            let key = format!("{set}.{hook}");
            let Some(expected) = reference.get(&key) else {
                continue;
            };
            let got = out
                .cache
                .get(&hook)
                .unwrap_or_else(|| panic!("{hook} not captured"));
            assert_eq!(got.dims(), expected.shape, "{name} {key} shape");
            let values = got.to_vec();
            let t = expected.shape.last().copied().unwrap();
            let causal_only = hook.kind == HookKind::AttnScores;
            // Attention scores: compare only causal entries (key <= query).
            let skip = |i: usize| causal_only && (i % t) > (i / t) % t;
            let diff = max_abs_diff(&values, &expected.f32, skip);
            assert!(diff < ATOL, "{name} {key}: max abs diff {diff}");
            compared += 1;
        }
    }
    // Every stored hook was compared (2 sets x hooks, plus logits).
    let stored = reference
        .keys()
        .filter(|k| {
            (k.starts_with("plain.") || k.starts_with("repeated.")) && k.parse_hook().is_some()
        })
        .count();
    assert_eq!(
        compared,
        stored + 2,
        "{name}: compared {compared} of {stored} stored hooks"
    );
}

trait ParseHook {
    fn parse_hook(&self) -> Option<HookPoint>;
}

impl ParseHook for String {
    fn parse_hook(&self) -> Option<HookPoint> {
        let (_, name) = self.split_once('.')?;
        name.parse().ok()
    }
}

#[test]
fn gpt2_tiny_matches_reference_at_every_hook() {
    check_model("gpt2-tiny");
}

#[test]
fn llama_tiny_matches_reference_at_every_hook() {
    check_model("llama-tiny");
}

#[test]
fn stop_and_start_at_layer_reproduce_the_full_pass() {
    let device = Device::flex();
    for name in ["gpt2-tiny", "llama-tiny"] {
        let dir = fixture_dir(name);
        let model = load_model(
            dir.to_str().unwrap(),
            Path::new("."),
            Processing::all(),
            &device,
        )
        .unwrap()
        .model;
        let reference = load_reference(name);
        let batch = TokenBatch::unpadded(&rows(&reference["plain.input_ids"]), &device);
        let full = tensor_values(&model.logits(&batch));
        for layer in 0..=model.config.n_layers {
            let prefix = model.forward(&batch, &Intervention::default(), Span::until(layer));
            assert!(prefix.logits.is_none());
            let rest = model.forward(
                &batch,
                &Intervention::default(),
                Span::from_layer(layer, prefix.resid),
            );
            let diff = max_abs_diff(&tensor_values(rest.logits.as_ref().unwrap()), &full, |_| {
                false
            });
            assert!(diff < 1e-5, "{name}: split at {layer} differs by {diff}");
        }
        let _ = HookPoint::resid_pre(0);
    }
}
