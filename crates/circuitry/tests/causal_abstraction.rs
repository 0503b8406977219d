//! `experiments/causal-abstraction.toml` end to end: a transformer trained in the file on two
//! equalities, `(a == b) and (c == d)`, then probes, interchange interventions and DAS on its
//! intermediate variables `left` and `right`. The model solves the task; both variables are
//! causally at the last position only (earlier positions change nothing when interchanged,
//! though `left` is linearly decodable there too); there DAS's one learnt direction carries
//! most of what interchanging the whole vector does and a random direction nothing.

use crate::common::*;

#[test]
fn causal_abstraction_localises_the_variables_and_das_beats_a_random_subspace() {
    let tmp = tempfile::tempdir().unwrap();
    run_ok(
        &repo().join("experiments/causal-abstraction.toml"),
        tmp.path(),
        &[],
    );
    let dir = tmp.path().join("causal-abstraction");
    let last = Some(4);

    for variable in ["left", "right"] {
        let das = read_table(&dir.join(format!("das_{variable}.parquet")));
        let (position, iia, random, full, task) = (
            das.i32("position"),
            das.f64("iia_test"),
            das.f64("iia_random"),
            das.f64("iia_full"),
            das.f64("task_accuracy"),
        );
        let (initial, fin) = (das.f64("loss_initial"), das.f64("loss_final"));
        for r in 0..das.rows() {
            eprintln!(
                "das {variable} layer {:?} position {:?}: iia {:.3} random {:.3} full {:.3}",
                das.i32("layer")[r],
                position[r],
                iia[r],
                random[r],
                full[r]
            );
            assert!(task[r] > 0.95, "the model solves the task: {}", task[r]);
            assert!(
                random[r] <= 0.05,
                "a random direction does nothing: {}",
                random[r]
            );
            if position[r] == last {
                assert!(
                    iia[r] >= 0.5,
                    "one direction at the last position carries `{variable}`: {}",
                    iia[r]
                );
                assert!(
                    fin[r] < 0.6 * initial[r],
                    "DAS trains: {} -> {}",
                    initial[r],
                    fin[r]
                );
            } else {
                assert!(
                    iia[r] <= 0.1,
                    "nothing before the last position: {}",
                    iia[r]
                );
            }
        }

        let best = (0..das.rows())
            .max_by(|&a, &b| iia[a].total_cmp(&iia[b]))
            .unwrap();
        assert!(
            iia[best] >= full[best] - 0.1,
            "at its best site, nearly the whole vector's effect: {} vs {}",
            iia[best],
            full[best]
        );

        // Probes: decodable at the last position, never from the first input alone.
        let probe = read_table(&dir.join(format!("probe_{variable}.parquet")));
        let (positions, test, majority) = (
            probe.i32("position"),
            probe.f64("test_score"),
            probe.f64("majority"),
        );
        for r in 0..probe.rows() {
            if positions[r] == last {
                assert!(
                    test[r] >= 0.9,
                    "`{variable}` decodable at the last position: {}",
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

    // Interchange interventions at every (layer, position): only the last position moves the
    // answer, and there the whole vector gives the source's own answer.
    let ii = read_table(&dir.join("interchange_left.parquet"));
    assert_eq!(ii.rows(), 2 * 5);
    let (positions, iia, base, source) = (
        ii.i32("position"),
        ii.f64("iia"),
        ii.f64("iia_base"),
        ii.f64("iia_source"),
    );
    for r in 0..ii.rows() {
        if positions[r] == last {
            assert!(
                iia[r] > 0.6 && (iia[r] - source[r]).abs() < 0.05,
                "{} vs {}",
                iia[r],
                source[r]
            );
        } else {
            assert!(
                iia[r] < base[r] + 0.1,
                "position {:?}: {}",
                positions[r],
                iia[r]
            );
        }
        assert!(base[r] < 0.05, "changing_only pairs: {}", base[r]);
    }
}
