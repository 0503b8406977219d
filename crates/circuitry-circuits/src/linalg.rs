//! Small dense `f64` linear algebra on the host, for the weight-based circuit analyses.
//!
//! The matrices involved are at most a few thousand wide (`d_model`, the vocabulary) with a small
//! inner dimension (`d_head`), so everything here is plain row-major `Vec<f64>` code: matrix
//! products go through the `gemm` crate (already compiled for burn's `flex` backend), and the
//! decompositions are textbook algorithms written out:
//!
//! - [`qr`]/[`qr_r`]: Householder QR (thin);
//! - [`svd`]: one-sided Jacobi SVD (after a QR for tall matrices), accurate to high relative
//!   precision and robust for rank-deficient inputs;
//! - [`eigenvalues`]: complex eigenvalues of a general real square matrix by balancing,
//!   Householder reduction to Hessenberg form and the Francis double-shift QR iteration.

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
}

/// A complex number, as returned by [`eigenvalues`].
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
        let mut out = Mat::zeros(self.rows, other.cols);
        let lhs = Strided::row_major(&self.data, self.rows, self.cols);
        let rhs = Strided::row_major(&other.data, other.rows, other.cols);
        gemm_into(
            &mut out.data,
            lhs,
            rhs,
            auto_parallelism(self.rows, other.cols, self.cols),
        );
        out
    }

    /// `selfᵀ · other`, without forming the transpose.
    pub fn t_matmul(&self, other: &Mat) -> Mat {
        assert_eq!(
            self.rows, other.rows,
            "cannot multiply ({}x{})ᵀ by {}x{}",
            self.rows, self.cols, other.rows, other.cols
        );
        let mut out = Mat::zeros(self.cols, other.cols);
        let lhs = Strided::row_major(&self.data, self.rows, self.cols).t();
        let rhs = Strided::row_major(&other.data, other.rows, other.cols);
        gemm_into(
            &mut out.data,
            lhs,
            rhs,
            auto_parallelism(self.cols, other.cols, self.rows),
        );
        out
    }

    /// `self · otherᵀ`, without forming the transpose.
    pub fn matmul_t(&self, other: &Mat) -> Mat {
        assert_eq!(
            self.cols, other.cols,
            "cannot multiply {}x{} by ({}x{})ᵀ",
            self.rows, self.cols, other.rows, other.cols
        );
        let mut out = Mat::zeros(self.rows, other.rows);
        let lhs = Strided::row_major(&self.data, self.rows, self.cols);
        let rhs = Strided::row_major(&other.data, other.rows, other.cols).t();
        gemm_into(
            &mut out.data,
            lhs,
            rhs,
            auto_parallelism(self.rows, other.rows, self.cols),
        );
        out
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

/// Householder reflections of a QR factorisation, kept to rebuild `Q`.
struct Householder {
    /// `R`'s rows (row-major `r x n`, upper trapezoidal).
    r: Mat,
    /// Reflection `j` acts on rows `j..m`: `H = I - beta v vᵀ`.
    reflections: Vec<(Vec<f64>, f64)>,
    m: usize,
}

fn householder(a: &Mat) -> Householder {
    let (m, n) = a.shape();
    let p = m.min(n);
    let mut w = a.data.clone();
    let mut reflections = Vec::with_capacity(p);
    let mut acc = vec![0.0; n];
    for j in 0..p {
        let col: Vec<f64> = (j..m).map(|i| w[i * n + j]).collect();
        let norm = norm2(&col);
        if norm == 0.0 {
            reflections.push((Vec::new(), 0.0));
            continue;
        }
        let x0 = col[0];
        let alpha = if x0 >= 0.0 { -norm } else { norm };
        let mut v = col;
        v[0] = x0 - alpha;
        let vnorm2: f64 = v.iter().map(|x| x * x).sum();
        if vnorm2 == 0.0 {
            reflections.push((Vec::new(), 0.0));
            continue;
        }
        let beta = 2.0 / vnorm2;
        // w[j.., j+1..] -= beta v (vᵀ w[j.., j+1..])
        acc[j + 1..].fill(0.0);
        for (vi, i) in v.iter().zip(j..m) {
            let row = &w[i * n + j + 1..(i + 1) * n];
            for (a, x) in acc[j + 1..].iter_mut().zip(row) {
                *a += vi * x;
            }
        }
        for (vi, i) in v.iter().zip(j..m) {
            let f = beta * vi;
            let row = &mut w[i * n + j + 1..(i + 1) * n];
            for (x, a) in row.iter_mut().zip(&acc[j + 1..]) {
                *x -= f * a;
            }
        }
        w[j * n + j] = alpha;
        for i in j + 1..m {
            w[i * n + j] = 0.0;
        }
        reflections.push((v, beta));
    }
    let mut r = Mat::from_vec(p, n, w[..p * n].to_vec());
    for i in 0..p {
        for j in 0..i.min(n) {
            r.data[i * n + j] = 0.0;
        }
    }
    Householder { r, reflections, m }
}

impl Householder {
    fn q(&self) -> Mat {
        let m = self.m;
        let p = self.r.rows;
        let mut q = Mat::zeros(m, p);
        for i in 0..p {
            q.data[i * p + i] = 1.0;
        }
        let mut acc = vec![0.0; p];
        for (j, (v, beta)) in self.reflections.iter().enumerate().rev() {
            if *beta == 0.0 {
                continue;
            }
            // Rows j..m of Q only have nonzeros in columns j..p at this point.
            acc[j..].fill(0.0);
            for (vi, i) in v.iter().zip(j..m) {
                let row = &q.data[i * p + j..(i + 1) * p];
                for (a, x) in acc[j..].iter_mut().zip(row) {
                    *a += vi * x;
                }
            }
            for (vi, i) in v.iter().zip(j..m) {
                let f = beta * vi;
                let row = &mut q.data[i * p + j..(i + 1) * p];
                for (x, a) in row.iter_mut().zip(&acc[j..]) {
                    *x -= f * a;
                }
            }
        }
        q
    }
}

/// Thin QR: `a (m x n) = Q R` with `Q` `m x p` (orthonormal columns), `R` `p x n` upper
/// trapezoidal, `p = min(m, n)`.
pub fn qr(a: &Mat) -> (Mat, Mat) {
    let h = householder(a);
    let q = h.q();
    (q, h.r)
}

/// The `R` factor of [`qr`] alone (`p x n`, `p = min(m, n)`): `aᵀa = RᵀR`, and for any `x`,
/// `|a x| = |R x|`.
pub fn qr_r(a: &Mat) -> Mat {
    householder(a).r
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

/// Thin SVD of any matrix (one-sided Jacobi, after a QR step when the matrix is not square).
pub fn svd(a: &Mat) -> Svd {
    let (m, n) = a.shape();
    if m < n {
        let t = svd(&a.transpose());
        return Svd {
            u: t.v,
            s: t.s,
            v: t.u,
        };
    }
    if m > n {
        let (q, r) = qr(a);
        let inner = jacobi_svd(&r);
        return Svd {
            u: q.matmul(&inner.u),
            s: inner.s,
            v: inner.v,
        };
    }
    jacobi_svd(a)
}

/// Singular values of any matrix, descending (`min(m, n)` of them).
pub fn singular_values(a: &Mat) -> Vec<f64> {
    let (m, n) = a.shape();
    if m < n {
        return singular_values(&a.transpose());
    }
    let r = if m > n { qr_r(a) } else { a.clone() };
    jacobi_singular_values(&r)
}

/// One-sided (Hestenes) Jacobi on the columns of a square matrix: orthogonalises column pairs by
/// plane rotations accumulated into `V` until all pairs are orthogonal to working precision.
fn jacobi_columns(a: &Mat, want_v: bool) -> (Vec<Vec<f64>>, Option<Vec<Vec<f64>>>) {
    let n = a.cols;
    let mut cols: Vec<Vec<f64>> = (0..n).map(|j| a.column(j)).collect();
    let mut v: Option<Vec<Vec<f64>>> = want_v.then(|| {
        (0..n)
            .map(|j| {
                let mut e = vec![0.0; n];
                e[j] = 1.0;
                e
            })
            .collect()
    });
    let tol = (a.rows.max(1) as f64).sqrt() * f64::EPSILON;
    for _sweep in 0..100 {
        let mut rotated = false;
        for p in 0..n {
            for q in p + 1..n {
                let (alpha, beta, gamma) = {
                    let (cp, cq) = (&cols[p], &cols[q]);
                    let mut alpha = 0.0;
                    let mut beta = 0.0;
                    let mut gamma = 0.0;
                    for (x, y) in cp.iter().zip(cq) {
                        alpha += x * x;
                        beta += y * y;
                        gamma += x * y;
                    }
                    (alpha, beta, gamma)
                };
                if alpha == 0.0 || beta == 0.0 || gamma.abs() <= tol * (alpha.sqrt() * beta.sqrt())
                {
                    continue;
                }
                rotated = true;
                let zeta = (beta - alpha) / (2.0 * gamma);
                let t = zeta.signum() / (zeta.abs() + (1.0 + zeta * zeta).sqrt());
                let c = 1.0 / (1.0 + t * t).sqrt();
                let s = c * t;
                rotate(&mut cols, p, q, c, s);
                if let Some(v) = v.as_mut() {
                    rotate(v, p, q, c, s);
                }
            }
        }
        if !rotated {
            break;
        }
    }
    (cols, v)
}

fn rotate(cols: &mut [Vec<f64>], p: usize, q: usize, c: f64, s: f64) {
    let (left, right) = cols.split_at_mut(q);
    for (x, y) in left[p].iter_mut().zip(right[0].iter_mut()) {
        let (a, b) = (*x, *y);
        *x = c * a - s * b;
        *y = s * a + c * b;
    }
}

fn jacobi_singular_values(a: &Mat) -> Vec<f64> {
    let (cols, _) = jacobi_columns(a, false);
    let mut s: Vec<f64> = cols.iter().map(|c| norm2(c)).collect();
    s.sort_by(|x, y| y.total_cmp(x));
    s
}

fn jacobi_svd(a: &Mat) -> Svd {
    let n = a.cols;
    let (cols, v) = jacobi_columns(a, true);
    let v = v.expect("asked for V");
    let norms: Vec<f64> = cols.iter().map(|c| norm2(c)).collect();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&x, &y| norms[y].total_cmp(&norms[x]).then(x.cmp(&y)));
    let m = a.rows;
    // Columns with a singular value below the numerical-rank threshold are only defined up to
    // rounding (or underflowed out of the rotations): re-orthogonalise them explicitly.
    let s_max = order.first().map_or(0.0, |&j| norms[j]);
    let trust = (s_max * f64::EPSILON * (m.max(n) as f64)).max(1e-140);
    let mut u_cols: Vec<(Vec<f64>, bool)> = Vec::with_capacity(n);
    for &j in &order {
        let s = norms[j];
        let col = if s > 0.0 {
            cols[j].iter().map(|x| x / s).collect()
        } else {
            vec![0.0; m]
        };
        u_cols.push((col, s > trust));
    }
    let u_cols = complete_orthonormal(m, u_cols);
    let mut u = Mat::zeros(m, n);
    let mut vm = Mat::zeros(n, n);
    for (k, (&j, col)) in order.iter().zip(&u_cols).enumerate() {
        for (i, x) in col.iter().enumerate() {
            u.data[i * n + k] = *x;
        }
        for (i, x) in v[j].iter().enumerate() {
            vm.data[i * n + k] = *x;
        }
    }
    Svd {
        u,
        s: order.iter().map(|&j| norms[j]).collect(),
        v: vm,
    }
}

/// Makes the untrusted columns orthonormal to all others: Gram–Schmidt (twice) against the
/// columns accepted so far, falling back to unit basis vectors when little is left.
fn complete_orthonormal(m: usize, cols: Vec<(Vec<f64>, bool)>) -> Vec<Vec<f64>> {
    if cols.iter().all(|(_, trusted)| *trusted) {
        return cols.into_iter().map(|(c, _)| c).collect();
    }
    let mut done: Vec<Vec<f64>> = cols
        .iter()
        .filter(|(_, t)| *t)
        .map(|(c, _)| c.clone())
        .collect();
    let orthogonalise = |e: &mut Vec<f64>, done: &[Vec<f64>]| {
        for _ in 0..2 {
            for d in done {
                let dot: f64 = d.iter().zip(e.iter()).map(|(a, b)| a * b).sum();
                e.iter_mut().zip(d).for_each(|(x, y)| *x -= dot * y);
            }
        }
        norm2(e)
    };
    let mut basis = 0..m;
    let mut out = Vec::with_capacity(cols.len());
    for (col, trusted) in cols {
        if trusted {
            out.push(col);
            continue;
        }
        let mut e = col;
        let mut norm = orthogonalise(&mut e, &done);
        while norm <= 0.5 {
            let i = basis.next().expect("an orthonormal completion exists");
            e = vec![0.0; m];
            e[i] = 1.0;
            norm = orthogonalise(&mut e, &done);
        }
        e.iter_mut().for_each(|x| *x /= norm);
        done.push(e.clone());
        out.push(e);
    }
    out
}

/// All eigenvalues of a real square matrix, complex conjugate pairs included, sorted by
/// decreasing modulus (then by real part, then imaginary part, descending).
pub fn eigenvalues(a: &Mat) -> Result<Vec<Complex>, LinalgError> {
    let (m, n) = a.shape();
    if m != n {
        return Err(LinalgError::NotSquare { rows: m, cols: n });
    }
    if !a.is_finite() {
        return Err(LinalgError::NonFinite);
    }
    let mut h: Vec<Vec<f64>> = (0..n).map(|i| a.row(i).to_vec()).collect();
    balance(&mut h);
    hessenberg(&mut h);
    let mut ev = hqr(&mut h)?;
    ev.sort_by(|x, y| {
        y.abs()
            .total_cmp(&x.abs())
            .then(y.re.total_cmp(&x.re))
            .then(y.im.total_cmp(&x.im))
    });
    Ok(ev)
}

/// Balances rows and columns by powers of two (a similarity transform, exact in floating point)
/// so that the QR iteration sees comparable row and column norms (EISPACK `balanc`).
#[allow(clippy::needless_range_loop)] // index-heavy numeric kernel, kept close to EISPACK
fn balance(a: &mut [Vec<f64>]) {
    const RADIX: f64 = 2.0;
    let n = a.len();
    let sqrdx = RADIX * RADIX;
    let mut done = false;
    let mut rounds = 0;
    while !done && rounds < 1000 {
        done = true;
        rounds += 1;
        for i in 0..n {
            let mut r = 0.0;
            let mut c = 0.0;
            for j in 0..n {
                if j != i {
                    c += a[j][i].abs();
                    r += a[i][j].abs();
                }
            }
            if c != 0.0 && r != 0.0 {
                let mut g = r / RADIX;
                let mut f = 1.0;
                let s = c + r;
                while c < g {
                    f *= RADIX;
                    c *= sqrdx;
                }
                g = r * RADIX;
                while c > g {
                    f /= RADIX;
                    c /= sqrdx;
                }
                if (c + r) / f < 0.95 * s {
                    done = false;
                    let g = 1.0 / f;
                    for x in a[i].iter_mut() {
                        *x *= g;
                    }
                    for row in a.iter_mut() {
                        row[i] *= f;
                    }
                }
            }
        }
    }
}

/// Reduces to upper Hessenberg form by Householder similarity transforms.
#[allow(clippy::needless_range_loop)] // index-heavy numeric kernel, kept close to EISPACK
fn hessenberg(a: &mut [Vec<f64>]) {
    let n = a.len();
    if n < 3 {
        return;
    }
    for k in 0..n - 2 {
        let x: Vec<f64> = (k + 1..n).map(|i| a[i][k]).collect();
        let norm = norm2(&x);
        if norm == 0.0 {
            continue;
        }
        let alpha = if x[0] >= 0.0 { -norm } else { norm };
        let mut v = x;
        v[0] -= alpha;
        let vnorm2: f64 = v.iter().map(|x| x * x).sum();
        if vnorm2 == 0.0 {
            continue;
        }
        let beta = 2.0 / vnorm2;
        // Left: rows k+1..n, columns k..n.
        for j in k..n {
            let dot: f64 = v.iter().zip(k + 1..n).map(|(vi, i)| vi * a[i][j]).sum();
            let f = beta * dot;
            for (vi, i) in v.iter().zip(k + 1..n) {
                a[i][j] -= f * vi;
            }
        }
        // Right: all rows, columns k+1..n.
        for row in a.iter_mut() {
            let dot: f64 = v.iter().zip(&row[k + 1..n]).map(|(vi, x)| vi * x).sum();
            let f = beta * dot;
            for (x, vi) in row[k + 1..n].iter_mut().zip(&v) {
                *x -= f * vi;
            }
        }
        a[k + 1][k] = alpha;
        for row in a.iter_mut().take(n).skip(k + 2) {
            row[k] = 0.0;
        }
    }
}

fn sign(a: f64, b: f64) -> f64 {
    if b >= 0.0 { a.abs() } else { -a.abs() }
}

/// Eigenvalues of an upper Hessenberg matrix by the Francis double-shift QR iteration
/// (EISPACK `hqr`, as in Numerical Recipes), with exceptional shifts after 10 and 20 stalled
/// iterations. The matrix is destroyed.
#[allow(clippy::needless_range_loop)] // index-heavy numeric kernel, kept close to EISPACK
fn hqr(a: &mut [Vec<f64>]) -> Result<Vec<Complex>, LinalgError> {
    let n = a.len();
    let mut wr = vec![0.0; n];
    let mut wi = vec![0.0; n];
    let mut anorm = 0.0;
    for i in 0..n {
        for j in i.saturating_sub(1)..n {
            anorm += a[i][j].abs();
        }
    }
    let mut nn = n as isize - 1;
    let mut t = 0.0;
    let max_its = 60;
    while nn >= 0 {
        let mut its = 0;
        loop {
            let nu = nn as usize;
            // Look for a single small subdiagonal element.
            let mut l = nu;
            while l >= 1 {
                let mut s = a[l - 1][l - 1].abs() + a[l][l].abs();
                if s == 0.0 {
                    s = anorm;
                }
                if a[l][l - 1].abs() + s == s {
                    a[l][l - 1] = 0.0;
                    break;
                }
                l -= 1;
            }
            let mut x = a[nu][nu];
            if l == nu {
                // One root.
                wr[nu] = x + t;
                wi[nu] = 0.0;
                nn -= 1;
                break;
            }
            let mut y = a[nu - 1][nu - 1];
            let mut w = a[nu][nu - 1] * a[nu - 1][nu];
            if l == nu - 1 {
                // Two roots.
                let p = 0.5 * (y - x);
                let q = p * p + w;
                let mut z = q.abs().sqrt();
                x += t;
                if q >= 0.0 {
                    z = p + sign(z, p);
                    wr[nu - 1] = x + z;
                    wr[nu] = x + z;
                    if z != 0.0 {
                        wr[nu] = x - w / z;
                    }
                    wi[nu - 1] = 0.0;
                    wi[nu] = 0.0;
                } else {
                    wr[nu - 1] = x + p;
                    wr[nu] = x + p;
                    wi[nu - 1] = -z;
                    wi[nu] = z;
                }
                nn -= 2;
                break;
            }
            // No roots found yet: a double QR step on the active block l..=nu.
            if its == max_its {
                return Err(LinalgError::NoConvergence { size: n });
            }
            if its == 10 || its == 20 {
                // Exceptional shift.
                t += x;
                for (i, row) in a.iter_mut().enumerate().take(nu + 1) {
                    row[i] -= x;
                }
                let s = a[nu][nu - 1].abs() + a[nu - 1][nu - 2].abs();
                x = 0.75 * s;
                y = x;
                w = -0.4375 * s * s;
            }
            its += 1;
            // Form the shift and look for two consecutive small subdiagonal elements.
            let mut m = nu - 2;
            let (mut p, mut q, mut r);
            loop {
                let z = a[m][m];
                let rr = x - z;
                let ss = y - z;
                p = (rr * ss - w) / a[m + 1][m] + a[m][m + 1];
                q = a[m + 1][m + 1] - z - rr - ss;
                r = a[m + 2][m + 1];
                let s = p.abs() + q.abs() + r.abs();
                p /= s;
                q /= s;
                r /= s;
                if m == l {
                    break;
                }
                let u = a[m][m - 1].abs() * (q.abs() + r.abs());
                let v = p.abs() * (a[m - 1][m - 1].abs() + z.abs() + a[m + 1][m + 1].abs());
                if u + v == v {
                    break;
                }
                m -= 1;
            }
            for i in m + 2..=nu {
                a[i][i - 2] = 0.0;
                if i != m + 2 {
                    a[i][i - 3] = 0.0;
                }
            }
            // Double QR step on rows l..=nu and columns m..=nu.
            let mut k = m;
            while k < nu {
                let mut xk = 0.0;
                if k != m {
                    p = a[k][k - 1];
                    q = a[k + 1][k - 1];
                    r = 0.0;
                    if k != nu - 1 {
                        r = a[k + 2][k - 1];
                    }
                    xk = p.abs() + q.abs() + r.abs();
                    if xk != 0.0 {
                        p /= xk;
                        q /= xk;
                        r /= xk;
                    }
                }
                let s = sign((p * p + q * q + r * r).sqrt(), p);
                if s != 0.0 {
                    if k == m {
                        if l != m {
                            a[k][k - 1] = -a[k][k - 1];
                        }
                    } else {
                        a[k][k - 1] = -s * xk;
                    }
                    p += s;
                    let xx = p / s;
                    let yy = q / s;
                    let zz = r / s;
                    q /= p;
                    r /= p;
                    // Row modification.
                    for j in k..=nu {
                        let mut pp = a[k][j] + q * a[k + 1][j];
                        if k != nu - 1 {
                            pp += r * a[k + 2][j];
                            a[k + 2][j] -= pp * zz;
                        }
                        a[k + 1][j] -= pp * yy;
                        a[k][j] -= pp * xx;
                    }
                    // Column modification.
                    let mmin = if nu < k + 3 { nu } else { k + 3 };
                    for row in a.iter_mut().take(mmin + 1).skip(l) {
                        let mut pp = xx * row[k] + yy * row[k + 1];
                        if k != nu - 1 {
                            pp += zz * row[k + 2];
                            row[k + 2] -= pp * r;
                        }
                        row[k + 1] -= pp * q;
                        row[k] -= pp;
                    }
                }
                k += 1;
            }
        }
    }
    Ok(wr
        .into_iter()
        .zip(wi)
        .map(|(re, im)| Complex { re, im })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eigenvalues_of_known_matrices() {
        // Rotation by 90 degrees scaled by 2: ±2i.
        let a = Mat::from_rows(&[vec![0.0, -2.0], vec![2.0, 0.0]]);
        let ev = eigenvalues(&a).unwrap();
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
        let ev = eigenvalues(&a).unwrap();
        let re: Vec<f64> = ev.iter().map(|z| z.re).collect();
        assert!(
            (re[0] - 3.0).abs() < 1e-12
                && (re[1] - 2.0).abs() < 1e-12
                && (re[2] + 1.0).abs() < 1e-12
        );
        assert!(
            eigenvalues(&Mat::zeros(4, 4))
                .unwrap()
                .iter()
                .all(|z| z.abs() == 0.0)
        );
        assert!(eigenvalues(&Mat::zeros(0, 0)).unwrap().is_empty());
        assert_eq!(
            eigenvalues(&Mat::zeros(2, 3)),
            Err(LinalgError::NotSquare { rows: 2, cols: 3 })
        );
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
