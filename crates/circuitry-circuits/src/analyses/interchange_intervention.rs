//! `interchange_intervention`: interchange intervention accuracy of each candidate site, by the
//! activation-patching sweep ([`crate::interventions::activation_patching`]) run in the noising
//! direction (the source's activation into the base run) with the metric
//! `top1(counterfactual)`.

use circuitry_data::causal::{BASE_ANSWER, COUNTERFACTUAL_ANSWER};
use circuitry_models::{HookKind, host_values};
use circuitry_spec::InterchangeInterventionParams;

use super::causal;
use super::prelude::*;
use crate::interventions::{
    Direction, Metric, PatchOptions, PatchingConfig, PatchingSummary, activation_patching,
};

crate::table_row! {
    pub struct InterchangeRow {
        site: String = "The hook intervened on.",
        layer = "Layer of the hook.",
        head: Option<i32> = "Head intervened on (per-head sites swept head by head); null otherwise.",
        position: Option<i32> = "Token index intervened on (null for all positions or named positions).",
        position_name: Option<String> = "The named position intervened on.",
        iia: f64 = "Interchange intervention accuracy: the share of pairs whose intervened run's top prediction is the counterfactual output.",
        iia_base: f64 = "The same share in the unintervened base runs (the counterfactual output is already the base's prediction).",
        iia_source: f64 = "The same share in the source runs.",
        task_accuracy: f64 = "Share of base runs whose top prediction is the causal model's output on the base (the model solves the task).",
        n_pairs: u32 = "Counterfactual pairs averaged.",
    }
}

pub struct InterchangeIntervention {
    params: InterchangeInterventionParams,
    layers: Vec<usize>,
    config: Option<PatchingConfig>,
    summary: PatchingSummary,
    /// Base runs that predict the base output, and pairs seen.
    solved: (u64, u64),
}

impl Kind for InterchangeIntervention {
    type Params = InterchangeInterventionParams;
    const TABLES: &'static [TableDecl] = &[TableDecl::main::<InterchangeRow>()];

    fn build(params: Self::Params, cx: BuildContext) -> Result<Self, AnalysisError> {
        super::check_site(
            cx.config,
            params.site,
            circuitry_models::HookKind::from(params.site),
            "site",
        )?;
        let layers = causal::layers(cx.config, params.layers.as_deref())?;
        causal::check_heads(cx.config, params.site, &params.heads)?;
        Ok(InterchangeIntervention {
            params,
            layers,
            config: None,
            summary: PatchingSummary::default(),
            solved: (0, 0),
        })
    }
}

impl Analysis for InterchangeIntervention {
    fn requirements(&self) -> Requirements {
        Requirements {
            dataset: true,
            ..Requirements::default()
        }
    }

    fn process(
        &mut self,
        model: &ModelContext,
        batch: &BatchContext,
        _sink: &mut dyn TableSink,
    ) -> Result<(), AnalysisError> {
        let padding = causal::padding(model, batch);
        let p = &self.params;
        let cfg = self.config.get_or_insert_with(|| PatchingConfig {
            site: HookKind::from(p.site),
            layers: Some(self.layers.clone()),
            positions: causal::position_sweep(&p.positions),
            heads: p.heads.clone(),
            direction: Direction::Noising,
            metric: Metric::answer_top1(
                COUNTERFACTUAL_ANSWER,
                causal::metric_position(&p.position),
            ),
            options: PatchOptions::default(),
        });
        let results =
            activation_patching(model.model, batch.prompts, padding, cfg).map_err(causal::error)?;
        self.summary.add(&results);
        let solved = Metric::answer_top1(BASE_ANSWER, causal::metric_position(&p.position))
            .resolve(batch.prompts, batch.clean, model.model.config.d_vocab)
            .map_err(causal::error)?;
        let logits = batch
            .clean_output
            .logits
            .clone()
            .ok_or_else(|| AnalysisError::new("internal error: the base run has no logits"))?;
        let values = host_values(&solved.values_from_logits(logits));
        self.solved.0 += values.iter().filter(|&&v| v > 0.5).count() as u64;
        self.solved.1 += values.len() as u64;
        Ok(())
    }

    fn finish(
        &mut self,
        _model: &ModelContext,
        sink: &mut dyn TableSink,
    ) -> Result<(), AnalysisError> {
        let task_accuracy = self.solved.0 as f64 / self.solved.1.max(1) as f64;
        let mut rows = Rows::<InterchangeRow>::new();
        for r in self.summary.rows() {
            rows.push(InterchangeRow {
                site: r.site,
                layer: r.layer,
                head: r.head,
                position: r.position,
                position_name: r.position_name,
                iia: r.metric,
                iia_base: r.metric_clean,
                iia_source: r.metric_corrupt,
                task_accuracy,
                n_pairs: r.n_prompts,
            });
        }
        emit(sink, None, rows)
    }
}
