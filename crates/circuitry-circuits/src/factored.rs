//! Low-rank matrices `M = A·B` (`A`: `m x k`, `B`: `k x n`, `k` small, e.g. `d_head`) handled
//! through their factors, as TransformerLens's `FactoredMatrix`: the `m x n` product is never
//! materialised, except block by block when scanning it for its largest entries.
//!
//! Norms, singular values and singular vectors come from the thin QR factors of `A` and `Bᵀ`
//! (`A = Q_A R_A`, `Bᵀ = Q_B R_B`, so `M = Q_A (R_A R_Bᵀ) Q_Bᵀ` and everything reduces to the
//! small core `R_A R_Bᵀ`); eigenvalues of the square case come from the `k x k` matrix `B·A`,
//! whose nonzero eigenvalues are those of `A·B`.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use gemm::Parallelism;
use rayon::prelude::*;

use crate::matrix::{Complex, LinalgError, Mat, Strided, Svd, gemm_into, norm2};

/// A matrix stored as the product of two factors, `A·B`.
#[derive(Clone, Debug, PartialEq)]
pub struct FactoredMatrix {
    a: Mat,
    b: Mat,
}

/// How entries are ranked by the top-k scans.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Ranking {
    /// Most positive first.
    #[default]
    Largest,
    /// Most negative first.
    Smallest,
    /// Largest absolute value first.
    LargestAbs,
}

impl Ranking {
    /// The sort key (higher is better); NaN ranks last.
    #[inline]
    fn key(self, v: f64) -> f64 {
        let k = match self {
            Ranking::Largest => v,
            Ranking::Smallest => -v,
            Ranking::LargestAbs => v.abs(),
        };
        if k.is_nan() { f64::NEG_INFINITY } else { k }
    }

    pub fn name(self) -> &'static str {
        match self {
            Ranking::Largest => "largest",
            Ranking::Smallest => "smallest",
            Ranking::LargestAbs => "largest_abs",
        }
    }
}

/// One entry of a matrix: `M[row, col] = value`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Entry {
    pub row: usize,
    pub col: usize,
    pub value: f64,
}

/// Memory bound of the blockwise scans.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockOptions {
    /// Most product entries computed at once per worker thread (each an `f64`): a block holds
    /// `max(1, max_block_elems / n)` rows of the `m x n` product. The default, `1 << 22`, is
    /// 32 MiB per thread.
    pub max_block_elems: usize,
}

impl Default for BlockOptions {
    fn default() -> Self {
        BlockOptions {
            max_block_elems: 1 << 22,
        }
    }
}

impl FactoredMatrix {
    /// `A·B`.
    ///
    /// # Panics
    /// When `a.cols() != b.rows()`.
    pub fn new(a: Mat, b: Mat) -> FactoredMatrix {
        assert_eq!(
            a.cols(),
            b.rows(),
            "factors must share their inner dimension: A is {}x{}, B is {}x{}",
            a.rows(),
            a.cols(),
            b.rows(),
            b.cols()
        );
        FactoredMatrix { a, b }
    }

    pub fn a(&self) -> &Mat {
        &self.a
    }
    pub fn b(&self) -> &Mat {
        &self.b
    }
    pub fn into_factors(self) -> (Mat, Mat) {
        (self.a, self.b)
    }
    /// `m`, the number of rows of the product.
    pub fn rows(&self) -> usize {
        self.a.rows()
    }
    /// `n`, the number of columns of the product.
    pub fn cols(&self) -> usize {
        self.b.cols()
    }
    /// `k`, the inner dimension (an upper bound on the rank).
    pub fn inner(&self) -> usize {
        self.a.cols()
    }
    /// `(m, n)`.
    pub fn shape(&self) -> (usize, usize) {
        (self.rows(), self.cols())
    }

    /// The product `A·B` as a dense `m x n` matrix (expensive for large `m`, `n`).
    pub fn to_dense(&self) -> Mat {
        self.a.matmul(&self.b)
    }

    /// `(A·B)ᵀ = Bᵀ·Aᵀ`.
    pub fn transpose(&self) -> FactoredMatrix {
        FactoredMatrix {
            a: self.b.transpose(),
            b: self.a.transpose(),
        }
    }

    /// `s·A·B`.
    pub fn scaled(&self, s: f64) -> FactoredMatrix {
        FactoredMatrix {
            a: self.a.clone().scaled(s),
            b: self.b.clone(),
        }
    }

    /// `(A·B)·X = A·(B·X)`, keeping the inner dimension.
    pub fn matmul_dense(&self, x: &Mat) -> FactoredMatrix {
        FactoredMatrix::new(self.a.clone(), self.b.matmul(x))
    }

    /// `X·(A·B) = (X·A)·B`, keeping the inner dimension.
    pub fn premul_dense(&self, x: &Mat) -> FactoredMatrix {
        FactoredMatrix::new(x.matmul(&self.a), self.b.clone())
    }

    /// `(A₁·B₁)·(A₂·B₂)`, factored through the smaller of the two inner dimensions:
    /// `A₁·((B₁A₂)·B₂)` or `(A₁·(B₁A₂))·B₂`.
    pub fn matmul(&self, other: &FactoredMatrix) -> FactoredMatrix {
        assert_eq!(
            self.cols(),
            other.rows(),
            "cannot multiply {}x{} by {}x{}",
            self.rows(),
            self.cols(),
            other.rows(),
            other.cols()
        );
        let middle = self.b.matmul(&other.a);
        if self.inner() <= other.inner() {
            FactoredMatrix::new(self.a.clone(), middle.matmul(&other.b))
        } else {
            FactoredMatrix::new(self.a.matmul(&middle), other.b.clone())
        }
    }

    /// `R_A·B` (`p x n`, `p = min(m, k)`), where `A = Q_A R_A`: the product with its orthonormal
    /// left factor removed, `A·B = Q_A·(R_A·B)`. Equal to TransformerLens's `collapse_l`
    /// (`S Vᵀ`) up to an orthogonal factor on the left, so Frobenius norms of products agree.
    pub fn collapse_left(&self) -> Mat {
        self.a.qr_r().matmul(&self.b)
    }

    /// `A·R_Bᵀ` (`m x p`, `p = min(n, k)`), where `Bᵀ = Q_B R_B`: `A·B = (A·R_Bᵀ)·Q_Bᵀ`. Equal to
    /// TransformerLens's `collapse_r` (`U S`) up to an orthogonal factor on the right.
    pub fn collapse_right(&self) -> Mat {
        self.a.matmul_t(&self.b.transpose().qr_r())
    }

    /// The small core `R_A R_Bᵀ` (`min(m, k) x min(n, k)`), which has the singular values of `A·B`.
    fn core(&self) -> Mat {
        let ra = self.a.qr_r();
        let rb = self.b.transpose().qr_r();
        ra.matmul_t(&rb)
    }

    /// Frobenius norm `‖A·B‖_F`, from the core (no squaring of the condition number).
    pub fn frobenius_norm(&self) -> f64 {
        self.core().frobenius_norm()
    }

    /// Singular values of `A·B`, descending; `min(m, n, k)` of them (zeros included).
    pub fn singular_values(&self) -> Vec<f64> {
        self.core().singular_values()
    }

    /// Thin SVD `A·B = U diag(s) Vᵀ` with `p = min(m, n, k)` columns in `U` (`m x p`) and `V`
    /// (`n x p`), as TransformerLens's `FactoredMatrix.svd()` (whose third result is `V`).
    pub fn svd(&self) -> Svd {
        let (qa, ra) = self.a.qr();
        let (qb, rb) = self.b.transpose().qr();
        let core = ra.matmul_t(&rb).svd();
        Svd {
            u: qa.matmul(&core.u),
            s: core.s,
            v: qb.matmul(&core.v),
        }
    }

    fn assert_square(&self) -> Result<(), LinalgError> {
        if self.rows() != self.cols() {
            return Err(LinalgError::NotSquare {
                rows: self.rows(),
                cols: self.cols(),
            });
        }
        Ok(())
    }

    /// Eigenvalues of the square matrix `A·B` (complex in general), sorted by decreasing modulus.
    ///
    /// Returns the `min(m, k)` eigenvalues of the smaller of `B·A` (`k x k`) and `A·B`
    /// (`m x m`); the remaining eigenvalues of `A·B` are zero (if `B·A v = λv` with `λ ≠ 0`,
    /// then `A·B (Av) = λ (Av)`). TransformerLens returns the `k` eigenvalues of `B·A`.
    pub fn eigenvalues(&self) -> Result<Vec<Complex>, LinalgError> {
        self.assert_square()?;
        if self.inner() <= self.rows() {
            self.b.matmul(&self.a).eigenvalues()
        } else {
            self.to_dense().eigenvalues()
        }
    }

    /// `tr(A·B) = tr(B·A)`.
    pub fn trace(&self) -> Result<f64, LinalgError> {
        self.assert_square()?;
        Ok(self.diagonal().iter().sum())
    }

    /// `(A·B)[i, j]`.
    pub fn entry(&self, i: usize, j: usize) -> f64 {
        let a = self.a.row(i);
        (0..self.inner()).map(|p| a[p] * self.b[(p, j)]).sum()
    }

    /// Row `i` of the product (`n` values).
    pub fn row(&self, i: usize) -> Vec<f64> {
        let a = Mat::from_vec(1, self.inner(), self.a.row(i).to_vec());
        a.matmul(&self.b).into_vec()
    }

    /// Column `j` of the product (`m` values).
    pub fn column(&self, j: usize) -> Vec<f64> {
        let b = Mat::from_vec(self.inner(), 1, self.b.column(j));
        self.a.matmul(&b).into_vec()
    }

    /// The diagonal, `min(m, n)` values (e.g. how much a token-space OV circuit copies each token
    /// to itself).
    pub fn diagonal(&self) -> Vec<f64> {
        let bt = self.b.transpose();
        (0..self.rows().min(self.cols()))
            .map(|i| {
                self.a
                    .row(i)
                    .iter()
                    .zip(bt.row(i))
                    .map(|(x, y)| x * y)
                    .sum()
            })
            .collect()
    }

    /// Euclidean norm of every row of the product, `‖a_i B‖ = ‖a_i R_Bᵀ‖` (no product formed).
    pub fn row_norms(&self) -> Vec<f64> {
        let c = self.collapse_right();
        (0..c.rows()).map(|i| norm2(c.row(i))).collect()
    }

    /// Euclidean norm of every column of the product.
    pub fn column_norms(&self) -> Vec<f64> {
        self.transpose().row_norms()
    }

    /// The `k` entries ranked first by `ranking` (ties: smaller row, then smaller column first),
    /// best first. Computed by rows in blocks of at most `opts.max_block_elems` entries per
    /// worker thread, so memory stays bounded for vocabulary-sized products.
    pub fn top_k(&self, k: usize, ranking: Ranking, opts: &BlockOptions) -> Vec<Entry> {
        self.top_k_where(k, ranking, opts, |_, _| true)
    }

    /// As [`FactoredMatrix::top_k`], among the entries `(row, col)` for which `keep` is true
    /// (e.g. `col <= row` for a causal attention circuit, or `row != col`).
    pub fn top_k_where(
        &self,
        k: usize,
        ranking: Ranking,
        opts: &BlockOptions,
        keep: impl Fn(usize, usize) -> bool + Sync,
    ) -> Vec<Entry> {
        if k == 0 || self.rows() == 0 || self.cols() == 0 {
            return Vec::new();
        }
        let found = self
            .block_ranges(opts)
            .into_par_iter()
            .map(|block| {
                self.with_block(block, |start, prod, n| {
                    let mut top = TopK::new(k);
                    for (r, row) in prod.chunks_exact(n).enumerate() {
                        scan_row(&mut top, ranking, start + r, row, &keep);
                    }
                    top
                })
            })
            .reduce(|| TopK::new(k), TopK::merge_into);
        found.into_sorted()
    }

    /// For every row, its `k` best entries (best first): `result[i]` lists `(i, col, value)`.
    pub fn top_k_per_row(
        &self,
        k: usize,
        ranking: Ranking,
        opts: &BlockOptions,
    ) -> Vec<Vec<Entry>> {
        let (m, n) = self.shape();
        if k == 0 || n == 0 {
            return vec![Vec::new(); m];
        }
        let per_block: Vec<Vec<Vec<Entry>>> = self
            .block_ranges(opts)
            .into_par_iter()
            .map(|block| {
                self.with_block(block, |start, prod, n| {
                    prod.chunks_exact(n)
                        .enumerate()
                        .map(|(r, row)| {
                            let mut top = TopK::new(k);
                            scan_row(&mut top, ranking, start + r, row, &|_, _| true);
                            top.into_sorted()
                        })
                        .collect()
                })
            })
            .collect();
        per_block.into_iter().flatten().collect()
    }

    /// For every column, its `k` best entries (best first): `result[j]` lists `(row, j, value)`.
    pub fn top_k_per_column(
        &self,
        k: usize,
        ranking: Ranking,
        opts: &BlockOptions,
    ) -> Vec<Vec<Entry>> {
        self.transpose()
            .top_k_per_row(k, ranking, opts)
            .into_iter()
            .map(|entries| {
                entries
                    .into_iter()
                    .map(|e| Entry {
                        row: e.col,
                        col: e.row,
                        value: e.value,
                    })
                    .collect()
            })
            .collect()
    }

    fn block_ranges(&self, opts: &BlockOptions) -> Vec<(usize, usize)> {
        let (m, n) = self.shape();
        let per = (opts.max_block_elems / n.max(1)).max(1);
        (0..m).step_by(per).map(|s| (s, (s + per).min(m))).collect()
    }

    /// Computes rows `start..end` of the product (row-major, `n` wide) and hands them to `f`.
    fn with_block<T>(
        &self,
        (start, end): (usize, usize),
        f: impl FnOnce(usize, &[f64], usize) -> T,
    ) -> T {
        let (k, n) = (self.inner(), self.cols());
        let rows = end - start;
        let mut buf = vec![0.0; rows * n];
        let lhs = Strided::row_major(&self.a.as_slice()[start * k..end * k], rows, k);
        let rhs = Strided::row_major(self.b.as_slice(), k, n);
        gemm_into(&mut buf, lhs, rhs, Parallelism::None);
        f(start, &buf, n)
    }
}

impl From<(Mat, Mat)> for FactoredMatrix {
    fn from((a, b): (Mat, Mat)) -> Self {
        FactoredMatrix::new(a, b)
    }
}

#[inline]
fn scan_row(
    top: &mut TopK,
    ranking: Ranking,
    i: usize,
    row: &[f64],
    keep: &(impl Fn(usize, usize) -> bool + ?Sized),
) {
    let mut threshold = top.threshold();
    for (j, &v) in row.iter().enumerate() {
        let key = ranking.key(v);
        if key < threshold || !keep(i, j) {
            continue;
        }
        top.offer(Cand {
            key,
            row: i,
            col: j,
            value: v,
        });
        threshold = top.threshold();
    }
}

/// A candidate entry. Ordered so that the *worse* candidate is the greater one, which makes
/// `BinaryHeap`'s maximum the worst entry kept.
#[derive(Clone, Copy, Debug)]
struct Cand {
    key: f64,
    row: usize,
    col: usize,
    value: f64,
}

impl Ord for Cand {
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .key
            .total_cmp(&self.key)
            .then((self.row, self.col).cmp(&(other.row, other.col)))
    }
}
impl PartialOrd for Cand {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl PartialEq for Cand {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Cand {}

/// The `k` best candidates seen so far.
struct TopK {
    k: usize,
    heap: BinaryHeap<Cand>,
}

impl TopK {
    fn new(k: usize) -> TopK {
        TopK {
            k,
            heap: BinaryHeap::with_capacity(k.min(1 << 16) + 1),
        }
    }

    /// Keys strictly below this cannot enter.
    #[inline]
    fn threshold(&self) -> f64 {
        if self.heap.len() < self.k {
            f64::NEG_INFINITY
        } else {
            self.heap.peek().map_or(f64::NEG_INFINITY, |c| c.key)
        }
    }

    #[inline]
    fn offer(&mut self, c: Cand) {
        if self.heap.len() < self.k {
            self.heap.push(c);
        } else if let Some(mut worst) = self.heap.peek_mut()
            && c < *worst
        {
            *worst = c;
        }
    }

    fn merge_into(self, mut other: TopK) -> TopK {
        for c in self.heap {
            other.offer(c);
        }
        other
    }

    fn into_sorted(self) -> Vec<Entry> {
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|c| Entry {
                row: c.row,
                col: c.col,
                value: c.value,
            })
            .collect()
    }
}

impl FactoredMatrix {
    /// `‖left·right‖_F / (‖left‖_F ‖right‖_F)`, the composition score of the Mathematical
    /// Framework, computed as TransformerLens's `composition_scores` does (through the collapsed
    /// factors, never forming `m x n` products).
    pub fn composition_score(left: &FactoredMatrix, right: &FactoredMatrix) -> f64 {
        assert_eq!(
            left.cols(),
            right.rows(),
            "left's columns must match right's rows"
        );
        let l = left.collapse_left();
        let r = right.collapse_right();
        l.matmul(&r).frobenius_norm() / (l.frobenius_norm() * r.frobenius_norm())
    }
}
