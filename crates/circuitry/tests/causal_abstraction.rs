//! `experiments/causal-abstraction.toml` end to end: a transformer trained in the file on two
//! equalities, `(a == b) and (c == d)`, then probes, interchange interventions and DAS on its
//! intermediate variables `left` and `right`. The model solves the task by computing each
//! equality in layer 0 at the position of its second operand (`left` at b, `right` at d) and
//! reading `left` from b into the last position in layer 1; at those sites one learnt direction
//! interchanges the variable (IIA >= 0.9) where a random direction does nothing.

use crate::common::*;

/// Token indices: 0 BOS, 1 a, 2 b, 3 c, 4 d (the last, where the answer is predicted).
const B: Option<i32> = Some(2);
const D: Option<i32> = Some(4);

#[test]
fn causal_abstraction_localises_the_variables_and_das_beats_a_random_subspace() {
    let tmp = tempfile::tempdir().unwrap();
    run_ok(
        &repo().join("experiments/causal-abstraction.toml"),
        tmp.path(),
        &[],
    );
    let dir = tmp.path().join("causal-abstraction");

    for (variable, home) in [("left", B), ("right", D)] {
        let das = read_table(&dir.join(format!("das_{variable}.parquet")));
        let (layer, position) = (das.i32("layer"), das.i32("position"));
        let (iia, random, full, task) = (
            das.f64("iia_test"),
            das.f64("iia_random"),
            das.f64("iia_full"),
            das.f64("task_accuracy"),
        );
        let (initial, fin) = (das.f64("loss_initial"), das.f64("loss_final"));
        for r in 0..das.rows() {
            eprintln!(
                "das {variable} layer {:?} position {:?}: iia {:.3} random {:.3} full {:.3}",
                layer[r], position[r], iia[r], random[r], full[r]
            );
            assert!(task[r] > 0.95, "the model solves the task: {}", task[r]);
            assert!(
                random[r] <= 0.05,
                "a random direction does nothing: {}",
                random[r]
            );
            assert!(fin[r] <= initial[r], "never worse than the start");
            if layer[r] == Some(0) && position[r] == home {
                assert!(
                    iia[r] >= 0.9 && full[r] >= 0.9,
                    "one direction after layer 0 at {home:?} carries `{variable}`: {} (whole vector {})",
                    iia[r],
                    full[r]
                );
            }
            if layer[r] == Some(1) && position[r] != D {
                // After the last block only the last position reaches the answer.
                assert!(iia[r] <= 0.05, "{}", iia[r]);
            }
            if position[r] == Some(3) {
                assert!(iia[r] <= 0.1, "c alone holds neither: {}", iia[r]);
            }
        }
        let best = (0..das.rows())
            .max_by(|&a, &b| iia[a].total_cmp(&iia[b]))
            .unwrap();
        assert_eq!(
            (layer[best], position[best]),
            (Some(0), home),
            "DAS's best site for `{variable}`"
        );

        // Probes: decodable after layer 0 where it is computed, never from `a` alone.
        let probe = read_table(&dir.join(format!("probe_{variable}.parquet")));
        let (layers, positions, test, majority) = (
            probe.i32("layer"),
            probe.i32("position"),
            probe.f64("test_score"),
            probe.f64("majority"),
        );
        for r in 0..probe.rows() {
            if layers[r] == Some(0) && positions[r] == home {
                assert!(
                    test[r] >= 0.95,
                    "`{variable}` decodable at {home:?}: {}",
                    test[r]
                );
            }
            if positions[r] == Some(1) {
                assert!(
                    test[r] < majority[r] + 0.15,
                    "not from `a` alone: {} vs {}",
                    test[r],
                    majority[r]
                );
            }
        }
    }

    // Interchange interventions at every (layer, position): the whole vector at b after layer 0
    // carries `left`; after layer 1 only the last position moves the answer, and there the whole
    // vector gives the source's own answer; the BOS, a and c positions never matter.
    let ii = read_table(&dir.join("interchange_left.parquet"));
    assert_eq!(ii.rows(), 2 * 5);
    let (layers, positions, iia, base, source) = (
        ii.i32("layer"),
        ii.i32("position"),
        ii.f64("iia"),
        ii.f64("iia_base"),
        ii.f64("iia_source"),
    );
    for r in 0..ii.rows() {
        let (layer, position) = (layers[r], positions[r]);
        if layer == Some(0) && position == B {
            assert!(iia[r] >= 0.95, "b after layer 0: {}", iia[r]);
        } else if layer == Some(1) && position == D {
            assert!(
                iia[r] > 0.6 && (iia[r] - source[r]).abs() < 0.05,
                "{} vs {}",
                iia[r],
                source[r]
            );
        } else if matches!(position, Some(0 | 1 | 3)) || layer == Some(1) {
            assert!(
                iia[r] < base[r] + 0.1,
                "layer {layer:?} position {position:?}: {}",
                iia[r]
            );
        }
        assert!(base[r] < 0.05, "changing_only pairs: {}", base[r]);
    }
}
