//! `kind = "qk_circuit"`.

use super::AnalysisKind;
use super::ov_circuit::{default_singular_values, default_top_k};
use crate::validate::Checker;

analysis_params! {
    /// Where each attention head prefers to attend: the QK circuit `W_Q W_Kᵀ` in token and position
    /// space, from the weights alone.
    ///
    /// Reads only the model's weights (under its `processing` settings; TransformerLens's defaults
    /// reproduce `model.QK`): `dataset` must name a dataset but is not read. Values are unscaled
    /// bilinear forms (divide by `sqrt(d_head)` for attention-score units) without norms, biases or
    /// rotary embeddings. Main table, one row per head: layer, head, frobenius_norm and
    /// top_singular_value of `W_Q W_Kᵀ`, full_frobenius_norm of `W_E W_Q W_Kᵀ W_Eᵀ`, and, for models
    /// with learned positional embeddings, positional_previous_token: the fraction of query
    /// positions `q` in `1..max_positions` whose highest-scoring causal key in the positional circuit
    /// `W_pos W_Q W_Kᵀ W_posᵀ` is `q - 1` (1 for a head whose positional preference is the previous
    /// token; null for rotary models or with `max_positions < 2`). Table `top_pairs`: the `top_k`
    /// largest entries of `W_E W_Q W_Kᵀ W_Eᵀ` per head (layer, head, rank, src_token, src_text = the
    /// key token, dst_token, dst_text = the query token, value). Table `positional` (learned positions
    /// only): layer, head, query_position, key_position, score for every causal pair of the first
    /// `max_positions` positions. Table `singular_values`: layer, head, circuit (`qk` or `full_qk`),
    /// rank, singular_value. The token scan costs `d_vocab² · d_head` multiply-adds per head (about
    /// 15 s per head for a 49k-token vocabulary on two cores): filter `layers` and `heads`, or set
    /// `top_k = 0`, on large models.
    pub struct QkCircuitParams {
        /// Layers to analyse (0-based). Default: every layer.
        pub layers: Option<Vec<u32>>,
        /// Heads to analyse in every selected layer (0-based). Default: every head.
        pub heads: Option<Vec<u32>>,
        /// Token pairs per head to report from the token-space circuit `W_E W_Q W_Kᵀ W_Eᵀ`, largest
        /// entries first (table `top_pairs`). 0 skips the scan, which is the expensive part:
        /// `d_vocab² · d_head` multiply-adds per head, about 15 s per head for a 49k-token vocabulary.
        #[serde(default = "default_top_k")]
        pub top_k: u32,
        /// How many singular values of `W_Q W_Kᵀ` and of `W_E W_Q W_Kᵀ W_Eᵀ` to report per head,
        /// largest first (table `singular_values`; at most `d_head` exist). 0: none.
        #[serde(default = "default_singular_values")]
        pub singular_values: u32,
        /// Positions of the positional circuit `W_pos W_Q W_Kᵀ W_posᵀ` (models with learned
        /// positional embeddings only; capped at the model's context length): table `positional` and
        /// the `positional_previous_token` column. 0: neither.
        #[serde(default = "default_max_positions")]
        pub max_positions: u32,
    }
}

fn default_max_positions() -> u32 {
    64
}

impl AnalysisKind for QkCircuitParams {
    fn reads_dataset(&self) -> bool {
        false
    }

    fn validate(&self, c: &mut Checker<'_, '_>) {
        c.filter("layers", self.layers.as_deref());
        c.filter("heads", self.heads.as_deref());
    }
}
