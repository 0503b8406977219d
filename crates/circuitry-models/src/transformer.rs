//! The decoder-only transformer: embedding, blocks, final norm, unembedding; and the forward pass
//! with hooks, edits, start-at-layer and stop-at-layer.

use burn::module::Param;
use burn::prelude::*;

use crate::batch::TokenBatch;
use crate::cache::{ActivationCache, HookContext, Intervention};
use crate::components::attention::{Attention, AttentionMask};
use crate::components::mlp::Mlp;
use crate::components::norm::Norm;
use crate::components::rotary::RotaryTables;
use crate::config::{ModelConfig, Positional};
use crate::hooks::{HookKind, HookPoint};

/// One residual block: `resid_mid = resid_pre + attn(ln1(resid_pre))`,
/// `resid_post = resid_mid + mlp(ln2(resid_mid))`.
#[derive(Module, Debug)]
pub struct Block {
    pub ln1: Norm,
    pub attn: Attention,
    /// Absent in attention-only models, with `mlp`.
    pub ln2: Option<Norm>,
    pub mlp: Option<Mlp>,
}

/// A transformer with weights in TransformerLens-style layout (`x @ W`).
#[derive(Module, Debug)]
pub struct Transformer {
    /// `W_E`, `[d_vocab, d_model]`.
    pub w_e: Param<Tensor<2>>,
    /// `W_pos`, `[n_ctx, d_model]`, for learned positions.
    pub w_pos: Option<Param<Tensor<2>>>,
    pub blocks: Vec<Block>,
    pub ln_final: Norm,
    /// `W_U`, `[d_model, d_vocab]`.
    pub w_u: Param<Tensor<2>>,
    pub b_u: Option<Param<Tensor<1>>>,
    #[module(skip)]
    pub config: ModelConfig,
}

/// Where a forward pass starts and stops.
#[derive(Clone, Debug, Default)]
pub struct Span {
    /// Start at this block from the given residual stream (`blocks.l.hook_resid_pre`,
    /// `[batch, seq, d_model]`) instead of from the tokens.
    pub start: Option<(usize, Tensor<3>)>,
    /// Stop before this block and return its `hook_resid_pre` as the output, without logits
    /// (with `n_layers`, the residual stream after the last block).
    pub stop_before: Option<usize>,
}

impl Span {
    pub fn from_layer(layer: usize, resid_pre: Tensor<3>) -> Span {
        Span {
            start: Some((layer, resid_pre)),
            stop_before: None,
        }
    }
    pub fn until(layer: usize) -> Span {
        Span {
            start: None,
            stop_before: Some(layer),
        }
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
}

impl Transformer {
    pub fn device(&self) -> Device {
        self.w_e.val().device()
    }

    /// Logits for a batch, with no hooks.
    pub fn logits(&self, batch: &TokenBatch) -> Tensor<3> {
        self.forward(batch, &Intervention::default(), Span::default())
            .logits
            .expect("a full forward pass has logits")
    }

    /// Runs the model on `batch`, applying and capturing at hook points as `intervention` says.
    pub fn forward(&self, batch: &TokenBatch, intervention: &Intervention, span: Span) -> Output {
        let cfg = &self.config;
        let mut hooks = HookContext::new(intervention);
        let [b, t] = batch.ids.dims();
        let device = batch.device();
        let (first, mut resid) = match span.start {
            Some((layer, resid)) => {
                assert!(layer <= cfg.n_layers, "start layer {layer} beyond n_layers");
                (layer, resid)
            }
            None => (0, self.embed(batch, &mut hooks)),
        };
        let last = span.stop_before.unwrap_or(cfg.n_layers).min(cfg.n_layers);
        let mask = AttentionMask::new(b, t, batch.key_mask.as_ref(), &device);
        let rotary = match cfg.positional {
            Positional::Rotary { theta, dim } if first < last => Some(RotaryTables::new(
                &batch.positions,
                batch.max_len(),
                dim,
                theta,
            )),
            _ => None,
        };
        for (l, block) in self.blocks.iter().enumerate().take(last).skip(first) {
            resid = self.block_forward(block, l, resid, &mask, rotary.as_ref(), &mut hooks);
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
            };
        }
        let scale = self.ln_final.scale(&resid);
        let scale = hooks.h3(HookPoint::model(HookKind::LnFinalScale), scale);
        let normed = self.ln_final.apply(resid.clone(), scale);
        let logits = normed
            .reshape([(b * t) as i64, -1])
            .matmul(self.w_u.val())
            .reshape([b as i64, t as i64, -1]);
        let logits = match &self.b_u {
            Some(b_u) => logits + b_u.val().unsqueeze::<3>(),
            None => logits,
        };
        let logits = hooks.h3(HookPoint::model(HookKind::Logits), logits);
        Output {
            logits: Some(logits),
            resid,
            cache: hooks.cache,
        }
    }

    fn embed(&self, batch: &TokenBatch, hooks: &mut HookContext) -> Tensor<3> {
        let [b, t] = batch.ids.dims();
        let ids = batch.ids.clone().reshape([b * t]);
        let embed = self
            .w_e
            .val()
            .select(0, ids)
            .reshape([b as i64, t as i64, -1]);
        let mut resid = hooks.h3(HookPoint::model(HookKind::Embed), embed);
        if let Some(w_pos) = &self.w_pos {
            let pos = batch.positions.clone().reshape([b * t]);
            let pos_embed = w_pos.val().select(0, pos).reshape([b as i64, t as i64, -1]);
            resid = resid + hooks.h3(HookPoint::model(HookKind::PosEmbed), pos_embed);
        }
        resid
    }

    fn block_forward(
        &self,
        block: &Block,
        l: usize,
        resid: Tensor<3>,
        mask: &AttentionMask,
        rotary: Option<&RotaryTables>,
        hooks: &mut HookContext,
    ) -> Tensor<3> {
        let hp = |k| HookPoint::layer(l, k);
        let resid = hooks.h3(hp(HookKind::ResidPre), resid);
        let scale = hooks.h3(hp(HookKind::Ln1Scale), block.ln1.scale(&resid));
        let x = block.ln1.apply(resid.clone(), scale);
        let attn_out = block.attn.forward(x, l, mask, rotary, hooks);
        let attn_out = hooks.h3(hp(HookKind::AttnOut), attn_out);
        let (Some(ln2), Some(mlp)) = (&block.ln2, &block.mlp) else {
            return hooks.h3(hp(HookKind::ResidPost), resid + attn_out);
        };
        let resid = hooks.h3(hp(HookKind::ResidMid), resid + attn_out);
        let scale = hooks.h3(hp(HookKind::Ln2Scale), ln2.scale(&resid));
        let x = ln2.apply(resid.clone(), scale);
        let mlp_out = mlp.forward(x, l, hooks);
        let mlp_out = hooks.h3(hp(HookKind::MlpOut), mlp_out);
        hooks.h3(hp(HookKind::ResidPost), resid + mlp_out)
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
/// without a gated MLP, no MLP-side hooks in attention-only models.
pub fn has_hook(cfg: &ModelConfig, kind: HookKind) -> bool {
    match kind {
        HookKind::PosEmbed => cfg.positional == Positional::Learned,
        HookKind::RotQ | HookKind::RotK => cfg.positional != Positional::Learned,
        HookKind::MlpPreLinear => cfg.gated_mlp && !cfg.attn_only,
        HookKind::ResidMid
        | HookKind::Ln2Scale
        | HookKind::MlpPre
        | HookKind::MlpPost
        | HookKind::MlpOut => !cfg.attn_only,
        _ => true,
    }
}

/// `x @ w + b` over the last axis of a `[batch, seq, in]` tensor, as one matrix product.
pub(crate) fn linear(
    x: Tensor<3>,
    w: &Param<Tensor<2>>,
    b: Option<&Param<Tensor<1>>>,
) -> Tensor<3> {
    let [bs, t, d] = x.dims();
    let y = x.reshape([bs * t, d]).matmul(w.val());
    let y = match b {
        Some(b) => y + b.val().unsqueeze::<2>(),
        None => y,
    };
    y.reshape([bs as i64, t as i64, -1])
}
