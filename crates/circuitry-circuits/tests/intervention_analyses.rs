//! The causal-intervention analyses (`activation_patching`, `ablation`, `path_patching`,
//! `attribution_patching`, `edge_attribution_patching`) built from experiment-file text and
//! driven through the `Analysis` trait with a `MemorySink` on the tiny GPT-2 and Llama
//! fixtures: the patching tables against TransformerLens (`processed.patch_resid_pre`,
//! `processed.patch_head_z_all_pos`, 1e-4), ablations against hand-made edits, and every wrapper
//! against a direct call of the intervention library.

use crate::analysis_common::*;
use crate::iv_common;
use circuitry_circuits::analyses::build;

use circuitry_circuits::analysis::{Analysis, AnalysisError, BatchContext};
use circuitry_circuits::interventions::{
    self, AttributionConfig, EapConfig, PathPatchingConfig, Receiver, Sender, attribution_patching,
    eap, path_patching,
};
use circuitry_circuits::table::{MemorySink, Table};
use circuitry_data::Prompt;
use circuitry_models::{
    Edit, EditOp, HookKind, HookPoint, Intervention, LoadedModel, PaddingSide, Selection, Span,
    TokenBatch,
};
use circuitry_spec::AnalysisSpec;
use iv_common::{MODELS, context, fixture_pair, load_reference, loaded as model, random_pairs};

const ATOL: f64 = 1e-4;

/// `[analyses.a]` with `body` on the dataset `pairs` (inline tokens with corrupt tokens, the
/// answers as ids), as the spec parses and validates it.
fn spec(body: &str) -> AnalysisSpec {
    let text = format!(
        "seed = 11\n[models.m]\npath = \"m\"\n[datasets.pairs]\ntokens = [[1, 2, 3]]\n\
         corrupt_tokens = [[1, 2, 4]]\n[analyses.a]\nmodel = \"m\"\ndataset = \"pairs\"\n{body}\n"
    );
    analysis_a(&text)
}

const METRIC: &str = "metric = { logit_diff = [{ id = 5 }, { id = 7 }] }";

fn analysis(body: &str, m: &LoadedModel) -> Box<dyn Analysis> {
    built(&spec(body), m)
}

/// Runs `prompts` through the runner's shared clean pass (capturing `hooks`) in batches of
/// `batch_size`, calling `f` on each.
fn each_batch(
    m: &LoadedModel,
    prompts: &[Prompt],
    batch_size: usize,
    hooks: &std::collections::BTreeSet<HookPoint>,
    mut f: impl FnMut(&BatchContext),
) {
    let device = m.model.device();
    for chunk in prompts.chunks(batch_size) {
        let rows: Vec<Vec<u32>> = chunk.iter().map(|p| p.tokens.clone()).collect();
        let clean = TokenBatch::new(&rows, 0, PaddingSide::Right, &device);
        let out = m.model.forward(
            &clean,
            &Intervention::capture(hooks.iter().copied()),
            Span::default(),
        );
        f(&BatchContext {
            prompts: chunk,
            clean: &clean,
            clean_output: &out,
            corrupt: None,
        });
    }
}

/// Feeds an analysis its prepass (over `reference`) and `prompts`, as the runner does; returns
/// what it wrote.
fn run(
    a: &mut dyn Analysis,
    m: &LoadedModel,
    reference: &[Prompt],
    prompts: &[Prompt],
    batch_size: usize,
) -> MemorySink {
    let ctx = context(m);
    if let Some(pre) = a.prepass() {
        each_batch(m, reference, batch_size, &pre.hooks, |b| {
            a.absorb(&ctx, b).unwrap_or_else(|e| panic!("{e}"))
        });
    }
    let mut sink = MemorySink::default();
    let req = a.requirements();
    assert!(
        req.dataset && !req.corrupt_run,
        "runs its own corrupt passes"
    );
    each_batch(m, prompts, batch_size, &req.hooks, |b| {
        a.process(&ctx, b, &mut sink)
            .unwrap_or_else(|e| panic!("{e}"))
    });
    a.finish(&ctx, &mut sink).unwrap_or_else(|e| panic!("{e}"));
    check_declared(a, &sink);
    sink
}

/// Every chunk of one table, concatenated.
fn table(sink: &MemorySink, part: Option<&str>) -> Table {
    sink.part(part)
        .unwrap_or_else(|| panic!("no table {part:?}"))
}

/// logit(5) - logit(7) at the last position of one prompt with `edits` applied.
fn metric_with(m: &LoadedModel, tokens: &[u32], edits: Vec<Edit>) -> f64 {
    let batch = TokenBatch::unpadded(&[tokens.to_vec()], &m.model.device());
    let logits = m.model.forward(
        &batch,
        &Intervention::default().with_edits(edits),
        Span::default(),
    );
    let v = iv_common::values(logits.logits.unwrap());
    let d = m.model.config.d_vocab;
    let last = (tokens.len() - 1) * d;
    f64::from(v[last + 5] - v[last + 7])
}

#[test]
fn patching_tables_match_transformer_lens() {
    for name in MODELS {
        let m = model(name);
        let reference = load_reference(name);
        let prompt = fixture_pair(&reference);
        let (l, h, t) = (
            m.model.config.n_layers,
            m.model.config.n_heads,
            prompt.len(),
        );
        let prompts = std::slice::from_ref(&prompt);

        let mut a = analysis(
            &format!(
                "kind = \"activation_patching\"\nsite = \"resid_pre\"\npositions = \"each\"\n{METRIC}"
            ),
            &m,
        );
        let sink = run(a.as_mut(), &m, &[], prompts, 8);
        let main = table(&sink, None);
        assert_eq!(main.len(), l * t, "{name}");
        let want = &reference["processed.patch_resid_pre"];
        let (layer, pos, metric) = (
            ints(&main, "layer"),
            ints(&main, "position"),
            f64s(&main, "metric"),
        );
        for i in 0..main.len() {
            let w = f64::from(want.f32[layer[i] * t + pos[i]]);
            assert!(
                (metric[i] - w).abs() < ATOL,
                "{name} resid_pre L{} pos {}: {} vs TransformerLens {w}",
                layer[i],
                pos[i],
                metric[i]
            );
        }
        let clean = f64::from(reference["processed.patch_metric_clean"].f32[0]);
        let corrupt = f64::from(reference["processed.patch_metric_corrupt"].f32[0]);
        assert!(
            f64s(&main, "metric_clean")
                .iter()
                .all(|c| (c - clean).abs() < ATOL)
        );
        assert!(
            f64s(&main, "metric_corrupt")
                .iter()
                .all(|c| (c - corrupt).abs() < ATOL)
        );
        // At layer 0 (the embeddings) patching a position whose token the corruption left alone
        // changes nothing.
        let corrupt_tokens = prompt.corrupt_tokens.clone().unwrap();
        for i in 0..main.len() {
            if layer[i] == 0 && prompt.tokens[pos[i]] == corrupt_tokens[pos[i]] {
                assert!(
                    (metric[i] - corrupt).abs() < ATOL,
                    "{name}: position {}",
                    pos[i]
                );
            }
        }
        // One prompt: the summary is the table itself.
        let summary = table(&sink, Some("summary"));
        assert_eq!(summary.len(), main.len());
        assert_eq!(f64s(&summary, "metric"), metric);
        assert_eq!(ints(&summary, "n_prompts"), vec![1; main.len()]);

        let mut a = analysis(
            &format!("kind = \"activation_patching\"\nsite = \"z\"\n{METRIC}"),
            &m,
        );
        let sink = run(a.as_mut(), &m, &[], prompts, 8);
        let main = table(&sink, None);
        assert_eq!(main.len(), l * h);
        let want = &reference["processed.patch_head_z_all_pos"];
        let (layer, head, metric) = (
            ints(&main, "layer"),
            ints(&main, "head"),
            f64s(&main, "metric"),
        );
        for i in 0..main.len() {
            let w = f64::from(want.f32[layer[i] * h + head[i]]);
            assert!(
                (metric[i] - w).abs() < ATOL,
                "{name} z L{}H{}: {} vs TransformerLens {w}",
                layer[i],
                head[i],
                metric[i]
            );
        }
        assert!(opt_ints(&main, "position").iter().all(Option::is_none));
        assert!(
            strings(&main, "site")
                .iter()
                .all(|s| s.as_deref() == Some("z"))
        );
    }
}

#[test]
fn patching_positions_heads_and_batches() {
    let m = model("llama-tiny");
    let prompts = random_pairs(5, 3);
    let config = &m.model.config;
    // Named, indexed and from-the-end positions, chosen key/value heads, noising; batches of 2
    // give the same rows as one batch of 5.
    let body = format!(
        "kind = \"activation_patching\"\nsite = \"v\"\nheads = [1]\nlayers = [1]\n\
         positions = [\"last\", 0, -2]\ndirection = \"noising\"\n{METRIC}"
    );
    let one = table(
        &run(analysis(&body, &m).as_mut(), &m, &[], &prompts, 5),
        None,
    );
    let two = table(
        &run(analysis(&body, &m).as_mut(), &m, &[], &prompts, 2),
        None,
    );
    assert_eq!(one.len(), 5 * 3);
    let (a, b) = (f64s(&one, "metric"), f64s(&two, "metric"));
    let mut pa: Vec<_> = ints(&one, "prompt")
        .into_iter()
        .zip(strings(&one, "position_name"))
        .zip(a)
        .collect();
    let mut pb: Vec<_> = ints(&two, "prompt")
        .into_iter()
        .zip(strings(&two, "position_name"))
        .zip(b)
        .collect();
    pa.sort_by(|x, y| x.0.cmp(&y.0));
    pb.sort_by(|x, y| x.0.cmp(&y.0));
    for (x, y) in pa.iter().zip(&pb) {
        assert_eq!(x.0, y.0);
        assert!((x.1 - y.1).abs() < 1e-5, "{x:?} vs {y:?}");
    }
    let names = strings(&one, "position_name");
    assert!(names.contains(&Some("last".into())) && names.contains(&Some("-2".into())));
    let prompt = ints(&one, "prompt");
    let pos = ints(&one, "position");
    for i in 0..one.len() {
        let len = prompts[prompt[i]].len();
        match names[i].as_deref() {
            Some("last") => assert_eq!(pos[i], len - 1),
            Some("-2") => assert_eq!(pos[i], len - 2),
            None => assert_eq!(pos[i], 0),
            other => panic!("{other:?}"),
        }
    }
    assert!(ints(&one, "head").iter().all(|&h| h == 1));
    assert!(
        strings(&one, "direction")
            .iter()
            .all(|d| d.as_deref() == Some("noising"))
    );

    // The summary averages over prompts: one row per (position) here.
    let sink = run(analysis(&body, &m).as_mut(), &m, &[], &prompts, 2);
    let summary = table(&sink, Some("summary"));
    assert_eq!(summary.len(), 3);
    assert_eq!(ints(&summary, "n_prompts"), vec![5, 5, 5]);

    // Out-of-range heads are errors at `heads` before anything runs (k/v count kv heads).
    let err = build(
        &spec(&format!(
            "kind = \"activation_patching\"\nsite = \"k\"\nheads = [{}]\n{METRIC}",
            config.n_kv_heads
        )),
        config,
    )
    .err()
    .expect("head out of range");
    assert_eq!(err.key.as_deref(), Some("heads"));
    assert!(
        err.message.contains("key/value head 2 does not exist"),
        "{}",
        err.message
    );
    let err = build(
        &spec(&format!(
            "kind = \"activation_patching\"\nlayers = [7]\n{METRIC}"
        )),
        config,
    )
    .err()
    .unwrap();
    assert_eq!(err.key.as_deref(), Some("layers"));
    let mut attn_only = config.clone();
    attn_only.attn_only = true;
    let err = build(
        &spec(&format!(
            "kind = \"activation_patching\"\nsite = \"mlp_out\"\n{METRIC}"
        )),
        &attn_only,
    )
    .err()
    .unwrap();
    assert_eq!(err.key.as_deref(), Some("site"));
}

#[test]
fn zero_ablation_of_a_head_is_patching_its_z_with_zeros() {
    for name in MODELS {
        let m = model(name);
        let prompts = random_pairs(3, 5);
        let mut a = analysis(
            &format!(
                "kind = \"ablation\"\nunits = \"heads\"\nlayers = [1]\nheads = [0, 2]\n{METRIC}"
            ),
            &m,
        );
        let t = table(&run(a.as_mut(), &m, &[], &prompts, 2), None);
        assert_eq!(t.len(), 3 * 2);
        let (prompt, head, metric, base) = (
            ints(&t, "prompt"),
            ints(&t, "head"),
            f64s(&t, "metric"),
            f64s(&t, "metric_baseline"),
        );
        for i in 0..t.len() {
            let tokens = &prompts[prompt[i]].tokens;
            let want = metric_with(
                &m,
                tokens,
                vec![
                    Edit::new(
                        HookPoint::layer(1, HookKind::Z),
                        Selection::heads(vec![head[i]]),
                        EditOp::Zero,
                    )
                    .unwrap(),
                ],
            );
            assert!(
                (metric[i] - want).abs() < ATOL,
                "{name}: {} vs {want}",
                metric[i]
            );
            assert!((base[i] - metric_with(&m, tokens, vec![])).abs() < ATOL);
        }
        assert!(
            strings(&t, "method")
                .iter()
                .all(|s| s.as_deref() == Some("zero"))
        );
        assert!(strings(&t, "unit").contains(&Some("L1H2".into())));
    }
}

#[test]
fn neuron_steering_scales_or_sets_the_neuron_as_a_hand_made_edit() {
    for name in MODELS {
        let m = model(name);
        let prompts = random_pairs(3, 6);
        let neurons = "units = \"neurons\"\nlayers = [0]\nneurons = [3, 40]";
        let sweep = |method: &str| {
            let body = format!("kind = \"ablation\"\n{neurons}\n{method}\n{METRIC}");
            let mut a = analysis(&body, &m);
            assert!(a.prepass().is_none(), "steering needs no reference pass");
            table(&run(a.as_mut(), &m, &[], &prompts, 2), None)
        };
        let (tripled, zero) = (sweep("method = \"scale\"\nfactor = 3.0"), sweep(""));
        let (prompt, neuron, metric) = (
            ints(&tripled, "prompt"),
            ints(&tripled, "neuron"),
            f64s(&tripled, "metric"),
        );
        assert_eq!(tripled.len(), 3 * 2);
        assert!(
            strings(&tripled, "method")
                .iter()
                .all(|s| s.as_deref() == Some("scale"))
        );
        for i in 0..tripled.len() {
            let edit = |op| {
                let mut sel = Selection::all();
                sel.features = Some(vec![neuron[i]]);
                Edit::new(HookPoint::layer(0, HookKind::MlpPost), sel, op).unwrap()
            };
            let want = metric_with(
                &m,
                &prompts[prompt[i]].tokens,
                vec![edit(EditOp::Scale(3.0))],
            );
            assert!(
                (metric[i] - want).abs() < ATOL,
                "{name}: {} vs {want}",
                metric[i]
            );
        }
        // Scaling by 0 and setting to 0 are zero ablation; scaling by 1 changes nothing.
        for method in [
            "method = \"scale\"\nfactor = 0.0",
            "method = \"set\"\nvalue = 0.0",
        ] {
            let t = sweep(method);
            for (a, b) in f64s(&t, "metric").iter().zip(f64s(&zero, "metric")) {
                assert!((a - b).abs() < ATOL, "{name} {method}: {a} vs {b}");
            }
        }
        assert!(
            f64s(&sweep("method = \"scale\"\nfactor = 1.0"), "delta")
                .iter()
                .all(|d| d.abs() < ATOL)
        );
        // Setting a neuron to a large value moves the metric.
        let clamped = sweep("method = \"set\"\nvalue = 20.0");
        assert!(
            f64s(&clamped, "delta").iter().any(|d| d.abs() > 1e-3),
            "{name}"
        );
    }
}

#[test]
fn mean_ablation_over_the_prompt_itself_changes_nothing() {
    for name in MODELS {
        let m = model(name);
        let prompts = random_pairs(1, 9);
        for units in ["heads", "mlps", "residual"] {
            let mut a = analysis(
                &format!("kind = \"ablation\"\nunits = \"{units}\"\nmethod = \"mean\"\n{METRIC}"),
                &m,
            );
            let pre = a
                .prepass()
                .expect("mean ablation reads a reference dataset");
            assert_eq!(
                pre.dataset, "pairs",
                "defaults to the analysis's own dataset"
            );
            assert!(!pre.hooks.is_empty());
            let t = table(&run(a.as_mut(), &m, &prompts, &prompts, 1), None);
            assert!(!t.is_empty());
            for d in f64s(&t, "delta") {
                assert!(d.abs() < ATOL, "{name} {units}: delta {d}");
            }
        }
        // A different reference does change things.
        let other = random_pairs(2, 10);
        let mut a = analysis(
            &format!(
                "kind = \"ablation\"\nunits = \"residual\"\nlayers = [0]\nmethod = \"mean\"\n{METRIC}"
            ),
            &m,
        );
        let t = table(&run(a.as_mut(), &m, &other, &prompts, 1), None);
        assert!(f64s(&t, "delta")[0].abs() > 1e-3, "{name}");
    }
}

#[test]
fn resample_ablation_is_reproducible_and_takes_the_donors_activations() {
    let m = model("gpt2-tiny");
    // Equal lengths: resampling the whole residual stream before block 0 runs the donor.
    let prompts: Vec<Prompt> = random_pairs(4, 21)
        .into_iter()
        .enumerate()
        .map(|(i, mut p)| {
            p.tokens.truncate(6);
            p.corrupt_tokens = p.corrupt_tokens.map(|mut c| {
                c.truncate(6);
                c
            });
            p.id = i as u32;
            p
        })
        .collect();
    let body = |seed: u64| {
        format!(
            "kind = \"ablation\"\nunits = \"residual\"\nlayers = [0]\nmethod = \"resample\"\nseed = {seed}\n{METRIC}"
        )
    };
    let go = |seed: u64, batch: usize| {
        let mut a = analysis(&body(seed), &m);
        assert_eq!(
            a.prepass().expect("collects the donor pool").dataset,
            "pairs"
        );
        table(&run(a.as_mut(), &m, &prompts, &prompts, batch), None)
    };
    let (t1, t2, t3) = (go(7, 4), go(7, 4), go(7, 3));
    assert_eq!(
        f64s(&t1, "metric"),
        f64s(&t2, "metric"),
        "same seed, same table"
    );
    let close = f64s(&t1, "metric")
        .iter()
        .zip(f64s(&t3, "metric"))
        .all(|(a, b)| (a - b).abs() < 1e-5);
    assert!(close, "donors do not depend on the batch size");
    let donors = interventions::resample_donors(4, 7);
    let (prompt, metric) = (ints(&t1, "prompt"), f64s(&t1, "metric"));
    for i in 0..t1.len() {
        let donor = &prompts[donors[prompt[i]]].tokens;
        let want = metric_with(&m, donor, vec![]);
        assert!(
            (metric[i] - want).abs() < ATOL,
            "{} vs donor {want}",
            metric[i]
        );
        assert_ne!(donors[prompt[i]], prompt[i]);
    }
}

#[test]
fn path_patching_and_attribution_match_the_library() {
    for name in MODELS {
        let m = model(name);
        let prompts = random_pairs(3, 2);
        let padding = interventions::Padding {
            pad_id: circuitry_data::pad_id(m.tokenizer.as_ref().unwrap()),
            side: PaddingSide::Right,
        };
        let metric = interventions::Metric::logit_diff_ids(5, 7);
        let (l, h) = (m.model.config.n_layers, m.model.config.n_heads);

        let mut a = analysis(&format!("kind = \"path_patching\"\n{METRIC}"), &m);
        let t = table(&run(a.as_mut(), &m, &[], &prompts, 3), None);
        assert_eq!(t.len(), 3 * l * h);
        let senders = Sender::every_head(&m.model, l);
        let want = path_patching(
            &m.model,
            &prompts,
            padding,
            &PathPatchingConfig::new(senders, vec![Receiver::Logits], metric.clone()),
        )
        .unwrap();
        let got = f64s(&t, "metric");
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w.metric).abs() < 1e-6);
        }
        assert!(
            strings(&t, "direction")
                .iter()
                .all(|d| d.as_deref() == Some("noising"))
        );

        // Head receivers: only senders before the receiver's layer.
        let mut a = analysis(
            &format!(
                "kind = \"path_patching\"\nreceivers = [{{ layer = 1, head = 0, input = \"v\" }}]\nfreeze_mlps = false\n{METRIC}"
            ),
            &m,
        );
        let t = table(&run(a.as_mut(), &m, &[], &prompts, 3), None);
        assert_eq!(t.len(), 3 * h);
        assert!(ints(&t, "layer").iter().all(|&x| x == 0));
        assert!(
            strings(&t, "receivers")
                .iter()
                .all(|r| r.as_deref() == Some("L1H0.v"))
        );

        // Senders together form one unit.
        let mut a = analysis(
            &format!(
                "kind = \"path_patching\"\nsenders = [{{ layer = 0, head = 1 }}, {{ mlp = 0 }}]\ntogether = true\n{METRIC}"
            ),
            &m,
        );
        let t = table(&run(a.as_mut(), &m, &[], &prompts, 3), None);
        assert_eq!(t.len(), 3);
        assert!(
            strings(&t, "sender")
                .iter()
                .all(|s| s.as_deref() == Some("L0H1+MLP0"))
        );

        let err = build(
            &spec(&format!("kind = \"path_patching\"\nreceivers = [{{ layer = 1, head = {h}, input = \"q\" }}]\n{METRIC}")),
            &m.model.config,
        )
        .err()
        .unwrap();
        assert_eq!(err.key.as_deref(), Some("receivers"));

        let mut a = analysis(
            &format!(
                "kind = \"attribution_patching\"\nsites = [\"resid_pre\", \"z\", \"mlp_out\"]\n{METRIC}"
            ),
            &m,
        );
        let t = table(&run(a.as_mut(), &m, &[], &prompts, 2), None);
        let mut want = Vec::new();
        for chunk in prompts.chunks(2) {
            want.extend(
                attribution_patching(
                    &m.model,
                    chunk,
                    padding,
                    &AttributionConfig::new(
                        vec![HookKind::ResidPre, HookKind::Z, HookKind::MlpOut],
                        metric.clone(),
                    ),
                )
                .unwrap(),
            );
        }
        assert_eq!(t.len(), want.len());
        for (g, w) in f64s(&t, "attribution").iter().zip(&want) {
            assert!((g - w.attribution).abs() < 1e-6);
        }
    }
}

#[test]
fn eap_merges_batches_and_extracts_the_circuit() {
    for name in MODELS {
        let m = model(name);
        let prompts = random_pairs(4, 8);
        let padding = interventions::Padding {
            pad_id: circuitry_data::pad_id(m.tokenizer.as_ref().unwrap()),
            side: PaddingSide::Right,
        };
        let mut a = analysis(
            &format!("kind = \"edge_attribution_patching\"\ntop_n = 10\n{METRIC}"),
            &m,
        );
        let sink = run(a.as_mut(), &m, &[], &prompts, 3);
        let edges = table(&sink, None);
        let nodes = table(&sink, Some("nodes"));
        let want = eap(
            &m.model,
            &prompts,
            padding,
            &EapConfig {
                direction: interventions::Direction::Noising,
                ..EapConfig::new(interventions::Metric::logit_diff_ids(5, 7))
            },
        )
        .unwrap();
        let scores = want.scores();
        assert_eq!(edges.len(), scores.len());
        let got = f64s(&edges, "score");
        let scale = scores.iter().map(|s| s.abs()).fold(0.0, f64::max);
        for (g, w) in got.iter().zip(&scores) {
            assert!((g - w).abs() < 1e-5 * scale.max(1.0), "{name}: {g} vs {w}");
        }
        assert_eq!(
            bools(&edges, "in_circuit").iter().filter(|&&b| b).count(),
            10
        );
        assert!(bools(&nodes, "in_circuit").iter().any(|&b| b));
        assert!(
            strings(&edges, "method")
                .iter()
                .all(|s| s.as_deref() == Some("eap"))
        );

        // Normalized: scores in units of the clean - corrupt gap; threshold circuit.
        let mut a = analysis(
            "kind = \"edge_attribution_patching\"\nmethod = \"eap_ig\"\nig_steps = 2\nthreshold = 0.0\n\
             metric = { logit_diff = [{ id = 5 }, { id = 7 }], normalize = true }",
            &m,
        );
        let sink = run(a.as_mut(), &m, &[], &prompts, 4);
        let edges = table(&sink, None);
        assert!(bools(&edges, "in_circuit").iter().all(|&b| b));
        assert!(
            strings(&edges, "method")
                .iter()
                .all(|s| s.as_deref() == Some("eap-ig"))
        );
    }
}

#[test]
fn bad_metric_tokens_point_at_their_key() {
    let m = model("gpt2-tiny");
    let prompts = random_pairs(1, 1);
    let ctx = context(&m);
    for (metric, key, expect) in [
        (
            "{ logit_diff = [{ id = 5 }, { id = 100000 }] }",
            "metric.logit_diff.1",
            "100000",
        ),
        // The fixture's word-level vocabulary reads " Mary" as its unknown token `t0`.
        (
            "{ logprob = { text = \" Mary\" } }",
            "metric.logprob",
            "\" Mary\" is not in the vocabulary",
        ),
        (
            "{ logit_diff = [{ text = \" Mary\" }, { id = 5 }] }",
            "metric.logit_diff.0",
            "would silently become its unknown token \"t0\"",
        ),
    ] {
        let mut a = analysis(
            &format!("kind = \"activation_patching\"\nmetric = {metric}"),
            &m,
        );
        let mut sink = MemorySink::default();
        let mut err: Option<AnalysisError> = None;
        each_batch(&m, &prompts, 1, &Default::default(), |b| {
            err = a.process(&ctx, b, &mut sink).err();
        });
        let err = err.unwrap_or_else(|| panic!("{metric}: no error"));
        assert_eq!(err.key.as_deref(), Some(key), "{metric}: {}", err.message);
        assert!(err.message.contains(expect), "{metric}: {}", err.message);
    }
}
