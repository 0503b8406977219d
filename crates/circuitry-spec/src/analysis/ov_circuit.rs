//! `kind = "ov_circuit"`.

use super::AnalysisKind;
use crate::validate::Checker;

analysis_params! {
    /// What each attention head writes when it attends to a token: the OV circuit `W_V W_O`, from the
    /// weights alone.
    ///
    /// Reads only the model's weights (under its `processing` settings; TransformerLens's defaults
    /// reproduce `model.OV`): `dataset` must name a dataset but is not read. Main table, one row per
    /// head: layer, head, copying_score (`Σ Re λ / Σ |λ|` over the eigenvalues of `W_V W_O`; 1 =
    /// the head copies what it attends to) and full_copying_score (the same for the token-space
    /// circuit `W_E W_V W_O W_U`, the Mathematical Framework's copying score). Table `top_pairs`
    /// (`<analysis>.top_pairs.parquet`): the `top_k` largest entries of `W_E W_V W_O W_U` per head,
    /// with columns layer, head, rank, src_token, src_text (the attended-to token), dst_token,
    /// dst_text (the token whose logit it raises) and value. Table `singular_values`: layer, head,
    /// circuit (`ov` or `full_ov`), rank, singular_value. The token scan costs `d_vocab² · d_head`
    /// multiply-adds per head (about 15 s per head for a 49k-token vocabulary on two cores): filter
    /// `layers` and `heads`, or set `top_k = 0`, on large models.
    pub struct OvCircuitParams {
        /// Layers to analyse (0-based). Default: every layer.
        pub layers: Option<Vec<u32>>,
        /// Heads to analyse in every selected layer (0-based). Default: every head.
        pub heads: Option<Vec<u32>>,
        /// Token pairs per head to report from the full token-space circuit `W_E W_V W_O W_U`, largest
        /// entries first (table `top_pairs`). 0 skips the scan, which is the expensive part:
        /// `d_vocab² · d_head` multiply-adds per head, about 15 s per head for a 49k-token vocabulary.
        #[serde(default = "default_top_k")]
        pub top_k: u32,
        /// How many singular values of `W_V W_O` and of `W_E W_V W_O W_U` to report per head, largest
        /// first (table `singular_values`; at most `d_head` exist). 0: none.
        #[serde(default = "default_singular_values")]
        pub singular_values: u32,
    }
}

pub(crate) fn default_top_k() -> u32 {
    10
}

pub(crate) fn default_singular_values() -> u32 {
    10
}

impl AnalysisKind for OvCircuitParams {
    fn reads_dataset(&self) -> bool {
        false
    }

    fn validate(&self, c: &mut Checker<'_, '_>) {
        c.filter("layers", self.layers.as_deref());
        c.filter("heads", self.heads.as_deref());
    }
}
