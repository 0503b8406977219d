//! Patched passes that recompute only what a residual-stream patch can change.
//!
//! A patch of `hook_resid_pre` of block `l` at slot `s` cannot change anything before block `l`
//! (prefix reuse across layers) nor any slot before `s` at any layer (attention is causal). So
//! the patched pass runs blocks `l..` on slots `s..` only, its queries attending to the
//! destination's cached keys and values for slots `..s`; the residual stream of slots `..s` is
//! the destination's. This is the transformer block of `circuitry_models` (same operations in
//! the same order, no hooks) with a key/value prefix, checked against the model's own forward
//! pass by the patching tests.

use circuitry_models::burn::prelude::*;
use circuitry_models::burn::tensor::activation::softmax;
use circuitry_models::components::attention::Attention;
use circuitry_models::components::mlp::apply_act;
use circuitry_models::components::rotary::RotaryTables;
use circuitry_models::transformer::Block;
use circuitry_models::{HookKind, HookPoint, Positional, TokenBatch, Transformer};

/// The hooks whose values the suffix pass reuses: the keys as attention sees them (after rotary
/// embeddings, where the model has them) and the values, of every layer.
pub(crate) fn kv_hooks(model: &Transformer) -> Vec<HookPoint> {
    let k = match model.config.positional {
        Positional::Learned => HookKind::K,
        _ => HookKind::RotK,
    };
    (0..model.config.n_layers)
        .flat_map(|l| [HookPoint::layer(l, k), HookPoint::layer(l, HookKind::V)])
        .collect()
}

/// Keys and values of the destination run, per layer, `[rows, seq, n_kv_heads, d_head]`.
pub(crate) struct KvCache {
    pub k: Vec<Tensor<4>>,
    pub v: Vec<Tensor<4>>,
}

/// `x @ w + b` over the last axis, as `circuitry_models`' `linear`.
fn linear(x: Tensor<3>, w: &Tensor<2>, b: Option<Tensor<1>>) -> Tensor<3> {
    let [bs, t, d] = x.dims();
    let y = x.reshape([bs * t, d]).matmul(w.clone());
    let y = match b {
        Some(b) => y + b.unsqueeze::<2>(),
        None => y,
    };
    y.reshape([bs as i64, t as i64, -1])
}

/// `[b, t, hk, dh]` -> `[b, t, hk * group, dh]`.
fn repeat_kv(x: Tensor<4>, group: usize) -> Tensor<4> {
    if group == 1 {
        return x;
    }
    let [b, t, hk, dh] = x.dims();
    x.unsqueeze_dim::<5>(3)
        .expand([b, t, hk, group, dh])
        .reshape([b, t, hk * group, dh])
}

/// Masks for queries at slots `s..t` against keys at slots `0..t`: `(causal, padding)`, each
/// `[rows, 1, t - s, t]`, as `AttentionMask` builds them for the full sequence.
fn masks(
    batch: &TokenBatch,
    rows: usize,
    s: usize,
    device: &Device,
) -> (Tensor<4, Bool>, Option<Tensor<4, Bool>>) {
    let t = batch.seq_len;
    let ts = t - s;
    let causal: Vec<bool> = (0..ts)
        .flat_map(|i| (0..t).map(move |j| j > s + i))
        .collect();
    let causal = Tensor::<2, Bool>::from_data(TensorData::new(causal, [ts, t]), device)
        .unsqueeze::<4>()
        .expand([rows, 1, ts, t]);
    let padding = batch.key_mask.as_ref().map(|m| {
        let pad = m
            .clone()
            .bool_not()
            .reshape([rows, 1, 1, t])
            .expand([rows, 1, ts, t]);
        pad.bool_and(causal.clone().bool_not())
    });
    (causal, padding)
}

#[allow(clippy::too_many_arguments)]
fn attention(
    attn: &Attention,
    x: Tensor<3>,
    k_prefix: Tensor<4>,
    v_prefix: Tensor<4>,
    causal: &Tensor<4, Bool>,
    padding: Option<&Tensor<4, Bool>>,
    rotary: Option<&RotaryTables>,
) -> Tensor<3> {
    let [b, ts, _] = x.dims();
    let (h, hk, dh) = (attn.n_heads, attn.n_kv_heads, attn.d_head);
    let val =
        |p: &Option<circuitry_models::burn::module::Param<Tensor<1>>>| p.as_ref().map(|p| p.val());
    let mut q = linear(x.clone(), &attn.w_q.val(), val(&attn.b_q)).reshape([b, ts, h, dh]);
    let mut k = linear(x.clone(), &attn.w_k.val(), val(&attn.b_k)).reshape([b, ts, hk, dh]);
    let v = linear(x, &attn.w_v.val(), val(&attn.b_v)).reshape([b, ts, hk, dh]);
    if let Some(rot) = rotary {
        q = rot.apply(q);
        k = rot.apply(k);
    }
    let k = Tensor::cat(vec![k_prefix, k], 1);
    let v = Tensor::cat(vec![v_prefix, v], 1);
    let t = k.dims()[1];
    let k = repeat_kv(k, h / hk).swap_dims(1, 2);
    let v = repeat_kv(v, h / hk).swap_dims(1, 2);
    let q = q.swap_dims(1, 2);
    let scores = q.matmul(k.transpose()) / (dh as f64).sqrt();
    let mut scores = scores.mask_fill(causal.clone().expand([b, h, ts, t]), f32::NEG_INFINITY);
    if let Some(pad) = padding {
        scores = scores.mask_fill(pad.clone().expand([b, h, ts, t]), f32::MIN);
    }
    let z = softmax(scores, 3).matmul(v).swap_dims(1, 2);
    let out = z
        .reshape([b as i64, ts as i64, -1])
        .matmul(attn.w_o.val().unsqueeze::<3>());
    match &attn.b_o {
        Some(b_o) => out + b_o.val().unsqueeze::<3>(),
        None => out,
    }
}

#[allow(clippy::too_many_arguments)]
fn block(
    block: &Block,
    resid: Tensor<3>,
    k_prefix: Tensor<4>,
    v_prefix: Tensor<4>,
    causal: &Tensor<4, Bool>,
    padding: Option<&Tensor<4, Bool>>,
    rotary: Option<&RotaryTables>,
) -> Tensor<3> {
    let scale = block.ln1.scale(&resid);
    let x = block.ln1.apply(resid.clone(), scale);
    let attn_out = attention(&block.attn, x, k_prefix, v_prefix, causal, padding, rotary);
    let (Some(ln2), Some(mlp)) = (&block.ln2, &block.mlp) else {
        return resid + attn_out;
    };
    let resid = resid + attn_out;
    let scale = ln2.scale(&resid);
    let x = ln2.apply(resid.clone(), scale);
    let val =
        |p: &Option<circuitry_models::burn::module::Param<Tensor<1>>>| p.as_ref().map(|p| p.val());
    let post = match &mlp.w_gate {
        Some(w_gate) => {
            let pre = linear(x.clone(), &w_gate.val(), val(&mlp.b_gate));
            let pre_linear = linear(x, &mlp.w_in.val(), val(&mlp.b_in));
            apply_act(mlp.act_fn, pre) * pre_linear
        }
        None => apply_act(mlp.act_fn, linear(x, &mlp.w_in.val(), val(&mlp.b_in))),
    };
    resid + linear(post, &mlp.w_out.val(), val(&mlp.b_out))
}

/// Runs blocks `start..` on slots `s..` of a `rows`-row batch whose input there is `x`
/// (`[rows, seq - s, d_model]`), with keys and values of slots `..s` from `kv` (rows of the
/// destination batch, repeated `rows / kv_rows` times). Returns the residual stream after the
/// last block on slots `s..`.
pub(crate) fn forward(
    model: &Transformer,
    batch: &TokenBatch,
    kv: &KvCache,
    start: usize,
    s: usize,
    x: Tensor<3>,
) -> Tensor<3> {
    let rows = batch.batch_size();
    let n = model.config.n_layers;
    if start >= n {
        return x;
    }
    let device = x.device();
    let t = batch.seq_len;
    let (causal, padding) = masks(batch, rows, s, &device);
    let rotary = match model.config.positional {
        Positional::Rotary { theta, dim } => {
            let positions = batch.positions.clone().slice([0..rows, s..t]);
            Some(RotaryTables::new(&positions, batch.max_len(), dim, theta))
        }
        _ => None,
    };
    let kv_rows = kv.k[0].dims()[0];
    let times = rows / kv_rows;
    let prefix = |x: &Tensor<4>| {
        let [b, _, hk, dh] = x.dims();
        let p = x.clone().slice([0..b, 0..s, 0..hk, 0..dh]);
        if times > 1 { p.repeat_dim(0, times) } else { p }
    };
    let mut resid = x;
    for l in start..n {
        resid = block(
            &model.blocks[l],
            resid,
            prefix(&kv.k[l]),
            prefix(&kv.v[l]),
            &causal,
            padding.as_ref(),
            rotary.as_ref(),
        );
    }
    resid
}
