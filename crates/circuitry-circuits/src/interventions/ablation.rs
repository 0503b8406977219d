//! Ablations: a component's activation replaced by zero, by its mean over a dataset, or by its
//! value on another prompt (resampling), and the metric change this causes.
//!
//! Components are attention heads (`attn.hook_z` of one head), MLP layers (`hook_mlp_out`),
//! individual neurons (one feature of `mlp.hook_post`) and the residual stream
//! (`hook_resid_pre`), at every position or at chosen ones. An [`AblationUnit`] ablates one or
//! several components together; every unit is one row block of a batched forward pass that
//! starts at the unit's first layer (see [`super::patching`]).
//!
//! - Zero ablation writes zeros.
//! - Mean ablation writes the mean activation over a declared dataset, accumulated batch by
//!   batch in a separate pass ([`MeanAccumulator`]): per token index ([`MeanOver::Prompts`],
//!   for datasets whose prompts share a template) or over every position as well
//!   ([`MeanOver::PromptsAndPositions`]).
//! - Scale and set (steering) write the activation times a factor, or a constant.
//! - Resample ablation writes the activation of a donor prompt of the same dataset, the donor of
//!   prompt `i` being `resample_donors(n, seed)[i]`, a seeded random cyclic permutation (so no
//!   prompt is its own donor when `n > 1`). Activations line up by token index; positions at or
//!   beyond the donor's length keep their own value.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use circuitry_data::{Prompt, Rng};
use circuitry_models::burn::prelude::*;
use circuitry_models::{ActivationCache, HookKind, HookPoint, HookTensor, TokenBatch, Transformer};

use super::engine::{CapturedRun, PatchOptions, PatchTarget, PatchUnit, patch_units, unit_edits};
use super::metric::Metric;
use super::{
    InterventionError, Padding, PromptPositions, Result, check_hook, make_batch, token_rows,
};
use crate::table::{Rows, Table};

/// A model component that can be ablated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Component {
    /// One attention head's `hook_z`.
    Head { layer: usize, head: usize },
    /// An MLP layer's output, `hook_mlp_out`.
    Mlp { layer: usize },
    /// One neuron: a feature of `mlp.hook_post`.
    Neuron { layer: usize, neuron: usize },
    /// The residual stream before a block, `hook_resid_pre`.
    Resid { layer: usize },
}

impl Component {
    pub fn layer(self) -> usize {
        match self {
            Component::Head { layer, .. }
            | Component::Mlp { layer }
            | Component::Neuron { layer, .. }
            | Component::Resid { layer } => layer,
        }
    }

    pub fn hook(self) -> HookPoint {
        match self {
            Component::Head { layer, .. } => HookPoint::layer(layer, HookKind::Z),
            Component::Mlp { layer } => HookPoint::layer(layer, HookKind::MlpOut),
            Component::Neuron { layer, .. } => HookPoint::layer(layer, HookKind::MlpPost),
            Component::Resid { layer } => HookPoint::resid_pre(layer),
        }
    }

    /// `head`, `mlp`, `neuron` or `resid`.
    pub fn kind_name(self) -> &'static str {
        match self {
            Component::Head { .. } => "head",
            Component::Mlp { .. } => "mlp",
            Component::Neuron { .. } => "neuron",
            Component::Resid { .. } => "resid",
        }
    }

    pub fn target(self, positions: &PromptPositions) -> PatchTarget {
        let (heads, features) = match self {
            Component::Head { head, .. } => (Some(vec![head]), None),
            Component::Neuron { neuron, .. } => (None, Some(vec![neuron])),
            _ => (None, None),
        };
        PatchTarget {
            hook: self.hook(),
            heads,
            features,
            positions: positions.clone(),
        }
    }

    fn check(self, model: &Transformer) -> Result<()> {
        check_hook(model, self.hook())?;
        let cfg = &model.config;
        match self {
            Component::Head { head, .. } if head >= cfg.n_heads => {
                Err(InterventionError::Config(format!(
                    "head {head} is out of range: the model has {} heads per layer",
                    cfg.n_heads
                )))
            }
            Component::Neuron { neuron, .. } if neuron >= cfg.d_mlp => {
                Err(InterventionError::Config(format!(
                    "neuron {neuron} is out of range: the model's MLPs have {} neurons",
                    cfg.d_mlp
                )))
            }
            _ => Ok(()),
        }
    }
}

impl fmt::Display for Component {
    /// `L1H3`, `MLP2`, `L2N17`, `resid_pre3`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Component::Head { layer, head } => write!(f, "L{layer}H{head}"),
            Component::Mlp { layer } => write!(f, "MLP{layer}"),
            Component::Neuron { layer, neuron } => write!(f, "L{layer}N{neuron}"),
            Component::Resid { layer } => write!(f, "resid_pre{layer}"),
        }
    }
}

/// Components ablated together, at the same positions.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AblationUnit {
    pub components: Vec<Component>,
    pub positions: PromptPositions,
}

impl AblationUnit {
    pub fn new(component: Component) -> AblationUnit {
        AblationUnit {
            components: vec![component],
            positions: PromptPositions::All,
        }
    }

    pub fn group(components: Vec<Component>) -> AblationUnit {
        AblationUnit {
            components,
            positions: PromptPositions::All,
        }
    }

    pub fn at(mut self, positions: PromptPositions) -> AblationUnit {
        self.positions = positions;
        self
    }

    /// `L1H3`, `L0H1+L1H2`, `MLP0@END`.
    pub fn label(&self) -> String {
        let mut s = self
            .components
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join("+");
        if self.positions != PromptPositions::All {
            s.push('@');
            s.push_str(&self.positions.to_string());
        }
        s
    }

    /// Every head of every layer, one unit each.
    pub fn every_head(model: &Transformer) -> Vec<AblationUnit> {
        let cfg = &model.config;
        (0..cfg.n_layers)
            .flat_map(|layer| {
                (0..cfg.n_heads).map(move |head| AblationUnit::new(Component::Head { layer, head }))
            })
            .collect()
    }

    /// Every MLP layer, one unit each (none in attention-only models).
    pub fn every_mlp(model: &Transformer) -> Vec<AblationUnit> {
        if model.config.attn_only {
            return Vec::new();
        }
        (0..model.config.n_layers)
            .map(|layer| AblationUnit::new(Component::Mlp { layer }))
            .collect()
    }

    /// Every neuron of one layer, one unit each.
    pub fn every_neuron(model: &Transformer, layer: usize) -> Vec<AblationUnit> {
        (0..model.config.d_mlp)
            .map(|neuron| AblationUnit::new(Component::Neuron { layer, neuron }))
            .collect()
    }

    /// The residual stream before each layer at each token index below `max_len`.
    pub fn every_resid_position(model: &Transformer, max_len: usize) -> Vec<AblationUnit> {
        (0..model.config.n_layers)
            .flat_map(|layer| {
                (0..max_len).map(move |i| {
                    AblationUnit::new(Component::Resid { layer }).at(PromptPositions::Index(i))
                })
            })
            .collect()
    }

    fn patch_unit(&self) -> PatchUnit {
        PatchUnit {
            targets: self
                .components
                .iter()
                .map(|c| c.target(&self.positions))
                .collect(),
        }
    }
}

pub use circuitry_vocab::MeanOver;

#[derive(Clone, Debug)]
struct PosSums {
    /// Product of the hook's axes after batch and position.
    inner: usize,
    sums: Vec<f64>,
    counts: Vec<u64>,
}

/// Accumulates per-position activation sums over a dataset, batch by batch, for mean ablation.
#[derive(Clone, Debug)]
pub struct MeanAccumulator {
    hooks: BTreeSet<HookPoint>,
    over: MeanOver,
    use_corrupt: bool,
    sums: BTreeMap<HookPoint, PosSums>,
}

impl MeanAccumulator {
    /// Means of `hooks` (which must have the position on axis 1: residual, MLP and per-head
    /// `[batch, pos, head, d]` hooks).
    pub fn new(hooks: impl IntoIterator<Item = HookPoint>, over: MeanOver) -> MeanAccumulator {
        MeanAccumulator {
            hooks: hooks.into_iter().collect(),
            over,
            use_corrupt: false,
            sums: BTreeMap::new(),
        }
    }

    /// The hooks that ablating `units` reads.
    pub fn for_units(units: &[AblationUnit], over: MeanOver) -> MeanAccumulator {
        MeanAccumulator::new(
            units
                .iter()
                .flat_map(|u| u.components.iter().map(|c| c.hook())),
            over,
        )
    }

    /// Average the corrupt prompts instead of the clean ones.
    pub fn corrupt(mut self, use_corrupt: bool) -> MeanAccumulator {
        self.use_corrupt = use_corrupt;
        self
    }

    /// Adds one batch of the mean dataset.
    pub fn add_batch(
        &mut self,
        model: &Transformer,
        prompts: &[Prompt],
        padding: Padding,
    ) -> Result<()> {
        for &h in &self.hooks {
            check_hook(model, h)?;
            if h.kind.layout() == circuitry_models::HookLayout::BatchHeadQK {
                return Err(InterventionError::Config(format!(
                    "mean ablation of `{h}` is not supported (attention patterns have no fixed shape per position)"
                )));
            }
        }
        if self.use_corrupt {
            super::check_pairs(prompts, "mean ablation over corrupt prompts")?;
        }
        let batch = make_batch(
            &token_rows(prompts, self.use_corrupt),
            padding,
            &model.device(),
        )?;
        let run = CapturedRun::new(model, batch, &self.hooks);
        self.accumulate(prompts, &run.batch, &run.cache)
    }

    /// Adds one batch of the mean dataset from a forward pass that already ran: `batch` holds
    /// `prompts` in order (clean tokens, or corrupt ones with [`MeanAccumulator::corrupt`]) and
    /// `cache` captured every hook of the accumulator (e.g. the runner's pass over a reference
    /// dataset).
    pub fn add_captured(
        &mut self,
        prompts: &[Prompt],
        batch: &TokenBatch,
        cache: &ActivationCache,
    ) -> Result<()> {
        for &h in &self.hooks {
            if h.kind.layout() == circuitry_models::HookLayout::BatchHeadQK {
                return Err(InterventionError::Config(format!(
                    "mean ablation of `{h}` is not supported (attention patterns have no fixed shape per position)"
                )));
            }
        }
        if batch.batch_size() != prompts.len() {
            return Err(InterventionError::Config(format!(
                "{} prompts but a batch of {} rows",
                prompts.len(),
                batch.batch_size()
            )));
        }
        self.accumulate(prompts, batch, cache)
    }

    fn accumulate(
        &mut self,
        prompts: &[Prompt],
        batch: &TokenBatch,
        cache: &ActivationCache,
    ) -> Result<()> {
        for &h in &self.hooks {
            let t = cache.get(&h).ok_or_else(|| {
                InterventionError::Config(format!("`{h}` was not captured for mean ablation"))
            })?;
            let dims = t.dims();
            let inner: usize = dims[2..].iter().product();
            let values = t.to_vec();
            let entry = self.sums.entry(h).or_insert_with(|| PosSums {
                inner,
                sums: Vec::new(),
                counts: Vec::new(),
            });
            if entry.inner != inner {
                return Err(InterventionError::Config(format!(
                    "`{h}` changed shape between batches of the mean dataset"
                )));
            }
            for (r, p) in prompts.iter().enumerate() {
                if entry.counts.len() < p.len() {
                    entry.counts.resize(p.len(), 0);
                    entry.sums.resize(p.len() * inner, 0.0);
                }
                for i in 0..p.len() {
                    let slot = batch.slot(r, i);
                    let src = &values[(r * dims[1] + slot) * inner..][..inner];
                    for (acc, v) in entry.sums[i * inner..(i + 1) * inner].iter_mut().zip(src) {
                        *acc += f64::from(*v);
                    }
                    entry.counts[i] += 1;
                }
            }
        }
        Ok(())
    }

    /// The hooks whose means are accumulated (capture them on a pass for
    /// [`MeanAccumulator::add_captured`]).
    pub fn hooks(&self) -> &BTreeSet<HookPoint> {
        &self.hooks
    }

    /// The means; fails when no batch was added.
    pub fn finish(self) -> Result<MeanActivations> {
        let mut means = BTreeMap::new();
        for h in &self.hooks {
            let Some(s) = self.sums.get(h) else {
                return Err(InterventionError::Config(format!(
                    "no activations of `{h}` were accumulated for mean ablation (empty mean dataset?)"
                )));
            };
            let total: u64 = s.counts.iter().sum();
            let mut overall = vec![0f64; s.inner];
            for (i, &c) in s.counts.iter().enumerate() {
                if c > 0 {
                    for (o, v) in overall
                        .iter_mut()
                        .zip(&s.sums[i * s.inner..(i + 1) * s.inner])
                    {
                        *o += v;
                    }
                }
            }
            let overall: Vec<f32> = overall
                .iter()
                .map(|v| (v / total.max(1) as f64) as f32)
                .collect();
            let per_position: Vec<f32> = match self.over {
                MeanOver::PromptsAndPositions => Vec::new(),
                MeanOver::Prompts => s
                    .counts
                    .iter()
                    .enumerate()
                    .flat_map(|(i, &c)| {
                        let sums = &s.sums[i * s.inner..(i + 1) * s.inner];
                        sums.iter()
                            .map(move |v| (v / c.max(1) as f64) as f32)
                            .collect::<Vec<_>>()
                    })
                    .collect(),
            };
            means.insert(
                *h,
                HookMean {
                    inner: s.inner,
                    per_position,
                    overall,
                },
            );
        }
        Ok(MeanActivations {
            over: self.over,
            means,
        })
    }
}

#[derive(Clone, Debug)]
struct HookMean {
    inner: usize,
    /// `[positions, inner]`; empty for [`MeanOver::PromptsAndPositions`].
    per_position: Vec<f32>,
    overall: Vec<f32>,
}

/// Mean activations of a dataset, from [`MeanAccumulator::finish`].
#[derive(Clone, Debug)]
pub struct MeanActivations {
    pub over: MeanOver,
    means: BTreeMap<HookPoint, HookMean>,
}

impl MeanActivations {
    pub fn hooks(&self) -> impl Iterator<Item = &HookPoint> {
        self.means.keys()
    }

    /// The mean at token index `i` of `hook` (`[inner]`, the hook's axes after the position).
    pub fn at(&self, hook: &HookPoint, i: usize) -> Option<&[f32]> {
        let m = self.means.get(hook)?;
        let n = m.per_position.len() / m.inner.max(1);
        Some(if i < n {
            &m.per_position[i * m.inner..(i + 1) * m.inner]
        } else {
            &m.overall
        })
    }

    /// A `[batch, seq, ...]` tensor (`dims`) holding the mean at every real slot of `batch`.
    fn values(
        &self,
        hook: &HookPoint,
        batch: &TokenBatch,
        dims: &[usize],
        device: &Device,
    ) -> Result<HookTensor> {
        let inner: usize = dims[2..].iter().product();
        if self.means.get(hook).is_none_or(|m| m.inner != inner) {
            return Err(InterventionError::Config(format!(
                "the mean activations have no `{hook}` of this shape; accumulate them with MeanAccumulator::for_units"
            )));
        }
        let mut data = vec![0f32; dims.iter().product()];
        for (r, row) in batch.rows.iter().enumerate() {
            for i in 0..row.len() {
                let slot = batch.slot(r, i);
                let mean = self.at(hook, i).expect("checked above");
                data[(r * dims[1] + slot) * inner..][..inner].copy_from_slice(mean);
            }
        }
        Ok(host_tensor(data, dims, device))
    }
}

fn host_tensor(data: Vec<f32>, dims: &[usize], device: &Device) -> HookTensor {
    match dims.len() {
        3 => HookTensor::R3(Tensor::<3>::from_data(
            TensorData::new(data, [dims[0], dims[1], dims[2]]),
            device,
        )),
        _ => HookTensor::R4(Tensor::<4>::from_data(
            TensorData::new(data, [dims[0], dims[1], dims[2], dims[3]]),
            device,
        )),
    }
}

/// The donor of every prompt of an `n`-prompt dataset for resample ablation: a uniformly random
/// cyclic permutation (Sattolo's algorithm with `circuitry_data::Rng::new(seed)`), so no prompt
/// is its own donor when `n > 1`. The runner passes `derive_seed(experiment_seed, analysis)`.
pub fn resample_donors(n: usize, seed: u64) -> Vec<usize> {
    let mut perm: Vec<usize> = (0..n).collect();
    let mut rng = Rng::new(seed);
    for i in (1..n).rev() {
        let j = rng.index(i);
        perm.swap(i, j);
    }
    perm
}

/// How ablated activations are replaced.
#[derive(Clone, Debug)]
pub enum AblationMethod {
    Zero,
    Mean(MeanActivations),
    /// Donors from the dataset passed to [`ablation`], chosen with [`resample_donors`].
    Resample {
        seed: u64,
    },
    /// Steering: the activation times a factor.
    Scale(f64),
    /// Steering: every feature of the unit set to a value.
    Set(f64),
}

impl AblationMethod {
    pub fn name(&self) -> &'static str {
        match self {
            AblationMethod::Zero => "zero",
            AblationMethod::Mean(_) => "mean",
            AblationMethod::Resample { .. } => "resample",
            AblationMethod::Scale(_) => "scale",
            AblationMethod::Set(_) => "set",
        }
    }
}

/// An ablation sweep: each unit ablated separately.
#[derive(Clone, Debug)]
pub struct AblationConfig {
    pub units: Vec<AblationUnit>,
    pub method: AblationMethod,
    pub metric: Metric,
    /// Run the corrupt prompts instead of the clean ones.
    pub use_corrupt: bool,
    pub options: PatchOptions,
}

impl AblationConfig {
    pub fn new(units: Vec<AblationUnit>, method: AblationMethod, metric: Metric) -> AblationConfig {
        AblationConfig {
            units,
            method,
            metric,
            use_corrupt: false,
            options: PatchOptions::default(),
        }
    }
}

/// The metric with one unit ablated, for one prompt.
#[derive(Clone, Debug, PartialEq)]
pub struct AblationResult {
    pub prompt: u32,
    /// [`AblationUnit::label`].
    pub unit: String,
    /// For single-component units: the component's kind, layer, head and neuron.
    pub component: Option<Component>,
    /// Token index ablated (`None`: all positions).
    pub position: Option<usize>,
    pub position_name: Option<String>,
    pub method: &'static str,
    /// Metric of the ablated run.
    pub metric: f64,
    /// Metric of the unablated run.
    pub metric_baseline: f64,
}

impl AblationResult {
    /// `metric - metric_baseline`.
    pub fn delta(&self) -> f64 {
        self.metric - self.metric_baseline
    }
}

/// Runs an ablation sweep on one batch. `dataset` is the whole dataset the batch comes from
/// (prompt ids index into it); resample ablation takes its donors from it.
pub fn ablation(
    model: &Transformer,
    prompts: &[Prompt],
    dataset: &[Prompt],
    padding: Padding,
    cfg: &AblationConfig,
) -> Result<Vec<AblationResult>> {
    Ok(ablation_capturing(model, prompts, dataset, padding, cfg, &BTreeSet::new())?.0)
}

/// [`ablation`], and what the ablated model computes beyond the metric: for every unit (in
/// `cfg.units` order) the hooks `capture` of a forward pass of the batch with that unit
/// ablated (the same edits as the sweep's; one full pass per unit, none when `capture` is
/// empty). The batch is padded as [`ablation`] pads it, with `padding`.
pub fn ablation_capturing(
    model: &Transformer,
    prompts: &[Prompt],
    dataset: &[Prompt],
    padding: Padding,
    cfg: &AblationConfig,
    capture: &BTreeSet<HookPoint>,
) -> Result<(Vec<AblationResult>, Vec<ActivationCache>)> {
    if prompts.is_empty() {
        return Err(InterventionError::EmptyBatch);
    }
    if cfg.use_corrupt {
        super::check_pairs(prompts, "ablation of corrupt prompts")?;
    }
    let mut hooks = BTreeSet::new();
    for u in &cfg.units {
        for c in &u.components {
            c.check(model)?;
            hooks.insert(c.hook());
        }
    }
    let device = model.device();
    let batch = make_batch(&token_rows(prompts, cfg.use_corrupt), padding, &device)?;
    let dest = CapturedRun::new(model, batch, &hooks);
    let metric = cfg
        .metric
        .resolve(prompts, &dest.batch, model.config.d_vocab)?;
    let metric = metric.with_reference_from(model, || dest.final_resid());
    let baseline = metric.eval_resid(model, dest.final_resid());
    let mut values: BTreeMap<HookPoint, HookTensor> = BTreeMap::new();
    match &cfg.method {
        AblationMethod::Zero | AblationMethod::Scale(_) | AblationMethod::Set(_) => {
            for h in &hooks {
                let v = match (&cfg.method, dest.hook(h)) {
                    (AblationMethod::Scale(f), HookTensor::R3(t)) => HookTensor::R3(t.clone() * *f),
                    (AblationMethod::Scale(f), HookTensor::R4(t)) => HookTensor::R4(t.clone() * *f),
                    (AblationMethod::Set(x), HookTensor::R3(t)) => {
                        HookTensor::R3(t.ones_like() * *x)
                    }
                    (AblationMethod::Set(x), HookTensor::R4(t)) => {
                        HookTensor::R4(t.ones_like() * *x)
                    }
                    (_, HookTensor::R3(t)) => HookTensor::R3(t.zeros_like()),
                    (_, HookTensor::R4(t)) => HookTensor::R4(t.zeros_like()),
                };
                values.insert(*h, v);
            }
        }
        AblationMethod::Mean(means) => {
            for h in &hooks {
                let dims = dest.hook(h).dims();
                values.insert(*h, means.values(h, &dest.batch, &dims, &device)?);
            }
        }
        AblationMethod::Resample { seed } => {
            let donors = resample_donors(dataset.len(), *seed);
            let donor_prompts: Vec<Prompt> = prompts
                .iter()
                .map(|p| {
                    donors
                        .get(p.id as usize)
                        .map(|&d| dataset[d].clone())
                        .ok_or_else(|| {
                            InterventionError::Config(format!(
                                "prompt id {} is not in the {}-prompt dataset given for resampling",
                                p.id,
                                dataset.len()
                            ))
                        })
                })
                .collect::<Result<_>>()?;
            if cfg.use_corrupt {
                super::check_pairs(&donor_prompts, "resample ablation of corrupt prompts")?;
            }
            let donor_batch = make_batch(
                &token_rows(&donor_prompts, cfg.use_corrupt),
                padding,
                &device,
            )?;
            let donor_run = CapturedRun::new(model, donor_batch, &hooks);
            for h in &hooks {
                let own = dest.hook(h);
                let dims = own.dims();
                let inner: usize = dims[2..].iter().product();
                let mut data = own.to_vec();
                let donor = donor_run.hook(h);
                let dd = donor.dims();
                let donor = donor.to_vec();
                for (r, p) in prompts.iter().enumerate() {
                    let n = p.len().min(donor_prompts[r].len());
                    for i in 0..n {
                        let (s_own, s_donor) = (dest.batch.slot(r, i), donor_run.batch.slot(r, i));
                        data[(r * dims[1] + s_own) * inner..][..inner]
                            .copy_from_slice(&donor[(r * dd[1] + s_donor) * inner..][..inner]);
                    }
                }
                values.insert(*h, host_tensor(data, &dims, &device));
            }
        }
    }
    let units: Vec<PatchUnit> = cfg.units.iter().map(AblationUnit::patch_unit).collect();
    let metrics = patch_units(model, &dest, prompts, &metric, &units, &values, cfg.options)?;
    let mut captured = Vec::new();
    if !capture.is_empty() {
        for unit in &units {
            let (edits, _) = unit_edits(&[unit], prompts, &dest.batch, &values)?;
            captured.push(CapturedRun::with_edits(model, dest.batch.clone(), capture, edits).cache);
        }
    }
    let mut out = Vec::new();
    for (u, per_prompt) in cfg.units.iter().zip(metrics) {
        let label = u.label();
        let component = (u.components.len() == 1).then(|| u.components[0]);
        for (i, m) in per_prompt.into_iter().enumerate() {
            let Some(m) = m else { continue };
            out.push(AblationResult {
                prompt: prompts[i].id,
                unit: label.clone(),
                component,
                position: u.positions.column(&prompts[i]).map(|p| p as usize),
                position_name: u.positions.name(),
                method: cfg.method.name(),
                metric: m,
                metric_baseline: baseline[i],
            });
        }
    }
    Ok((out, captured))
}

crate::table_row! {
    /// A row of [`ablation_table`].
    pub struct AblationRow {
        prompt = "prompt id",
        unit: String = "ablated unit (L1H3, MLP2, L2N17, resid_pre3, L0H1+L1H2, ...@position)",
        component: Option<&'static str> = "head, mlp, neuron or resid (null for groups)",
        layer: Option<i32> = "the component's layer",
        head: Option<i32> = "the head, for heads",
        neuron: Option<i32> = "the neuron, for neurons",
        position: Option<i32> = "ablated token index; null for all positions",
        position_name: Option<String> = "the ablated position's name, when named",
        method: &'static str = "zero, mean, resample, scale or set",
        metric: f64 = "metric of the ablated run",
        metric_baseline: f64 = "metric of the unablated run",
        delta: f64 = "metric - metric_baseline",
    }
}

/// One row per unit and prompt.
pub fn ablation_table(results: &[AblationResult]) -> Table {
    let mut t = Rows::<AblationRow>::new();
    for r in results {
        let c = r.component;
        let (head, neuron) = match c {
            Some(Component::Head { head, .. }) => (Some(head as i32), None),
            Some(Component::Neuron { neuron, .. }) => (None, Some(neuron as i32)),
            _ => (None, None),
        };
        t.push(AblationRow {
            prompt: r.prompt,
            unit: r.unit.clone(),
            component: c.map(|c| c.kind_name()),
            layer: c.map(|c| c.layer() as i32),
            head,
            neuron,
            position: r.position.map(|p| p as i32),
            position_name: r.position_name.clone(),
            method: r.method,
            metric: r.metric,
            metric_baseline: r.metric_baseline,
            delta: r.delta(),
        });
    }
    t.into_table()
}
