//! The shipped default experiment shows the textbook induction circuit in the shipped model
//! (the phase change over training is `phase_change.rs`).

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
