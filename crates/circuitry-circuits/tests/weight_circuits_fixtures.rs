//! Weight-circuit analyses on the tiny GPT-2 (LayerNorm, learned positions) and Llama (RMSNorm,
//! GQA, tied embeddings) fixtures, under TransformerLens's default weight processing, against
//! the values TransformerLens computed (`processed.*` in `reference.safetensors`, 1e-4).

use crate::iv_common::{MODELS, loaded_with};
use crate::wc_common;

use circuitry_circuits::factored::{BlockOptions, FactoredMatrix, Ranking};
use circuitry_circuits::weight_circuits::CircuitWeights;
use circuitry_circuits::weight_circuits::composition::{
    CompositionKind, composition_score, composition_score_tensor, composition_scores,
};
use circuitry_circuits::weight_circuits::ov::{
    OvOptions, copying_score, copying_scores, ov_circuits, ov_scores_table,
};
use circuitry_circuits::weight_circuits::qk::{QkOptions, qk_circuits, qk_positional_table};
use circuitry_models::Processing;
use wc_common::*;

const ATOL: f64 = 1e-4;

fn weights(name: &str, processing: Processing) -> CircuitWeights {
    CircuitWeights::from_transformer(&loaded_with(name, processing).model)
}

#[test]
fn composition_scores_match_transformer_lens() {
    for name in MODELS {
        let w = weights(name, Processing::all());
        let (l, h) = (w.n_layers, w.n_heads);
        for kind in CompositionKind::ALL {
            let key = format!("processed.composition_{}", kind.name().to_lowercase());
            let (shape, want) = reference(name, &key);
            assert_eq!(shape, vec![l, h, l, h], "{name} {key}");
            let got = composition_score_tensor(&w, kind);
            let mut nonzero = 0;
            for (i, (g, r)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (g - r).abs() < ATOL,
                    "{name} {key}[{i}]: got {g}, TransformerLens {r}"
                );
                nonzero += (*r != 0.0) as usize;
            }
            // Every pair across layers was compared, and only those.
            assert_eq!(nonzero, h * h * l * (l - 1) / 2, "{name} {key}");
            // The batched all-pairs path equals the per-pair factored path.
            for s in composition_scores(&w, kind) {
                let single =
                    composition_score(&w, kind, (s.layer_a, s.head_a), (s.layer_b, s.head_b));
                assert!(
                    (s.score - single).abs() < 1e-12,
                    "{name} {kind:?} {s:?} vs {single}"
                );
                assert!(s.layer_a < s.layer_b);
            }
        }
    }
}

#[test]
fn composition_scores_match_dense_products() {
    // Independent of TransformerLens and of the collapsed-factor trick: dense d_model x d_model
    // products with plain loops, for one pair per kind.
    let w = weights("llama-tiny", Processing::all());
    let ov_a = naive_matmul(&w.head(0, 1).w_v, &w.head(0, 1).w_o);
    let hb = w.head(1, 2);
    let qk_b = naive_matmul(&hb.w_q, &naive_transpose(&hb.w_k));
    let ov_b = naive_matmul(&hb.w_v, &hb.w_o);
    for (kind, wb) in [
        (CompositionKind::Q, qk_b.clone()),
        (CompositionKind::K, naive_transpose(&qk_b)),
        (CompositionKind::V, ov_b),
    ] {
        let want = naive_frobenius(&naive_matmul(&ov_a, &wb))
            / (naive_frobenius(&ov_a) * naive_frobenius(&wb));
        let got = composition_score(&w, kind, (0, 1), (1, 2));
        assert_close(got, want, 1e-10, &format!("{kind:?}"));
    }
}

#[test]
fn copying_scores_match_transformer_lens() {
    for name in MODELS {
        let w = weights(name, Processing::all());
        let scores = copying_scores(&w).unwrap();
        let (resid, full) = (&scores.resid, &scores.full);
        for (key, got) in [
            ("processed.ov_copying_score", &resid),
            ("processed.full_ov_copying_score", &full),
        ] {
            let (shape, want) = reference(name, key);
            assert_eq!(shape, vec![w.n_layers, w.n_heads]);
            for (l, row) in got.iter().enumerate() {
                for (h, g) in row.iter().enumerate() {
                    let r = want[l * w.n_heads + h];
                    assert!(
                        (g - r).abs() < ATOL,
                        "{name} {key}[{l},{h}]: got {g}, TransformerLens {r}"
                    );
                }
            }
        }
        // The full analysis reports the same scores.
        let results = ov_circuits(
            &w,
            &OvOptions {
                top_k: 3,
                ..OvOptions::default()
            },
        )
        .unwrap();
        assert_eq!(results.len(), w.n_layers * w.n_heads);
        for r in &results {
            assert_eq!(r.copying_score, resid[r.layer][r.head]);
            assert_eq!(r.full_copying_score, full[r.layer][r.head]);
        }
    }
}

#[test]
fn copying_score_uses_the_nonzero_spectrum_of_the_dense_circuit() {
    // Cross-check on the dense d_vocab x d_vocab circuit (eigenvalues of the full matrix).
    let w = weights("gpt2-tiny", Processing::all());
    let full = w.full_ov(1, 3);
    let dense_ev = naive_matmul(full.a(), full.b()).eigenvalues().unwrap();
    let got = copying_score(&full.eigenvalues().unwrap());
    assert_close(
        got,
        copying_score(&dense_ev),
        1e-8,
        "dense vs factored copying score",
    );
}

#[test]
fn blockwise_top_k_equals_dense_brute_force() {
    for name in MODELS {
        let w = weights(name, Processing::all());
        for (l, h) in [(0, 0), (1, 3)] {
            for (circuit, f) in [("full_ov", w.full_ov(l, h)), ("full_qk", w.full_qk(l, h))] {
                let dense = naive_matmul(f.a(), f.b());
                assert_eq!(dense.shape(), (w.d_vocab, w.d_vocab));
                for ranking in [Ranking::Largest, Ranking::Smallest, Ranking::LargestAbs] {
                    // 1000 entries per block: 7 rows of 128 at a time, 19 blocks.
                    let opts = BlockOptions {
                        max_block_elems: 1000,
                    };
                    let got = f.top_k(50, ranking, &opts);
                    let want = brute_top_k(&dense, 50, ranking, |_, _| true);
                    assert_entries_eq(
                        &got,
                        &want,
                        1e-9,
                        &format!("{name} L{l}H{h} {circuit} {ranking:?}"),
                    );
                }
            }
        }
        // Through the analysis: OV rows are source tokens, QK rows are query (destination) tokens.
        let ov = ov_circuits(
            &w,
            &OvOptions {
                heads: Some(vec![(1, 2)]),
                top_k: 10,
                ranking: Ranking::Largest,
                block: BlockOptions {
                    max_block_elems: 500,
                },
            },
        )
        .unwrap();
        let dense = naive_matmul(w.full_ov(1, 2).a(), w.full_ov(1, 2).b());
        let want = brute_top_k(&dense, 10, Ranking::Largest, |_, _| true);
        for (p, e) in ov[0].top_pairs.iter().zip(&want) {
            assert_eq!(
                (p.src_token as usize, p.dst_token as usize),
                (e.row, e.col),
                "{name} OV pair"
            );
            assert!((p.value - e.value).abs() < 1e-9);
        }
        let qk = qk_circuits(
            &w,
            &QkOptions {
                heads: Some(vec![(0, 1)]),
                top_k: 10,
                block: BlockOptions {
                    max_block_elems: 500,
                },
                ..QkOptions::default()
            },
        );
        let dense = naive_matmul(w.full_qk(0, 1).a(), w.full_qk(0, 1).b());
        let want = brute_top_k(&dense, 10, Ranking::Largest, |_, _| true);
        for (rank, (p, e)) in qk[0].top_pairs.iter().zip(&want).enumerate() {
            assert_eq!(p.rank as usize, rank);
            assert_eq!(
                (p.dst_token as usize, p.src_token as usize),
                (e.row, e.col),
                "{name} QK pair"
            );
            assert!((p.value - e.value).abs() < 1e-9);
        }
    }
}

#[test]
fn qk_circuit_definitions_and_positions() {
    let w = weights("gpt2-tiny", Processing::all());
    let opts = QkOptions {
        top_k: 0,
        max_positions: 20,
        ..QkOptions::default()
    };
    let results = qk_circuits(&w, &opts);
    assert_eq!(results.len(), w.n_layers * w.n_heads);
    let w_pos = w.w_pos.as_ref().expect("gpt2 has learned positions");
    for r in &results {
        let hw = w.head(r.layer, r.head);
        assert!(r.top_pairs.is_empty());
        // Singular values of W_Q W_Kᵀ: their squares sum to the dense Frobenius norm².
        let qk = naive_matmul(&hw.w_q, &naive_transpose(&hw.w_k));
        assert_eq!(r.singular_values.len(), w.d_head);
        let ss: f64 = r.singular_values.iter().map(|s| s * s).sum();
        assert_close(ss, naive_frobenius(&qk).powi(2), 1e-9 * ss, "Σσ² of QK");
        // Positional circuit: the causal part of W_pos[:20] W_Q W_Kᵀ W_pos[:20]ᵀ.
        assert_eq!(r.positional.len(), 20 * 21 / 2);
        let p = w_pos.select_rows(0..20);
        let dense = naive_matmul(&naive_matmul(&p, &qk), &naive_transpose(&p));
        for s in &r.positional {
            assert!(s.key_pos <= s.query_pos);
            let want = dense[(s.query_pos as usize, s.key_pos as usize)];
            assert_close(
                s.score,
                want,
                1e-9 * want.abs().max(1.0),
                "positional score",
            );
        }
    }
    let t = qk_positional_table(&results);
    assert_eq!(t.len(), results.len() * 210);
    // Capped at n_ctx.
    let big = qk_circuits(
        &w,
        &QkOptions {
            heads: Some(vec![(0, 0)]),
            top_k: 0,
            max_positions: 10_000,
            ..QkOptions::default()
        },
    );
    assert_eq!(
        big[0].positional.len(),
        w_pos.rows() * (w_pos.rows() + 1) / 2
    );
    // Rotary models have no positional circuit.
    let llama = weights("llama-tiny", Processing::all());
    assert!(llama.w_pos.is_none());
    assert!(
        qk_circuits(&llama, &opts)
            .iter()
            .all(|r| r.positional.is_empty())
    );
}

#[test]
fn ov_singular_values_and_processing_matters() {
    let w = weights("gpt2-tiny", Processing::all());
    let results = ov_circuits(
        &w,
        &OvOptions {
            top_k: 0,
            ..OvOptions::default()
        },
    )
    .unwrap();
    for r in &results {
        let hw = w.head(r.layer, r.head);
        let ov = naive_matmul(&hw.w_v, &hw.w_o);
        let ss: f64 = r.singular_values.iter().map(|s| s * s).sum();
        assert_close(ss, naive_frobenius(&ov).powi(2), 1e-9 * ss, "Σσ² of OV");
        let full = w.full_ov(r.layer, r.head);
        let fs: f64 = r.full_singular_values.iter().map(|s| s * s).sum();
        let dense = naive_matmul(full.a(), full.b());
        assert_close(
            fs,
            naive_frobenius(&dense).powi(2),
            1e-9 * fs,
            "Σσ² of full OV",
        );
        assert!(r.top_pairs.is_empty());
    }
    // Without processing the weights differ, and so do the scores (the reference is processed).
    let raw = weights("gpt2-tiny", Processing::none());
    let (_, want) = reference("gpt2-tiny", "processed.composition_v");
    let got = composition_score_tensor(&raw, CompositionKind::V);
    let max = got
        .iter()
        .zip(&want)
        .map(|(g, r)| (g - r).abs())
        .fold(0.0, f64::max);
    assert!(
        max > 1e-3,
        "unprocessed weights should not reproduce processed scores ({max})"
    );
}

fn column_names(t: &circuitry_circuits::table::Table) -> Vec<&'static str> {
    t.schema.iter().map(|c| c.name).collect()
}

#[test]
fn tables_have_explicit_columns() {
    let w = weights("llama-tiny", Processing::all());
    let ov = ov_circuits(
        &w,
        &OvOptions {
            top_k: 4,
            ..OvOptions::default()
        },
    )
    .unwrap();
    let n = w.n_layers * w.n_heads;
    let t = ov_scores_table(&ov);
    assert_eq!(
        column_names(&t),
        ["layer", "head", "copying_score", "full_copying_score"]
    );
    assert_eq!(t.len(), n);
    let qk = qk_circuits(
        &w,
        &QkOptions {
            top_k: 2,
            ..QkOptions::default()
        },
    );
    assert_eq!(qk_positional_table(&qk).len(), 0);
    assert!(t.schema.iter().all(|c| !c.description.is_empty()));
    // Identity check on FactoredMatrix built from the same weights.
    let f = FactoredMatrix::new(w.head(0, 0).w_v.clone(), w.head(0, 0).w_o.clone());
    assert_eq!(f, w.ov(0, 0));
}
