//! Helpers shared by the weight-circuit tests: an independent PRNG, naive dense reference
//! computations (plain loops, no `gemm`, no decompositions), and fixture loading.
#![allow(dead_code)]

use std::collections::BTreeMap;

use circuitry_circuits::factored::{Entry, Ranking};
use circuitry_circuits::matrix::{Complex, Mat};

/// xorshift64* with Marsaglia's polar method: deliberately a different generator from the
/// library's SplitMix64 + Box–Muller.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn normal(&mut self) -> f64 {
        loop {
            let u = 2.0 * self.uniform() - 1.0;
            let v = 2.0 * self.uniform() - 1.0;
            let s = u * u + v * v;
            if s > 0.0 && s < 1.0 {
                return u * (-2.0 * s.ln() / s).sqrt();
            }
        }
    }
    pub fn matrix(&mut self, rows: usize, cols: usize) -> Mat {
        Mat::from_fn(rows, cols, |_, _| self.normal())
    }
    /// A random `rows x cols` matrix of rank at most `rank`.
    pub fn low_rank(&mut self, rows: usize, cols: usize, rank: usize) -> Mat {
        let x = self.matrix(rows, rank);
        let y = self.matrix(rank, cols);
        naive_matmul(&x, &y)
    }
    /// Small integers in `-r..=r` (products are exact, so ties are exact).
    pub fn integers(&mut self, rows: usize, cols: usize, r: i64) -> Mat {
        Mat::from_fn(rows, cols, |_, _| {
            ((self.next_u64() % (2 * r as u64 + 1)) as i64 - r) as f64
        })
    }
}

pub fn naive_matmul(a: &Mat, b: &Mat) -> Mat {
    assert_eq!(a.cols(), b.rows());
    Mat::from_fn(a.rows(), b.cols(), |i, j| {
        (0..a.cols()).map(|p| a[(i, p)] * b[(p, j)]).sum()
    })
}

pub fn naive_transpose(a: &Mat) -> Mat {
    Mat::from_fn(a.cols(), a.rows(), |i, j| a[(j, i)])
}

pub fn naive_frobenius(a: &Mat) -> f64 {
    a.as_slice().iter().map(|x| x * x).sum::<f64>().sqrt()
}

pub fn naive_trace(a: &Mat) -> f64 {
    (0..a.rows().min(a.cols())).map(|i| a[(i, i)]).sum()
}

/// `MᵀM` products' eigenvalues are the squared singular values; their power sums are traces.
pub fn trace_of_power(a: &Mat, p: usize) -> f64 {
    let mut m = a.clone();
    for _ in 1..p {
        m = naive_matmul(&m, a);
    }
    naive_trace(&m)
}

pub fn assert_close(got: f64, want: f64, tol: f64, what: &str) {
    assert!(
        (got - want).abs() <= tol,
        "{what}: got {got}, want {want} (diff {}, tol {tol})",
        (got - want).abs()
    );
}

pub fn assert_mat_close(got: &Mat, want: &Mat, tol: f64, what: &str) {
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    let d = got.max_abs_diff(want);
    assert!(d <= tol, "{what}: max abs diff {d} > {tol}");
}

/// `QᵀQ = I` for the columns of `q`.
pub fn assert_orthonormal_columns(q: &Mat, tol: f64, what: &str) {
    let g = naive_matmul(&naive_transpose(q), q);
    assert_mat_close(&g, &Mat::identity(q.cols()), tol, what);
}

/// Pairs each of `a` with the nearest unused of `b` (|a| <= |b|); the unmatched rest of `b`
/// must be (near) zero. Returns the largest mismatch.
pub fn multiset_distance(a: &[Complex], b: &[Complex]) -> f64 {
    assert!(a.len() <= b.len());
    let mut used = vec![false; b.len()];
    let mut worst = 0.0f64;
    // Largest first, so that big eigenvalues grab their partners before near-zero ones do.
    let mut order: Vec<usize> = (0..a.len()).collect();
    order.sort_by(|&i, &j| a[j].abs().total_cmp(&a[i].abs()));
    for i in order {
        let (j, d) = b
            .iter()
            .enumerate()
            .filter(|(j, _)| !used[*j])
            .map(|(j, z)| (j, (z.re - a[i].re).hypot(z.im - a[i].im)))
            .min_by(|x, y| x.1.total_cmp(&y.1))
            .expect("a partner");
        used[j] = true;
        worst = worst.max(d);
    }
    for (j, z) in b.iter().enumerate() {
        if !used[j] {
            worst = worst.max(z.abs());
        }
    }
    worst
}

/// Brute-force top-k of a dense matrix: full sort with the library's tie-breaking
/// (better key first, then smaller row, then smaller column).
pub fn brute_top_k(
    m: &Mat,
    k: usize,
    ranking: Ranking,
    keep: impl Fn(usize, usize) -> bool,
) -> Vec<Entry> {
    let key = |v: f64| match ranking {
        Ranking::Largest => v,
        Ranking::Smallest => -v,
        Ranking::LargestAbs => v.abs(),
    };
    let mut all: Vec<Entry> = (0..m.rows())
        .flat_map(|i| (0..m.cols()).map(move |j| (i, j)))
        .filter(|&(i, j)| keep(i, j))
        .map(|(i, j)| Entry {
            row: i,
            col: j,
            value: m[(i, j)],
        })
        .collect();
    all.sort_by(|x, y| {
        key(y.value)
            .total_cmp(&key(x.value))
            .then((x.row, x.col).cmp(&(y.row, y.col)))
    });
    all.truncate(k);
    all
}

pub fn assert_entries_eq(got: &[Entry], want: &[Entry], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: number of entries");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(
            (g.row, g.col),
            (w.row, w.col),
            "{what}: entry {i}: got {g:?}, want {w:?}"
        );
        assert!(
            (g.value - w.value).abs() <= tol,
            "{what}: entry {i}: got {g:?}, want {w:?}"
        );
    }
}

#[allow(unused_imports)] // each test binary uses its own subset
pub use circuitry_testkit::fixture_dir;

/// The f32 tensors of a fixture's `reference.safetensors`: name -> (shape, values).
/// Reference tensor `key` of fixture `name`: its shape and its values as `f64`.
pub fn reference(name: &str, key: &str) -> (Vec<usize>, Vec<f64>) {
    let r = load_reference_f32(name);
    let (shape, v) = r.get(key).unwrap_or_else(|| panic!("{name}: no {key}"));
    (shape.clone(), v.iter().map(|&x| x as f64).collect())
}

pub fn load_reference_f32(model: &str) -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    circuitry_testkit::load_reference(model)
        .into_iter()
        .filter(|(_, t)| !t.f32.is_empty())
        .map(|(name, t)| (name, (t.shape, t.f32)))
        .collect()
}
