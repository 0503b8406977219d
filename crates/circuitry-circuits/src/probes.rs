//! Linear probes: ridge regression in closed form and L2-regularised logistic regression by
//! L-BFGS, on rows of features in `f64`, with scikit-learn's objectives (so a fit here equals
//! `Ridge(alpha)` and `LogisticRegression(C = 1 / alpha)` on the same data: tested against
//! fixtures made with scikit-learn).

use crate::matrix::Mat;

/// A feature matrix: `n` rows of `d` values, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Features {
    pub d: usize,
    pub values: Vec<f64>,
}

impl Features {
    pub fn new(d: usize) -> Features {
        Features {
            d,
            values: Vec::new(),
        }
    }

    pub fn from_rows(rows: &[Vec<f64>]) -> Features {
        let d = rows.first().map_or(0, Vec::len);
        Features {
            d,
            values: rows.iter().flatten().copied().collect(),
        }
    }

    pub fn push(&mut self, row: impl IntoIterator<Item = f64>) {
        let before = self.values.len();
        self.values.extend(row);
        assert_eq!(self.values.len() - before, self.d, "row of another width");
    }

    pub fn rows(&self) -> usize {
        self.values.len().checked_div(self.d).unwrap_or(0)
    }

    pub fn row(&self, i: usize) -> &[f64] {
        &self.values[i * self.d..(i + 1) * self.d]
    }

    /// The rows at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> Features {
        Features {
            d: self.d,
            values: indices
                .iter()
                .flat_map(|&i| self.row(i).iter().copied())
                .collect(),
        }
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// A fitted linear map: `outputs` rows of coefficients and an intercept each.
#[derive(Clone, Debug, PartialEq)]
pub struct LinearFit {
    /// `[outputs][d]`.
    pub coef: Vec<Vec<f64>>,
    pub intercept: Vec<f64>,
}

impl LinearFit {
    /// The scores (logits, or the regression's prediction) of one row.
    pub fn scores(&self, row: &[f64]) -> Vec<f64> {
        self.coef
            .iter()
            .zip(&self.intercept)
            .map(|(w, b)| dot(w, row) + b)
            .collect()
    }
}

/// Ridge regression: minimises `|y - Xw - b|^2 + alpha |w|^2` (the intercept unpenalised), by
/// centring and solving `(Xc^T Xc + alpha I) w = Xc^T yc` ([`Mat::solve_spd`]).
pub fn ridge(x: &Features, y: &[f64], alpha: f64) -> LinearFit {
    let (n, d) = (x.rows(), x.d);
    assert_eq!(n, y.len(), "one target per row");
    let mean: Vec<f64> = (0..d)
        .map(|j| (0..n).map(|i| x.row(i)[j]).sum::<f64>() / n as f64)
        .collect();
    let y_mean = y.iter().sum::<f64>() / n as f64;
    let centred = Mat::from_fn(n, d, |i, j| x.row(i)[j] - mean[j]);
    let yc = Mat::from_fn(n, 1, |i, _| y[i] - y_mean);
    let mut gram = centred.t_matmul(&centred);
    for j in 0..d {
        gram.as_mut_slice()[j * d + j] += alpha;
    }
    let rhs = centred.t_matmul(&yc).into_vec();
    // alpha > 0 makes the system positive definite; a failure means non-finite activations.
    let w = gram.solve_spd(&rhs).unwrap_or_else(|_| vec![f64::NAN; d]);
    let b = y_mean - dot(&w, &mean);
    LinearFit {
        coef: vec![w],
        intercept: vec![b],
    }
}

/// The coefficient of determination of `predicted` against `y` (1 - SS_res / SS_tot; NaN when
/// `y` is constant).
pub fn r_squared(predicted: &[f64], y: &[f64]) -> f64 {
    let mean = y.iter().sum::<f64>() / y.len() as f64;
    let res: f64 = predicted.iter().zip(y).map(|(p, t)| (t - p).powi(2)).sum();
    let tot: f64 = y.iter().map(|t| (t - mean).powi(2)).sum();
    if tot == 0.0 {
        f64::NAN
    } else {
        1.0 - res / tot
    }
}

/// L2-regularised logistic regression on class labels `0..n_classes`: with two classes one
/// sigmoid vector (the scores' single output is the logit of class 1), with more a softmax over
/// one vector per class; minimises `sum_i logloss_i + alpha / 2 * |W|^2` with the intercepts
/// unpenalised, by L-BFGS to a gradient of at most `1e-9` (in every coordinate).
pub fn logistic(x: &Features, labels: &[usize], n_classes: usize, alpha: f64) -> LinearFit {
    let (n, d) = (x.rows(), x.d);
    assert_eq!(n, labels.len(), "one label per row");
    assert!(n_classes >= 2, "logistic regression needs two classes");
    let outputs = if n_classes == 2 { 1 } else { n_classes };
    let width = d + 1;
    // theta: per output, d coefficients then the intercept.
    let objective = |theta: &[f64], grad: &mut [f64]| -> f64 {
        grad.iter_mut().for_each(|g| *g = 0.0);
        let mut loss = 0.0;
        let mut z = vec![0.0; outputs];
        for i in 0..n {
            let row = x.row(i);
            for (k, zk) in z.iter_mut().enumerate() {
                let w = &theta[k * width..(k + 1) * width];
                *zk = dot(&w[..d], row) + w[d];
            }
            // dloss/dz per output
            let mut dz = vec![0.0; outputs];
            if outputs == 1 {
                let t = (labels[i] == 1) as u8 as f64;
                // log(1 + e^z) - t z, stably
                let zi = z[0];
                loss += zi.max(0.0) + (-zi.abs()).exp().ln_1p() - t * zi;
                dz[0] = sigmoid(zi) - t;
            } else {
                let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let sum: f64 = z.iter().map(|v| (v - m).exp()).sum();
                let lse = m + sum.ln();
                loss += lse - z[labels[i]];
                for k in 0..outputs {
                    dz[k] = (z[k] - lse).exp() - (k == labels[i]) as u8 as f64;
                }
            }
            for (k, &g) in dz.iter().enumerate() {
                let gk = &mut grad[k * width..(k + 1) * width];
                for (gj, &v) in gk[..d].iter_mut().zip(row) {
                    *gj += g * v;
                }
                gk[d] += g;
            }
        }
        for k in 0..outputs {
            let w = &theta[k * width..k * width + d];
            loss += 0.5 * alpha * dot(w, w);
            for j in 0..d {
                grad[k * width + j] += alpha * w[j];
            }
        }
        loss
    };
    let theta = lbfgs(vec![0.0; outputs * width], objective, 1e-9, 20_000);
    LinearFit {
        coef: (0..outputs)
            .map(|k| theta[k * width..k * width + d].to_vec())
            .collect(),
        intercept: (0..outputs).map(|k| theta[k * width + d]).collect(),
    }
}

fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// The class a logistic fit predicts for a row (ties: the lower class).
pub fn predict_class(fit: &LinearFit, row: &[f64]) -> usize {
    let s = fit.scores(row);
    if s.len() == 1 {
        return (s[0] > 0.0) as usize;
    }
    let mut best = 0;
    for (k, &v) in s.iter().enumerate() {
        if v > s[best] {
            best = k;
        }
    }
    best
}

/// Minimises `f` (which writes its gradient) from `x` by L-BFGS with 10 correction pairs and a
/// backtracking Armijo line search, until every gradient coordinate is at most `tol`, no step
/// decreases the objective, five steps in a row decrease it by less than 1e-15 of its value,
/// or `max_iter` iterations.
fn lbfgs(
    mut x: Vec<f64>,
    mut f: impl FnMut(&[f64], &mut [f64]) -> f64,
    tol: f64,
    max_iter: usize,
) -> Vec<f64> {
    const MEMORY: usize = 10;
    let n = x.len();
    let mut g = vec![0.0; n];
    let mut fx = f(&x, &mut g);
    let mut s_hist: Vec<Vec<f64>> = Vec::new();
    let mut y_hist: Vec<Vec<f64>> = Vec::new();
    let mut g_new = vec![0.0; n];
    let mut stalled = 0;
    for _ in 0..max_iter {
        if g.iter().all(|v| v.abs() <= tol) {
            break;
        }
        // Two-loop recursion: d = -H g.
        let mut q = g.clone();
        let mut alphas = Vec::with_capacity(s_hist.len());
        for (s, y) in s_hist.iter().zip(&y_hist).rev() {
            let a = dot(s, &q) / dot(y, s);
            q.iter_mut().zip(y).for_each(|(qi, yi)| *qi -= a * yi);
            alphas.push(a);
        }
        let gamma = match (s_hist.last(), y_hist.last()) {
            (Some(s), Some(y)) => dot(s, y) / dot(y, y),
            _ => 1.0 / g.iter().map(|v| v.abs()).fold(1.0, f64::max),
        };
        q.iter_mut().for_each(|v| *v *= gamma);
        for ((s, y), a) in s_hist.iter().zip(&y_hist).zip(alphas.into_iter().rev()) {
            let b = dot(y, &q) / dot(y, s);
            q.iter_mut().zip(s).for_each(|(qi, si)| *qi += (a - b) * si);
        }
        let mut dir: Vec<f64> = q.iter().map(|v| -v).collect();
        let mut slope = dot(&g, &dir);
        if slope >= 0.0 {
            s_hist.clear();
            y_hist.clear();
            dir = g.iter().map(|v| -v).collect();
            slope = -dot(&g, &g);
        }
        let mut t = 1.0;
        let mut x_new = vec![0.0; n];
        let mut f_new;
        let mut tries = 0;
        loop {
            for i in 0..n {
                x_new[i] = x[i] + t * dir[i];
            }
            f_new = f(&x_new, &mut g_new);
            if f_new <= fx + 1e-4 * t * slope || tries >= 30 {
                break;
            }
            t *= 0.5;
            tries += 1;
        }
        // No step decreases the objective: it is at its floating-point floor.
        if f_new >= fx {
            break;
        }
        let s: Vec<f64> = x_new.iter().zip(&x).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = g_new.iter().zip(&g).map(|(a, b)| a - b).collect();
        let decrease = fx - f_new;
        x.clone_from(&x_new);
        g.clone_from(&g_new);
        fx = f_new;
        if dot(&s, &y) > 1e-18 {
            s_hist.push(s);
            y_hist.push(y);
            if s_hist.len() > MEMORY {
                s_hist.remove(0);
                y_hist.remove(0);
            }
        }
        stalled = if decrease <= 1e-15 * fx.abs().max(1.0) {
            stalled + 1
        } else {
            0
        };
        if stalled >= 5 {
            break;
        }
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ridge_by_hand() {
        // y = 2x + 1 exactly; with alpha the slope shrinks to Sxy / (Sxx + alpha).
        let x = Features::from_rows(&[vec![0.0], vec![1.0], vec![2.0], vec![3.0]]);
        let y = [1.0, 3.0, 5.0, 7.0];
        let fit = ridge(&x, &y, 1e-12);
        assert!((fit.coef[0][0] - 2.0).abs() < 1e-9 && (fit.intercept[0] - 1.0).abs() < 1e-9);
        // Sxx = 5, Sxy = 10: slope 10 / 7, intercept 4 - 1.5 * 10 / 7.
        let fit = ridge(&x, &y, 2.0);
        assert!((fit.coef[0][0] - 10.0 / 7.0).abs() < 1e-12);
        assert!((fit.intercept[0] - (4.0 - 1.5 * 10.0 / 7.0)).abs() < 1e-12);
        let pred: Vec<f64> = (0..4).map(|i| fit.scores(x.row(i))[0]).collect();
        assert!(r_squared(&pred, &y) < 1.0);
        assert!((r_squared(&y, &y) - 1.0).abs() < 1e-15);
    }

    #[test]
    fn logistic_gradient_vanishes_at_the_fit() {
        // Separable-ish 1-D data: the penalty keeps the optimum finite.
        let x = Features::from_rows(&[vec![-2.0], vec![-1.0], vec![0.5], vec![1.0], vec![2.0]]);
        let labels = [0, 0, 1, 0, 1];
        let fit = logistic(&x, &labels, 2, 0.5);
        // Stationarity: sum_i (p_i - t_i) x_i + alpha w = 0 and sum_i (p_i - t_i) = 0.
        let (mut gw, mut gb) = (0.5 * fit.coef[0][0], 0.0);
        for (i, &t) in labels.iter().enumerate() {
            let p = sigmoid(fit.scores(x.row(i))[0]);
            gw += (p - t as f64) * x.row(i)[0];
            gb += p - t as f64;
        }
        assert!(gw.abs() < 1e-8 && gb.abs() < 1e-8, "{gw} {gb}");
        assert_eq!(predict_class(&fit, &[3.0]), 1);
        assert_eq!(predict_class(&fit, &[-3.0]), 0);
    }
}
