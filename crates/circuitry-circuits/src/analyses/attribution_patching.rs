//! `attribution_patching`: the gradient estimate of activation patching at every site, layer,
//! head and position ([`crate::interventions::attribution_patching`]), one row per site, layer,
//! head, position and prompt, streamed batch by batch.

use circuitry_models::{HookKind, ModelConfig};
use circuitry_spec::AnalysisSpec;
use circuitry_spec::AttributionPatchingParams;

use super::causal;
use crate::analysis::{Analysis, AnalysisError, BatchContext, Kind, ModelContext, TableDecl, emit};
use crate::interventions::attribution::AttributionPatchingRow;
use crate::interventions::{AttributionConfig, attribution_patching, attribution_table};
use crate::table::TableSink;

pub struct AttributionPatching {
    params: AttributionPatchingParams,
    layers: Vec<usize>,
    config: Option<AttributionConfig>,
}

impl Kind for AttributionPatching {
    type Params = AttributionPatchingParams;
    const TABLES: &'static [TableDecl] = &[TableDecl::main::<AttributionPatchingRow>()];

    fn build(
        params: &AttributionPatchingParams,
        _: &AnalysisSpec,
        config: &ModelConfig,
    ) -> Result<Self, AnalysisError> {
        let params = params.clone();
        for &site in &params.sites {
            causal::check_site(config, site, "sites")?;
        }
        let layers = causal::layers(config, params.layers.as_deref())?;
        Ok(AttributionPatching {
            params,
            layers,
            config: None,
        })
    }
}

impl Analysis for AttributionPatching {
    fn process(
        &mut self,
        model: &ModelContext,
        batch: &BatchContext,
        sink: &mut dyn TableSink,
    ) -> Result<(), AnalysisError> {
        if self.config.is_none() {
            let p = &self.params;
            self.config = Some(AttributionConfig {
                sites: p.sites.iter().map(|&s| HookKind::from(s)).collect(),
                layers: Some(self.layers.clone()),
                per_position: p.per_position,
                direction: p.direction,
                metric: causal::metric(
                    &p.metric,
                    &p.position,
                    model.tokenizer,
                    model.model.config.d_vocab,
                )?,
            });
        }
        let cfg = self.config.as_ref().expect("just built");
        let padding = causal::padding(model, batch);
        let results = attribution_patching(model.model, batch.prompts, padding, cfg)
            .map_err(causal::error)?;
        emit(sink, None, attribution_table(&results))
    }
}
