//! `kind = "icl_score"`.

use super::AnalysisKind;
use crate::dataset::DatasetSource;
use crate::validate::Checker;

analysis_params! {
    /// In-context learning score per prompt (Olsson et al. 2022): the loss on a late token minus
    /// the loss on an early one, and the loss at every token index.
    ///
    /// The loss on token `t` is `-log p(tokens[t] | tokens[..t])`, read from the logits at
    /// `t - 1`. The score is negative when the model predicts later tokens better because it has
    /// more context. Olsson et al. use tokens 500 and 50 of natural text; on short prompts such as
    /// `[BOS] r r` with `|r| = 20`, tokens 30 (second copy) and 10 (first copy) measure induction.
    /// Columns: prompt, n_tokens, early, late, loss_early, loss_late, icl_score. Part `positions`:
    /// token, mean_loss, sem_loss, n_prompts (the per-token loss curve). Part `summary`: one row of
    /// means with the score's standard error.
    pub struct IclScoreParams {
        /// The early token index (>= 1).
        #[schemars(range(min = 1))]
        #[serde(default = "fifty")]
        pub early: u32,
        /// The late token index (> early); every prompt needs more than `late` tokens.
        #[serde(default = "five_hundred")]
        pub late: u32,
    }
}

pub(super) fn fifty() -> u32 {
    50
}

pub(super) fn five_hundred() -> u32 {
    500
}

/// `1 <= early < late`, and a `repeated_tokens` dataset's prompts have a token `late`.
pub(super) fn check_early_late(c: &mut Checker<'_, '_>, early: u32, late: u32) {
    if let Some((name, dataset)) = c.dataset
        && let DatasetSource::RepeatedTokens(r) = &dataset.source
    {
        let tokens = r.length.saturating_mul(r.repeats) + u32::from(dataset.prepend_bos);
        if late >= tokens {
            c.error(
                "late",
                format!(
                    "the prompts of dataset `{name}` have {tokens} tokens, so they have no token {late} (late)"
                ),
            )
            .hint = Some(format!(
                "choose late < {tokens}; on [BOS] r r, a token of the second copy (e.g. late = {}) against one of the first (early = {})",
                tokens - 1,
                (r.length / 2).max(1)
            ));
        }
    }
    c.icl_tokens(("early", early), ("late", late));
}

impl AnalysisKind for IclScoreParams {
    fn validate(&self, c: &mut Checker<'_, '_>) {
        check_early_late(c, self.early, self.late);
    }
}
