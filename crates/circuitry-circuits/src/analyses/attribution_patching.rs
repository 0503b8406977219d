//! `attribution_patching`: the gradient estimate of activation patching at every site, layer,
//! head and position ([`crate::interventions::attribution_patching`]), one row per site, layer,
//! head, position and prompt, streamed batch by batch.

use circuitry_models::HookKind;
use circuitry_spec::AttributionPatchingParams;

use super::causal;
use super::prelude::*;
use crate::interventions::attribution::AttributionPatchingRow;
use crate::interventions::{AttributionConfig, attribution_patching, attribution_table};

pub struct AttributionPatching {
    params: AttributionPatchingParams,
    layers: Vec<usize>,
    config: Option<AttributionConfig>,
}

impl Kind for AttributionPatching {
    type Params = AttributionPatchingParams;
    const TABLES: &'static [TableDecl] = &[TableDecl::main::<AttributionPatchingRow>()];

    fn build(params: Self::Params, cx: BuildContext) -> Result<Self, AnalysisError> {
        for &site in &params.sites {
            super::check_site(
                cx.config,
                site,
                circuitry_models::HookKind::from(site),
                "sites",
            )?;
        }
        let layers = causal::layers(cx.config, params.layers.as_deref())?;
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
        let p = &self.params;
        let cfg = causal::on_first_use(&mut self.config, || {
            Ok(AttributionConfig {
                sites: p.sites.iter().map(|&s| HookKind::from(s)).collect(),
                layers: Some(self.layers.clone()),
                per_position: p.per_position,
                direction: p.direction,
                metric: causal::metric(&p.metric, &p.position, model)?,
            })
        })?;
        let padding = causal::padding(model, batch);
        let results = attribution_patching(model.model, batch.prompts, padding, cfg)
            .map_err(causal::error)?;
        emit(sink, None, attribution_table(&results))
    }
}
