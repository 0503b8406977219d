//! The neuron and dimension analyses on the real SmolLM2-135M-Instruct against TransformerLens
//! (`tests/fixtures/smollm2-neurons.reference.json`, made by
//! `scripts/reference/smollm2_neuron_reference.py`): 32 windows of 24 tokens of the fortune
//! corpus, the top and bottom 10 `mlp.hook_post` activations and the moments of 30 sampled
//! neurons, and numpy's PCA spectrum of three residual streams and three heads' outputs; and
//! the top and bottom contexts of a sample of them against brute force on circuitry's own
//! activations (each prompt run alone, 1e-5).
//!
//! Needs the model file (see `tests/iv_smollm2/mod.rs`); a few seconds in release:
//!
//! ```sh
//! cargo test -p circuitry-circuits --release --test integration smollm2_neurons
//! ```

use std::collections::BTreeSet;

use crate::analysis_common::*;
use crate::neuron_analyses::{alone_hooks, assert_same_ranking, ranked};

use circuitry_circuits::table::{ColumnData, Table};
use circuitry_data::Prompt;
use circuitry_models::{HookKind, HookPoint, PaddingSide, Processing};
use serde_json::Value;

fn reference() -> Value {
    let path = circuitry_testkit::repo_root().join("tests/fixtures/smollm2-neurons.reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn nums(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn f32s(t: &Table, name: &str) -> Vec<f64> {
    match t.column(name) {
        Some(ColumnData::F32(v)) => v.iter().map(|x| f64::from(x.unwrap())).collect(),
        other => panic!("{name}: {other:?}"),
    }
}

fn experiment(body: &str) -> String {
    format!(
        "[models.m]\npath = \"m\"\n[datasets.d]\ntokens = [[1]]\n[analyses.a]\nmodel = \"m\"\n\
         dataset = \"d\"\n{body}\n"
    )
}

#[test]
fn smollm2_neurons_and_dimensions_match_transformer_lens() {
    let r = reference();
    // Without weight processing, as TransformerLens's bridge runs it (raw).
    let m = crate::iv_smollm2::load_with(Processing::none());
    let prompts: Vec<Prompt> = r["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, row)| {
            Prompt::from_tokens(i as u32, nums(row).iter().map(|&x| x as u32).collect())
        })
        .collect();
    let neurons = r["neurons"].as_array().unwrap();
    let layers: BTreeSet<u64> = neurons
        .iter()
        .map(|n| n["layer"].as_u64().unwrap())
        .collect();
    let all: BTreeSet<u64> = neurons
        .iter()
        .map(|n| n["neuron"].as_u64().unwrap())
        .collect();
    let list = |s: &BTreeSet<u64>| s.iter().map(u64::to_string).collect::<Vec<_>>().join(", ");
    let select = format!(
        "layers = [{}]\nneurons = [{}]\ninclude_bos = true",
        list(&layers),
        list(&all)
    );

    let body = format!("kind = \"neuron_top_contexts\"\n{select}\ntop_k = 10\nbottom_k = 10");
    let mut a = built(&analysis_a(&experiment(&body)), &m);
    let top = run_dataset(a.as_mut(), &m, &prompts, 8, PaddingSide::Right)
        .unwrap()
        .part(None)
        .unwrap();
    let body = format!("kind = \"neuron_stats\"\n{select}");
    let mut a = built(&analysis_a(&experiment(&body)), &m);
    let stats = run_dataset(a.as_mut(), &m, &prompts, 8, PaddingSide::Right)
        .unwrap()
        .part(None)
        .unwrap();

    let (t_layer, t_neuron, t_kind) = (
        ints(&top, "layer"),
        ints(&top, "neuron"),
        texts(&top, "kind"),
    );
    let (t_prompt, t_pos, t_act) = (
        ints(&top, "prompt"),
        ints(&top, "position"),
        f32s(&top, "activation"),
    );
    let (s_layer, s_neuron) = (ints(&stats, "layer"), ints(&stats, "neuron"));
    let mut worst = 0.0f64;
    for n in neurons {
        let (layer, neuron) = (
            n["layer"].as_u64().unwrap() as usize,
            n["neuron"].as_u64().unwrap() as usize,
        );
        for kind in ["top", "bottom"] {
            let want = n[kind].as_array().unwrap();
            let got: Vec<usize> = (0..top.len())
                .filter(|&i| t_layer[i] == layer && t_neuron[i] == neuron && t_kind[i] == kind)
                .collect();
            assert_eq!(got.len(), want.len(), "{layer}.{neuron} {kind}");
            for (rank, (&i, w)) in got.iter().zip(want).enumerate() {
                let w = nums(w);
                // Relative for the large activations of the last layers (float32 in both).
                let diff = (t_act[i] - w[2]).abs() / w[2].abs().max(1.0);
                worst = worst.max(diff);
                assert!(
                    diff < 1e-4,
                    "{layer}.{neuron} {kind} {rank}: {} vs {}",
                    t_act[i],
                    w[2]
                );
                // The same token, unless TransformerLens's list has a near-tie here.
                let near_tie = want.iter().enumerate().any(|(j, o)| {
                    j != rank && (nums(o)[2] - w[2]).abs() < 1e-4 * w[2].abs().max(1.0)
                });
                if !near_tie {
                    assert_eq!(
                        (t_prompt[i], t_pos[i]),
                        (w[0] as usize, w[1] as usize),
                        "{layer}.{neuron} {kind} {rank}"
                    );
                }
            }
        }
        let [row] = (0..stats.len())
            .filter(|&i| s_layer[i] == layer && s_neuron[i] == neuron)
            .collect::<Vec<_>>()[..]
        else {
            panic!("one stats row per neuron")
        };
        for (col, key) in [
            ("mean", "mean"),
            ("std", "std"),
            ("frac_above", "frac_positive"),
        ] {
            let (got, want) = (f64s(&stats, col)[row], n[key].as_f64().unwrap());
            assert!(
                (got - want).abs() < 1e-4 * want.abs().max(1.0),
                "{layer}.{neuron} {col}: {got} vs {want}"
            );
        }
        for (col, key) in [("max", "max"), ("min", "min")] {
            let (got, want) = (f32s(&stats, col)[row], n[key].as_f64().unwrap());
            assert!(
                (got - want).abs() < 1e-4 * want.abs().max(1.0),
                "{layer}.{neuron} {col}: {got} vs {want}"
            );
        }
    }
    eprintln!(
        "largest relative top/bottom activation difference from TransformerLens: {worst:.2e}"
    );

    // And against brute force on our own activations (each prompt run alone), within 1e-5:
    // every sampled neuron of two layers.
    let checked = [0usize, 29];
    let hooks: Vec<HookPoint> = checked
        .iter()
        .map(|&l| HookPoint::layer(l, HookKind::MlpPost))
        .collect();
    let captured = alone_hooks(&m, &prompts, &hooks);
    for n in neurons {
        let (layer, neuron) = (
            n["layer"].as_u64().unwrap() as usize,
            n["neuron"].as_u64().unwrap() as usize,
        );
        let Some(h) = checked.iter().position(|&l| l == layer) else {
            continue;
        };
        let acts = &captured[h];
        for (kind, largest) in [("top", true), ("bottom", false)] {
            let kept: Vec<(f64, usize, usize)> = (0..top.len())
                .filter(|&i| t_layer[i] == layer && t_neuron[i] == neuron && t_kind[i] == kind)
                .map(|i| (t_act[i], t_prompt[i], t_pos[i]))
                .collect();
            // `ranked` leaves position 0 out (a BOS elsewhere); these windows have none.
            let mut reference = ranked(acts, &prompts, neuron, largest);
            for (p, rows) in prompts.iter().zip(acts) {
                reference.push((rows[0][neuron], p.id, 0, p.tokens[0]));
            }
            reference.sort_by(|a, b| {
                let (x, y) = if largest { (b.0, a.0) } else { (a.0, b.0) };
                x.total_cmp(&y).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2))
            });
            assert_same_ranking(&kept, &reference);
        }
    }

    // PCA spectra: three residual streams and three heads' outputs of layer 15.
    let body = "kind = \"effective_dimension\"\nlayers = [0, 15, 29]\nheads = [0, 4, 8]\n\
                twonn_points = 0\ninclude_bos = true";
    let mut a = built(&analysis_a(&experiment(body)), &m);
    let sink = run_dataset(a.as_mut(), &m, &prompts, 8, PaddingSide::Right).unwrap();
    let (main, spectrum) = (
        sink.part(None).unwrap(),
        sink.part(Some("spectrum")).unwrap(),
    );
    let (hooks, heads) = (texts(&main, "hook"), opt_ints(&main, "head"));
    let (sp_hooks, sp_heads, variance) = (
        texts(&spectrum, "hook"),
        opt_ints(&spectrum, "head"),
        f64s(&spectrum, "variance"),
    );
    for d in r["dimension"].as_array().unwrap() {
        let (hook, head) = (d["hook"].as_str().unwrap(), d["head"].as_i64());
        let [row] = (0..main.len())
            .filter(|&i| hooks[i] == hook && heads[i] == head)
            .collect::<Vec<_>>()[..]
        else {
            panic!("one row for {hook} {head:?}")
        };
        let total = d["total_variance"].as_f64().unwrap();
        let rel = |got: f64, want: f64| (got - want).abs() / want.abs();
        assert!(
            rel(f64s(&main, "total_variance")[row], total) < 1e-4,
            "{hook} {head:?} total"
        );
        let pr = d["participation_ratio"].as_f64().unwrap();
        assert!(
            rel(f64s(&main, "participation_ratio")[row], pr) < 1e-4,
            "{hook} {head:?}: {} vs {pr}",
            f64s(&main, "participation_ratio")[row]
        );
        for key in ["components_90", "components_99"] {
            let (got, want) = (ints(&main, key)[row] as i64, d[key].as_i64().unwrap());
            assert!(
                (got - want).abs() <= 1,
                "{hook} {head:?} {key}: {got} vs {want}"
            );
        }
        let ours: Vec<f64> = (0..spectrum.len())
            .filter(|&i| sp_hooks[i] == hook && sp_heads[i] == head)
            .map(|i| variance[i])
            .collect();
        for (k, want) in nums(&d["eigenvalues"]).into_iter().enumerate() {
            let got = ours.get(k).copied().unwrap_or(0.0);
            // Relative to the component itself, or to the total for components near zero.
            assert!(
                (got - want).abs() < 1e-4 * want.abs().max(1e-3 * total),
                "{hook} {head:?} component {k}: {got} vs {want}"
            );
        }
    }
}
