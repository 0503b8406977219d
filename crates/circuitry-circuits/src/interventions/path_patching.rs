//! Path patching (Wang et al. 2022, "Interpretability in the Wild", arXiv:2211.00593): a
//! sender's output is patched only along its direct path into chosen receivers.
//!
//! For each sender (an attention head, or an MLP layer; several patched together form one
//! unit), with receivers `R`:
//!
//! 1. Run the destination prompt with the sender's activation (`hook_z` of the head, or
//!    `hook_mlp_out`) taken from the source run and every other head's `hook_z` frozen at its
//!    destination value, so the sender's change reaches later layers only through the residual
//!    stream. With `freeze_mlps` (the default) MLP outputs are frozen too, making the path truly
//!    direct; without it MLPs are recomputed, as in the IOI paper's code and ARENA's exercises.
//! 2. Receivers that are heads: take the receivers' query/key/value inputs (`attn.hook_q|k|v`
//!    of those heads) computed in that run, and run the destination prompt again with only them
//!    patched; the metric of that run is the result. Receiver `Logits`: the metric of run 1
//!    itself (the final residual stream carries the sender's direct effect into the unembedding).
//!
//! Both runs start at the first layer they change, from the destination's cached residual
//! stream, and all senders of a sweep run as rows of one batch.
//!
//! The IOI paper patches from the ABC distribution into the original prompts, i.e. noising,
//! which is [`PathPatchingConfig::new`]'s default.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use circuitry_data::Prompt;
use circuitry_models::{
    Edit, EditOp, HookKind, HookPoint, HookTensor, Intervention, Selection, Transformer,
};

use super::engine::{
    PatchOptions, PatchTarget, PatchUnit, forward_rows, plan_chunks, repeat_hook, unit_edits,
};
use super::metric::{Metric, normalized};
use super::patching::Pair;
use super::{Direction, InterventionError, Padding, Result, check_pairs};
use crate::table::{Rows, Table};

/// A component whose output is patched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Sender {
    Head { layer: usize, head: usize },
    Mlp { layer: usize },
}

impl Sender {
    pub fn layer(self) -> usize {
        match self {
            Sender::Head { layer, .. } | Sender::Mlp { layer } => layer,
        }
    }

    fn target(self) -> PatchTarget {
        match self {
            Sender::Head { layer, head } => {
                PatchTarget::head(HookPoint::layer(layer, HookKind::Z), head)
            }
            Sender::Mlp { layer } => PatchTarget::new(HookPoint::layer(layer, HookKind::MlpOut)),
        }
    }

    /// Every head of layers `0..below`, one sender each.
    pub fn every_head(model: &Transformer, below: usize) -> Vec<Sender> {
        let h = model.config.n_heads;
        (0..below.min(model.config.n_layers))
            .flat_map(|layer| (0..h).map(move |head| Sender::Head { layer, head }))
            .collect()
    }
}

impl fmt::Display for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Sender::Head { layer, head } => write!(f, "L{layer}H{head}"),
            Sender::Mlp { layer } => write!(f, "MLP{layer}"),
        }
    }
}

pub use circuitry_vocab::HeadInput;

/// Where the patched path ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Receiver {
    /// A head's query, key or value input. For keys and values `head` is the key/value head
    /// (under grouped-query attention shared by `n_heads / n_kv_heads` query heads).
    Head {
        layer: usize,
        head: usize,
        input: HeadInput,
    },
    /// The unembedding (the residual stream at the end).
    Logits,
}

impl fmt::Display for Receiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Receiver::Head { layer, head, input } => {
                write!(f, "L{layer}H{head}.{}", input.as_str())
            }
            Receiver::Logits => f.write_str("logits"),
        }
    }
}

/// A path-patching sweep: each sender unit patched into the same receivers.
#[derive(Clone, Debug, PartialEq)]
pub struct PathPatchingConfig {
    /// Sender units; the senders of one unit are patched together.
    pub senders: Vec<Vec<Sender>>,
    /// All heads, or `[Logits]` alone.
    pub receivers: Vec<Receiver>,
    pub direction: Direction,
    pub metric: Metric,
    /// Freeze MLP outputs at their destination values (direct paths only).
    pub freeze_mlps: bool,
    pub options: PatchOptions,
}

impl PathPatchingConfig {
    /// Each sender alone, noising (source: corrupt, destination: clean) as in the IOI paper,
    /// MLPs frozen.
    pub fn new(
        senders: Vec<Sender>,
        receivers: Vec<Receiver>,
        metric: Metric,
    ) -> PathPatchingConfig {
        PathPatchingConfig {
            senders: senders.into_iter().map(|s| vec![s]).collect(),
            receivers,
            direction: Direction::Noising,
            metric,
            freeze_mlps: true,
            options: PatchOptions::default(),
        }
    }
}

/// The metric after patching one sender unit's path, for one prompt.
#[derive(Clone, Debug, PartialEq)]
pub struct PathPatchResult {
    pub prompt: u32,
    /// Sender label (`L0H3`, `MLP1`, `L0H1+L0H2`).
    pub sender: String,
    /// The sender, for single-sender units.
    pub sender_component: Option<Sender>,
    /// Receiver labels joined by `,` (`L9H6.q,L9H9.q` or `logits`).
    pub receivers: String,
    pub direction: Direction,
    pub metric: f64,
    pub metric_clean: f64,
    pub metric_corrupt: f64,
}

impl PathPatchResult {
    pub fn normalized(&self) -> Option<f64> {
        normalized(self.metric, self.metric_clean, self.metric_corrupt)
    }
}

fn check(model: &Transformer, cfg: &PathPatchingConfig) -> Result<()> {
    let c = &model.config;
    let bad = |m: String| Err(InterventionError::Config(m));
    if cfg.receivers.is_empty() {
        return bad("path patching needs at least one receiver".into());
    }
    let logits = cfg.receivers.contains(&Receiver::Logits);
    if logits && cfg.receivers.len() > 1 {
        return bad("path patching receivers are either heads or the logits, not both".into());
    }
    for r in &cfg.receivers {
        if let Receiver::Head { layer, head, input } = *r {
            let n = if input == HeadInput::Q {
                c.n_heads
            } else {
                c.n_kv_heads
            };
            if layer >= c.n_layers || head >= n {
                return bad(format!(
                    "receiver {r} does not exist: {} layers, {n} heads for `{}`",
                    c.n_layers,
                    input.as_str()
                ));
            }
        }
    }
    for unit in &cfg.senders {
        if unit.is_empty() {
            return bad("a path-patching sender unit is empty".into());
        }
        for s in unit {
            match *s {
                Sender::Head { layer, head } if layer >= c.n_layers || head >= c.n_heads => {
                    return bad(format!(
                        "sender {s} does not exist: {} layers of {} heads",
                        c.n_layers, c.n_heads
                    ));
                }
                Sender::Mlp { layer } if layer >= c.n_layers || c.attn_only => {
                    return bad(format!("sender {s} does not exist in this model"));
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// Runs a path-patching sweep on one batch of clean/corrupt pairs.
pub fn path_patching(
    model: &Transformer,
    prompts: &[Prompt],
    padding: Padding,
    cfg: &PathPatchingConfig,
) -> Result<Vec<PathPatchResult>> {
    check_pairs(prompts, "path patching")?;
    check(model, cfg)?;
    let n = model.config.n_layers;
    let freeze_mlps = cfg.freeze_mlps && !model.config.attn_only;
    let source_hooks: BTreeSet<HookPoint> = cfg
        .senders
        .iter()
        .flatten()
        .map(|s| s.target().hook)
        .collect();
    let mut dest_hooks: BTreeSet<HookPoint> =
        (0..n).map(|l| HookPoint::layer(l, HookKind::Z)).collect();
    if freeze_mlps {
        dest_hooks.extend((0..n).map(|l| HookPoint::layer(l, HookKind::MlpOut)));
    }
    let pair = Pair::new(
        model,
        prompts,
        padding,
        cfg.direction,
        &cfg.metric,
        &source_hooks,
        &dest_hooks,
    )?;
    let p = prompts.len();
    let receiver_heads: BTreeMap<HookPoint, Vec<usize>> =
        cfg.receivers.iter().fold(BTreeMap::new(), |mut m, r| {
            if let Receiver::Head { layer, head, input } = *r {
                let heads: &mut Vec<usize> = m
                    .entry(HookPoint::layer(layer, HookKind::from(input)))
                    .or_default();
                if !heads.contains(&head) {
                    heads.push(head);
                }
            }
            m
        });
    let to_logits = receiver_heads.is_empty();
    let first_receiver = receiver_heads.keys().filter_map(|h| h.layer).min();
    let last_receiver = receiver_heads.keys().filter_map(|h| h.layer).max();
    let units: Vec<PatchUnit> = cfg
        .senders
        .iter()
        .map(|unit| PatchUnit {
            targets: unit.iter().map(|s| s.target()).collect(),
        })
        .collect();
    // The frozen run must also compute receivers that sit before every sender (their inputs
    // then equal the destination's).
    let starts: Vec<Option<usize>> = units
        .iter()
        .map(|u| {
            let s = u.start_layer().expect("senders are per-layer");
            Some(first_receiver.map_or(s, |r| s.min(r)))
        })
        .collect();
    let values: BTreeMap<HookPoint, HookTensor> = source_hooks
        .iter()
        .map(|h| (*h, pair.source.hook(h)))
        .collect();
    let mut metrics = vec![vec![0.0; p]; units.len()];
    for chunk in plan_chunks(&starts, p, cfg.options) {
        let chunk_units: Vec<&PatchUnit> = chunk.units.iter().map(|&u| &units[u]).collect();
        let k = chunk_units.len();
        let start = chunk.start.expect("path patching starts at a layer");
        // 1. senders from the source, every other head (and MLP) frozen at the destination
        let mut edits = Vec::new();
        for l in start..n {
            let mut freeze = vec![HookPoint::layer(l, HookKind::Z)];
            if freeze_mlps {
                freeze.push(HookPoint::layer(l, HookKind::MlpOut));
            }
            for h in freeze {
                edits.push(Edit::new(
                    h,
                    Selection::all(),
                    EditOp::Replace(repeat_hook(&pair.dest.hook(&h), k)),
                )?);
            }
        }
        let (sender_edits, _) = unit_edits(&chunk_units, prompts, &pair.dest.batch, &values)?;
        edits.extend(sender_edits);
        let capture: BTreeSet<HookPoint> = receiver_heads.keys().copied().collect();
        let stop = if to_logits {
            n
        } else {
            last_receiver.expect("head receivers") + 1
        };
        let frozen = forward_rows(
            model,
            &pair.dest,
            Some(start),
            k,
            &Intervention { capture, edits },
            stop,
        );
        let values_rows = if to_logits {
            pair.metric.repeat(k).eval_resid(model, frozen.resid)
        } else {
            // 2. only the receivers' inputs patched, from the frozen run
            let edits = receiver_heads
                .iter()
                .map(|(hook, heads)| {
                    let v = frozen
                        .cache
                        .get(hook)
                        .expect("captured receiver input")
                        .clone();
                    Edit::new(*hook, Selection::heads(heads.clone()), EditOp::Replace(v))
                })
                .collect::<std::result::Result<_, _>>()?;
            let intervention = Intervention {
                capture: BTreeSet::new(),
                edits,
            };
            let r0 = first_receiver.expect("head receivers");
            let out = forward_rows(model, &pair.dest, Some(r0), k, &intervention, n);
            pair.metric.repeat(k).eval_resid(model, out.resid)
        };
        for (j, &u) in chunk.units.iter().enumerate() {
            for i in 0..p {
                metrics[u][i] = values_rows[j * p + i];
            }
        }
    }
    let receivers = cfg
        .receivers
        .iter()
        .map(|r| r.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let mut out = Vec::with_capacity(units.len() * p);
    for (unit, per_prompt) in cfg.senders.iter().zip(metrics) {
        let sender = unit
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join("+");
        for (i, m) in per_prompt.into_iter().enumerate() {
            out.push(PathPatchResult {
                prompt: prompts[i].id,
                sender: sender.clone(),
                sender_component: (unit.len() == 1).then(|| unit[0]),
                receivers: receivers.clone(),
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
    /// A row of [`path_patching_table`].
    pub struct PathPatchingRow {
        prompt = "prompt id",
        sender: String = "patched sender(s): L0H3, MLP1, L0H1+L0H2",
        layer: Option<i32> = "the sender's layer (single senders)",
        head: Option<i32> = "the sender's head (single head senders)",
        receivers: String = "receivers: L9H6.q,... or logits",
        direction: &'static str = "denoising or noising",
        metric: f64 = "metric after patching the path",
        metric_clean: f64 = "metric of the clean run",
        metric_corrupt: f64 = "metric of the corrupt run",
        normalized: Option<f64> = "(metric - metric_corrupt) / (metric_clean - metric_corrupt)",
        delta: f64 = "metric minus the destination run's metric",
    }
}

/// One row per sender unit and prompt.
pub fn path_patching_table(results: &[PathPatchResult]) -> Table {
    let mut t = Rows::<PathPatchingRow>::new();
    for r in results {
        let (layer, head) = match r.sender_component {
            Some(Sender::Head { layer, head }) => (Some(layer as i32), Some(head as i32)),
            Some(Sender::Mlp { layer }) => (Some(layer as i32), None),
            None => (None, None),
        };
        let dest = match r.direction {
            Direction::Denoising => r.metric_corrupt,
            Direction::Noising => r.metric_clean,
        };
        t.push(PathPatchingRow {
            prompt: r.prompt,
            sender: r.sender.clone(),
            layer,
            head,
            receivers: r.receivers.clone(),
            direction: r.direction.as_str(),
            metric: r.metric,
            metric_clean: r.metric_clean,
            metric_corrupt: r.metric_corrupt,
            normalized: r.normalized(),
            delta: r.metric - dest,
        });
    }
    t.into_table()
}
