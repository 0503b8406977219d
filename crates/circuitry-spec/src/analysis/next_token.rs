//! `kind = "next_token"`.

use super::AnalysisKind;
use crate::refs::PositionsSpec;
use crate::validate::Checker;

analysis_params! {
    /// The model's top next-token predictions at the selected positions.
    ///
    /// Columns: prompt, position, rank (0 = most likely), token, token_id, logit, prob.
    pub struct NextTokenParams {
        /// How many predictions to report per position (> 0).
        #[schemars(range(min = 1))]
        #[serde(default = "ten")]
        pub top_k: u32,
        /// Positions whose predictions are reported.
        #[serde(default = "PositionsSpec::last")]
        pub positions: PositionsSpec,
    }
}

fn ten() -> u32 {
    10
}

impl AnalysisKind for NextTokenParams {
    fn validate(&self, c: &mut Checker<'_, '_>) {
        c.positive("top_k", self.top_k);
        c.positions("positions", &self.positions);
    }
}
