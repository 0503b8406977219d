//! Every `FactoredMatrix` operation against dense computation (plain loops) on random small
//! cases: several seeds, rectangular and square shapes, inner dimension larger than the outer
//! ones, and rank-deficient factors.

use crate::wc_common;

use circuitry_circuits::factored::{BlockOptions, FactoredMatrix, Ranking};
use circuitry_circuits::matrix::{Complex, Mat};
use wc_common::*;

/// `(m, k, n, rank of A, rank of B)`; a rank below `k` makes the factor rank-deficient.
const SHAPES: [(usize, usize, usize, usize, usize); 10] = [
    (7, 3, 5, 3, 3),
    (5, 3, 7, 3, 3),
    (6, 6, 6, 6, 6),
    (9, 4, 9, 4, 4),
    (12, 5, 12, 2, 5),
    (12, 5, 12, 5, 3),
    (4, 6, 5, 4, 5),
    (1, 3, 4, 1, 3),
    (3, 1, 3, 1, 1),
    (20, 8, 16, 8, 8),
];
const SEEDS: [u64; 4] = [1, 2, 3, 42];

fn cases() -> Vec<(String, FactoredMatrix, Mat)> {
    let mut out = Vec::new();
    for &seed in &SEEDS {
        let mut rng = Rng::new(seed);
        for &(m, k, n, ra, rb) in &SHAPES {
            let a = if ra < k.min(m) {
                rng.low_rank(m, k, ra)
            } else {
                rng.matrix(m, k)
            };
            let b = if rb < k.min(n) {
                rng.low_rank(k, n, rb)
            } else {
                rng.matrix(k, n)
            };
            let dense = naive_matmul(&a, &b);
            let name = format!("seed {seed}, A {m}x{k} (rank<={ra}), B {k}x{n} (rank<={rb})");
            out.push((name, FactoredMatrix::new(a, b), dense));
        }
    }
    out
}

fn scale(m: &Mat) -> f64 {
    naive_frobenius(m).max(1.0)
}

#[test]
fn dense_transpose_scale_and_entries() {
    for (name, f, dense) in cases() {
        let tol = 1e-12 * scale(&dense);
        assert_eq!(f.shape(), dense.shape(), "{name}");
        assert_mat_close(&f.to_dense(), &dense, tol, &name);
        assert_mat_close(
            &f.transpose().to_dense(),
            &naive_transpose(&dense),
            tol,
            &name,
        );
        assert_mat_close(
            &f.scaled(-2.5).to_dense(),
            &dense.clone().scaled(-2.5),
            3.0 * tol,
            &name,
        );
        for i in 0..dense.rows() {
            let row = f.row(i);
            for j in 0..dense.cols() {
                assert_close(row[j], dense[(i, j)], tol, &format!("{name}: row {i}"));
                assert_close(
                    f.entry(i, j),
                    dense[(i, j)],
                    tol,
                    &format!("{name}: entry ({i},{j})"),
                );
            }
        }
        for j in 0..dense.cols() {
            let col = f.column(j);
            for i in 0..dense.rows() {
                assert_close(col[i], dense[(i, j)], tol, &format!("{name}: column {j}"));
            }
        }
        let diag = f.diagonal();
        assert_eq!(diag.len(), dense.rows().min(dense.cols()));
        for (i, d) in diag.iter().enumerate() {
            assert_close(*d, dense[(i, i)], tol, &format!("{name}: diagonal"));
        }
        let row_norms = f.row_norms();
        for (i, r) in row_norms.iter().enumerate() {
            let want = (0..dense.cols())
                .map(|j| dense[(i, j)].powi(2))
                .sum::<f64>()
                .sqrt();
            assert_close(*r, want, tol, &format!("{name}: row norm {i}"));
        }
        let col_norms = f.column_norms();
        for (j, c) in col_norms.iter().enumerate() {
            let want = (0..dense.rows())
                .map(|i| dense[(i, j)].powi(2))
                .sum::<f64>()
                .sqrt();
            assert_close(*c, want, tol, &format!("{name}: column norm {j}"));
        }
    }
}

#[test]
fn frobenius_norm_and_collapsed_factors() {
    for (name, f, dense) in cases() {
        let want = naive_frobenius(&dense);
        assert_close(
            f.frobenius_norm(),
            want,
            1e-12 * scale(&dense),
            &format!("{name}: norm"),
        );
        // M = Q_A·collapse_left, so collapse_leftᵀ·collapse_left = MᵀM; likewise on the right.
        let cl = f.collapse_left();
        assert_eq!(cl.shape(), (f.rows().min(f.inner()), f.cols()), "{name}");
        let mtm = naive_matmul(&naive_transpose(&dense), &dense);
        let tol = 1e-11 * scale(&dense).powi(2);
        assert_mat_close(
            &naive_matmul(&naive_transpose(&cl), &cl),
            &mtm,
            tol,
            &format!("{name}: collapse_left"),
        );
        let cr = f.collapse_right();
        assert_eq!(cr.shape(), (f.rows(), f.cols().min(f.inner())), "{name}");
        let mmt = naive_matmul(&dense, &naive_transpose(&dense));
        assert_mat_close(
            &naive_matmul(&cr, &naive_transpose(&cr)),
            &mmt,
            tol,
            &format!("{name}: collapse_right"),
        );
    }
}

#[test]
fn singular_values_and_svd() {
    for (name, f, dense) in cases() {
        let p = f.rows().min(f.cols()).min(f.inner());
        let s = f.singular_values();
        assert_eq!(s.len(), p, "{name}: count");
        assert!(
            s.windows(2).all(|w| w[0] >= w[1]) && s.iter().all(|&x| x >= 0.0),
            "{name}: order {s:?}"
        );
        let sc = scale(&dense);
        // Against the dense matrix's singular values (computed from the full product).
        let dense_s = dense.singular_values();
        for (i, x) in s.iter().enumerate() {
            assert_close(*x, dense_s[i], 1e-11 * sc, &format!("{name}: σ{i}"));
        }
        assert!(
            dense_s[p..].iter().all(|&x| x <= 1e-11 * sc),
            "{name}: dense extra σ {dense_s:?}"
        );
        // Power sums of σ² are traces of powers of MᵀM (an independent characterisation).
        let mtm = naive_matmul(&naive_transpose(&dense), &dense);
        for power in 1..=3 {
            let want = trace_of_power(&mtm, power);
            let got: f64 = s.iter().map(|x| x.powi(2 * power as i32)).sum();
            assert_close(
                got,
                want,
                1e-10 * want.abs().max(1.0),
                &format!("{name}: Σσ^{}", 2 * power),
            );
        }
        // The SVD reconstructs M with orthonormal singular vectors.
        let svd = f.svd();
        assert_eq!(svd.u.shape(), (f.rows(), p), "{name}: U shape");
        assert_eq!(svd.v.shape(), (f.cols(), p), "{name}: V shape");
        for (x, y) in svd.s.iter().zip(&s) {
            assert_close(*x, *y, 1e-12 * sc, &format!("{name}: svd σ"));
        }
        assert_orthonormal_columns(&svd.u, 1e-10, &format!("{name}: U"));
        assert_orthonormal_columns(&svd.v, 1e-10, &format!("{name}: V"));
        let us = Mat::from_fn(svd.u.rows(), p, |i, j| svd.u[(i, j)] * svd.s[j]);
        let rebuilt = naive_matmul(&us, &naive_transpose(&svd.v));
        assert_mat_close(&rebuilt, &dense, 1e-10 * sc, &format!("{name}: U S Vᵀ"));
    }
}

#[test]
fn eigenvalues_match_the_dense_spectrum() {
    for (name, f, dense) in cases() {
        if f.rows() != f.cols() {
            assert!(f.eigenvalues().is_err(), "{name}: not square");
            continue;
        }
        let ev = f.eigenvalues().unwrap();
        assert_eq!(ev.len(), f.rows().min(f.inner()), "{name}: count");
        let dense_ev = dense.eigenvalues().unwrap();
        assert_eq!(dense_ev.len(), f.rows());
        let d = multiset_distance(&ev, &dense_ev);
        assert!(
            d <= 1e-7 * scale(&dense),
            "{name}: spectra differ by {d}: {ev:?} vs {dense_ev:?}"
        );
        // Power sums Σλ^p = tr(M^p) (complex sums, real traces).
        for p in 1..=4 {
            let mut re = 0.0;
            let mut im = 0.0;
            for z in &ev {
                let (r, t) = (z.abs().powi(p as i32), z.im.atan2(z.re) * p as f64);
                re += r * t.cos();
                im += r * t.sin();
            }
            let want = trace_of_power(&dense, p);
            let tol = 1e-9 * scale(&dense).powi(p as i32);
            assert_close(re, want, tol, &format!("{name}: Re Σλ^{p}"));
            assert_close(im, 0.0, tol, &format!("{name}: Im Σλ^{p}"));
        }
        assert_close(
            f.trace().unwrap(),
            naive_trace(&dense),
            1e-12 * scale(&dense),
            &format!("{name}: trace"),
        );
    }
}

/// Upper triangular with inverse by back substitution (test-only helper).
fn upper_inverse(r: &Mat) -> Mat {
    let n = r.rows();
    let mut inv = Mat::zeros(n, n);
    for j in 0..n {
        for i in (0..=j).rev() {
            let mut s = if i == j { 1.0 } else { 0.0 };
            for p in i + 1..=j {
                s -= r[(i, p)] * inv[(p, j)];
            }
            inv[(i, j)] = s / r[(i, i)];
        }
    }
    inv
}

#[test]
fn eigenvalues_of_a_known_non_normal_spectrum() {
    // C is quasi-upper-triangular with known eigenvalues: 2 ± 3i, -1.5, 0.5 ± 0.25i, 4, 0.
    let want = [
        Complex::new(2.0, 3.0),
        Complex::new(2.0, -3.0),
        Complex::new(-1.5, 0.0),
        Complex::new(0.5, 0.25),
        Complex::new(0.5, -0.25),
        Complex::new(4.0, 0.0),
        Complex::new(0.0, 0.0),
    ];
    let k = want.len();
    for seed in [5u64, 6, 7] {
        let mut rng = Rng::new(seed);
        let mut c = Mat::zeros(k, k);
        for i in 0..k {
            for j in i + 1..k {
                c[(i, j)] = rng.normal();
            }
        }
        let blocks = [(0usize, 2.0, 3.0), (3, 0.5, 0.25)];
        for (s, a, b) in blocks {
            c[(s, s)] = a;
            c[(s + 1, s + 1)] = a;
            c[(s, s + 1)] = -b;
            c[(s + 1, s)] = b;
        }
        c[(2, 2)] = -1.5;
        c[(5, 5)] = 4.0;
        c[(6, 6)] = 0.0;
        // A = Q R (m x k, full column rank), B = C R⁻¹ Qᵀ, so B A = C and A B = Q R C R⁻¹ Qᵀ.
        let m = 15;
        let (q, r) = rng.matrix(m, k).qr();
        let a = naive_matmul(&q, &r);
        let b = naive_matmul(&naive_matmul(&c, &upper_inverse(&r)), &naive_transpose(&q));
        let f = FactoredMatrix::new(a, b);
        let ev = f.eigenvalues().unwrap();
        let d = multiset_distance(&want, &ev);
        assert!(d < 1e-9, "seed {seed}: {ev:?}");
        let dense_ev = f.to_dense().eigenvalues().unwrap();
        let d = multiset_distance(&want, &dense_ev);
        assert!(d < 1e-7, "seed {seed} dense: {dense_ev:?}");
        assert_eq!(c.eigenvalues().unwrap().len(), k);
        assert!(multiset_distance(&want, &c.eigenvalues().unwrap()) < 1e-12);
    }
}

#[test]
fn products_keep_the_small_inner_dimension() {
    for &seed in &SEEDS {
        let mut rng = Rng::new(seed + 100);
        let f = FactoredMatrix::new(rng.matrix(8, 3), rng.matrix(3, 6));
        let g = FactoredMatrix::new(rng.matrix(6, 5), rng.matrix(5, 7));
        let (fd, gd) = (f.to_dense(), g.to_dense());
        let want = naive_matmul(&fd, &gd);
        let fg = f.matmul(&g);
        assert_eq!(fg.inner(), 3, "seed {seed}");
        assert_mat_close(&fg.to_dense(), &want, 1e-10 * scale(&want), "F·G");
        let gt_ft = g.transpose().matmul(&f.transpose());
        assert_eq!(gt_ft.inner(), 3);
        assert_mat_close(
            &gt_ft.to_dense(),
            &naive_transpose(&want),
            1e-10 * scale(&want),
            "GᵀFᵀ",
        );
        let x = rng.matrix(6, 4);
        let fx = f.matmul_dense(&x);
        assert_eq!(fx.inner(), 3);
        let want_fx = naive_matmul(&fd, &x);
        assert_mat_close(&fx.to_dense(), &want_fx, 1e-10 * scale(&want_fx), "F·X");
        let y = rng.matrix(2, 8);
        let yf = f.premul_dense(&y);
        assert_eq!(yf.inner(), 3);
        let want_yf = naive_matmul(&y, &fd);
        assert_mat_close(&yf.to_dense(), &want_yf, 1e-10 * scale(&want_yf), "Y·F");
        // Composition score against dense products.
        let h = FactoredMatrix::new(rng.matrix(6, 2), rng.matrix(2, 9));
        let hd = h.to_dense();
        let want = naive_frobenius(&naive_matmul(&fd, &hd))
            / (naive_frobenius(&fd) * naive_frobenius(&hd));
        assert_close(
            FactoredMatrix::composition_score(&f, &h),
            want,
            1e-12,
            "composition score",
        );
    }
}

#[test]
fn top_k_matches_brute_force() {
    let rankings = [Ranking::Largest, Ranking::Smallest, Ranking::LargestAbs];
    let blocks = [1usize, 7, 40, 1 << 22];
    for (name, f, dense) in cases() {
        let total = dense.rows() * dense.cols();
        for ranking in rankings {
            for &max_block_elems in &blocks {
                let opts = BlockOptions { max_block_elems };
                for k in [0, 1, 5, total, total + 3] {
                    let got = f.top_k(k, ranking, &opts);
                    let want = brute_top_k(&dense, k, ranking, |_, _| true);
                    assert_entries_eq(
                        &got,
                        &want,
                        1e-12 * scale(&dense),
                        &format!("{name} {ranking:?} k={k} block={max_block_elems}"),
                    );
                }
                let got = f.top_k_where(6, ranking, &opts, |i, j| j <= i);
                let want = brute_top_k(&dense, 6, ranking, |i, j| j <= i);
                assert_entries_eq(
                    &got,
                    &want,
                    1e-12 * scale(&dense),
                    &format!("{name} {ranking:?} causal"),
                );
                let per_row = f.top_k_per_row(3, ranking, &opts);
                assert_eq!(per_row.len(), dense.rows());
                for (i, entries) in per_row.iter().enumerate() {
                    let want = brute_top_k(&dense, 3, ranking, |r, _| r == i);
                    assert_entries_eq(
                        entries,
                        &want,
                        1e-12 * scale(&dense),
                        &format!("{name} row {i}"),
                    );
                }
                let per_col = f.top_k_per_column(2, ranking, &opts);
                assert_eq!(per_col.len(), dense.cols());
                for (j, entries) in per_col.iter().enumerate() {
                    let want = brute_top_k(&dense, 2, ranking, |_, c| c == j);
                    assert_entries_eq(
                        entries,
                        &want,
                        1e-12 * scale(&dense),
                        &format!("{name} column {j}"),
                    );
                }
            }
        }
    }
}

#[test]
fn top_k_breaks_ties_by_row_then_column() {
    // Small integer factors: exact products with many exact ties.
    for seed in [11u64, 12, 13] {
        let mut rng = Rng::new(seed);
        let f = FactoredMatrix::new(rng.integers(30, 2, 1), rng.integers(2, 25, 1));
        let dense = naive_matmul(f.a(), f.b());
        for ranking in [Ranking::Largest, Ranking::Smallest, Ranking::LargestAbs] {
            for max_block_elems in [13, 100, 1 << 20] {
                let opts = BlockOptions { max_block_elems };
                let got = f.top_k(57, ranking, &opts);
                let want = brute_top_k(&dense, 57, ranking, |_, _| true);
                assert_entries_eq(&got, &want, 0.0, &format!("seed {seed} {ranking:?} ties"));
            }
        }
    }
}

#[test]
fn qr_and_svd_of_dense_matrices() {
    for &seed in &SEEDS {
        let mut rng = Rng::new(seed + 7);
        for (m, n, rank) in [(9, 4, 4), (4, 9, 4), (6, 6, 2), (10, 3, 1), (5, 5, 5)] {
            let a = rng.low_rank(m, n, rank);
            let (q, r) = a.qr();
            let p = m.min(n);
            assert_eq!((q.shape(), r.shape()), ((m, p), (p, n)));
            assert_orthonormal_columns(&q, 1e-12, "Q");
            for i in 0..p {
                for j in 0..i.min(n) {
                    assert_eq!(r[(i, j)], 0.0, "R is upper triangular");
                }
            }
            assert_mat_close(&naive_matmul(&q, &r), &a, 1e-12 * scale(&a), "QR");
            let svd = a.svd();
            let what = format!("seed {seed} {m}x{n} rank {rank}: s {:?}", svd.s);
            assert_orthonormal_columns(&svd.u, 1e-10, &format!("U, {what}"));
            assert_orthonormal_columns(&svd.v, 1e-10, &format!("V, {what}"));
            let us = Mat::from_fn(m, p, |i, j| svd.u[(i, j)] * svd.s[j]);
            assert_mat_close(
                &naive_matmul(&us, &naive_transpose(&svd.v)),
                &a,
                1e-10 * scale(&a),
                "U S Vᵀ",
            );
            assert!(
                svd.s[rank..].iter().all(|&x| x < 1e-12 * scale(&a)),
                "rank {rank}: {:?}",
                svd.s
            );
        }
    }
}
