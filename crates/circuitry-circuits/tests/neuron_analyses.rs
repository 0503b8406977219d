//! The neuron and dimension analyses (`neuron_top_contexts`, `neuron_stats`,
//! `neuron_logit_effect`, `effective_dimension`, `subspace_overlap`) on the tiny GPT-2 and Llama
//! fixtures, against brute-force computations: each prompt run alone and unpadded with the hook
//! captured, sorted and summed in f64; the spectrum from the SVD of the centred data and the
//! head outputs from `attn.hook_result` itself; the subspaces from QR and SVD of the weights.

use crate::analysis_common::*;
use crate::iv_common::{MODELS, loaded, loaded_with};

use circuitry_circuits::dimension::two_nn;
use circuitry_circuits::matrix::Mat;
use circuitry_circuits::table::Table;
use circuitry_data::{Prompt, Rng};
use circuitry_models::burn::prelude::*;
use circuitry_models::{
    HookKind, HookPoint, Intervention, LoadedModel, PaddingSide, Processing, Span, TokenBatch,
    host_values,
};

/// Random prompts of 4 to 19 tokens, the model's BOS first.
fn prompts(m: &LoadedModel, n: usize, seed: u64) -> Vec<Prompt> {
    let bos = m
        .tokenizer
        .as_ref()
        .unwrap()
        .bos_token_id
        .expect("the fixtures have a BOS");
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|i| {
            let len = 4 + rng.index(16);
            let tokens = std::iter::once(bos)
                .chain((0..len - 1).map(|_| 1 + rng.index(127) as u32))
                .collect();
            Prompt::from_tokens(i as u32, tokens)
        })
        .collect()
}

fn experiment(body: &str) -> String {
    format!(
        "[models.m]\npath = \"m\"\n[datasets.d]\ntokens = [[1]]\n[analyses.a]\nmodel = \"m\"\n\
         dataset = \"d\"\n{body}\n"
    )
}

/// `[prompt][position] -> [d]` of `hook`, each prompt run alone and unpadded.
pub(crate) fn alone(m: &LoadedModel, prompts: &[Prompt], hook: HookPoint) -> Vec<Vec<Vec<f32>>> {
    alone_hooks(m, prompts, &[hook]).remove(0)
}

/// [`alone`] for several `[batch, pos, d]` hooks at once (one pass per prompt).
pub(crate) fn alone_hooks(
    m: &LoadedModel,
    prompts: &[Prompt],
    hooks: &[HookPoint],
) -> Vec<Vec<Vec<Vec<f32>>>> {
    let mut out = vec![Vec::new(); hooks.len()];
    for p in prompts {
        let batch = TokenBatch::unpadded(std::slice::from_ref(&p.tokens), &Device::flex());
        let run = m.model.forward(
            &batch,
            &Intervention::capture(hooks.iter().copied()),
            Span::default(),
        );
        for (h, hook) in hooks.iter().enumerate() {
            let t = run.cache.get3(hook).unwrap();
            let [_, len, d] = t.dims();
            let v = host_values(&t);
            out[h].push((0..len).map(|i| v[i * d..(i + 1) * d].to_vec()).collect());
        }
    }
    out
}

/// (activation, prompt, position, token) of every non-BOS token for `feature`, best first
/// (ties by prompt then position).
pub(crate) fn ranked(
    acts: &[Vec<Vec<f32>>],
    prompts: &[Prompt],
    feature: usize,
    largest: bool,
) -> Vec<(f32, u32, usize, u32)> {
    let mut all: Vec<(f32, u32, usize, u32)> = acts
        .iter()
        .zip(prompts)
        .flat_map(|(rows, p)| {
            rows.iter()
                .enumerate()
                .skip(1)
                .map(move |(i, v)| (v[feature], p.id, i, p.tokens[i]))
        })
        .collect();
    all.sort_by(|a, b| {
        let (x, y) = if largest { (b.0, a.0) } else { (a.0, b.0) };
        x.total_cmp(&y).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2))
    });
    all
}

/// Rows of `t` whose `layer` and `neuron` columns are these.
fn rows_of(t: &Table, layer: usize, neuron: usize) -> Vec<usize> {
    let (layers, neurons) = (ints(t, "layer"), ints(t, "neuron"));
    (0..layers.len())
        .filter(|&i| layers[i] == layer && neurons[i] == neuron)
        .collect()
}

fn f32s(t: &Table, name: &str) -> Vec<f64> {
    match t.column(name) {
        Some(circuitry_circuits::table::ColumnData::F32(v)) => {
            v.iter().map(|x| f64::from(x.expect("no nulls"))).collect()
        }
        other => panic!("{name}: {other:?}"),
    }
}

/// The kept (activation, prompt, position) equal the brute-force ranking: values within
/// 1e-5 at every rank, and the same token unless the reference has a near-tie there.
pub(crate) fn assert_same_ranking(
    kept: &[(f64, usize, usize)],
    reference: &[(f32, u32, usize, u32)],
) {
    for (rank, (&(act, prompt, position), r)) in kept.iter().zip(reference).enumerate() {
        assert!(
            (act - f64::from(r.0)).abs() < 1e-5,
            "rank {rank}: {act} vs {}",
            r.0
        );
        let near_tie = [rank.wrapping_sub(1), rank + 1]
            .iter()
            .filter_map(|&j| reference.get(j))
            .any(|o| (o.0 - r.0).abs() < 1e-5);
        if !near_tie {
            assert_eq!((prompt, position), (r.1 as usize, r.2), "rank {rank}");
        }
    }
}

#[test]
fn top_contexts_and_stats_equal_brute_force() {
    for name in MODELS {
        let m = loaded(name);
        let tokenizer = m.tokenizer.as_ref().unwrap();
        let ps = prompts(&m, 23, 7);
        let (layer, neurons) = (1, [0usize, 5, 17, 63]);
        let hook = HookPoint::layer(layer, HookKind::MlpPost);
        let acts = alone(&m, &ps, hook);
        let body = "kind = \"neuron_top_contexts\"\nlayers = [1]\nneurons = [63, 0, 5, 17]\n\
                    top_k = 6\nbottom_k = 3\ncontext_before = 3\ncontext_after = 2";
        for side in [PaddingSide::Right, PaddingSide::Left] {
            let mut a = built(&analysis_a(&experiment(body)), &m);
            let sink = run_dataset(a.as_mut(), &m, &ps, 5, side).unwrap();
            let t = sink.part(None).unwrap();
            let (kinds, acts_col) = (texts(&t, "kind"), f32s(&t, "activation"));
            let (prompt_col, pos_col) = (ints(&t, "prompt"), ints(&t, "position"));
            let (before, after) = (texts(&t, "context_before"), texts(&t, "context_after"));
            for &n in &neurons {
                for (kind, largest, k) in [("top", true, 6), ("bottom", false, 3)] {
                    let rows: Vec<usize> = rows_of(&t, layer, n)
                        .into_iter()
                        .filter(|&i| kinds[i] == kind)
                        .collect();
                    assert_eq!(rows.len(), k, "{name} {n} {kind}");
                    let kept: Vec<(f64, usize, usize)> = rows
                        .iter()
                        .map(|&i| (acts_col[i], prompt_col[i], pos_col[i]))
                        .collect();
                    assert_same_ranking(&kept, &ranked(&acts, &ps, n, largest));
                    for &i in &rows {
                        let (p, pos) = (&ps[prompt_col[i]], pos_col[i]);
                        assert_eq!(
                            before[i],
                            tokenizer.decode(&p.tokens[pos.saturating_sub(3)..pos])
                        );
                        let end = (pos + 3).min(p.len());
                        assert_eq!(after[i], tokenizer.decode(&p.tokens[pos + 1..end]));
                    }
                }
            }
        }

        // Statistics over every non-BOS token, two-pass in f64.
        let body = "kind = \"neuron_stats\"\nlayers = [1]\nneurons = [0, 5, 17, 63]\n\
                    threshold = 0.1\ntop_k = 5";
        let mut a = built(&analysis_a(&experiment(body)), &m);
        let sink = run_dataset(a.as_mut(), &m, &ps, 4, PaddingSide::Right).unwrap();
        let t = sink.part(None).unwrap();
        for &n in &neurons {
            let [row] = rows_of(&t, layer, n)[..] else {
                panic!("one row per neuron")
            };
            let xs: Vec<f64> = acts
                .iter()
                .flat_map(|rows| rows.iter().skip(1).map(|v| f64::from(v[n])))
                .collect();
            let count = xs.len() as f64;
            let mean = xs.iter().sum::<f64>() / count;
            let c = |p: i32| xs.iter().map(|x| (x - mean).powi(p)).sum::<f64>() / count;
            let close = |col: &str, want: f64| {
                let got = f64s(&t, col)[row];
                assert!(
                    (got - want).abs() < 1e-5 * want.abs().max(1.0),
                    "{name} {n} {col}: {got} vs {want}"
                );
            };
            assert_eq!(ints(&t, "count")[row], xs.len());
            close("mean", mean);
            close("std", c(2).sqrt());
            close("skewness", c(3) / c(2).powf(1.5));
            close("kurtosis", c(4) / (c(2) * c(2)) - 3.0);
            close(
                "frac_above",
                xs.iter().filter(|&&x| x > 0.1).count() as f64 / count,
            );
            let max = xs.iter().copied().fold(f64::MIN, f64::max);
            assert!((f32s(&t, "max")[row] - max).abs() < 1e-5);
            // Token selectivity from the brute-force top 5.
            let top: Vec<u32> = ranked(&acts, &ps, n, true)
                .iter()
                .take(5)
                .map(|r| r.3)
                .collect();
            let distinct = {
                let mut d = top.clone();
                d.sort_unstable();
                d.dedup();
                d.len()
            };
            assert_eq!(ints(&t, "distinct_tokens")[row], distinct, "{name} {n}");
            let share = f64s(&t, "top_token_share")[row];
            let most = top
                .iter()
                .map(|x| top.iter().filter(|y| *y == x).count())
                .max()
                .unwrap();
            assert!((share - most as f64 / 5.0).abs() < 1e-12);
        }
    }
}

#[test]
fn bos_tokens_are_left_out_unless_asked_for() {
    let m = loaded("gpt2-tiny");
    let ps = prompts(&m, 6, 3);
    let tokens: usize = ps.iter().map(|p| p.len()).sum();
    for (include, expected) in [(false, tokens - ps.len()), (true, tokens)] {
        let body = format!(
            "kind = \"neuron_stats\"\nlayers = [0]\nneurons = [2]\ninclude_bos = {include}"
        );
        let mut a = built(&analysis_a(&experiment(&body)), &m);
        let sink = run_dataset(a.as_mut(), &m, &ps, 4, PaddingSide::Right).unwrap();
        assert_eq!(ints(&sink.part(None).unwrap(), "count"), [expected]);
    }
}

/// Eigenvalues of the sample covariance of `rows` from the SVD of the centred data.
fn pca_variances(rows: &[Vec<f64>]) -> Vec<f64> {
    let (n, d) = (rows.len(), rows[0].len());
    let mean: Vec<f64> = (0..d)
        .map(|j| rows.iter().map(|r| r[j]).sum::<f64>() / n as f64)
        .collect();
    let x = Mat::from_fn(n, d, |i, j| rows[i][j] - mean[j]);
    let mut v: Vec<f64> = x
        .singular_values()
        .iter()
        .map(|s| s * s / (n - 1) as f64)
        .collect();
    v.resize(d.min(n), 0.0);
    v
}

#[test]
fn effective_dimension_equals_dense_pca_and_twonn() {
    for name in MODELS {
        let m = loaded(name);
        let cfg = m.model.config.clone();
        let ps = prompts(&m, 30, 11);
        let tokens: usize = ps.iter().map(|p| p.len() - 1).sum();
        let body = format!(
            "kind = \"effective_dimension\"\nheads = [0, 2]\ntwonn_points = {}",
            tokens + 10
        );
        let mut a = built(&analysis_a(&experiment(&body)), &m);
        let sink = run_dataset(a.as_mut(), &m, &ps, 7, PaddingSide::Left).unwrap();
        let main = sink.part(None).unwrap();
        let spectrum = sink.part(Some("spectrum")).unwrap();
        let (layers, heads, hooks) = (
            ints(&main, "layer"),
            opt_ints(&main, "head"),
            texts(&main, "hook"),
        );
        assert_eq!(main.len(), cfg.n_layers * 3);
        for row in 0..main.len() {
            let layer = layers[row];
            let (hook, dense): (HookPoint, Vec<Vec<f64>>) = match heads[row] {
                None => {
                    let hook = HookPoint::layer(layer, HookKind::ResidPost);
                    let acts = alone(&m, &ps, hook);
                    (
                        hook,
                        acts.iter()
                            .flat_map(|r| {
                                r[1..]
                                    .iter()
                                    .map(|v| v.iter().map(|&x| f64::from(x)).collect())
                            })
                            .collect(),
                    )
                }
                Some(h) => {
                    // attn.hook_result: [1, pos, head, d_model], captured per prompt.
                    let hook = HookPoint::layer(layer, HookKind::Result);
                    let rows = ps
                        .iter()
                        .flat_map(|p| {
                            let batch = TokenBatch::unpadded(
                                std::slice::from_ref(&p.tokens),
                                &Device::flex(),
                            );
                            let out = m.model.forward(
                                &batch,
                                &Intervention::capture([hook]),
                                Span::default(),
                            );
                            let t = out.cache.get4(&hook).unwrap();
                            let [_, len, n_heads, d] = t.dims();
                            let v = host_values(&t);
                            (1..len)
                                .map(move |i| {
                                    let at = (i * n_heads + h as usize) * d;
                                    v[at..at + d]
                                        .iter()
                                        .map(|&x| f64::from(x))
                                        .collect::<Vec<f64>>()
                                })
                                .collect::<Vec<_>>()
                        })
                        .collect();
                    (hook, rows)
                }
            };
            assert_eq!(hooks[row], hook.to_string());
            assert_eq!(ints(&main, "tokens")[row], tokens);
            let want = pca_variances(&dense);
            let total: f64 = want.iter().sum();
            let pr = total * total / want.iter().map(|v| v * v).sum::<f64>();
            let rel = |got: f64, want: f64| (got - want).abs() / want.abs().max(1e-12);
            assert!(
                rel(f64s(&main, "total_variance")[row], total) < 1e-6,
                "{name} {hook}"
            );
            assert!(
                rel(f64s(&main, "participation_ratio")[row], pr) < 1e-6,
                "{name} {hook}"
            );
            // The spectrum rows of this hook, against the dense eigenvalues.
            let (s_layers, s_heads) = (ints(&spectrum, "layer"), opt_ints(&spectrum, "head"));
            let got: Vec<f64> = (0..spectrum.len())
                .filter(|&i| s_layers[i] == layer && s_heads[i] == heads[row])
                .map(|i| f64s(&spectrum, "variance")[i])
                .collect();
            for (k, g) in got.iter().enumerate() {
                assert!(
                    (g - want[k]).abs() < 1e-6 * total,
                    "{name} {hook} component {k}: {g} vs {}",
                    want[k]
                );
            }
            let needed = |share: f64| {
                let mut c = 0.0;
                want.iter()
                    .position(|v| {
                        c += v;
                        c >= share * total
                    })
                    .unwrap()
                    + 1
            };
            assert_eq!(
                ints(&main, "components_90")[row],
                needed(0.9),
                "{name} {hook}"
            );
            assert_eq!(
                ints(&main, "components_99")[row],
                needed(0.99),
                "{name} {hook}"
            );
            // The reservoir held every token: TwoNN of the dense vectors themselves.
            let points = Mat::from_fn(dense.len(), dense[0].len(), |i, j| dense[i][j]);
            let (twonn, used) = two_nn(&points).unwrap();
            assert!(
                rel(f64s(&main, "twonn")[row], twonn) < 1e-6,
                "{name} {hook}: {} vs {twonn}",
                f64s(&main, "twonn")[row]
            );
            assert_eq!(opt_ints(&main, "twonn_points")[row], Some(used as i64));
        }
    }
}

#[test]
fn logit_effects_equal_a_host_product_and_survive_weight_processing() {
    for name in MODELS {
        let raw = loaded_with(name, Processing::none());
        let folded = loaded(name);
        let body = "kind = \"neuron_logit_effect\"\nlayers = [0]\nneurons = [3, 40]\ntop_k = 4";
        let spec = analysis_a(&format!(
            "[models.m]\npath = \"m\"\n[analyses.a]\nmodel = \"m\"\n{body}\n"
        ));
        let table = |m: &LoadedModel| {
            let mut a = built(&spec, m);
            let mut sink = circuitry_circuits::table::MemorySink::default();
            a.finish(&crate::iv_common::context(m), &mut sink).unwrap();
            check_declared(a.as_ref(), &sink);
            sink.part(None).unwrap()
        };
        let (t_raw, t_folded) = (table(&raw), table(&folded));
        // Brute force on the raw weights: (w_out[n] - mean) * ln_final.w @ W_U.
        let d = raw.model.config.d_model;
        let w_out = host_values(&raw.model.blocks()[0].mlp().unwrap().w_out());
        let gamma = host_values(&raw.model.ln_final().w().unwrap());
        let w_u = host_values(&raw.model.w_u());
        let vocab = w_u.len() / d;
        for n in [3usize, 40] {
            let row = &w_out[n * d..(n + 1) * d];
            let mean = if raw.model.ln_final().kind().centers() {
                row.iter().map(|&x| f64::from(x)).sum::<f64>() / d as f64
            } else {
                0.0
            };
            let dir: Vec<f64> = row
                .iter()
                .zip(&gamma)
                .map(|(&x, &g)| (f64::from(x) - mean) * f64::from(g))
                .collect();
            let effect: Vec<f64> = (0..vocab)
                .map(|v| (0..d).map(|i| dir[i] * f64::from(w_u[i * vocab + v])).sum())
                .collect();
            let mut order: Vec<usize> = (0..vocab).collect();
            order.sort_by(|&a, &b| effect[b].total_cmp(&effect[a]));
            let rows = rows_of(&t_raw, 0, n);
            let (kinds, ids, effects) = (
                texts(&t_raw, "kind"),
                ints(&t_raw, "token_id"),
                f32s(&t_raw, "effect"),
            );
            let top: Vec<usize> = rows
                .iter()
                .copied()
                .filter(|&i| kinds[i] == "top")
                .collect();
            let bottom: Vec<usize> = rows
                .iter()
                .copied()
                .filter(|&i| kinds[i] == "bottom")
                .collect();
            for (rank, &i) in top.iter().enumerate() {
                assert_eq!(ids[i], order[rank], "{name} {n} top {rank}");
                let want = effect[order[rank]];
                assert!(
                    (effects[i] - want).abs() < 1e-5,
                    "{name} {n} top {rank}: {} vs {want}",
                    effects[i]
                );
            }
            for (rank, &i) in bottom.iter().enumerate() {
                assert_eq!(ids[i], order[vocab - 1 - rank], "{name} {n} bottom {rank}");
            }
            // Folding the norm into W_U and centring the unembedding shift each neuron's effects
            // by a constant: the same tokens, the same spread.
            let folded_rows = rows_of(&t_folded, 0, n);
            let f_ids = ints(&t_folded, "token_id");
            assert_eq!(
                rows.iter().map(|&i| ids[i]).collect::<Vec<_>>(),
                folded_rows.iter().map(|&i| f_ids[i]).collect::<Vec<_>>()
            );
            let spread = |t: &Table, i: usize| f32s(t, "effect_std")[i];
            assert!((spread(&t_raw, rows[0]) - spread(&t_folded, folded_rows[0])).abs() < 1e-5);
        }
    }
}

/// An orthonormal basis of the row space of `w` (`k x d`, full row rank) from QR.
fn qr_basis(w: &Mat) -> Mat {
    w.transpose().qr().0
}

#[test]
fn subspace_overlaps_equal_principal_angles_from_qr_and_svd() {
    for name in MODELS {
        let m = loaded_with(name, Processing::none());
        let cfg = m.model.config.clone();
        let spec = analysis_a(
            "[models.m]\npath = \"m\"\n[analyses.a]\nmodel = \"m\"\nkind = \"subspace_overlap\"\nheads = [0, 1]\n",
        );
        let mut a = built(&spec, &m);
        let mut sink = circuitry_circuits::table::MemorySink::default();
        a.finish(&crate::iv_common::context(&m), &mut sink).unwrap();
        check_declared(a.as_ref(), &sink);
        let t = sink.part(None).unwrap();
        let (d, dh) = (cfg.d_model, cfg.d_head);
        // Every head's output space (QR of W_O^T) and every MLP's top-d_head directions (SVD).
        let mut bases: Vec<(&str, Option<i64>, Option<i64>, Mat)> = Vec::new();
        let top_right = |w: Vec<f32>, rows: usize| {
            let v = Mat::from_f32(rows, d, &w).svd().v;
            Mat::from_fn(d, dh, |i, j| v[(i, j)])
        };
        bases.push((
            "embed",
            None,
            None,
            top_right(host_values(&m.model.w_e()), cfg.d_vocab),
        ));
        for layer in 0..cfg.n_layers {
            let w_o = host_values(&m.model.blocks()[layer].attn().w_o_heads());
            for head in 0..2 {
                let w = Mat::from_f32(dh, d, &w_o[head * dh * d..(head + 1) * dh * d]);
                bases.push(("head", Some(layer as i64), Some(head as i64), qr_basis(&w)));
            }
            let w_out = host_values(&m.model.blocks()[layer].mlp().unwrap().w_out());
            bases.push(("mlp", Some(layer as i64), None, top_right(w_out, cfg.d_mlp)));
        }
        let (ca, la, ha) = (
            texts(&t, "component_a"),
            opt_ints(&t, "layer_a"),
            opt_ints(&t, "head_a"),
        );
        let (cb, lb, hb) = (
            texts(&t, "component_b"),
            opt_ints(&t, "layer_b"),
            opt_ints(&t, "head_b"),
        );
        let find = |c: &str, l: Option<i64>, h: Option<i64>| {
            bases
                .iter()
                .find(|b| b.0 == c && b.1 == l && b.2 == h)
                .map(|b| &b.3)
        };
        let mut checked = 0;
        for i in 0..t.len() {
            let (Some(a), Some(b)) = (find(&ca[i], la[i], ha[i]), find(&cb[i], lb[i], hb[i]))
            else {
                continue; // pos_embed
            };
            let cos = a.t_matmul(b).singular_values();
            assert!(
                (f64s(&t, "max_cosine")[i] - cos[0].min(1.0)).abs() < 1e-6,
                "{name} row {i}"
            );
            let mean = cos.iter().map(|c| c * c).sum::<f64>() / dh as f64;
            assert!(
                (f64s(&t, "mean_cos2")[i] - mean).abs() < 1e-6,
                "{name} row {i}"
            );
            assert!((f64s(&t, "random_mean_cos2")[i] - dh as f64 / d as f64).abs() < 1e-12);
            checked += 1;
        }
        let components = bases.len() + usize::from(m.model.w_pos().is_some());
        assert_eq!(t.len(), components * (components - 1) / 2);
        assert_eq!(checked, bases.len() * (bases.len() - 1) / 2);
    }
}
