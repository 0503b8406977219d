//! Trains an attention-only induction-head model and reports its learning curve and head scores.
//!
//! cargo run --release -p circuitry-train --example train_induction -- [OUT_DIR] [key=value ...]
//! Without overrides this trains circuitry's shipped model, `TrainConfig::induction_2l()`.
//! Keys override it: seed, steps, batch, lr, warmup, wd, clip, d_model, n_heads (d_head follows),
//! n_layers, vocab, n_ctx, seq_len, min_rep, max_rep, gap, fill (0|1), eval_rep, every,
//! init_std, decay (constant|linear|cosine), min_lr. DIAG=1 also prints, per head, the most
//! common attention offsets `q - argmax_k` over the second copy.

use std::path::PathBuf;
use std::time::Instant;

use circuitry_models::burn::prelude::Device;
use circuitry_train::{LrDecay, TrainConfig, eval_rows, head_scores, repeat_losses, train};

fn main() {
    let mut cfg = TrainConfig::induction_2l();
    let mut out: Option<PathBuf> = None;
    for arg in std::env::args().skip(1) {
        let Some((k, v)) = arg.split_once('=') else {
            out = Some(PathBuf::from(arg));
            continue;
        };
        let u = || v.parse::<usize>().expect("integer");
        let f = || v.parse::<f64>().expect("number");
        match k {
            "seed" => cfg.seed = v.parse().unwrap(),
            "steps" => cfg.optim.steps = u(),
            "batch" => cfg.optim.batch_size = u(),
            "lr" => cfg.optim.lr = f(),
            "warmup" => cfg.optim.warmup_steps = u(),
            "wd" => cfg.optim.weight_decay = f(),
            "clip" => cfg.optim.grad_clip = Some(f()),
            "min_lr" => cfg.optim.min_lr_ratio = f(),
            "decay" => {
                cfg.optim.decay = match v {
                    "constant" => LrDecay::Constant,
                    "linear" => LrDecay::Linear,
                    _ => LrDecay::Cosine,
                }
            }
            "d_model" => cfg.arch.d_model = u(),
            "n_heads" => cfg.arch.n_heads = u(),
            "n_layers" => cfg.arch.n_layers = u(),
            "vocab" => cfg.arch.d_vocab = u(),
            "n_ctx" => cfg.arch.n_ctx = u(),
            "init_std" => cfg.arch.init_std = f(),
            "seq_len" => cfg.data.seq_len = u(),
            "min_rep" => cfg.data.min_repeat = u(),
            "max_rep" => cfg.data.max_repeat = u(),
            "fill" => cfg.data.fill = v == "1",
            "gap" => cfg.data.max_gap = u(),
            "eval_rep" => cfg.eval.repeat_len = u(),
            "every" => cfg.eval.every = u(),
            other => panic!("unknown key {other}"),
        }
    }
    cfg.arch.d_head = cfg.arch.d_model / cfg.arch.n_heads;
    println!("{}", serde_json::to_string(&cfg).unwrap());
    let device = Device::flex();
    let t0 = Instant::now();
    let trained = train(&cfg, &device, None, |p| {
        if let Some(r) = p.eval {
            println!(
                "step {:5} train {:.4} first {:.4} second {:.4} icl {:+.4} lr {:.2e} gnorm {:.3} t {:.1}s",
                r.step, r.train_loss, r.eval_loss_first_repeat, r.eval_loss_second_repeat, r.icl_score, r.lr, p.grad_norm, r.elapsed_s
            );
        }
    })
    .expect("training");
    println!("trained in {:.1}s", t0.elapsed().as_secs_f64());
    let eval = eval_rows(&cfg);
    let l = cfg.eval.repeat_len;
    let losses = repeat_losses(&trained.model, &eval, l);
    println!("final {losses:?}");
    for s in head_scores(&trained.model, &eval, l) {
        println!(
            "L{}H{} induction {:.3} prev {:.3}",
            s.layer, s.head, s.induction, s.previous_token
        );
    }
    if std::env::var("DIAG").is_ok() {
        diag(&trained.model, &eval, l);
    }
    // other repeat lengths, to check that the heads generalise
    for other in [5, 10, 20, 30] {
        if 2 * other + 1 > cfg.arch.n_ctx {
            continue;
        }
        let rows = circuitry_train::repeated_rows(12345, 64, other, cfg.arch.d_vocab);
        let r = repeat_losses(&trained.model, &rows, other);
        let best = head_scores(&trained.model, &rows, other)
            .into_iter()
            .map(|s| s.induction)
            .fold(0.0, f64::max);
        println!(
            "L={other}: first {:.3} second {:.3} best induction {:.3}",
            r.first_repeat, r.second_repeat, best
        );
    }
    if let Some(dir) = out {
        trained.save(&dir).expect("save");
        println!("wrote {}", dir.display());
    }
}

/// For each head: the most common offsets q - argmax_k over queries of the second repeat.
fn diag(model: &circuitry_models::Transformer, rows: &[Vec<u32>], l: usize) {
    use circuitry_models::{HookKind, HookPoint, Intervention, Span, TokenBatch};
    let cfg = &model.config;
    let t = 2 * l + 1;
    let rows = &rows[..16.min(rows.len())];
    let batch = TokenBatch::unpadded(rows, &model.device());
    let hooks: Vec<HookPoint> = (0..cfg.n_layers)
        .map(|i| HookPoint::layer(i, HookKind::Pattern))
        .collect();
    let out = model.forward(
        &batch,
        &Intervention::capture(hooks.iter().copied()),
        Span::default(),
    );
    for (layer, hook) in hooks.iter().enumerate() {
        let p: Vec<f32> = out
            .cache
            .get4(hook)
            .unwrap()
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        for h in 0..cfg.n_heads {
            let mut hist = std::collections::BTreeMap::<i64, usize>::new();
            let mut mass_bos = 0.0;
            for b in 0..rows.len() {
                for q in l + 1..t {
                    let base = ((b * cfg.n_heads + h) * t + q) * t;
                    let (k, _) = (0..=q)
                        .map(|k| (k, p[base + k]))
                        .fold((0, -1.0), |a, x| if x.1 > a.1 { x } else { a });
                    *hist.entry(q as i64 - k as i64).or_default() += 1;
                    mass_bos += p[base] as f64;
                }
            }
            let mut v: Vec<_> = hist.into_iter().collect();
            v.sort_by_key(|x| std::cmp::Reverse(x.1));
            v.truncate(4);
            println!(
                "  L{layer}H{h} argmax offsets {v:?} bos mass {:.2}",
                mass_bos / (rows.len() * l) as f64
            );
        }
    }
}
