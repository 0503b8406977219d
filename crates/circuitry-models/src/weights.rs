//! Host-side weights under canonical names, and their conversion to and from a [`Transformer`].
//!
//! Canonical names and layouts (`x @ W`, heads concatenated on the head axis):
//! `embed.W_E [d_vocab, d_model]`, `pos_embed.W_pos [n_ctx, d_model]`,
//! `blocks.L.ln1.w|b [d_model]`, `blocks.L.attn.W_Q [d_model, n_heads*d_head]`, `b_Q`,
//! `W_K`/`W_V [d_model, n_kv_heads*d_head]`, `b_K`/`b_V`, `W_O [n_heads*d_head, d_model]`, `b_O`,
//! `blocks.L.ln2.w|b`, `blocks.L.mlp.W_in|W_gate [d_model, d_mlp]`, `b_in|b_gate [d_mlp]`,
//! `W_out [d_mlp, d_model]`, `b_out`, `ln_final.w|b`, `unembed.W_U [d_model, d_vocab]`, `b_U`;
//! post-norms `blocks.L.ln1_post.w|b`, `blocks.L.ln2_post.w|b` and query/key norms
//! `blocks.L.attn.q_norm.w`, `k_norm.w` (`[d_head]` per head, or all heads' width) where the
//! model has them. Norm weights are the factors the forward pass multiplies by (Gemma's
//! `1 + w` already added).
//! Architecture files translate checkpoint names into these; nothing else knows checkpoint names.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::{DType, TensorCreationOptions, bf16, f16};
use circuitry_vocab::WeightDtype;

use crate::components::attention::Attention;
use crate::components::mlp::Mlp;
use crate::components::norm::Norm;
use crate::config::{ModelConfig, NormKind, Positional, QkNorm};
use crate::error::LoadError;
use crate::host::host_values;
use crate::transformer::{Block, Transformer};

/// A dense tensor in host memory: f32 values, or a weight matrix held at half precision
/// ([`HostTensor::held_as`]). Values are read and changed as f32 whatever the storage.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    values: Values,
}

#[derive(Clone, Debug, PartialEq)]
enum Values {
    F32(Vec<f32>),
    Bf16(Vec<bf16>),
    F16(Vec<f16>),
}

impl HostTensor {
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> HostTensor {
        assert_eq!(
            shape.iter().product::<usize>(),
            data.len(),
            "shape {shape:?}"
        );
        HostTensor {
            shape,
            values: Values::F32(data),
        }
    }

    /// The precision the values are held in.
    pub fn dtype(&self) -> WeightDtype {
        match self.values {
            Values::F32(_) => WeightDtype::F32,
            Values::Bf16(_) => WeightDtype::Bf16,
            Values::F16(_) => WeightDtype::F16,
        }
    }

    /// The values, row-major, as f32 (borrowed when held as f32).
    pub fn data(&self) -> Cow<'_, [f32]> {
        match &self.values {
            Values::F32(v) => Cow::Borrowed(v),
            Values::Bf16(v) => Cow::Owned(v.iter().map(|x| x.to_f32()).collect()),
            Values::F16(v) => Cow::Owned(v.iter().map(|x| x.to_f32()).collect()),
        }
    }

    /// The values when held as f32 (activations always are; weight matrices of a half-precision
    /// model are not), borrowed for the tensor's lifetime.
    pub fn as_f32(&self) -> Option<&[f32]> {
        match &self.values {
            Values::F32(v) => Some(v),
            _ => None,
        }
    }

    /// The values as f32, to change in place: a half-precision tensor is widened to f32 first
    /// (and stays f32; [`HostTensor::update`] changes values and keeps the precision).
    pub fn data_mut(&mut self) -> &mut Vec<f32> {
        if !matches!(self.values, Values::F32(_)) {
            self.values = Values::F32(self.data().into_owned());
        }
        match &mut self.values {
            Values::F32(v) => v,
            _ => unreachable!("widened above"),
        }
    }

    /// The values as f32, consuming the tensor.
    pub fn into_data(self) -> Vec<f32> {
        match self.values {
            Values::F32(v) => v,
            _ => self.data().into_owned(),
        }
    }

    /// Changes the tensor through its f32 form and stores the result back at its precision, so
    /// that a half-precision weight is wide only while it changes.
    pub fn update(&mut self, f: impl FnOnce(&mut HostTensor)) {
        let dtype = self.dtype();
        let mut wide = HostTensor::new(self.shape.clone(), std::mem::take(self.data_mut()));
        f(&mut wide);
        *self = wide.held_as(dtype);
    }

    /// The tensor as a model of precision `dtype` holds it: matrices (embeddings, unembedding,
    /// attention and MLP weights) rounded to `dtype`; vectors (norm weights and biases) stay
    /// f32, being small and, in half-precision models, applied in f32.
    pub fn held_as(self, dtype: WeightDtype) -> HostTensor {
        if self.shape.len() < 2 || dtype == self.dtype() {
            return self;
        }
        let shape = self.shape.clone();
        let data = self.data();
        let values = match dtype {
            WeightDtype::F32 => Values::F32(data.into_owned()),
            WeightDtype::Bf16 => Values::Bf16(data.iter().map(|&x| bf16::from_f32(x)).collect()),
            WeightDtype::F16 => Values::F16(data.iter().map(|&x| f16::from_f32(x)).collect()),
        };
        HostTensor { shape, values }
    }

    /// Transposes a matrix (Hugging Face `nn.Linear` `[out, in]` to `x @ W` `[in, out]`), at
    /// the precision it is held in.
    pub fn transposed(&self) -> HostTensor {
        self.transposed_as(self.dtype())
    }

    /// Transposes a matrix into one held as `dtype`, writing only the narrow copy (a tied
    /// unembedding made from an f32 embedding never exists in f32).
    pub fn transposed_as(&self, dtype: WeightDtype) -> HostTensor {
        assert_eq!(self.shape.len(), 2, "transpose needs a matrix");
        let (r, c) = (self.shape[0], self.shape[1]);
        let values = match (&self.values, dtype) {
            (Values::Bf16(v), WeightDtype::Bf16) => Values::Bf16(transpose(v, r, c, |x| x)),
            (Values::F16(v), WeightDtype::F16) => Values::F16(transpose(v, r, c, |x| x)),
            (_, WeightDtype::F32) => Values::F32(transpose(&self.data(), r, c, |x| x)),
            (_, WeightDtype::Bf16) => Values::Bf16(transpose(&self.data(), r, c, bf16::from_f32)),
            (_, WeightDtype::F16) => Values::F16(transpose(&self.data(), r, c, f16::from_f32)),
        };
        HostTensor {
            shape: vec![c, r],
            values,
        }
    }

    /// Rows `[from, to)` of a matrix (one part of a fused projection stored `[out, in]`).
    pub fn rows(&self, from: usize, to: usize) -> HostTensor {
        let c = self.shape[1];
        HostTensor::new(vec![to - from, c], self.data()[from * c..to * c].to_vec())
    }

    /// Columns `[from, to)` of a matrix.
    pub fn columns(&self, from: usize, to: usize) -> HostTensor {
        let (r, c) = (self.shape[0], self.shape[1]);
        let data = self.data();
        let mut out = Vec::with_capacity(r * (to - from));
        for i in 0..r {
            out.extend_from_slice(&data[i * c + from..i * c + to]);
        }
        HostTensor::new(vec![r, to - from], out)
    }

    pub fn to_tensor<const D: usize>(&self, device: &Device) -> Tensor<D> {
        self.clone().into_tensor(device)
    }

    /// The tensor on `device` at the precision it is held in, moving the values.
    pub fn into_tensor<const D: usize>(self, device: &Device) -> Tensor<D> {
        let shape = self.shape;
        let (data, dtype) = match self.values {
            Values::F32(v) => (TensorData::new(v, shape), DType::F32),
            Values::Bf16(v) => (TensorData::new(v, shape), DType::BF16),
            Values::F16(v) => (TensorData::new(v, shape), DType::F16),
        };
        Tensor::from_data(
            data,
            TensorCreationOptions::new(device.clone()).with_dtype(dtype),
        )
    }

    /// A host copy of `t`, at its precision when that is bf16 or f16, else as f32.
    pub fn from_tensor<const D: usize>(t: &Tensor<D>) -> HostTensor {
        let shape = t.dims().to_vec();
        let values = match t.dtype() {
            DType::BF16 => {
                Values::Bf16(t.to_data().as_slice::<bf16>().expect("bf16 data").to_vec())
            }
            DType::F16 => Values::F16(t.to_data().as_slice::<f16>().expect("f16 data").to_vec()),
            _ => Values::F32(host_values(t)),
        };
        HostTensor { shape, values }
    }
}

/// The `[c, r]` transpose of the row-major `[r, c]` matrix `src`, each value through `f`.
fn transpose<S: Copy, D: Copy + Default>(
    src: &[S],
    r: usize,
    c: usize,
    f: impl Fn(S) -> D,
) -> Vec<D> {
    let mut out = vec![D::default(); r * c];
    // Cache-friendly 32x32 tiles: loading a large checkpoint is dominated by transposes.
    const TILE: usize = 32;
    for i0 in (0..r).step_by(TILE) {
        for j0 in (0..c).step_by(TILE) {
            for i in i0..(i0 + TILE).min(r) {
                for j in j0..(j0 + TILE).min(c) {
                    out[j * r + i] = f(src[i * c + j]);
                }
            }
        }
    }
    out
}

/// Weights under canonical names, with the configuration they belong to and their source file.
#[derive(Clone, Debug)]
pub struct Weights {
    pub config: ModelConfig,
    pub tensors: BTreeMap<String, HostTensor>,
    /// Where the weights were read from, for error messages.
    pub source: PathBuf,
}

/// Canonical names of the model-level tensors.
pub mod names {
    pub const W_E: &str = "embed.W_E";
    pub const W_POS: &str = "pos_embed.W_pos";
    pub const LN_FINAL_W: &str = "ln_final.w";
    pub const LN_FINAL_B: &str = "ln_final.b";
    pub const W_U: &str = "unembed.W_U";
    pub const B_U: &str = "unembed.b_U";
}

/// The canonical names of the tensors block `l` can have: the one place they are spelled, used
/// by the architectures' loaders, by [`expected_tensors`], by [`Transformer::from_weights`] and
/// [`Transformer::to_weights`], and by weight processing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockNames {
    pub ln1_w: String,
    pub ln1_b: String,
    pub w_q: String,
    pub b_q: String,
    pub w_k: String,
    pub b_k: String,
    pub w_v: String,
    pub b_v: String,
    pub w_o: String,
    pub b_o: String,
    pub ln1_post_w: String,
    pub ln1_post_b: String,
    pub q_norm_w: String,
    pub k_norm_w: String,
    pub ln2_w: String,
    pub ln2_b: String,
    pub ln2_post_w: String,
    pub ln2_post_b: String,
    pub w_in: String,
    pub b_in: String,
    pub w_gate: String,
    pub b_gate: String,
    pub w_out: String,
    pub b_out: String,
}

impl BlockNames {
    pub fn new(l: usize) -> BlockNames {
        let n = |s: &str| format!("blocks.{l}.{s}");
        BlockNames {
            ln1_w: n("ln1.w"),
            ln1_b: n("ln1.b"),
            w_q: n("attn.W_Q"),
            b_q: n("attn.b_Q"),
            w_k: n("attn.W_K"),
            b_k: n("attn.b_K"),
            w_v: n("attn.W_V"),
            b_v: n("attn.b_V"),
            w_o: n("attn.W_O"),
            b_o: n("attn.b_O"),
            ln1_post_w: n("ln1_post.w"),
            ln1_post_b: n("ln1_post.b"),
            q_norm_w: n("attn.q_norm.w"),
            k_norm_w: n("attn.k_norm.w"),
            ln2_w: n("ln2.w"),
            ln2_b: n("ln2.b"),
            ln2_post_w: n("ln2_post.w"),
            ln2_post_b: n("ln2_post.b"),
            w_in: n("mlp.W_in"),
            b_in: n("mlp.b_in"),
            w_gate: n("mlp.W_gate"),
            b_gate: n("mlp.b_gate"),
            w_out: n("mlp.W_out"),
            b_out: n("mlp.b_out"),
        }
    }

    /// `(W, b)` of the query, key and value maps, in that order.
    pub fn qkv(&self) -> [(&str, &str); 3] {
        [
            (&self.w_q, &self.b_q),
            (&self.w_k, &self.b_k),
            (&self.w_v, &self.b_v),
        ]
    }
}

/// The canonical tensors a configuration needs, with their shapes.
pub fn expected_tensors(cfg: &ModelConfig) -> Vec<(String, Vec<usize>)> {
    let d = cfg.d_model;
    let qd = cfg.n_heads * cfg.d_head;
    let kvd = cfg.n_kv_heads * cfg.d_head;
    let mut out = vec![(names::W_E.to_string(), vec![cfg.d_vocab, d])];
    if cfg.positional == Positional::Learned {
        out.push((names::W_POS.into(), vec![cfg.n_ctx, d]));
    }
    let norm = |out: &mut Vec<(String, Vec<usize>)>, w: &str, b: &str, kind: NormKind| {
        if kind.has_weight() {
            out.push((w.to_string(), vec![d]));
        }
        if kind == NormKind::LayerNorm {
            out.push((b.to_string(), vec![d]));
        }
    };
    let (pre, post) = (cfg.block_norms.pre(), cfg.block_norms.post());
    let kept = cfg.norm.unfolded();
    for l in 0..cfg.n_layers {
        let n = BlockNames::new(l);
        if pre {
            norm(&mut out, &n.ln1_w, &n.ln1_b, cfg.norm);
        }
        match cfg.qk_norm {
            QkNorm::None => {}
            QkNorm::PerHead => {
                out.push((n.q_norm_w.clone(), vec![cfg.d_head]));
                out.push((n.k_norm_w.clone(), vec![cfg.d_head]));
            }
            QkNorm::Whole => {
                out.push((n.q_norm_w.clone(), vec![qd]));
                out.push((n.k_norm_w.clone(), vec![kvd]));
            }
        }
        if post {
            norm(&mut out, &n.ln1_post_w, &n.ln1_post_b, kept);
        }
        out.push((n.w_q.clone(), vec![d, qd]));
        out.push((n.w_k.clone(), vec![d, kvd]));
        out.push((n.w_v.clone(), vec![d, kvd]));
        out.push((n.w_o.clone(), vec![qd, d]));
        if cfg.qkv_bias {
            out.push((n.b_q.clone(), vec![qd]));
            out.push((n.b_k.clone(), vec![kvd]));
            out.push((n.b_v.clone(), vec![kvd]));
        }
        if cfg.attn_out_bias {
            out.push((n.b_o.clone(), vec![d]));
        }
        if cfg.attn_only {
            continue;
        }
        if pre {
            norm(&mut out, &n.ln2_w, &n.ln2_b, cfg.norm);
        }
        if post {
            norm(&mut out, &n.ln2_post_w, &n.ln2_post_b, kept);
        }
        out.push((n.w_in.clone(), vec![d, cfg.d_mlp]));
        if cfg.gated_mlp {
            out.push((n.w_gate.clone(), vec![d, cfg.d_mlp]));
        }
        out.push((n.w_out.clone(), vec![cfg.d_mlp, d]));
        if cfg.mlp_bias {
            out.push((n.b_in.clone(), vec![cfg.d_mlp]));
            if cfg.gated_mlp {
                out.push((n.b_gate.clone(), vec![cfg.d_mlp]));
            }
            out.push((n.b_out.clone(), vec![d]));
        }
    }
    norm(&mut out, names::LN_FINAL_W, names::LN_FINAL_B, cfg.norm);
    out.push((names::W_U.into(), vec![d, cfg.d_vocab]));
    if cfg.unembed_bias {
        out.push((names::B_U.into(), vec![cfg.d_vocab]));
    }
    out
}

impl Weights {
    /// Checks that every tensor the configuration needs is present with the right shape.
    pub fn check(&self) -> Result<(), LoadError> {
        for (name, shape) in expected_tensors(&self.config) {
            match self.tensors.get(&name) {
                None => {
                    return Err(LoadError::MissingTensor {
                        path: self.source.clone(),
                        name,
                        expected: shape,
                    });
                }
                Some(t) if t.shape != shape => {
                    return Err(LoadError::ShapeMismatch {
                        path: self.source.clone(),
                        name,
                        expected: shape,
                        found: t.shape.clone(),
                    });
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Checks that every value is finite: one NaN or infinite weight makes every output NaN.
    /// Run once per checkpoint read (the loaders' [`Weights::check`] covers the shapes); a scan
    /// of every value is too much for each model built from weights already checked.
    pub(crate) fn check_finite(&self) -> Result<(), LoadError> {
        for (name, t) in &self.tensors {
            let data = t.data();
            if let Some(index) = data.iter().position(|x| !x.is_finite()) {
                return Err(LoadError::NonFinite {
                    path: self.source.clone(),
                    name: name.clone(),
                    index,
                    value: data[index],
                });
            }
        }
        Ok(())
    }
}

/// Moves checked canonical tensors onto a device as parameters, each at the precision it is
/// held in.
struct Parameters<'a> {
    tensors: BTreeMap<String, HostTensor>,
    device: &'a Device,
}

impl Parameters<'_> {
    fn optional<const D: usize>(&mut self, name: &str) -> Option<Param<Tensor<D>>> {
        self.tensors
            .remove(name)
            .map(|t| Param::from_tensor(t.into_tensor::<D>(self.device)))
    }

    fn required<const D: usize>(&mut self, name: &str) -> Param<Tensor<D>> {
        self.optional(name).expect("checked weights")
    }

    fn norm(&mut self, kind: NormKind, eps: f64, w: &str, b: &str) -> Norm {
        Norm {
            w: self.optional(w),
            b: self.optional(b),
            kind,
            eps,
        }
    }
}

impl Transformer {
    /// Builds a model on `device` from checked canonical weights, moving each tensor there at
    /// the precision it is held in (see [`HostTensor::held_as`]).
    pub fn from_weights(weights: Weights, device: &Device) -> Result<Transformer, LoadError> {
        weights.check()?;
        let cfg = weights.config;
        let mut p = Parameters {
            tensors: weights.tensors,
            device,
        };
        let eps = cfg.norm_eps;
        let kept = cfg.norm.unfolded();
        let (pre, post, mlp) = (
            cfg.block_norms.pre(),
            cfg.block_norms.post(),
            !cfg.attn_only,
        );
        let qk = cfg.qk_norm != QkNorm::None;
        let mut blocks = Vec::with_capacity(cfg.n_layers);
        for l in 0..cfg.n_layers {
            let n = BlockNames::new(l);
            let ln1 = pre.then(|| p.norm(cfg.norm, eps, &n.ln1_w, &n.ln1_b));
            let ln1_post = post.then(|| p.norm(kept, eps, &n.ln1_post_w, &n.ln1_post_b));
            let attn = Attention {
                w_q: p.required(&n.w_q),
                b_q: p.optional(&n.b_q),
                w_k: p.required(&n.w_k),
                b_k: p.optional(&n.b_k),
                w_v: p.required(&n.w_v),
                b_v: p.optional(&n.b_v),
                w_o: p.required(&n.w_o),
                b_o: p.optional(&n.b_o),
                q_norm: qk.then(|| p.norm(NormKind::RmsNorm, eps, &n.q_norm_w, "")),
                k_norm: qk.then(|| p.norm(NormKind::RmsNorm, eps, &n.k_norm_w, "")),
                qk_norm: cfg.qk_norm,
                divisor: cfg.attn_divisor(),
                softcap: cfg.attn_softcap,
                n_heads: cfg.n_heads,
                n_kv_heads: cfg.n_kv_heads,
                d_head: cfg.d_head,
            };
            let ln2 = (mlp && pre).then(|| p.norm(cfg.norm, eps, &n.ln2_w, &n.ln2_b));
            let ln2_post = (mlp && post).then(|| p.norm(kept, eps, &n.ln2_post_w, &n.ln2_post_b));
            let mlp = mlp.then(|| Mlp {
                w_in: p.required(&n.w_in),
                b_in: p.optional(&n.b_in),
                w_gate: p.optional(&n.w_gate),
                b_gate: p.optional(&n.b_gate),
                w_out: p.required(&n.w_out),
                b_out: p.optional(&n.b_out),
                act_fn: cfg.act_fn,
            });
            blocks.push(Block {
                ln1,
                ln1_post,
                attn,
                ln2,
                ln2_post,
                parallel: cfg.parallel_attn_mlp,
                mlp,
            });
        }
        Ok(Transformer {
            w_e: p.required(names::W_E),
            w_pos: p.optional(names::W_POS),
            blocks,
            ln_final: p.norm(cfg.norm, eps, names::LN_FINAL_W, names::LN_FINAL_B),
            w_u: p.required(names::W_U),
            b_u: p.optional(names::B_U),
            config: cfg,
        })
    }

    /// The model's weights under canonical names (host copies).
    pub fn to_weights(&self, source: &Path) -> Weights {
        let mut t = BTreeMap::new();
        let mut put1 = |name: &str, p: &Option<Param<Tensor<1>>>| {
            if let Some(p) = p {
                t.insert(name.to_string(), HostTensor::from_tensor(&p.val()));
            }
        };
        let mut tensors2: Vec<(String, &Param<Tensor<2>>)> = vec![(names::W_E.into(), &self.w_e)];
        if let Some(w_pos) = &self.w_pos {
            tensors2.push((names::W_POS.into(), w_pos));
        }
        for (l, block) in self.blocks.iter().enumerate() {
            let n = BlockNames::new(l);
            for (norm, w, b) in [
                (&block.ln1, &n.ln1_w, &n.ln1_b),
                (&block.ln1_post, &n.ln1_post_w, &n.ln1_post_b),
                (&block.ln2, &n.ln2_w, &n.ln2_b),
                (&block.ln2_post, &n.ln2_post_w, &n.ln2_post_b),
            ] {
                if let Some(norm) = norm {
                    put1(w, &norm.w);
                    put1(b, &norm.b);
                }
            }
            let a = &block.attn;
            if let (Some(q), Some(k)) = (&a.q_norm, &a.k_norm) {
                put1(&n.q_norm_w, &q.w);
                put1(&n.k_norm_w, &k.w);
            }
            put1(&n.b_q, &a.b_q);
            put1(&n.b_k, &a.b_k);
            put1(&n.b_v, &a.b_v);
            put1(&n.b_o, &a.b_o);
            tensors2.extend([
                (n.w_q.clone(), &a.w_q),
                (n.w_k.clone(), &a.w_k),
                (n.w_v.clone(), &a.w_v),
                (n.w_o.clone(), &a.w_o),
            ]);
            let Some(m) = &block.mlp else {
                continue;
            };
            put1(&n.b_in, &m.b_in);
            put1(&n.b_gate, &m.b_gate);
            put1(&n.b_out, &m.b_out);
            tensors2.push((n.w_in.clone(), &m.w_in));
            if let Some(w_gate) = &m.w_gate {
                tensors2.push((n.w_gate.clone(), w_gate));
            }
            tensors2.push((n.w_out.clone(), &m.w_out));
        }
        put1(names::LN_FINAL_W, &self.ln_final.w);
        put1(names::LN_FINAL_B, &self.ln_final.b);
        put1(names::B_U, &self.b_u);
        tensors2.push((names::W_U.into(), &self.w_u));
        for (name, p) in tensors2 {
            t.insert(name, HostTensor::from_tensor(&p.val()));
        }
        Weights {
            config: self.config.clone(),
            tensors: t,
            source: source.to_path_buf(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix() -> HostTensor {
        // 1/3 and 1 + 2^-10 are not bf16 values; 0.5 and -2 are.
        HostTensor::new(vec![2, 2], vec![1.0 / 3.0, 0.5, -2.0, 1.0 + 1.0 / 1024.0])
    }

    #[test]
    fn vectors_stay_f32_and_matrices_round() {
        let v = HostTensor::new(vec![2], vec![1.0 / 3.0, 0.1]);
        assert_eq!(v.clone().held_as(WeightDtype::Bf16), v);
        let m = matrix().held_as(WeightDtype::Bf16);
        assert_eq!(m.dtype(), WeightDtype::Bf16);
        assert_eq!(*m.data(), [0.333_984_38, 0.5, -2.0, 1.0]);
        assert!(m.as_f32().is_none());
    }

    #[test]
    fn updates_keep_the_precision_and_round_once() {
        let mut m = matrix().held_as(WeightDtype::Bf16);
        m.update(|t| t.data_mut().iter_mut().for_each(|x| *x *= 2.0));
        assert_eq!(m.dtype(), WeightDtype::Bf16);
        assert_eq!(*m.data(), [0.667_968_75, 1.0, -4.0, 2.0]);
    }

    #[test]
    fn transposes_at_either_precision() {
        let m = matrix();
        let narrow = m.transposed_as(WeightDtype::Bf16);
        assert_eq!(narrow.shape, [2, 2]);
        assert_eq!(narrow.dtype(), WeightDtype::Bf16);
        assert_eq!(*narrow.data(), [0.333_984_38, -2.0, 0.5, 1.0]);
        assert_eq!(narrow.transposed().dtype(), WeightDtype::Bf16);
        assert_eq!(narrow.transposed(), m.held_as(WeightDtype::Bf16));
        let wide = HostTensor::new(vec![2, 3], (0..6).map(|x| x as f32).collect()).transposed();
        assert_eq!(*wide.data(), [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    }
}
