//! The causal-intervention kinds (`activation_patching`, `ablation`, `path_patching`,
//! `attribution_patching`, `edge_attribution_patching`): defaults, explicit values, canonical
//! forms, derived seeds, their listing, and the checks against the dataset.

use circuitry_spec::{
    AblationMethodSpec, AblationUnits, AnalysisParams, Direction, EapMethod, Experiment, HeadInput,
    HeadSweep, MeanOver, Measure, PositionSpec, PositionSweepSpec, ReceiverRef, Receivers,
    SenderRef, Senders, Site, TokenSpec, analysis_kind,
};

use crate::common;

const HEADER: &str = r#"
seed = 3

[models.toy]
path = "m"

[datasets.ioi]
generator = "ioi"
n = 4

[datasets.pairs]
tokens = [[1, 2, 3], [4, 5, 6]]
corrupt_tokens = [[1, 2, 7], [4, 5, 8]]

[datasets.rep]
generator = "repeated_tokens"
n = 4
length = 5
"#;

fn load(analyses: &str) -> Result<Experiment, circuitry_spec::SpecError> {
    common::load_analyses(HEADER, analyses)
}

fn params(analyses: &str) -> AnalysisParams {
    common::analysis_params(HEADER, analyses, "a")
}

fn error(analyses: &str) -> String {
    common::analyses_error(HEADER, analyses)
}

const IOI_METRIC: &str = "metric = { logit_diff = [\"IO\", \"S\"] }\n";

/// Each `(extra keys, expected text)` case of `kind` on the ioi dataset fails with an error
/// containing the text.
fn assert_ioi_errors(kind: &str, cases: &[(&str, &str)]) {
    common::assert_errors_contain(
        error,
        cases
            .iter()
            .map(|&(extra, expected)| (ioi(kind, extra), expected)),
    );
}

/// The parameters of an analysis `a` of `kind` on the ioi dataset with the ioi metric and `extra`
/// keys.
fn ioi_params(kind: &str, extra: &str) -> AnalysisParams {
    params(&ioi(kind, extra))
}

fn ioi(kind: &str, extra: &str) -> String {
    format!(
        "[analyses.a]\nkind = \"{kind}\"\nmodel = \"toy\"\ndataset = \"ioi\"\n{IOI_METRIC}{extra}"
    )
}

#[test]
fn activation_patching_defaults_and_values() {
    let p = common::unwrap_variant!(
        AnalysisParams::ActivationPatching,
        ioi_params("activation_patching", "")
    );
    assert_eq!(p.site, Site::ResidPre);
    assert_eq!(p.layers, None);
    assert_eq!(p.heads, HeadSweep::Each);
    assert_eq!(p.positions, PositionSweepSpec::All);
    assert_eq!(p.direction, Direction::Denoising);
    assert_eq!(p.position, PositionSpec::Last);
    assert!(p.summary);
    assert_eq!(
        p.metric.measure,
        Measure::LogitDiff(
            TokenSpec::Answer("IO".into()),
            TokenSpec::Answer("S".into())
        )
    );

    let p = common::unwrap_variant!(
        AnalysisParams::ActivationPatching,
        ioi_params(
            "activation_patching",
            "site = \"z\"\nlayers = [0, 2]\nheads = [1, 3]\npositions = [\"S2\", 0, -1, \"last\"]\n\
         direction = \"noising\"\nposition = \"END\"\nsummary = false\n",
        )
    );
    assert_eq!(p.site, Site::Z);
    assert_eq!(p.layers, Some(vec![0, 2]));
    assert_eq!(p.heads, HeadSweep::List(vec![1, 3]));
    assert_eq!(
        p.positions,
        PositionSweepSpec::List(vec![
            PositionSpec::Named("S2".into()),
            PositionSpec::Index(0),
            PositionSpec::Index(-1),
            PositionSpec::Last
        ])
    );
    assert_eq!(p.direction, Direction::Noising);
    assert_eq!(p.position, PositionSpec::Named("END".into()));
    assert!(!p.summary);

    for (text, want) in [
        ("\"each\"", PositionSweepSpec::Each),
        ("\"all\"", PositionSweepSpec::All),
        (
            "\"END\"",
            PositionSweepSpec::List(vec![PositionSpec::Named("END".into())]),
        ),
        ("3", PositionSweepSpec::List(vec![PositionSpec::Index(3)])),
    ] {
        let p = common::unwrap_variant!(
            AnalysisParams::ActivationPatching,
            ioi_params("activation_patching", &format!("positions = {text}\n"),)
        );
        assert_eq!(p.positions, want, "{text}");
    }
    let p = common::unwrap_variant!(
        AnalysisParams::ActivationPatching,
        ioi_params(
            "activation_patching",
            "site = \"pattern\"\nheads = \"all\"\n",
        )
    );
    assert_eq!((p.site, p.heads), (Site::Pattern, HeadSweep::All));
}

#[test]
fn every_site_parses() {
    for site in Site::ALL {
        let p = common::unwrap_variant!(
            AnalysisParams::ActivationPatching,
            ioi_params("activation_patching", &format!("site = \"{site}\"\n"))
        );
        assert_eq!(p.site, site);
    }
}

#[test]
fn activation_patching_errors() {
    assert_ioi_errors(
        "activation_patching",
        &[
            ("site = \"resid\"\n", "resid_pre"),
            (
                "site = \"resid_pre\"\nheads = [0]\n",
                "site `resid_pre` has no heads",
            ),
            ("site = \"z\"\nheads = [1, 1]\n", "lists `1` twice"),
            ("positions = []\n", "empty list"),
            ("positions = [\"S3\"]\n", "no named position `S3`"),
            ("position = \"EDN\"\n", "did you mean `END`?"),
            ("direction = \"forward\"\n", "denoising"),
        ],
    );
    let e =
        error("[analyses.a]\nkind = \"activation_patching\"\nmodel = \"toy\"\ndataset = \"ioi\"\n");
    assert!(e.contains("missing required key `metric`"), "{e}");
    let e = error(
        "[analyses.a]\nkind = \"activation_patching\"\nmodel = \"toy\"\ndataset = \"rep\"\nmetric = \"loss\"\n",
    );
    assert!(
        e.contains("needs clean/corrupt prompt pairs, but dataset `rep` (repeated_tokens) has no corrupt prompts"),
        "{e}"
    );
    let e = error(&ioi(
        "activation_patching",
        "metric = { logit_diff = [\"IO\", \"IO\"] }\n",
    ));
    assert!(e.contains("duplicate key") || e.contains("always 0"), "{e}");
}

#[test]
fn ablation_defaults_values_and_seed() {
    let text = "[analyses.a]\nkind = \"ablation\"\nmodel = \"toy\"\ndataset = \"rep\"\nmetric = \"loss\"\n";
    let p = common::unwrap_variant!(AnalysisParams::Ablation, params(text));
    assert_eq!(p.units, AblationUnits::Heads);
    assert_eq!(p.method, AblationMethodSpec::Zero);
    assert_eq!(p.reference, None);
    assert_eq!(p.mean_over, MeanOver::Prompts);
    assert_eq!((p.layers, p.heads, p.neurons), (None, None, None));
    assert_eq!(p.positions, PositionSweepSpec::All);
    assert_eq!(p.seed, None, "only resample ablation takes a seed");
    assert_eq!(p.metric.measure, Measure::Loss);

    // Resample ablation derives its seed from the experiment's seed and the analysis's name.
    let resample = |name: &str, seed: u64| {
        let text = format!(
            "seed = {seed}\n[models.toy]\npath = \"m\"\n[datasets.rep]\ngenerator = \"repeated_tokens\"\n\
             n = 4\nlength = 5\n[analyses.{name}]\nkind = \"ablation\"\nmodel = \"toy\"\n\
             dataset = \"rep\"\nmetric = \"loss\"\nmethod = \"resample\"\n"
        );
        let e = Experiment::from_str(&text, "r.toml").unwrap_or_else(|e| panic!("{e}"));
        let p = common::unwrap_variant!(AnalysisParams::Ablation, e.analyses[name].params.clone());
        p.seed.expect("derived seed")
    };
    assert_eq!(resample("a", 0), resample("a", 0));
    assert_ne!(resample("a", 0), resample("a", 1));
    assert_ne!(resample("a", 0), resample("b", 0));
    let p = common::unwrap_variant!(
        AnalysisParams::Ablation,
        params(
            "[analyses.a]\nkind = \"ablation\"\nmodel = \"toy\"\ndataset = \"rep\"\nmetric = \"loss\"\n\
         method = \"resample\"\nseed = 7\n",
        )
    );
    assert_eq!(p.seed, Some(7));

    let p = common::unwrap_variant!(
        AnalysisParams::Ablation,
        ioi_params(
            "ablation",
            "units = \"neurons\"\nneurons = [3, 1]\nlayers = [1]\nmethod = \"mean\"\n\
         reference = \"pairs\"\nmean_over = \"prompts_and_positions\"\npositions = \"each\"\n\
         position = \"END\"\n",
        )
    );
    assert_eq!(p.units, AblationUnits::Neurons);
    assert_eq!(p.neurons, Some(vec![3, 1]));
    assert_eq!(p.method, AblationMethodSpec::Mean);
    assert_eq!(p.reference.as_deref(), Some("pairs"));
    assert_eq!(p.mean_over, MeanOver::PromptsAndPositions);
    assert_eq!(p.positions, PositionSweepSpec::Each);
}

#[test]
fn ablation_errors() {
    let base = "[analyses.a]\nkind = \"ablation\"\nmodel = \"toy\"\ndataset = \"rep\"\nmetric = \"loss\"\n";
    let e = error(&format!("{base}method = \"mean\"\nreference = \"rpe\"\n"));
    assert!(
        e.contains("no dataset `rpe`") && e.contains("did you mean `rep`?"),
        "{e}"
    );
    common::assert_errors_contain(
        error,
        [
            ("reference = \"rep\"\n", "`method` is \"zero\""),
            ("units = \"mlps\"\nheads = [0]\n", "`units` is \"mlps\""),
            ("neurons = [0]\n", "set units = \"neurons\""),
            ("seed = 3\n", "set method = \"resample\""),
            ("units = \"attention\"\n", "heads"),
            (
                "method = \"mean\"\nmean_over = \"everything\"\n",
                "prompts_and_positions",
            ),
        ]
        .map(|(extra, expected)| (format!("{base}{extra}"), expected)),
    );
    let e = error(
        "[analyses.a]\nkind = \"ablation\"\nmodel = \"toy\"\ndataset = \"rep\"\nmetric = { loss = true, normalize = true }\n",
    );
    assert!(e.contains("no corrupt run to normalize against"), "{e}");
}

#[test]
fn path_patching_defaults_and_values() {
    let p = common::unwrap_variant!(
        AnalysisParams::PathPatching,
        ioi_params("path_patching", "")
    );
    assert_eq!(p.senders, Senders::All);
    assert!(!p.together);
    assert_eq!(p.receivers, Receivers::Logits);
    assert_eq!(p.direction, Direction::Noising);
    assert!(p.freeze_mlps);

    let p = common::unwrap_variant!(
        AnalysisParams::PathPatching,
        ioi_params(
            "path_patching",
            "senders = [{ layer = 0, head = 1 }, { mlp = 1 }]\ntogether = true\n\
         receivers = [{ layer = 3, head = 2, input = \"q\" }, { layer = 2, head = 0, input = \"v\" }]\n\
         direction = \"denoising\"\nfreeze_mlps = false\nposition = \"END\"\n",
        )
    );
    assert_eq!(
        p.senders,
        Senders::List(vec![
            SenderRef::Head { layer: 0, head: 1 },
            SenderRef::Mlp { layer: 1 }
        ])
    );
    assert!(p.together);
    assert_eq!(
        p.receivers,
        Receivers::Heads(vec![
            ReceiverRef {
                layer: 3,
                head: 2,
                input: HeadInput::Q
            },
            ReceiverRef {
                layer: 2,
                head: 0,
                input: HeadInput::V
            }
        ])
    );
    assert_eq!(p.direction, Direction::Denoising);
    assert!(!p.freeze_mlps);
    // One table is a list of one.
    let p = common::unwrap_variant!(
        AnalysisParams::PathPatching,
        ioi_params(
            "path_patching",
            "senders = { layer = 0, head = 1 }\nreceivers = { layer = 1, head = 0, input = \"k\" }\n",
        )
    );
    assert_eq!(
        p.senders,
        Senders::List(vec![SenderRef::Head { layer: 0, head: 1 }])
    );
    assert!(matches!(p.receivers, Receivers::Heads(ref r) if r.len() == 1));
}

#[test]
fn path_patching_errors() {
    assert_ioi_errors(
        "path_patching",
        &[
            (
                "senders = [{ layer = 0 }]\n",
                "needs `head` as well as `layer`",
            ),
            ("senders = \"heads\"\n", "all"),
            ("receivers = \"logit\"\n", "did you mean `logits`?"),
            (
                "receivers = [{ layer = 1, head = 0, input = \"o\" }]\n",
                "`o`",
            ),
            (
                "senders = [{ layer = 2, head = 0 }]\nreceivers = [{ layer = 2, head = 0, input = \"q\" }]\n",
                "sender L2H0 cannot reach any receiver",
            ),
            (
                "senders = [{ layer = 0, head = 0 }, { layer = 0, head = 0 }]\n",
                "lists `L0H0` twice",
            ),
        ],
    );
}

#[test]
fn attribution_patching_defaults_and_values() {
    let p = common::unwrap_variant!(
        AnalysisParams::AttributionPatching,
        ioi_params("attribution_patching", "")
    );
    assert_eq!(p.sites, vec![Site::ResidPre, Site::Z]);
    assert_eq!(p.layers, None);
    assert!(p.per_position);
    assert_eq!(p.direction, Direction::Denoising);
    let p = common::unwrap_variant!(
        AnalysisParams::AttributionPatching,
        ioi_params(
            "attribution_patching",
            "sites = [\"attn_out\", \"mlp_out\", \"k\"]\nlayers = [1]\nper_position = false\n\
         direction = \"noising\"\n",
        )
    );
    assert_eq!(p.sites, vec![Site::AttnOut, Site::MlpOut, Site::K]);
    assert!(!p.per_position);
    assert_eq!(p.direction, Direction::Noising);
    assert_ioi_errors(
        "attribution_patching",
        &[
            ("sites = [\"z\", \"z\"]\n", "lists `z` twice"),
            ("sites = []\n", "empty list"),
        ],
    );
}

#[test]
fn edge_attribution_patching_defaults_and_values() {
    let p = common::unwrap_variant!(
        AnalysisParams::EdgeAttributionPatching,
        ioi_params("edge_attribution_patching", "")
    );
    assert_eq!(p.method, EapMethod::Eap);
    assert_eq!((p.ig_steps, p.top_n, p.threshold), (None, None, None));
    assert_eq!(p.steps(), 1);
    assert_eq!(p.direction, Direction::Noising);
    let p = common::unwrap_variant!(
        AnalysisParams::EdgeAttributionPatching,
        ioi_params(
            "edge_attribution_patching",
            "method = \"eap_ig\"\nig_steps = 3\nthreshold = 0.05\ndirection = \"denoising\"\n",
        )
    );
    assert_eq!(p.method, EapMethod::EapIg);
    assert_eq!(p.steps(), 3);
    assert_eq!(p.threshold, Some(0.05));
    let p = common::unwrap_variant!(
        AnalysisParams::EdgeAttributionPatching,
        ioi_params(
            "edge_attribution_patching",
            "method = \"eap_ig\"\ntop_n = 20\n",
        )
    );
    assert_eq!((p.steps(), p.top_n), (5, Some(20)));

    assert_ioi_errors(
        "edge_attribution_patching",
        &[
            ("ig_steps = 3\n", "set method = \"eap_ig\""),
            (
                "method = \"eap_ig\"\nig_steps = 0\n",
                "must be greater than 0",
            ),
            (
                "top_n = 5\nthreshold = 0.1\n",
                "either `top_n` or `threshold`",
            ),
            ("threshold = -1.0\n", "must not be negative"),
            ("method = \"acdc\"\n", "eap_ig"),
        ],
    );
}

#[test]
fn every_intervention_kind_needs_corrupt_prompts_except_ablation() {
    for kind in [
        "activation_patching",
        "path_patching",
        "attribution_patching",
        "edge_attribution_patching",
    ] {
        let e = error(&format!(
            "[analyses.a]\nkind = \"{kind}\"\nmodel = \"toy\"\ndataset = \"rep\"\nmetric = \"kl\"\n"
        ));
        assert!(
            e.contains(&format!("`{kind}` needs clean/corrupt prompt pairs")),
            "{e}"
        );
        assert!(
            e.contains("corrupt_tokens"),
            "{kind}: the hint names the ways out: {e}"
        );
        // Inline token pairs are enough.
        load(&format!(
            "[analyses.a]\nkind = \"{kind}\"\nmodel = \"toy\"\ndataset = \"pairs\"\n\
             metric = {{ logit_diff = [{{ id = 5 }}, {{ id = 7 }}] }}\n"
        ))
        .unwrap_or_else(|e| panic!("{kind}: {e}"));
    }
    load(
        "[analyses.a]\nkind = \"ablation\"\nmodel = \"toy\"\ndataset = \"rep\"\nmetric = \"loss\"\n",
    )
    .unwrap();
}

#[test]
fn resolved_forms_round_trip() {
    let text = format!(
        "{}{}{}{}{}",
        ioi(
            "activation_patching",
            "site = \"z\"\nheads = 2\npositions = \"S2\"\n"
        ),
        "[analyses.b]\nkind = \"ablation\"\nmodel = \"toy\"\ndataset = \"rep\"\nmetric = \"loss\"\nmethod = \"resample\"\n",
        ioi("path_patching", "senders = { mlp = 0 }\n").replace("analyses.a", "analyses.c"),
        ioi("attribution_patching", "").replace("analyses.a", "analyses.d"),
        ioi("edge_attribution_patching", "method = \"eap_ig\"\n")
            .replace("analyses.a", "analyses.e"),
    );
    let e = load(&text).unwrap_or_else(|e| panic!("{e}"));
    let again = Experiment::from_str(&e.resolved_toml(), "kinds.toml")
        .unwrap_or_else(|err| panic!("{}\n{err}", e.resolved_toml()));
    assert_eq!(again.hashes(), e.hashes());
    let json = e.resolved_json();
    assert_eq!(json["analyses"]["a"]["heads"], serde_json::json!([2]));
    assert_eq!(
        json["analyses"]["a"]["positions"],
        serde_json::json!(["S2"])
    );
    assert!(
        json["analyses"]["b"]["seed"].is_u64(),
        "the derived seed is part of the config"
    );
    assert_eq!(
        json["analyses"]["c"]["senders"],
        serde_json::json!([{ "mlp": 0 }])
    );
    assert_eq!(json["analyses"]["c"]["receivers"], "logits");
}

#[test]
fn listing_documents_every_parameter() {
    for kind in [
        "activation_patching",
        "ablation",
        "path_patching",
        "attribution_patching",
        "edge_attribution_patching",
    ] {
        let info = analysis_kind(kind).unwrap_or_else(|| panic!("{kind} is not listed"));
        assert!(!info.summary.is_empty(), "{kind}");
        for p in &info.params {
            assert!(
                !p.description.is_empty(),
                "{kind}.{} has no description",
                p.name
            );
        }
        let metric = info.params.iter().find(|p| p.name == "metric").unwrap();
        assert!(metric.required, "{kind}: metric is required");
    }
    let info = analysis_kind("activation_patching").unwrap();
    let site = info.params.iter().find(|p| p.name == "site").unwrap();
    assert!(
        site.type_name.contains("\"resid_pre\""),
        "{}",
        site.type_name
    );
    assert_eq!(site.default.as_deref(), Some("\"resid_pre\""));
    let dir = info.params.iter().find(|p| p.name == "direction").unwrap();
    assert_eq!(dir.default.as_deref(), Some("\"denoising\""));
    let info = analysis_kind("path_patching").unwrap();
    let dir = info.params.iter().find(|p| p.name == "direction").unwrap();
    assert_eq!(dir.default.as_deref(), Some("\"noising\""));
}
