//! Activation patching: against TransformerLens on the tiny fixtures, and the batched,
//! prefix-reusing sweep against independent full recomputation from the embedding.

use crate::iv_common;

use circuitry_circuits::interventions::metric::select_slots;
use circuitry_circuits::interventions::{
    Direction, HeadSweep, Metric, Padding, PatchOptions, PatchResult, PatchingConfig,
    PositionSweep, activation_patching, patching_summary_table, patching_table,
};
use circuitry_circuits::table::ColumnData;
use circuitry_data::Prompt;
use circuitry_models::{
    BatchPositions, Edit, EditOp, HookKind, HookPoint, Intervention, Selection, Span, TokenBatch,
    Transformer,
};
use iv_common::*;

const FIXTURE_ATOL: f64 = 1e-4;

#[test]
fn patching_tables_match_transformer_lens_fixtures() {
    for name in MODELS {
        let model = tiny(name);
        let reference = load_reference(name);
        let prompt = fixture_pair(&reference);
        let t = prompt.len();
        let l = model.config.n_layers;
        let h = model.config.n_heads;
        let mut cfg = PatchingConfig::new(HookKind::ResidPre, fixture_metric());
        cfg.positions = PositionSweep::Each;
        let res = activation_patching(
            &model,
            std::slice::from_ref(&prompt),
            Padding::default(),
            &cfg,
        )
        .unwrap();
        assert_eq!(res.len(), l * t);
        let want = &reference["processed.patch_resid_pre"];
        assert_eq!(want.shape, vec![l, t]);
        for r in &res {
            let w = f64::from(want.f32[r.layer * t + r.position.unwrap()]);
            assert!(
                (r.metric - w).abs() < FIXTURE_ATOL,
                "{name} resid_pre L{} pos {:?}: {} vs {w}",
                r.layer,
                r.position,
                r.metric
            );
        }
        let clean = f64::from(reference["processed.patch_metric_clean"].f32[0]);
        let corrupt = f64::from(reference["processed.patch_metric_corrupt"].f32[0]);
        assert!(
            (res[0].metric_clean - clean).abs() < FIXTURE_ATOL,
            "{name} clean metric"
        );
        assert!(
            (res[0].metric_corrupt - corrupt).abs() < FIXTURE_ATOL,
            "{name} corrupt metric"
        );

        let cfg = PatchingConfig::new(HookKind::Z, fixture_metric());
        let res = activation_patching(
            &model,
            std::slice::from_ref(&prompt),
            Padding::default(),
            &cfg,
        )
        .unwrap();
        assert_eq!(res.len(), l * h);
        let want = &reference["processed.patch_head_z_all_pos"];
        for r in &res {
            let w = f64::from(want.f32[r.layer * h + r.head.unwrap()]);
            assert!(
                (r.metric - w).abs() < FIXTURE_ATOL,
                "{name} z L{}H{:?}: {} vs {w}",
                r.layer,
                r.head,
                r.metric
            );
            assert_eq!(r.position, None);
        }
        // the table keeps raw and normalised values
        let table = patching_table(&res);
        assert_eq!(table.len(), l * h);
        let Some(ColumnData::F64(norm)) = table.column("normalized") else {
            panic!("normalized column")
        };
        let expected = (res[1].metric - corrupt) / (clean - corrupt);
        assert!((norm[1].unwrap() - expected).abs() < 1e-3);
        let summary = patching_summary_table(&res);
        assert_eq!(summary.len(), l * h);
    }
}

/// The metric of one prompt's destination run with `edits`, from a full forward pass from the
/// embedding (no prefix reuse, no batching, full logits).
fn full_recompute(
    model: &Transformer,
    dest: &[u32],
    edits: Vec<Edit>,
    metric: &Metric,
    prompt: &Prompt,
) -> f64 {
    let device = model.device();
    let batch = TokenBatch::unpadded(&[dest.to_vec()], &device);
    let out = model.forward(
        &batch,
        &Intervention::default().with_edits(edits),
        Span::default(),
    );
    let mut resolved = metric
        .resolve(std::slice::from_ref(prompt), &batch, model.config.d_vocab)
        .unwrap();
    if resolved.needs_reference() {
        let clean = TokenBatch::unpadded(std::slice::from_ref(&prompt.tokens), &device);
        let (slots, s) = resolved.slots();
        let reference = select_slots(model.logits(&clean), slots, s);
        resolved = resolved.with_reference(reference);
    }
    f64::from(values(resolved.values_from_logits(out.logits.unwrap()))[0])
}

/// Recomputes every result of a sweep independently, one prompt and one patch at a time.
fn check_against_recomputation(
    model: &Transformer,
    prompts: &[Prompt],
    cfg: &PatchingConfig,
    results: &[PatchResult],
    tol: f64,
) {
    let device = model.device();
    let mut checked = 0;
    for r in results {
        let prompt = prompts.iter().find(|p| p.id == r.prompt).unwrap();
        let (src, dest) = match cfg.direction {
            Direction::Denoising => (
                prompt.tokens.clone(),
                prompt.corrupt_tokens.clone().unwrap(),
            ),
            Direction::Noising => (
                prompt.corrupt_tokens.clone().unwrap(),
                prompt.tokens.clone(),
            ),
        };
        let hook = HookPoint::layer(r.layer, cfg.site);
        let src_batch = TokenBatch::unpadded(&[src], &device);
        let cache = model
            .forward(&src_batch, &Intervention::capture([hook]), Span::default())
            .cache;
        let selection = Selection {
            rows: None,
            positions: match r.position {
                Some(p) => BatchPositions::Same(vec![p]),
                None => BatchPositions::All,
            },
            heads: r.head.map(|h| vec![h]),
            features: None,
        };
        let edit = Edit::new(
            hook,
            selection,
            EditOp::Replace(cache.get(&hook).unwrap().clone()),
        )
        .unwrap();
        let want = full_recompute(model, &dest, vec![edit], &cfg.metric, prompt);
        assert!(
            (r.metric - want).abs() < tol,
            "{} L{} H{:?} pos {:?} prompt {}: batched {} vs recomputed {want}",
            cfg.site.site_name(),
            r.layer,
            r.head,
            r.position,
            r.prompt,
            r.metric
        );
        checked += 1;
    }
    assert!(checked > 0);
}

fn sweeps() -> Vec<PatchingConfig> {
    let metric = Metric::logit_diff("A", "B", "last");
    let mut out = Vec::new();
    let mut c = PatchingConfig::new(HookKind::ResidPre, metric.clone());
    c.positions = PositionSweep::Each;
    out.push(c);
    let mut c = PatchingConfig::new(HookKind::ResidMid, metric.clone());
    c.positions = PositionSweep::Named(vec!["mid".into(), "last".into()]);
    c.direction = Direction::Noising;
    out.push(c);
    out.push(PatchingConfig::new(HookKind::AttnOut, metric.clone()));
    let mut c = PatchingConfig::new(HookKind::MlpOut, metric.clone());
    c.positions = PositionSweep::Indices(vec![0, 3, 7]);
    out.push(c);
    let mut c = PatchingConfig::new(HookKind::Z, metric.clone());
    c.positions = PositionSweep::Each;
    out.push(c);
    let mut c = PatchingConfig::new(HookKind::Pattern, metric.clone());
    c.positions = PositionSweep::Named(vec!["mid".into()]);
    out.push(c);
    let mut c = PatchingConfig::new(HookKind::V, metric.clone());
    c.layers = Some(vec![1]);
    c.direction = Direction::Noising;
    out.push(c);
    let mut c = PatchingConfig::new(HookKind::Q, metric.clone());
    c.heads = HeadSweep::All;
    c.positions = PositionSweep::Each;
    out.push(c);
    let mut c = PatchingConfig::new(
        HookKind::ResidPost,
        Metric::new(
            circuitry_circuits::interventions::MetricKind::Kl,
            circuitry_circuits::interventions::MetricPosition::Last,
        ),
    );
    c.positions = PositionSweep::Each;
    out.push(c);
    out
}

#[test]
fn prefix_reuse_and_batching_equal_full_recomputation() {
    for name in MODELS {
        let model = tiny(name);
        // equal lengths: no padding, so batched and recomputed runs see identical inputs
        let prompts: Vec<Prompt> = random_pairs(4, 3)
            .into_iter()
            .enumerate()
            .map(|(i, mut p)| {
                p.tokens.truncate(6);
                p.corrupt_tokens.as_mut().unwrap().truncate(6);
                p.positions.insert("last".into(), 5);
                p.positions.insert("mid".into(), 3);
                p.id = i as u32;
                p
            })
            .collect();
        for cfg in sweeps() {
            let fast = activation_patching(&model, &prompts, Padding::default(), &cfg).unwrap();
            check_against_recomputation(&model, &prompts, &cfg, &fast, 1e-5);
            // the naive schedule gives the same numbers
            let mut naive = cfg.clone();
            naive.options = PatchOptions::naive();
            let slow = activation_patching(&model, &prompts, Padding::default(), &naive).unwrap();
            assert_eq!(fast.len(), slow.len());
            for (a, b) in fast.iter().zip(&slow) {
                assert_eq!(
                    (a.layer, a.head, a.position, a.prompt),
                    (b.layer, b.head, b.position, b.prompt)
                );
                assert!(
                    (a.metric - b.metric).abs() < 1e-5,
                    "{name} {:?}: {} vs {}",
                    cfg.site,
                    a.metric,
                    b.metric
                );
            }
            // small chunks, and whole positions recomputed (the general path for residual sites)
            let mut chunked = cfg.clone();
            chunked.options.max_rows = 5;
            chunked.options.reuse_positions = false;
            let mid = activation_patching(&model, &prompts, Padding::default(), &chunked).unwrap();
            for (a, b) in fast.iter().zip(&mid) {
                assert!((a.metric - b.metric).abs() < 1e-5);
            }
        }
    }
}

#[test]
fn padded_batches_patch_the_right_slots() {
    for name in MODELS {
        let model = tiny(name);
        let prompts = random_pairs(4, 9);
        assert!(
            prompts
                .iter()
                .map(Prompt::len)
                .collect::<std::collections::BTreeSet<_>>()
                .len()
                > 1
        );
        for padding in [left(), right()] {
            for cfg in sweeps() {
                let res = activation_patching(&model, &prompts, padding, &cfg).unwrap();
                check_against_recomputation(&model, &prompts, &cfg, &res, 1e-4);
                if cfg.positions == PositionSweep::Each {
                    // prompts shorter than a position have no result there
                    let max = prompts.iter().map(Prompt::len).max().unwrap();
                    assert!(
                        res.iter()
                            .all(|r| r.position.unwrap() < prompts[r.prompt as usize].len())
                    );
                    assert!(res.iter().any(|r| r.position == Some(max - 1)));
                }
            }
        }
    }
}

#[test]
fn unpatched_and_fully_patched_runs_give_the_baselines() {
    let model = tiny("llama-tiny");
    let prompts = random_pairs(3, 5);
    // patching the whole residual stream before block 0 turns the corrupt run into the clean one
    let mut cfg = PatchingConfig::new(HookKind::ResidPre, Metric::logit_diff("A", "B", "last"));
    cfg.layers = Some(vec![0, 1]);
    let res = activation_patching(&model, &prompts, left(), &cfg).unwrap();
    for r in &res {
        assert!((r.metric - r.metric_clean).abs() < 1e-4, "{r:?}");
        assert!((r.normalized().unwrap() - 1.0).abs() < 1e-3);
    }
    // a bad site or layer is a configuration error
    let mut bad = cfg.clone();
    bad.layers = Some(vec![7]);
    assert!(activation_patching(&model, &prompts, left(), &bad).is_err());
    let mut no_corrupt = prompts.clone();
    no_corrupt[1].corrupt_tokens = None;
    let err = activation_patching(&model, &no_corrupt, left(), &cfg).unwrap_err();
    assert!(err.to_string().contains("prompt 1"), "{err}");
}
