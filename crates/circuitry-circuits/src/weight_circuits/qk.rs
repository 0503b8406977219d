//! QK circuits per head: which tokens and positions a head prefers to attend to.
//!
//! Convention (TransformerLens's `model.QK`, the paper's "QK circuit"): the *unscaled* bilinear
//! form `W_Q W_Kᵀ`, with no LayerNorm/RMSNorm, no query/key biases and no rotary embedding.
//! Divide values by `sqrt(d_head)` to get attention-score units; with fold_ln the norms' scales
//! are already inside `W_Q`/`W_K`, but the per-position normalisation is not modelled.
//!
//! - Token space: `W_E W_Q W_Kᵀ W_Eᵀ` (`d_vocab x d_vocab`), row = query (destination) token,
//!   column = key (source) token; the top entries are found blockwise.
//! - Positions (learned positional embeddings only): `W_pos W_Q W_Kᵀ W_posᵀ` restricted to the
//!   first `max_positions` positions and to the causal entries `key_pos <= query_pos`. Rotary
//!   models have no such matrix; their `positional` list is empty.

use crate::factored::{BlockOptions, Ranking};
use crate::table::{Rows, Table};
use crate::weight_circuits::ov::{HEAD_DOC, LAYER_DOC};

use super::CircuitWeights;
use super::ov::{TokenPair, token_pairs};

/// What [`qk_circuits`] computes.
#[derive(Clone, Debug, PartialEq)]
pub struct QkOptions {
    /// The heads to analyse as `(layer, head)`; all when `None`.
    pub heads: Option<Vec<(usize, usize)>>,
    /// How many token pairs of the token-space circuit to keep per head (0: skip the scan).
    pub top_k: usize,
    pub ranking: Ranking,
    /// Positions of the positional circuit (capped at `n_ctx`; 0: skip it).
    pub max_positions: usize,
    pub block: BlockOptions,
}

impl Default for QkOptions {
    fn default() -> Self {
        QkOptions {
            heads: None,
            top_k: 20,
            ranking: Ranking::Largest,
            max_positions: 64,
            block: BlockOptions::default(),
        }
    }
}

/// One causal entry of the positional QK circuit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PositionScore {
    pub query_pos: u32,
    /// At most `query_pos`.
    pub key_pos: u32,
    /// `(W_pos W_Q W_Kᵀ W_posᵀ)[query_pos, key_pos]`, unscaled.
    pub score: f64,
}

/// The QK circuit of one head.
#[derive(Clone, Debug, PartialEq)]
pub struct HeadQkResult {
    pub layer: usize,
    pub head: usize,
    /// Singular values of `W_Q W_Kᵀ`, descending (`d_head` of them).
    pub singular_values: Vec<f64>,
    /// Singular values of `W_E W_Q W_Kᵀ W_Eᵀ`, descending.
    pub full_singular_values: Vec<f64>,
    /// The `top_k` entries of `W_E W_Q W_Kᵀ W_Eᵀ`, best first; `dst_token` is the query token,
    /// `src_token` the key token.
    pub top_pairs: Vec<TokenPair>,
    /// Every causal entry of the positional circuit, query-major (`(0,0), (1,0), (1,1), ...`);
    /// empty without learned positions.
    pub positional: Vec<PositionScore>,
}

/// The QK circuit of head `head` in layer `layer`.
pub fn qk_head(w: &CircuitWeights, layer: usize, head: usize, opts: &QkOptions) -> HeadQkResult {
    let qk = w.qk(layer, head);
    let full = w.full_qk(layer, head);
    let top = full.top_k(opts.top_k, opts.ranking, &opts.block);
    let positional = match w.positional_qk(layer, head, opts.max_positions) {
        Some(pos) if pos.rows() > 0 => {
            let dense = pos.to_dense();
            (0..dense.rows())
                .flat_map(|q| (0..=q).map(move |k| (q, k)))
                .map(|(q, k)| PositionScore {
                    query_pos: q as u32,
                    key_pos: k as u32,
                    score: dense[(q, k)],
                })
                .collect()
        }
        _ => Vec::new(),
    };
    HeadQkResult {
        layer,
        head,
        singular_values: qk.singular_values(),
        full_singular_values: full.singular_values(),
        top_pairs: token_pairs(&top, false),
        positional,
    }
}

/// The QK circuits of the selected heads, in the order given (layer-major for all heads).
pub fn qk_circuits(w: &CircuitWeights, opts: &QkOptions) -> Vec<HeadQkResult> {
    w.selected(opts.heads.as_deref())
        .into_iter()
        .map(|(l, h)| qk_head(w, l, h, opts))
        .collect()
}

crate::table_row! {
    /// A row of [`qk_positional_table`].
    pub struct QkPositionalRow {
        layer = LAYER_DOC,
        head = HEAD_DOC,
        query_position: i32 = "position of the query (destination)",
        key_position: i32 = "position of the key (source), at most query_position",
        score: f64 = "entry of the positional QK circuit W_pos W_Q W_K^T W_pos^T (unscaled; no norm or biases)",
    }
}

/// One row per (head, causal position pair).
pub fn qk_positional_table(results: &[HeadQkResult]) -> Table {
    let mut t = Rows::<QkPositionalRow>::new();
    for r in results {
        for p in &r.positional {
            t.push(QkPositionalRow {
                layer: r.layer as i32,
                head: r.head as i32,
                query_position: p.query_pos as i32,
                key_position: p.key_pos as i32,
                score: p.score,
            });
        }
    }
    t.into_table()
}
