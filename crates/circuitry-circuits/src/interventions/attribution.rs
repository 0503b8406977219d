//! Attribution patching (Nanda 2023, "Attribution Patching: Activation Patching At Industrial
//! Scale"): the first-order estimate of activation patching at every site at once,
//!
//! ```text
//! attribution(site) = (a_source - a_dest) · dMetric/da  at the destination run,
//! ```
//!
//! from one forward and one backward pass of the destination run plus one forward pass of the
//! source. Denoising (the default, as in Nanda's post) takes gradients on the corrupt run and
//! estimates `metric(corrupt with clean a) - metric(corrupt)`; noising takes them on the clean
//! run. The sum over the site's last axis is reported per position (and per head for per-head
//! sites), or summed over positions.
//!
//! Gradients come from burn's autodiff: the model's parameters stay on the plain device and a
//! zero leaf tensor that requires grad is added at every hook of interest
//! (`EditOp::Add`); its gradient is the gradient of the summed per-prompt metric with respect
//! to that activation. Prompts are independent rows, so each row's gradient is its own
//! metric's.

use std::collections::{BTreeMap, BTreeSet};

use circuitry_data::Prompt;
use circuitry_models::burn::prelude::*;
use circuitry_models::{
    ActivationCache, Edit, EditOp, HookKind, HookLayout, HookPoint, HookTensor, Intervention,
    Selection, Span, TokenBatch, Transformer, host_values,
};

use super::engine::CapturedRun;
use super::metric::{Metric, ResolvedMetric, normalized};
use super::patching::sweep_layers;
use super::{
    Direction, InterventionError, Padding, Result, check_hook, check_pairs, clean_first,
    hook_shape, source_and_dest,
};
use crate::table::{Rows, Table};

/// A forward pass with gradient handles at some hooks, and one backward pass of the summed
/// metric.
pub(crate) struct GradRun {
    /// Metric per row.
    pub metric: Vec<f64>,
    /// Captured activations (without autodiff).
    pub cache: ActivationCache,
    /// Gradient of the summed metric at each leaf hook (zeros where the metric does not depend
    /// on it).
    pub grads: BTreeMap<HookPoint, HookTensor>,
}

/// Runs `batch` (or, with `start0`, the blocks from the given `hook_resid_pre` of block 0)
/// with `fixed` edits, a zero leaf added at every `leaves` hook, and `capture` recorded, then
/// differentiates the summed metric.
pub(crate) fn grad_run(
    model: &Transformer,
    batch: &TokenBatch,
    start0: Option<Tensor<3>>,
    leaves: &BTreeSet<HookPoint>,
    capture: &BTreeSet<HookPoint>,
    fixed: &[Edit],
    metric: &ResolvedMetric,
) -> GradRun {
    let device = model.device();
    let [b, t] = batch.ids.dims();
    let n = model.config.n_layers;
    let mut edits = fixed.to_vec();
    let mut handles = Vec::with_capacity(leaves.len());
    for &h in leaves {
        let shape = hook_shape(model, h.kind, b, t);
        let leaf = match shape.len() {
            3 => HookTensor::R3(
                Tensor::<3>::zeros([shape[0], shape[1], shape[2]], &device)
                    .autodiff()
                    .require_grad(),
            ),
            _ => HookTensor::R4(
                Tensor::<4>::zeros([shape[0], shape[1], shape[2], shape[3]], &device)
                    .autodiff()
                    .require_grad(),
            ),
        };
        let add = Edit::new(h, Selection::all(), EditOp::Add(leaf.clone()));
        edits.push(add.expect("a leaf of its hook's shape has its rank"));
        handles.push((h, leaf));
    }
    // The final norm's hook is bypassed by the slot-only unembedding; edits there need the full
    // forward pass.
    let full = fixed
        .iter()
        .any(|e| matches!(e.hook().kind, HookKind::LnFinalScale | HookKind::Logits));
    let span = Span {
        start: start0.map(|r| (0, r)),
        stop_before: (!full).then_some(n),
        ..Span::default()
    };
    let out = model.forward(
        batch,
        &Intervention {
            capture: capture.clone(),
            edits,
        },
        span,
    );
    let values = if full {
        metric.values_from_logits(out.logits.expect("full forward pass"))
    } else {
        metric.values_from_resid(model, out.resid)
    };
    let host: Vec<f64> = host_values(&values.clone().detach().inner())
        .into_iter()
        .map(f64::from)
        .collect();
    let grads = values.sum().backward();
    let grads = handles
        .into_iter()
        .map(|(h, leaf)| {
            let g = match leaf {
                HookTensor::R3(x) => {
                    HookTensor::R3(x.grad(&grads).unwrap_or_else(|| x.zeros_like().inner()))
                }
                HookTensor::R4(x) => {
                    HookTensor::R4(x.grad(&grads).unwrap_or_else(|| x.zeros_like().inner()))
                }
            };
            (h, g)
        })
        .collect();
    let mut cache = ActivationCache::default();
    for (h, v) in out.cache.iter() {
        let v = match v {
            HookTensor::R3(x) => HookTensor::R3(x.clone().detach().inner()),
            HookTensor::R4(x) => HookTensor::R4(x.clone().detach().inner()),
        };
        cache.insert(*h, v);
    }
    GradRun {
        metric: host,
        cache,
        grads,
    }
}

/// `sum over the last axis of (source - dest) * grad`, as `[batch, pos, heads]` (heads = 1 for
/// rank-3 hooks; attention patterns and scores are reported per query position).
pub(crate) fn attribution_map(
    source: &HookTensor,
    dest: &HookTensor,
    grad: &HookTensor,
    layout: HookLayout,
) -> (Vec<f32>, [usize; 3]) {
    match (source, dest, grad) {
        (HookTensor::R3(s), HookTensor::R3(d), HookTensor::R3(g)) => {
            let [b, t, _] = s.dims();
            let v = ((s.clone() - d.clone()) * g.clone()).sum_dim(2);
            (host_values(&v), [b, t, 1])
        }
        (HookTensor::R4(s), HookTensor::R4(d), HookTensor::R4(g)) => {
            let prod = ((s.clone() - d.clone()) * g.clone()).sum_dim(3);
            let prod = match layout {
                HookLayout::BatchHeadQK => prod.swap_dims(1, 2), // [b, q, h, 1]
                _ => prod,
            };
            let [b, t, h, _] = prod.dims();
            (host_values(&prod), [b, t, h])
        }
        _ => panic!("source, destination and gradient ranks differ"),
    }
}

/// An attribution-patching sweep.
#[derive(Clone, Debug, PartialEq)]
pub struct AttributionConfig {
    /// Hook kinds to attribute (`ResidPre`, `Z`, `Result`, `MlpOut`, `AttnOut`, ...).
    pub sites: Vec<HookKind>,
    /// `None`: every layer.
    pub layers: Option<Vec<usize>>,
    /// Report every position (true) or the sum over positions.
    pub per_position: bool,
    pub direction: Direction,
    pub metric: Metric,
}

impl AttributionConfig {
    /// Denoising (gradients on the corrupt run), per position.
    pub fn new(sites: Vec<HookKind>, metric: Metric) -> AttributionConfig {
        AttributionConfig {
            sites,
            layers: None,
            per_position: true,
            direction: Direction::Denoising,
            metric,
        }
    }
}

/// The attribution of one site (and head, and position) for one prompt.
#[derive(Clone, Debug, PartialEq)]
pub struct AttributionResult {
    pub prompt: u32,
    pub site: HookKind,
    pub layer: usize,
    pub head: Option<usize>,
    /// Token index; `None` when summed over positions.
    pub position: Option<usize>,
    pub direction: Direction,
    /// Estimated change of the metric when the site is patched from the source run.
    pub attribution: f64,
    pub metric_clean: f64,
    pub metric_corrupt: f64,
}

impl AttributionResult {
    /// The destination run's metric.
    pub fn metric_dest(&self) -> f64 {
        match self.direction {
            Direction::Denoising => self.metric_corrupt,
            Direction::Noising => self.metric_clean,
        }
    }

    /// Estimated patched metric, `metric_dest + attribution`.
    pub fn estimated_metric(&self) -> f64 {
        self.metric_dest() + self.attribution
    }

    /// Normalised like a patching result: `(estimated - corrupt) / (clean - corrupt)`.
    pub fn normalized(&self) -> Option<f64> {
        normalized(
            self.estimated_metric(),
            self.metric_clean,
            self.metric_corrupt,
        )
    }
}

/// Attribution patching on one batch of clean/corrupt pairs.
pub fn attribution_patching(
    model: &Transformer,
    prompts: &[Prompt],
    padding: Padding,
    cfg: &AttributionConfig,
) -> Result<Vec<AttributionResult>> {
    attribution_patching_with(model, prompts, padding, cfg, &[])
}

/// [`attribution_patching`] with extra edits applied to the destination (gradient) run, e.g. a
/// frozen norm scale. The edits' tensors must match the batch.
pub fn attribution_patching_with(
    model: &Transformer,
    prompts: &[Prompt],
    padding: Padding,
    cfg: &AttributionConfig,
    fixed: &[Edit],
) -> Result<Vec<AttributionResult>> {
    check_pairs(prompts, "attribution patching")?;
    if let Some(k) = cfg.sites.iter().find(|k| !k.per_layer()) {
        return Err(InterventionError::Config(format!(
            "attribution patching covers per-layer sites; `{}` is model-level",
            k.suffix()
        )));
    }
    let layers = sweep_layers(model, &cfg.layers)?;
    let mut hooks = BTreeSet::new();
    for &k in &cfg.sites {
        for &l in &layers {
            let h = HookPoint::layer(l, k);
            check_hook(model, h)?;
            hooks.insert(h);
        }
    }
    let device = model.device();
    let (src_batch, dest_batch) = source_and_dest(prompts, padding, cfg.direction, &device)?;
    let source = CapturedRun::new(model, src_batch, &hooks);
    let metric = cfg
        .metric
        .resolve(prompts, &dest_batch, model.config.d_vocab)?;
    let metric = metric.with_reference_from(model, || {
        if cfg.direction.source_is_clean() {
            source.final_resid()
        } else {
            CapturedRun::new(model, dest_batch.clone(), &BTreeSet::new()).final_resid()
        }
    });
    let m_source = metric.eval_resid(model, source.final_resid());
    let run = grad_run(model, &dest_batch, None, &hooks, &hooks, fixed, &metric);
    let (metric_clean, metric_corrupt) = clean_first(cfg.direction, m_source, run.metric.clone());
    let mut out = Vec::new();
    for &k in &cfg.sites {
        for &l in &layers {
            let h = HookPoint::layer(l, k);
            let dest = run.cache.get(&h).expect("captured");
            let (values, [_, t, nh]) =
                attribution_map(&source.hook(&h), dest, &run.grads[&h], k.layout());
            let per_head = super::is_per_head(k);
            for (r, p) in prompts.iter().enumerate() {
                for head in 0..nh {
                    let at =
                        |i: usize| f64::from(values[(r * t + dest_batch.slot(r, i)) * nh + head]);
                    let mut push = |position: Option<usize>, attribution: f64| {
                        out.push(AttributionResult {
                            prompt: p.id,
                            site: k,
                            layer: l,
                            head: per_head.then_some(head),
                            position,
                            direction: cfg.direction,
                            attribution,
                            metric_clean: metric_clean[r],
                            metric_corrupt: metric_corrupt[r],
                        })
                    };
                    if cfg.per_position {
                        for i in 0..p.len() {
                            push(Some(i), at(i));
                        }
                    } else {
                        push(None, (0..p.len()).map(at).sum());
                    }
                }
            }
        }
    }
    Ok(out)
}

crate::table_row! {
    /// A row of [`attribution_table`].
    pub struct AttributionPatchingRow {
        prompt = "prompt id",
        site: &'static str = "hook kind (resid_pre, z, result, mlp_out, ...)",
        layer = "layer",
        head: Option<i32> = "head, for per-head sites",
        position: Option<i32> = "token index; null when summed over positions",
        direction: &'static str = "denoising (gradients on the corrupt run) or noising (on the clean run)",
        attribution: f64 = "(a_source - a_dest) . dmetric/da: estimated metric change from patching",
        estimated_metric: f64 = "destination metric + attribution",
        metric_clean: f64 = "metric of the clean run",
        metric_corrupt: f64 = "metric of the corrupt run",
        normalized: Option<f64> = "(estimated_metric - metric_corrupt) / (metric_clean - metric_corrupt)",
    }
}

/// One row per site, layer, head, position and prompt.
pub fn attribution_table(results: &[AttributionResult]) -> Table {
    let mut t = Rows::<AttributionPatchingRow>::new();
    for r in results {
        t.push(AttributionPatchingRow {
            prompt: r.prompt,
            site: r.site.site_name(),
            layer: r.layer as i32,
            head: r.head.map(|h| h as i32),
            position: r.position.map(|p| p as i32),
            direction: r.direction.as_str(),
            attribution: r.attribution,
            estimated_metric: r.estimated_metric(),
            metric_clean: r.metric_clean,
            metric_corrupt: r.metric_corrupt,
            normalized: r.normalized(),
        });
    }
    t.into_table()
}
