//! The weight-circuit kinds (`ov_circuit`, `qk_circuit`, `composition_scores`) and
//! `induction_scores`: defaults, explicit values, their listing, and dataset checks.

use circuitry_spec::{AnalysisParams, Composition, Experiment, analysis_kind};

use crate::common;

const HEADER: &str = r#"
[models.toy]
path = "m"

[datasets.rep]
generator = "repeated_tokens"
n = 4
length = 5

[datasets.texts]
prompts = ["one", "two"]
"#;

fn load(analyses: &str) -> Result<Experiment, circuitry_spec::SpecError> {
    common::load_analyses(HEADER, analyses)
}

/// The parameters of `[analyses.<name>]`, an analysis of `kind` on the toy model with `extra` keys.
fn toy_params(name: &str, kind: &str, extra: &str) -> AnalysisParams {
    let analyses = format!("[analyses.{name}]\nkind = \"{kind}\"\nmodel = \"toy\"\n{extra}");
    common::analysis_params(HEADER, &analyses, name)
}

fn error(analyses: &str) -> String {
    common::analyses_error(HEADER, analyses)
}

#[test]
fn ov_circuit_defaults_and_values() {
    let p = common::unwrap_variant!(
        AnalysisParams::OvCircuit,
        toy_params("ov", "ov_circuit", "")
    );
    assert_eq!((p.layers, p.heads), (None, None));
    assert_eq!((p.top_k, p.singular_values), (10, 10));

    let p = common::unwrap_variant!(
        AnalysisParams::OvCircuit,
        toy_params(
            "ov",
            "ov_circuit",
            "layers = [0, 2]\nheads = [1]\ntop_k = 0\nsingular_values = 0\n"
        )
    );
    assert_eq!(
        (p.layers, p.heads, p.top_k, p.singular_values),
        (Some(vec![0, 2]), Some(vec![1]), 0, 0)
    );
}

#[test]
fn qk_circuit_defaults_and_values() {
    let p = common::unwrap_variant!(
        AnalysisParams::QkCircuit,
        toy_params("qk", "qk_circuit", "")
    );
    assert_eq!((p.layers, p.heads), (None, None));
    assert_eq!((p.top_k, p.singular_values, p.max_positions), (10, 10, 64));

    let p = common::unwrap_variant!(
        AnalysisParams::QkCircuit,
        toy_params(
            "qk",
            "qk_circuit",
            "top_k = 3\nsingular_values = 2\nmax_positions = 0\n"
        )
    );
    assert_eq!((p.top_k, p.singular_values, p.max_positions), (3, 2, 0));
}

#[test]
fn composition_scores_defaults_and_values() {
    let p = common::unwrap_variant!(
        AnalysisParams::CompositionScores,
        toy_params("c", "composition_scores", "")
    );
    assert_eq!(p.kinds, Composition::ALL);
    assert_eq!((p.baseline_samples, p.seed), (200, 0));

    let p = common::unwrap_variant!(
        AnalysisParams::CompositionScores,
        toy_params(
            "c",
            "composition_scores",
            "kinds = [\"v\", \"q\"]\nbaseline_samples = 0\nseed = 12\n"
        )
    );
    assert_eq!(p.kinds, [Composition::V, Composition::Q]);
    assert_eq!((p.baseline_samples, p.seed), (0, 12));
    assert_eq!(
        Composition::ALL.map(|k| k.to_string()),
        ["q", "k", "v"].map(String::from)
    );
}

#[test]
fn induction_scores_defaults_and_values() {
    let p = common::unwrap_variant!(
        AnalysisParams::InductionScores,
        toy_params("i", "induction_scores", "dataset = \"rep\"\n")
    );
    assert_eq!((p.layers, p.heads, p.per_prompt), (None, None, false));
    let p = common::unwrap_variant!(
        AnalysisParams::InductionScores,
        toy_params(
            "i",
            "induction_scores",
            "dataset = \"rep\"\nlayers = [1]\nper_prompt = true\n"
        )
    );
    assert_eq!((p.layers, p.per_prompt), (Some(vec![1]), true));
}

#[test]
fn induction_scores_need_repeated_tokens() {
    let e =
        error("[analyses.i]\nkind = \"induction_scores\"\nmodel = \"toy\"\ndataset = \"texts\"\n");
    assert!(
        e.contains(
            "needs repeated prompts: dataset `texts` (prompts) declares no repeat structure"
        ),
        "{e}"
    );
    assert!(e.contains("repeats = 2 in [datasets.texts]"), "{e}");
    // An undefined dataset is reported once, as for every kind.
    let e =
        error("[analyses.i]\nkind = \"induction_scores\"\nmodel = \"toy\"\ndataset = \"nope\"\n");
    assert!(e.contains("no dataset `nope`"), "{e}");
    assert!(!e.contains("repeated prompts"), "{e}");
    // A dataset of the user's own that declares its repeats is accepted, and names the
    // generator's repeat positions.
    let text = "[models.m]\npath = \"m\"\n[datasets.mine]\ntokens = [[5, 6, 5, 6]]\nrepeats = 2\n\
                [analyses.i]\nkind = \"induction_scores\"\nmodel = \"m\"\ndataset = \"mine\"\n\
                [analyses.n]\nkind = \"next_token\"\nmodel = \"m\"\ndataset = \"mine\"\n\
                positions = [\"repeat_start\"]\n";
    let e = Experiment::from_str(text, "mine.toml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        e.datasets["mine"].named_positions(),
        ["seq_start", "repeat_start"]
    );
}

#[test]
fn bad_values_are_reported_at_their_keys() {
    common::assert_errors_contain(
        error,
        [
            (
                "[analyses.c]\nkind = \"composition_scores\"\nmodel = \"toy\"\nkinds = []\n",
                "`analyses.c.kinds` is an empty list",
            ),
            (
                "[analyses.c]\nkind = \"composition_scores\"\nmodel = \"toy\"\nkinds = [\"Q\"]\n",
                "`Q`",
            ),
            (
                "[analyses.q]\nkind = \"qk_circuit\"\nmodel = \"toy\"\nlayers = []\n",
                "`analyses.q.layers` is an empty list",
            ),
            (
                "[analyses.o]\nkind = \"ov_circuit\"\nmodel = \"toy\"\ntop_k = 1.5\n",
                "top_k",
            ),
        ],
    );
}

#[test]
fn kinds_are_listed_with_their_parameters() {
    for (kind, params) in [
        (
            "ov_circuit",
            &["layers", "heads", "top_k", "singular_values"][..],
        ),
        (
            "qk_circuit",
            &[
                "layers",
                "heads",
                "top_k",
                "singular_values",
                "max_positions",
            ],
        ),
        ("composition_scores", &["kinds", "baseline_samples", "seed"]),
        ("induction_scores", &["layers", "heads", "per_prompt"]),
    ] {
        let info = analysis_kind(kind).unwrap_or_else(|| panic!("{kind} not listed"));
        assert!(!info.summary.is_empty(), "{kind}");
        for p in params {
            let param = info
                .params
                .iter()
                .find(|i| i.name == *p)
                .unwrap_or_else(|| panic!("{kind}.{p} not listed"));
            assert!(!param.description.is_empty(), "{kind}.{p}");
            assert!(!param.required, "{kind}.{p}");
        }
    }
    let top_k = analysis_kind("ov_circuit")
        .unwrap()
        .params
        .into_iter()
        .find(|p| p.name == "top_k")
        .unwrap();
    assert_eq!(top_k.default.as_deref(), Some("10"));
    assert!(top_k.description.contains("15 s per head"));
}

#[test]
fn resolved_form_round_trips() {
    let e = load(
        "[analyses.c]\nkind = \"composition_scores\"\nmodel = \"toy\"\n\
         kinds = [\"k\"]\n\
         [analyses.q]\nkind = \"qk_circuit\"\nmodel = \"toy\"\nheads = [0]\n",
    )
    .unwrap();
    let resolved = e.resolved_json();
    assert_eq!(resolved["analyses"]["c"]["kinds"], serde_json::json!(["k"]));
    assert_eq!(resolved["analyses"]["c"]["baseline_samples"], 200);
    assert_eq!(resolved["analyses"]["q"]["max_positions"], 64);
    let again = Experiment::from_str(&e.resolved_toml(), "kinds.toml").unwrap();
    assert_eq!(again.hashes(), e.hashes());
}
