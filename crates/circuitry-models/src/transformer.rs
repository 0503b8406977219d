//! The decoder-only transformer: embedding, blocks, final norm, unembedding; and the forward pass
//! with hooks, edits, start-at-layer, stop-at-layer and a key/value prefix.

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::{DType, FloatDType};
use circuitry_vocab::WeightDtype;

use crate::batch::TokenBatch;
use crate::cache::{ActivationCache, HookContext, Intervention};
use crate::components::attention::{Attention, AttentionInputs, AttentionMask, LayerKv};
use crate::components::mlp::Mlp;
use crate::components::norm::Norm;
use crate::components::rotary::RotaryTables;
use crate::config::{ModelConfig, Positional, QkNorm, RopeScaling};
use crate::hooks::{HookKind, HookPoint};

/// One residual block: `resid_mid = resid_pre + attn(ln1(resid_pre))`,
/// `resid_post = resid_mid + mlp(ln2(resid_mid))`; with post-norms each output is normalised
/// (`ln1_post`, `ln2_post`) before it is added, and with parallel attention and MLP both read
/// `resid_pre`.
#[derive(Module, Debug)]
pub struct Block {
    /// Absent without pre-norms (OLMo-2).
    pub(crate) ln1: Option<Norm>,
    pub(crate) attn: Attention,
    pub(crate) ln1_post: Option<Norm>,
    /// Absent in attention-only models and without pre-norms.
    pub(crate) ln2: Option<Norm>,
    /// Absent in attention-only models, with `ln2` and `ln2_post`.
    pub(crate) mlp: Option<Mlp>,
    pub(crate) ln2_post: Option<Norm>,
    #[module(skip)]
    pub(crate) parallel: bool,
}

impl Block {
    /// `None` in models without pre-norms.
    pub fn ln1(&self) -> Option<&Norm> {
        self.ln1.as_ref()
    }
    /// The norm of attention's output (models with post-norms).
    pub fn ln1_post(&self) -> Option<&Norm> {
        self.ln1_post.as_ref()
    }
    /// The norm of the MLP's output (models with post-norms).
    pub fn ln2_post(&self) -> Option<&Norm> {
        self.ln2_post.as_ref()
    }
    pub fn attn(&self) -> &Attention {
        &self.attn
    }
    /// `None` in attention-only models.
    pub fn ln2(&self) -> Option<&Norm> {
        self.ln2.as_ref()
    }
    /// `None` in attention-only models.
    pub fn mlp(&self) -> Option<&Mlp> {
        self.mlp.as_ref()
    }
}

/// A transformer with weights in TransformerLens-style layout (`x @ W`).
///
/// The weights are private to this crate: [`Transformer::from_weights`] builds a model from
/// canonical host weights, burn's `Module` mapping updates them (training), and other crates read
/// them through the accessors ([`Transformer::w_e`], [`Transformer::blocks`], [`Block::attn`],
/// [`Attention::w_q_heads`], ...).
#[derive(Module, Debug)]
pub struct Transformer {
    /// `W_E`, `[d_vocab, d_model]`.
    pub(crate) w_e: Param<Tensor<2>>,
    /// `W_pos`, `[n_ctx, d_model]`, for learned positions.
    pub(crate) w_pos: Option<Param<Tensor<2>>>,
    pub(crate) blocks: Vec<Block>,
    pub(crate) ln_final: Norm,
    /// `W_U`, `[d_model, d_vocab]`.
    pub(crate) w_u: Param<Tensor<2>>,
    pub(crate) b_u: Option<Param<Tensor<1>>>,
    #[module(skip)]
    pub config: ModelConfig,
}

/// Keys and values of every block for the first slots of a batch: what attention at later slots
/// reads, so that a pass over those later slots can skip the earlier ones (a KV cache).
///
/// `layers[l]` is `None` for blocks the pass that produced it did not run.
#[derive(Clone, Debug, Default)]
pub struct KvCache {
    layers: Vec<Option<LayerKv>>,
}

impl KvCache {
    /// The keys and values of block `l`, `[batch, slots, n_kv_heads, d_head]` each.
    pub fn layer(&self, l: usize) -> Option<&LayerKv> {
        self.layers.get(l).and_then(Option::as_ref)
    }

    /// How many slots the cache covers (0 when it holds no block).
    pub fn slots(&self) -> usize {
        self.layers
            .iter()
            .flatten()
            .next()
            .map_or(0, |kv| kv.k.dims()[1])
    }

    /// The cache of slots `..s` only.
    pub fn prefix(&self, s: usize) -> KvCache {
        let cut = |x: &Tensor<4>| {
            let [b, _, h, d] = x.dims();
            x.clone().slice([0..b, 0..s, 0..h, 0..d])
        };
        self.map(|kv| LayerKv {
            k: cut(&kv.k),
            v: cut(&kv.v),
        })
    }

    /// `k` copies of every row, stacked copy-major (as a batch repeated `k` times).
    pub fn repeat_rows(&self, k: usize) -> KvCache {
        if k == 1 {
            return self.clone();
        }
        self.map(|kv| LayerKv {
            k: kv.k.clone().repeat_dim(0, k),
            v: kv.v.clone().repeat_dim(0, k),
        })
    }

    fn map(&self, f: impl Fn(&LayerKv) -> LayerKv) -> KvCache {
        KvCache {
            layers: self.layers.iter().map(|l| l.as_ref().map(&f)).collect(),
        }
    }
}

/// Where a forward pass starts and stops, and which slots it computes.
#[derive(Clone, Debug, Default)]
pub struct Span {
    /// Start at this block from the given residual stream (`blocks.l.hook_resid_pre`,
    /// `[batch, seq - past slots, d_model]`) instead of from the tokens.
    pub start: Option<(usize, Tensor<3>)>,
    /// Stop before this block and return its `hook_resid_pre` as the output, without logits
    /// (with `n_layers`, the residual stream after the last block).
    pub stop_before: Option<usize>,
    /// Keys and values of the batch's first `s = past.slots()` slots, from an earlier pass over
    /// the same rows (`Output::kv`, cut with [`KvCache::prefix`]): the pass then computes only
    /// slots `s..` of the batch, whose queries attend to these keys followed by their own. The
    /// batch still describes every slot (tokens, position ids, padding); the pass embeds slots
    /// `s..` only, rotates them by their own position ids, and masks keys causally and by
    /// padding over all `seq` slots. It needs the blocks it runs.
    ///
    /// Hook tensors (captured and edited) then cover the computed slots only: their position
    /// axis is `[seq - s]` and index `i` is slot `s + i` (attention scores and patterns are
    /// `[batch, head, seq - s, seq]`: keys cover every slot); `hook_k`/`hook_v` hold the new
    /// slots' keys and values, not the prefix's.
    pub past: Option<KvCache>,
    /// Return the keys and values of every block run, for all `seq` slots (past and new), in
    /// [`Output::kv`].
    pub keep_kv: bool,
}

impl Span {
    pub fn from_layer(layer: usize, resid_pre: Tensor<3>) -> Span {
        Span {
            start: Some((layer, resid_pre)),
            ..Span::default()
        }
    }
    pub fn until(layer: usize) -> Span {
        Span {
            stop_before: Some(layer),
            ..Span::default()
        }
    }
    /// The same span, computing only the slots after `past`.
    pub fn with_past(mut self, past: KvCache) -> Span {
        self.past = Some(past);
        self
    }
    /// The same span, returning the keys and values it computes.
    pub fn keeping_kv(mut self) -> Span {
        self.keep_kv = true;
        self
    }
}

/// The result of a forward pass.
#[derive(Clone, Debug)]
pub struct Output {
    /// `[batch, seq, d_vocab]`; `None` when the pass stopped early.
    pub logits: Option<Tensor<3>>,
    /// The residual stream where the pass ended (before the final norm, or at `stop_before`).
    pub resid: Tensor<3>,
    pub cache: ActivationCache,
    /// With [`Span::keep_kv`]: keys and values of the blocks run, over every slot.
    pub kv: Option<KvCache>,
}

impl Transformer {
    pub fn device(&self) -> Device {
        self.w_e.val().device()
    }

    /// The precision the weight matrices are held in (computation is f32 whatever it is).
    pub fn weight_dtype(&self) -> WeightDtype {
        match self.w_e.val().dtype() {
            DType::BF16 => WeightDtype::Bf16,
            DType::F16 => WeightDtype::F16,
            _ => WeightDtype::F32,
        }
    }

    /// Logits for a batch, with no hooks.
    pub fn logits(&self, batch: &TokenBatch) -> Tensor<3> {
        self.forward(batch, &Intervention::default(), Span::default())
            .logits
            .expect("a full forward pass has logits")
    }

    /// Runs the model on `batch`, applying and capturing at hook points as `intervention` says.
    ///
    /// # Panics
    /// On a span that does not fit the model or the batch (a start layer beyond the model, a
    /// start residual or key/value prefix of another shape, a prefix missing a block it runs):
    /// bugs in the caller. (An edit's value always has its hook's rank: [`crate::Edit::new`] checks.)
    pub fn forward(&self, batch: &TokenBatch, intervention: &Intervention, span: Span) -> Output {
        let cfg = &self.config;
        let mut hooks = HookContext::new(intervention);
        let [b, t] = batch.ids.dims();
        let device = batch.device();
        let offset = span.past.as_ref().map_or(0, KvCache::slots);
        assert!(offset <= t, "key/value prefix of {offset} slots beyond {t}");
        let (first, mut resid) = match span.start {
            Some((layer, resid)) => {
                assert!(layer <= cfg.n_layers, "start layer {layer} beyond n_layers");
                assert_eq!(
                    resid.dims()[..2],
                    [b, t - offset],
                    "start residual for another batch or prefix"
                );
                (layer, resid)
            }
            None => (0, self.embed(batch, offset, &mut hooks)),
        };
        let last = span.stop_before.unwrap_or(cfg.n_layers).min(cfg.n_layers);
        // The masks and rotary tables of the blocks run, built once each: global attention's
        // and the sliding window's (some models alternate), the scaled rotation and the local
        // one (Gemma 3's window layers).
        let windows: Vec<Option<usize>> = (first..last).map(|l| cfg.window(l)).collect();
        let any_global = windows.iter().any(Option::is_none);
        let mask =
            |window| AttentionMask::new(b, offset, t, batch.key_mask.as_ref(), window, &device);
        let global_mask = any_global.then(|| mask(None));
        let window_mask = windows.iter().flatten().next().map(|&w| mask(Some(w)));
        let rotary_table = |dim, theta, scaling| {
            RotaryTables::new(
                &slots_from(&batch.positions, offset),
                batch.max_len(),
                &batch.rows.iter().map(Vec::len).collect::<Vec<_>>(),
                dim,
                theta,
                scaling,
            )
        };
        let (rotary, local_rotary) = match &cfg.positional {
            &Positional::Rotary {
                theta,
                dim,
                ref scaling,
                local_theta,
            } if first < last => {
                let local = local_theta.filter(|_| window_mask.is_some());
                let global =
                    (local.is_none() || any_global).then(|| rotary_table(dim, theta, scaling));
                let local = local.map(|lt| rotary_table(dim, lt, &RopeScaling::None));
                (global, local)
            }
            _ => (None, None),
        };
        let mut kept = span.keep_kv.then(|| KvCache {
            layers: vec![None; cfg.n_layers],
        });
        for (l, block) in self.blocks.iter().enumerate().take(last).skip(first) {
            let past = span.past.as_ref().map(|p| {
                let kv = p
                    .layer(l)
                    .unwrap_or_else(|| panic!("key/value prefix without block {l}"));
                assert_eq!(kv.k.dims()[0], b, "key/value prefix for another batch");
                kv
            });
            let windowed = cfg.window(l).is_some();
            let mask = if windowed { &window_mask } else { &global_mask };
            let rotary = match &local_rotary {
                Some(local) if windowed => Some(local),
                _ => rotary.as_ref(),
            };
            let inputs = AttentionInputs {
                mask: mask.as_ref().expect("a mask for every block run"),
                rotary,
                past,
                keep_kv: kept.is_some(),
            };
            let (out, kv) = self.block_forward(block, l, resid, inputs, &mut hooks);
            resid = out;
            if let Some(kept) = &mut kept {
                kept.layers[l] = kv;
            }
        }
        if span.stop_before.is_some() {
            // `blocks.L.hook_resid_pre` of the stop layer, or the final residual stream.
            if last < cfg.n_layers {
                resid = hooks.h3(HookPoint::resid_pre(last), resid);
            }
            return Output {
                logits: None,
                resid,
                cache: hooks.cache,
                kv: kept,
            };
        }
        let scale = self.ln_final.scale(&resid);
        let scale = hooks.h3(HookPoint::model(HookKind::LnFinalScale), scale);
        let normed = self.ln_final.apply(resid.clone(), scale);
        let logits = hooks.h3(HookPoint::model(HookKind::Logits), self.unembed(normed));
        Output {
            logits: Some(logits),
            resid,
            cache: hooks.cache,
            kv: kept,
        }
    }

    /// Logits of residual-stream vectors after the last block (`[batch, pos, d_model]`): the
    /// final norm, then [`Transformer::unembed`], as the forward pass computes them.
    pub fn decode(&self, resid: Tensor<3>) -> Tensor<3> {
        let scale = self.ln_final.scale(&resid);
        self.unembed(self.ln_final.apply(resid, scale))
    }

    /// Logits from the final norm's output (`[batch, pos, d_model]`): the unembedding, its bias
    /// and the logit soft-cap where the model has one.
    pub fn unembed(&self, normed: Tensor<3>) -> Tensor<3> {
        let [b, t, _] = normed.dims();
        let logits = normed
            .reshape([(b * t) as i64, -1])
            .matmul(weight(&self.w_u))
            .reshape([b as i64, t as i64, -1]);
        let logits = match &self.b_u {
            Some(b_u) => logits + b_u.val().unsqueeze::<3>(),
            None => logits,
        };
        match self.config.logit_softcap {
            Some(cap) => logits.div_scalar(cap).tanh().mul_scalar(cap),
            None => logits,
        }
    }

    /// The embedding of slots `offset..` of the batch.
    fn embed(&self, batch: &TokenBatch, offset: usize, hooks: &mut HookContext) -> Tensor<3> {
        let ids = slots_from(&batch.ids, offset);
        let [b, t] = ids.dims();
        let ids = ids.reshape([b * t]);
        // Rows are picked before widening: a half-precision table stays narrow.
        let embed = widened(self.w_e.val().select(0, ids)).reshape([b as i64, t as i64, -1]);
        let mut resid = hooks.h3(HookPoint::model(HookKind::Embed), embed);
        if let Some(w_pos) = &self.w_pos {
            let pos = slots_from(&batch.positions, offset).reshape([b * t]);
            let pos_embed = widened(w_pos.val().select(0, pos)).reshape([b as i64, t as i64, -1]);
            resid = resid + hooks.h3(HookPoint::model(HookKind::PosEmbed), pos_embed);
        }
        resid
    }

    fn block_forward(
        &self,
        block: &Block,
        l: usize,
        resid: Tensor<3>,
        inputs: AttentionInputs,
        hooks: &mut HookContext,
    ) -> (Tensor<3>, Option<LayerKv>) {
        let hp = |k| HookPoint::layer(l, k);
        let resid = hooks.h3(hp(HookKind::ResidPre), resid);
        let x = normed(block.ln1.as_ref(), &resid, hp(HookKind::Ln1Scale), hooks);
        let (attn_out, kv) = block.attn.forward(x, l, inputs, hooks);
        let attn_out = normed(
            block.ln1_post.as_ref(),
            &attn_out,
            hp(HookKind::Ln1PostScale),
            hooks,
        );
        let attn_out = hooks.h3(hp(HookKind::AttnOut), attn_out);
        let Some(mlp) = &block.mlp else {
            return (hooks.h3(hp(HookKind::ResidPost), resid + attn_out), kv);
        };
        // The stream the MLP reads, and the one its output is added to: the block's input and
        // that plus attention's output (parallel), or both the stream after attention.
        let (mlp_in, base) = if block.parallel {
            (resid.clone(), resid + attn_out)
        } else {
            let mid = hooks.h3(hp(HookKind::ResidMid), resid + attn_out);
            (mid.clone(), mid)
        };
        let x = normed(block.ln2.as_ref(), &mlp_in, hp(HookKind::Ln2Scale), hooks);
        let mlp_out = mlp.forward(x, l, hooks);
        let mlp_out = normed(
            block.ln2_post.as_ref(),
            &mlp_out,
            hp(HookKind::Ln2PostScale),
            hooks,
        );
        let mlp_out = hooks.h3(hp(HookKind::MlpOut), mlp_out);
        (hooks.h3(hp(HookKind::ResidPost), base + mlp_out), kv)
    }

    /// `W_E`, `[d_vocab, d_model]`.
    pub fn w_e(&self) -> Tensor<2> {
        weight(&self.w_e)
    }
    /// `W_pos`, `[n_ctx, d_model]`, for learned positions.
    pub fn w_pos(&self) -> Option<Tensor<2>> {
        self.w_pos.as_ref().map(weight)
    }
    pub fn blocks(&self) -> &[Block] {
        &self.blocks
    }
    pub fn ln_final(&self) -> &Norm {
        &self.ln_final
    }
    /// `W_U`, `[d_model, d_vocab]`.
    pub fn w_u(&self) -> Tensor<2> {
        weight(&self.w_u)
    }
    /// `b_U`, `[d_vocab]`.
    pub fn b_u(&self) -> Option<Tensor<1>> {
        self.b_u.as_ref().map(Param::val)
    }

    /// The hook points this model has (see [`has_hook`]).
    pub fn hook_points(&self) -> Vec<HookPoint> {
        HookPoint::all(self.config.n_layers)
            .into_iter()
            .filter(|h| has_hook(&self.config, h.kind))
            .collect()
    }
}

/// Whether models of this configuration have hooks of `kind`: no `hook_pos_embed` without
/// learned positions, no rotary hooks without rotary embeddings, no `mlp.hook_pre_linear`
/// without a gated MLP, no MLP-side hooks in attention-only models, no `hook_resid_mid` when
/// attention and MLP run in parallel, no hooks of norms the model does not have.
pub fn has_hook(cfg: &ModelConfig, kind: HookKind) -> bool {
    let mlp = !cfg.attn_only;
    match kind {
        HookKind::PosEmbed => cfg.positional == Positional::Learned,
        HookKind::RotQ | HookKind::RotK => cfg.positional != Positional::Learned,
        HookKind::QNormed | HookKind::KNormed => cfg.qk_norm != QkNorm::None,
        HookKind::Ln1Scale => cfg.block_norms.pre(),
        HookKind::Ln1PostScale => cfg.block_norms.post(),
        HookKind::MlpPreLinear => cfg.gated_mlp && mlp,
        HookKind::ResidMid => mlp && !cfg.parallel_attn_mlp,
        HookKind::Ln2Scale => mlp && cfg.block_norms.pre(),
        HookKind::Ln2PostScale => mlp && cfg.block_norms.post(),
        HookKind::MlpPre | HookKind::MlpPost | HookKind::MlpOut => mlp,
        _ => true,
    }
}

/// `x` through `norm` (its scale at hook `scale_hook`), or `x` itself without one.
fn normed(
    norm: Option<&Norm>,
    x: &Tensor<3>,
    scale_hook: HookPoint,
    hooks: &mut HookContext,
) -> Tensor<3> {
    match norm {
        Some(norm) => {
            let scale = hooks.h3(scale_hook, norm.scale(x));
            norm.apply(x.clone(), scale)
        }
        None => x.clone(),
    }
}

/// Columns `offset..` of a `[batch, seq]` tensor.
fn slots_from(x: &Tensor<2, Int>, offset: usize) -> Tensor<2, Int> {
    if offset == 0 {
        return x.clone();
    }
    let [b, t] = x.dims();
    x.clone().slice([0..b, offset..t])
}

/// A weight as the forward pass and the analyses compute with it: f32, widened from the
/// precision it is held in (bf16 or f16 models keep their matrices narrow in memory).
pub(crate) fn weight<const D: usize>(p: &Param<Tensor<D>>) -> Tensor<D> {
    widened(p.val())
}

/// `t` as f32 (a no-op when it is).
pub(crate) fn widened<const D: usize>(t: Tensor<D>) -> Tensor<D> {
    if t.dtype() == DType::F32 {
        t
    } else {
        t.cast(FloatDType::F32)
    }
}

/// `x @ w + b` over the last axis of a `[batch, seq, in]` tensor, as one matrix product.
pub(crate) fn linear(
    x: Tensor<3>,
    w: &Param<Tensor<2>>,
    b: Option<&Param<Tensor<1>>>,
) -> Tensor<3> {
    let [bs, t, d] = x.dims();
    let y = x.reshape([bs * t, d]).matmul(weight(w));
    let y = match b {
        Some(b) => y + b.val().unsqueeze::<2>(),
        None => y,
    };
    y.reshape([bs as i64, t as i64, -1])
}
