//! `kind = "tokens"`.

use super::{AnalysisKind, yes};
use crate::validate::Checker;

analysis_params! {
    /// The dataset's prompts as the model sees them: one row per prompt and token, with the token's
    /// id, text and position names, for joining with other tables.
    ///
    /// Columns: prompt, position, token_id, token, position_name (e.g. "IO", "END"; null when the
    /// position has no name besides first/last), and corrupt_token_id / corrupt_token when the
    /// dataset has counterfactual prompts.
    pub struct TokensParams {
        /// Also report the counterfactual (corrupt) prompt's tokens, when the dataset has them.
        #[serde(default = "yes")]
        pub corrupt: bool,
    }
}

impl AnalysisKind for TokensParams {
    fn validate(&self, _: &mut Checker<'_, '_>) {}
}
