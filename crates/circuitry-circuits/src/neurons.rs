//! Streaming per-feature statistics for the neuron analyses: which features (neurons) of which
//! layers are studied, a bounded heap of a feature's most extreme activations ([`Extremes`]),
//! and its moments ([`Moments`]). Memory depends on the number of features and `k`, never on
//! the number of prompts.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::ops::Range;

use circuitry_data::{Prompt, Rng};
use circuitry_models::{HookKind, HookPoint, ModelConfig, hook_position_shape};
use circuitry_vocab::FeatureSite;

use crate::acts;
use crate::analyses;
use crate::analysis::{AnalysisError, BatchContext, ModelContext, Requirements};

/// The features studied: per selected layer, its feature indices (ascending).
pub type FeatureSelection = Vec<(usize, Vec<usize>)>;

/// The features of `site` that `layers`, `neurons` and `sample` select (every layer and every
/// feature when unfiltered; `sample` draws that many per layer with `seed`, one draw per layer
/// in layer order). Filters beyond the model are errors at their key.
pub fn select_features(
    config: &ModelConfig,
    site: FeatureSite,
    layers: Option<&[u32]>,
    neurons: Option<&[u32]>,
    sample: Option<u32>,
    seed: Option<u64>,
) -> Result<FeatureSelection, AnalysisError> {
    analyses::check_site(config, site, circuitry_models::HookKind::from(site), "site")?;
    analyses::check_filters(config, layers, None)?;
    let (_, width) = hook_position_shape(config, HookKind::from(site));
    let kind = if matches!(site, FeatureSite::MlpPost | FeatureSite::MlpPre) {
        "neuron"
    } else {
        "dimension"
    };
    let listed = neurons
        .is_some()
        .then(|| analyses::indices("neurons", kind, neurons, width))
        .transpose()?;
    if let Some(n) = sample
        && n as usize > width
    {
        return Err(AnalysisError::at(
            "sample",
            format!("`sample` = {n} is more than the {width} features of `{site}`"),
        ));
    }
    let mut rng = Rng::new(seed.unwrap_or(0));
    Ok(analyses::selected(config.n_layers, layers)
        .into_iter()
        .map(|layer| {
            let features = match (&listed, sample) {
                (Some(list), _) => {
                    let mut f = list.clone();
                    f.sort_unstable();
                    f
                }
                (None, Some(n)) => {
                    let mut f = rng.distinct(width, n as usize);
                    f.sort_unstable();
                    f
                }
                (None, None) => (0..width).collect(),
            };
            (layer, features)
        })
        .collect())
}

/// What a streaming neuron analysis reads: the selected features of one site and which tokens
/// count.
pub struct FeatureReader {
    pub site: HookKind,
    pub selection: FeatureSelection,
    pub include_bos: bool,
}

impl FeatureReader {
    /// The features of `site` that `layers`, `neurons` and `sample` select
    /// ([`select_features`]), counting BOS tokens when `include_bos`.
    pub fn new(
        config: &ModelConfig,
        site: FeatureSite,
        (layers, neurons): (Option<&[u32]>, Option<&[u32]>),
        sample: Option<u32>,
        seed: Option<u64>,
        include_bos: bool,
    ) -> Result<FeatureReader, AnalysisError> {
        Ok(FeatureReader {
            site: HookKind::from(site),
            selection: select_features(config, site, layers, neurons, sample, seed)?,
            include_bos,
        })
    }

    /// One empty heap of `k` per selected feature of every selected layer (`make`:
    /// [`Extremes::largest`] or [`Extremes::smallest`]).
    pub fn heaps<T>(&self, make: fn(usize) -> Extremes<T>, k: u32) -> Vec<Vec<Extremes<T>>> {
        self.selection
            .iter()
            .map(|(_, features)| features.iter().map(|_| make(k as usize)).collect())
            .collect()
    }

    /// The site's hook at every selected layer.
    pub fn requirements(&self) -> Requirements {
        Requirements::hooks(
            self.selection
                .iter()
                .map(|&(l, _)| HookPoint::layer(l, self.site)),
        )
    }

    /// Calls `f(li, prompt, i, row)` for every selected layer (`li`: its index in the
    /// selection), prompt of the batch and counted token `i` ([`counted_positions`]), in that
    /// order; `row` holds all the site's features at the token (index it with the layer's
    /// selected features).
    pub fn for_each_token(
        &self,
        model: &ModelContext,
        batch: &BatchContext,
        mut f: impl FnMut(usize, &Prompt, usize, &[f32]),
    ) -> Result<(), AnalysisError> {
        let bos = model.tokenizer.bos_token_id;
        for (li, (layer, _)) in self.selection.iter().enumerate() {
            let acts = acts::host(batch.clean_output, HookPoint::layer(*layer, self.site))?;
            let [_, t, d] = acts.shape[..] else {
                return Err(AnalysisError::new(
                    "internal error: a feature hook of rank != 3",
                ));
            };
            for (r, prompt) in batch.prompts.iter().enumerate() {
                for i in counted_positions(prompt, self.include_bos, bos) {
                    let base = (r * t + batch.slot(r, i)) * d;
                    f(li, prompt, i, &acts::dense(&acts)[base..base + d]);
                }
            }
        }
        Ok(())
    }
}

/// The token indices of `prompt` that the statistics count: every token, except a BOS token at
/// the start when `include_bos` is false.
pub fn counted_positions(prompt: &Prompt, include_bos: bool, bos: Option<u32>) -> Range<usize> {
    let skip = !include_bos && bos.is_some() && prompt.tokens.first().copied() == bos;
    usize::from(skip)..prompt.len()
}

/// A kept activation: its ordering key (the activation, negated for the least activating),
/// where it occurred, and what the analysis keeps with it.
struct Kept<T> {
    key: f32,
    prompt: u32,
    position: u32,
    item: T,
}

impl<T> Kept<T> {
    /// Better entries are smaller: larger key first, then earlier prompt and position.
    fn order(&self, other: &Self) -> Ordering {
        other
            .key
            .total_cmp(&self.key)
            .then(self.prompt.cmp(&other.prompt))
            .then(self.position.cmp(&other.position))
    }
}

impl<T> PartialEq for Kept<T> {
    fn eq(&self, other: &Self) -> bool {
        self.order(other) == Ordering::Equal
    }
}
impl<T> Eq for Kept<T> {}
impl<T> PartialOrd for Kept<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Kept<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.order(other)
    }
}

/// One extreme activation, as [`Extremes::into_sorted`] returns it.
#[derive(Clone, Debug, PartialEq)]
pub struct Extreme<T> {
    pub activation: f32,
    pub prompt: u32,
    pub position: u32,
    pub item: T,
}

/// The `k` largest (or smallest) activations of one feature seen so far, ties broken by prompt
/// then position (the earlier wins). A max-heap on "worse", so its top is the entry to evict.
pub struct Extremes<T> {
    k: usize,
    /// 1 for the largest activations, -1 for the smallest.
    sign: f32,
    heap: BinaryHeap<Kept<T>>,
}

impl<T> Extremes<T> {
    /// The `k` largest activations.
    pub fn largest(k: usize) -> Extremes<T> {
        Extremes {
            k,
            sign: 1.0,
            heap: BinaryHeap::with_capacity(k),
        }
    }

    /// The `k` smallest activations.
    pub fn smallest(k: usize) -> Extremes<T> {
        Extremes {
            sign: -1.0,
            ..Extremes::largest(k)
        }
    }

    /// The signed key an activation must exceed to enter (`-inf` while not full, `inf` when `k` is 0): callers skip
    /// [`Extremes::offer`] for `sign * activation <= bar()`, which is exact when activations
    /// arrive in (prompt, position) order, since a tie never displaces an earlier entry.
    pub fn bar(&self) -> f32 {
        if self.k == 0 {
            f32::INFINITY
        } else if self.heap.len() < self.k {
            f32::NEG_INFINITY
        } else {
            self.heap.peek().map_or(f32::NEG_INFINITY, |w| w.key)
        }
    }

    /// The sign applied to activations before comparing with [`Extremes::bar`].
    pub fn sign(&self) -> f32 {
        self.sign
    }

    /// Offers an activation; `item` is made only when it is kept. NaN is never kept.
    pub fn offer(&mut self, activation: f32, prompt: u32, position: u32, item: impl FnOnce() -> T) {
        if self.k == 0 || activation.is_nan() {
            return;
        }
        let key = self.sign * activation;
        if self.heap.len() == self.k {
            let worst = self.heap.peek().expect("k > 0");
            let better = key > worst.key
                || (key == worst.key && (prompt, position) < (worst.prompt, worst.position));
            if !better {
                return;
            }
            self.heap.pop();
        }
        self.heap.push(Kept {
            key,
            prompt,
            position,
            item: item(),
        });
    }

    /// The kept activations, best first.
    pub fn into_sorted(self) -> Vec<Extreme<T>> {
        let sign = self.sign;
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|k| Extreme {
                activation: sign * k.key,
                prompt: k.prompt,
                position: k.position,
                item: k.item,
            })
            .collect()
    }
}

/// Streaming moments of a set of features that see the same tokens: counts, extremes, the
/// fraction above a threshold, and sums of powers of (value - shift) in f64, the shift being
/// each feature's first value (so the sums stay small and cancellation is harmless).
pub struct Moments {
    n: u64,
    threshold: f64,
    shift: Vec<f64>,
    sums: Vec<[f64; 4]>,
    min: Vec<f32>,
    max: Vec<f32>,
    above: Vec<u64>,
}

/// A feature's statistics over every counted token; `None` where undefined (no tokens, or no
/// variance for skewness and kurtosis).
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureStats {
    pub count: u64,
    pub mean: Option<f64>,
    /// Population standard deviation (ddof = 0).
    pub std: Option<f64>,
    pub min: Option<f32>,
    pub max: Option<f32>,
    /// Population skewness `m3 / m2^1.5`.
    pub skewness: Option<f64>,
    /// Excess kurtosis `m4 / m2^2 - 3` (0 for a Gaussian; population, as scipy's default).
    pub kurtosis: Option<f64>,
    /// Fraction of tokens whose value is above the threshold.
    pub frac_above: Option<f64>,
}

impl Moments {
    /// Moments of `features` features, counting values above `threshold`.
    pub fn new(features: usize, threshold: f64) -> Moments {
        Moments {
            n: 0,
            threshold,
            shift: Vec::new(),
            sums: vec![[0.0; 4]; features],
            min: vec![f32::INFINITY; features],
            max: vec![f32::NEG_INFINITY; features],
            above: vec![0; features],
        }
    }

    /// Adds one token's values of the features, `value(j)` for feature `j`.
    pub fn add(&mut self, mut value: impl FnMut(usize) -> f32) {
        let features = self.sums.len();
        if self.shift.is_empty() {
            self.shift = (0..features).map(|j| f64::from(value(j))).collect();
        }
        self.n += 1;
        for j in 0..features {
            let x = value(j);
            self.min[j] = self.min[j].min(x);
            self.max[j] = self.max[j].max(x);
            let x = f64::from(x);
            self.above[j] += u64::from(x > self.threshold);
            let d = x - self.shift[j];
            let d2 = d * d;
            let s = &mut self.sums[j];
            s[0] += d;
            s[1] += d2;
            s[2] += d2 * d;
            s[3] += d2 * d2;
        }
    }

    /// Feature `j`'s statistics.
    pub fn stats(&self, j: usize) -> FeatureStats {
        if self.n == 0 {
            return FeatureStats {
                count: 0,
                mean: None,
                std: None,
                min: None,
                max: None,
                skewness: None,
                kurtosis: None,
                frac_above: None,
            };
        }
        let n = self.n as f64;
        let [s1, s2, s3, s4] = self.sums[j].map(|s| s / n);
        // Central moments from the raw moments about the shift.
        let mu = s1;
        let m2 = (s2 - mu * mu).max(0.0);
        let m3 = s3 - 3.0 * mu * s2 + 2.0 * mu.powi(3);
        let m4 = s4 - 4.0 * mu * s3 + 6.0 * mu * mu * s2 - 3.0 * mu.powi(4);
        // Exactly 0 for a constant feature (every difference from its first value is 0).
        let varies = m2 > 0.0;
        FeatureStats {
            count: self.n,
            mean: Some(self.shift[j] + mu),
            std: Some(m2.sqrt()),
            min: Some(self.min[j]),
            max: Some(self.max[j]),
            skewness: varies.then(|| m3 / m2.powf(1.5)),
            kurtosis: varies.then(|| m4 / (m2 * m2) - 3.0),
            frac_above: Some(self.above[j] as f64 / n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extremes_keep_the_k_best_with_ties_to_the_earliest() {
        let values = [3.0, 1.0, 5.0, 5.0, f32::NAN, 2.0, 5.0, -4.0];
        let mut top = Extremes::largest(3);
        let mut bottom = Extremes::smallest(2);
        for (i, &v) in values.iter().enumerate() {
            top.offer(v, i as u32 / 4, i as u32 % 4, || i);
            bottom.offer(v, i as u32 / 4, i as u32 % 4, || i);
        }
        let top: Vec<(f32, usize)> = top
            .into_sorted()
            .into_iter()
            .map(|e| (e.activation, e.item))
            .collect();
        // Three 5s: the first two (items 2, 3) and the 5 at item 6 ties with them but comes later.
        assert_eq!(top, [(5.0, 2), (5.0, 3), (5.0, 6)]);
        let bottom: Vec<(f32, usize)> = bottom
            .into_sorted()
            .into_iter()
            .map(|e| (e.activation, e.item))
            .collect();
        assert_eq!(bottom, [(-4.0, 7), (1.0, 1)]);
        // Out-of-order ties: the earlier position wins even when offered later.
        let mut t = Extremes::largest(1);
        t.offer(1.0, 5, 0, || "late");
        t.offer(1.0, 2, 0, || "early");
        assert_eq!(t.into_sorted()[0].item, "early");
    }

    #[test]
    fn moments_equal_two_pass_statistics() {
        let xs: Vec<f32> = (0..1000)
            .map(|i| 1e3 + ((i * 37 % 101) as f32).powf(1.3) / 7.0)
            .collect();
        let mut m = Moments::new(1, 1010.0);
        for &x in &xs {
            m.add(|_| x);
        }
        let s = m.stats(0);
        let n = xs.len() as f64;
        let mean = xs.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
        let c = |p: i32| {
            xs.iter()
                .map(|&x| (f64::from(x) - mean).powi(p))
                .sum::<f64>()
                / n
        };
        assert!((s.mean.unwrap() - mean).abs() < 1e-9);
        assert!((s.std.unwrap() - c(2).sqrt()).abs() < 1e-9);
        assert!((s.skewness.unwrap() - c(3) / c(2).powf(1.5)).abs() < 1e-8);
        assert!((s.kurtosis.unwrap() - (c(4) / (c(2) * c(2)) - 3.0)).abs() < 1e-8);
        let above = xs.iter().filter(|&&x| f64::from(x) > 1010.0).count() as f64 / n;
        assert_eq!(s.frac_above, Some(above));
        // A constant feature has no shape.
        let mut flat = Moments::new(1, 0.0);
        for _ in 0..3 {
            flat.add(|_| 2.5);
        }
        assert_eq!(
            (flat.stats(0).std, flat.stats(0).kurtosis),
            (Some(0.0), None)
        );
        assert_eq!(Moments::new(1, 0.0).stats(0).count, 0);
    }
}
