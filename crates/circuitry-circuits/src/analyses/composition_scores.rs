//! `composition_scores`: Q-, K- and V-composition between every earlier and later head, from the
//! weights ([`crate::weight_circuits::composition`]), with a seeded random-matrix baseline.

use circuitry_spec::{Composition, CompositionScoresParams};

use super::prelude::*;
use super::weights_only::{HostWeights, WeightsOnly};
use crate::weight_circuits::composition::{
    CompositionKind, composition_baseline, composition_scores,
};

crate::table_row! {
    /// A row of the table.
    pub struct CompositionRow {
        layer_a: i32 = "layer of the earlier (writing) head",
        head_a: i32 = "index of the earlier (writing) head within its layer",
        layer_b: i32 = "layer of the later (reading) head, > layer_a",
        head_b: i32 = "index of the later (reading) head within its layer",
        kind: &'static str = "q, k or v: which input of head b reads head a's output (W_B = W_Q W_K^T, W_K W_Q^T or W_V W_O)",
        score: f64 = "composition score ||W_A W_B||_F / (||W_A||_F ||W_B||_F) with W_A = W_V W_O of head a (TransformerLens all_composition_scores)",
        baseline_mean: Option<f64> = "mean composition score of independent Gaussian matrices of the same shapes (Monte Carlo; null with baseline_samples = 0)",
        baseline_std: Option<f64> = "standard deviation of the composition score of independent Gaussian matrices of the same shapes (null with baseline_samples = 0)",
    }
}

/// The library's kind for the experiment file's.
pub fn composition_kind(c: Composition) -> CompositionKind {
    match c {
        Composition::Q => CompositionKind::Q,
        Composition::K => CompositionKind::K,
        Composition::V => CompositionKind::V,
    }
}

pub struct CompositionScores {
    params: CompositionScoresParams,
}

impl Kind for CompositionScores {
    type Params = CompositionScoresParams;
    const TABLES: &'static [TableDecl] = &[TableDecl::main::<CompositionRow>()];

    fn build(params: Self::Params, cx: BuildContext) -> Result<Self, AnalysisError> {
        super::check_linear_paths(cx.config, true, true, false)?;
        if params.baseline_samples == 1 {
            return Err(AnalysisError::new(
                "baseline_samples must be 0 (no baseline) or at least 2",
            ));
        }
        Ok(CompositionScores { params })
    }
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

impl WeightsOnly for CompositionScores {
    fn write(
        &mut self,
        weights: &HostWeights,
        _: &ModelContext,
        sink: &mut dyn TableSink,
    ) -> Result<(), AnalysisError> {
        let w = weights.get();
        let samples = self.params.baseline_samples as usize;
        for &c in &self.params.kinds {
            let kind = composition_kind(c);
            let (mean, std) = if samples == 0 {
                (None, None)
            } else {
                let b = composition_baseline(w, kind, samples, self.params.seed);
                (finite(b.mean), finite(b.std))
            };
            let mut t = Rows::<CompositionRow>::new();
            for s in composition_scores(w, kind) {
                t.push(CompositionRow {
                    layer_a: s.layer_a as i32,
                    head_a: s.head_a as i32,
                    layer_b: s.layer_b as i32,
                    head_b: s.head_b as i32,
                    kind: c.name(),
                    score: s.score,
                    baseline_mean: mean,
                    baseline_std: std,
                });
            }
            emit(sink, None, t)?;
        }
        Ok(())
    }
}
