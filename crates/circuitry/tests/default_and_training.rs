//! The shipped default experiment shows the textbook induction circuit in the shipped model, and
//! a short training run through the binary shows the induction phase change in its curve table.

use crate::common;

use common::*;

fn by_head(t: &TableData, column: &str) -> Vec<((i32, i32), f64)> {
    let (l, h, v) = (t.i32("layer"), t.i32("head"), t.f64(column));
    (0..t.rows())
        .map(|i| ((l[i].unwrap(), h[i].unwrap()), v[i]))
        .collect()
}

#[test]
fn default_experiment_shows_the_induction_circuit() {
    let tmp = tempfile::tempdir().unwrap();
    run_ok(&repo().join("experiments/default.toml"), tmp.path(), &[]);
    let out = tmp.path().join("default");

    let heads = read_table(&out.join("heads.parquet"));
    let induction = by_head(&heads, "induction_score");
    let previous = by_head(&heads, "previous_token_score");
    let best = |scores: &[((i32, i32), f64)], layer: i32| {
        scores
            .iter()
            .filter(|((l, _), _)| *l == layer)
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .copied()
            .unwrap()
    };
    let (prev_head, prev_score) = best(&previous, 0);
    let (ind_head, ind_score) = best(&induction, 1);
    assert!(
        prev_score > 0.4,
        "layer 0 previous-token head: {prev_head:?} {prev_score}"
    );
    assert!(
        ind_score > 0.5,
        "layer 1 induction head: {ind_head:?} {ind_score}"
    );
    assert!(best(&induction, 0).1 < 0.1, "no induction in layer 0");

    // K-composition from the previous-token head into the induction head, far above chance.
    let comp = read_table(&out.join("composition.parquet"));
    let (kind, la, ha, lb, hb) = (
        comp.str("kind"),
        comp.i32("layer_a"),
        comp.i32("head_a"),
        comp.i32("layer_b"),
        comp.i32("head_b"),
    );
    let (score, mean, std) = (
        comp.f64("score"),
        comp.f64("baseline_mean"),
        comp.f64("baseline_std"),
    );
    let i = (0..comp.rows())
        .find(|&i| {
            kind[i].as_deref() == Some("k")
                && (la[i].unwrap(), ha[i].unwrap()) == prev_head
                && (lb[i].unwrap(), hb[i].unwrap()) == ind_head
        })
        .expect("a K-composition row for the circuit");
    assert!(
        score[i] > mean[i] + 5.0 * std[i],
        "K-composition {} vs baseline {} ± {}",
        score[i],
        mean[i],
        std[i]
    );

    // The induction head copies: positive copying score of its full OV circuit.
    let ov = read_table(&out.join("ov.parquet"));
    let copying = by_head(&ov, "full_copying_score");
    let c = copying.iter().find(|(k, _)| *k == ind_head).unwrap().1;
    assert!(c > 0.5, "induction head OV copying score {c}");

    // In-context learning: the second repeat is predicted far better than the first.
    let loss = read_table(&out.join("loss.parquet"));
    let (pos, l) = (loss.i32("position"), loss.f64("loss"));
    let mean_over = |range: std::ops::Range<i32>| {
        let v: Vec<f64> = (0..loss.rows())
            .filter(|&i| range.contains(&pos[i].unwrap()) && !l[i].is_nan())
            .map(|i| l[i])
            .collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    let (first, second) = (mean_over(1..20), mean_over(21..40));
    assert!(
        second < 0.5 * first,
        "loss second repeat {second} vs first {first}"
    );
}

#[test]
fn a_short_training_run_shows_the_induction_phase_change() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("train.toml");
    std::fs::write(
        &file,
        r#"
name = "short"
[train.curve]
output = "model"
seed = 1
n_layers = 2
d_model = 64
n_heads = 4
attn_only = true
n_ctx = 33
d_vocab = 32
init_std = 0.1
steps = 3000
batch_size = 32
lr = 1e-3
warmup_steps = 100
repeats = { min_length = 4, max_length = 16 }
eval_every = 500
eval_repeat_len = 16

[models.trained]
path = "model"

[datasets.probe]
generator = "repeated_tokens"
n = 32
length = 16
token_range = [1, 32]

[analyses.heads]
kind = "induction_scores"
model = "trained"
dataset = "probe"
"#,
    )
    .unwrap();
    let out = tmp.path().join("out");
    run_ok(&file, &out, &[]);
    let curve = read_table(&out.join("short/curve.parquet"));
    let (step, first, second) = (
        curve.u32("step"),
        curve.f64("eval_loss_first_repeat"),
        curve.f64("eval_loss_second_repeat"),
    );
    assert_eq!(step.first(), Some(&0));
    assert_eq!(step.last(), Some(&3000));
    let n = curve.rows() - 1;
    assert!(
        (second[0] - first[0]).abs() < 0.3,
        "at step 0 both repeats are equally hard: {} vs {}",
        first[0],
        second[0]
    );
    assert!(
        second[n] < 0.5 * first[n],
        "after training: second repeat {} vs first {}",
        second[n],
        first[n]
    );
    let icl = curve.f64("icl_score");
    assert!(icl[n] < -1.0, "in-context learning score {}", icl[n]);
    assert!(tmp.path().join("model/model.safetensors").is_file());
    let heads = read_table(&out.join("short/heads.parquet"));
    let best = by_head(&heads, "induction_score")
        .into_iter()
        .filter(|((l, _), _)| *l == 1)
        .map(|(_, s)| s)
        .fold(0.0, f64::max);
    assert!(
        best > 0.4,
        "the freshly trained model has an induction head: {best}"
    );
}
