//! `[sweep]` expansion.

use circuitry_spec::{AnalysisParams, DatasetSource, Experiment, Variant};
use serde_json::json;

use crate::common;

const BASE: &str = common::TOY;

fn load(sweep: &str) -> Experiment {
    Experiment::from_str(&format!("{BASE}\n[sweep]\n{sweep}"), "sweep.toml")
        .unwrap_or_else(|e| panic!("{e}"))
}

/// `BASE` with `sweep`, and its runs, which must number `count`.
fn expand(sweep: &str, count: usize) -> (Experiment, Vec<Variant>) {
    let e = load(sweep);
    let runs = e.expand();
    assert_eq!(runs.len(), count, "{sweep}");
    (e, runs)
}

fn length(e: &Experiment) -> u32 {
    match &e.datasets["rep"].source {
        DatasetSource::RepeatedTokens(r) => r.length,
        _ => unreachable!(),
    }
}

#[test]
fn grid_order_is_row_major_in_file_order() {
    let (e, runs) = expand(
        "\"datasets.rep.length\" = [10, 20, 40]\n\"analyses.heads.batch_size\" = [8, 16]\n",
        6,
    );
    assert_eq!(e.sweep.combinations(), 6);
    let got: Vec<(u32, u32)> = runs
        .iter()
        .map(|v| {
            (
                length(&v.experiment),
                v.experiment.analyses["heads"].batch_size,
            )
        })
        .collect();
    assert_eq!(
        got,
        [(10, 8), (10, 16), (20, 8), (20, 16), (40, 8), (40, 16)]
    );
    for (i, v) in runs.iter().enumerate() {
        assert_eq!(v.index, i);
        assert!(v.experiment.sweep.is_empty());
        assert_eq!(v.experiment.expand().len(), 1);
    }
    assert_eq!(
        runs[3].columns,
        [
            ("length".to_string(), json!(20)),
            ("batch_size".to_string(), json!(16))
        ]
    );
    assert_eq!(runs[3].label(), "length = 20, batch_size = 16");
    // The experiment's own fields are the first grid point.
    assert_eq!(length(&e), 10);
    // Expansion is deterministic.
    let again: Vec<String> =
        load("\"datasets.rep.length\" = [10, 20, 40]\n\"analyses.heads.batch_size\" = [8, 16]\n")
            .expand()
            .iter()
            .map(|v| v.experiment.hash())
            .collect();
    assert_eq!(
        again,
        runs.iter().map(|v| v.experiment.hash()).collect::<Vec<_>>()
    );
}

#[test]
fn swept_keys_may_be_absent_from_the_base() {
    let text = BASE.replace("length = 5\n", "");
    let e = Experiment::from_str(
        &format!("{text}\n[sweep]\n\"datasets.rep.length\" = [3, 4]\n"),
        "s.toml",
    )
    .unwrap();
    assert_eq!(
        e.expand()
            .iter()
            .map(|v| length(&v.experiment))
            .collect::<Vec<_>>(),
        [3, 4]
    );
}

#[test]
fn unquoted_dotted_keys_and_explicit_columns() {
    let (e, runs) = expand(
        "datasets.rep.length = [1, 2]\n\"analyses.heads.batch_size\" = { values = [4], column = \"bs\" }\n",
        2,
    );
    assert_eq!(runs[1].columns[0], ("length".to_string(), json!(2)));
    assert_eq!(runs[1].columns[1], ("bs".to_string(), json!(4)));
    assert_eq!(e.sweep.axes[0].key, "datasets.rep.length");
}

#[test]
fn sweeping_structured_values() {
    let (_, runs) = expand(
        "\"analyses.heads.layers\" = [[0], [0, 1]]\n\"models.toy.processing\" = [true, false]\n",
        4,
    );
    let h = common::unwrap_variant!(
        AnalysisParams::HeadDetector,
        &runs[2].experiment.analyses["heads"].params
    );
    assert_eq!(h.layers.as_deref(), Some(&[0, 1][..]));
    assert_eq!(runs[2].columns[0].1, json!([0, 1]));
}

#[test]
fn mixed_integers_and_floats_become_a_float_column() {
    let text = BASE.to_string()
        + "\n[analyses.p]\nkind = \"attention_pattern\"\nmodel = \"toy\"\ndataset = \"rep\"\n";
    let e = Experiment::from_str(
        &format!("{text}\n[sweep]\n\"analyses.p.min_attention\" = [0, 0.5]\n"),
        "s.toml",
    )
    .unwrap();
    assert_eq!(e.sweep.axes[0].values, [json!(0.0), json!(0.5)]);
}

#[test]
fn sweeping_the_seed_changes_derived_seeds() {
    let e = load("seed = [0, 1]\n");
    let runs = e.expand();
    assert_ne!(
        runs[0].experiment.datasets["rep"].seed(),
        runs[1].experiment.datasets["rep"].seed()
    );
}

#[test]
fn every_variant_is_validated() {
    let err = Experiment::from_str(
        &format!("{BASE}\n[sweep]\n\"datasets.rep.n\" = [1, 0]\n"),
        "s.toml",
    )
    .unwrap_err();
    assert_eq!(err.diagnostics().len(), 1);
    assert_eq!(err.first().notes, ["in sweep run 1: n = 0"]);
    // The same problem in every run is reported once.
    let err = Experiment::from_str(
        &format!(
            "{}\n[sweep]\n\"datasets.rep.length\" = [1, 2, 3]\n",
            BASE.replace("n = 8", "n = 0")
        ),
        "s.toml",
    )
    .unwrap_err();
    assert_eq!(err.diagnostics().len(), 1, "{err}");
}

#[test]
fn too_many_combinations() {
    let values: Vec<String> = (1..=200).map(|i| i.to_string()).collect();
    let list = values.join(", ");
    let text = format!(
        "{BASE}\n[sweep]\n\"datasets.rep.length\" = [{list}]\n\"datasets.rep.n\" = [{list}]\n"
    );
    let err = Experiment::from_str(&text, "s.toml").unwrap_err();
    assert!(err.first().message.contains("40000 combinations"), "{err}");
}

#[test]
fn runner_diagnostics_point_at_the_swept_value() {
    let e = load("\"models.toy.path\" = [\"models/a\", \"models/b\"]\n");
    let runs = e.expand();
    let d = runs[1]
        .experiment
        .diagnostic_at("models.toy.path", "no such model");
    let loc = d.location.unwrap();
    assert_eq!(loc.line, 16);
    assert_eq!(
        &loc.source_line[loc.column - 1..loc.column - 1 + loc.underline],
        "\"models/b\""
    );
    // Keys that are not swept point into the file as usual.
    let d = runs[1]
        .experiment
        .diagnostic_at("datasets.rep.n", "too many");
    assert_eq!(d.line_column(), Some((7, 5)));
}

#[test]
fn the_largest_grid_is_quick() {
    let values: Vec<String> = (1..=100).map(|i| i.to_string()).collect();
    let list = values.join(", ");
    let start = std::time::Instant::now();
    let e = load(&format!(
        "\"datasets.rep.length\" = [{list}]\n\"datasets.rep.n\" = [{list}]\n"
    ));
    assert_eq!(e.expand().len(), circuitry_spec::MAX_VARIANTS);
    assert!(start.elapsed().as_secs() < 20, "{:?}", start.elapsed());
}
