//! `das`: distributed alignment search at each (layer, position) of the residual stream
//! ([`crate::interventions::subspace`]), on held-out counterfactual pairs, with a random-basis
//! and a full-interchange baseline.

use circuitry_data::causal::{BASE_ANSWER, COUNTERFACTUAL_ANSWER};
use circuitry_data::derive_seed;
use circuitry_models::{HookKind, HookPoint};
use circuitry_spec::{DasInit, DasParams, Site};

use super::causal;
use super::prelude::*;
use super::probe::{common_position, split};
use crate::acts;
use crate::interventions::subspace::{
    Basis, DasConfig, ResidPair, accuracy, gradient_basis, train_das,
};
use crate::refs;

crate::table_row! {
    pub struct DasRow {
        site: String = "The residual stream searched (resid_pre or resid_post).",
        layer = "Layer of the hook.",
        position: Option<i32> = "Token index searched, when it is the same in every pair.",
        position_name: String = "The position as written.",
        k: u32 = "Dimension of the learnt subspace.",
        n_train: u32 = "Training pairs.",
        n_test: u32 = "Held-out pairs.",
        iia_train: f64 = "Interchange intervention accuracy of the learnt subspace on the training pairs.",
        iia_test: f64 = "The same on the held-out pairs.",
        iia_random: f64 = "Held-out accuracy of a seeded random k-dimensional subspace (where training started with init = \"random\").",
        iia_full: f64 = "Held-out accuracy of interchanging the whole residual vector.",
        task_accuracy: f64 = "Share of held-out base runs whose top prediction is the causal model's output on the base.",
        loss_initial: f64 = "Mean cross-entropy of the counterfactual answer over the training pairs, interchanging along the start.",
        loss_final: f64 = "The same for the subspace reported: the trained one, or the start where that fits better (never higher).",
    }
}

pub struct Das {
    params: DasParams,
    kind: HookKind,
    layers: Vec<usize>,
    /// `[layer][position]`: one pair per prompt.
    pairs: Vec<Vec<Vec<ResidPair>>>,
}

impl Kind for Das {
    type Params = DasParams;
    const TABLES: &'static [TableDecl] = &[TableDecl::main::<DasRow>()];

    fn build(params: Self::Params, cx: BuildContext) -> Result<Self, AnalysisError> {
        let layers = causal::layers(cx.config, params.layers.as_deref())?;
        if params.k as usize > cx.config.d_model {
            return Err(AnalysisError::at(
                "k",
                format!(
                    "k = {} is more than the residual stream's {} dimensions",
                    params.k, cx.config.d_model
                ),
            ));
        }
        let pairs = layers
            .iter()
            .map(|_| params.positions.iter().map(|_| Vec::new()).collect())
            .collect();
        Ok(Das {
            kind: HookKind::from(params.site),
            params,
            layers,
            pairs,
        })
    }
}

impl Das {
    /// The block whose input the hook at `layer` is.
    fn start(&self, layer: usize) -> usize {
        match self.params.site {
            Site::ResidPost => layer + 1,
            _ => layer,
        }
    }
}

impl Analysis for Das {
    fn requirements(&self) -> Requirements {
        let hooks: Vec<HookPoint> = self
            .layers
            .iter()
            .map(|&l| HookPoint::layer(l, self.kind))
            .collect();
        Requirements {
            dataset: true,
            hooks: hooks.iter().copied().collect(),
            corrupt_run: true,
            corrupt_hooks: hooks.into_iter().collect(),
        }
    }

    fn process(
        &mut self,
        _model: &ModelContext,
        batch: &BatchContext,
        _sink: &mut dyn TableSink,
    ) -> Result<(), AnalysisError> {
        let (corrupt, corrupt_output) = batch
            .corrupt
            .ok_or_else(|| AnalysisError::new("internal error: no source run"))?;
        for (li, &layer) in self.layers.iter().enumerate() {
            let hook = HookPoint::layer(layer, self.kind);
            let base = acts::host(batch.clean_output, hook)?;
            let source = acts::host(corrupt_output, hook)?;
            for (r, prompt) in batch.prompts.iter().enumerate() {
                let rows: Vec<f32> = (0..prompt.len())
                    .flat_map(|i| acts::vector(&base, &[r, batch.slot(r, i)]).to_vec())
                    .collect();
                for (pi, p) in self.params.positions.iter().enumerate() {
                    let i = refs::position(p, prompt)?;
                    self.pairs[li][pi].push(ResidPair {
                        prompt: prompt.clone(),
                        base: rows.clone(),
                        source: acts::vector(&source, &[r, corrupt.slot(r, i)]).to_vec(),
                        positions: vec![i],
                    });
                }
            }
        }
        Ok(())
    }

    fn finish(
        &mut self,
        model: &ModelContext,
        sink: &mut dyn TableSink,
    ) -> Result<(), AnalysisError> {
        let p = &self.params;
        let seed = p.seed.unwrap_or(0);
        let d = model.model.config.d_model;
        let position = causal::metric_position(&p.position);
        let mut rows = Rows::<DasRow>::new();
        let sites = (self.layers.len() * p.positions.len()) as u64;
        for (li, &layer) in self.layers.iter().enumerate() {
            let start = self.start(layer);
            for (pi, written) in p.positions.iter().enumerate() {
                let pairs = &self.pairs[li][pi];
                let (train, test) = split(pairs.len(), p.test_fraction, seed, "pairs")?;
                let train: Vec<&ResidPair> = train.iter().map(|&i| &pairs[i]).collect();
                let test: Vec<&ResidPair> = test.iter().map(|&i| &pairs[i]).collect();
                let batch = p.pairs_per_step as usize;
                let iia = |pairs: &[&ResidPair], basis: &Basis, answer: &str| {
                    accuracy(model.model, start, pairs, basis, answer, &position, batch)
                        .map_err(causal::error)
                };
                let random = Basis::random(
                    d,
                    p.k as usize,
                    derive_seed(seed, &format!("das/init/{layer}/{pi}")),
                );
                let cfg = DasConfig {
                    steps: p.steps as usize,
                    lr: p.lr,
                    pairs_per_step: batch,
                    seed: derive_seed(seed, &format!("das/{layer}/{pi}")),
                    answer: COUNTERFACTUAL_ANSWER.to_string(),
                    position: position.clone(),
                };
                let init = match p.init {
                    DasInit::Gradient => {
                        gradient_basis(model.model, start, &train, p.k as usize, &cfg)
                            .map_err(causal::error)?
                    }
                    DasInit::Random => random.clone(),
                };
                let fit =
                    train_das(model.model, start, &train, init, &cfg).map_err(causal::error)?;
                let indices: Vec<usize> = pairs.iter().map(|q| q.positions[0]).collect();
                rows.push(DasRow {
                    site: p.site.to_string(),
                    layer: layer as i32,
                    position: common_position(&indices),
                    position_name: written.to_string(),
                    k: p.k,
                    n_train: train.len() as u32,
                    n_test: test.len() as u32,
                    iia_train: iia(&train, &fit.basis, COUNTERFACTUAL_ANSWER)?,
                    iia_test: iia(&test, &fit.basis, COUNTERFACTUAL_ANSWER)?,
                    iia_random: iia(&test, &random, COUNTERFACTUAL_ANSWER)?,
                    iia_full: iia(&test, &Basis::full(d), COUNTERFACTUAL_ANSWER)?,
                    task_accuracy: iia(&test, &Basis::none(d), BASE_ANSWER)?,
                    loss_initial: fit.loss_initial,
                    loss_final: fit.loss_final,
                });
                model.progress.advance(rows.len() as u64, sites);
            }
        }
        emit(sink, None, rows)
    }
}
