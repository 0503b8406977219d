//! Zero, mean and resample ablation.

use crate::iv_common;

use std::collections::BTreeMap;

use circuitry_circuits::interventions::patching::{PatchTarget, PatchUnit, patch_units};
use circuitry_circuits::interventions::{
    AblationConfig, AblationMethod, AblationUnit, Component, MeanAccumulator, MeanOver, Metric,
    PatchOptions, PromptPositions, ablation, ablation_table, resample_donors,
};
use circuitry_data::Prompt;
use circuitry_models::{
    Edit, EditOp, HookKind, HookPoint, HookTensor, Intervention, Selection, Span, TokenBatch,
};
use iv_common::*;

fn metric() -> Metric {
    Metric::logit_diff("A", "B", "last")
}

fn all_units(model: &circuitry_models::Transformer) -> Vec<AblationUnit> {
    let mut units = AblationUnit::every_head(model);
    units.extend(AblationUnit::every_mlp(model));
    units.extend((0..model.config.d_mlp).step_by(37).map(|n| {
        AblationUnit::new(Component::Neuron {
            layer: 1,
            neuron: n,
        })
    }));
    units.extend(AblationUnit::every_resid_position(model, 4));
    units.push(
        AblationUnit::new(Component::Head { layer: 1, head: 2 })
            .at(PromptPositions::Named("mid".into())),
    );
    units.push(AblationUnit::group(vec![
        Component::Head { layer: 0, head: 1 },
        Component::Mlp { layer: 1 },
    ]));
    units
}

#[test]
fn zero_ablating_a_head_equals_patching_its_z_with_zeros() {
    for name in MODELS {
        let model = tiny(name);
        let prompts = random_pairs(3, 1);
        let units = all_units(&model);
        let cfg = AblationConfig::new(units.clone(), AblationMethod::Zero, metric());
        let res = ablation(&model, &prompts, &prompts, left(), &cfg).unwrap();
        let device = model.device();
        for r in res
            .iter()
            .filter(|r| matches!(r.component, Some(Component::Head { .. })) && r.position.is_none())
        {
            let Some(Component::Head { layer, head }) = r.component else {
                unreachable!()
            };
            let p = &prompts[r.prompt as usize];
            let hook = HookPoint::layer(layer, HookKind::Z);
            let batch = TokenBatch::unpadded(std::slice::from_ref(&p.tokens), &device);
            // an independent forward pass with a zero tensor patched into that head's z
            let z = model
                .forward(&batch, &Intervention::capture([hook]), Span::default())
                .cache
                .get4(&hook)
                .unwrap();
            let edit = Edit::new(
                hook,
                Selection::heads(vec![head]),
                EditOp::Replace(HookTensor::R4(z.zeros_like())),
            )
            .unwrap();
            let logits = model
                .forward(
                    &batch,
                    &Intervention::default().with_edits(vec![edit]),
                    Span::default(),
                )
                .logits
                .unwrap();
            let resolved = metric()
                .resolve(std::slice::from_ref(p), &batch, model.config.d_vocab)
                .unwrap();
            let want = f64::from(values(resolved.values_from_logits(logits))[0]);
            assert!(
                (r.metric - want).abs() < 1e-4,
                "{name} {}: {} vs {want}",
                r.unit,
                r.metric
            );
        }
        // ...and the same through the generic patching entry point with zero values
        let dest = circuitry_circuits::interventions::CapturedRun::new(
            &model,
            TokenBatch::new(
                &prompts.iter().map(|p| p.tokens.clone()).collect::<Vec<_>>(),
                0,
                left().side,
                &device,
            ),
            &[HookPoint::layer(1, HookKind::Z)].into_iter().collect(),
        );
        let resolved = metric()
            .resolve(&prompts, &dest.batch, model.config.d_vocab)
            .unwrap();
        let z = dest.hook(&HookPoint::layer(1, HookKind::Z)).r4().unwrap();
        let values_map: BTreeMap<_, _> = [(
            HookPoint::layer(1, HookKind::Z),
            HookTensor::R4(z.zeros_like()),
        )]
        .into_iter()
        .collect();
        let unit = PatchUnit::single(PatchTarget::head(HookPoint::layer(1, HookKind::Z), 3));
        let patched = patch_units(
            &model,
            &dest,
            &prompts,
            &resolved,
            &[unit],
            &values_map,
            PatchOptions::default(),
        )
        .unwrap();
        for (i, m) in patched[0].iter().enumerate() {
            let r = res
                .iter()
                .find(|r| r.unit == "L1H3" && r.prompt == i as u32)
                .unwrap();
            assert!((m.unwrap() - r.metric).abs() < 1e-5);
        }
        let table = ablation_table(&res);
        assert_eq!(table.len(), res.len());
    }
}

#[test]
fn mean_ablation_over_the_same_single_prompt_changes_nothing() {
    for name in MODELS {
        let model = tiny(name);
        let prompts = random_pairs(1, 2);
        let units = all_units(&model);
        let mut acc = MeanAccumulator::for_units(&units, MeanOver::Prompts);
        acc.add_batch(&model, &prompts, left()).unwrap();
        let means = acc.finish().unwrap();
        let cfg = AblationConfig::new(units, AblationMethod::Mean(means), metric());
        let res = ablation(&model, &prompts, &prompts, left(), &cfg).unwrap();
        assert!(!res.is_empty());
        for r in &res {
            assert!(
                r.delta().abs() < 1e-5,
                "{name} {}: {} vs baseline {}",
                r.unit,
                r.metric,
                r.metric_baseline
            );
        }
        // over positions too, the mean is not the prompt's own activation
        let units = AblationUnit::every_mlp(&model);
        let mut acc = MeanAccumulator::for_units(&units, MeanOver::PromptsAndPositions);
        acc.add_batch(&model, &prompts, left()).unwrap();
        let cfg = AblationConfig::new(units, AblationMethod::Mean(acc.finish().unwrap()), metric());
        let res = ablation(&model, &prompts, &prompts, left(), &cfg).unwrap();
        assert!(res.iter().any(|r| r.delta().abs() > 1e-4));
    }
}

#[test]
fn mean_activations_accumulate_batch_by_batch() {
    let model = tiny("gpt2-tiny");
    let prompts = random_pairs(5, 4);
    let hook = HookPoint::layer(0, HookKind::Z);
    let mut whole = MeanAccumulator::new([hook], MeanOver::Prompts);
    whole.add_batch(&model, &prompts, left()).unwrap();
    let mut parts = MeanAccumulator::new([hook], MeanOver::Prompts);
    parts.add_batch(&model, &prompts[..2], right()).unwrap();
    parts.add_batch(&model, &prompts[2..], left()).unwrap();
    let (a, b) = (whole.finish().unwrap(), parts.finish().unwrap());
    for i in 0..prompts.iter().map(Prompt::len).max().unwrap() + 2 {
        let (x, y) = (a.at(&hook, i).unwrap(), b.at(&hook, i).unwrap());
        assert!(
            x.iter().zip(y).all(|(p, q)| (p - q).abs() < 1e-5),
            "position {i}"
        );
    }
    assert!(
        MeanAccumulator::new([hook], MeanOver::Prompts)
            .finish()
            .is_err()
    );
}

#[test]
fn resample_ablation_is_reproducible_and_depends_on_the_seed() {
    let donors = resample_donors(10, 7);
    assert_eq!(donors, resample_donors(10, 7));
    assert_ne!(donors, resample_donors(10, 8));
    assert!(
        donors.iter().enumerate().all(|(i, &d)| i != d),
        "a donor is never the prompt itself: {donors:?}"
    );
    let mut sorted = donors.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..10).collect::<Vec<_>>());
    assert_eq!(resample_donors(1, 3), vec![0]);

    for name in MODELS {
        let model = tiny(name);
        let dataset = random_pairs(6, 11);
        let units = all_units(&model);
        let run = |seed: u64, batch: &[Prompt]| {
            let cfg =
                AblationConfig::new(units.clone(), AblationMethod::Resample { seed }, metric());
            ablation(&model, batch, &dataset, left(), &cfg).unwrap()
        };
        let a = run(1, &dataset[..3]);
        let b = run(1, &dataset[..3]);
        assert_eq!(a, b, "same seed, same results");
        let c = run(2, &dataset[..3]);
        let differs = a
            .iter()
            .zip(&c)
            .filter(|(x, y)| (x.metric - y.metric).abs() > 1e-4)
            .count();
        assert!(differs > 0, "another seed picks other donors");
        assert!(
            a.iter().any(|r| r.delta().abs() > 1e-4),
            "resampling changes something"
        );
        // a batch of the same prompts gives the same numbers (donors depend on prompt ids only)
        let d = run(1, &dataset[1..2]);
        for r in &d {
            let same = a
                .iter()
                .find(|x| x.unit == r.unit && x.prompt == r.prompt)
                .unwrap();
            assert!((r.metric - same.metric).abs() < 1e-4);
        }
    }
}
