//! Multi-head attention with grouped-query support and every TransformerLens hook point.

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::activation::softmax;

use crate::cache::HookContext;
use crate::components::rotary::RotaryTables;
use crate::hooks::{HookKind, HookPoint};
use crate::linear;

/// Attention weights in `x @ W` layout, heads concatenated along the output axis:
/// `w_q` is `[d_model, n_heads * d_head]`, `w_k`/`w_v` are `[d_model, n_kv_heads * d_head]`,
/// `w_o` is `[n_heads * d_head, d_model]`.
#[derive(Module, Debug)]
pub struct Attention {
    pub w_q: Param<Tensor<2>>,
    pub b_q: Option<Param<Tensor<1>>>,
    pub w_k: Param<Tensor<2>>,
    pub b_k: Option<Param<Tensor<1>>>,
    pub w_v: Param<Tensor<2>>,
    pub b_v: Option<Param<Tensor<1>>>,
    pub w_o: Param<Tensor<2>>,
    pub b_o: Option<Param<Tensor<1>>>,
    #[module(skip)]
    pub n_heads: usize,
    #[module(skip)]
    pub n_kv_heads: usize,
    #[module(skip)]
    pub d_head: usize,
}

/// Which key slots each query may attend to.
pub struct AttentionMask {
    /// `[batch, 1, q, k]`: true where attention is not allowed because the key lies in the future.
    pub causal: Tensor<4, Bool>,
    /// `[batch, 1, q, k]`: true where the key is padding (and not already causally masked).
    pub padding: Option<Tensor<4, Bool>>,
}

impl AttentionMask {
    /// `key_mask` is `[batch, seq]`, true on real tokens. Queries see keys at or before their own
    /// slot that are real tokens.
    pub fn new(
        batch: usize,
        q_len: usize,
        key_mask: Option<&Tensor<2, Bool>>,
        device: &Device,
    ) -> Self {
        let causal = Tensor::<2, Int>::ones([q_len, q_len], device)
            .triu(1)
            .bool()
            .unsqueeze::<4>()
            .expand([batch, 1, q_len, q_len]);
        let padding = key_mask.map(|m| {
            let pad = m
                .clone()
                .bool_not()
                .reshape([batch, 1, 1, q_len])
                .expand([batch, 1, q_len, q_len]);
            pad.bool_and(causal.clone().bool_not())
        });
        AttentionMask { causal, padding }
    }
}

impl Attention {
    pub(crate) fn forward(
        &self,
        x: Tensor<3>,
        layer: usize,
        mask: &AttentionMask,
        rotary: Option<&RotaryTables>,
        hooks: &mut HookContext,
    ) -> Tensor<3> {
        let hp = |k| HookPoint::layer(layer, k);
        let [b, t, _] = x.dims();
        let (h, hk, dh) = (self.n_heads, self.n_kv_heads, self.d_head);
        let q = linear(x.clone(), &self.w_q, self.b_q.as_ref()).reshape([b, t, h, dh]);
        let k = linear(x.clone(), &self.w_k, self.b_k.as_ref()).reshape([b, t, hk, dh]);
        let v = linear(x, &self.w_v, self.b_v.as_ref()).reshape([b, t, hk, dh]);
        let mut q = hooks.h4(hp(HookKind::Q), q);
        let mut k = hooks.h4(hp(HookKind::K), k);
        let v = hooks.h4(hp(HookKind::V), v);
        if let Some(rot) = rotary {
            q = hooks.h4(hp(HookKind::RotQ), rot.apply(q));
            k = hooks.h4(hp(HookKind::RotK), rot.apply(k));
        }
        let k = repeat_kv(k, h / hk);
        let v = repeat_kv(v, h / hk);
        // [b, h, t, dh]
        let q = q.swap_dims(1, 2);
        let k = k.swap_dims(1, 2);
        let v = v.swap_dims(1, 2);
        let scores = q.matmul(k.transpose()) / (dh as f64).sqrt();
        let mut scores =
            scores.mask_fill(mask.causal.clone().expand([b, h, t, t]), f32::NEG_INFINITY);
        if let Some(pad) = &mask.padding {
            // Finite, so that a padding query with no real key left still has a defined pattern.
            scores = scores.mask_fill(pad.clone().expand([b, h, t, t]), f32::MIN);
        }
        let scores = hooks.h4(hp(HookKind::AttnScores), scores);
        let pattern = hooks.h4(hp(HookKind::Pattern), softmax(scores, 3));
        let z = pattern.matmul(v).swap_dims(1, 2); // [b, t, h, dh]
        let z = hooks.h4(hp(HookKind::Z), z);
        let out = if hooks.touches(hp(HookKind::Result)) {
            let w_o = self.w_o.val().reshape([1, h, dh, self.w_o.dims()[1]]);
            let result = z.swap_dims(1, 2).matmul(w_o).swap_dims(1, 2); // [b, t, h, d_model]
            let result = hooks.h4(hp(HookKind::Result), result);
            result.sum_dim(2).squeeze_dim::<3>(2)
        } else {
            z.reshape([b as i64, t as i64, -1])
                .matmul(self.w_o.val().unsqueeze::<3>())
        };
        match &self.b_o {
            Some(b_o) => out + b_o.val().unsqueeze::<3>(),
            None => out,
        }
    }

    /// `W_Q` per head, `[n_heads, d_model, d_head]` (TransformerLens layout).
    pub fn w_q_heads(&self) -> Tensor<3> {
        split_in_heads(self.w_q.val(), self.n_heads, self.d_head)
    }
    /// `W_K` per query head (key/value heads repeated under GQA), `[n_heads, d_model, d_head]`.
    pub fn w_k_heads(&self) -> Tensor<3> {
        let kv = split_in_heads(self.w_k.val(), self.n_kv_heads, self.d_head);
        repeat_heads(kv, self.n_heads / self.n_kv_heads)
    }
    /// `W_V` per query head, `[n_heads, d_model, d_head]`.
    pub fn w_v_heads(&self) -> Tensor<3> {
        let kv = split_in_heads(self.w_v.val(), self.n_kv_heads, self.d_head);
        repeat_heads(kv, self.n_heads / self.n_kv_heads)
    }
    /// `W_O` per head, `[n_heads, d_head, d_model]`.
    pub fn w_o_heads(&self) -> Tensor<3> {
        let d_model = self.w_o.dims()[1];
        self.w_o.val().reshape([self.n_heads, self.d_head, d_model])
    }
}

/// `[d_model, heads * d_head]` -> `[heads, d_model, d_head]`.
fn split_in_heads(w: Tensor<2>, heads: usize, d_head: usize) -> Tensor<3> {
    let d_model = w.dims()[0];
    w.reshape([d_model, heads, d_head]).swap_dims(0, 1)
}

/// Repeats each head `group` times along axis 0 (head `h` uses key/value head `h / group`).
fn repeat_heads(w: Tensor<3>, group: usize) -> Tensor<3> {
    if group == 1 {
        return w;
    }
    let [hk, a, c] = w.dims();
    w.unsqueeze_dim::<4>(1)
        .expand([hk, group, a, c])
        .reshape([hk * group, a, c])
}

/// `[b, t, hk, dh]` -> `[b, t, hk * group, dh]`, as Hugging Face's `repeat_kv`.
fn repeat_kv(x: Tensor<4>, group: usize) -> Tensor<4> {
    if group == 1 {
        return x;
    }
    let [b, t, hk, dh] = x.dims();
    x.unsqueeze_dim::<5>(3)
        .expand([b, t, hk, group, dh])
        .reshape([b, t, hk * group, dh])
}
