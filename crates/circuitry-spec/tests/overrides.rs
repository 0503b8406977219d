//! `--set KEY=VALUE` overrides.

use circuitry_spec::{AnalysisParams, DatasetSource, Experiment, ExperimentFile, SourceName};

use crate::common;

const BASE: &str = common::TOY;

fn load(overrides: &[&str]) -> Result<Experiment, circuitry_spec::SpecError> {
    common::load_with_overrides(BASE, "exp.toml", overrides)
}

#[test]
fn overrides_replace_and_add_values() {
    let e = load(&[
        "analyses.heads.layers=[0, 1]",
        "models.toy.path=models/other",
        "seed=5",
        "datasets.rep.length = 7",
        "analyses.heads.per_prompt=true",
    ])
    .unwrap();
    let h = common::unwrap_variant!(AnalysisParams::HeadDetector, &e.analyses["heads"].params);
    assert_eq!(h.layers.as_deref(), Some(&[0, 1][..]));
    assert!(h.per_prompt);
    assert_eq!(e.models["toy"].path.as_deref(), Some("models/other"));
    assert_eq!(e.seed, 5);
    let r = common::unwrap_variant!(DatasetSource::RepeatedTokens, &e.datasets["rep"].source);
    assert_eq!(r.length, 7);
    assert_eq!(e.overrides().len(), 5);
}

#[test]
fn overrides_apply_before_validation() {
    // The file alone is invalid (no model path); the override makes it valid.
    let text = BASE.replace("path = \"models/a\"\n", "");
    assert!(Experiment::from_str(&text, "exp.toml").is_err());
    let mut file = ExperimentFile::parse(&text, "exp.toml").unwrap();
    file.apply_override("models.toy.path=models/b").unwrap();
    assert_eq!(
        file.resolve().unwrap().models["toy"].path.as_deref(),
        Some("models/b")
    );
}

#[test]
fn overrides_create_keys_and_sweeps() {
    let e = load(&[
        "models.toy.processing.fold_ln=false",
        "sweep.\"datasets.rep.n\"=[1, 2, 3]",
    ])
    .unwrap();
    assert!(!e.models["toy"].processing.fold_ln);
    assert_eq!(e.expand().len(), 3);
}

/// A key inside an entry the file does not define is a typo, not a new entry: an error at the
/// override (or the sweep key), with the entry it probably meant.
#[test]
fn overrides_and_sweeps_into_undefined_entries_are_errors() {
    let cases = [
        (
            "models.toi.path=models/b",
            "cannot set `models.toi.path`: the file defines no model `toi` (no [models.toi])",
            "did you mean `models.toy`?",
        ),
        (
            "analyses.other.layers=[1]",
            "cannot set `analyses.other.layers`: the file defines no analysis `other` (no [analyses.other])",
            "defined: `heads`",
        ),
        (
            "sweep.\"datasets.rap.n\"=[1, 2]",
            "cannot sweep `datasets.rap.n`: the file defines no dataset `rap` (no [datasets.rap])",
            "did you mean `datasets.rep`?",
        ),
    ];
    for (set, message, hint) in cases {
        let err = load(&[set]).unwrap_err();
        let d = err.first();
        assert_eq!(
            (d.message.as_str(), d.hint.as_deref()),
            (message, Some(hint)),
            "--set {set}"
        );
        let loc = d.location.clone().unwrap();
        assert_eq!(loc.source, SourceName::Override(set.into()), "--set {set}");
        assert_eq!((loc.line, loc.column), (1, 1), "--set {set}");
    }
}

#[test]
fn later_overrides_win() {
    let e = load(&["seed=1", "seed=2"]).unwrap();
    assert_eq!(e.seed, 2);
}

#[test]
fn override_errors_name_the_override() {
    let err = load(&["datasets.rep.n=-3"]).unwrap_err();
    let loc = err.first().location.clone().unwrap();
    assert_eq!(loc.source, SourceName::Override("datasets.rep.n=-3".into()));
    assert_eq!((loc.line, loc.column, loc.underline), (1, 16, 2));
    assert!(
        err.to_string().contains("--> --set datasets.rep.n=-3:1:16"),
        "{err}"
    );

    let err = load(&["datasets.rep.n.deeper=1"]).unwrap_err();
    assert!(
        err.first()
            .message
            .contains("`datasets.rep.n` is an integer, not a table"),
        "{err}"
    );

    let err = load(&["analyses.heads.layers=[0,"]).unwrap_err();
    assert!(err.first().message.starts_with("invalid TOML"), "{err}");

    let err = load(&["nonsense"]).unwrap_err();
    assert!(err.first().message.contains("expected KEY=VALUE"), "{err}");
}

#[test]
fn file_errors_still_point_into_the_file_after_overrides() {
    let mut file = ExperimentFile::parse(&BASE.replace("n = 8", "n = 0"), "exp.toml").unwrap();
    file.apply_override("seed=3").unwrap();
    let err = file.resolve().unwrap_err();
    let loc = err.first().location.clone().unwrap();
    assert_eq!(loc.source, SourceName::File("exp.toml".into()));
    assert_eq!((loc.line, loc.column), (7, 5));
}

#[test]
fn a_failed_override_leaves_the_file_usable() {
    let mut file = ExperimentFile::parse(BASE, "exp.toml").unwrap();
    assert!(file.apply_override("datasets.rep.n.x=1").is_err());
    assert!(file.apply_override("=").is_err());
    file.apply_override("seed=9").unwrap();
    let e = file.resolve().unwrap();
    assert_eq!(e.seed, 9);
    assert_eq!(e.overrides(), ["seed=9"]);
}
