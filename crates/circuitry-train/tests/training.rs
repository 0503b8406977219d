//! Reproducibility, gradient sanity and the saved-directory round trip, on tiny models.

use std::path::Path;

use circuitry_models::burn::prelude::*;
use circuitry_models::{Processing, TokenBatch, load_model};
use circuitry_train::{
    ArchConfig, Checkpoints, DataConfig, EvalConfig, LrDecay, OptimConfig, TrainConfig,
    init_weights, train, train_with,
};

/// A tiny 2-layer model with MLPs on short rows, trained by the shipped procedure's optimiser
/// ([`TrainConfig::induction_2l`]: cosine decay, betas, eps, clipping) at its own rates.
fn tiny(seed: u64, steps: usize) -> TrainConfig {
    let shipped = TrainConfig::induction_2l();
    TrainConfig {
        seed,
        arch: ArchConfig {
            d_model: 32,
            n_heads: 2,
            d_mlp: 64,
            attn_only: false,
            n_ctx: 24,
            d_vocab: 16,
            init_std: 0.02,
            ..shipped.arch
        },
        optim: OptimConfig {
            steps,
            batch_size: 8,
            lr: 3e-3,
            warmup_steps: 2,
            weight_decay: 0.1,
            ..shipped.optim
        },
        data: DataConfig {
            seq_len: 17,
            min_repeat: 3,
            max_repeat: 8,
            max_gap: 2,
            fill: false,
        },
        eval: EvalConfig {
            sequences: 8,
            repeat_len: 6,
            every: 2,
        },
    }
}

fn weights_bits(model: &circuitry_models::Transformer) -> Vec<(String, Vec<u32>)> {
    model
        .to_weights(Path::new("mem"))
        .tensors
        .into_iter()
        .map(|(k, t)| (k, t.data().iter().map(|x| x.to_bits()).collect()))
        .collect()
}

#[test]
fn same_seed_gives_bitwise_identical_weights() {
    let device = Device::flex();
    let a = train(&tiny(7, 6), &device, None, |_| {}).unwrap();
    let b = train(&tiny(7, 6), &device, None, |_| {}).unwrap();
    let c = train(&tiny(8, 6), &device, None, |_| {}).unwrap();
    let (wa, wb, wc) = (
        weights_bits(&a.model),
        weights_bits(&b.model),
        weights_bits(&c.model),
    );
    assert_eq!(wa, wb, "same seed, different weights");
    for ((name, x), (_, y)) in wa.iter().zip(&wc) {
        if name.contains("W_") {
            assert_ne!(x, y, "{name} identical under different seeds");
        }
    }
    let strip = |c: &[circuitry_train::CurveRow]| {
        c.iter()
            .map(|r| {
                (
                    r.step,
                    r.train_loss.to_bits(),
                    r.eval_loss_first_repeat.to_bits(),
                    r.eval_loss_second_repeat.to_bits(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&a.curve), strip(&b.curve));
    // a row at 0, 2, 4 and after the last update
    assert_eq!(
        a.curve.iter().map(|r| r.step).collect::<Vec<_>>(),
        [0, 2, 4, 6]
    );
}

#[test]
fn loss_falls_when_overfitting_one_batch() {
    let mut cfg = tiny(1, 40);
    cfg.optim.weight_decay = 0.0;
    cfg.optim.decay = LrDecay::Constant;
    cfg.optim.lr = 1e-2;
    cfg.eval.every = 40;
    // one fixed batch of arbitrary token sequences, seen at every step
    let rows: Vec<Vec<u32>> = (0..4u32)
        .map(|r| {
            (0..12u32)
                .map(|i| {
                    if i == 0 {
                        0
                    } else {
                        1 + (r * 7 + i * i * 3) % 15
                    }
                })
                .collect()
        })
        .collect();
    let mut losses = Vec::new();
    let trained = train_with(
        &cfg,
        &mut |_step: usize| rows.clone(),
        &Device::flex(),
        None,
        |p| {
            if p.step <= cfg.optim.steps {
                losses.push(p.loss)
            }
        },
    )
    .unwrap();
    let first = losses[0];
    let last = *losses.last().unwrap();
    assert!(
        (first - (15f32).ln()).abs() < 0.3,
        "initial loss {first} should be near ln(V)"
    );
    assert!(last < 0.3 * first, "loss went from {first} to {last}");
    let mut sorted_ok = 0;
    for w in losses.windows(2) {
        if w[1] <= w[0] {
            sorted_ok += 1;
        }
    }
    assert!(
        sorted_ok * 10 >= (losses.len() - 1) * 7,
        "loss mostly decreasing: {losses:?}"
    );
    assert_eq!(trained.curve.last().unwrap().step, 40);
}

#[test]
fn saved_directory_loads_back_with_same_logits() {
    let device = Device::flex();
    let mut cfg = tiny(3, 3);
    cfg.arch.attn_only = true;
    let trained = train(&cfg, &device, None, |_| {}).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("model");
    trained.save(&dir).unwrap();
    // saving again replaces the directory
    trained.save(&dir).unwrap();
    let names: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["model"], "no temporary directories left behind");
    let loaded = load_model(
        dir.to_str().unwrap(),
        Path::new("."),
        Processing::none(),
        &device,
    )
    .unwrap();
    assert_eq!(loaded.model.config, trained.model.config);
    let rows = circuitry_train::repeated_rows(5, 3, 6, 16);
    let batch = TokenBatch::unpadded(&rows, &device);
    let logits = |model: &circuitry_models::Transformer| -> Vec<f32> {
        model
            .logits(&batch)
            .into_data()
            .try_into_vec::<f32>()
            .unwrap()
    };
    let (a, b) = (logits(&trained.model), logits(&loaded.model));
    let max = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(max <= 1e-5, "max logit difference {max}");
    let tok = loaded.tokenizer.expect("tokenizer.json");
    assert_eq!(tok.encode("t0 t5 t15").unwrap(), [0, 5, 15]);
    assert_eq!(tok.bos_token_id, Some(0));
    assert_eq!(tok.vocab_size(), 16);
    let training: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("training.json")).unwrap()).unwrap();
    let back: TrainConfig = serde_json::from_value(training["config"].clone()).unwrap();
    assert_eq!(back, cfg);
}

#[test]
fn invalid_configs_are_rejected_with_the_field_named() {
    let mut cfg = tiny(0, 4);
    cfg.arch.d_head = 8;
    let e = train(&cfg, &Device::flex(), None, |_| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("arch.d_head"), "{e}");
    // (the edit, what the error must name)
    type Edit = fn(&mut TrainConfig);
    let cases: [(&str, Edit, &[&str]); 3] = [
        (
            "data.seq_len = 30",
            |c| c.data.seq_len = 30,
            &["data.seq_len", "n_ctx"],
        ),
        (
            "eval.repeat_len = 12",
            |c| c.eval.repeat_len = 12,
            &["eval.repeat_len"],
        ),
        ("optim.beta2 = 1", |c| c.optim.beta2 = 1.0, &["optim.beta2"]),
    ];
    for (case, edit, named) in cases {
        let mut cfg = tiny(0, 4);
        edit(&mut cfg);
        let Err(e) = cfg.validate() else {
            panic!("{case}: accepted")
        };
        let e = e.to_string();
        for name in named {
            assert!(
                e.contains(name),
                "{case}: the error does not name {name}: {e}"
            );
        }
    }
    let cfg = tiny(0, 4);
    let bad = train_with(
        &cfg,
        &mut |_s: usize| vec![vec![0u32, 99]],
        &Device::flex(),
        None,
        |_| {},
    );
    assert!(bad.unwrap_err().to_string().contains("token id 99"));
}

#[test]
fn learning_rate_schedule() {
    let mut cfg = tiny(0, 10);
    cfg.optim.warmup_steps = 2;
    cfg.optim.lr = 1.0;
    cfg.optim.min_lr_ratio = 0.0;
    cfg.optim.decay = LrDecay::Linear;
    let lrs: Vec<f64> = (0..=10).map(|s| cfg.lr_at(s)).collect();
    assert_eq!(lrs[0], 0.5);
    assert_eq!(lrs[1], 1.0);
    assert_eq!(lrs[2], 1.0);
    assert!((lrs[6] - 0.5).abs() < 1e-12);
    assert_eq!(lrs[10], 0.0);
    cfg.optim.decay = LrDecay::Cosine;
    assert!((cfg.lr_at(6) - 0.5).abs() < 1e-12);
}

#[test]
fn checkpoints_hold_the_weights_after_their_step() {
    let device = Device::flex();
    let cfg = tiny(5, 6);
    let plain = train(&cfg, &device, None, |_| {}).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let checkpoints = Checkpoints {
        steps: [0, 3, 6, 9].into_iter().collect(),
        dir: tmp.path().join("checkpoints"),
        tokenizer: None,
    };
    let saving = train(&cfg, &device, Some(&checkpoints), |_| {}).unwrap();
    // Saving along the way does not change training.
    assert_eq!(weights_bits(&plain.model), weights_bits(&saving.model));
    let mut names: Vec<String> = std::fs::read_dir(&checkpoints.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    // Step 9 is past the last update: never reached.
    assert_eq!(names, ["step0", "step3", "step6"]);
    let load = |step: &str| {
        let dir = checkpoints.dir.join(step);
        load_model(
            dir.to_str().unwrap(),
            Path::new("."),
            Processing::none(),
            &device,
        )
        .unwrap()
        .model
    };
    assert_eq!(weights_bits(&load("step6")), weights_bits(&saving.model));
    let init = circuitry_models::Transformer::from_weights(init_weights(&cfg), &device).unwrap();
    assert_eq!(weights_bits(&load("step0")), weights_bits(&init));
    let mid = weights_bits(&load("step3"));
    assert_ne!(mid, weights_bits(&init));
    assert_ne!(mid, weights_bits(&saving.model));
    // Each checkpoint records its own curve row (eval every 2 steps: step 3 has none).
    let training = |step: &str| -> serde_json::Value {
        let text = std::fs::read_to_string(checkpoints.dir.join(step).join("training.json"));
        serde_json::from_str(&text.unwrap()).unwrap()
    };
    assert_eq!(training("step6")["final"]["step"], 6);
    assert_eq!(training("step0")["final"]["step"], 0);
    assert!(training("step3")["final"].is_null());
}
