//! Canonical hashes: formatting never changes them, meaning always does.

use circuitry_spec::Experiment;

const BASE: &str = r#"
name = "h"
description = "first"
seed = 3

[models.toy]
path = "models/a"

[models.other]
path = "models/b"

[datasets.rep]
generator = "repeated_tokens"
n = 8
length = 5

[datasets.texts]
prompts = ["a", "b"]

[analyses.heads]
kind = "head_detector"
model = "toy"
dataset = "rep"

[analyses.next]
kind = "next_token"
model = "other"
dataset = "texts"
positions = "last"
"#;

/// The same experiment written differently: other key order, comments, whitespace, inline
/// tables, explicit defaults and equivalent short forms.
const REWRITTEN: &str = r#"
# comments do not matter
seed = 3
description = "second: descriptions are documentation"
name = "h"

[analyses.next]
positions = ["last"]     # the list form of "last"
dataset = "texts"
model = "other"
kind = "next_token"
top_k = 10               # the default, written out

[analyses.heads]
dataset = "rep"
kind    = "head_detector"
model   = "toy"
detectors = ["previous_token", "duplicate_token", "induction"]

[datasets]
texts = { prompts = [{ text = "a" }, "b"], prepend_bos = false }
rep = { generator = "repeated_tokens", length = 5, n = 8, repeats = 2 }

[models.other]
path = "models/b"
processing = true

[models.toy]
path = "models/a"
padding_side = "right"
"#;

fn load(text: &str) -> Experiment {
    Experiment::from_str(text, "h.toml").unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn formatting_does_not_change_hashes() {
    let (a, b) = (load(BASE), load(REWRITTEN));
    assert_eq!(a.hashes(), b.hashes());
    assert_eq!(a.hash().len(), 64);
    assert!(a.hash().chars().all(|c| c.is_ascii_hexdigit()));
}

#[test]
fn hashes_are_stable_across_runs() {
    // Pinned: a change here means every recorded output hash changes. Bump HASH_VERSION when
    // canonicalization changes on purpose, then update this value.
    let model = load(BASE).model_hash("toy").unwrap();
    assert_eq!(
        model,
        "6a5e894e3f52473b703b637bb8d192020504eb29151d34481626b99725b363f3"
    );
    assert_eq!(circuitry_spec::HASH_VERSION, "circuitry-spec/hash/v1");
    assert_eq!(
        circuitry_spec::canonical_json(
            &serde_json::json!({"b": [1.5, {"d": 1, "c": 2}], "a": true})
        ),
        r#"{"a":true,"b":[1.5,{"c":2,"d":1}]}"#
    );
}

fn changed(from: &str, to: &str) -> Experiment {
    assert!(BASE.contains(from), "{from}");
    load(&BASE.replacen(from, to, 1))
}

#[test]
fn every_semantic_change_changes_the_right_hashes() {
    let base = load(BASE).hashes();

    // A model change: its hash, its analyses' hashes and the experiment's.
    let h = changed("path = \"models/a\"", "path = \"models/c\"").hashes();
    assert_ne!(h.models["toy"], base.models["toy"]);
    assert_eq!(h.models["other"], base.models["other"]);
    assert_ne!(h.analyses["heads"], base.analyses["heads"]);
    assert_eq!(h.analyses["next"], base.analyses["next"]);
    assert_ne!(h.experiment, base.experiment);

    // Holding the weights at half precision changes the model's results; writing out the
    // default does not.
    let h = changed(
        "path = \"models/a\"",
        "path = \"models/a\"\ndtype = \"bf16\"",
    )
    .hashes();
    assert_ne!(h.models["toy"], base.models["toy"]);
    assert_ne!(h.analyses["heads"], base.analyses["heads"]);
    let h = changed(
        "path = \"models/a\"",
        "path = \"models/a\"\ndtype = \"f32\"",
    )
    .hashes();
    assert_eq!(h.models["toy"], base.models["toy"]);

    // A dataset change.
    let h = changed("length = 5", "length = 6").hashes();
    assert_ne!(h.datasets["rep"], base.datasets["rep"]);
    assert_ne!(h.analyses["heads"], base.analyses["heads"]);
    assert_eq!(h.analyses["next"], base.analyses["next"]);

    // The experiment seed feeds the generators' derived seeds, not the text datasets.
    let h = changed("seed = 3", "seed = 4").hashes();
    assert_ne!(h.datasets["rep"], base.datasets["rep"]);
    assert_eq!(h.datasets["texts"], base.datasets["texts"]);
    assert_ne!(h.experiment, base.experiment);

    // An analysis parameter change.
    let h = changed("positions = \"last\"", "positions = \"all\"").hashes();
    assert_ne!(h.analyses["next"], base.analyses["next"]);
    assert_eq!(h.analyses["heads"], base.analyses["heads"]);
    assert_eq!(h.models, base.models);

    // Other changes that must show.
    for (from, to) in [
        ("name = \"h\"", "name = \"h2\""),
        ("prompts = [\"a\", \"b\"]", "prompts = [\"b\", \"a\"]"),
        (
            "kind = \"next_token\"",
            "kind = \"next_token\"\nbatch_size = 4",
        ),
        (
            "path = \"models/b\"",
            "path = \"models/b\"\nprocessing = { fold_ln = false }",
        ),
        ("[analyses.heads]", "[analyses.heads]\nper_prompt = true"),
        (
            "prompts = [\"a\", \"b\"]",
            "prompts = [\"a\", \"b\"]\nprepend_bos = true",
        ),
    ] {
        assert_ne!(
            changed(from, to).hash(),
            load(BASE).hash(),
            "{from} -> {to}"
        );
    }
}

#[test]
fn description_is_not_hashed() {
    assert_eq!(
        changed("description = \"first\"", "description = \"other\"").hash(),
        load(BASE).hash()
    );
    assert_eq!(
        changed("description = \"first\"\n", "").hash(),
        load(BASE).hash()
    );
}

#[test]
fn resolved_config_round_trips() {
    for text in [BASE, REWRITTEN] {
        let e = load(text);
        let again = load(&e.resolved_toml());
        assert_eq!(again.hashes(), e.hashes());
        assert_eq!(again.resolved_json(), e.resolved_json());
    }
}

#[test]
fn sweep_hashes() {
    let with_sweep = |values: &str| {
        load(&format!(
            "{BASE}\n[sweep]\n\"datasets.rep.length\" = [{values}]\n"
        ))
    };
    let a = with_sweep("5, 6");
    assert_ne!(
        a.hash(),
        with_sweep("5, 7").hash(),
        "the grid is part of the hash"
    );
    assert_ne!(a.hash(), load(BASE).hash());
    let runs = a.expand();
    // Each run hashes like the same experiment written without a sweep.
    assert_eq!(runs[0].experiment.hash(), load(BASE).hash());
    assert_eq!(
        runs[1].experiment.hash(),
        changed("length = 5", "length = 6").hash()
    );
}
