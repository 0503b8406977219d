//! Kinds that read only the weights: they receive no batches and write everything once, at the
//! end, from the model's weights ([`HostWeights`]: host copies made on first use, so kinds that
//! compute on the device never pay for them).

use std::cell::OnceCell;

use circuitry_models::Transformer;

use crate::analysis::{Analysis, AnalysisError, ModelContext, Requirements, Tables};
use crate::table::TableSink;
use crate::weight_circuits::CircuitWeights;

/// The model's [`CircuitWeights`] (host `f64` copies of the embeddings, unembedding and every
/// head's matrices), copied on the first [`HostWeights::get`].
pub(crate) struct HostWeights<'a> {
    model: &'a Transformer,
    weights: OnceCell<CircuitWeights>,
}

impl HostWeights<'_> {
    pub(crate) fn get(&self) -> &CircuitWeights {
        self.weights
            .get_or_init(|| CircuitWeights::from_transformer(self.model))
    }
}

/// A kind computed from the weights alone; its [`Analysis`] follows.
pub(crate) trait WeightsOnly: Send + Tables {
    /// Writes every table from the weights of `model` (`weights` holds their host copies).
    fn write(
        &mut self,
        weights: &HostWeights,
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
        let weights = HostWeights {
            model: model.model,
            weights: OnceCell::new(),
        };
        self.write(&weights, model, sink)
    }
}
