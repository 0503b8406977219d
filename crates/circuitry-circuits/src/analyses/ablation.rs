//! `ablation`: each unit (head, MLP, neuron, residual stream) knocked out by zero, mean or
//! resample ablation, or steered (scaled, or set to a value)
//! ([`interventions::ablation`](fn@crate::interventions::ablation)), one row per unit and
//! prompt, streamed batch by batch.
//!
//! Mean ablation averages the units' activations over the `reference` dataset in a pass of its
//! own before the main one ([`Analysis::prepass`]). Resample ablation takes its donors from the
//! analysis's whole dataset, which a prepass over that dataset collects, so a prompt's donor does
//! not depend on the batch size.

use std::collections::BTreeSet;

use circuitry_data::Prompt;
use circuitry_models::{ActivationCache, HookPoint};
use circuitry_spec::{AblationMethodSpec, AblationParams, AblationUnits};

use super::causal;
use super::prelude::*;
use crate::analysis::Prepass;
use crate::interventions::ablation::AblationRow;
use crate::interventions::{
    self, AblationConfig, AblationUnit, Component, MeanAccumulator, MeanActivations, PositionSweep,
    PromptPositions, ablation_capturing, ablation_table,
};

enum Method {
    Zero,
    Scale(f64),
    Set(f64),
    /// Accumulating during the prepass, then the means.
    Mean {
        accumulator: Option<MeanAccumulator>,
        means: Option<MeanActivations>,
    },
    /// The analysis's dataset, collected during the prepass.
    Resample {
        seed: u64,
        dataset: Vec<Prompt>,
    },
}

pub struct Ablation {
    params: AblationParams,
    /// The analysis's own dataset (the default reference, and the resampling pool).
    dataset: Option<String>,
    /// Components ablated, one unit each (positions are added per batch).
    components: Vec<Component>,
    method: Method,
    metric: Option<interventions::Metric>,
}

impl Kind for Ablation {
    type Params = AblationParams;
    const TABLES: &'static [TableDecl] = &[TableDecl::main::<AblationRow>()];

    fn build(params: Self::Params, cx: BuildContext) -> Result<Self, AnalysisError> {
        let dataset = cx.analysis.dataset.clone();
        let layers = causal::layers(cx.config, params.layers.as_deref())?;
        if cx.config.attn_only
            && matches!(params.units, AblationUnits::Mlps | AblationUnits::Neurons)
        {
            return Err(AnalysisError::at(
                "units",
                format!(
                    "units = \"{}\": the model is attention-only (it has no MLPs)",
                    params.units
                ),
            ));
        }
        let mut components = Vec::new();
        match params.units {
            AblationUnits::Heads => {
                let heads =
                    super::indices("heads", "head", params.heads.as_deref(), cx.config.n_heads)?;
                for &layer in &layers {
                    components.extend(heads.iter().map(|&head| Component::Head { layer, head }));
                }
            }
            AblationUnits::Mlps => {
                components.extend(layers.iter().map(|&layer| Component::Mlp { layer }));
            }
            AblationUnits::Neurons => {
                let neurons = super::indices(
                    "neurons",
                    "neuron",
                    params.neurons.as_deref(),
                    cx.config.d_mlp,
                )?;
                for &layer in &layers {
                    components.extend(
                        neurons
                            .iter()
                            .map(|&neuron| Component::Neuron { layer, neuron }),
                    );
                }
            }
            AblationUnits::Residual => {
                components.extend(layers.iter().map(|&layer| Component::Resid { layer }));
            }
        }
        let method =
            match params.method {
                AblationMethodSpec::Zero => Method::Zero,
                AblationMethodSpec::Scale => Method::Scale(params.factor.ok_or_else(|| {
                    AnalysisError::at("factor", "method \"scale\" needs `factor`")
                })?),
                AblationMethodSpec::Set => {
                    Method::Set(params.value.ok_or_else(|| {
                        AnalysisError::at("value", "method \"set\" needs `value`")
                    })?)
                }
                AblationMethodSpec::Mean => {
                    let over = params.mean_over;
                    let units: Vec<AblationUnit> =
                        components.iter().map(|&c| AblationUnit::new(c)).collect();
                    Method::Mean {
                        accumulator: Some(MeanAccumulator::for_units(&units, over)),
                        means: None,
                    }
                }
                AblationMethodSpec::Resample => Method::Resample {
                    seed: params.seed.ok_or_else(|| {
                        AnalysisError::at(
                            "seed",
                            "resample ablation needs a seed (the spec derives one)",
                        )
                    })?,
                    dataset: Vec::new(),
                },
            };
        Ok(Ablation {
            params,
            dataset,
            components,
            method,
            metric: None,
        })
    }
}

impl Ablation {
    /// The swept components, in unit order (one unit per component and position selection).
    pub(crate) fn components(&self) -> &[Component] {
        &self.components
    }

    fn units(&self, max_len: usize) -> Vec<AblationUnit> {
        let positions = match causal::position_sweep(&self.params.positions) {
            PositionSweep::All => vec![PromptPositions::All],
            sweep => sweep.selections(max_len),
        };
        self.components
            .iter()
            .flat_map(|&c| {
                positions
                    .iter()
                    .map(move |p| AblationUnit::new(c).at(p.clone()))
            })
            .collect()
    }
}

impl Analysis for Ablation {
    fn prepass(&self) -> Option<Prepass> {
        match &self.method {
            Method::Zero | Method::Scale(_) | Method::Set(_) => None,
            Method::Mean { accumulator, .. } => Some(Prepass {
                dataset: self
                    .params
                    .reference
                    .clone()
                    .or_else(|| self.dataset.clone())?,
                hooks: accumulator
                    .as_ref()
                    .map(|a| a.hooks().clone())
                    .unwrap_or_default(),
            }),
            Method::Resample { .. } => Some(Prepass {
                dataset: self.dataset.clone()?,
                hooks: BTreeSet::<HookPoint>::new(),
            }),
        }
    }

    fn absorb(&mut self, _model: &ModelContext, batch: &BatchContext) -> Result<(), AnalysisError> {
        match &mut self.method {
            Method::Zero | Method::Scale(_) | Method::Set(_) => Ok(()),
            Method::Mean { accumulator, .. } => {
                let acc = accumulator.as_mut().ok_or_else(|| {
                    AnalysisError::new(
                        "internal error: mean ablation absorbed after its means were taken",
                    )
                })?;
                acc.add_captured(batch.prompts, batch.clean, &batch.clean_output.cache)
                    .map_err(causal::error)
            }
            Method::Resample { dataset, .. } => {
                for p in batch.prompts {
                    if p.id as usize != dataset.len() {
                        return Err(AnalysisError::new(format!(
                            "internal error: resample ablation expected prompt {} of its dataset, got {}",
                            dataset.len(),
                            p.id
                        )));
                    }
                    dataset.push(p.clone());
                }
                Ok(())
            }
        }
    }

    fn process(
        &mut self,
        model: &ModelContext,
        batch: &BatchContext,
        sink: &mut dyn TableSink,
    ) -> Result<(), AnalysisError> {
        let (results, _) = self.run_batch(model, batch, &BTreeSet::new())?;
        emit(sink, None, ablation_table(&results))
    }
}

impl Ablation {
    /// The sweep over one batch, and per unit the hooks `capture` of the ablated run
    /// ([`ablation_capturing`]).
    pub(crate) fn run_batch(
        &mut self,
        model: &ModelContext,
        batch: &BatchContext,
        capture: &BTreeSet<HookPoint>,
    ) -> Result<(Vec<interventions::AblationResult>, Vec<ActivationCache>), AnalysisError> {
        let metric = causal::on_first_use(&mut self.metric, || {
            causal::metric(&self.params.metric, &self.params.position, model)
        })?
        .clone();
        let padding = causal::padding(model, batch);
        let max_len = batch.prompts.iter().map(Prompt::len).max().unwrap_or(0);
        let units = self.units(max_len);
        let (method, pool): (interventions::AblationMethod, &[Prompt]) = match &mut self.method {
            Method::Zero => (interventions::AblationMethod::Zero, &[]),
            Method::Scale(f) => (interventions::AblationMethod::Scale(*f), &[]),
            Method::Set(x) => (interventions::AblationMethod::Set(*x), &[]),
            Method::Mean { accumulator, means } => {
                if let Some(acc) = accumulator.take() {
                    let reference = self
                        .params
                        .reference
                        .as_deref()
                        .or(self.dataset.as_deref())
                        .unwrap_or("its dataset");
                    *means = Some(acc.finish().map_err(|e| {
                        AnalysisError::at(
                            "reference",
                            format!("mean ablation over dataset `{reference}`: {e}"),
                        )
                    })?);
                }
                let means = means.clone().expect("means taken above");
                (interventions::AblationMethod::Mean(means), &[])
            }
            Method::Resample { seed, dataset } => (
                interventions::AblationMethod::Resample { seed: *seed },
                dataset.as_slice(),
            ),
        };
        let cfg = AblationConfig::new(units, method, metric);
        ablation_capturing(model.model, batch.prompts, pool, padding, &cfg, capture)
            .map_err(causal::error)
    }
}
