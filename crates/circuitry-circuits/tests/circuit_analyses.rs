//! The weight-circuit analyses (`ov_circuit`, `qk_circuit`, `composition_scores`) and
//! `induction_scores`, built from experiment-file text and driven through the `Analysis` trait
//! with a `MemorySink`, on the tiny GPT-2 (learned positions) and Llama (rotary, GQA) fixtures
//! under TransformerLens's default processing; values against TransformerLens's
//! (`reference.safetensors`, 1e-4) and naive dense products.

use crate::analysis_common::*;
use crate::iv_common::{MODELS, context, loaded as model};
use crate::wc_common;
use circuitry_circuits::analyses::build;

use circuitry_circuits::analyses::induction_scores::repeat_bounds;
use circuitry_circuits::analysis::{Analysis, Requirements};
use circuitry_circuits::matrix::Mat;
use circuitry_circuits::table::{MemorySink, Table};
use circuitry_circuits::weight_circuits::CircuitWeights;
use circuitry_circuits::weight_circuits::composition::{CompositionKind, composition_baseline};
use circuitry_data::Prompt;
use circuitry_models::{LoadedModel, PaddingSide};
use circuitry_spec::{AnalysisSpec, Experiment};
use wc_common::*;

const ATOL: f64 = 1e-4;

/// The analysis `[analyses.a]` with these keys, as the spec parses and validates it (kinds that
/// read prompts get the `rep` dataset).
fn spec(body: &str) -> AnalysisSpec {
    let weights_only = ["ov_circuit", "qk_circuit", "composition_scores"]
        .iter()
        .any(|k| body.contains(&format!("\"{k}\"")));
    let dataset = if weights_only {
        ""
    } else {
        "dataset = \"rep\"\n"
    };
    let text = format!(
        "[models.m]\npath = \"m\"\n[datasets.rep]\ngenerator = \"repeated_tokens\"\nn = 4\n\
         length = 12\n[analyses.a]\nmodel = \"m\"\n{dataset}{body}\n"
    );
    analysis_a(&text)
}

fn analysis(body: &str, m: &LoadedModel) -> Box<dyn Analysis> {
    built(&spec(body), m)
}

/// Runs a weight-only analysis: checks its declarations and calls `finish` alone.
fn run_weights(body: &str, m: &LoadedModel) -> (Box<dyn Analysis>, MemorySink) {
    let mut a = analysis(body, m);
    assert_eq!(a.requirements(), Requirements::weights_only());
    let mut sink = MemorySink::default();
    a.finish(&context(m), &mut sink).unwrap();
    check_declared(a.as_ref(), &sink);
    (a, sink)
}

fn names(t: &Table) -> Vec<&'static str> {
    t.schema.iter().map(|c| c.name).collect()
}

fn parts(a: &dyn Analysis) -> Vec<Option<&'static str>> {
    a.tables().iter().map(|d| d.part).collect()
}

#[test]
fn ov_circuit_matches_transformer_lens() {
    for name in MODELS {
        let m = model(name);
        let cfg = m.model.config.clone();
        let (l, h) = (cfg.n_layers, cfg.n_heads);
        let (a, sink) = run_weights("kind = \"ov_circuit\"\ntop_k = 5\nsingular_values = 3", &m);
        assert_eq!(
            parts(a.as_ref()),
            [None, Some("top_pairs"), Some("singular_values")]
        );

        let main = sink.part(None).unwrap();
        assert_eq!(
            names(&main),
            ["layer", "head", "copying_score", "full_copying_score"]
        );
        assert_eq!(main.len(), l * h);
        let (layers, heads) = (ints(&main, "layer"), ints(&main, "head"));
        for (col, key) in [
            ("copying_score", "processed.ov_copying_score"),
            ("full_copying_score", "processed.full_ov_copying_score"),
        ] {
            let (shape, want) = reference(name, key);
            assert_eq!(shape, [l, h]);
            for (i, got) in f64s(&main, col).into_iter().enumerate() {
                let r = want[layers[i] * h + heads[i]];
                assert_close(
                    got,
                    r,
                    ATOL,
                    &format!("{name} {col} L{}H{}", layers[i], heads[i]),
                );
            }
        }

        // Top pairs: the 5 largest entries of the dense W_E W_V W_O W_U, with token texts.
        let w = CircuitWeights::from_transformer(&m.model);
        let tokenizer = m.tokenizer.as_ref().unwrap();
        let top = sink.part(Some("top_pairs")).unwrap();
        assert_eq!(
            names(&top),
            [
                "layer",
                "head",
                "rank",
                "src_token",
                "src_text",
                "dst_token",
                "dst_text",
                "value"
            ]
        );
        assert_eq!(top.len(), l * h * 5);
        let (tl, th, rank) = (ints(&top, "layer"), ints(&top, "head"), ints(&top, "rank"));
        let (src, dst) = (ints(&top, "src_token"), ints(&top, "dst_token"));
        let (src_text, dst_text) = (texts(&top, "src_text"), texts(&top, "dst_text"));
        let values = f64s(&top, "value");
        for i in 0..top.len() {
            assert_eq!(rank[i], i % 5);
            if rank[i] == 0 {
                let f = w.full_ov(tl[i], th[i]);
                let dense = naive_matmul(f.a(), f.b());
                let want = brute_top_k(&dense, 5, Default::default(), |_, _| true);
                for (j, e) in want.iter().enumerate() {
                    assert_eq!((src[i + j], dst[i + j]), (e.row, e.col), "{name} pair {j}");
                    assert_close(values[i + j], e.value, 1e-9, "top pair value");
                }
            }
            assert_eq!(src_text[i], tokenizer.token_text(src[i] as u32));
            assert_eq!(dst_text[i], tokenizer.token_text(dst[i] as u32));
        }

        // Singular values: 3 per circuit and head, descending, the largest of the dense matrix.
        let sv = sink.part(Some("singular_values")).unwrap();
        assert_eq!(
            names(&sv),
            ["layer", "head", "circuit", "rank", "singular_value"]
        );
        assert_eq!(sv.len(), l * h * 2 * 3);
        let circuits = texts(&sv, "circuit");
        let s = f64s(&sv, "singular_value");
        assert_eq!(
            &circuits[..6],
            ["ov", "ov", "ov", "full_ov", "full_ov", "full_ov"]
        );
        for i in (0..sv.len()).step_by(3) {
            assert!(
                s[i] >= s[i + 1] && s[i + 1] >= s[i + 2],
                "{name} descending"
            );
        }
        let hw = w.head(0, 0);
        let ov = naive_matmul(&hw.w_v, &hw.w_o);
        // The largest singular value is the spectral norm: at most the Frobenius norm, and
        // at least it divided by sqrt(rank).
        let fro = naive_frobenius(&ov);
        assert!(s[0] <= fro + 1e-9 && s[0] >= fro / (cfg.d_head as f64).sqrt() - 1e-9);
    }
}

#[test]
fn ov_circuit_filters_and_skips() {
    let m = model("gpt2-tiny");
    let (a, sink) = run_weights(
        "kind = \"ov_circuit\"\nlayers = [1]\nheads = [0, 2]\ntop_k = 0\nsingular_values = 0",
        &m,
    );
    assert_eq!(parts(a.as_ref()), [None]);
    let main = sink.part(None).unwrap();
    assert_eq!(
        (ints(&main, "layer"), ints(&main, "head")),
        (vec![1, 1], vec![0, 2])
    );
    let (_, want) = reference("gpt2-tiny", "processed.ov_copying_score");
    let got = f64s(&main, "copying_score");
    assert_close(got[0], want[4], ATOL, "L1H0");
    assert_close(got[1], want[6], ATOL, "L1H2");
    assert!(sink.part(Some("top_pairs")).is_none());
    assert!(sink.part(Some("singular_values")).is_none());

    // Filters naming heads the model does not have are errors, not empty tables.
    let e = build(
        &spec("kind = \"ov_circuit\"\nlayers = [2]"),
        &m.model.config,
    )
    .err()
    .expect("layer 2 of 2");
    assert!(e.message.contains("layer 2 does not exist"), "{e}");
    let e = build(&spec("kind = \"qk_circuit\"\nheads = [4]"), &m.model.config)
        .err()
        .expect("head 4 of 4");
    assert!(e.message.contains("head 4 does not exist"), "{e}");
}

/// For each query position `q >= 1` of the `p x p` dense positional circuit, whether its best
/// causal key is `q - 1`; the fraction of such queries.
fn naive_previous_token(dense: &Mat, p: usize) -> f64 {
    let hits = (1..p)
        .filter(|&q| {
            let best = (0..=q)
                .max_by(|&a, &b| dense[(q, a)].total_cmp(&dense[(q, b)]))
                .unwrap();
            best + 1 == q
        })
        .count();
    hits as f64 / (p - 1) as f64
}

#[test]
fn qk_circuit_tables() {
    for name in MODELS {
        let m = model(name);
        let cfg = m.model.config.clone();
        let (l, h) = (cfg.n_layers, cfg.n_heads);
        let learned = name == "gpt2-tiny";
        let (a, sink) = run_weights(
            "kind = \"qk_circuit\"\ntop_k = 4\nsingular_values = 2\nmax_positions = 20",
            &m,
        );
        let want_parts: Vec<Option<&str>> = if learned {
            vec![
                None,
                Some("top_pairs"),
                Some("positional"),
                Some("singular_values"),
            ]
        } else {
            vec![None, Some("top_pairs"), Some("singular_values")]
        };
        assert_eq!(parts(a.as_ref()), want_parts, "{name}");

        let w = CircuitWeights::from_transformer(&m.model);
        let main = sink.part(None).unwrap();
        assert_eq!(
            names(&main),
            [
                "layer",
                "head",
                "frobenius_norm",
                "top_singular_value",
                "full_frobenius_norm",
                "positional_previous_token"
            ]
        );
        assert_eq!(main.len(), l * h);
        let (layers, heads) = (ints(&main, "layer"), ints(&main, "head"));
        let (fro, top, full) = (
            f64s(&main, "frobenius_norm"),
            f64s(&main, "top_singular_value"),
            f64s(&main, "full_frobenius_norm"),
        );
        let prev = nullable_f64s(&main, "positional_previous_token");
        for i in 0..main.len() {
            let hw = w.head(layers[i], heads[i]);
            let qk = naive_matmul(&hw.w_q, &naive_transpose(&hw.w_k));
            assert_close(fro[i], naive_frobenius(&qk), 1e-9 * fro[i], "QK norm");
            assert!(top[i] <= fro[i] + 1e-12 && top[i] > 0.0);
            let f = w.full_qk(layers[i], heads[i]);
            let dense = naive_matmul(f.a(), f.b());
            assert_close(
                full[i],
                naive_frobenius(&dense),
                1e-9 * full[i],
                "full QK norm",
            );
            if learned {
                let p = w.w_pos.as_ref().unwrap().select_rows(0..20);
                let pos = naive_matmul(&naive_matmul(&p, &qk), &naive_transpose(&p));
                let want = naive_previous_token(&pos, 20);
                assert_close(
                    prev[i].expect("learned positions"),
                    want,
                    1e-12,
                    "prev-token",
                );
            } else {
                assert_eq!(prev[i], None, "rotary models have no positional circuit");
            }
        }

        // Top pairs: rows are query (dst) tokens, columns key (src) tokens.
        let t = sink.part(Some("top_pairs")).unwrap();
        assert_eq!(t.len(), l * h * 4);
        let (tl, th) = (ints(&t, "layer"), ints(&t, "head"));
        let (src, dst, values) = (
            ints(&t, "src_token"),
            ints(&t, "dst_token"),
            f64s(&t, "value"),
        );
        for i in 0..t.len() {
            let want = w.full_qk(tl[i], th[i]).entry(dst[i], src[i]);
            assert_close(values[i], want, 1e-9, "QK pair value");
        }
        assert_eq!(
            texts(&t, "dst_text")[0],
            m.tokenizer.as_ref().unwrap().token_text(dst[0] as u32)
        );

        if learned {
            let t = sink.part(Some("positional")).unwrap();
            assert_eq!(
                names(&t),
                ["layer", "head", "query_position", "key_position", "score"]
            );
            assert_eq!(t.len(), l * h * 20 * 21 / 2);
        } else {
            assert!(sink.part(Some("positional")).is_none());
        }
        let sv = sink.part(Some("singular_values")).unwrap();
        assert_eq!(sv.len(), l * h * 2 * 2);
        assert_eq!(
            &texts(&sv, "circuit")[..4],
            ["qk", "qk", "full_qk", "full_qk"]
        );
        assert_eq!(f64s(&sv, "singular_value")[0], top[0]);
    }
}

#[test]
fn qk_positional_caps_at_the_context_and_can_be_skipped() {
    let m = model("gpt2-tiny");
    let (_, sink) = run_weights(
        "kind = \"qk_circuit\"\nlayers = [0]\nheads = [1]\ntop_k = 0\nmax_positions = 1000",
        &m,
    );
    let n_ctx = m.model.config.n_ctx;
    assert_eq!(
        sink.part(Some("positional")).unwrap().len(),
        n_ctx * (n_ctx + 1) / 2
    );
    let (a, sink) = run_weights("kind = \"qk_circuit\"\ntop_k = 0\nmax_positions = 0", &m);
    assert_eq!(parts(a.as_ref()), [None, Some("singular_values")]);
    let main = sink.part(None).unwrap();
    assert!(
        nullable_f64s(&main, "positional_previous_token")
            .iter()
            .all(Option::is_none)
    );
}

#[test]
fn composition_scores_match_transformer_lens() {
    for name in MODELS {
        let m = model(name);
        let cfg = m.model.config.clone();
        let (l, h) = (cfg.n_layers, cfg.n_heads);
        let (a, sink) = run_weights(
            "kind = \"composition_scores\"\nbaseline_samples = 40\nseed = 5",
            &m,
        );
        assert_eq!(parts(a.as_ref()), [None]);
        let t = sink.part(None).unwrap();
        assert_eq!(
            names(&t),
            [
                "layer_a",
                "head_a",
                "layer_b",
                "head_b",
                "kind",
                "score",
                "baseline_mean",
                "baseline_std"
            ]
        );
        let pairs = h * h * l * (l - 1) / 2;
        assert_eq!(t.len(), 3 * pairs);
        let kinds = texts(&t, "kind");
        let (la, ha, lb, hb) = (
            ints(&t, "layer_a"),
            ints(&t, "head_a"),
            ints(&t, "layer_b"),
            ints(&t, "head_b"),
        );
        let scores = f64s(&t, "score");
        for kind in ["q", "k", "v"] {
            let (shape, want) = reference(name, &format!("processed.composition_{kind}"));
            assert_eq!(shape, [l, h, l, h]);
            let rows: Vec<usize> = (0..t.len()).filter(|&i| kinds[i] == kind).collect();
            assert_eq!(rows.len(), pairs, "{name} {kind}");
            for i in rows {
                assert!(la[i] < lb[i]);
                let r = want[((la[i] * h + ha[i]) * l + lb[i]) * h + hb[i]];
                assert_close(scores[i], r, ATOL, &format!("{name} {kind} composition"));
            }
        }
        // The baseline: the library's seeded Monte Carlo, the same on every row.
        let w = CircuitWeights::from_transformer(&m.model);
        let b = composition_baseline(&w, CompositionKind::Q, 40, 5);
        let (mean, std) = (f64s(&t, "baseline_mean"), f64s(&t, "baseline_std"));
        assert!(mean.iter().all(|&x| x == b.mean) && std.iter().all(|&x| x == b.std));
        // Unrelated matrices score about 1/sqrt(d_model).
        let expect = 1.0 / (cfg.d_model as f64).sqrt();
        assert!(
            (b.mean - expect).abs() < 0.5 * expect,
            "{name}: {} vs {expect}",
            b.mean
        );
        assert!(b.std > 0.0);
    }
}

#[test]
fn composition_kinds_seeds_and_no_baseline() {
    let m = model("llama-tiny");
    let (_, sink) = run_weights(
        "kind = \"composition_scores\"\nkinds = [\"v\"]\nbaseline_samples = 0",
        &m,
    );
    let t = sink.part(None).unwrap();
    assert_eq!(t.len(), 16);
    assert!(texts(&t, "kind").iter().all(|k| k == "v"));
    assert!(
        nullable_f64s(&t, "baseline_mean")
            .iter()
            .all(Option::is_none)
    );
    assert!(
        nullable_f64s(&t, "baseline_std")
            .iter()
            .all(Option::is_none)
    );

    let baseline = |seed: u64| {
        let (_, sink) = run_weights(
            &format!(
                "kind = \"composition_scores\"\nkinds = [\"k\"]\nbaseline_samples = 20\nseed = {seed}"
            ),
            &m,
        );
        f64s(&sink.part(None).unwrap(), "baseline_mean")[0]
    };
    assert_eq!(baseline(1), baseline(1));
    assert_ne!(baseline(1), baseline(2));
}

/// The fixture's repeated prompts: [BOS] + 12 random tokens, twice.
fn repeated_prompts(name: &str) -> Vec<Prompt> {
    let r = fixture_ids(name, "repeated.input_ids");
    r.into_iter()
        .enumerate()
        .map(|(i, tokens)| repeated_prompt(i as u32, tokens, 12))
        .collect()
}

fn repeated_prompt(id: u32, tokens: Vec<u32>, length: usize) -> Prompt {
    assert_eq!(tokens.len(), 1 + 2 * length);
    let mut p = Prompt::from_tokens(id, tokens);
    p.positions.insert("seq_start".into(), 1);
    p.positions.insert("repeat_start".into(), 1 + length);
    p
}

/// Rows of an i64 tensor of the fixture.
fn fixture_ids(name: &str, key: &str) -> Vec<Vec<u32>> {
    circuitry_testkit::load_reference(name)[key].rows()
}

/// TransformerLens's pattern of layer `layer`: `[prompt][head][q][k]` flattened.
fn tl_pattern(name: &str, layer: usize) -> (Vec<usize>, Vec<f64>) {
    reference(name, &format!("repeated.blocks.{layer}.attn.hook_pattern"))
}

#[test]
fn induction_scores_match_transformer_lens() {
    for name in MODELS {
        let m = model(name);
        let cfg = m.model.config.clone();
        let (l, h) = (cfg.n_layers, cfg.n_heads);
        let prompts = repeated_prompts(name);
        let mut a = analysis("kind = \"induction_scores\"", &m);
        assert_eq!(parts(a.as_ref()), [None]);
        let sink = run_dataset(a.as_mut(), &m, &prompts, 3, PaddingSide::Right).unwrap();
        let t = sink.part(None).unwrap();
        assert_eq!(
            names(&t),
            [
                "layer",
                "head",
                "induction_score",
                "previous_token_score",
                "duplicate_token_score",
                "n_prompts"
            ]
        );
        assert_eq!(t.len(), l * h);
        assert!(ints(&t, "n_prompts").iter().all(|&n| n == 4));
        let (layers, heads) = (ints(&t, "layer"), ints(&t, "head"));
        let (ind, prev, dup) = (
            f64s(&t, "induction_score"),
            f64s(&t, "previous_token_score"),
            f64s(&t, "duplicate_token_score"),
        );
        let (_, want_prev) = reference(name, "repeated.previous_token_score");
        let (_, want_ind_fixture) = reference(name, "repeated.induction_score");
        let (seq, len) = (25, 12);
        for i in 0..t.len() {
            let (layer, head) = (layers[i], heads[i]);
            let what = format!("{name} L{layer}H{head}");
            // previous_token_score is the fixture's definition exactly.
            assert_close(
                prev[i],
                want_prev[layer * h + head],
                ATOL,
                &format!("{what} prev"),
            );

            // The fixture's induction score averages queries 12..=24 (its diagonal starts one
            // query before the second repeat, at the last token of the first); ours (Olsson et
            // al.) averages the second repeat, queries 13..=24. Check that reading of the
            // fixture on TransformerLens's own patterns, then ours against the same patterns.
            let (shape, pat) = tl_pattern(name, layer);
            assert_eq!(shape, [4, h, seq, seq]);
            let at = |p: usize, q: usize, k: usize| pat[((p * h + head) * seq + q) * seq + k];
            let mean_over = |f: &dyn Fn(usize) -> f64| (0..4).map(f).sum::<f64>() / 4.0;
            let fixture_def = mean_over(&|p| {
                (len..seq).map(|q| at(p, q, q + 1 - len)).sum::<f64>() / (seq - len) as f64
            });
            assert_close(
                fixture_def,
                want_ind_fixture[layer * h + head],
                1e-6,
                &format!("{what} fixture definition"),
            );
            let tl_ind = mean_over(&|p| {
                (len + 1..seq).map(|q| at(p, q, q + 1 - len)).sum::<f64>() / len as f64
            });
            assert_close(ind[i], tl_ind, ATOL, &format!("{what} induction"));
            // Equivalently, from the fixture's value and the one extra entry it holds.
            let extra = mean_over(&|p| at(p, len, 1));
            let from_fixture =
                (want_ind_fixture[layer * h + head] * (len + 1) as f64 - extra) / len as f64;
            assert_close(
                ind[i],
                from_fixture,
                ATOL,
                &format!("{what} induction (fixture)"),
            );
            let tl_dup =
                mean_over(&|p| (len + 1..seq).map(|q| at(p, q, q - len)).sum::<f64>() / len as f64);
            assert_close(dup[i], tl_dup, ATOL, &format!("{what} duplicate"));
        }
    }
}

#[test]
fn induction_scores_per_prompt_and_padding() {
    let m = model("gpt2-tiny");
    let full = repeated_prompts("gpt2-tiny");
    // Prompts of different lengths: [BOS] + 12 + 12, [BOS] + 5 + 5, [BOS] + 8 + 8.
    let short = |id: u32, from: &Prompt, length: usize| {
        let r = &from.tokens[1..=length];
        let tokens = [&from.tokens[..1], r, r].concat();
        repeated_prompt(id, tokens, length)
    };
    let prompts = vec![
        full[0].clone(),
        short(1, &full[1], 5),
        short(2, &full[2], 8),
    ];
    let body = "kind = \"induction_scores\"\nper_prompt = true\nlayers = [1]\nheads = [0, 3]";
    let alone: Vec<Table> = prompts
        .iter()
        .map(|p| {
            let mut a = analysis(body, &m);
            let sink = run_dataset(
                a.as_mut(),
                &m,
                std::slice::from_ref(p),
                1,
                PaddingSide::Right,
            )
            .unwrap();
            sink.part(None).unwrap()
        })
        .collect();
    for side in [PaddingSide::Left, PaddingSide::Right] {
        let mut a = analysis(body, &m);
        let sink = run_dataset(a.as_mut(), &m, &prompts, 3, side).unwrap();
        let t = sink.part(None).unwrap();
        assert_eq!(
            names(&t),
            [
                "prompt",
                "layer",
                "head",
                "induction_score",
                "previous_token_score",
                "duplicate_token_score"
            ]
        );
        assert_eq!(t.len(), 3 * 2);
        assert_eq!(ints(&t, "prompt"), [0, 0, 1, 1, 2, 2]);
        assert_eq!(ints(&t, "layer"), [1; 6]);
        assert_eq!(ints(&t, "head"), [0, 3, 0, 3, 0, 3]);
        for col in [
            "induction_score",
            "previous_token_score",
            "duplicate_token_score",
        ] {
            let got = f64s(&t, col);
            for (p, single) in alone.iter().enumerate() {
                let want = f64s(single, col);
                for j in 0..2 {
                    assert_close(
                        got[2 * p + j],
                        want[j],
                        1e-5,
                        &format!("{side:?} {col} {p}"),
                    );
                }
            }
        }
    }

    // The averaged table is the mean of the per-prompt rows.
    let mut a = analysis("kind = \"induction_scores\"\nper_prompt = true", &m);
    let per = run_dataset(a.as_mut(), &m, &full, 4, PaddingSide::Right)
        .unwrap()
        .part(None)
        .unwrap();
    let mut a = analysis("kind = \"induction_scores\"", &m);
    let avg = run_dataset(a.as_mut(), &m, &full, 2, PaddingSide::Right)
        .unwrap()
        .part(None)
        .unwrap();
    let n_heads = avg.len();
    let (p_ind, a_ind) = (f64s(&per, "induction_score"), f64s(&avg, "induction_score"));
    for (i, &got) in a_ind.iter().enumerate() {
        let want = (0..4).map(|p| p_ind[p * n_heads + i]).sum::<f64>() / 4.0;
        assert_close(got, want, 1e-12, "mean of per-prompt scores");
    }
}

#[test]
fn induction_scores_need_repeat_positions() {
    let m = model("llama-tiny");
    let plain = Prompt::from_tokens(7, vec![1, 5, 9, 5, 9]);
    let mut a = analysis("kind = \"induction_scores\"", &m);
    let e = run_dataset(
        a.as_mut(),
        &m,
        std::slice::from_ref(&plain),
        1,
        PaddingSide::Right,
    )
    .unwrap_err();
    assert!(
        e.contains("prompt 7 has no position named `seq_start`")
            && e.contains("repeated_tokens dataset"),
        "{e}"
    );
    assert!(repeat_bounds(&plain).is_err());
    // The spec rejects other datasets before anything runs.
    let text = "[models.m]\npath = \"m\"\n[datasets.d]\nprompts = [\"a b\"]\n[analyses.a]\n\
                kind = \"induction_scores\"\nmodel = \"m\"\ndataset = \"d\"\n";
    let err = Experiment::from_str(text, "t.toml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("needs repeated prompts"), "{err}");
}
