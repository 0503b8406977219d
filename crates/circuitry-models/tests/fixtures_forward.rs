//! Every hook point of the tiny GPT-2 and Llama fixtures, loaded through the public loader,
//! against TransformerLens / Hugging Face reference activations (1e-4 absolute).

use crate::common;

use circuitry_models::burn::prelude::*;
use circuitry_models::{
    HookKind, HookPoint, Intervention, LayerKv, PaddingSide, Processing, Span, TokenBatch,
};
use common::*;

const ATOL: f32 = 1e-4;

fn check_model(name: &str) {
    let device = Device::flex();
    let model = load_fixture(name, Processing::none());
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
            let scores = hook.kind == HookKind::AttnScores;
            // Attention scores: compare only the entries the mask allows (key <= query, within
            // a sliding window); the references write -inf at the others, where ours must be
            // masked too.
            let masked =
                |i: usize| scores && ((i % t) > (i / t) % t || !expected.f32[i].is_finite());
            if scores {
                let leaked = (0..values.len())
                    .filter(|&i| !expected.f32[i].is_finite() && values[i] > -1e30)
                    .count();
                assert_eq!(
                    leaked, 0,
                    "{name} {key}: entries the reference masks are not masked"
                );
            }
            let diff = max_abs_diff(&values, &expected.f32, masked);
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

/// The other architectures against Hugging Face transformers 4.57.1 (`scripts/reference/
/// architectures.py`: every hook from the modules' inputs and outputs), with their norms' and
/// biases' weights randomised so that the norms' `1 + w`, folding and post-norms show.
#[test]
fn every_architecture_matches_transformers_at_every_hook() {
    for name in [
        "gptneox-tiny",
        "gemma-tiny",
        "gemma2-tiny",
        "gemma3-tiny",
        "qwen3-tiny",
        "olmo2-tiny",
        "phi3-tiny",
    ] {
        check_model(name);
        // Each fixture exercises what sets its architecture apart: turning the feature off in
        // transformers (parallel residual, soft-caps, sliding windows, Gemma 3's rope scaling)
        // moves its logits by more than the tolerance, many times over.
        let path = fixture_dir(name).join("reference.json");
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        for (key, value) in json.as_object().unwrap() {
            if key.starts_with("max_abs_diff_vs_") {
                let moved = value.as_f64().unwrap();
                assert!(moved > 0.5, "{name}: {key} is only {moved}");
            }
        }
    }
}

#[test]
fn stop_and_start_at_layer_reproduce_the_full_pass() {
    let device = Device::flex();
    for &name in FIXTURE_MODELS {
        let model = load_fixture(name, Processing::all());
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

/// Slots `s..` of every row of a `[batch, seq, inner]` host tensor (row-major).
fn from_slot(values: &[f32], b: usize, t: usize, inner: usize, s: usize) -> Vec<f32> {
    (0..b)
        .flat_map(|r| values[(r * t + s) * inner..(r + 1) * t * inner].to_vec())
        .collect()
}

fn max_kv_diff(a: &LayerKv, c: &LayerKv) -> f32 {
    let diff = |x: &Tensor<4>, y: &Tensor<4>| {
        assert_eq!(x.dims(), y.dims());
        max_abs_diff(&tensor_values(x), &tensor_values(y), |_| false)
    };
    diff(&a.k, &c.k).max(diff(&a.v, &c.v))
}

/// A pass over the first `s` slots that keeps its keys and values, then a pass over the other
/// slots reading them (`Span::past`), gives the full pass's logits, hooks and keys and values;
/// with right and left padding (rows whose prefix is all padding included), from the tokens and
/// from a block.
#[test]
fn kv_prefix_reproduces_the_full_pass() {
    let device = Device::flex();
    for &name in FIXTURE_MODELS {
        let model = load_fixture(name, Processing::all());
        let cfg = model.config.clone();
        let (n, d, v, h) = (cfg.n_layers, cfg.d_model, cfg.d_vocab, cfg.n_heads);
        let reference = load_reference(name);
        let all = rows(&reference["plain.input_ids"]);
        // Unequal lengths (16, 11 and 7 tokens), so that padding shows on either side.
        let prompts: Vec<Vec<u32>> =
            vec![all[0].clone(), all[1][..11].to_vec(), all[2][..7].to_vec()];
        let resid_hooks = [
            HookPoint::resid_pre(1.min(n - 1)),
            HookPoint::resid_pre(n - 1),
        ];
        let pattern = HookPoint::layer(0, HookKind::Pattern);
        let logits_hook = HookPoint::model(HookKind::Logits);
        let mut capture = vec![pattern, logits_hook];
        capture.extend(resid_hooks);
        for side in [PaddingSide::Right, PaddingSide::Left] {
            let batch = TokenBatch::new(&prompts, 0, side, &device);
            let (b, t) = (batch.batch_size(), batch.seq_len);
            let full = model.forward(
                &batch,
                &Intervention::capture(capture.clone()),
                Span::default().keeping_kv(),
            );
            let full_kv = full.kv.clone().expect("kept keys and values");
            assert_eq!(full_kv.slots(), t);
            let logits = tensor_values(full.logits.as_ref().unwrap());
            for s in [0, 3, 5, 9, t - 1] {
                // Index `i` over `[batch, seq - s]`: whether slot `s + i % (seq - s)` of its row is
                // padding (padding slots' outputs are no prompt's result).
                let padding = |i: usize| {
                    let (r, slot) = (i / (t - s), s + i % (t - s));
                    (0..prompts[r].len()).all(|k| batch.slot(r, k) != slot)
                };
                let past = if s == 0 {
                    full_kv.prefix(0)
                } else {
                    let prefix = model.forward(
                        &batch.first_slots(s),
                        &Intervention::default(),
                        Span::default().keeping_kv(),
                    );
                    prefix.kv.expect("kept keys and values")
                };
                assert_eq!(past.slots(), s);
                let want_kv = full_kv.prefix(s);
                for l in 0..n {
                    let diff = max_kv_diff(past.layer(l).unwrap(), want_kv.layer(l).unwrap());
                    assert!(
                        diff < 1e-5,
                        "{name} {side:?} s={s}: block {l} K/V differ by {diff}"
                    );
                }
                let rest = model.forward(
                    &batch,
                    &Intervention::capture(capture.clone()),
                    Span::default().with_past(past.clone()).keeping_kv(),
                );
                let got = tensor_values(rest.logits.as_ref().unwrap());
                assert_eq!(
                    got.len(),
                    b * (t - s) * v,
                    "{name}: logits of slots s.. only"
                );
                let want_logits = from_slot(&logits, b, t, v, s);
                let diff = max_abs_diff(&got, &want_logits, |i| padding(i / v));
                assert!(
                    diff < 1e-5,
                    "{name} {side:?}: prefix of {s} slots: logits differ by {diff}"
                );
                // Hooks cover the new slots: residual streams and logits...
                for (hook, inner) in [(resid_hooks[0], d), (resid_hooks[1], d), (logits_hook, v)] {
                    let got = tensor_values(&rest.cache.get3(&hook).unwrap());
                    let all = tensor_values(&full.cache.get3(&hook).unwrap());
                    let diff = max_abs_diff(&got, &from_slot(&all, b, t, inner, s), |i| {
                        padding(i / inner)
                    });
                    assert!(
                        diff < 1e-5,
                        "{name} {side:?} s={s}: {hook} differs by {diff}"
                    );
                }
                // ...and attention patterns are [batch, head, new queries, every key].
                let got = rest.cache.get4(&pattern).unwrap();
                assert_eq!(got.dims(), [b, h, t - s, t]);
                let want = full
                    .cache
                    .get4(&pattern)
                    .unwrap()
                    .slice([0..b, 0..h, s..t, 0..t]);
                let diff = max_abs_diff(&tensor_values(&got), &tensor_values(&want), |i| {
                    let (r, q) = (i / (h * (t - s) * t), i / t % (t - s));
                    padding(r * (t - s) + q)
                });
                assert!(
                    diff < 1e-5,
                    "{name} {side:?} s={s}: pattern differs by {diff}"
                );
                // The pass returns the keys and values of every slot, past and new.
                let kept = rest.kv.expect("kept keys and values");
                for l in 0..n {
                    let diff = max_kv_diff(kept.layer(l).unwrap(), full_kv.layer(l).unwrap());
                    assert!(
                        diff < 1e-5,
                        "{name} {side:?} s={s}: kept K/V of block {l}: {diff}"
                    );
                }
                // Starting at a block too: blocks `l..` on slots `s..`.
                for hook in resid_hooks {
                    let l = hook.layer.unwrap();
                    let x = full.cache.get3(&hook).unwrap().slice([0..b, s..t, 0..d]);
                    let out = model.forward(
                        &batch,
                        &Intervention::default(),
                        Span::from_layer(l, x).with_past(full_kv.prefix(s)),
                    );
                    let got = tensor_values(out.logits.as_ref().unwrap());
                    let diff = max_abs_diff(&got, &want_logits, |i| padding(i / v));
                    assert!(
                        diff < 1e-5,
                        "{name} {side:?} s={s} from block {l}: differs by {diff}"
                    );
                }
            }
        }
    }
}
