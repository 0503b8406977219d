//! `edge_attribution_patching`: EAP or EAP-IG edge scores
//! ([`interventions::eap`](mod@crate::interventions::eap)), merged over every batch, and the
//! circuit read off them. The edges (main table) and the nodes
//! (part `nodes`) are written at the end.

use circuitry_spec::{DEFAULT_TOP_N, EapMethod, EdgeAttributionPatchingParams};

use super::causal;
use crate::analysis::{
    Analysis, AnalysisError, BatchContext, ModelContext, Requirements, TableDecl, emit,
};
use crate::interventions::eap::{EDGE_COLUMNS, NODE_COLUMNS};
use crate::interventions::{CircuitSelection, EapConfig, EapScores, eap, eap_ig};
use crate::table::{Table, TableSink};

/// The part name of the node table.
pub const NODES: &str = "nodes";

pub struct EdgeAttributionPatching {
    params: EdgeAttributionPatchingParams,
    config: Option<EapConfig>,
    scores: Option<EapScores>,
}

impl EdgeAttributionPatching {
    pub fn new(params: EdgeAttributionPatchingParams) -> Self {
        EdgeAttributionPatching {
            params,
            config: None,
            scores: None,
        }
    }

    fn selection(&self) -> CircuitSelection {
        match (self.params.top_n, self.params.threshold) {
            (_, Some(t)) => CircuitSelection::Threshold(t),
            (Some(n), None) => CircuitSelection::TopN(n as usize),
            (None, None) => CircuitSelection::TopN(DEFAULT_TOP_N as usize),
        }
    }
}

impl Analysis for EdgeAttributionPatching {
    fn tables(&self) -> Vec<TableDecl> {
        vec![
            TableDecl::main(&EDGE_COLUMNS),
            TableDecl::part(NODES, &NODE_COLUMNS),
        ]
    }

    fn requirements(&self) -> Requirements {
        Requirements::hooks([])
    }

    fn process(
        &mut self,
        model: &ModelContext,
        batch: &BatchContext,
        _sink: &mut dyn TableSink,
    ) -> Result<(), AnalysisError> {
        if self.config.is_none() {
            let p = &self.params;
            self.config = Some(EapConfig {
                metric: causal::metric(
                    &p.metric,
                    &p.position,
                    model.tokenizer,
                    model.model.config.d_vocab,
                )?,
                direction: p.direction,
                steps: p.steps() as usize,
            });
        }
        let cfg = self.config.as_ref().expect("just built");
        let padding = causal::padding(model, batch);
        let scores = match self.params.method {
            EapMethod::Eap => eap(model.model, batch.prompts, padding, cfg),
            EapMethod::EapIg => eap_ig(model.model, batch.prompts, padding, cfg),
        }
        .map_err(causal::error)?;
        match &mut self.scores {
            None => self.scores = Some(scores),
            Some(total) => total.merge(&scores).map_err(causal::error)?,
        }
        Ok(())
    }

    fn finish(
        &mut self,
        _model: &ModelContext,
        sink: &mut dyn TableSink,
    ) -> Result<(), AnalysisError> {
        let Some(scores) = &self.scores else {
            emit(sink, None, Table::new(&EDGE_COLUMNS))?;
            return emit(sink, Some(NODES), Table::new(&NODE_COLUMNS));
        };
        let normalized;
        let scores = if self.params.metric.normalize {
            normalized = scores.normalized().ok_or_else(|| {
                AnalysisError::at(
                    "metric.normalize",
                    "the clean and corrupt runs have the same mean metric, so scores cannot be normalized by their gap",
                )
            })?;
            &normalized
        } else {
            scores
        };
        let selection = self.selection();
        emit(sink, None, scores.edges_table(selection))?;
        emit(sink, Some(NODES), scores.nodes_table(selection))
    }
}
