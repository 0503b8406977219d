//! `kind = "induction_scores"`.

use super::AnalysisKind;
use crate::dataset::DatasetSource;
use crate::validate::Checker;

analysis_params! {
    /// Induction, previous-token and duplicate-token scores of every head on repeated random tokens.
    ///
    /// Needs repeated prompts (`[BOS] r r ...`; `L` = the length of `r`): a `repeated_tokens`
    /// dataset with `repeats >= 2`, or a `tokens`, `prompts` or `file` dataset that declares
    /// `repeats = N`. Reads `blocks.L.attn.hook_pattern`. Per head and prompt, as in Olsson et
    /// al. (2022) and the TransformerLens demos: induction_score = mean attention from each position
    /// `i` of the second and later repeats to `i - L + 1` (the token after the earlier occurrence of
    /// token `i`); previous_token_score = mean attention from each position `i >= 1` to `i - 1`;
    /// duplicate_token_score = mean attention from each position `i` of the second and later repeats
    /// to `i - L` (the earlier occurrence itself). Columns: layer, head, induction_score,
    /// previous_token_score, duplicate_token_score, n_prompts (the mean over prompts); with
    /// `per_prompt = true`, prompt instead of n_prompts and one row per prompt.
    pub struct InductionScoresParams {
        /// Layers to score (0-based). Default: every layer.
        pub layers: Option<Vec<u32>>,
        /// Heads to score in every selected layer (0-based). Default: every head.
        pub heads: Option<Vec<u32>>,
        /// One row per prompt instead of one row per head averaged over prompts.
        #[serde(default)]
        pub per_prompt: bool,
    }
}

impl AnalysisKind for InductionScoresParams {
    fn validate(&self, c: &mut Checker<'_, '_>) {
        c.filter("layers", self.layers.as_deref());
        c.filter("heads", self.heads.as_deref());
        require_repeated_tokens(c, "induction_scores");
    }
}

/// The analysis's dataset must hold repeated prompts: a `repeated_tokens` dataset with the
/// sequence repeated, or one that declares `repeats` (either way its prompts name the positions
/// `seq_start` and `repeat_start`).
pub(super) fn require_repeated_tokens(c: &mut Checker<'_, '_>, kind: &str) {
    let Some((name, dataset)) = c.dataset else {
        return;
    };
    match &dataset.source {
        DatasetSource::RepeatedTokens(r) if r.repeats < 2 => {
            c.error(
                "dataset",
                format!(
                    "{kind} needs the random sequence repeated: dataset `{name}` has repeats = {}",
                    r.repeats
                ),
            )
            .hint = Some(format!(
                "set repeats = 2 (the default) in [datasets.{name}]"
            ));
        }
        DatasetSource::RepeatedTokens(_) => {}
        DatasetSource::Tokens(_) | DatasetSource::Prompts(_) | DatasetSource::File(_)
            if dataset.declared_repeats().is_some() => {}
        source => {
            let what = dataset.source_name();
            let d = c.error(
                "dataset",
                format!(
                    "{kind} needs repeated prompts: dataset `{name}` ({what}) declares no repeat structure"
                ),
            );
            d.hint = Some(
                if matches!(
                    source,
                    DatasetSource::Tokens(_) | DatasetSource::Prompts(_) | DatasetSource::File(_)
                ) {
                    format!(
                        "if its prompts are laid out as r r, declare it: repeats = 2 in [datasets.{name}]"
                    )
                } else {
                    "use generator = \"repeated_tokens\", or a tokens, prompts or file dataset with repeats = 2".into()
                },
            );
        }
    }
}
