//! The induction phase change on a short run: a 2-layer attention-only model trained on repeated
//! random tokens learns to predict the second copy of `[BOS] r r` in context, through a
//! previous-token head in layer 0 and an induction head in layer 1.

use circuitry_models::burn::prelude::*;
use circuitry_train::{
    ArchConfig, DataConfig, EvalConfig, OptimConfig, TrainConfig, eval_rows, head_scores, train,
};

/// The shipped induction model's procedure ([`TrainConfig::induction_2l`]) on a smaller problem:
/// vocabulary 32, context and rows of 33 tokens holding one `r r` pair (in noise) with `|r|` in
/// 4..=16 (no filling), 3000 steps with 50 warm-up steps, evaluated every 500 steps on
/// `|r| = 12`.
fn config(seed: u64) -> TrainConfig {
    let shipped = TrainConfig::induction_2l();
    TrainConfig {
        seed,
        arch: ArchConfig {
            n_ctx: 33,
            d_vocab: 32,
            ..shipped.arch
        },
        optim: OptimConfig {
            steps: 3000,
            warmup_steps: 50,
            ..shipped.optim
        },
        data: DataConfig {
            seq_len: 33,
            max_repeat: 16,
            fill: false,
            ..shipped.data
        },
        eval: EvalConfig {
            repeat_len: 12,
            every: 500,
            ..shipped.eval
        },
    }
}

#[test]
fn induction_head_forms_and_second_repeat_loss_collapses() {
    let cfg = config(1);
    let trained = train(&cfg, &Device::flex(), None, |_| {}).unwrap();
    let curve = &trained.curve;
    for r in curve {
        eprintln!(
            "step {:5} train {:.3} first {:.3} second {:.3} icl {:+.3} ({:.1}s)",
            r.step,
            r.train_loss,
            r.eval_loss_first_repeat,
            r.eval_loss_second_repeat,
            r.icl_score,
            r.elapsed_s
        );
    }
    let start = &curve[0];
    let end = curve.last().unwrap();
    let ln_v = ((cfg.arch.d_vocab - 1) as f64).ln();
    // at initialisation both copies cost about ln(V): nothing is learned in context
    assert!(
        (start.eval_loss_first_repeat - start.eval_loss_second_repeat).abs() < 0.1,
        "{start:?}"
    );
    assert!(
        (start.eval_loss_first_repeat - ln_v).abs() < 0.75,
        "{start:?}"
    );
    // at the end the second copy is predicted from the first
    assert!(
        end.eval_loss_second_repeat < 0.5 * end.eval_loss_first_repeat,
        "no in-context learning: {end:?}"
    );
    assert!(end.icl_score < -1.0, "{end:?}");
    // the first copy stays unpredictable (random tokens)
    assert!((end.eval_loss_first_repeat - ln_v).abs() < 0.3, "{end:?}");
    // and the mechanism is an induction circuit: previous-token head in layer 0, induction head
    // in layer 1
    let scores = head_scores(&trained.model, &eval_rows(&cfg), cfg.eval.repeat_len);
    let best = |layer: usize, f: fn(&circuitry_train::HeadScores) -> f64| {
        scores
            .iter()
            .filter(|s| s.layer == layer)
            .map(f)
            .fold(0.0, f64::max)
    };
    let (prev0, ind1) = (best(0, |s| s.previous_token), best(1, |s| s.induction));
    eprintln!("{scores:?}");
    assert!(prev0 > 0.3, "no previous-token head in layer 0: {scores:?}");
    assert!(ind1 > 0.4, "no induction head in layer 1: {scores:?}");
}
