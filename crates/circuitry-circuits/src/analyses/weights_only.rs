//! Kinds that read only the weights: they receive no batches and write everything once, at the
//! end, from the model's [`CircuitWeights`].

use crate::analysis::{Analysis, AnalysisError, ModelContext, Requirements, Tables};
use crate::table::TableSink;
use crate::weight_circuits::CircuitWeights;

/// A kind computed from the weights alone; its [`Analysis`] follows.
pub(crate) trait WeightsOnly: Send + Tables {
    /// Writes every table from `weights`, the weights of `model`.
    fn write(
        &mut self,
        weights: &CircuitWeights,
        model: &ModelContext,
        sink: &mut dyn TableSink,
    ) -> Result<(), AnalysisError>;
}

impl<K: WeightsOnly> Analysis for K {
    fn requirements(&self) -> Requirements {
        Requirements::weights_only()
    }

    fn finish(
        &mut self,
        model: &ModelContext,
        sink: &mut dyn TableSink,
    ) -> Result<(), AnalysisError> {
        let weights = CircuitWeights::from_transformer(model.model);
        self.write(&weights, model, sink)
    }
}
