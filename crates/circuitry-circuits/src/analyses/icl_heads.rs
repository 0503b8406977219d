//! `icl_heads`: which heads carry in-context learning (Olsson et al. 2022). Each head is
//! ablated alone by the `ablation` kind's machinery with the ICL-score metric, and the ablated
//! runs' attention patterns give the other heads' prefix-matching scores without it.
//!
//! Per head, averaged over prompts: its own prefix-matching and previous-token scores on the
//! clean run ([`induction_scores::scores`]), the ICL score clean and ablated, and the highest
//! prefix-matching score among the other heads clean and ablated (a head's own pattern does not
//! change when its output is ablated, so it is left out of the maximum).

use std::collections::BTreeSet;

use circuitry_models::{HookKind, HookPoint, HostTensor};
use circuitry_spec::{
    AblationMethodSpec, AblationParams, AblationUnits, IclHeadsParams, Measure, MetricSpec,
    PositionSpec, PositionSweepSpec,
};

use super::ablation::Ablation;
use super::induction_scores::{self, repeat_bounds};
use super::prelude::*;
use crate::acts::{attention, patterns};
use crate::analysis::Prepass;
use crate::interventions::Component;

crate::table_row! {
    /// One ablated head.
    pub struct IclHeadRow {
        layer = "Layer of the ablated head.",
        head = "The ablated head.",
        method: &'static str = "zero, mean or resample.",
        prefix_matching_score: f64 = "The head's mean attention from the second copy to the token after the earlier occurrence (induction_scores's induction_score), clean run.",
        previous_token_score: f64 = "The head's mean attention to the previous token, clean run.",
        icl_score_clean: f64 = "Mean ICL score (loss on token late minus loss on token early) of the clean run.",
        icl_score_ablated: f64 = "Mean ICL score with the head ablated.",
        icl_score_change: f64 = "icl_score_ablated - icl_score_clean (positive: the head carried in-context learning).",
        induction_score_clean: f64 = "Highest mean prefix-matching score among the other heads, clean run.",
        induction_score_ablated: f64 = "Highest mean prefix-matching score among the other heads with this head ablated.",
        induction_score_change: f64 = "induction_score_ablated - induction_score_clean (negative: the induction heads needed this head).",
        n_prompts: u32 = "Prompts averaged.",
    }
}

pub struct IclHeads {
    method: &'static str,
    /// The ICL score's late token (every prompt must have it).
    late: usize,
    /// The ablation sweep over the selected heads with the ICL-score metric.
    ablation: Ablation,
    /// The ablated heads, in the sweep's unit order.
    ablated: Vec<(usize, usize)>,
    n_layers: usize,
    n_heads: usize,
    /// Clean `[prefix matching, previous token]` sums of every head (`layer * n_heads + head`).
    clean: Vec<[f64; 2]>,
    /// Per ablated head: prefix-matching sums of every head with it ablated.
    ablated_prefix: Vec<Vec<f64>>,
    /// Per ablated head: ICL score sums, clean and ablated.
    icl: Vec<[f64; 2]>,
    n_prompts: u32,
}

impl Kind for IclHeads {
    type Params = IclHeadsParams;
    const TABLES: &'static [TableDecl] = &[TableDecl::main::<IclHeadRow>()];

    fn build(params: Self::Params, cx: BuildContext) -> Result<Self, AnalysisError> {
        let method = match params.method {
            AblationMethodSpec::Zero => "zero",
            AblationMethodSpec::Mean => "mean",
            AblationMethodSpec::Resample => "resample",
            other => {
                return Err(AnalysisError::at(
                    "method",
                    format!("icl_heads ablates heads: method \"{other}\" steers instead"),
                ));
            }
        };
        let sweep = AblationParams {
            units: AblationUnits::Heads,
            method: params.method,
            factor: None,
            value: None,
            reference: params.reference.clone(),
            mean_over: params.mean_over,
            layers: params.layers.clone(),
            heads: params.heads.clone(),
            neurons: None,
            positions: PositionSweepSpec::default(),
            metric: MetricSpec {
                measure: Measure::IclScore {
                    early: params.early,
                    late: params.late,
                },
                normalize: false,
            },
            position: PositionSpec::Last,
            seed: params.seed,
        };
        let ablation = <Ablation as Kind>::build(sweep, cx)?;
        let ablated: Vec<(usize, usize)> = ablation
            .components()
            .iter()
            .map(|c| match *c {
                Component::Head { layer, head } => Ok((layer, head)),
                other => Err(AnalysisError::new(format!(
                    "internal error: icl_heads swept {other}, not a head"
                ))),
            })
            .collect::<Result<_, _>>()?;
        let (n_layers, n_heads) = (cx.config.n_layers, cx.config.n_heads);
        Ok(IclHeads {
            method,
            late: params.late as usize,
            clean: vec![[0.0; 2]; n_layers * n_heads],
            ablated_prefix: vec![vec![0.0; n_layers * n_heads]; ablated.len()],
            icl: vec![[0.0; 2]; ablated.len()],
            ablation,
            ablated,
            n_layers,
            n_heads,
            n_prompts: 0,
        })
    }
}

impl IclHeads {
    fn pattern_hooks(&self) -> BTreeSet<HookPoint> {
        (0..self.n_layers)
            .map(|l| HookPoint::layer(l, HookKind::Pattern))
            .collect()
    }
}

/// Every head's `[prefix matching, previous token]` scores on `patterns` (one per layer),
/// summed over the prompts of the batch; indexed `layer * n_heads + head`.
fn score_sums(
    batch: &BatchContext,
    bounds: &[(usize, usize)],
    patterns: &[HostTensor],
    n_heads: usize,
) -> Vec<[f64; 2]> {
    let mut sums = vec![[0.0; 2]; patterns.len() * n_heads];
    for (r, (prompt, &(start, repeat))) in batch.prompts.iter().zip(bounds).enumerate() {
        for (layer, pattern) in patterns.iter().enumerate() {
            for head in 0..n_heads {
                let attn = |q, k| f64::from(attention(pattern, batch, r, head, q, k));
                let s = induction_scores::scores(prompt.len(), start, repeat, attn);
                let sum = &mut sums[layer * n_heads + head];
                sum[0] += s[0];
                sum[1] += s[1];
            }
        }
    }
    sums
}

impl Analysis for IclHeads {
    fn requirements(&self) -> Requirements {
        Requirements::hooks(self.pattern_hooks())
    }

    fn prepass(&self) -> Option<Prepass> {
        self.ablation.prepass()
    }

    fn absorb(&mut self, model: &ModelContext, batch: &BatchContext) -> Result<(), AnalysisError> {
        self.ablation.absorb(model, batch)
    }

    fn process(
        &mut self,
        model: &ModelContext,
        batch: &BatchContext,
        _: &mut dyn TableSink,
    ) -> Result<(), AnalysisError> {
        super::icl_score::check_lengths(batch, self.late)?;
        let bounds = batch
            .prompts
            .iter()
            .map(repeat_bounds)
            .collect::<Result<Vec<_>, _>>()?;
        let layers: Vec<usize> = (0..self.n_layers).collect();
        let clean = patterns(&batch.clean_output.cache, &layers)?;
        for (total, s) in
            self.clean
                .iter_mut()
                .zip(score_sums(batch, &bounds, &clean, self.n_heads))
        {
            total[0] += s[0];
            total[1] += s[1];
        }
        let (results, captured) = self
            .ablation
            .run_batch(model, batch, &self.pattern_hooks())?;
        let n = batch.prompts.len();
        if results.len() != self.ablated.len() * n || captured.len() != self.ablated.len() {
            return Err(AnalysisError::new(format!(
                "internal error: {} ablation results and {} captured runs for {} heads and {n} prompts",
                results.len(),
                captured.len(),
                self.ablated.len()
            )));
        }
        for (u, r) in results.iter().enumerate() {
            let icl = &mut self.icl[u / n];
            icl[0] += r.metric_baseline;
            icl[1] += r.metric;
        }
        for (u, cache) in captured.iter().enumerate() {
            let ablated = patterns(cache, &layers)?;
            let sums = score_sums(batch, &bounds, &ablated, self.n_heads);
            for (total, s) in self.ablated_prefix[u].iter_mut().zip(sums) {
                *total += s[0];
            }
        }
        self.n_prompts += n as u32;
        Ok(())
    }

    fn finish(&mut self, _: &ModelContext, sink: &mut dyn TableSink) -> Result<(), AnalysisError> {
        let n = f64::from(self.n_prompts.max(1));
        let others_max = |own: usize, score: &dyn Fn(usize) -> f64| {
            (0..self.n_layers * self.n_heads)
                .filter(|&g| g != own)
                .map(score)
                .fold(f64::NEG_INFINITY, f64::max)
        };
        let mut table = Rows::<IclHeadRow>::new();
        for (u, &(layer, head)) in self.ablated.iter().enumerate() {
            let own = layer * self.n_heads + head;
            let [icl_clean, icl_ablated] = self.icl[u].map(|s| s / n);
            let induction_clean = others_max(own, &|g| self.clean[g][0] / n);
            let induction_ablated = others_max(own, &|g| self.ablated_prefix[u][g] / n);
            table.push(IclHeadRow {
                layer: layer as i32,
                head: head as i32,
                method: self.method,
                prefix_matching_score: self.clean[own][0] / n,
                previous_token_score: self.clean[own][1] / n,
                icl_score_clean: icl_clean,
                icl_score_ablated: icl_ablated,
                icl_score_change: icl_ablated - icl_clean,
                induction_score_clean: induction_clean,
                induction_score_ablated: induction_ablated,
                induction_score_change: induction_ablated - induction_clean,
                n_prompts: self.n_prompts,
            });
        }
        emit(sink, None, table)
    }
}
