//! Dense row-major `f64` matrices on the host, for the weight-based circuit analyses.
//!
//! The matrices involved are at most a few thousand wide (`d_model`, the vocabulary) with a small
//! inner dimension (`d_head`), so [`Mat`] is a plain row-major `Vec<f64>`. Matrix products go
//! through the `gemm` crate (already compiled for burn's `flex` backend); decompositions (QR,
//! SVD, eigenvalues) are delegated to [`faer`] through zero-copy views ([`Mat::as_faer`]): this
//! module only converts shapes and results, it implements no decomposition itself.

use std::fmt;
use std::ops::{Index, IndexMut, Range};

use gemm::Parallelism;

/// Why a decomposition could not be computed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum LinalgError {
    #[error("matrix must be square, got {rows}x{cols}")]
    NotSquare { rows: usize, cols: usize },
    #[error("matrix holds a non-finite value (NaN or infinity)")]
    NonFinite,
    #[error("the eigenvalue (QR) iteration did not converge for a {size}x{size} matrix")]
    NoConvergence { size: usize },
    #[error("matrix is not positive definite")]
    NotPositiveDefinite,
}

/// A complex number, as returned by [`Mat::eigenvalues`].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Complex {
    pub re: f64,
    pub im: f64,
}

impl Complex {
    pub const fn new(re: f64, im: f64) -> Complex {
        Complex { re, im }
    }
    /// The modulus `|z|`.
    pub fn abs(self) -> f64 {
        self.re.hypot(self.im)
    }
}

impl fmt::Display for Complex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.im >= 0.0 {
            write!(f, "{}+{}i", self.re, self.im)
        } else {
            write!(f, "{}-{}i", self.re, -self.im)
        }
    }
}

/// A dense row-major `f64` matrix.
#[derive(Clone, PartialEq)]
pub struct Mat {
    rows: usize,
    cols: usize,
    data: Vec<f64>,
}

impl fmt::Debug for Mat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Mat {}x{} [", self.rows, self.cols)?;
        for i in 0..self.rows.min(8) {
            let row = self.row(i);
            let shown: Vec<String> = row.iter().take(8).map(|x| format!("{x:.6}")).collect();
            let more = if self.cols > 8 { ", ..." } else { "" };
            writeln!(f, "  [{}{more}]", shown.join(", "))?;
        }
        if self.rows > 8 {
            writeln!(f, "  ...")?;
        }
        write!(f, "]")
    }
}

impl Index<(usize, usize)> for Mat {
    type Output = f64;
    fn index(&self, (i, j): (usize, usize)) -> &f64 {
        assert!(
            i < self.rows && j < self.cols,
            "index ({i}, {j}) out of a {}x{} matrix",
            self.rows,
            self.cols
        );
        &self.data[i * self.cols + j]
    }
}

impl IndexMut<(usize, usize)> for Mat {
    fn index_mut(&mut self, (i, j): (usize, usize)) -> &mut f64 {
        assert!(
            i < self.rows && j < self.cols,
            "index ({i}, {j}) out of a {}x{} matrix",
            self.rows,
            self.cols
        );
        &mut self.data[i * self.cols + j]
    }
}

impl Mat {
    pub fn zeros(rows: usize, cols: usize) -> Mat {
        Mat {
            rows,
            cols,
            data: vec![0.0; rows * cols],
        }
    }

    pub fn identity(n: usize) -> Mat {
        let mut m = Mat::zeros(n, n);
        for i in 0..n {
            m.data[i * n + i] = 1.0;
        }
        m
    }

    /// # Panics
    /// When `data.len() != rows * cols`.
    pub fn from_vec(rows: usize, cols: usize, data: Vec<f64>) -> Mat {
        assert_eq!(
            data.len(),
            rows * cols,
            "{rows}x{cols} matrix needs {} values",
            rows * cols
        );
        Mat { rows, cols, data }
    }

    /// Row-major `f32` values widened to `f64`.
    pub fn from_f32(rows: usize, cols: usize, data: &[f32]) -> Mat {
        Mat::from_vec(rows, cols, data.iter().map(|&x| x as f64).collect())
    }

    pub fn from_fn(rows: usize, cols: usize, mut f: impl FnMut(usize, usize) -> f64) -> Mat {
        let mut data = Vec::with_capacity(rows * cols);
        for i in 0..rows {
            for j in 0..cols {
                data.push(f(i, j));
            }
        }
        Mat { rows, cols, data }
    }

    /// A matrix from its rows (all of the same length).
    pub fn from_rows(rows: &[Vec<f64>]) -> Mat {
        let cols = rows.first().map_or(0, Vec::len);
        assert!(
            rows.iter().all(|r| r.len() == cols),
            "rows of different lengths"
        );
        Mat::from_vec(rows.len(), cols, rows.concat())
    }

    pub fn rows(&self) -> usize {
        self.rows
    }
    pub fn cols(&self) -> usize {
        self.cols
    }
    pub fn shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }
    /// The values, row-major.
    pub fn as_slice(&self) -> &[f64] {
        &self.data
    }
    pub fn as_mut_slice(&mut self) -> &mut [f64] {
        &mut self.data
    }
    pub fn into_vec(self) -> Vec<f64> {
        self.data
    }
    pub fn row(&self, i: usize) -> &[f64] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }
    pub fn column(&self, j: usize) -> Vec<f64> {
        assert!(j < self.cols, "column {j} out of {}", self.cols);
        (0..self.rows)
            .map(|i| self.data[i * self.cols + j])
            .collect()
    }

    pub fn transpose(&self) -> Mat {
        let mut t = Mat::zeros(self.cols, self.rows);
        for i in 0..self.rows {
            for j in 0..self.cols {
                t.data[j * self.rows + i] = self.data[i * self.cols + j];
            }
        }
        t
    }

    /// The rows in `range`, as a new matrix.
    pub fn select_rows(&self, range: Range<usize>) -> Mat {
        assert!(
            range.end <= self.rows,
            "rows {range:?} out of {}",
            self.rows
        );
        Mat::from_vec(
            range.len(),
            self.cols,
            self.data[range.start * self.cols..range.end * self.cols].to_vec(),
        )
    }

    /// `self · other`.
    pub fn matmul(&self, other: &Mat) -> Mat {
        assert_eq!(
            self.cols, other.rows,
            "cannot multiply {}x{} by {}x{}",
            self.rows, self.cols, other.rows, other.cols
        );
        product(
            Strided::row_major(&self.data, self.rows, self.cols),
            Strided::row_major(&other.data, other.rows, other.cols),
        )
    }

    /// `selfᵀ · other`, without forming the transpose.
    pub fn t_matmul(&self, other: &Mat) -> Mat {
        assert_eq!(
            self.rows, other.rows,
            "cannot multiply ({}x{})ᵀ by {}x{}",
            self.rows, self.cols, other.rows, other.cols
        );
        product(
            Strided::row_major(&self.data, self.rows, self.cols).t(),
            Strided::row_major(&other.data, other.rows, other.cols),
        )
    }

    /// `self · otherᵀ`, without forming the transpose.
    pub fn matmul_t(&self, other: &Mat) -> Mat {
        assert_eq!(
            self.cols, other.cols,
            "cannot multiply {}x{} by ({}x{})ᵀ",
            self.rows, self.cols, other.rows, other.cols
        );
        product(
            Strided::row_major(&self.data, self.rows, self.cols),
            Strided::row_major(&other.data, other.rows, other.cols).t(),
        )
    }

    pub fn scaled(mut self, s: f64) -> Mat {
        self.data.iter_mut().for_each(|x| *x *= s);
        self
    }

    /// `sqrt(Σ x²)`, scaled against overflow.
    pub fn frobenius_norm(&self) -> f64 {
        norm2(&self.data)
    }

    pub fn trace(&self) -> f64 {
        (0..self.rows.min(self.cols))
            .map(|i| self.data[i * self.cols + i])
            .sum()
    }

    pub fn is_finite(&self) -> bool {
        self.data.iter().all(|x| x.is_finite())
    }

    /// Largest absolute elementwise difference (matrices of the same shape).
    pub fn max_abs_diff(&self, other: &Mat) -> f64 {
        assert_eq!(self.shape(), other.shape(), "shapes differ");
        self.data
            .iter()
            .zip(&other.data)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max)
    }
}

/// Euclidean norm of a vector, without overflow for large entries.
pub(crate) fn norm2(v: &[f64]) -> f64 {
    let scale = v.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    if scale == 0.0 || !scale.is_finite() {
        return scale;
    }
    let s: f64 = v.iter().map(|x| (x / scale) * (x / scale)).sum();
    scale * s.sqrt()
}

/// A read-only strided view of a matrix for `gemm`: element `(i, j)` is at `i * rs + j * cs`.
#[derive(Clone, Copy)]
pub(crate) struct Strided<'a> {
    pub data: &'a [f64],
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<'a> Strided<'a> {
    pub fn row_major(data: &'a [f64], rows: usize, cols: usize) -> Strided<'a> {
        Strided {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }
    /// The transpose (a view: strides swapped).
    pub fn t(self) -> Strided<'a> {
        Strided {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }
    fn check(&self) {
        if self.rows > 0 && self.cols > 0 {
            let last = (self.rows - 1) * self.rs + (self.cols - 1) * self.cs;
            assert!(last < self.data.len(), "strided view reaches past its data");
        }
    }
}

pub(crate) fn auto_parallelism(m: usize, n: usize, k: usize) -> Parallelism {
    if m.saturating_mul(n).saturating_mul(k) >= 1 << 21 {
        Parallelism::Rayon(0)
    } else {
        Parallelism::None
    }
}

/// `dst = lhs · rhs`, `dst` row-major `lhs.rows x rhs.cols` (overwritten).
/// `lhs · rhs` as a new matrix, in parallel when it is large.
fn product(lhs: Strided<'_>, rhs: Strided<'_>) -> Mat {
    let mut out = Mat::zeros(lhs.rows, rhs.cols);
    let parallelism = auto_parallelism(lhs.rows, rhs.cols, lhs.cols);
    gemm_into(&mut out.data, lhs, rhs, parallelism);
    out
}

pub(crate) fn gemm_into(
    dst: &mut [f64],
    lhs: Strided<'_>,
    rhs: Strided<'_>,
    parallelism: Parallelism,
) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert_eq!(rhs.rows, k, "inner dimensions differ");
    assert_eq!(dst.len(), m * n, "destination has the wrong size");
    lhs.check();
    rhs.check();
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        dst.fill(0.0);
        return;
    }
    // SAFETY: the views were checked to stay inside their slices, `dst` holds exactly `m * n`
    // values written row-major (row stride `n`, column stride 1), and `dst` cannot alias the
    // inputs (it is borrowed mutably). With `read_dst = false`, `dst = beta * lhs * rhs`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            false,
            lhs.data.as_ptr(),
            lhs.cs as isize,
            lhs.rs as isize,
            rhs.data.as_ptr(),
            rhs.cs as isize,
            rhs.rs as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// A thin singular value decomposition `a = U diag(s) Vᵀ`.
#[derive(Clone, Debug)]
pub struct Svd {
    /// `m x p`, orthonormal columns.
    pub u: Mat,
    /// `p` singular values, descending, `p = min(m, n)` (zeros included).
    pub s: Vec<f64>,
    /// `n x p`, orthonormal columns.
    pub v: Mat,
}

/// Decompositions, computed by `faer` on a view of the matrix.
impl Mat {
    /// A zero-copy `faer` view of the matrix (row-major strides).
    pub fn as_faer(&self) -> faer::MatRef<'_, f64> {
        faer::MatRef::from_row_major_slice(&self.data, self.rows, self.cols)
    }

    /// A row-major copy of a `faer` matrix.
    pub fn from_faer(m: faer::MatRef<'_, f64>) -> Mat {
        Mat::from_fn(m.nrows(), m.ncols(), |i, j| m[(i, j)])
    }

    /// Thin QR: `self (m x n) = Q R` with `Q` `m x p` (orthonormal columns), `R` `p x n` upper
    /// trapezoidal, `p = min(m, n)` (`faer`'s blocked Householder QR).
    pub fn qr(&self) -> (Mat, Mat) {
        if self.rows.min(self.cols) == 0 {
            return (Mat::zeros(self.rows, 0), Mat::zeros(0, self.cols));
        }
        let qr = self.as_faer().qr();
        (
            Mat::from_faer(qr.compute_thin_Q().as_ref()),
            Mat::from_faer(qr.thin_R()),
        )
    }

    /// Solves `self x = b` for a symmetric positive definite `self` (its lower triangle is
    /// read) by `faer`'s Cholesky factorisation.
    pub fn solve_spd(&self, b: &[f64]) -> Result<Vec<f64>, LinalgError> {
        let n = self.square_and_finite()?;
        assert_eq!(b.len(), n, "one right-hand side value per row");
        if n == 0 {
            return Ok(Vec::new());
        }
        let llt = self
            .as_faer()
            .llt(faer::Side::Lower)
            .map_err(|_| LinalgError::NotPositiveDefinite)?;
        let rhs = faer::Mat::from_fn(n, 1, |i, _| b[i]);
        let x = faer::linalg::solvers::Solve::solve(&llt, rhs.as_ref());
        Ok((0..n).map(|i| x[(i, 0)]).collect())
    }

    /// The `R` factor of [`Mat::qr`] alone (`p x n`, `p = min(m, n)`): `aᵀa = RᵀR`, and for any
    /// `x`, `|a x| = |R x|`.
    pub fn qr_r(&self) -> Mat {
        if self.rows.min(self.cols) == 0 {
            return Mat::zeros(0, self.cols);
        }
        Mat::from_faer(self.as_faer().qr().thin_R())
    }

    /// Thin SVD, singular values descending. NaN everywhere when `faer`'s iteration does not
    /// converge (non-finite input).
    pub fn svd(&self) -> Svd {
        let (m, n) = self.shape();
        let p = m.min(n);
        if p == 0 {
            return Svd {
                u: Mat::zeros(m, 0),
                s: Vec::new(),
                v: Mat::zeros(n, 0),
            };
        }
        match self.as_faer().thin_svd() {
            Ok(svd) => Svd {
                u: Mat::from_faer(svd.U()),
                s: svd.S().column_vector().iter().copied().collect(),
                v: Mat::from_faer(svd.V()),
            },
            Err(_) => Svd {
                u: Mat::from_vec(m, p, vec![f64::NAN; m * p]),
                s: vec![f64::NAN; p],
                v: Mat::from_vec(n, p, vec![f64::NAN; n * p]),
            },
        }
    }

    /// Singular values, descending (`min(m, n)` of them; NaN when `faer`'s iteration does not
    /// converge, i.e. for non-finite input).
    pub fn singular_values(&self) -> Vec<f64> {
        let p = self.rows.min(self.cols);
        if p == 0 {
            return Vec::new();
        }
        self.as_faer()
            .singular_values()
            .unwrap_or_else(|_| vec![f64::NAN; p])
    }

    /// The size of a square matrix with finite entries, which eigendecompositions need.
    fn square_and_finite(&self) -> Result<usize, LinalgError> {
        let (m, n) = self.shape();
        if m != n {
            return Err(LinalgError::NotSquare { rows: m, cols: n });
        }
        if !self.is_finite() {
            return Err(LinalgError::NonFinite);
        }
        Ok(n)
    }

    /// The eigendecomposition of a symmetric matrix (its lower triangle is read): eigenvalues in
    /// decreasing order and the matching orthonormal eigenvectors as the columns of the `Mat`.
    pub fn symmetric_eigen(&self) -> Result<(Vec<f64>, Mat), LinalgError> {
        let n = self.square_and_finite()?;
        if n == 0 {
            return Ok((Vec::new(), Mat::zeros(0, 0)));
        }
        let evd = self
            .as_faer()
            .self_adjoint_eigen(faer::Side::Lower)
            .map_err(|_| LinalgError::NoConvergence { size: n })?;
        // faer sorts ascending; reverse to descending.
        let values: Vec<f64> = evd.S().column_vector().iter().rev().copied().collect();
        let u = evd.U();
        let vectors = Mat::from_fn(n, n, |i, j| u[(i, n - 1 - j)]);
        Ok((values, vectors))
    }

    /// All eigenvalues of a real square matrix, complex conjugate pairs included, sorted by
    /// decreasing modulus (then by real part, then imaginary part, descending).
    pub fn eigenvalues(&self) -> Result<Vec<Complex>, LinalgError> {
        let n = self.square_and_finite()?;
        if n == 0 {
            return Ok(Vec::new());
        }
        let ev = self
            .as_faer()
            .eigenvalues()
            .map_err(|_| LinalgError::NoConvergence { size: n })?;
        let mut ev: Vec<Complex> = ev.into_iter().map(|z| Complex::new(z.re, z.im)).collect();
        ev.sort_by(|x, y| {
            y.abs()
                .total_cmp(&x.abs())
                .then(y.re.total_cmp(&x.re))
                .then(y.im.total_cmp(&x.im))
        });
        Ok(ev)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_eigen_reconstructs_the_matrix() {
        let a = Mat::from_rows(&[
            vec![4.0, 1.0, 0.5],
            vec![1.0, 3.0, 0.0],
            vec![0.5, 0.0, 1.0],
        ]);
        let (values, vectors) = a.symmetric_eigen().unwrap();
        assert!(values.windows(2).all(|w| w[0] >= w[1]), "{values:?}");
        // A = V diag(values) V^T, and V is orthonormal.
        let scaled = Mat::from_fn(3, 3, |i, j| vectors[(i, j)] * values[j]);
        assert!(scaled.matmul_t(&vectors).max_abs_diff(&a) < 1e-12);
        assert!(vectors.t_matmul(&vectors).max_abs_diff(&Mat::identity(3)) < 1e-12);
        assert!((values.iter().sum::<f64>() - a.trace()).abs() < 1e-12);
        assert_eq!(
            Mat::zeros(2, 3).symmetric_eigen().unwrap_err(),
            LinalgError::NotSquare { rows: 2, cols: 3 }
        );
    }

    #[test]
    fn eigenvalues_of_known_matrices() {
        // Rotation by 90 degrees scaled by 2: ±2i.
        let a = Mat::from_rows(&[vec![0.0, -2.0], vec![2.0, 0.0]]);
        let ev = a.eigenvalues().unwrap();
        assert!(
            (ev[0].re).abs() < 1e-12 && (ev[0].im - 2.0).abs() < 1e-12,
            "{ev:?}"
        );
        assert!((ev[1].im + 2.0).abs() < 1e-12);
        // Upper triangular: its diagonal.
        let a = Mat::from_rows(&[
            vec![3.0, 1.0, 4.0],
            vec![0.0, -1.0, 5.0],
            vec![0.0, 0.0, 2.0],
        ]);
        let ev = a.eigenvalues().unwrap();
        let re: Vec<f64> = ev.iter().map(|z| z.re).collect();
        assert!(
            (re[0] - 3.0).abs() < 1e-12
                && (re[1] - 2.0).abs() < 1e-12
                && (re[2] + 1.0).abs() < 1e-12
        );
        assert!(
            Mat::zeros(4, 4)
                .eigenvalues()
                .unwrap()
                .iter()
                .all(|z| z.abs() == 0.0)
        );
        assert!(Mat::zeros(0, 0).eigenvalues().unwrap().is_empty());
        assert_eq!(
            Mat::zeros(2, 3).eigenvalues(),
            Err(LinalgError::NotSquare { rows: 2, cols: 3 })
        );
        let mut nan = Mat::identity(3);
        nan[(1, 2)] = f64::NAN;
        assert_eq!(nan.eigenvalues(), Err(LinalgError::NonFinite));
    }

    #[test]
    fn decompositions_of_empty_and_non_finite_matrices() {
        for (m, n) in [(0, 0), (0, 3), (4, 0)] {
            let a = Mat::zeros(m, n);
            let (q, r) = a.qr();
            assert_eq!((q.shape(), r.shape()), ((m, 0), (0, n)));
            assert_eq!(a.qr_r().shape(), (0, n));
            let svd = a.svd();
            assert_eq!(
                (svd.u.shape(), svd.s.len(), svd.v.shape()),
                ((m, 0), 0, (n, 0))
            );
            assert!(a.singular_values().is_empty());
        }
        let mut a = Mat::identity(3);
        a[(0, 1)] = f64::INFINITY;
        assert_eq!(a.singular_values().len(), 3);
        assert_eq!(a.svd().s.len(), 3);
    }

    #[test]
    fn products_match_naive_loops() {
        let a = Mat::from_fn(5, 3, |i, j| (i * 3 + j) as f64 * 0.5 - 2.0);
        let b = Mat::from_fn(3, 4, |i, j| (i as f64 - j as f64).sin());
        let naive = Mat::from_fn(5, 4, |i, j| (0..3).map(|p| a[(i, p)] * b[(p, j)]).sum());
        assert!(a.matmul(&b).max_abs_diff(&naive) < 1e-12);
        assert!(a.transpose().t_matmul(&b).max_abs_diff(&naive) < 1e-12);
        assert!(a.matmul_t(&b.transpose()).max_abs_diff(&naive) < 1e-12);
        assert_eq!(Mat::zeros(3, 0).matmul(&Mat::zeros(0, 2)), Mat::zeros(3, 2));
    }
}
