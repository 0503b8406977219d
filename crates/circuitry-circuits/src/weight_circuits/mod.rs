//! Weight-based circuit analyses from "A Mathematical Framework for Transformer Circuits"
//! (Elhage et al., 2021): per-head OV and QK circuits ([`ov`], [`qk`]) and Q-/K-/V-composition
//! between heads ([`composition`]).
//!
//! Everything here is a pure function of the weights a [`Transformer`] holds, i.e. *under the
//! model's processing settings*: with TransformerLens's defaults (fold_ln,
//! center_writing_weights, center_unembed, fold_value_biases) results match TransformerLens's
//! `HookedTransformer`/`TransformerBridge` (`model.OV`, `model.QK`, `all_composition_scores`).
//!
//! Conventions (those of TransformerLens and the paper):
//! - row vectors: the residual stream is `x`, a head reads `x W_Q`, `x W_K`, `x W_V` and writes
//!   `z W_O`;
//! - `OV = W_V W_O` (`d_model x d_model`), `QK = W_Q W_Kᵀ` (`d_model x d_model`; the
//!   attention score of query `x_q` on key `x_k` is `x_q QK x_kᵀ / sqrt(d_head)` before biases);
//! - token-space circuits put `W_E` on the left and `W_U` (OV) or `W_Eᵀ` (QK) on the right, with
//!   no LayerNorm/RMSNorm and no biases in between;
//! - under grouped-query attention a query head uses key/value head `head / (n_heads /
//!   n_kv_heads)`, as [`circuitry_models::components::attention::Attention::w_k_heads`] repeats.
//!
//! The host copy ([`CircuitWeights`]) is `f64`; the heavy products go through `gemm`.

pub mod composition;
pub mod ov;
pub mod qk;

use circuitry_models::burn::prelude::*;
use circuitry_models::{Transformer, host_values};

use crate::factored::FactoredMatrix;
use crate::matrix::Mat;

/// One attention head's weights, TransformerLens layout (`x @ W`).
#[derive(Clone, Debug)]
pub struct HeadWeights {
    /// `W_Q`, `d_model x d_head`.
    pub w_q: Mat,
    /// `W_K`, `d_model x d_head` (the key/value head this query head reads under GQA).
    pub w_k: Mat,
    /// `W_V`, `d_model x d_head`.
    pub w_v: Mat,
    /// `W_O`, `d_head x d_model`.
    pub w_o: Mat,
}

/// A host (`f64`) copy of the weights the weight-circuit analyses read.
#[derive(Clone, Debug)]
pub struct CircuitWeights {
    pub n_layers: usize,
    pub n_heads: usize,
    pub d_model: usize,
    pub d_head: usize,
    pub d_vocab: usize,
    /// `W_E`, `d_vocab x d_model`.
    pub w_e: Mat,
    /// `W_pos`, `n_ctx x d_model`, for models with learned positions.
    pub w_pos: Option<Mat>,
    /// `W_U`, `d_model x d_vocab`.
    pub w_u: Mat,
    /// `heads[layer][head]`.
    pub heads: Vec<Vec<HeadWeights>>,
}

fn mat2(t: Tensor<2>) -> Mat {
    let [r, c] = t.dims();
    Mat::from_f32(r, c, &host_values(&t))
}

fn mats3(t: Tensor<3>) -> Vec<Mat> {
    let [h, r, c] = t.dims();
    let v = host_values(&t);
    (0..h)
        .map(|i| Mat::from_f32(r, c, &v[i * r * c..(i + 1) * r * c]))
        .collect()
}

impl CircuitWeights {
    /// Copies the embedding, positional embedding, unembedding and per-head attention weights to
    /// the host (whatever processing the model was loaded with).
    pub fn from_transformer(model: &Transformer) -> CircuitWeights {
        let cfg = &model.config;
        let heads = model
            .blocks()
            .iter()
            .map(|block| {
                let a = block.attn();
                let (q, k, v, o) = (
                    mats3(a.w_q_heads()),
                    mats3(a.w_k_heads()),
                    mats3(a.w_v_heads()),
                    mats3(a.w_o_heads()),
                );
                q.into_iter()
                    .zip(k)
                    .zip(v)
                    .zip(o)
                    .map(|(((w_q, w_k), w_v), w_o)| HeadWeights { w_q, w_k, w_v, w_o })
                    .collect()
            })
            .collect();
        let w = CircuitWeights {
            n_layers: cfg.n_layers,
            n_heads: cfg.n_heads,
            d_model: cfg.d_model,
            d_head: cfg.d_head,
            d_vocab: cfg.d_vocab,
            w_e: mat2(model.w_e()),
            w_pos: model.w_pos().map(mat2),
            w_u: mat2(model.w_u()),
            heads,
        };
        w.validate();
        w
    }

    /// Checks that all shapes agree with the sizes.
    ///
    /// # Panics
    /// When they do not (a bug in whoever built the weights).
    pub fn validate(&self) {
        let (d, dh) = (self.d_model, self.d_head);
        assert_eq!(self.w_e.shape(), (self.d_vocab, d), "W_E shape");
        assert_eq!(self.w_u.shape(), (d, self.d_vocab), "W_U shape");
        if let Some(p) = &self.w_pos {
            assert_eq!(p.cols(), d, "W_pos width");
        }
        assert_eq!(self.heads.len(), self.n_layers, "layers");
        for layer in &self.heads {
            assert_eq!(layer.len(), self.n_heads, "heads per layer");
            for h in layer {
                assert_eq!(h.w_q.shape(), (d, dh), "W_Q shape");
                assert_eq!(h.w_k.shape(), (d, dh), "W_K shape");
                assert_eq!(h.w_v.shape(), (d, dh), "W_V shape");
                assert_eq!(h.w_o.shape(), (dh, d), "W_O shape");
            }
        }
    }

    pub fn head(&self, layer: usize, head: usize) -> &HeadWeights {
        &self.heads[layer][head]
    }

    /// Every `(layer, head)`, layer-major.
    pub fn all_heads(&self) -> Vec<(usize, usize)> {
        (0..self.n_layers)
            .flat_map(|l| (0..self.n_heads).map(move |h| (l, h)))
            .collect()
    }

    /// The OV circuit `W_V W_O` (`d_model x d_model`, inner `d_head`).
    pub fn ov(&self, layer: usize, head: usize) -> FactoredMatrix {
        let h = self.head(layer, head);
        FactoredMatrix::new(h.w_v.clone(), h.w_o.clone())
    }

    /// The QK circuit `W_Q W_Kᵀ` (`d_model x d_model`, inner `d_head`).
    pub fn qk(&self, layer: usize, head: usize) -> FactoredMatrix {
        let h = self.head(layer, head);
        FactoredMatrix::new(h.w_q.clone(), h.w_k.transpose())
    }

    /// The full (token-space) OV circuit `W_E W_V W_O W_U` (`d_vocab x d_vocab`): row = the
    /// attended-to (source) token, column = the output token whose logit changes.
    pub fn full_ov(&self, layer: usize, head: usize) -> FactoredMatrix {
        let h = self.head(layer, head);
        FactoredMatrix::new(self.w_e.matmul(&h.w_v), h.w_o.matmul(&self.w_u))
    }

    /// The full (token-space) QK circuit `W_E W_Q W_Kᵀ W_Eᵀ` (`d_vocab x d_vocab`): row = the
    /// query (destination) token, column = the key (source) token.
    pub fn full_qk(&self, layer: usize, head: usize) -> FactoredMatrix {
        let h = self.head(layer, head);
        FactoredMatrix::new(self.w_e.matmul(&h.w_q), self.w_e.matmul(&h.w_k).transpose())
    }

    /// The positional QK circuit `W_pos W_Q W_Kᵀ W_posᵀ` over the first `max_positions` positions
    /// (at most `n_ctx`): row = query position, column = key position. `None` without learned
    /// positions (rotary models have no positional embedding matrix).
    pub fn positional_qk(
        &self,
        layer: usize,
        head: usize,
        max_positions: usize,
    ) -> Option<FactoredMatrix> {
        let w_pos = self.w_pos.as_ref()?;
        let p = w_pos.select_rows(0..max_positions.min(w_pos.rows()));
        let h = self.head(layer, head);
        Some(FactoredMatrix::new(
            p.matmul(&h.w_q),
            p.matmul(&h.w_k).transpose(),
        ))
    }

    /// `heads`, or every head when `None`.
    pub(crate) fn selected(&self, heads: Option<&[(usize, usize)]>) -> Vec<(usize, usize)> {
        match heads {
            Some(h) => {
                for &(l, hh) in h {
                    assert!(
                        l < self.n_layers && hh < self.n_heads,
                        "head ({l}, {hh}) out of a {}x{} model",
                        self.n_layers,
                        self.n_heads
                    );
                }
                h.to_vec()
            }
            None => self.all_heads(),
        }
    }
}
