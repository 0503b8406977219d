//! Activation patching: activations of a source run written into a destination run at one site,
//! and the metric of the patched run.
//!
//! Denoising patches clean activations into the corrupt run, noising corrupt activations into
//! the clean run ([`Direction`]). Sites are any per-layer hook (`resid_pre`, `resid_mid`,
//! `resid_post`, `attn_out`, `mlp_out`, and per head `z`, `q`, `k`, `v`, `pattern`, `result`,
//! ...), at all positions at once or position by position (indices or named positions), per
//! head or all heads together, over every layer or a subset.
//!
//! Cost: the destination runs once, keeping `hook_resid_pre` of every block. A patch at layer
//! `l` starts at block `l` from that residual stream (`Span::from_layer`) instead of recomputing
//! blocks `0..l`, and many patches run as rows of one batch, each row with its own selection
//! (`Positions::PerRow`); only the metric's positions are unembedded. Residual-stream patches
//! (`resid_pre`, `resid_post`) at chosen positions also skip the positions before the first
//! patched one, which attention's causality leaves unchanged: the model's forward pass runs on
//! the later positions only, with the destination's keys and values of the earlier ones as its
//! key/value prefix (`Span::past`; [`PatchOptions::reuse_positions`]). Every schedule
//! gives the same numbers as recomputing each patched run from the embedding (tested to 1e-5);
//! `benches/patching_sweep.rs` measures the speed-up (3.7x on the SmolLM2 IOI residual sweep).

use std::collections::{BTreeMap, BTreeSet};

use circuitry_data::Prompt;
use circuitry_models::{HookKind, HookPoint, HookTensor, Transformer};

pub use super::engine::{CapturedRun, PatchOptions, PatchTarget, PatchUnit, patch_units};
use super::metric::{Metric, ResolvedMetric, normalized};
use super::{
    Direction, InterventionError, Padding, PromptPositions, Result, check_hook, check_pairs,
    clean_first, head_count, is_per_head, source_and_dest,
};
use crate::table::{Rows, Table};

/// Which positions a sweep patches.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum PositionSweep {
    /// All positions at once (one patch per layer/head).
    #[default]
    All,
    /// Each token index separately, up to the longest prompt of the batch.
    Each,
    /// Each of these token indices separately.
    Indices(Vec<usize>),
    /// Each of these named positions separately (`IO`, `S1`, `S2`, `END`...).
    Named(Vec<String>),
    /// Each of these selections separately (indices, names and positions from the end mixed).
    List(Vec<PromptPositions>),
}

impl PositionSweep {
    pub fn selections(&self, max_len: usize) -> Vec<PromptPositions> {
        match self {
            PositionSweep::All => vec![PromptPositions::All],
            PositionSweep::Each => (0..max_len).map(PromptPositions::Index).collect(),
            PositionSweep::Indices(v) => v.iter().copied().map(PromptPositions::Index).collect(),
            PositionSweep::Named(v) => v.iter().cloned().map(PromptPositions::Named).collect(),
            PositionSweep::List(v) => v.clone(),
        }
    }
}

pub use circuitry_vocab::HeadSweep;

/// An activation-patching sweep.
#[derive(Clone, Debug, PartialEq)]
pub struct PatchingConfig {
    /// The hook kind patched (`ResidPre`, `Z`, `Pattern`, ...): any per-layer hook.
    pub site: HookKind,
    /// Layers to patch; `None`: all.
    pub layers: Option<Vec<usize>>,
    pub positions: PositionSweep,
    /// Ignored for sites without a head axis.
    pub heads: HeadSweep,
    pub direction: Direction,
    pub metric: Metric,
    pub options: PatchOptions,
}

impl PatchingConfig {
    /// Denoising at every layer, all positions at once, each head separately.
    pub fn new(site: HookKind, metric: Metric) -> PatchingConfig {
        PatchingConfig {
            site,
            layers: None,
            positions: PositionSweep::All,
            heads: HeadSweep::Each,
            direction: Direction::Denoising,
            metric,
            options: PatchOptions::default(),
        }
    }
}

/// The metric of one patched run for one prompt.
#[derive(Clone, Debug, PartialEq)]
pub struct PatchResult {
    pub prompt: u32,
    pub site: HookKind,
    pub layer: usize,
    /// `None` for sites without heads, or when all heads were patched together.
    pub head: Option<usize>,
    /// Token index patched; `None` when all positions were.
    pub position: Option<usize>,
    /// The position's name when the sweep named it.
    pub position_name: Option<String>,
    pub direction: Direction,
    /// Metric of the patched run.
    pub metric: f64,
    /// Metric of the unpatched clean and corrupt runs.
    pub metric_clean: f64,
    pub metric_corrupt: f64,
}

impl PatchResult {
    /// `(patched - corrupt) / (clean - corrupt)`.
    pub fn normalized(&self) -> Option<f64> {
        normalized(self.metric, self.metric_clean, self.metric_corrupt)
    }
}

/// The clean and corrupt runs of a batch of pairs and the metric bound to them.
pub(crate) struct Pair {
    pub source: CapturedRun,
    pub dest: CapturedRun,
    pub metric: ResolvedMetric,
    pub metric_clean: Vec<f64>,
    pub metric_corrupt: Vec<f64>,
}

impl Pair {
    /// Runs source and destination once, capturing `source_hooks` in the source and
    /// `dest_hooks` in the destination. The prompts must be checked pairs ([`check_pairs`]).
    pub fn new(
        model: &Transformer,
        prompts: &[Prompt],
        padding: Padding,
        direction: Direction,
        metric: &Metric,
        source_hooks: &BTreeSet<HookPoint>,
        dest_hooks: &BTreeSet<HookPoint>,
    ) -> Result<Pair> {
        let device = model.device();
        let (src_batch, dest_batch) = source_and_dest(prompts, padding, direction, &device)?;
        let source = CapturedRun::new(model, src_batch, source_hooks);
        let dest = CapturedRun::new(model, dest_batch, dest_hooks);
        let resolved = metric.resolve(prompts, &dest.batch, model.config.d_vocab)?;
        let (clean_run, _) = clean_first(direction, &source, &dest);
        let resolved = resolved.with_reference_from(model, || clean_run.final_resid());
        let m_src = resolved.eval_resid(model, source.final_resid());
        let m_dest = resolved.eval_resid(model, dest.final_resid());
        let (metric_clean, metric_corrupt) = clean_first(direction, m_src, m_dest);
        Ok(Pair {
            source,
            dest,
            metric: resolved,
            metric_clean,
            metric_corrupt,
        })
    }
}

/// The layers a sweep covers, checked against the model.
pub(crate) fn sweep_layers(model: &Transformer, layers: &Option<Vec<usize>>) -> Result<Vec<usize>> {
    let n = model.config.n_layers;
    let layers = layers.clone().unwrap_or_else(|| (0..n).collect());
    if let Some(&l) = layers.iter().find(|&&l| l >= n) {
        return Err(InterventionError::Config(format!(
            "layer {l} is out of range: the model has {n} layers (0..{})",
            n - 1
        )));
    }
    Ok(layers)
}

/// Runs an activation-patching sweep on one batch of clean/corrupt prompt pairs. Results are per
/// prompt, in unit order (layer, head, position); prompts a unit does not apply to (a named
/// position they lack, an index beyond their length) have no result for it.
pub fn activation_patching(
    model: &Transformer,
    prompts: &[Prompt],
    padding: Padding,
    cfg: &PatchingConfig,
) -> Result<Vec<PatchResult>> {
    if !cfg.site.per_layer() {
        return Err(InterventionError::Config(format!(
            "activation patching sweeps per-layer sites; `{}` is model-level",
            cfg.site.suffix()
        )));
    }
    check_pairs(prompts, "activation patching")?;
    let layers = sweep_layers(model, &cfg.layers)?;
    let hooks: BTreeSet<HookPoint> = layers
        .iter()
        .map(|&l| HookPoint::layer(l, cfg.site))
        .collect();
    for &h in &hooks {
        check_hook(model, h)?;
    }
    let pair = Pair::new(
        model,
        prompts,
        padding,
        cfg.direction,
        &cfg.metric,
        &hooks,
        &BTreeSet::new(),
    )?;
    let max_len = prompts.iter().map(Prompt::len).max().unwrap_or(0);
    let positions = cfg.positions.selections(max_len);
    let per_head = is_per_head(cfg.site);
    let n_heads = head_count(model, cfg.site);
    let heads: Vec<Option<usize>> = match (&cfg.heads, per_head) {
        (_, false) | (HeadSweep::All, true) => vec![None],
        (HeadSweep::Each, true) => (0..n_heads).map(Some).collect(),
        (HeadSweep::List(list), true) => {
            if let Some(&h) = list.iter().find(|&&h| h as usize >= n_heads) {
                return Err(InterventionError::Config(format!(
                    "head {h} is out of range: `{}` has {n_heads} heads",
                    cfg.site.suffix()
                )));
            }
            list.iter().map(|&h| Some(h as usize)).collect()
        }
    };
    let mut units = Vec::new();
    let mut labels = Vec::new();
    for &l in &layers {
        for &h in &heads {
            for pos in &positions {
                let hook = HookPoint::layer(l, cfg.site);
                units.push(PatchUnit::single(PatchTarget {
                    hook,
                    heads: h.map(|h| vec![h]),
                    features: None,
                    positions: pos.clone(),
                }));
                labels.push((l, h, pos.clone()));
            }
        }
    }
    let values: BTreeMap<HookPoint, HookTensor> =
        hooks.iter().map(|h| (*h, pair.source.hook(h))).collect();
    let metrics = patch_units(
        model,
        &pair.dest,
        prompts,
        &pair.metric,
        &units,
        &values,
        cfg.options,
    )?;
    let mut out = Vec::new();
    for ((l, h, pos), per_prompt) in labels.into_iter().zip(metrics) {
        for (i, m) in per_prompt.into_iter().enumerate() {
            let Some(m) = m else { continue };
            out.push(PatchResult {
                prompt: prompts[i].id,
                site: cfg.site,
                layer: l,
                head: h,
                position: pos.column(&prompts[i]).map(|p| p as usize),
                position_name: pos.name(),
                direction: cfg.direction,
                metric: m,
                metric_clean: pair.metric_clean[i],
                metric_corrupt: pair.metric_corrupt[i],
            });
        }
    }
    Ok(out)
}

crate::table_row! {
    /// A row of [`patching_table`].
    pub struct PatchingRow {
        prompt = "prompt id",
        site: &'static str = "patched hook kind (resid_pre, z, pattern, ...)",
        layer = "patched layer",
        head: Option<i32> = "patched head; null for sites without heads or all heads at once",
        position: Option<i32> = "patched token index; null when all positions were patched",
        position_name: Option<String> = "the patched position's name, when named",
        direction: &'static str = "denoising (clean into corrupt) or noising (corrupt into clean)",
        metric: f64 = "metric of the patched run",
        metric_clean: f64 = "metric of the clean run",
        metric_corrupt: f64 = "metric of the corrupt run",
        normalized: Option<f64> = "(metric - metric_corrupt) / (metric_clean - metric_corrupt); null where clean = corrupt",
    }
}

/// One row per patch and prompt.
pub fn patching_table(results: &[PatchResult]) -> Table {
    let mut t = Rows::<PatchingRow>::new();
    for r in results {
        t.push(PatchingRow {
            prompt: r.prompt,
            site: r.site.site_name(),
            layer: r.layer as i32,
            head: r.head.map(|h| h as i32),
            position: r.position.map(|p| p as i32),
            position_name: r.position_name.clone(),
            direction: r.direction.as_str(),
            metric: r.metric,
            metric_clean: r.metric_clean,
            metric_corrupt: r.metric_corrupt,
            normalized: r.normalized(),
        });
    }
    t.into_table()
}

crate::table_row! {
    /// A row of [`patching_summary_table`].
    pub struct PatchingSummaryRow {
        site: String = "patched hook kind",
        layer = "patched layer",
        head: Option<i32> = "patched head",
        position: Option<i32> = "patched token index (null for all positions or named positions)",
        position_name: Option<String> = "patched position name",
        direction: &'static str = "denoising or noising",
        n_prompts: u32 = "prompts averaged",
        metric: f64 = "mean metric of the patched runs",
        metric_clean: f64 = "mean metric of the clean runs",
        metric_corrupt: f64 = "mean metric of the corrupt runs",
        normalized: Option<f64> = "normalised mean: (metric - metric_corrupt) / (metric_clean - metric_corrupt) of the means",
    }
}

/// Means over prompts per patch (site, layer, head, position), with the normalised metric of the
/// means. Call it on the results of every batch together (or add batches to a
/// [`PatchingSummary`]).
pub fn patching_summary_table(results: &[PatchResult]) -> Table {
    let mut s = PatchingSummary::default();
    s.add(results);
    s.table()
}

type SummaryKey = (
    String,
    usize,
    Option<usize>,
    Option<usize>,
    Option<String>,
    Direction,
);

/// Running sums for [`patching_summary_table`], batch by batch. A patch's key is its site,
/// layer, head, direction and position: the token index, or the name for named positions (whose
/// index differs between prompts). Rows come out in order of first appearance.
#[derive(Clone, Debug, Default)]
pub struct PatchingSummary {
    order: Vec<SummaryKey>,
    sums: BTreeMap<SummaryKey, (u32, f64, f64, f64)>,
}

impl PatchingSummary {
    /// Adds the results of one batch.
    pub fn add(&mut self, results: &[PatchResult]) {
        for r in results {
            let position = if r.position_name.is_some() {
                None
            } else {
                r.position
            };
            let key = (
                r.site.site_name().to_string(),
                r.layer,
                r.head,
                position,
                r.position_name.clone(),
                r.direction,
            );
            let e = self.sums.entry(key.clone()).or_insert_with(|| {
                self.order.push(key);
                (0, 0.0, 0.0, 0.0)
            });
            e.0 += 1;
            e.1 += r.metric;
            e.2 += r.metric_clean;
            e.3 += r.metric_corrupt;
        }
    }

    /// One row per patch: [`PATCHING_SUMMARY_COLUMNS`].
    pub fn table(&self) -> Table {
        let mut t = Rows::<PatchingSummaryRow>::new();
        for row in self.rows() {
            t.push(row);
        }
        t.into_table()
    }

    /// The means of each patch, in order of first appearance.
    pub fn rows(&self) -> impl Iterator<Item = PatchingSummaryRow> + '_ {
        self.order.iter().map(|key| {
            let (n, m, c, x) = self.sums[key];
            let nf = f64::from(n);
            let (m, c, x) = (m / nf, c / nf, x / nf);
            let (site, layer, head, position, name, direction) = key.clone();
            PatchingSummaryRow {
                site,
                layer: layer as i32,
                head: head.map(|h| h as i32),
                position: position.map(|p| p as i32),
                position_name: name,
                direction: direction.as_str(),
                n_prompts: n,
                metric: m,
                metric_clean: c,
                metric_corrupt: x,
                normalized: normalized(m, c, x),
            }
        })
    }
}
