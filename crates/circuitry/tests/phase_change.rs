//! `experiments/induction-phase-change.toml` end to end: two training runs saving checkpoints,
//! every analysis once per checkpoint with a `step` column, and the induction phase change of
//! Olsson et al. (2022) in its tables; then the saved series read back from disk as a
//! `checkpoints` directory gives the same numbers.

use std::collections::BTreeMap;
use std::path::Path;

use crate::common::*;

/// Per step, a value of `column` (rows filtered by `keep`), combined by `max`.
fn per_step(t: &TableData, column: &str, keep: impl Fn(usize) -> bool) -> BTreeMap<u32, f64> {
    let mut out: BTreeMap<u32, f64> = BTreeMap::new();
    for (i, (&step, &x)) in t.u32("step").iter().zip(&t.f64(column)).enumerate() {
        if keep(i) {
            let e = out.entry(step).or_insert(f64::NEG_INFINITY);
            *e = e.max(x);
        }
    }
    out
}

struct Run {
    steps: Vec<u32>,
    in_context_loss: BTreeMap<u32, f64>,
    icl: BTreeMap<u32, f64>,
    best_induction: BTreeMap<u32, f64>,
    previous_token_l0: BTreeMap<u32, f64>,
    /// ICL-score change when the head with the highest prefix-matching score is ablated.
    top_head_ablation: BTreeMap<u32, f64>,
}

fn read_run(dir: &Path, train: &str, tag: &str) -> Run {
    let curve = read_table(&dir.join(format!("{train}.parquet")));
    let steps = curve.u32("step");
    let in_context_loss = per_step(&curve, "eval_loss_second_repeat", |_| true);
    let summary = read_table(&dir.join(format!("icl_{tag}.summary.parquet")));
    let icl = per_step(&summary, "icl_score", |_| true);
    let induction = read_table(&dir.join(format!("induction_{tag}.parquet")));
    let layer = induction.i32("layer");
    let best_induction = per_step(&induction, "induction_score", |_| true);
    let previous_token_l0 = per_step(&induction, "previous_token_score", |i| layer[i] == Some(0));
    let heads = read_table(&dir.join(format!("heads_{tag}.parquet")));
    let (hs, prefix, change) = (
        heads.u32("step"),
        heads.f64("prefix_matching_score"),
        heads.f64("icl_score_change"),
    );
    let mut top: BTreeMap<u32, (f64, f64)> = BTreeMap::new();
    for i in 0..heads.rows() {
        let e = top.entry(hs[i]).or_insert((f64::NEG_INFINITY, 0.0));
        if prefix[i] > e.0 {
            *e = (prefix[i], change[i]);
        }
    }
    // Both ICL-score paths agree: the per-token losses of `icl_score` and the ablation
    // machinery's metric on the clean run.
    let clean = per_step(&heads, "icl_score_clean", |_| true);
    for (step, want) in &icl {
        let got = clean[step];
        assert!((got - want).abs() < 1e-4, "step {step}: {got} vs {want}");
    }
    Run {
        steps,
        in_context_loss,
        icl,
        best_induction,
        previous_token_l0,
        top_head_ablation: top.into_iter().map(|(s, (_, c))| (s, c)).collect(),
    }
}

#[test]
fn the_phase_change_experiment_shows_induction_heads_forming_with_in_context_learning() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("induction-phase-change.toml");
    std::fs::copy(
        repo().join("experiments/induction-phase-change.toml"),
        &file,
    )
    .unwrap();
    let out = tmp.path().join("out");
    run_ok(&file, &out, &[]);
    let dir = out.join("induction-phase-change");
    let two = read_run(&dir, "two_layer", "2l");
    let one = read_run(&dir, "one_layer", "1l");
    let steps: Vec<u32> = (0..=3000).step_by(100).collect();
    assert_eq!(two.steps, steps);
    assert_eq!(two.icl.keys().copied().collect::<Vec<_>>(), steps);
    assert_eq!(
        one.best_induction.keys().copied().collect::<Vec<_>>(),
        steps
    );

    // 2 layers: one window of steps in which the induction head forms...
    let last_low = *steps
        .iter()
        .filter(|s| two.best_induction[s] < 0.2)
        .max()
        .unwrap();
    let first_high = *steps
        .iter()
        .find(|s| two.best_induction[s] > 0.5)
        .expect("an induction head forms");
    assert!(
        first_high > last_low && first_high - last_low <= 500,
        "the induction score rises inside one window: below 0.2 until {last_low}, above 0.5 from {first_high}"
    );
    assert!(
        steps
            .iter()
            .filter(|&&s| s >= first_high)
            .all(|s| two.best_induction[s] > 0.5),
        "and stays"
    );
    // ... together with the previous-token head it composes with, the in-context loss and the
    // ICL score.
    let (before, after) = (last_low, first_high);
    assert!(
        two.previous_token_l0[&after] > two.previous_token_l0[&before] + 0.05,
        "previous-token score {} -> {}",
        two.previous_token_l0[&before],
        two.previous_token_l0[&after]
    );
    assert!(
        two.in_context_loss[&before] - two.in_context_loss[&after] > 1.0,
        "in-context loss {} -> {}",
        two.in_context_loss[&before],
        two.in_context_loss[&after]
    );
    assert!(
        two.icl[&before] > -1.0 && two.icl[&after] < -2.0,
        "ICL score {} -> {}",
        two.icl[&before],
        two.icl[&after]
    );
    // Ablating the top induction head after the window removes most of the ICL score; before
    // it, little.
    let end = *steps.last().unwrap();
    assert!(
        two.top_head_ablation[&end] > 0.8 * -two.icl[&end],
        "after: ablation {} of ICL score {}",
        two.top_head_ablation[&end],
        two.icl[&end]
    );
    let early = before.saturating_sub(400);
    assert!(
        two.top_head_ablation[&early] < 0.5
            && two.top_head_ablation[&early] < 0.2 * two.top_head_ablation[&end],
        "before: ablation {} at step {early}",
        two.top_head_ablation[&early]
    );

    // 1 layer: no induction head, and in-context learning stays small.
    for s in &steps {
        assert!(
            one.best_induction[s] < 0.2,
            "1 layer, step {s}: {}",
            one.best_induction[s]
        );
        assert!(
            one.icl[s] > -1.0,
            "1 layer, step {s}: ICL score {}",
            one.icl[s]
        );
    }

    // The checkpoints are model directories at the training output.
    let saved = tmp.path().join("models/phase-change/2l");
    assert!(saved.join("model.safetensors").is_file());
    for s in &steps {
        let step = saved.join(format!("checkpoints/step{s}"));
        assert!(
            step.join("model.safetensors").is_file(),
            "{}",
            step.display()
        );
    }

    // Read back from disk as a series of its own, the chosen steps give the same numbers.
    let again = tmp.path().join("series.toml");
    std::fs::write(
        &again,
        r#"
name = "series"
seed = 0
[models.saved]
checkpoints = "models/phase-change/2l/checkpoints"
steps = [3000, 0, 1500]
[datasets.repeated]
generator = "repeated_tokens"
n = 64
length = 20
token_range = [1, 64]
[analyses.icl]
kind = "icl_score"
model = "saved"
dataset = "repeated"
early = 10
late = 30
"#,
    )
    .unwrap();
    run_ok(&again, &out, &[]);
    let summary = read_table(&out.join("series/icl.summary.parquet"));
    assert_eq!(summary.u32("step"), [0, 1500, 3000]);
    for (s, got) in summary.u32("step").iter().zip(summary.f64("icl_score")) {
        assert_eq!(got, two.icl[s], "step {s}");
    }
}

#[test]
fn checkpoint_series_join_sweeps_and_the_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("series.toml");
    std::fs::write(
        &file,
        r#"
name = "series"
[train.toy]
output = "models/toy"
repeats = { min_length = 3, max_length = 7 }
n_layers = 1
d_model = 16
n_heads = 2
attn_only = true
n_ctx = 16
d_vocab = 16
steps = 20
eval_every = 10
save_every = 10
[models.toy]
checkpoints = "models/toy/checkpoints"
[models.last]
path = "models/toy"
[datasets.rep]
generator = "repeated_tokens"
n = 4
length = 6
token_range = [1, 16]
[analyses.icl]
kind = "icl_score"
model = "toy"
dataset = "rep"
early = 3
late = 9
[analyses.final]
kind = "icl_score"
model = "last"
dataset = "rep"
early = 3
late = 9
[sweep]
"train.toy.lr" = { values = [1e-3, 3e-3], column = "peak_lr" }
"#,
    )
    .unwrap();
    let out = tmp.path().join("out");
    run_ok(&file, &out, &[]);
    let dir = out.join("series");
    let summary = read_table(&dir.join("icl.summary.parquet"));
    assert_eq!(
        summary.columns()[..4],
        ["peak_lr", "step", "model", "dataset"].map(String::from)
    );
    assert_eq!(summary.u32("step"), [0, 10, 20, 0, 10, 20]);
    assert_eq!(summary.f64("peak_lr"), [1e-3, 1e-3, 1e-3, 3e-3, 3e-3, 3e-3]);
    let icl = summary.f64("icl_score");
    // Step 0 is the same initialisation in both runs; each run's last checkpoint is its final
    // model, analysed through `path` as well.
    assert_eq!(icl[0], icl[3]);
    assert_ne!(icl[2], icl[5]);
    let last = read_table(&dir.join("final.summary.parquet"));
    assert!(!last.columns().contains(&"step".to_string()));
    assert_eq!(last.f64("icl_score"), [icl[2], icl[5]]);
    let manifest = |dir: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap()
    };
    let first = manifest(&dir);
    assert_eq!(first["runs"], 2);
    let before = std::fs::read(dir.join("icl.summary.parquet")).unwrap();
    // Rerun: every checkpoint's node comes from the cache, and the table is the same bytes.
    run_ok(&file, &out, &[]);
    let again = manifest(&dir);
    let nodes = again["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), first["nodes"].as_array().unwrap().len());
    assert!(nodes.iter().all(|n| n["computed"] == false), "{nodes:?}");
    assert_eq!(
        std::fs::read(dir.join("icl.summary.parquet")).unwrap(),
        before
    );
}
