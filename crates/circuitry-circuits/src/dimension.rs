//! How many dimensions a set of vectors uses: a streaming covariance ([`Covariance`]), the PCA
//! spectrum's summaries ([`SpectrumStats`]), a seeded reservoir of sample vectors
//! ([`Reservoir`]) and the TwoNN intrinsic-dimension estimate ([`two_nn`], Facco et al. 2017).

use circuitry_data::Rng;

use crate::matrix::{LinalgError, Mat};

/// The covariance of a stream of `d`-dimensional vectors, accumulated in f64 as sums of
/// (x - shift) and their outer products, the shift being the first vector (so sums stay small).
/// Memory is `d * d`, whatever the number of vectors.
pub struct Covariance {
    d: usize,
    n: u64,
    shift: Vec<f64>,
    sum: Vec<f64>,
    /// Sum of outer products, `d x d`.
    outer: Mat,
}

impl Covariance {
    pub fn new(d: usize) -> Covariance {
        Covariance {
            d,
            n: 0,
            shift: Vec::new(),
            sum: vec![0.0; d],
            outer: Mat::zeros(d, d),
        }
    }

    /// Vectors counted so far.
    pub fn count(&self) -> u64 {
        self.n
    }

    /// Adds the rows of `rows` (`n x d`, row-major f32).
    pub fn add_rows(&mut self, rows: &[f32]) {
        let d = self.d;
        if rows.is_empty() || d == 0 {
            return;
        }
        let n = rows.len() / d;
        if self.shift.is_empty() {
            self.shift = rows[..d].iter().map(|&x| f64::from(x)).collect();
        }
        let mut centred = Vec::with_capacity(n * d);
        for row in rows.chunks_exact(d) {
            for (j, &x) in row.iter().enumerate() {
                let c = f64::from(x) - self.shift[j];
                self.sum[j] += c;
                centred.push(c);
            }
        }
        let block = Mat::from_vec(n, d, centred);
        let outer = block.t_matmul(&block);
        for (acc, x) in self.outer.as_mut_slice().iter_mut().zip(outer.as_slice()) {
            *acc += x;
        }
        self.n += n as u64;
    }

    /// The sample covariance (`ddof = 1`, as `numpy.cov`), or `None` with fewer than 2 vectors.
    pub fn covariance(&self) -> Option<Mat> {
        if self.n < 2 {
            return None;
        }
        let n = self.n as f64;
        let mean: Vec<f64> = self.sum.iter().map(|s| s / n).collect();
        Some(Mat::from_fn(self.d, self.d, |i, j| {
            (self.outer[(i, j)] - n * mean[i] * mean[j]) / (n - 1.0)
        }))
    }
}

/// Summaries of a PCA spectrum (the covariance's eigenvalues, descending, clipped at 0).
#[derive(Clone, Debug, PartialEq)]
pub struct SpectrumStats {
    pub variances: Vec<f64>,
    pub total: f64,
    /// `(sum λ)^2 / sum λ^2`: the number of equally strong directions that would give the same
    /// spread (1 when one direction holds everything, `d` for isotropic data).
    pub participation_ratio: f64,
    /// The fewest leading components holding 90% (99%) of the variance.
    pub components_90: usize,
    pub components_99: usize,
    /// Share of the variance in the first component.
    pub top_share: f64,
}

impl SpectrumStats {
    /// The spectrum of a covariance matrix.
    pub fn of_covariance(cov: &Mat) -> Result<SpectrumStats, LinalgError> {
        let (values, _) = cov.symmetric_eigen()?;
        Ok(SpectrumStats::of_variances(values))
    }

    /// Summaries of `variances` (any order; negatives from rounding are clipped to 0).
    pub fn of_variances(mut variances: Vec<f64>) -> SpectrumStats {
        for v in &mut variances {
            *v = v.max(0.0);
        }
        variances.sort_by(|a, b| b.total_cmp(a));
        let total: f64 = variances.iter().sum();
        let squares: f64 = variances.iter().map(|v| v * v).sum();
        let needed = |share: f64| {
            let mut cumulative = 0.0;
            for (i, v) in variances.iter().enumerate() {
                cumulative += v;
                if cumulative >= share * total {
                    return i + 1;
                }
            }
            variances.len()
        };
        SpectrumStats {
            participation_ratio: if squares > 0.0 {
                total * total / squares
            } else {
                0.0
            },
            components_90: needed(0.9),
            components_99: needed(0.99),
            top_share: if total > 0.0 {
                variances[0] / total
            } else {
                0.0
            },
            total,
            variances,
        }
    }
}

/// A uniform sample of `capacity` items of a stream (Algorithm R), seeded: the same stream and
/// seed keep the same items.
pub struct Reservoir {
    capacity: usize,
    seen: u64,
    rng: Rng,
}

impl Reservoir {
    pub fn new(capacity: usize, seed: u64) -> Reservoir {
        Reservoir {
            capacity,
            seen: 0,
            rng: Rng::new(seed),
        }
    }

    /// Offers the next item: the slot it is to be stored in, or `None` when it is not kept.
    pub fn offer(&mut self) -> Option<usize> {
        self.seen += 1;
        if self.capacity == 0 {
            return None;
        }
        if self.seen <= self.capacity as u64 {
            return Some(self.seen as usize - 1);
        }
        let j = self.rng.below(self.seen) as usize;
        (j < self.capacity).then_some(j)
    }

    /// Slots filled so far.
    pub fn filled(&self) -> usize {
        (self.seen as usize).min(self.capacity)
    }
}

/// TwoNN's estimate of the intrinsic dimension of the rows of `points` (Facco et al. 2017):
/// for each point the ratio `μ = r2 / r1` of its second and first nearest-neighbour distances;
/// with the ratios sorted and their empirical distribution `F`, the slope of a line through
/// the origin fitted to `(ln μ, -ln(1 - F))` over the smallest 90% of ratios. Points with a
/// duplicate (`r1 = 0`) are dropped. Returns the estimate and the number of points used, or
/// `None` with fewer than 3 usable points.
pub fn two_nn(points: &Mat) -> Option<(f64, usize)> {
    let n = points.rows();
    if n < 3 {
        return None;
    }
    // Squared distances from the Gram matrix: |a|^2 + |b|^2 - 2 a.b.
    let gram = points.matmul_t(points);
    let norms: Vec<f64> = (0..n).map(|i| gram[(i, i)]).collect();
    let scale = norms.iter().copied().fold(0.0, f64::max);
    // Below this, two points count as the same (the Gram form's rounding error).
    let tiny = 1e-12 * scale.max(f64::MIN_POSITIVE);
    let mut ratios = Vec::with_capacity(n);
    for i in 0..n {
        let (mut r1, mut r2) = (f64::INFINITY, f64::INFINITY);
        for j in 0..n {
            if j == i {
                continue;
            }
            let d2 = (norms[i] + norms[j] - 2.0 * gram[(i, j)]).max(0.0);
            if d2 < r1 {
                r2 = r1;
                r1 = d2;
            } else if d2 < r2 {
                r2 = d2;
            }
        }
        if r1 > tiny && r2.is_finite() {
            ratios.push((r2 / r1).sqrt());
        }
    }
    let used = ratios.len();
    if used < 3 {
        return None;
    }
    ratios.sort_by(f64::total_cmp);
    let fitted = ((used as f64) * 0.9).floor() as usize;
    let (mut xy, mut xx) = (0.0, 0.0);
    for (i, mu) in ratios.iter().take(fitted).enumerate() {
        let f = (i + 1) as f64 / used as f64;
        let (x, y) = (mu.ln(), -(1.0 - f).ln());
        xy += x * y;
        xx += x * x;
    }
    (xx > 0.0).then(|| (xy / xx, used))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Points uniform in a `k`-dimensional unit cube, embedded in `d` dimensions by a random
    /// orthonormal map (plus an offset).
    fn embedded_cube(n: usize, k: usize, d: usize, seed: u64) -> Mat {
        let mut rng = Rng::new(seed);
        let mut uniform = || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let basis = Mat::from_fn(d, k, |_, _| uniform() - 0.5).qr().0; // d x k orthonormal
        let latent = Mat::from_fn(n, k, |_, _| uniform());
        let mut x = latent.matmul(&basis.transpose());
        for i in 0..n {
            for j in 0..d {
                x[(i, j)] += 3.0 + j as f64 * 0.01;
            }
        }
        x
    }

    /// Standard Gaussian points in `k` dimensions, embedded in `d` by a random orthonormal map
    /// (no boundary, so TwoNN's estimate holds in higher dimensions too).
    fn embedded_gaussian(n: usize, k: usize, d: usize, seed: u64) -> Mat {
        let mut rng = Rng::new(seed);
        let mut uniform = || ((rng.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        let basis = Mat::from_fn(d, k, |_, _| uniform() - 0.5).qr().0;
        // Box-Muller.
        let latent = Mat::from_fn(n, k, |_, _| {
            (-2.0 * uniform().ln()).sqrt() * (2.0 * std::f64::consts::PI * uniform()).cos()
        });
        latent.matmul(&basis.transpose())
    }

    #[test]
    fn two_nn_recovers_known_intrinsic_dimensions() {
        for k in [5, 10] {
            let (estimate, _) = two_nn(&embedded_gaussian(2000, k, 100, k as u64)).unwrap();
            let error = (estimate - k as f64).abs() / k as f64;
            assert!(error < 0.1, "Gaussian k = {k}: TwoNN says {estimate}");
        }
        for (k, seed) in [(5, 1), (2, 2)] {
            let points = embedded_cube(2000, k, 100, seed);
            let (estimate, used) = two_nn(&points).unwrap();
            assert_eq!(used, 2000);
            let error = (estimate - k as f64).abs() / k as f64;
            assert!(error < 0.1, "k = {k}: TwoNN says {estimate}");
        }
        // A non-linear 2-D manifold (a swiss roll) in 3-D.
        let mut rng = Rng::new(9);
        let mut uniform = || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let roll = Mat::from_fn(2000, 3, |_, _| 0.0);
        let mut roll = roll;
        for i in 0..2000 {
            let (t, h) = (
                1.5 * std::f64::consts::PI * (1.0 + 2.0 * uniform()),
                20.0 * uniform(),
            );
            roll[(i, 0)] = t * t.cos();
            roll[(i, 1)] = h;
            roll[(i, 2)] = t * t.sin();
        }
        let (estimate, _) = two_nn(&roll).unwrap();
        assert!((estimate - 2.0).abs() < 0.2, "swiss roll: {estimate}");
    }

    #[test]
    fn two_nn_drops_duplicates() {
        let mut points = embedded_cube(300, 3, 10, 4);
        for j in 0..10 {
            points[(1, j)] = points[(0, j)];
        }
        let (_, used) = two_nn(&points).unwrap();
        assert_eq!(used, 298);
        assert_eq!(two_nn(&Mat::zeros(2, 4)), None);
    }

    #[test]
    fn covariance_equals_the_two_pass_formula() {
        let x = embedded_cube(500, 4, 6, 5);
        let mut cov = Covariance::new(6);
        let rows: Vec<f32> = x.as_slice().iter().map(|&v| v as f32).collect();
        for chunk in rows.chunks(6 * 37) {
            cov.add_rows(chunk);
        }
        assert_eq!(cov.count(), 500);
        let xs: Vec<f64> = rows.iter().map(|&v| f64::from(v)).collect();
        let mean: Vec<f64> = (0..6)
            .map(|j| (0..500).map(|i| xs[i * 6 + j]).sum::<f64>() / 500.0)
            .collect();
        let expected = Mat::from_fn(6, 6, |a, b| {
            (0..500)
                .map(|i| (xs[i * 6 + a] - mean[a]) * (xs[i * 6 + b] - mean[b]))
                .sum::<f64>()
                / 499.0
        });
        assert!(cov.covariance().unwrap().max_abs_diff(&expected) < 1e-12);
        assert!(Covariance::new(3).covariance().is_none());
    }

    #[test]
    fn spectrum_summaries_by_hand() {
        let s = SpectrumStats::of_variances(vec![1.0, 3.0, -1e-18, 6.0]);
        assert_eq!(s.variances, [6.0, 3.0, 1.0, 0.0]);
        assert_eq!(s.total, 10.0);
        assert!((s.participation_ratio - 100.0 / 46.0).abs() < 1e-12);
        // 6 < 9 <= 6 + 3; 99% needs the 1 as well.
        assert_eq!((s.components_90, s.components_99), (2, 3));
        assert_eq!(s.top_share, 0.6);
        let iso = SpectrumStats::of_variances(vec![2.0; 8]);
        assert!((iso.participation_ratio - 8.0).abs() < 1e-12);
    }

    #[test]
    fn reservoir_keeps_the_first_items_then_a_uniform_sample() {
        let mut r = Reservoir::new(3, 1);
        assert_eq!(
            (r.offer(), r.offer(), r.offer()),
            (Some(0), Some(1), Some(2))
        );
        let mut kept = [0usize; 3];
        let mut total = 0;
        for _ in 0..30_000 {
            if let Some(slot) = r.offer() {
                kept[slot] += 1;
                total += 1;
            }
        }
        // Item i > 3 is kept with probability 3 / i: about 3 ln(30003 / 3) ≈ 27.6 replacements.
        assert!((15..45).contains(&total), "{total}");
        assert_eq!(r.filled(), 3);
        assert_eq!(Reservoir::new(0, 1).offer(), None);
    }
}
