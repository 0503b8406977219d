//! Host-side weights under canonical names, and their conversion to and from a [`Transformer`].
//!
//! Canonical names and layouts (`x @ W`, heads concatenated on the head axis):
//! `embed.W_E [d_vocab, d_model]`, `pos_embed.W_pos [n_ctx, d_model]`,
//! `blocks.L.ln1.w|b [d_model]`, `blocks.L.attn.W_Q [d_model, n_heads*d_head]`, `b_Q`,
//! `W_K`/`W_V [d_model, n_kv_heads*d_head]`, `b_K`/`b_V`, `W_O [n_heads*d_head, d_model]`, `b_O`,
//! `blocks.L.ln2.w|b`, `blocks.L.mlp.W_in|W_gate [d_model, d_mlp]`, `b_in|b_gate [d_mlp]`,
//! `W_out [d_mlp, d_model]`, `b_out`, `ln_final.w|b`, `unembed.W_U [d_model, d_vocab]`, `b_U`.
//! Architecture files translate checkpoint names into these; nothing else knows checkpoint names.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::module::Param;
use burn::prelude::*;

use crate::components::attention::Attention;
use crate::components::mlp::Mlp;
use crate::components::norm::Norm;
use crate::config::{ModelConfig, NormKind, Positional};
use crate::error::LoadError;
use crate::transformer::{Block, Transformer};

/// A dense f32 tensor in host memory.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl HostTensor {
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> HostTensor {
        assert_eq!(
            shape.iter().product::<usize>(),
            data.len(),
            "shape {shape:?}"
        );
        HostTensor { shape, data }
    }

    /// Transposes a matrix (Hugging Face `nn.Linear` `[out, in]` to `x @ W` `[in, out]`).
    pub fn transposed(&self) -> HostTensor {
        assert_eq!(self.shape.len(), 2, "transpose needs a matrix");
        let (r, c) = (self.shape[0], self.shape[1]);
        let mut out = vec![0f32; r * c];
        // Cache-friendly 32x32 tiles: loading a large checkpoint is dominated by transposes.
        const TILE: usize = 32;
        for i0 in (0..r).step_by(TILE) {
            for j0 in (0..c).step_by(TILE) {
                for i in i0..(i0 + TILE).min(r) {
                    for j in j0..(j0 + TILE).min(c) {
                        out[j * r + i] = self.data[i * c + j];
                    }
                }
            }
        }
        HostTensor::new(vec![c, r], out)
    }

    /// Columns `[from, to)` of a matrix.
    pub fn columns(&self, from: usize, to: usize) -> HostTensor {
        let (r, c) = (self.shape[0], self.shape[1]);
        let mut out = Vec::with_capacity(r * (to - from));
        for i in 0..r {
            out.extend_from_slice(&self.data[i * c + from..i * c + to]);
        }
        HostTensor::new(vec![r, to - from], out)
    }

    pub fn to_tensor<const D: usize>(&self, device: &Device) -> Tensor<D> {
        Tensor::from_data(
            TensorData::new(self.data.clone(), self.shape.clone()),
            device,
        )
    }

    pub fn from_tensor<const D: usize>(t: &Tensor<D>) -> HostTensor {
        let shape = t.dims().to_vec();
        let data = t
            .to_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .expect("float tensor");
        HostTensor::new(shape, data)
    }
}

/// Weights under canonical names, with the configuration they belong to and their source file.
#[derive(Clone, Debug)]
pub struct Weights {
    pub config: ModelConfig,
    pub tensors: BTreeMap<String, HostTensor>,
    /// Where the weights were read from, for error messages.
    pub source: PathBuf,
}

/// The canonical tensors a configuration needs, with their shapes.
pub fn expected_tensors(cfg: &ModelConfig) -> Vec<(String, Vec<usize>)> {
    let d = cfg.d_model;
    let qd = cfg.n_heads * cfg.d_head;
    let kvd = cfg.n_kv_heads * cfg.d_head;
    let mut out = vec![("embed.W_E".to_string(), vec![cfg.d_vocab, d])];
    if cfg.positional == Positional::Learned {
        out.push(("pos_embed.W_pos".into(), vec![cfg.n_ctx, d]));
    }
    let norm = |out: &mut Vec<(String, Vec<usize>)>, prefix: &str, kind: NormKind| {
        if kind.has_weight() {
            out.push((format!("{prefix}.w"), vec![d]));
        }
        if kind == NormKind::LayerNorm {
            out.push((format!("{prefix}.b"), vec![d]));
        }
    };
    for l in 0..cfg.n_layers {
        let p = format!("blocks.{l}");
        norm(&mut out, &format!("{p}.ln1"), cfg.norm);
        out.push((format!("{p}.attn.W_Q"), vec![d, qd]));
        out.push((format!("{p}.attn.W_K"), vec![d, kvd]));
        out.push((format!("{p}.attn.W_V"), vec![d, kvd]));
        out.push((format!("{p}.attn.W_O"), vec![qd, d]));
        if cfg.qkv_bias {
            out.push((format!("{p}.attn.b_Q"), vec![qd]));
            out.push((format!("{p}.attn.b_K"), vec![kvd]));
            out.push((format!("{p}.attn.b_V"), vec![kvd]));
        }
        if cfg.attn_out_bias {
            out.push((format!("{p}.attn.b_O"), vec![d]));
        }
        if cfg.attn_only {
            continue;
        }
        norm(&mut out, &format!("{p}.ln2"), cfg.norm);
        out.push((format!("{p}.mlp.W_in"), vec![d, cfg.d_mlp]));
        if cfg.gated_mlp {
            out.push((format!("{p}.mlp.W_gate"), vec![d, cfg.d_mlp]));
        }
        out.push((format!("{p}.mlp.W_out"), vec![cfg.d_mlp, d]));
        if cfg.mlp_bias {
            out.push((format!("{p}.mlp.b_in"), vec![cfg.d_mlp]));
            if cfg.gated_mlp {
                out.push((format!("{p}.mlp.b_gate"), vec![cfg.d_mlp]));
            }
            out.push((format!("{p}.mlp.b_out"), vec![d]));
        }
    }
    norm(&mut out, "ln_final", cfg.norm);
    out.push(("unembed.W_U".into(), vec![d, cfg.d_vocab]));
    if cfg.unembed_bias {
        out.push(("unembed.b_U".into(), vec![cfg.d_vocab]));
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
}

impl Transformer {
    /// Builds a model on `device` from checked canonical weights.
    pub fn from_weights(weights: &Weights, device: &Device) -> Result<Transformer, LoadError> {
        weights.check()?;
        let cfg = weights.config.clone();
        let get = |name: &str| weights.tensors.get(name);
        let p1 = |name: &str| get(name).map(|t| Param::from_tensor(t.to_tensor::<1>(device)));
        let p2 =
            |name: &str| Param::from_tensor(get(name).expect("checked").to_tensor::<2>(device));
        let norm = |prefix: &str| Norm {
            w: p1(&format!("{prefix}.w")),
            b: p1(&format!("{prefix}.b")),
            kind: cfg.norm,
            eps: cfg.norm_eps,
        };
        let blocks = (0..cfg.n_layers)
            .map(|l| {
                let p = format!("blocks.{l}");
                Block {
                    ln1: norm(&format!("{p}.ln1")),
                    attn: Attention {
                        w_q: p2(&format!("{p}.attn.W_Q")),
                        b_q: p1(&format!("{p}.attn.b_Q")),
                        w_k: p2(&format!("{p}.attn.W_K")),
                        b_k: p1(&format!("{p}.attn.b_K")),
                        w_v: p2(&format!("{p}.attn.W_V")),
                        b_v: p1(&format!("{p}.attn.b_V")),
                        w_o: p2(&format!("{p}.attn.W_O")),
                        b_o: p1(&format!("{p}.attn.b_O")),
                        n_heads: cfg.n_heads,
                        n_kv_heads: cfg.n_kv_heads,
                        d_head: cfg.d_head,
                    },
                    ln2: (!cfg.attn_only).then(|| norm(&format!("{p}.ln2"))),
                    mlp: (!cfg.attn_only).then(|| Mlp {
                        w_in: p2(&format!("{p}.mlp.W_in")),
                        b_in: p1(&format!("{p}.mlp.b_in")),
                        w_gate: get(&format!("{p}.mlp.W_gate"))
                            .map(|t| Param::from_tensor(t.to_tensor::<2>(device))),
                        b_gate: p1(&format!("{p}.mlp.b_gate")),
                        w_out: p2(&format!("{p}.mlp.W_out")),
                        b_out: p1(&format!("{p}.mlp.b_out")),
                        act_fn: cfg.act_fn,
                    }),
                }
            })
            .collect();
        Ok(Transformer {
            w_e: p2("embed.W_E"),
            w_pos: get("pos_embed.W_pos").map(|t| Param::from_tensor(t.to_tensor::<2>(device))),
            blocks,
            ln_final: norm("ln_final"),
            w_u: p2("unembed.W_U"),
            b_u: p1("unembed.b_U"),
            config: cfg,
        })
    }

    /// The model's weights under canonical names (host copies).
    pub fn to_weights(&self, source: &Path) -> Weights {
        let mut t = BTreeMap::new();
        let put1 =
            |t: &mut BTreeMap<String, HostTensor>, name: String, p: &Option<Param<Tensor<1>>>| {
                if let Some(p) = p {
                    t.insert(name, HostTensor::from_tensor(&p.val()));
                }
            };
        let put2 = |t: &mut BTreeMap<String, HostTensor>, name: String, p: &Param<Tensor<2>>| {
            t.insert(name, HostTensor::from_tensor(&p.val()));
        };
        put2(&mut t, "embed.W_E".into(), &self.w_e);
        if let Some(w_pos) = &self.w_pos {
            put2(&mut t, "pos_embed.W_pos".into(), w_pos);
        }
        for (l, block) in self.blocks.iter().enumerate() {
            let p = format!("blocks.{l}");
            put1(&mut t, format!("{p}.ln1.w"), &block.ln1.w);
            put1(&mut t, format!("{p}.ln1.b"), &block.ln1.b);
            let a = &block.attn;
            put2(&mut t, format!("{p}.attn.W_Q"), &a.w_q);
            put1(&mut t, format!("{p}.attn.b_Q"), &a.b_q);
            put2(&mut t, format!("{p}.attn.W_K"), &a.w_k);
            put1(&mut t, format!("{p}.attn.b_K"), &a.b_k);
            put2(&mut t, format!("{p}.attn.W_V"), &a.w_v);
            put1(&mut t, format!("{p}.attn.b_V"), &a.b_v);
            put2(&mut t, format!("{p}.attn.W_O"), &a.w_o);
            put1(&mut t, format!("{p}.attn.b_O"), &a.b_o);
            let (Some(ln2), Some(m)) = (&block.ln2, &block.mlp) else {
                continue;
            };
            put1(&mut t, format!("{p}.ln2.w"), &ln2.w);
            put1(&mut t, format!("{p}.ln2.b"), &ln2.b);
            put2(&mut t, format!("{p}.mlp.W_in"), &m.w_in);
            put1(&mut t, format!("{p}.mlp.b_in"), &m.b_in);
            if let Some(w_gate) = &m.w_gate {
                put2(&mut t, format!("{p}.mlp.W_gate"), w_gate);
            }
            put1(&mut t, format!("{p}.mlp.b_gate"), &m.b_gate);
            put2(&mut t, format!("{p}.mlp.W_out"), &m.w_out);
            put1(&mut t, format!("{p}.mlp.b_out"), &m.b_out);
        }
        put1(&mut t, "ln_final.w".into(), &self.ln_final.w);
        put1(&mut t, "ln_final.b".into(), &self.ln_final.b);
        put2(&mut t, "unembed.W_U".into(), &self.w_u);
        put1(&mut t, "unembed.b_U".into(), &self.b_u);
        Weights {
            config: self.config.clone(),
            tensors: t,
            source: source.to_path_buf(),
        }
    }
}
