//! `kind = "attention_pattern"`.

use super::AnalysisKind;
use crate::refs::PositionsSpec;
use crate::validate::Checker;

analysis_params! {
    /// Attention probabilities of the selected heads, one row per prompt, layer, head, query and key.
    ///
    /// Reads `blocks.L.attn.hook_pattern` (post-softmax). Only causal entries (key <= query) are
    /// reported. Columns: prompt, layer, head, query_position, key_position, query_token, key_token,
    /// attention.
    pub struct AttentionPatternParams {
        /// Layers to report (0-based). Default: every layer.
        pub layers: Option<Vec<u32>>,
        /// Heads to report (0-based, in every selected layer). Default: every head.
        pub heads: Option<Vec<u32>>,
        /// Prompts to report (0-based indices into the dataset). Default: every prompt.
        pub prompts: Option<Vec<u32>>,
        /// Query (destination) positions to report.
        #[serde(default)]
        pub query_positions: PositionsSpec,
        /// Key (source) positions to report.
        #[serde(default)]
        pub key_positions: PositionsSpec,
        /// Drop rows whose attention probability is below this threshold (0 to 1). Default: keep
        /// every row.
        #[schemars(range(min = 0.0, max = 1.0))]
        pub min_attention: Option<f64>,
    }
}

impl AnalysisKind for AttentionPatternParams {
    fn validate(&self, c: &mut Checker<'_, '_>) {
        c.filter("layers", self.layers.as_deref());
        c.filter("heads", self.heads.as_deref());
        c.prompt_indices("prompts", self.prompts.as_deref());
        c.positions("query_positions", &self.query_positions);
        c.positions("key_positions", &self.key_positions);
        if let Some(t) = self.min_attention
            && !(0.0..=1.0).contains(&t)
        {
            c.error(
                "min_attention",
                format!("`min_attention` is a probability between 0 and 1, found {t}"),
            );
        }
    }
}
