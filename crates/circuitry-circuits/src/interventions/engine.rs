//! The machinery shared by patching and ablation: a captured destination run, and patched
//! forward passes that start from the destination's residual stream at the first patched layer
//! (prefix reuse) with many patches stacked as rows of one batch.

use std::collections::{BTreeMap, BTreeSet};

use circuitry_data::Prompt;
use circuitry_models::burn::prelude::*;
use circuitry_models::{
    ActivationCache, BatchPositions, Edit, EditOp, HookKind, HookPoint, HookTensor, Intervention,
    KvCache, Output, Selection, Span, TokenBatch, Transformer,
};

use super::metric::ResolvedMetric;
use super::{InterventionError, PromptPositions, Result, check_hook};

/// One forward pass of a batch, with the residual stream before every block and after the last
/// one, and every block's keys and values, kept for later passes to start from; and the
/// requested hooks captured.
#[derive(Clone, Debug)]
pub struct CapturedRun {
    pub batch: TokenBatch,
    /// `resid[l]` is `blocks.l.hook_resid_pre` for `l < n_layers`; `resid[n_layers]` is the
    /// residual stream after the last block (the final norm's input).
    pub resid: Vec<Tensor<3>>,
    /// Keys and values of every block over every slot (a later pass over slots `s..` reads
    /// `kv.prefix(s)`).
    pub kv: KvCache,
    pub cache: ActivationCache,
}

impl CapturedRun {
    /// Runs `batch` without edits, capturing `hooks` (and every `hook_resid_pre`).
    pub fn new(model: &Transformer, batch: TokenBatch, hooks: &BTreeSet<HookPoint>) -> CapturedRun {
        CapturedRun::with_edits(model, batch, hooks, Vec::new())
    }

    /// Runs `batch` with `edits`, capturing `hooks` (and every `hook_resid_pre`).
    pub fn with_edits(
        model: &Transformer,
        batch: TokenBatch,
        hooks: &BTreeSet<HookPoint>,
        edits: Vec<Edit>,
    ) -> CapturedRun {
        let n = model.config.n_layers;
        let mut capture = hooks.clone();
        capture.extend((0..n).map(HookPoint::resid_pre));
        let out = model.forward(
            &batch,
            &Intervention { capture, edits },
            Span::until(n).keeping_kv(),
        );
        let resid = (0..n)
            .map(|l| {
                out.cache
                    .get3(&HookPoint::resid_pre(l))
                    .expect("captured resid_pre")
            })
            .chain(std::iter::once(out.resid))
            .collect();
        CapturedRun {
            batch,
            resid,
            kv: out.kv.expect("kept keys and values"),
            cache: out.cache,
        }
    }

    /// A captured hook's tensor; panics when it was not captured (a bug in the caller).
    pub fn hook(&self, hook: &HookPoint) -> HookTensor {
        self.cache
            .get(hook)
            .cloned()
            .unwrap_or_else(|| panic!("{hook} was not captured"))
    }

    /// The residual stream after the last block.
    pub fn final_resid(&self) -> Tensor<3> {
        self.resid.last().expect("final residual").clone()
    }
}

/// What one patch touches at one hook point.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PatchTarget {
    pub hook: HookPoint,
    /// Heads (the head axis of per-head hooks; for keys and values under grouped-query
    /// attention, key/value heads); `None`: all.
    pub heads: Option<Vec<usize>>,
    /// Entries of the last axis (neurons of `mlp.hook_post`, residual directions); `None`: all.
    pub features: Option<Vec<usize>>,
    /// Positions (for attention patterns and scores, query positions).
    pub positions: PromptPositions,
}

impl PatchTarget {
    pub fn new(hook: HookPoint) -> PatchTarget {
        PatchTarget {
            hook,
            heads: None,
            features: None,
            positions: PromptPositions::All,
        }
    }
    pub fn head(hook: HookPoint, head: usize) -> PatchTarget {
        PatchTarget {
            heads: Some(vec![head]),
            ..PatchTarget::new(hook)
        }
    }
    pub fn at(mut self, positions: PromptPositions) -> PatchTarget {
        self.positions = positions;
        self
    }
}

/// One patched forward pass: every target replaced at once.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PatchUnit {
    pub targets: Vec<PatchTarget>,
}

impl PatchUnit {
    pub fn single(target: PatchTarget) -> PatchUnit {
        PatchUnit {
            targets: vec![target],
        }
    }

    /// The block a patched pass can start at: the first patched layer (`None`: the embedding
    /// is patched, so the pass starts from the tokens).
    pub fn start_layer(&self) -> Option<usize> {
        let mut start = usize::MAX;
        for t in &self.targets {
            match t.hook.layer {
                Some(l) => start = start.min(l),
                None => return None,
            }
        }
        (start != usize::MAX).then_some(start)
    }
}

/// How patched forward passes are scheduled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PatchOptions {
    /// Start each patched pass at the first patched block from the destination's cached
    /// residual stream instead of recomputing the unpatched prefix from the embedding.
    pub reuse_prefix: bool,
    /// For patches of the residual stream (`hook_resid_pre`, `hook_resid_post`) at some
    /// positions: recompute only the slots from the first patched one on, attending to the
    /// destination's cached keys and values for the slots before (needs `reuse_prefix`).
    pub reuse_positions: bool,
    /// At most this many rows (patches x prompts) per forward pass; at least one patch always
    /// runs. `1` with `reuse_prefix = false` is the naive one-patch-at-a-time sweep. On the CPU
    /// (`flex`) backend, batches of more than about 16 rows of short prompts run slower per row
    /// than small ones; accelerators prefer larger batches.
    pub max_rows: usize,
}

impl Default for PatchOptions {
    fn default() -> Self {
        PatchOptions {
            reuse_prefix: true,
            reuse_positions: true,
            max_rows: 16,
        }
    }
}

impl PatchOptions {
    /// Every patched run recomputed from the embedding, one patch per forward pass (the baseline
    /// that prefix reuse and batching are measured against).
    pub fn naive() -> PatchOptions {
        PatchOptions {
            reuse_prefix: false,
            reuse_positions: false,
            max_rows: 1,
        }
    }
}

/// Units that run together: same start, at most `max_rows` rows.
#[derive(Clone, Debug)]
pub(crate) struct Chunk {
    pub start: Option<usize>,
    pub units: Vec<usize>,
}

pub(crate) fn plan_chunks(
    starts: &[Option<usize>],
    prompts: usize,
    opts: PatchOptions,
) -> Vec<Chunk> {
    let per_chunk = (opts.max_rows / prompts.max(1)).max(1);
    let mut by_start: BTreeMap<Option<usize>, Vec<usize>> = BTreeMap::new();
    for (i, s) in starts.iter().enumerate() {
        let key = if opts.reuse_prefix { *s } else { None };
        by_start.entry(key).or_default().push(i);
    }
    let mut chunks = Vec::new();
    for (start, units) in by_start {
        for c in units.chunks(per_chunk) {
            chunks.push(Chunk {
                start,
                units: c.to_vec(),
            });
        }
    }
    chunks
}

/// `k` copies of the batch stacked along the rows, copy-major.
pub(crate) fn repeat_batch(batch: &TokenBatch, k: usize) -> TokenBatch {
    if k == 1 {
        return batch.clone();
    }
    TokenBatch {
        ids: batch.ids.clone().repeat_dim(0, k),
        positions: batch.positions.clone().repeat_dim(0, k),
        key_mask: batch.key_mask.clone().map(|m| m.repeat_dim(0, k)),
        rows: (0..k).flat_map(|_| batch.rows.iter().cloned()).collect(),
        side: batch.side,
        seq_len: batch.seq_len,
    }
}

pub(crate) fn repeat_hook(t: &HookTensor, k: usize) -> HookTensor {
    if k == 1 {
        return t.clone();
    }
    match t {
        HookTensor::R3(x) => HookTensor::R3(x.clone().repeat_dim(0, k)),
        HookTensor::R4(x) => HookTensor::R4(x.clone().repeat_dim(0, k)),
    }
}

/// The edits that apply `units` (row block `j` of `k = units.len()` copies of the batch gets
/// unit `j`), replacing targeted entries with `values[hook]` (`[prompts, ...]`, the hook's full
/// shape for the destination batch). Also returns which (unit, prompt) pairs apply: a unit whose
/// positions a prompt lacks leaves that row unpatched and marked `false`.
pub(crate) fn unit_edits(
    units: &[&PatchUnit],
    prompts: &[Prompt],
    batch: &TokenBatch,
    values: &BTreeMap<HookPoint, HookTensor>,
) -> Result<(Vec<Edit>, Vec<Vec<bool>>)> {
    type Key = (HookPoint, Option<Vec<usize>>, Option<Vec<usize>>);
    struct Group {
        rows: Vec<usize>,
        per_row: BTreeMap<usize, Vec<usize>>,
        all_positions: bool,
    }
    let p = prompts.len();
    let k = units.len();
    let mut groups: BTreeMap<Key, Group> = BTreeMap::new();
    let mut valid = vec![vec![true; p]; k];
    for (j, unit) in units.iter().enumerate() {
        for (i, prompt) in prompts.iter().enumerate() {
            let resolved: Option<Vec<Vec<usize>>> = unit
                .targets
                .iter()
                .map(|t| t.positions.token_indices(prompt))
                .collect();
            let Some(resolved) = resolved else {
                valid[j][i] = false;
                continue;
            };
            let r = j * p + i;
            for (t, indices) in unit.targets.iter().zip(resolved) {
                let g = groups
                    .entry((t.hook, t.heads.clone(), t.features.clone()))
                    .or_insert_with(|| Group {
                        rows: Vec::new(),
                        per_row: BTreeMap::new(),
                        all_positions: true,
                    });
                if g.rows.last() != Some(&r) {
                    g.rows.push(r);
                }
                g.all_positions &= t.positions == PromptPositions::All;
                g.per_row
                    .entry(r)
                    .or_default()
                    .extend(indices.into_iter().map(|ix| batch.slot(i, ix)));
            }
        }
    }
    let mut repeated: BTreeMap<HookPoint, HookTensor> = BTreeMap::new();
    let mut edits = Vec::with_capacity(groups.len());
    for ((hook, heads, features), g) in groups {
        let value = match repeated.get(&hook) {
            Some(v) => v.clone(),
            None => {
                let v = values.get(&hook).ok_or_else(|| {
                    InterventionError::Config(format!("no patch values for `{hook}`"))
                })?;
                let v = repeat_hook(v, k);
                repeated.insert(hook, v.clone());
                v
            }
        };
        let positions = if g.all_positions {
            BatchPositions::All
        } else {
            let mut per_row = vec![Vec::new(); k * p];
            for (r, slots) in g.per_row {
                per_row[r] = slots;
            }
            BatchPositions::PerRow(per_row)
        };
        let rows = (g.rows.len() < k * p).then_some(g.rows);
        edits.push(Edit::new(
            hook,
            Selection {
                rows,
                positions,
                heads,
                features,
            },
            EditOp::Replace(value),
        )?);
    }
    Ok((edits, valid))
}

/// A forward pass over `k` copies of `dest`'s batch, starting at block `start` from `dest`'s
/// residual stream (or from the tokens), stopping before block `stop`.
pub(crate) fn forward_rows(
    model: &Transformer,
    dest: &CapturedRun,
    start: Option<usize>,
    k: usize,
    intervention: &Intervention,
    stop: usize,
) -> Output {
    let batch = repeat_batch(&dest.batch, k);
    let span = Span {
        start: start.map(|l| (l, dest.resid[l].clone().repeat_dim(0, k))),
        stop_before: Some(stop),
        ..Span::default()
    };
    model.forward(&batch, intervention, span)
}

/// A residual-stream unit that can skip the slots before its first patched one: its start
/// block and first patched slot.
fn suffix_plan(
    unit: &PatchUnit,
    prompts: &[Prompt],
    batch: &TokenBatch,
    n_layers: usize,
) -> Option<(usize, usize)> {
    let [t] = unit.targets.as_slice() else {
        return None;
    };
    let start = match t.hook.kind {
        HookKind::ResidPre => t.hook.layer?,
        HookKind::ResidPost => t.hook.layer? + 1,
        _ => return None,
    };
    if t.heads.is_some() || start > n_layers {
        return None;
    }
    let first = prompts
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            t.positions
                .token_indices(p)
                .map(|ix| ix.iter().map(|&x| batch.slot(i, x)).min())
        })
        .flatten()
        .min()
        .unwrap_or(0);
    Some((start, first))
}

/// Runs residual-stream units that share a start block and a first patched slot `s` through the
/// model's forward pass over slots `s..` only, with the destination's keys and values of slots
/// `..s` as its key/value prefix (attention is causal, so a patch at slot `s` or later changes
/// nothing before it).
fn run_suffix_chunk(
    model: &Transformer,
    dest: &CapturedRun,
    prompts: &[Prompt],
    metric: &ResolvedMetric,
    units: &[&PatchUnit],
    values: &BTreeMap<HookPoint, HookTensor>,
    (start, s): (usize, usize),
) -> Result<(Vec<f64>, Vec<Vec<bool>>)> {
    let p = prompts.len();
    let k = units.len();
    let n = model.config.n_layers;
    let [_, t, d] = dest.resid[start].dims();
    let hook = units[0].targets[0].hook;
    let source = values
        .get(&hook)
        .ok_or_else(|| InterventionError::Config(format!("no patch values for `{hook}`")))?
        .clone()
        .r3()
        .map_err(|e| e.at(hook))?
        .slice([0..p, s..t, 0..d]);
    let suffix_values = BTreeMap::from([(hook, HookTensor::R3(source))]);
    // The edits of slots `s..` of `hook_resid_pre` of block `start` (`hook_resid_post` of the
    // block before), whose position axis starts at slot `s`.
    let (mut edits, valid) = unit_edits(units, prompts, &dest.batch, &suffix_values)?;
    let mut x = dest.resid[start]
        .clone()
        .slice([0..p, s..t, 0..d])
        .repeat_dim(0, k);
    for e in &mut edits {
        if let BatchPositions::PerRow(rows) = &mut e.selection_mut().positions {
            rows.iter_mut().flatten().for_each(|slot| *slot -= s);
        }
        x = e.apply(x)?;
    }
    let suffix_out = if start < n {
        let batch = repeat_batch(&dest.batch, k);
        let span = Span {
            stop_before: Some(n),
            ..Span::from_layer(start, x).with_past(dest.kv.prefix(s).repeat_rows(k))
        };
        model.forward(&batch, &Intervention::default(), span).resid
    } else {
        x
    };
    let last = if s > 0 {
        let prefix = dest.resid[n]
            .clone()
            .slice([0..p, 0..s, 0..d])
            .repeat_dim(0, k);
        Tensor::cat(vec![prefix, suffix_out], 1)
    } else {
        suffix_out
    };
    Ok((metric.repeat(k).eval_resid(model, last), valid))
}

/// Runs every unit against `dest` with the metric bound to `dest`'s rows; returns
/// `metric[unit][prompt]`, `None` where the unit does not apply to the prompt.
pub fn patch_units(
    model: &Transformer,
    dest: &CapturedRun,
    prompts: &[Prompt],
    metric: &ResolvedMetric,
    units: &[PatchUnit],
    values: &BTreeMap<HookPoint, HookTensor>,
    opts: PatchOptions,
) -> Result<Vec<Vec<Option<f64>>>> {
    let p = prompts.len();
    assert_eq!(metric.rows(), p, "metric resolved for another batch");
    for u in units {
        for t in &u.targets {
            check_hook(model, t.hook)?;
            if matches!(t.hook.kind, HookKind::LnFinalScale | HookKind::Logits) {
                return Err(InterventionError::Config(format!(
                    "`{}` cannot be patched by a sweep; patch a residual or component hook",
                    t.hook
                )));
            }
        }
    }
    let n = model.config.n_layers;
    let mut out = vec![vec![None; p]; units.len()];
    let per_chunk = (opts.max_rows / p.max(1)).max(1);
    // Residual-stream patches: only the slots from the first patched one on.
    let mut general = Vec::new();
    // Grouped by start block, in order of first patched slot; a chunk recomputes from the
    // smallest first slot among its units.
    let mut by_start: BTreeMap<usize, Vec<(usize, usize)>> = BTreeMap::new();
    for (i, u) in units.iter().enumerate() {
        match suffix_plan(u, prompts, &dest.batch, n)
            .filter(|_| opts.reuse_prefix && opts.reuse_positions)
        {
            Some((start, first)) => by_start.entry(start).or_default().push((first, i)),
            None => general.push(i),
        }
    }
    for (start, mut members) in by_start {
        members.sort_unstable();
        for chunk in members.chunks(per_chunk) {
            let first = chunk[0].0;
            let chunk_units: Vec<&PatchUnit> = chunk.iter().map(|&(_, u)| &units[u]).collect();
            let (values_rows, valid) = run_suffix_chunk(
                model,
                dest,
                prompts,
                metric,
                &chunk_units,
                values,
                (start, first),
            )?;
            for (j, &(_, u)) in chunk.iter().enumerate() {
                for i in 0..p {
                    if valid[j][i] {
                        out[u][i] = Some(values_rows[j * p + i]);
                    }
                }
            }
        }
    }
    let starts: Vec<Option<usize>> = general.iter().map(|&u| units[u].start_layer()).collect();
    for chunk in plan_chunks(&starts, p, opts) {
        let chunk_ids: Vec<usize> = chunk.units.iter().map(|&c| general[c]).collect();
        let chunk_units: Vec<&PatchUnit> = chunk_ids.iter().map(|&u| &units[u]).collect();
        let k = chunk_units.len();
        let (edits, valid) = unit_edits(&chunk_units, prompts, &dest.batch, values)?;
        let intervention = Intervention {
            capture: BTreeSet::new(),
            edits,
        };
        let result = forward_rows(model, dest, chunk.start, k, &intervention, n);
        let values = metric.repeat(k).eval_resid(model, result.resid);
        for (j, &u) in chunk_ids.iter().enumerate() {
            for i in 0..p {
                if valid[j][i] {
                    out[u][i] = Some(values[j * p + i]);
                }
            }
        }
    }
    Ok(out)
}
