//! Multi-head attention with grouped-query support and every TransformerLens hook point.

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::activation::softmax;

use crate::cache::HookContext;
use crate::components::norm::Norm;
use crate::components::rotary::RotaryTables;
use crate::config::QkNorm;
use crate::hooks::{HookKind, HookPoint};
use crate::{linear, weight};

/// Attention weights in `x @ W` layout, heads concatenated along the output axis:
/// `w_q` is `[d_model, n_heads * d_head]`, `w_k`/`w_v` are `[d_model, n_kv_heads * d_head]`,
/// `w_o` is `[n_heads * d_head, d_model]`.
///
/// The fields are private: the model's own code builds ([`crate::Transformer::from_weights`])
/// and runs them; other crates read the weights through the accessors below.
#[derive(Module, Debug)]
pub struct Attention {
    pub(crate) w_q: Param<Tensor<2>>,
    pub(crate) b_q: Option<Param<Tensor<1>>>,
    pub(crate) w_k: Param<Tensor<2>>,
    pub(crate) b_k: Option<Param<Tensor<1>>>,
    pub(crate) w_v: Param<Tensor<2>>,
    pub(crate) b_v: Option<Param<Tensor<1>>>,
    pub(crate) w_o: Param<Tensor<2>>,
    pub(crate) b_o: Option<Param<Tensor<1>>>,
    /// Query and key norms, with `qk_norm`.
    pub(crate) q_norm: Option<Norm>,
    pub(crate) k_norm: Option<Norm>,
    #[module(skip)]
    pub(crate) qk_norm: QkNorm,
    /// What scores are divided by (`sqrt(d_head)` unless the model says otherwise).
    #[module(skip)]
    pub(crate) divisor: f64,
    #[module(skip)]
    pub(crate) softcap: Option<f64>,
    #[module(skip)]
    pub(crate) n_heads: usize,
    #[module(skip)]
    pub(crate) n_kv_heads: usize,
    #[module(skip)]
    pub(crate) d_head: usize,
}

/// Keys and values of one block's attention for some slots of a batch,
/// `[batch, slots, n_kv_heads, d_head]` each. The keys are as attention uses them: after the
/// rotary embedding where the model has one (`attn.hook_rot_k`), `attn.hook_k` otherwise; the
/// values are `attn.hook_v`. Heads are not yet repeated for grouped-query attention.
#[derive(Clone, Debug)]
pub struct LayerKv {
    pub k: Tensor<4>,
    pub v: Tensor<4>,
}

/// Which key slots each query may attend to.
pub struct AttentionMask {
    /// `[batch, 1, q, k]`: true where attention is not allowed because the key lies in the future.
    pub causal: Tensor<4, Bool>,
    /// `[batch, 1, q, k]`: true where the key is padding (and not already causally masked).
    pub padding: Option<Tensor<4, Bool>>,
}

impl AttentionMask {
    /// Masks for the queries at slots `offset..key_len` against the keys at slots `0..key_len`
    /// (`offset` is the length of a key/value prefix; 0 without one). `key_mask` is
    /// `[batch, key_len]`, true on real tokens. A query sees the keys at or before its own slot
    /// that are real tokens, and with a sliding `window`, only the `window` slots ending at its
    /// own (a row's real tokens are contiguous, so slots count positions).
    pub fn new(
        batch: usize,
        offset: usize,
        key_len: usize,
        key_mask: Option<&Tensor<2, Bool>>,
        window: Option<usize>,
        device: &Device,
    ) -> Self {
        assert!(
            offset <= key_len,
            "query offset {offset} beyond {key_len} keys"
        );
        let q_len = key_len - offset;
        // Query `i` (slot `offset + i`) may not see key `j` when `j - i > offset`.
        let mut causal = Tensor::<2, Int>::ones([q_len, key_len], device)
            .triu(offset as i64 + 1)
            .bool();
        if let Some(w) = window {
            // ...nor key `j` when `j <= i + offset - w` (Hugging Face Mistral's mask).
            let outside = Tensor::<2, Int>::ones([q_len, key_len], device)
                .tril(offset as i64 - w as i64)
                .bool();
            causal = causal.bool_or(outside);
        }
        let causal = causal.unsqueeze::<4>().expand([batch, 1, q_len, key_len]);
        let padding = key_mask.map(|m| {
            let pad = m
                .clone()
                .bool_not()
                .reshape([batch, 1, 1, key_len])
                .expand([batch, 1, q_len, key_len]);
            pad.bool_and(causal.clone().bool_not())
        });
        AttentionMask { causal, padding }
    }
}

/// What attention at one layer reads besides its input: the masks, the rotary tables and the
/// layer's key/value prefix, and whether to return its keys and values.
#[derive(Clone, Copy)]
pub(crate) struct AttentionInputs<'a> {
    pub(crate) mask: &'a AttentionMask,
    pub(crate) rotary: Option<&'a RotaryTables>,
    pub(crate) past: Option<&'a LayerKv>,
    pub(crate) keep_kv: bool,
}

impl Attention {
    /// Attention of the queries of `x`'s slots to the keys of the prefix's slots followed by
    /// those of `x`. Returns the output and, with `keep_kv`, the keys and values of all those
    /// slots.
    pub(crate) fn forward(
        &self,
        x: Tensor<3>,
        layer: usize,
        inputs: AttentionInputs,
        hooks: &mut HookContext,
    ) -> (Tensor<3>, Option<LayerKv>) {
        let AttentionInputs {
            mask,
            rotary,
            past,
            keep_kv,
        } = inputs;
        let hp = |k| HookPoint::layer(layer, k);
        let [b, t, _] = x.dims();
        let (h, hk, dh) = (self.n_heads, self.n_kv_heads, self.d_head);
        let q = linear(x.clone(), &self.w_q, self.b_q.as_ref()).reshape([b, t, h, dh]);
        let k = linear(x.clone(), &self.w_k, self.b_k.as_ref()).reshape([b, t, hk, dh]);
        let v = linear(x, &self.w_v, self.b_v.as_ref()).reshape([b, t, hk, dh]);
        let mut q = hooks.h4(hp(HookKind::Q), q);
        let mut k = hooks.h4(hp(HookKind::K), k);
        let v = hooks.h4(hp(HookKind::V), v);
        if let (Some(q_norm), Some(k_norm)) = (&self.q_norm, &self.k_norm) {
            q = hooks.h4(hp(HookKind::QNormed), self.normalise(q_norm, q));
            k = hooks.h4(hp(HookKind::KNormed), self.normalise(k_norm, k));
        }
        if let Some(rot) = rotary {
            q = hooks.h4(hp(HookKind::RotQ), rot.apply(q));
            k = hooks.h4(hp(HookKind::RotK), rot.apply(k));
        }
        let (k, v) = match past {
            Some(p) => (
                Tensor::cat(vec![p.k.clone(), k], 1),
                Tensor::cat(vec![p.v.clone(), v], 1),
            ),
            None => (k, v),
        };
        let kv = keep_kv.then(|| LayerKv {
            k: k.clone(),
            v: v.clone(),
        });
        let tk = k.dims()[1];
        let k = repeat_kv(k, h / hk);
        let v = repeat_kv(v, h / hk);
        // [b, h, t, dh] (keys and values: [b, h, tk, dh])
        let q = q.swap_dims(1, 2);
        let k = k.swap_dims(1, 2);
        let v = v.swap_dims(1, 2);
        let mut scores = q.matmul(k.transpose()) / self.divisor;
        if let Some(cap) = self.softcap {
            scores = scores.div_scalar(cap).tanh().mul_scalar(cap);
        }
        let mut scores =
            scores.mask_fill(mask.causal.clone().expand([b, h, t, tk]), f32::NEG_INFINITY);
        if let Some(pad) = &mask.padding {
            // Finite, so that a padding query with no real key left still has a defined pattern.
            scores = scores.mask_fill(pad.clone().expand([b, h, t, tk]), f32::MIN);
        }
        let scores = hooks.h4(hp(HookKind::AttnScores), scores);
        let pattern = hooks.h4(hp(HookKind::Pattern), softmax(scores, 3));
        let z = pattern.matmul(v).swap_dims(1, 2); // [b, t, h, dh]
        let z = hooks.h4(hp(HookKind::Z), z);
        let out = if hooks.touches(hp(HookKind::Result)) {
            let w_o = weight(&self.w_o).reshape([1, h, dh, self.w_o.dims()[1]]);
            let result = z.swap_dims(1, 2).matmul(w_o).swap_dims(1, 2); // [b, t, h, d_model]
            let result = hooks.h4(hp(HookKind::Result), result);
            result.sum_dim(2).squeeze_dim::<3>(2)
        } else {
            z.reshape([b as i64, t as i64, -1])
                .matmul(weight(&self.w_o).unsqueeze::<3>())
        };
        let out = match &self.b_o {
            Some(b_o) => out + b_o.val().unsqueeze::<3>(),
            None => out,
        };
        (out, kv)
    }

    /// `x` (`[batch, pos, heads, d_head]`) through a query or key norm: over each head's
    /// features, or over all heads' together.
    fn normalise(&self, norm: &Norm, x: Tensor<4>) -> Tensor<4> {
        let [b, t, h, dh] = x.dims();
        let x = match self.qk_norm {
            QkNorm::Whole => x.reshape([b, t, h * dh]),
            QkNorm::PerHead | QkNorm::None => x.reshape([b, t * h, dh]),
        };
        let scale = norm.scale(&x);
        norm.apply(x, scale).reshape([b, t, h, dh])
    }

    /// The query norm (models with `qk_norm`): over `d_head` or `n_heads * d_head` features.
    pub fn q_norm(&self) -> Option<&Norm> {
        self.q_norm.as_ref()
    }
    /// The key norm (models with `qk_norm`).
    pub fn k_norm(&self) -> Option<&Norm> {
        self.k_norm.as_ref()
    }
    /// What attention scores are divided by.
    pub fn divisor(&self) -> f64 {
        self.divisor
    }

    /// `W_Q`, `[d_model, n_heads * d_head]`.
    pub fn w_q(&self) -> Tensor<2> {
        weight(&self.w_q)
    }
    /// `b_Q`, `[n_heads * d_head]`.
    pub fn b_q(&self) -> Option<Tensor<1>> {
        self.b_q.as_ref().map(Param::val)
    }
    /// `W_K`, `[d_model, n_kv_heads * d_head]`.
    pub fn w_k(&self) -> Tensor<2> {
        weight(&self.w_k)
    }
    /// `b_K`, `[n_kv_heads * d_head]`.
    pub fn b_k(&self) -> Option<Tensor<1>> {
        self.b_k.as_ref().map(Param::val)
    }
    /// `W_V`, `[d_model, n_kv_heads * d_head]`.
    pub fn w_v(&self) -> Tensor<2> {
        weight(&self.w_v)
    }
    /// `b_V`, `[n_kv_heads * d_head]`.
    pub fn b_v(&self) -> Option<Tensor<1>> {
        self.b_v.as_ref().map(Param::val)
    }
    /// `W_O`, `[n_heads * d_head, d_model]`.
    pub fn w_o(&self) -> Tensor<2> {
        weight(&self.w_o)
    }
    /// `b_O`, `[d_model]`.
    pub fn b_o(&self) -> Option<Tensor<1>> {
        self.b_o.as_ref().map(Param::val)
    }
    pub fn n_heads(&self) -> usize {
        self.n_heads
    }
    pub fn n_kv_heads(&self) -> usize {
        self.n_kv_heads
    }
    pub fn d_head(&self) -> usize {
        self.d_head
    }

    /// `W_Q` per head, `[n_heads, d_model, d_head]` (TransformerLens layout).
    pub fn w_q_heads(&self) -> Tensor<3> {
        split_in_heads(weight(&self.w_q), self.n_heads, self.d_head)
    }
    /// `W_K` per query head (key/value heads repeated under GQA), `[n_heads, d_model, d_head]`.
    pub fn w_k_heads(&self) -> Tensor<3> {
        let kv = split_in_heads(weight(&self.w_k), self.n_kv_heads, self.d_head);
        repeat_heads(kv, self.n_heads / self.n_kv_heads)
    }
    /// `W_V` per query head, `[n_heads, d_model, d_head]`.
    pub fn w_v_heads(&self) -> Tensor<3> {
        let kv = split_in_heads(weight(&self.w_v), self.n_kv_heads, self.d_head);
        repeat_heads(kv, self.n_heads / self.n_kv_heads)
    }
    /// `W_O` per head, `[n_heads, d_head, d_model]`.
    pub fn w_o_heads(&self) -> Tensor<3> {
        let d_model = self.w_o.dims()[1];
        weight(&self.w_o).reshape([self.n_heads, self.d_head, d_model])
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
