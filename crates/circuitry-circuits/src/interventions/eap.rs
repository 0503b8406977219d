//! Edge attribution patching (EAP; Syed, Rager and Conmy 2023, arXiv:2310.10348) and EAP with
//! integrated gradients (EAP-IG; Hanna, Pezzelle and Belinkov 2024, arXiv:2403.17806), and
//! circuit extraction from their edge scores.
//!
//! The graph: nodes are the input embedding (`input`: the residual stream before block 0), every
//! attention head's output (`a{l}.h{h}`: its `hook_result`), every MLP's output (`m{l}`:
//! `hook_mlp_out`) and the `logits`. Every node reads the sum of the outputs of the nodes before
//! it, so an edge is (sender, receiver input): into a head's query, key or value input (for keys
//! and values under grouped-query attention, a key/value head `a{l}.kv{g}`), into an MLP's
//! input, or into the logits (the final residual stream). Senders in layer `l` reach heads of
//! later layers, the MLP of their own layer (heads) or later layers (MLPs), and the logits.
//!
//! Score of edge `u -> v`, summed over positions and averaged over prompts:
//!
//! ```text
//! score(u -> v) = (a_u^source - a_u^dest) · dMetric/d(input_v)   at the destination run
//! ```
//!
//! where `input_v` is the residual stream as `v` alone reads it (before its own norm), so the
//! gradient flows only through `v`'s query/key/value projection (or MLP, or unembedding). It
//! is obtained as the gradient at `attn.hook_q|k|v` (or `mlp.hook_pre(_linear)`) pulled back
//! through the projection and the norm (an exact vector-Jacobian product with burn's autodiff).
//!
//! EAP-IG replaces the gradient by its average over `steps` points on the straight line between
//! the source and destination input embeddings, `x_k = e_src + (e_dest - e_src) k / steps` for
//! `k = 1..=steps`, so `steps = 1` is EAP. The direction defaults to noising (source: corrupt,
//! destination: clean: how much does corrupting the edge change the clean metric), as in both
//! papers; denoising is available.
//!
//! Each node also gets a node attribution, `(a_u^source - a_u^dest) · dMetric/da_u`.

use std::collections::BTreeSet;
use std::fmt;

use circuitry_data::Prompt;
use circuitry_models::burn::prelude::*;
use circuitry_models::components::norm::Norm;
use circuitry_models::{HookKind, HookPoint, HookTensor, Transformer, host_values};

use super::attribution::{GradRun, grad_run};
use super::engine::CapturedRun;
use super::metric::Metric;
use super::{
    Direction, InterventionError, Padding, Result, check_pairs, clean_first, source_and_dest,
};
use crate::table::{Rows, Table};

/// A node of the computational graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Node {
    /// The input embedding (token and position embeddings).
    Embed,
    /// An attention head; as a key/value receiver under grouped-query attention, a key/value head.
    Head {
        layer: usize,
        head: usize,
    },
    Mlp {
        layer: usize,
    },
    Logits,
}

impl Node {
    pub fn layer(self) -> Option<usize> {
        match self {
            Node::Head { layer, .. } | Node::Mlp { layer } => Some(layer),
            _ => None,
        }
    }
    pub fn head(self) -> Option<usize> {
        match self {
            Node::Head { head, .. } => Some(head),
            _ => None,
        }
    }
    /// `input`, `head`, `mlp` or `logits`.
    pub fn kind_name(self) -> &'static str {
        match self {
            Node::Embed => "input",
            Node::Head { .. } => "head",
            Node::Mlp { .. } => "mlp",
            Node::Logits => "logits",
        }
    }
}

impl fmt::Display for Node {
    /// `input`, `a{l}.h{h}`, `m{l}`, `logits` (the names of the EAP and ACDC code).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Embed => f.write_str("input"),
            Node::Head { layer, head } => write!(f, "a{layer}.h{head}"),
            Node::Mlp { layer } => write!(f, "m{layer}"),
            Node::Logits => f.write_str("logits"),
        }
    }
}

/// Which input of the receiver an edge enters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReceiverInput {
    Q,
    K,
    V,
    Mlp,
    Logits,
}

impl ReceiverInput {
    pub fn as_str(self) -> &'static str {
        match self {
            ReceiverInput::Q => "q",
            ReceiverInput::K => "k",
            ReceiverInput::V => "v",
            ReceiverInput::Mlp => "mlp",
            ReceiverInput::Logits => "logits",
        }
    }
}

/// An edge of the graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Edge {
    pub sender: Node,
    pub receiver: Node,
    pub input: ReceiverInput,
}

/// How a circuit is read off the edge scores.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CircuitSelection {
    /// The `n` edges with the largest absolute score.
    TopN(usize),
    /// Every edge whose absolute score is at least this.
    Threshold(f64),
}

/// EAP configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct EapConfig {
    pub metric: Metric,
    pub direction: Direction,
    /// Interpolation steps of EAP-IG ([`eap_ig`]); [`eap`] ignores it.
    pub steps: usize,
}

impl EapConfig {
    /// Noising, 5 integration steps (EAP-IG's paper default).
    pub fn new(metric: Metric) -> EapConfig {
        EapConfig {
            metric,
            direction: Direction::Noising,
            steps: 5,
        }
    }
}

/// Senders and receivers in a fixed order.
#[derive(Clone, Debug, PartialEq)]
struct Graph {
    senders: Vec<Node>,
    receivers: Vec<(Node, ReceiverInput)>,
    /// Valid (sender, receiver) index pairs, in edge order.
    edges: Vec<(usize, usize)>,
    kv_grouped: bool,
}

impl Graph {
    fn new(model: &Transformer) -> Graph {
        let c = &model.config;
        let mlps = !c.attn_only;
        let mut senders = vec![Node::Embed];
        let mut receivers = Vec::new();
        for layer in 0..c.n_layers {
            senders.extend((0..c.n_heads).map(|head| Node::Head { layer, head }));
            if mlps {
                senders.push(Node::Mlp { layer });
            }
            receivers
                .extend((0..c.n_heads).map(|head| (Node::Head { layer, head }, ReceiverInput::Q)));
            for input in [ReceiverInput::K, ReceiverInput::V] {
                receivers.extend((0..c.n_kv_heads).map(|head| (Node::Head { layer, head }, input)));
            }
            if mlps {
                receivers.push((Node::Mlp { layer }, ReceiverInput::Mlp));
            }
        }
        receivers.push((Node::Logits, ReceiverInput::Logits));
        let mut edges = Vec::new();
        for (si, s) in senders.iter().enumerate() {
            for (ri, (r, _)) in receivers.iter().enumerate() {
                let ok = match (*s, *r) {
                    (Node::Embed, _) | (_, Node::Logits) => true,
                    (Node::Head { layer: ls, .. }, Node::Mlp { layer: lr }) => ls <= lr,
                    (
                        Node::Head { layer: ls, .. } | Node::Mlp { layer: ls },
                        Node::Head { layer: lr, .. } | Node::Mlp { layer: lr },
                    ) => ls < lr,
                    _ => false,
                };
                if ok {
                    edges.push((si, ri));
                }
            }
        }
        Graph {
            senders,
            receivers,
            edges,
            kv_grouped: c.n_kv_heads != c.n_heads,
        }
    }

    fn receiver_name(&self, ri: usize) -> String {
        match self.receivers[ri] {
            (Node::Head { layer, head }, ReceiverInput::K | ReceiverInput::V)
                if self.kv_grouped =>
            {
                format!("a{layer}.kv{head}")
            }
            (node, _) => node.to_string(),
        }
    }
}

/// Edge and node scores accumulated over prompts (merge batches with [`EapScores::merge`]).
#[derive(Clone, Debug, PartialEq)]
pub struct EapScores {
    graph: Graph,
    /// Per edge, summed over prompts.
    edge_sums: Vec<f64>,
    /// Per sender node, summed over prompts.
    node_sums: Vec<f64>,
    pub n_prompts: usize,
    metric_clean_sum: f64,
    metric_corrupt_sum: f64,
    /// `eap` or `eap-ig`.
    pub method: &'static str,
    pub direction: Direction,
    /// Interpolation steps (1 for EAP).
    pub steps: usize,
}

impl EapScores {
    /// The edges, in score order of [`Self::scores`].
    pub fn edges(&self) -> Vec<Edge> {
        self.graph
            .edges
            .iter()
            .map(|&(s, r)| Edge {
                sender: self.graph.senders[s],
                receiver: self.graph.receivers[r].0,
                input: self.graph.receivers[r].1,
            })
            .collect()
    }

    /// Mean score per edge.
    pub fn scores(&self) -> Vec<f64> {
        let n = self.n_prompts.max(1) as f64;
        self.edge_sums.iter().map(|s| s / n).collect()
    }

    /// The mean score of one edge, if it exists.
    pub fn score(&self, edge: &Edge) -> Option<f64> {
        self.edges()
            .iter()
            .position(|e| e == edge)
            .map(|i| self.scores()[i])
    }

    /// Mean node attribution per sender node (input, heads, MLPs).
    pub fn node_scores(&self) -> Vec<(Node, f64)> {
        let n = self.n_prompts.max(1) as f64;
        self.graph
            .senders
            .iter()
            .copied()
            .zip(self.node_sums.iter().map(|s| s / n))
            .collect()
    }

    /// Mean clean and corrupt metrics of the prompts.
    pub fn metrics(&self) -> (f64, f64) {
        let n = self.n_prompts.max(1) as f64;
        (self.metric_clean_sum / n, self.metric_corrupt_sum / n)
    }

    /// The scores in units of the clean - corrupt metric gap: every edge and node score divided
    /// by `mean(metric_clean) - mean(metric_corrupt)`, so that an edge scoring -1 (noising)
    /// estimates losing the whole gap. `None` when the gap is 0 (to 1e-12). Merge every batch
    /// first.
    pub fn normalized(&self) -> Option<EapScores> {
        let (clean, corrupt) = self.metrics();
        let gap = clean - corrupt;
        if gap.abs() <= 1e-12 {
            return None;
        }
        let mut out = self.clone();
        out.edge_sums.iter_mut().for_each(|s| *s /= gap);
        out.node_sums.iter_mut().for_each(|s| *s /= gap);
        Some(out)
    }

    /// Adds another batch's scores (same model and method).
    pub fn merge(&mut self, other: &EapScores) -> Result<()> {
        if self.graph != other.graph
            || self.method != other.method
            || self.direction != other.direction
            || self.steps != other.steps
        {
            return Err(InterventionError::Config(
                "cannot merge EAP scores of different graphs or methods".into(),
            ));
        }
        for (a, b) in self.edge_sums.iter_mut().zip(&other.edge_sums) {
            *a += b;
        }
        for (a, b) in self.node_sums.iter_mut().zip(&other.node_sums) {
            *a += b;
        }
        self.n_prompts += other.n_prompts;
        self.metric_clean_sum += other.metric_clean_sum;
        self.metric_corrupt_sum += other.metric_corrupt_sum;
        Ok(())
    }

    /// Which edges are in the circuit.
    pub fn circuit(&self, selection: CircuitSelection) -> Vec<bool> {
        let scores = self.scores();
        match selection {
            CircuitSelection::Threshold(t) => scores.iter().map(|s| s.abs() >= t).collect(),
            CircuitSelection::TopN(n) => {
                let mut order: Vec<usize> = (0..scores.len()).collect();
                order.sort_by(|&a, &b| scores[b].abs().total_cmp(&scores[a].abs()).then(a.cmp(&b)));
                let mut keep = vec![false; scores.len()];
                for &i in order.iter().take(n) {
                    keep[i] = true;
                }
                keep
            }
        }
    }

    /// One row per edge.
    pub fn edges_table(&self, selection: CircuitSelection) -> Table {
        let scores = self.scores();
        let keep = self.circuit(selection);
        let mut t = Rows::<EdgeRow>::new();
        for (e, &(si, ri)) in self.graph.edges.iter().enumerate() {
            let s = self.graph.senders[si];
            let (r, input) = self.graph.receivers[ri];
            t.push(EdgeRow {
                sender: s.to_string(),
                sender_layer: s.layer().map(|l| l as i32),
                sender_head: s.head().map(|h| h as i32),
                receiver: self.graph.receiver_name(ri),
                receiver_layer: r.layer().map(|l| l as i32),
                receiver_head: r.head().map(|h| h as i32),
                receiver_input: input.as_str(),
                score: scores[e],
                in_circuit: keep[e],
                method: self.method,
            });
        }
        t.into_table()
    }

    /// One row per node: its attribution and whether an in-circuit edge touches it.
    pub fn nodes_table(&self, selection: CircuitSelection) -> Table {
        let keep = self.circuit(selection);
        let mut touching = std::collections::BTreeMap::<Node, u32>::new();
        for (e, &(si, ri)) in self.graph.edges.iter().enumerate() {
            if keep[e] {
                *touching.entry(self.graph.senders[si]).or_default() += 1;
                let r = self.graph.receivers[ri].0;
                // key/value heads under grouped-query attention count for their first query head
                let r = match (r, self.graph.receivers[ri].1) {
                    (Node::Head { layer, head }, ReceiverInput::K | ReceiverInput::V)
                        if self.graph.kv_grouped =>
                    {
                        Node::Head {
                            layer,
                            head: head * self.kv_group(),
                        }
                    }
                    _ => r,
                };
                *touching.entry(r).or_default() += 1;
            }
        }
        let mut t = Rows::<NodeRow>::new();
        let nodes = self
            .node_scores()
            .into_iter()
            .map(|(n, s)| (n, Some(s)))
            .chain(std::iter::once((Node::Logits, None)));
        for (node, score) in nodes {
            let c = touching.get(&node).copied().unwrap_or(0);
            t.push(NodeRow {
                node: node.to_string(),
                kind: node.kind_name(),
                layer: node.layer().map(|l| l as i32),
                head: node.head().map(|h| h as i32),
                attribution: score,
                in_circuit: c > 0,
                circuit_edges: c,
            });
        }
        t.into_table()
    }

    fn kv_group(&self) -> usize {
        let q = self
            .graph
            .receivers
            .iter()
            .filter(|(n, i)| *i == ReceiverInput::Q && n.layer() == Some(0))
            .count();
        let k = self
            .graph
            .receivers
            .iter()
            .filter(|(n, i)| *i == ReceiverInput::K && n.layer() == Some(0))
            .count();
        (q / k.max(1)).max(1)
    }
}

crate::table_row! {
    /// A row of [`EapScores::edges_table`].
    pub struct EdgeRow {
        sender: String = "sending node: input, a{l}.h{h}, m{l}",
        sender_layer: Option<i32> = "sender's layer (null for the input)",
        sender_head: Option<i32> = "sender's head",
        receiver: String = "receiving node: a{l}.h{h} (a{l}.kv{g} for grouped key/value heads), m{l}, logits",
        receiver_layer: Option<i32> = "receiver's layer (null for the logits)",
        receiver_head: Option<i32> = "receiver's head (key/value head for k and v inputs)",
        receiver_input: &'static str = "q, k, v, mlp or logits",
        score: f64 = "edge attribution, mean over prompts",
        in_circuit: bool = "selected by top-n or threshold on |score|",
        method: &'static str = "eap or eap-ig",
    }
}

crate::table_row! {
    /// A row of [`EapScores::nodes_table`].
    pub struct NodeRow {
        node: String = "input, a{l}.h{h}, m{l}, logits",
        kind: &'static str = "input, head, mlp or logits",
        layer: Option<i32> = "layer",
        head: Option<i32> = "head",
        attribution: Option<f64> = "node attribution (a_source - a_dest) . dmetric/da, mean over prompts; null for the logits",
        in_circuit: bool = "an in-circuit edge starts or ends here",
        circuit_edges: u32 = "in-circuit edges touching the node",
    }
}

/// Edge attribution patching on one batch of clean/corrupt pairs.
pub fn eap(
    model: &Transformer,
    prompts: &[Prompt],
    padding: Padding,
    cfg: &EapConfig,
) -> Result<EapScores> {
    run(model, prompts, padding, cfg, None)
}

/// EAP-IG on one batch: gradients averaged over `cfg.steps` interpolated input embeddings.
pub fn eap_ig(
    model: &Transformer,
    prompts: &[Prompt],
    padding: Padding,
    cfg: &EapConfig,
) -> Result<EapScores> {
    if cfg.steps == 0 {
        return Err(InterventionError::Config(
            "EAP-IG needs at least one interpolation step".into(),
        ));
    }
    run(model, prompts, padding, cfg, Some(cfg.steps))
}

/// The hooks whose gradients EAP needs.
fn leaf_hooks(model: &Transformer) -> BTreeSet<HookPoint> {
    let c = &model.config;
    let mut leaves = BTreeSet::new();
    leaves.insert(HookPoint::resid_pre(0));
    leaves.insert(HookPoint::layer(c.n_layers - 1, HookKind::ResidPost));
    for l in 0..c.n_layers {
        for k in [HookKind::Q, HookKind::K, HookKind::V, HookKind::Result] {
            leaves.insert(HookPoint::layer(l, k));
        }
        if !c.attn_only {
            leaves.insert(HookPoint::layer(l, HookKind::MlpPre));
            leaves.insert(HookPoint::layer(l, HookKind::MlpOut));
            if c.gated_mlp {
                leaves.insert(HookPoint::layer(l, HookKind::MlpPreLinear));
            }
        }
    }
    leaves
}

/// Sender outputs in graph order: `[batch, senders, seq, d_model]`.
fn sender_outputs(
    model: &Transformer,
    resid0: Tensor<3>,
    cache: &impl Fn(HookPoint) -> HookTensor,
) -> Result<Tensor<4>> {
    let c = &model.config;
    let mut parts = vec![resid0.unsqueeze_dim::<4>(1)];
    for l in 0..c.n_layers {
        let (result, mlp_out) = (
            HookPoint::layer(l, HookKind::Result),
            HookPoint::layer(l, HookKind::MlpOut),
        );
        parts.push(
            cache(result)
                .r4()
                .map_err(|e| e.at(result))?
                .swap_dims(1, 2),
        );
        if !c.attn_only {
            let out = cache(mlp_out).r3().map_err(|e| e.at(mlp_out))?;
            parts.push(out.unsqueeze_dim::<4>(1));
        }
    }
    Ok(Tensor::cat(parts, 1))
}

/// Gradients of the node outputs in graph order: `[batch, senders, seq, d_model]`.
fn sender_grads(model: &Transformer, run: &GradRun) -> Result<Tensor<4>> {
    let embed = HookPoint::resid_pre(0);
    let embed = run.grads[&embed].clone().r3().map_err(|e| e.at(embed))?;
    sender_outputs(model, embed, &|h| run.grads[&h].clone())
}

/// `dMetric/d(x)` through `norm` alone, for `n` copies of `x` (`[b, t, d]`) that each feed
/// their own output gradient `g_out` (`[b, n, t, d]`): `[b, n, t, d]`.
fn norm_vjp(norm: &Norm, x: Tensor<3>, g_out: Tensor<4>) -> Tensor<4> {
    let [b, n, t, d] = g_out.dims();
    let xe = x
        .inner()
        .unsqueeze_dim::<4>(1)
        .expand([b, n, t, d])
        .reshape([b, n * t, d])
        .autodiff()
        .require_grad();
    let y = norm.apply(xe.clone(), norm.scale(&xe));
    let loss = (y * g_out.reshape([b, n * t, d]).inner()).sum();
    let grads = loss.backward();
    xe.grad(&grads)
        .expect("norm input gradient")
        .reshape([b, n, t, d])
}

/// Receiver-input gradients in graph order: `[batch, receivers, seq, d_model]`.
fn receiver_grads(model: &Transformer, run: &GradRun) -> Result<Tensor<4>> {
    let c = &model.config;
    let (h, hk, dh, d) = (c.n_heads, c.n_kv_heads, c.d_head, c.d_model);
    let grad = |l: usize, k: HookKind| {
        let hook = HookPoint::layer(l, k);
        (run.grads[&hook].clone(), hook)
    };
    let grad3 = |l: usize, k: HookKind| {
        let (g, hook) = grad(l, k);
        g.r3().map_err(|e| e.at(hook))
    };
    let act = |h: HookPoint| run.cache.get3(&h);
    let mut parts = Vec::new();
    for (l, block) in model.blocks().iter().enumerate() {
        let resid_pre = act(HookPoint::resid_pre(l))?;
        let mut ln_grads = Vec::new();
        for (kind, w, heads) in [
            (HookKind::Q, block.attn().w_q(), h),
            (HookKind::K, block.attn().w_k(), hk),
            (HookKind::V, block.attn().w_v(), hk),
        ] {
            // W^T per head: [heads, d_head, d_model]
            let wt = w
                .reshape([d, heads, dh])
                .permute([1, 2, 0])
                .unsqueeze_dim::<4>(0);
            let (g, hook) = grad(l, kind);
            let g = g.r4().map_err(|e| e.at(hook))?.swap_dims(1, 2); // [b, heads, t, dh]
            ln_grads.push(g.matmul(wt)); // [b, heads, t, d]
        }
        let ln1 = block.ln1().expect("pre-norm blocks (checked by run)");
        parts.push(norm_vjp(ln1, resid_pre, Tensor::cat(ln_grads, 1)));
        if let (Some(ln2), Some(mlp)) = (block.ln2(), block.mlp()) {
            let resid_mid = act(HookPoint::layer(l, HookKind::ResidMid))?;
            let g_pre = grad3(l, HookKind::MlpPre)?;
            let g = match mlp.w_gate() {
                Some(w_gate) => {
                    let g_lin = grad3(l, HookKind::MlpPreLinear)?;
                    g_pre.matmul(w_gate.transpose().unsqueeze::<3>())
                        + g_lin.matmul(mlp.w_in().transpose().unsqueeze::<3>())
                }
                None => g_pre.matmul(mlp.w_in().transpose().unsqueeze::<3>()),
            };
            parts.push(norm_vjp(ln2, resid_mid, g.unsqueeze_dim::<4>(1)));
        }
    }
    parts.push(grad3(c.n_layers - 1, HookKind::ResidPost)?.unsqueeze_dim::<4>(1));
    Ok(Tensor::cat(parts, 1))
}

fn run(
    model: &Transformer,
    prompts: &[Prompt],
    padding: Padding,
    cfg: &EapConfig,
    steps: Option<usize>,
) -> Result<EapScores> {
    let analysis = if steps.is_some() {
        "EAP-IG"
    } else {
        "edge attribution patching"
    };
    check_pairs(prompts, analysis)?;
    // The receivers' gradients are taken by hand through pre-norm sequential blocks.
    if let Some(reason) = model.config.nonstandard_blocks() {
        return Err(InterventionError::UnsupportedModel { analysis, reason });
    }
    let graph = Graph::new(model);
    let c = &model.config;
    let device = model.device();
    let (src_batch, dest_batch) = source_and_dest(prompts, padding, cfg.direction, &device)?;
    let mut outputs: BTreeSet<HookPoint> = (0..c.n_layers)
        .map(|l| HookPoint::layer(l, HookKind::Result))
        .collect();
    if !c.attn_only {
        outputs.extend((0..c.n_layers).map(|l| HookPoint::layer(l, HookKind::MlpOut)));
    }
    let source = CapturedRun::new(model, src_batch, &outputs);
    let dest = CapturedRun::new(model, dest_batch.clone(), &outputs);
    let metric = cfg.metric.resolve(prompts, &dest.batch, c.d_vocab)?;
    let (clean_run, _) = clean_first(cfg.direction, &source, &dest);
    let metric = metric.with_reference_from(model, || clean_run.final_resid());
    let m_src: f64 = metric.eval_resid(model, source.final_resid()).iter().sum();
    let m_dest: f64 = metric.eval_resid(model, dest.final_resid()).iter().sum();
    let (metric_clean_sum, metric_corrupt_sum) = clean_first(cfg.direction, m_src, m_dest);
    let leaves = leaf_hooks(model);
    let mut capture: BTreeSet<HookPoint> = (0..c.n_layers).map(HookPoint::resid_pre).collect();
    if !c.attn_only {
        capture.extend((0..c.n_layers).map(|l| HookPoint::layer(l, HookKind::ResidMid)));
    }
    let (recv, node_grad) = match steps {
        None => {
            let run = grad_run(model, &dest_batch, None, &leaves, &capture, &[], &metric);
            (receiver_grads(model, &run)?, sender_grads(model, &run)?)
        }
        Some(m) => {
            let (e_src, e_dest) = (source.resid[0].clone(), dest.resid[0].clone());
            let mut acc: Option<(Tensor<4>, Tensor<4>)> = None;
            for k in 1..=m {
                let alpha = k as f64 / m as f64;
                let x = e_src.clone() + (e_dest.clone() - e_src.clone()) * alpha;
                let run = grad_run(model, &dest_batch, Some(x), &leaves, &capture, &[], &metric);
                let (r, s) = (receiver_grads(model, &run)?, sender_grads(model, &run)?);
                acc = Some(match acc {
                    None => (r, s),
                    Some((ar, as_)) => (ar + r, as_ + s),
                });
            }
            let (r, s) = acc.expect("at least one step");
            (r / m as f64, s / m as f64)
        }
    };
    // Sender output differences, padding slots zeroed.
    let delta = sender_outputs(model, source.resid[0].clone(), &|h| source.hook(&h))?
        - sender_outputs(model, dest.resid[0].clone(), &|h| dest.hook(&h))?;
    let delta = match &dest.batch.key_mask {
        Some(mask) => {
            let [b, s, t, d] = delta.dims();
            let m = mask
                .clone()
                .float()
                .reshape([b, 1, t, 1])
                .expand([b, s, t, d]);
            delta * m
        }
        None => delta,
    };
    let [b, s, t, d] = delta.dims();
    let r = recv.dims()[1];
    let delta_flat = delta.clone().reshape([b, s, t * d]);
    let edge = delta_flat
        .matmul(recv.reshape([b, r, t * d]).swap_dims(1, 2))
        .sum_dim(0)
        .reshape([s, r]);
    let edge = host_values(&edge);
    let node = (delta * node_grad)
        .reshape([b, s, t * d])
        .sum_dim(2)
        .sum_dim(0)
        .reshape([s]);
    let node = host_values(&node);
    let edge_sums = graph
        .edges
        .iter()
        .map(|&(si, ri)| f64::from(edge[si * r + ri]))
        .collect();
    Ok(EapScores {
        edge_sums,
        node_sums: node.into_iter().map(f64::from).collect(),
        graph,
        n_prompts: prompts.len(),
        metric_clean_sum,
        metric_corrupt_sum,
        method: if steps.is_some() { "eap-ig" } else { "eap" },
        direction: cfg.direction,
        steps: steps.unwrap_or(1),
    })
}
