//! OV circuits per head: what attending to a token writes, in the residual stream (`W_V W_O`)
//! and in token space (`W_E W_V W_O W_U`).
//!
//! - The **copying score** of a circuit is `Σ Re(λ) / Σ |λ|` over its eigenvalues (the
//!   Mathematical Framework's summary of "positive eigenvalues mean copying"): 1 for a circuit
//!   whose eigenvalues are all positive reals, -1 for all negative reals. The residual-stream
//!   score uses the eigenvalues of `W_V W_O`, the full score those of `W_E W_V W_O W_U`, both via
//!   the `d_head x d_head` reversed product (TransformerLens: `model.OV.eigenvalues`,
//!   `(model.W_E @ model.OV @ model.W_U).eigenvalues`).
//! - **Top pairs**: the largest entries of the `d_vocab x d_vocab` token-space circuit, scanned
//!   blockwise: `(src_token, dst_token, value)` means "attending to `src_token` raises the logit
//!   of `dst_token` by `value` per unit of attention", ignoring the final norm's scale and biases.

use crate::factored::{BlockOptions, Ranking};
use crate::matrix::{Complex, LinalgError};
use crate::table::{Rows, Table};

use super::CircuitWeights;

/// What [`ov_circuits`] computes.
#[derive(Clone, Debug, PartialEq)]
pub struct OvOptions {
    /// The heads to analyse as `(layer, head)`; all when `None`.
    pub heads: Option<Vec<(usize, usize)>>,
    /// How many token pairs of the full circuit to keep per head (0: skip the scan, which is the
    /// expensive part: `d_vocab² · d_head` multiply-adds per head).
    pub top_k: usize,
    /// Which entries count as "top".
    pub ranking: Ranking,
    /// Memory bound of the blockwise scan.
    pub block: BlockOptions,
}

impl Default for OvOptions {
    fn default() -> Self {
        OvOptions {
            heads: None,
            top_k: 20,
            ranking: Ranking::Largest,
            block: BlockOptions::default(),
        }
    }
}

/// One entry of a token-space circuit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TokenPair {
    /// Position in the ranking, 0 = first.
    pub rank: u32,
    /// OV: the attended-to token. QK: the key token.
    pub src_token: u32,
    /// OV: the output token whose logit changes. QK: the query token.
    pub dst_token: u32,
    pub value: f64,
}

/// The OV circuit of one head.
#[derive(Clone, Debug, PartialEq)]
pub struct HeadOvResult {
    pub layer: usize,
    pub head: usize,
    /// Copying score of `W_V W_O` (residual-stream space).
    pub copying_score: f64,
    /// Copying score of `W_E W_V W_O W_U` (token space).
    pub full_copying_score: f64,
    /// Singular values of `W_V W_O`, descending (`d_head` of them).
    pub singular_values: Vec<f64>,
    /// Singular values of `W_E W_V W_O W_U`, descending.
    pub full_singular_values: Vec<f64>,
    /// The `top_k` entries of `W_E W_V W_O W_U` by the requested ranking, best first.
    pub top_pairs: Vec<TokenPair>,
}

/// `Σ Re(λ) / Σ |λ|`; NaN when all eigenvalues are zero.
pub fn copying_score(eigenvalues: &[Complex]) -> f64 {
    let re: f64 = eigenvalues.iter().map(|z| z.re).sum();
    let abs: f64 = eigenvalues.iter().map(|z| z.abs()).sum();
    if abs == 0.0 { f64::NAN } else { re / abs }
}

/// Turns entries of a token-space circuit into ranked pairs; `row_is_src` says whether rows are
/// source tokens (OV) or destination tokens (QK).
pub(crate) fn token_pairs(entries: &[crate::factored::Entry], row_is_src: bool) -> Vec<TokenPair> {
    entries
        .iter()
        .enumerate()
        .map(|(rank, e)| {
            let (src, dst) = if row_is_src {
                (e.row, e.col)
            } else {
                (e.col, e.row)
            };
            TokenPair {
                rank: rank as u32,
                src_token: src as u32,
                dst_token: dst as u32,
                value: e.value,
            }
        })
        .collect()
}

/// The OV circuit of head `head` in layer `layer`.
pub fn ov_head(
    w: &CircuitWeights,
    layer: usize,
    head: usize,
    opts: &OvOptions,
) -> Result<HeadOvResult, LinalgError> {
    let ov = w.ov(layer, head);
    let full = w.full_ov(layer, head);
    let top = full.top_k(opts.top_k, opts.ranking, &opts.block);
    Ok(HeadOvResult {
        layer,
        head,
        copying_score: copying_score(&ov.eigenvalues()?),
        full_copying_score: copying_score(&full.eigenvalues()?),
        singular_values: ov.singular_values(),
        full_singular_values: full.singular_values(),
        top_pairs: token_pairs(&top, true),
    })
}

/// The OV circuits of the selected heads, in the order given (layer-major for all heads).
pub fn ov_circuits(w: &CircuitWeights, opts: &OvOptions) -> Result<Vec<HeadOvResult>, LinalgError> {
    w.selected(opts.heads.as_deref())
        .into_iter()
        .map(|(l, h)| ov_head(w, l, h, opts))
        .collect()
}

/// Copying scores of every head, indexed `[layer][head]`.
#[derive(Clone, Debug, PartialEq)]
pub struct CopyingScores {
    /// Of `W_V W_O` (residual-stream space).
    pub resid: Vec<Vec<f64>>,
    /// Of `W_E W_V W_O W_U` (token space).
    pub full: Vec<Vec<f64>>,
}

/// The copying scores of every head of a model (eigenvalues only, no token scan).
pub fn copying_scores(w: &CircuitWeights) -> Result<CopyingScores, LinalgError> {
    let mut resid = vec![vec![0.0; w.n_heads]; w.n_layers];
    let mut full = resid.clone();
    for (l, h) in w.all_heads() {
        resid[l][h] = copying_score(&w.ov(l, h).eigenvalues()?);
        full[l][h] = copying_score(&w.full_ov(l, h).eigenvalues()?);
    }
    Ok(CopyingScores { resid, full })
}

// Column descriptions shared by the weight-circuit tables of `ov_circuit` and `qk_circuit`.
pub(crate) const LAYER_DOC: &str = "layer of the attention head";
pub(crate) const HEAD_DOC: &str = "index of the attention head within its layer";
pub(crate) const RANK_DOC: &str = "position in the ranking, 0 = first";

crate::table_row! {
    /// A row of [`ov_scores_table`].
    pub struct OvScoreRow {
        layer = LAYER_DOC,
        head = HEAD_DOC,
        copying_score: f64 = "sum(Re λ) / sum(|λ|) over the eigenvalues of the OV circuit W_V W_O (residual-stream space); 1 = pure copying",
        full_copying_score: f64 = "sum(Re λ) / sum(|λ|) over the eigenvalues of the token-space OV circuit W_E W_V W_O W_U",
    }
}

/// One row per head: `layer`, `head`, `copying_score`, `full_copying_score`.
pub fn ov_scores_table(results: &[HeadOvResult]) -> Table {
    let mut t = Rows::<OvScoreRow>::new();
    for r in results {
        t.push(OvScoreRow {
            layer: r.layer as i32,
            head: r.head as i32,
            copying_score: r.copying_score,
            full_copying_score: r.full_copying_score,
        });
    }
    t.into_table()
}

crate::table_row! {
    /// A row of the singular-value tables of `ov_circuit` and `qk_circuit`.
    pub struct SingularValueRow {
        layer = LAYER_DOC,
        head = HEAD_DOC,
        circuit: &'static str = "which matrix: ov = W_V W_O, full_ov = W_E W_V W_O W_U, qk = W_Q W_K^T, full_qk = W_E W_Q W_K^T W_E^T",
        rank: u32 = "index of the singular value in descending order, 0 = largest",
        singular_value: f64 = "singular value of the circuit",
    }
}

pub(crate) fn push_singular_values(
    t: &mut Rows<SingularValueRow>,
    layer: usize,
    head: usize,
    circuit: &'static str,
    values: &[f64],
) {
    for (i, &singular_value) in values.iter().enumerate() {
        t.push(SingularValueRow {
            layer: layer as i32,
            head: head as i32,
            circuit,
            rank: i as u32,
            singular_value,
        });
    }
}
