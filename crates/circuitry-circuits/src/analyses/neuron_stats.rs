//! `neuron_stats`: each neuron's activation statistics over the dataset, and how token-selective
//! it is (the tokens at its top-k activating positions).

use std::collections::BTreeMap;

use circuitry_spec::NeuronStatsParams;

use super::prelude::*;
use crate::neurons::{Extremes, FeatureReader, Moments};

crate::table_row! {
    pub struct NeuronStatsRow {
        layer = "Layer of the neuron.",
        neuron: i32 = "Index of the neuron (feature) in the site's hook.",
        count: i64 = "Tokens counted.",
        mean: Option<f64> = "Mean activation.",
        std: Option<f64> = "Standard deviation of the activation (population, ddof = 0).",
        min: Option<f32> = "Smallest activation.",
        max: Option<f32> = "Largest activation.",
        skewness: Option<f64> = "Skewness m3 / m2^1.5 (population); null for a constant neuron.",
        kurtosis: Option<f64> = "Excess kurtosis m4 / m2^2 - 3 (0 for a Gaussian; population, scipy's default); null for a constant neuron.",
        frac_above: Option<f64> = "Fraction of tokens whose activation is above `threshold` (activation frequency).",
        top_token_id: Option<u32> = "The most common token among the neuron's top-k activating tokens (ties: the one at the better rank).",
        top_token: Option<String> = "Text of `top_token_id`.",
        top_token_share: Option<f64> = "Share of the top-k activating tokens that are `top_token` (1 = a single-token neuron).",
        token_entropy: Option<f64> = "Entropy in bits of the token distribution of the top-k activating tokens (0 = one token; log2(k) = all different).",
        distinct_tokens: u32 = "Number of distinct tokens among the top-k activating tokens.",
    }
}

pub struct NeuronStats {
    reader: FeatureReader,
    /// Per selected layer: the moments of its features, and each feature's top-k token ids.
    moments: Vec<Moments>,
    top: Vec<Vec<Extremes<u32>>>,
}

impl Kind for NeuronStats {
    type Params = NeuronStatsParams;
    const TABLES: &'static [TableDecl] = &[TableDecl::main::<NeuronStatsRow>()];

    fn build(params: Self::Params, cx: BuildContext) -> Result<Self, AnalysisError> {
        let reader = FeatureReader::new(
            cx.config,
            params.site,
            (params.layers.as_deref(), params.neurons.as_deref()),
            params.sample,
            params.seed,
            params.include_bos,
        )?;
        Ok(NeuronStats {
            moments: reader
                .selection
                .iter()
                .map(|(_, f)| Moments::new(f.len(), params.threshold))
                .collect(),
            top: reader.heaps(Extremes::largest, params.top_k),
            reader,
        })
    }
}

impl Analysis for NeuronStats {
    fn requirements(&self) -> Requirements {
        self.reader.requirements()
    }

    fn process(
        &mut self,
        model: &ModelContext,
        batch: &BatchContext,
        _sink: &mut dyn TableSink,
    ) -> Result<(), AnalysisError> {
        let (moments, top) = (&mut self.moments, &mut self.top);
        self.reader
            .for_each_token(model, batch, |li, prompt, i, row| {
                let features = &self.reader.selection[li].1;
                moments[li].add(|j| row[features[j]]);
                for (j, &f) in features.iter().enumerate() {
                    let v = row[f];
                    if v > top[li][j].bar() {
                        top[li][j].offer(v, prompt.id, i as u32, || prompt.tokens[i]);
                    }
                }
            })
    }

    fn finish(
        &mut self,
        model: &ModelContext,
        sink: &mut dyn TableSink,
    ) -> Result<(), AnalysisError> {
        let top = std::mem::take(&mut self.top);
        for (((layer, features), moments), top) in
            self.reader.selection.iter().zip(&self.moments).zip(top)
        {
            let mut rows = Rows::<NeuronStatsRow>::new();
            for (j, (&neuron, top)) in features.iter().zip(top).enumerate() {
                let s = moments.stats(j);
                let tokens: Vec<u32> = top.into_sorted().into_iter().map(|e| e.item).collect();
                let sel = selectivity(&tokens);
                rows.push(NeuronStatsRow {
                    layer: *layer as i32,
                    neuron: neuron as i32,
                    count: s.count as i64,
                    mean: s.mean,
                    std: s.std,
                    min: s.min,
                    max: s.max,
                    skewness: s.skewness,
                    kurtosis: s.kurtosis,
                    frac_above: s.frac_above,
                    top_token_id: sel.as_ref().map(|s| s.token),
                    top_token: sel.as_ref().map(|s| model.token_text(s.token)),
                    top_token_share: sel.as_ref().map(|s| s.share),
                    token_entropy: sel.as_ref().map(|s| s.entropy_bits),
                    distinct_tokens: sel.as_ref().map_or(0, |s| s.distinct),
                });
            }
            emit(sink, None, rows)?;
        }
        Ok(())
    }
}

/// How concentrated a list of tokens (best first) is on one token.
#[derive(Debug, PartialEq)]
struct Selectivity {
    /// The most common token (ties: the earliest in the list).
    token: u32,
    share: f64,
    entropy_bits: f64,
    distinct: u32,
}

fn selectivity(tokens: &[u32]) -> Option<Selectivity> {
    if tokens.is_empty() {
        return None;
    }
    // token -> (count, first index)
    let mut counts: BTreeMap<u32, (usize, usize)> = BTreeMap::new();
    for (i, &t) in tokens.iter().enumerate() {
        counts.entry(t).or_insert((0, i)).0 += 1;
    }
    let n = tokens.len() as f64;
    let (&token, &(count, _)) = counts
        .iter()
        .max_by(|a, b| a.1.0.cmp(&b.1.0).then(b.1.1.cmp(&a.1.1)))
        .expect("non-empty");
    let entropy_bits = counts
        .values()
        .map(|&(c, _)| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum::<f64>()
        .max(0.0);
    Some(Selectivity {
        token,
        share: count as f64 / n,
        entropy_bits,
        distinct: counts.len() as u32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectivity_by_hand() {
        assert_eq!(selectivity(&[]), None);
        let one = selectivity(&[7, 7, 7, 7]).unwrap();
        assert_eq!(
            (one.token, one.share, one.entropy_bits, one.distinct),
            (7, 1.0, 0.0, 1)
        );
        // 2 x token 5, 1 x 3, 1 x 9: H = -(1/2 log 1/2 + 2 * 1/4 log 1/4) = 1.5 bits.
        let mixed = selectivity(&[3, 5, 9, 5]).unwrap();
        assert_eq!((mixed.token, mixed.share, mixed.distinct), (5, 0.5, 3));
        assert!((mixed.entropy_bits - 1.5).abs() < 1e-12);
        // A tie goes to the token at the better rank.
        assert_eq!(selectivity(&[4, 2, 2, 4]).unwrap().token, 4);
        let all = selectivity(&[1, 2, 3, 4]).unwrap();
        assert!((all.entropy_bits - 2.0).abs() < 1e-12);
    }
}
