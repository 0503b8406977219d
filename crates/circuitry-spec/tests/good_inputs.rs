//! Every file in `tests/good/` loads, expands, round-trips through its resolved form and is
//! consistent with the JSON Schema's top-level structure.

use std::path::{Path, PathBuf};

use circuitry_spec::{AnalysisParams, Experiment, ModelLocation, TokenSelection, TokenSpec};

use crate::common;

fn good_files() -> Vec<PathBuf> {
    common::example_files("good")
}

#[test]
fn good_files_load_and_round_trip() {
    let files = good_files();
    assert!(files.len() >= 4);
    for path in files {
        let e =
            Experiment::from_file(&path).unwrap_or_else(|err| panic!("{}:\n{err}", path.display()));
        let resolved = e.resolved_toml();
        let again = Experiment::from_str(&resolved, &path)
            .unwrap_or_else(|err| panic!("{} resolved form:\n{resolved}\n{err}", path.display()));
        assert_eq!(again.hashes(), e.hashes(), "{}", path.display());
        assert_eq!(again.expand().len(), e.expand().len());
        // Every top-level key of the resolved form is a schema property.
        let schema = circuitry_spec::json_schema();
        for key in e.resolved_json().as_object().unwrap().keys() {
            assert!(
                schema["properties"].get(key).is_some(),
                "{key} missing from the schema"
            );
        }
    }
}

fn good(name: &str) -> Experiment {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/good")
        .join(name);
    Experiment::from_file(path).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn induction_example() {
    let e = good("induction.toml");
    assert_eq!(e.name, "induction-demo");
    assert_eq!(e.expand().len(), 3);
    assert_eq!(e.analyses.len(), 3);
}

#[test]
fn ioi_example() {
    let e = good("ioi.toml");
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty());
    if let (Some(home), ModelLocation::Local(p)) =
        (home, e.models["smollm2"].location(&e.base_dir()))
    {
        assert!(p.starts_with(home), "`~` expands to the home directory");
    }
    assert!(matches!(
        e.models["hubbed"].location(&e.base_dir()),
        ModelLocation::Hub { .. }
    ));
}

#[test]
fn texts_example() {
    let e = good("texts.toml");
    let l = common::unwrap_variant!(AnalysisParams::LogitLens, &e.analyses["lens"].params);
    assert_eq!(
        l.tokens,
        TokenSelection::Tokens(vec![
            TokenSpec::Answer("IO".into()),
            TokenSpec::Answer("S".into()),
            TokenSpec::Text(" the".into()),
            TokenSpec::Id(5)
        ])
    );
    assert_eq!(e.datasets["file"].answer_names(), ["IO", "S"]);
    assert!(e.datasets["file"].prepend_bos);
}

#[test]
fn train_example() {
    let e = good("train.toml");
    let t = &e.train["toy"];
    assert_eq!((t.d_head(), t.d_mlp()), (16, 256));
    assert_eq!(
        t.repeats
            .as_ref()
            .map(|r| (r.min_length, r.max_length, r.fill)),
        Some((4, 31, true))
    );
    assert!(t.attn_only);
    assert_eq!(
        e.resolve_path(&t.output),
        e.base_dir().join("models/attn-only-2l")
    );
}

#[test]
fn readme_example_is_valid() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let start = readme.find("```toml\n").expect("a toml block") + "```toml\n".len();
    let end = start + readme[start..].find("```").unwrap();
    let e = Experiment::from_str(&readme[start..end], "experiments/readme.toml")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(e.expand().len(), 6);
    assert_eq!(e.datasets.len(), 10);
    assert_eq!(e.datasets["id_records"].named_positions(), ["END", "S2"]);
    assert_eq!(e.datasets["id_records"].answer_names(), ["IO", "S"]);
    assert!(e.datasets["id_records"].has_corrupt());
    assert_eq!(e.datasets["file"].named_positions(), ["END"]);
    // Written back and read again (records, plain lists and positions included): the same.
    let again = Experiment::from_str(&e.resolved_toml(), "experiments/readme.toml")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again.hashes(), e.hashes());
    assert_eq!(again.datasets["id_records"], e.datasets["id_records"]);
    assert_eq!(e.datasets["my_repeats"].declared_repeats(), Some(2));
    assert_eq!(e.causal_models.len(), 1);
}
