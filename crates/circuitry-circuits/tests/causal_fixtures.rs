//! Causal abstraction against independent references: linear probes against scikit-learn fits
//! on the same data, and the subspace interchange against pyvene 0.1.8's
//! `RotatedSpaceIntervention` on the tiny GPT-2 fixture (fixtures made by
//! `scripts/reference/sklearn_probes.py` and `scripts/reference/pyvene_interchange.py`).

use std::collections::BTreeSet;

use circuitry_circuits::interventions::MetricPosition;
use circuitry_circuits::interventions::subspace::{
    Basis, DasConfig, ResidPair, gradient_basis, interchange_logits,
};
use circuitry_circuits::probes::{Features, logistic, predict_class, r_squared, ridge};
use circuitry_data::Prompt;
use circuitry_models::{
    HookKind, HookPoint, Intervention, PaddingSide, Processing, Span, TokenBatch, host_values,
};
use serde_json::Value;

use crate::iv_common::loaded_with;

fn fixture(name: &str) -> Value {
    let path = circuitry_testkit::repo_root()
        .join("tests/fixtures/causal")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn matrix(v: &Value) -> Vec<Vec<f64>> {
    v.as_array().unwrap().iter().map(floats).collect()
}

fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn probes_equal_scikit_learn() {
    let f = fixture("sklearn_probes.json");
    let x = Features::from_rows(&matrix(&f["X"]));
    for fit in f["fits"].as_array().unwrap() {
        let name = fit["name"].as_str().unwrap();
        let target = &f[fit["target"].as_str().unwrap()];
        let want_coef: Vec<f64> = matrix(&fit["coef"]).concat();
        let want_intercept = floats(&fit["intercept"]);
        match fit["kind"].as_str().unwrap() {
            "ridge" => {
                let y = floats(target);
                let got = ridge(&x, &y, fit["alpha"].as_f64().unwrap());
                assert!(max_diff(&got.coef.concat(), &want_coef) < 1e-9, "{name}");
                assert!(max_diff(&got.intercept, &want_intercept) < 1e-9, "{name}");
                let pred: Vec<f64> = (0..x.rows()).map(|i| got.scores(x.row(i))[0]).collect();
                let r2 = r_squared(&pred, &y);
                assert!(
                    (r2 - fit["score"].as_f64().unwrap()).abs() < 1e-9,
                    "{name}: {r2}"
                );
            }
            _ => {
                let labels: Vec<usize> = floats(target).iter().map(|&v| v as usize).collect();
                let classes = labels.iter().copied().collect::<BTreeSet<_>>().len();
                let alpha = 1.0 / fit["C"].as_f64().unwrap();
                let got = logistic(&x, &labels, classes, alpha);
                // scikit-learn's lbfgs stops within 4e-7 of the exact optimum (the fixture's
                // Newton-refined `coef_exact`); this fit reaches it to its 1e-9 gradient.
                let coef = got.coef.concat();
                assert!(
                    max_diff(&coef, &want_coef) < 1e-5,
                    "{name}: {}",
                    max_diff(&coef, &want_coef)
                );
                let exact: Vec<f64> = matrix(&fit["coef_exact"]).concat();
                assert!(
                    max_diff(&coef, &exact) < 1e-7,
                    "{name}: {}",
                    max_diff(&coef, &exact)
                );
                assert!(
                    max_diff(&got.intercept, &floats(&fit["intercept_exact"])) < 1e-7,
                    "{name}"
                );
                let predictions: Vec<usize> = (0..x.rows())
                    .map(|i| predict_class(&got, x.row(i)))
                    .collect();
                let want: Vec<usize> = floats(&fit["predictions"])
                    .iter()
                    .map(|&v| v as usize)
                    .collect();
                assert_eq!(predictions, want, "{name}");
            }
        }
    }
}

/// The residual stream after block `layer` of each row of `rows`, as `[len, d]` host vectors.
fn resid_post(
    model: &circuitry_models::Transformer,
    rows: &[Vec<u32>],
    layer: usize,
) -> Vec<Vec<f32>> {
    let batch = TokenBatch::new(rows, 0, PaddingSide::Right, &model.device());
    let hook = HookPoint::layer(layer, HookKind::ResidPost);
    let out = model.forward(&batch, &Intervention::capture([hook]), Span::default());
    let all = out.cache.get(&hook).unwrap().to_vec();
    let per = all.len() / rows.len();
    all.chunks(per).map(<[f32]>::to_vec).collect()
}

#[test]
fn subspace_interchange_equals_pyvene() {
    let f = fixture("pyvene_interchange.json");
    let model = loaded_with("gpt2-tiny", Processing::none()).model;
    let d = model.config.d_model;
    let rotation = matrix(&f["rotation"]);
    let pairs = f["pairs"].as_array().unwrap();
    let ids = |v: &Value| -> Vec<u32> { floats(v).iter().map(|&x| x as u32).collect() };
    let bases: Vec<Vec<u32>> = pairs.iter().map(|p| ids(&p["base"])).collect();
    let sources: Vec<Vec<u32>> = pairs.iter().map(|p| ids(&p["source"])).collect();
    let flat = |v: &Value| -> Vec<f64> { matrix_3(v) };
    for site in f["sites"].as_array().unwrap() {
        let layer = site["layer"].as_u64().unwrap() as usize;
        let positions: Vec<usize> = floats(&site["positions"])
            .iter()
            .map(|&p| p as usize)
            .collect();
        let k = site["k"].as_u64().unwrap() as usize;
        let base_resid = resid_post(&model, &bases, layer);
        let source_resid = resid_post(&model, &sources, layer);
        let pairs: Vec<ResidPair> = (0..bases.len())
            .map(|i| ResidPair {
                prompt: Prompt::from_tokens(i as u32, bases[i].clone()),
                base: base_resid[i].clone(),
                source: positions
                    .iter()
                    .flat_map(|&p| source_resid[i][p * d..(p + 1) * d].to_vec())
                    .collect(),
                positions: positions.clone(),
            })
            .collect();
        let refs: Vec<&ResidPair> = pairs.iter().collect();
        let got: Vec<f64> = interchange_logits(
            &model,
            layer + 1,
            &refs,
            &Basis::from_rotation(&rotation, k),
        )
        .unwrap()
        .into_iter()
        .map(f64::from)
        .collect();
        let want = flat(&site["logits"]);
        let diff = max_diff(&got, &want);
        assert!(diff < 1e-4, "site {}: {diff}", site["name"]);
        // By hand: k = 0 is the base run itself, and the full space the source's vectors.
        let base_logits: Vec<f64> = interchange_logits(&model, layer + 1, &refs, &Basis::none(d))
            .unwrap()
            .into_iter()
            .map(f64::from)
            .collect();
        assert!(max_diff(&base_logits, &flat(&f["base_logits"])) < 1e-4);
    }
    // By hand: the whole residual vector after the last block, at the last position, is what
    // the unembedding reads there, so the base's logits at that position become the source's.
    let last_layer = model.config.n_layers - 1;
    let (base_resid, source_resid) = (
        resid_post(&model, &bases, last_layer),
        resid_post(&model, &sources, last_layer),
    );
    let len = bases[0].len();
    let vocab = model.config.d_vocab;
    let pairs: Vec<ResidPair> = (0..bases.len())
        .map(|i| ResidPair {
            prompt: Prompt::from_tokens(i as u32, bases[i].clone()),
            base: base_resid[i].clone(),
            source: source_resid[i][(len - 1) * d..].to_vec(),
            positions: vec![len - 1],
        })
        .collect();
    let refs: Vec<&ResidPair> = pairs.iter().collect();
    let got = interchange_logits(&model, last_layer + 1, &refs, &Basis::full(d)).unwrap();
    let source_logits = matrix_3(&f["source_logits"]);
    let last = |v: &[f64]| -> Vec<f64> {
        v.chunks(len * vocab)
            .flat_map(|p| p[(len - 1) * vocab..].to_vec())
            .collect()
    };
    let got: Vec<f64> = got.into_iter().map(f64::from).collect();
    assert!(max_diff(&last(&got), &last(&source_logits)) < 1e-4);
    // The model itself reproduces the fixture's clean logits.
    let batch = TokenBatch::new(&bases, 0, PaddingSide::Right, &model.device());
    let clean: Vec<f64> = host_values(&model.logits(&batch))
        .into_iter()
        .map(f64::from)
        .collect();
    assert!(max_diff(&clean, &matrix_3(&f["base_logits"])) < 1e-4);
}

fn matrix_3(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .flat_map(|p| matrix(p).concat())
        .collect()
}

/// DAS's gradient start: for a source close to the base (`h + eps (s - h)`, where the loss is
/// quadratic in W), interchanging along it lowers the loss, and more than along any random
/// direction. A sign error or a wrong curvature matrix fails this.
#[test]
fn das_gradient_start_is_the_steepest_direction() {
    let f = fixture("pyvene_interchange.json");
    let model = loaded_with("gpt2-tiny", Processing::none()).model;
    let (d, vocab) = (model.config.d_model, model.config.d_vocab as u32);
    let ids = |v: &Value| -> Vec<u32> { floats(v).iter().map(|&x| x as u32).collect() };
    let pairs = f["pairs"].as_array().unwrap();
    let bases: Vec<Vec<u32>> = pairs.iter().map(|p| ids(&p["base"])).collect();
    let sources: Vec<Vec<u32>> = pairs.iter().map(|p| ids(&p["source"])).collect();
    let layer = 0;
    let (base_resid, source_resid) = (
        resid_post(&model, &bases, layer),
        resid_post(&model, &sources, layer),
    );
    let len = bases[0].len();
    let last = len - 1;
    let eps = 0.01f32;
    let pairs: Vec<ResidPair> = (0..bases.len())
        .map(|i| {
            let mut prompt = Prompt::from_tokens(i as u32, bases[i].clone());
            prompt
                .answers
                .insert("counterfactual".into(), (7 * i as u32 + 3) % vocab);
            let h = &base_resid[i][last * d..];
            let s = &source_resid[i][last * d..];
            ResidPair {
                prompt,
                base: base_resid[i].clone(),
                source: h.iter().zip(s).map(|(h, s)| h + eps * (s - h)).collect(),
                positions: vec![last],
            }
        })
        .collect();
    let refs: Vec<&ResidPair> = pairs.iter().collect();
    let loss = |basis: &Basis| -> f64 {
        let logits = interchange_logits(&model, layer + 1, &refs, basis).unwrap();
        let v = vocab as usize;
        refs.iter()
            .enumerate()
            .map(|(r, p)| {
                let row = &logits[(r * len + last) * v..(r * len + last + 1) * v];
                let max = row.iter().fold(f32::MIN, |m, &x| m.max(x));
                let z: f64 = row.iter().map(|&x| f64::from(x - max).exp()).sum();
                let answer = p.prompt.answers["counterfactual"] as usize;
                z.ln() - f64::from(row[answer] - max)
            })
            .sum::<f64>()
            / refs.len() as f64
    };
    let cfg = DasConfig {
        steps: 1,
        lr: 0.01,
        pairs_per_step: 64,
        seed: 0,
        answer: "counterfactual".into(),
        position: MetricPosition::Last,
    };
    let start = gradient_basis(&model, layer + 1, &refs, 1, &cfg).unwrap();
    let dot: f64 = start.w.iter().map(|x| x * x).sum();
    assert!((dot - 1.0).abs() < 1e-9, "a unit vector: {dot}");
    let l0 = loss(&Basis::none(d));
    let steepest = loss(&start) - l0;
    assert!(
        steepest < 0.0,
        "interchanging along it lowers the loss: {steepest}"
    );
    for seed in 0..32 {
        let random = loss(&Basis::random(d, 1, seed)) - l0;
        assert!(
            steepest <= random + 1e-9,
            "random direction {seed} lowers the loss more: {random} < {steepest}"
        );
    }
}
