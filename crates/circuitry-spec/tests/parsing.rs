//! Parsing and defaults: what a minimal file turns into.

use circuitry_spec::{
    ActFn, AnalysisParams, DatasetSource, Detector, Device, DlaComponent, ErrorMeasure, Experiment,
    FileFormat, IoiCorruption, ModelLocation, PaddingSide, PositionSpec, PositionsSpec, Processing,
    Target, TokenSelection, TokenSpec,
};

use crate::common;

const MINIMAL: &str = common::toy_experiment!("models/attn-only-2l");

fn load(text: &str) -> Experiment {
    Experiment::from_str(text, "experiments/minimal.toml").unwrap_or_else(|e| panic!("{e}"))
}

fn with(extra: &str) -> Experiment {
    load(&format!("{MINIMAL}\n{extra}"))
}

#[test]
fn top_level_defaults() {
    let e = load(MINIMAL);
    assert_eq!(e.name, "minimal");
    assert_eq!(e.seed, 0);
    assert_eq!(e.device, None);
    assert_eq!(e.description, None);
    assert!(!e.is_sweep());
    assert!(e.train.is_empty());
    assert_eq!(e.base_dir(), std::path::PathBuf::from("experiments"));
}

#[test]
fn model_defaults_and_location() {
    let e = load(MINIMAL);
    let m = &e.models["toy"];
    assert_eq!(m.processing, Processing::ALL);
    assert_eq!(m.padding_side, PaddingSide::Right);
    assert_eq!(
        m.location(&e.base_dir()),
        ModelLocation::Local("experiments/models/attn-only-2l".into())
    );
    let e = load(&MINIMAL.replace(
        "path = \"models/attn-only-2l\"",
        "hub = \"org/model@v2\"\nprocessing = false\npadding_side = \"left\"",
    ));
    let m = &e.models["toy"];
    assert_eq!(m.processing, Processing::NONE);
    assert_eq!(m.padding_side, PaddingSide::Left);
    assert_eq!(
        m.location(&e.base_dir()),
        ModelLocation::Hub {
            repo_id: "org/model".into(),
            revision: Some("v2".into())
        }
    );
    let e = load(&MINIMAL.replace(
        "path = \"models/attn-only-2l\"",
        "path = \"m\"\nprocessing = { center_unembed = false }",
    ));
    assert_eq!(
        e.models["toy"].processing,
        Processing {
            center_unembed: false,
            ..Processing::ALL
        }
    );
}

#[test]
fn dataset_defaults() {
    let e = load(MINIMAL);
    let d = &e.datasets["rep"];
    assert!(d.prepend_bos);
    let r = common::unwrap_variant!(DatasetSource::RepeatedTokens, &d.source);
    assert_eq!((r.n, r.length, r.repeats, r.token_range), (8, 5, 2, None));
    assert!(r.seed.is_some(), "derived seed is filled in");

    let e = with(
        r#"
[datasets.ioi]
generator = "ioi"
n = 4
names = [" Mary", "John ", "Alice"]

[datasets.texts]
prompts = ["a", { text = "b", corrupt = "c" }]

[datasets.file]
file = "data/p.CSV"
"#,
    );
    let i = common::unwrap_variant!(DatasetSource::Ioi, &e.datasets["ioi"].source);
    assert_eq!(
        i.names.as_deref(),
        Some(&["Mary".to_string(), "John".to_string(), "Alice".to_string()][..]),
        "names are trimmed"
    );
    assert_eq!(i.corrupt, IoiCorruption::Abc);
    assert!(i.templates.is_none(), "the generator's default templates");
    assert_eq!(
        e.datasets["ioi"].named_positions(),
        ["IO", "S1", "S2", "END"]
    );
    assert_eq!(e.datasets["ioi"].answer_names(), ["IO", "S"]);
    assert!(e.datasets["ioi"].has_corrupt());

    let texts = &e.datasets["texts"];
    assert!(!texts.prepend_bos);
    assert_eq!(texts.prompt_count(), Some(2));
    assert!(!texts.has_corrupt());
    let p = common::unwrap_variant!(DatasetSource::Prompts, &texts.source);
    assert_eq!(p.prompts[0].text, "a");
    assert_eq!(p.prompts[1].corrupt.as_deref(), Some("c"));

    let f = common::unwrap_variant!(DatasetSource::File, &e.datasets["file"].source);
    assert_eq!(f.format, Some(FileFormat::Csv));
    assert_eq!(f.text_column, "text");
    assert_eq!(e.datasets["file"].prompt_count(), None);
}

#[test]
fn seeds_derive_from_the_experiment_seed_and_name() {
    let seed_of = |e: &Experiment, name: &str| e.datasets[name].seed().unwrap();
    let a = with("[datasets.other]\ngenerator = \"repeated_tokens\"\nn = 8\nlength = 5\n");
    assert_ne!(seed_of(&a, "rep"), seed_of(&a, "other"));
    let b = load(&format!("seed = 1\n{MINIMAL}"));
    assert_ne!(seed_of(&a, "rep"), seed_of(&b, "rep"));
    let c = load(&MINIMAL.replace("length = 5", "length = 5\nseed = 42"));
    assert_eq!(seed_of(&c, "rep"), 42);
}

#[test]
fn analysis_defaults() {
    let e = with(
        r#"
[datasets.ioi]
generator = "ioi"
n = 4

[analyses.patterns]
kind = "attention_pattern"
model = "toy"
dataset = "rep"

[analyses.lens]
kind = "logit_lens"
model = "toy"
dataset = "rep"

[analyses.dla]
kind = "direct_logit_attribution"
model = "toy"
dataset = "ioi"
target = { diff = ["IO", "S"] }

[analyses.next]
kind = "next_token"
model = "toy"
dataset = "rep"
"#,
    );
    let heads = &e.analyses["heads"];
    assert_eq!(heads.batch_size, 8);
    assert_eq!(heads.kind(), "head_detector");
    let h = common::unwrap_variant!(AnalysisParams::HeadDetector, &heads.params);
    assert_eq!(
        h.detectors,
        [
            Detector::PreviousToken,
            Detector::DuplicateToken,
            Detector::Induction
        ]
    );
    assert!(!h.per_prompt && !h.exclude_bos && !h.exclude_current_token);
    assert_eq!(h.error_measure, ErrorMeasure::Mul);

    let p = common::unwrap_variant!(
        AnalysisParams::AttentionPattern,
        &e.analyses["patterns"].params
    );
    assert_eq!(
        (p.query_positions.clone(), p.key_positions.clone()),
        (PositionsSpec::All, PositionsSpec::All)
    );
    assert_eq!(
        (p.layers.clone(), p.heads.clone(), p.min_attention),
        (None, None, None)
    );

    let l = common::unwrap_variant!(AnalysisParams::LogitLens, &e.analyses["lens"].params);
    assert_eq!(
        (l.positions.clone(), l.tokens.clone(), l.top_k),
        (PositionsSpec::All, TokenSelection::Next, None)
    );

    let d = common::unwrap_variant!(
        AnalysisParams::DirectLogitAttribution,
        &e.analyses["dla"].params
    );
    assert_eq!(d.position, PositionSpec::Last);
    assert_eq!(d.components, DlaComponent::ALL);
    assert_eq!(
        d.target,
        Target::Diff(
            TokenSpec::Answer("IO".into()),
            TokenSpec::Answer("S".into())
        )
    );

    let n = common::unwrap_variant!(AnalysisParams::NextToken, &e.analyses["next"].params);
    assert_eq!((n.top_k, n.positions.clone()), (10, PositionsSpec::last()));
}

#[test]
fn train_defaults() {
    let e = with(
        r#"
[train.tiny]
output = "models/tiny"
dataset = "rep"
n_layers = 1
d_model = 32
n_heads = 4
n_ctx = 16
d_vocab = 50
steps = 10
"#,
    );
    let t = &e.train["tiny"];
    assert_eq!(t.d_mlp, Some(128));
    assert_eq!((t.d_head(), t.d_mlp(), t.seq_len()), (8, 128, 16));
    assert_eq!(t.eval_repeat_len(), 7, "min(20, (n_ctx - 1) / 2)");
    assert_eq!(
        (t.init_std, t.decay, t.eval_sequences),
        (0.02, circuitry_spec::Decay::Cosine, 64)
    );
    assert_eq!(t.act_fn, ActFn::GeluNew);
    assert!(!t.attn_only);
    assert_eq!(
        (
            t.batch_size,
            t.lr,
            t.warmup_steps,
            t.weight_decay,
            t.grad_clip,
            t.eval_every
        ),
        (32, 1e-3, 0, 0.01, 1.0, 100)
    );
    assert!(t.seed.is_some());
    assert!(
        t.checkpoint_steps().is_empty(),
        "no checkpoints unless asked"
    );
}

#[test]
fn checkpoint_steps() {
    let train = |save: &str| {
        let e = with(&format!(
            "[train.tiny]\noutput = \"models/tiny\"\ndataset = \"rep\"\nn_layers = 1\nd_model = 32\n\
             n_heads = 4\nn_ctx = 16\nd_vocab = 50\nsteps = 250\n{save}\n"
        ));
        e.train["tiny"].checkpoint_steps()
    };
    // The last step is always saved with save_every.
    assert_eq!(train("save_every = 100"), [0, 100, 200, 250]);
    assert_eq!(train("save_every = 125"), [0, 125, 250]);
    assert_eq!(train("save_every = 1000"), [0, 250]);
    assert_eq!(train("save_steps = [250, 3, 0]"), [0, 3, 250]);
}

#[test]
fn devices_and_names() {
    let e = load(&format!(
        "name = \"run.v2\"\ndevice = \"cuda:1\"\n{MINIMAL}"
    ));
    assert_eq!(e.device, Some(Device::Cuda(1)));
    assert_eq!(e.name, "run.v2");
}

#[test]
fn file_order_is_kept() {
    let e = with(
        "[analyses.b]\nkind = \"next_token\"\nmodel = \"toy\"\ndataset = \"rep\"\n\
         [analyses.a]\nkind = \"next_token\"\nmodel = \"toy\"\ndataset = \"rep\"\n",
    );
    let names: Vec<&str> = e.analyses.keys().map(String::as_str).collect();
    assert_eq!(names, ["heads", "b", "a"]);
}

#[test]
fn several_errors_are_reported_together() {
    let err = Experiment::from_str(
        &MINIMAL
            .replace("n = 8", "n = 0")
            .replace("model = \"toy\"", "model = \"tyo\""),
        "x.toml",
    )
    .unwrap_err();
    assert_eq!(err.diagnostics().len(), 2, "{err}");
    assert!(
        err.to_string()
            .ends_with("error: the experiment has 2 errors")
    );
}

#[test]
fn runner_can_point_at_keys() {
    let e = load(MINIMAL);
    let d = e.diagnostic_at("models.toy.path", "no such directory");
    assert_eq!(d.line_column(), Some((3, 8)));
    // A key that is not written points at its nearest written ancestor.
    let d = e.diagnostic_at("analyses.heads.batch_size", "too big");
    assert_eq!(d.line_column(), Some((10, 1)));
}

#[test]
fn unreadable_files_are_errors() {
    let err = Experiment::from_file("/definitely/not/here.toml").unwrap_err();
    assert!(err.first().message.contains("cannot read experiment file"));
    assert!(err.first().location.is_none());
}
