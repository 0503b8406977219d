//! `kind = "logit_lens"`.

use super::AnalysisKind;
use crate::refs::{PositionsSpec, TokenSelection};
use crate::validate::Checker;

analysis_params! {
    /// What the residual stream predicts after each layer: log-prob and rank of chosen tokens.
    ///
    /// Decodes `blocks.L.hook_resid_post` through the final norm and the unembedding. Columns:
    /// prompt, layer, position, token, logprob, rank (0 = top prediction); with `top_k`, also a
    /// second set of rows per layer and position with kind = "top" and the k best predictions.
    pub struct LogitLensParams {
        /// Layers whose residual stream is decoded (0-based). Default: every layer.
        pub layers: Option<Vec<u32>>,
        /// Positions to decode.
        #[serde(default)]
        pub positions: PositionsSpec,
        /// Which tokens' log-prob and rank to report: "next" (the token that actually follows each
        /// position; the last position has none and is skipped) or a list of tokens.
        #[serde(default = "next")]
        pub tokens: TokenSelection,
        /// Also report the k most likely tokens at every layer and position (> 0). Default: none.
        #[schemars(range(min = 1))]
        pub top_k: Option<u32>,
    }
}

fn next() -> TokenSelection {
    TokenSelection::Next
}

impl AnalysisKind for LogitLensParams {
    fn validate(&self, c: &mut Checker<'_, '_>) {
        c.filter("layers", self.layers.as_deref());
        c.positions("positions", &self.positions);
        c.tokens("tokens", &self.tokens);
        if let Some(k) = self.top_k {
            c.positive("top_k", k);
        }
    }
}
