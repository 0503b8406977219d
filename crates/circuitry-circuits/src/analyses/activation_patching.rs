//! `activation_patching`: a sweep of activation patches from one run of each clean/corrupt pair
//! into the other ([`crate::interventions::activation_patching`]), one row per patch and prompt,
//! streamed batch by batch, and the means over prompts written at the end.

use circuitry_models::HookKind;
use circuitry_spec::{ActivationPatchingParams, HeadSweep};

use super::causal;
use super::prelude::*;
use crate::interventions::patching::{PatchingRow, PatchingSummaryRow};
use crate::interventions::{
    PatchOptions, PatchingConfig, PatchingSummary, activation_patching, patching_table,
};

/// The part name of the means over prompts.
const PATCHES: TableDecl = TableDecl::main::<PatchingRow>();
const SUMMARY_TABLE: TableDecl =
    TableDecl::part::<PatchingSummaryRow>("summary").when("summary = true (default)");

pub struct ActivationPatching {
    params: ActivationPatchingParams,
    layers: Vec<usize>,
    heads: HeadSweep,
    /// Built on the first batch (the metric's literal tokens need the tokenizer).
    config: Option<PatchingConfig>,
    summary: PatchingSummary,
}

impl Kind for ActivationPatching {
    type Params = ActivationPatchingParams;
    const TABLES: &'static [TableDecl] = &[PATCHES, SUMMARY_TABLE];

    fn build(params: Self::Params, cx: BuildContext) -> Result<Self, AnalysisError> {
        super::check_site(
            cx.config,
            params.site,
            circuitry_models::HookKind::from(params.site),
            "site",
        )?;
        let layers = causal::layers(cx.config, params.layers.as_deref())?;
        causal::check_heads(cx.config, params.site, &params.heads)?;
        let heads = params.heads.clone();
        Ok(ActivationPatching {
            params,
            layers,
            heads,
            config: None,
            summary: PatchingSummary::default(),
        })
    }

    fn tables(&self) -> Vec<TableDecl> {
        let mut t = vec![PATCHES];
        if self.params.summary {
            t.push(SUMMARY_TABLE);
        }
        t
    }
}

impl ActivationPatching {
    fn config(&mut self, model: &ModelContext) -> Result<&PatchingConfig, AnalysisError> {
        let p = &self.params;
        causal::on_first_use(&mut self.config, || {
            Ok(PatchingConfig {
                site: HookKind::from(p.site),
                layers: Some(self.layers.clone()),
                positions: causal::position_sweep(&p.positions),
                heads: self.heads.clone(),
                direction: p.direction,
                metric: causal::metric(&p.metric, &p.position, model)?,
                options: PatchOptions::default(),
            })
        })
    }
}

impl Analysis for ActivationPatching {
    fn process(
        &mut self,
        model: &ModelContext,
        batch: &BatchContext,
        sink: &mut dyn TableSink,
    ) -> Result<(), AnalysisError> {
        let padding = causal::padding(model, batch);
        let cfg = self.config(model)?;
        let results =
            activation_patching(model.model, batch.prompts, padding, cfg).map_err(causal::error)?;
        if self.params.summary {
            self.summary.add(&results);
        }
        emit(sink, None, patching_table(&results))
    }

    fn finish(
        &mut self,
        _model: &ModelContext,
        sink: &mut dyn TableSink,
    ) -> Result<(), AnalysisError> {
        if self.params.summary {
            emit(sink, SUMMARY_TABLE.part, self.summary.table())?;
        }
        Ok(())
    }
}
