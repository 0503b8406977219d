//! Path patching against independent constructions on the tiny models.

use crate::iv_common;

use circuitry_circuits::interventions::path_patching::HeadInput;
use circuitry_circuits::interventions::{
    Direction, PatchingConfig, PathPatchingConfig, Receiver, Sender, activation_patching,
    path_patching, path_patching_table,
};
use circuitry_data::Prompt;
use circuitry_models::burn::prelude::*;
use circuitry_models::{
    Edit, EditOp, HookKind, HookPoint, Intervention, Selection, Span, TokenBatch, Transformer,
};
use iv_common::*;

fn runs(model: &Transformer, p: &Prompt, direction: Direction) -> (TokenBatch, TokenBatch) {
    let device = model.device();
    let clean = TokenBatch::unpadded(std::slice::from_ref(&p.tokens), &device);
    let corrupt = TokenBatch::unpadded(
        std::slice::from_ref(p.corrupt_tokens.as_ref().unwrap()),
        &device,
    );
    match direction {
        Direction::Denoising => (clean, corrupt),
        Direction::Noising => (corrupt, clean),
    }
}

fn metric_of(model: &Transformer, p: &Prompt, batch: &TokenBatch, logits: Tensor<3>) -> f64 {
    let r = fixture_metric()
        .resolve(std::slice::from_ref(p), batch, model.config.d_vocab)
        .unwrap();
    f64::from(values(r.values_from_logits(logits))[0])
}

/// A head in the last layer reaches the logits only directly (with MLPs recomputed), so path
/// patching it to the logits is activation patching its z.
#[test]
fn last_layer_head_to_logits_is_activation_patching() {
    for name in MODELS {
        let model = tiny(name);
        let prompts = random_pairs(3, 8);
        let last = model.config.n_layers - 1;
        for direction in [Direction::Denoising, Direction::Noising] {
            let senders = (0..model.config.n_heads)
                .map(|head| Sender::Head { layer: last, head })
                .collect();
            let mut cfg =
                PathPatchingConfig::new(senders, vec![Receiver::Logits], fixture_metric());
            cfg.freeze_mlps = false;
            cfg.direction = direction;
            let paths = path_patching(&model, &prompts, left(), &cfg).unwrap();
            let mut pcfg = PatchingConfig::new(HookKind::Z, fixture_metric());
            pcfg.layers = Some(vec![last]);
            pcfg.direction = direction;
            let patched = activation_patching(&model, &prompts, left(), &pcfg).unwrap();
            assert_eq!(paths.len(), patched.len());
            for r in &paths {
                let Some(Sender::Head { head, .. }) = r.sender_component else {
                    panic!()
                };
                let p = patched
                    .iter()
                    .find(|p| p.head == Some(head) && p.prompt == r.prompt)
                    .unwrap();
                assert!(
                    (r.metric - p.metric).abs() < 1e-4,
                    "{name} {direction} head {head}: {} vs {}",
                    r.metric,
                    p.metric
                );
            }
        }
    }
}

/// With everything downstream frozen, the sender's effect on the final residual stream is its
/// output difference, added to the destination's final residual stream.
#[test]
fn frozen_path_to_logits_adds_the_output_difference() {
    for name in MODELS {
        let model = tiny(name);
        let prompts = random_pairs(2, 6);
        let senders: Vec<Sender> = vec![
            Sender::Head { layer: 0, head: 1 },
            Sender::Head { layer: 0, head: 3 },
            Sender::Mlp { layer: 0 },
        ];
        let cfg =
            PathPatchingConfig::new(senders.clone(), vec![Receiver::Logits], fixture_metric());
        let res = path_patching(&model, &prompts, left(), &cfg).unwrap();
        let n = model.config.n_layers;
        for p in &prompts {
            let (src, dest) = runs(&model, p, cfg.direction);
            let hooks = [
                HookPoint::layer(0, HookKind::Result),
                HookPoint::layer(0, HookKind::MlpOut),
            ];
            let s = model.forward(&src, &Intervention::capture(hooks), Span::default());
            let d = model.forward(&dest, &Intervention::capture(hooks), Span::default());
            for sender in &senders {
                let delta = match *sender {
                    Sender::Head { layer, head } => {
                        let h = HookPoint::layer(layer, HookKind::Result);
                        let (a, b) = (s.cache.get4(&h).unwrap(), d.cache.get4(&h).unwrap());
                        let [bs, t, _, dm] = a.dims();
                        (a - b)
                            .slice([0..bs, 0..t, head..head + 1, 0..dm])
                            .reshape([bs, t, dm])
                    }
                    Sender::Mlp { layer } => {
                        let h = HookPoint::layer(layer, HookKind::MlpOut);
                        s.cache.get3(&h).unwrap() - d.cache.get3(&h).unwrap()
                    }
                };
                let resid = d.resid.clone() + delta;
                let logits = model
                    .forward(&dest, &Intervention::default(), Span::from_layer(n, resid))
                    .logits
                    .unwrap();
                let want = metric_of(&model, p, &dest, logits);
                let got = res
                    .iter()
                    .find(|r| r.prompt == p.id && r.sender_component == Some(*sender))
                    .unwrap();
                assert!(
                    (got.metric - want).abs() < 1e-4,
                    "{name} {sender}: {} vs {want}",
                    got.metric
                );
            }
        }
        assert_eq!(path_patching_table(&res).len(), res.len());
    }
}

/// A sender in layer 0 and a receiver's query in layer 1: with the MLP of layer 0 frozen too,
/// the receiver reads `resid_pre[1] + (sender output difference)`.
#[test]
fn path_to_a_receiver_query_matches_a_hand_built_pass() {
    for name in MODELS {
        let model = tiny(name);
        let prompts = random_pairs(2, 12);
        let receivers = vec![
            Receiver::Head {
                layer: 1,
                head: 2,
                input: HeadInput::Q,
            },
            Receiver::Head {
                layer: 1,
                head: 0,
                input: HeadInput::Q,
            },
            Receiver::Head {
                layer: 1,
                head: 1,
                input: HeadInput::V,
            },
        ];
        let senders = vec![
            Sender::Head { layer: 0, head: 0 },
            Sender::Head { layer: 0, head: 2 },
            Sender::Head { layer: 1, head: 1 },
        ];
        let mut cfg = PathPatchingConfig::new(senders.clone(), receivers.clone(), fixture_metric());
        cfg.direction = Direction::Denoising;
        let res = path_patching(&model, &prompts, left(), &cfg).unwrap();
        for p in &prompts {
            let (src, dest) = runs(&model, p, cfg.direction);
            let result0 = HookPoint::layer(0, HookKind::Result);
            let s = model.forward(&src, &Intervention::capture([result0]), Span::default());
            let d = model.forward(
                &dest,
                &Intervention::capture([result0, HookPoint::resid_pre(1)]),
                Span::default(),
            );
            let dest_logits = d.logits.clone().unwrap();
            for sender in &senders {
                let Sender::Head { layer, head } = *sender else {
                    unreachable!()
                };
                let got = res
                    .iter()
                    .find(|r| r.prompt == p.id && r.sender_component == Some(*sender))
                    .unwrap();
                if layer == 1 {
                    // a sender in the receivers' layer cannot reach their inputs
                    let want = metric_of(&model, p, &dest, dest_logits.clone());
                    assert!((got.metric - want).abs() < 1e-5);
                    continue;
                }
                let (a, b) = (
                    s.cache.get4(&result0).unwrap(),
                    d.cache.get4(&result0).unwrap(),
                );
                let [bs, t, _, dm] = a.dims();
                let delta = (a - b)
                    .slice([0..bs, 0..t, head..head + 1, 0..dm])
                    .reshape([bs, t, dm]);
                let r1 = d.cache.get3(&HookPoint::resid_pre(1)).unwrap() + delta;
                let (q, v) = (
                    HookPoint::layer(1, HookKind::Q),
                    HookPoint::layer(1, HookKind::V),
                );
                let inputs = model
                    .forward(
                        &dest,
                        &Intervention::capture([q, v]),
                        Span {
                            start: Some((1, r1)),
                            stop_before: Some(2),
                            ..Span::default()
                        },
                    )
                    .cache;
                let edits = vec![
                    Edit::new(
                        q,
                        Selection::heads(vec![2, 0]),
                        EditOp::Replace(inputs.get(&q).unwrap().clone()),
                    )
                    .unwrap(),
                    Edit::new(
                        v,
                        Selection::heads(vec![1]),
                        EditOp::Replace(inputs.get(&v).unwrap().clone()),
                    )
                    .unwrap(),
                ];
                let logits = model
                    .forward(
                        &dest,
                        &Intervention::default().with_edits(edits),
                        Span::default(),
                    )
                    .logits
                    .unwrap();
                let want = metric_of(&model, p, &dest, logits);
                assert!(
                    (got.metric - want).abs() < 1e-4,
                    "{name} {sender}: {} vs {want}",
                    got.metric
                );
            }
        }
    }
}

#[test]
fn path_patching_rejects_bad_configurations() {
    let model = tiny("llama-tiny");
    let prompts = random_pairs(1, 1);
    let mixed = PathPatchingConfig::new(
        vec![Sender::Head { layer: 0, head: 0 }],
        vec![
            Receiver::Logits,
            Receiver::Head {
                layer: 1,
                head: 0,
                input: HeadInput::Q,
            },
        ],
        fixture_metric(),
    );
    assert!(path_patching(&model, &prompts, left(), &mixed).is_err());
    let bad_kv = PathPatchingConfig::new(
        vec![Sender::Head { layer: 0, head: 0 }],
        vec![Receiver::Head {
            layer: 1,
            head: 3,
            input: HeadInput::K,
        }], // 2 key/value heads
        fixture_metric(),
    );
    assert!(path_patching(&model, &prompts, left(), &bad_kv).is_err());
}
