//! `composition_scores`: Q-, K- and V-composition between every earlier and later head, from the
//! weights ([`crate::weight_circuits::composition`]), with a seeded random-matrix baseline.

use circuitry_models::ModelConfig;
use circuitry_spec::{Composition, CompositionScoresParams};

use crate::analysis::{Analysis, AnalysisError, ModelContext, Requirements, TableDecl, emit};
use crate::table::{ColumnSpec, DType, Table, TableSink, Value};
use crate::weight_circuits::CircuitWeights;
use crate::weight_circuits::composition::{
    CompositionKind, composition_baseline, composition_scores,
};

/// Columns of the table.
pub const COLUMNS: [ColumnSpec; 8] = [
    ColumnSpec::new("layer_a", DType::I32, "layer of the earlier (writing) head"),
    ColumnSpec::new(
        "head_a",
        DType::I32,
        "index of the earlier (writing) head within its layer",
    ),
    ColumnSpec::new(
        "layer_b",
        DType::I32,
        "layer of the later (reading) head, > layer_a",
    ),
    ColumnSpec::new(
        "head_b",
        DType::I32,
        "index of the later (reading) head within its layer",
    ),
    ColumnSpec::new(
        "kind",
        DType::Utf8,
        "q, k or v: which input of head b reads head a's output (W_B = W_Q W_K^T, W_K W_Q^T or W_V W_O)",
    ),
    ColumnSpec::new(
        "score",
        DType::F64,
        "composition score ||W_A W_B||_F / (||W_A||_F ||W_B||_F) with W_A = W_V W_O of head a (TransformerLens all_composition_scores)",
    ),
    ColumnSpec::nullable(
        "baseline_mean",
        DType::F64,
        "mean composition score of independent Gaussian matrices of the same shapes (Monte Carlo; null with baseline_samples = 0)",
    ),
    ColumnSpec::nullable(
        "baseline_std",
        DType::F64,
        "standard deviation of the composition score of independent Gaussian matrices of the same shapes (null with baseline_samples = 0)",
    ),
];

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

impl CompositionScores {
    pub fn new(
        params: CompositionScoresParams,
        _config: &ModelConfig,
    ) -> Result<Self, AnalysisError> {
        if params.baseline_samples == 1 {
            return Err(AnalysisError::new(
                "baseline_samples must be 0 (no baseline) or at least 2",
            ));
        }
        Ok(CompositionScores { params })
    }
}

fn finite(x: f64) -> Value {
    if x.is_finite() {
        Value::F64(x)
    } else {
        Value::Null
    }
}

impl Analysis for CompositionScores {
    fn tables(&self) -> Vec<TableDecl> {
        vec![TableDecl::main(&COLUMNS)]
    }

    fn requirements(&self) -> Requirements {
        Requirements::weights_only()
    }

    fn finish(
        &mut self,
        model: &ModelContext,
        sink: &mut dyn TableSink,
    ) -> Result<(), AnalysisError> {
        let w = CircuitWeights::from_transformer(model.model);
        let samples = self.params.baseline_samples as usize;
        for &c in &self.params.kinds {
            let kind = composition_kind(c);
            let (mean, std) = if samples == 0 {
                (Value::Null, Value::Null)
            } else {
                let b = composition_baseline(&w, kind, samples, self.params.seed);
                (finite(b.mean), finite(b.std))
            };
            let mut t = Table::new(&COLUMNS);
            for s in composition_scores(&w, kind) {
                t.push_row(vec![
                    (s.layer_a as i32).into(),
                    (s.head_a as i32).into(),
                    (s.layer_b as i32).into(),
                    (s.head_b as i32).into(),
                    c.name().into(),
                    s.score.into(),
                    mean.clone(),
                    std.clone(),
                ]);
            }
            emit(sink, None, t)?;
        }
        Ok(())
    }
}
