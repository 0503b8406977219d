//! `edge_attribution_patching`: EAP or EAP-IG edge scores
//! ([`interventions::eap`](mod@crate::interventions::eap)), merged over every batch, and the
//! circuit read off them. The edges (main table) and the nodes
//! (part `nodes`) are written at the end.

use circuitry_spec::{DEFAULT_TOP_N, EapMethod, EdgeAttributionPatchingParams};

use super::causal;
use super::prelude::*;
use crate::interventions::eap::{EdgeRow, NodeRow};
use crate::interventions::{CircuitSelection, EapConfig, EapScores, eap, eap_ig};

/// The part name of the node table.
const EDGES: TableDecl = TableDecl::main::<EdgeRow>().when("one row per edge");
const NODES: TableDecl = TableDecl::part::<NodeRow>("nodes").when("one row per node");

pub struct EdgeAttributionPatching {
    params: EdgeAttributionPatchingParams,
    config: Option<EapConfig>,
    scores: Option<EapScores>,
}

impl Kind for EdgeAttributionPatching {
    type Params = EdgeAttributionPatchingParams;
    const TABLES: &'static [TableDecl] = &[EDGES, NODES];

    fn build(params: Self::Params, _: BuildContext) -> Result<Self, AnalysisError> {
        Ok(EdgeAttributionPatching {
            params,
            config: None,
            scores: None,
        })
    }
}

impl EdgeAttributionPatching {
    fn selection(&self) -> CircuitSelection {
        match (self.params.top_n, self.params.threshold) {
            (_, Some(t)) => CircuitSelection::Threshold(t),
            (Some(n), None) => CircuitSelection::TopN(n as usize),
            (None, None) => CircuitSelection::TopN(DEFAULT_TOP_N as usize),
        }
    }
}

impl Analysis for EdgeAttributionPatching {
    fn process(
        &mut self,
        model: &ModelContext,
        batch: &BatchContext,
        _sink: &mut dyn TableSink,
    ) -> Result<(), AnalysisError> {
        let p = &self.params;
        let cfg = causal::on_first_use(&mut self.config, || {
            Ok(EapConfig {
                metric: causal::metric(&p.metric, &p.position, model)?,
                direction: p.direction,
                steps: p.steps() as usize,
            })
        })?;
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
            emit(sink, None, Rows::<EdgeRow>::new())?;
            return emit(sink, NODES.part, Rows::<NodeRow>::new());
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
        emit(sink, NODES.part, scores.nodes_table(selection))
    }
}
