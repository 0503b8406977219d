//! `induction_scores`: induction, previous-token and duplicate-token scores per head on repeated
//! tokens (`[BOS] r r ...`: the `repeated_tokens` generator, or a dataset that declares
//! `repeats`), as in Olsson et al. (2022) and the TransformerLens demos.
//!
//! With `L` the length of `r` (`repeat_start - seq_start`), per prompt and head:
//! - `induction_score`: mean over positions `i >= repeat_start` of `attn[i, i - L + 1]`, the
//!   token after the earlier occurrence of token `i`;
//! - `previous_token_score`: mean over positions `i >= 1` of `attn[i, i - 1]`;
//! - `duplicate_token_score`: mean over positions `i >= repeat_start` of `attn[i, i - L]`, the
//!   earlier occurrence itself.
//!
//! The averaged table is the mean of the per-prompt scores.

use circuitry_data::Prompt;
use circuitry_data::repeated::{REPEAT_START, SEQ_START};
use circuitry_models::HookKind;
use circuitry_spec::InductionScoresParams;

use super::head_score_means::{HeadScoreMeans, PerPromptTables};
use super::prelude::*;
use crate::acts::{attention, patterns};

// Column descriptions shared by the averaged and the per-prompt table.
const LAYER: &str = "layer of the head";
const HEAD: &str = "head index within the layer";
const INDUCTION: &str = "mean attention from each position i of the second and later repeats to i - L + 1 (the token after the earlier occurrence)";
const PREVIOUS: &str = "mean attention from each position i >= 1 to i - 1";
const DUPLICATE: &str = "mean attention from each position i of the second and later repeats to i - L (the earlier occurrence)";

crate::table_row! {
    /// A row of the averaged table.
    pub struct InductionScoreRow {
        layer = LAYER,
        head = HEAD,
        induction_score: f64 = INDUCTION,
        previous_token_score: f64 = PREVIOUS,
        duplicate_token_score: f64 = DUPLICATE,
        n_prompts: u32 = "prompts averaged",
    }
}

crate::table_row! {
    /// A row of the per-prompt table (`per_prompt = true`).
    pub struct PromptInductionScoreRow {
        prompt = "prompt id (index in the dataset)",
        layer = LAYER,
        head = HEAD,
        induction_score: f64 = INDUCTION,
        previous_token_score: f64 = PREVIOUS,
        duplicate_token_score: f64 = DUPLICATE,
    }
}

/// `(seq_start, repeat_start)` of a repeated-tokens prompt, checked.
pub fn repeat_bounds(prompt: &Prompt) -> Result<(usize, usize), AnalysisError> {
    let named = |name: &str| {
        prompt.position(name).ok_or_else(|| {
            AnalysisError::new(format!(
                "prompt {} has no position named `{name}`: induction_scores needs repeated prompts (a repeated_tokens dataset, or one that declares repeats >= 2)",
                prompt.id
            ))
        })
    };
    let (start, repeat) = (named(SEQ_START)?, named(REPEAT_START)?);
    if repeat <= start || repeat >= prompt.len() {
        return Err(AnalysisError::new(format!(
            "prompt {} has {SEQ_START} = {start} and {REPEAT_START} = {repeat} for {} tokens: the repeat must start after the sequence and inside the prompt",
            prompt.id,
            prompt.len()
        )));
    }
    Ok((start, repeat))
}

/// `[induction, previous_token, duplicate_token]` for one head of one prompt;
/// `attn(q, k)` is the attention from token `q` to token `k` of the prompt.
pub fn scores(
    n: usize,
    seq_start: usize,
    repeat_start: usize,
    attn: impl Fn(usize, usize) -> f64,
) -> [f64; 3] {
    let len = repeat_start - seq_start;
    let mean = |it: &mut dyn Iterator<Item = f64>| {
        let (s, c) = it.fold((0.0, 0usize), |(s, c), x| (s + x, c + 1));
        s / c as f64
    };
    [
        mean(&mut (repeat_start..n).map(|q| attn(q, q + 1 - len))),
        mean(&mut (1..n).map(|q| attn(q, q - 1))),
        mean(&mut (repeat_start..n).map(|q| attn(q, q - len))),
    ]
}

const PER_PROMPT_TABLES: PerPromptTables =
    PerPromptTables::new::<InductionScoreRow, PromptInductionScoreRow>();

pub struct InductionScores {
    params: InductionScoresParams,
    /// The three scores of [`scores`].
    scores: HeadScoreMeans,
}

impl Kind for InductionScores {
    type Params = InductionScoresParams;
    const TABLES: &'static [TableDecl] =
        &[PER_PROMPT_TABLES.averaged, PER_PROMPT_TABLES.per_prompt];

    fn build(params: Self::Params, cx: BuildContext) -> Result<Self, AnalysisError> {
        let filters = (params.layers.as_deref(), params.heads.as_deref());
        let scores = HeadScoreMeans::select(cx.config, filters, 3)?;
        Ok(InductionScores { params, scores })
    }

    fn tables(&self) -> Vec<TableDecl> {
        PER_PROMPT_TABLES.chosen(self.params.per_prompt)
    }
}

impl Analysis for InductionScores {
    fn requirements(&self) -> Requirements {
        Requirements::at_layers(self.scores.layers(), HookKind::Pattern)
    }

    fn process(
        &mut self,
        _: &ModelContext,
        batch: &BatchContext,
        sink: &mut dyn TableSink,
    ) -> Result<(), AnalysisError> {
        let bounds = batch
            .prompts
            .iter()
            .map(repeat_bounds)
            .collect::<Result<Vec<_>, _>>()?;
        let patterns = patterns(&batch.clean_output.cache, self.scores.layers())?;
        let heads = self.scores.heads().to_vec();
        let mut table = Rows::<PromptInductionScoreRow>::new();
        for (r, (prompt, &(start, repeat))) in batch.prompts.iter().zip(&bounds).enumerate() {
            for (li, pattern) in patterns.iter().enumerate() {
                for (hi, &head) in heads.iter().enumerate() {
                    let attn =
                        |q: usize, k: usize| f64::from(attention(pattern, batch, r, head, q, k));
                    let s = scores(prompt.len(), start, repeat, attn);
                    if self.params.per_prompt {
                        table.push(PromptInductionScoreRow {
                            prompt: prompt.id,
                            layer: self.scores.layers()[li] as i32,
                            head: head as i32,
                            induction_score: s[0],
                            previous_token_score: s[1],
                            duplicate_token_score: s[2],
                        });
                    } else {
                        self.scores.add(li, hi, s);
                    }
                }
            }
            self.scores.end_prompt();
        }
        if self.params.per_prompt {
            emit(sink, None, table)?;
        }
        Ok(())
    }

    fn finish(&mut self, _: &ModelContext, sink: &mut dyn TableSink) -> Result<(), AnalysisError> {
        if self.params.per_prompt {
            return Ok(());
        }
        if self.scores.n_prompts() == 0 {
            return Err(AnalysisError::new(
                "induction_scores received no prompts: the dataset is empty",
            ));
        }
        let mut table = Rows::<InductionScoreRow>::new();
        for (layer, head, means) in self.scores.means() {
            table.push(InductionScoreRow {
                layer: layer as i32,
                head: head as i32,
                induction_score: means[0],
                previous_token_score: means[1],
                duplicate_token_score: means[2],
                n_prompts: self.scores.n_prompts(),
            });
        }
        emit(sink, None, table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_read_the_right_stripes() {
        // [BOS] a b c a b c: L = 3, second repeat at 4..7. A perfect induction head attends from
        // i to i - 2, a perfect previous-token head to i - 1, a duplicate head to i - 3.
        let n = 7;
        let ind = scores(n, 1, 4, |q, k| f64::from(q >= 4 && k == q - 2));
        assert_eq!(ind, [1.0, 0.0, 0.0]);
        let prev = scores(n, 1, 4, |q, k| f64::from(k + 1 == q));
        assert_eq!(prev, [0.0, 1.0, 0.0]);
        let dup = scores(n, 1, 4, |q, k| f64::from(q >= 4 && k + 3 == q));
        assert_eq!(dup, [0.0, 0.0, 1.0]);
        // Every query spreads evenly over its causal keys.
        let uniform = scores(n, 1, 4, |q, _| 1.0 / (q + 1) as f64);
        let want_ind = (4..7).map(|q| 1.0 / (q + 1) as f64).sum::<f64>() / 3.0;
        let want_prev = (1..7).map(|q| 1.0 / (q + 1) as f64).sum::<f64>() / 6.0;
        assert!((uniform[0] - want_ind).abs() < 1e-15);
        assert!((uniform[1] - want_prev).abs() < 1e-15);
        assert!((uniform[2] - want_ind).abs() < 1e-15);
    }

    #[test]
    fn prompts_without_repeat_positions_are_rejected() {
        let p = Prompt::from_tokens(3, vec![1, 2, 3]);
        let e = repeat_bounds(&p).unwrap_err();
        assert!(
            e.message
                .contains("prompt 3 has no position named `seq_start`"),
            "{e}"
        );
        let mut p = Prompt::from_tokens(4, vec![1, 2, 3]);
        p.positions.insert(SEQ_START.into(), 1);
        p.positions.insert(REPEAT_START.into(), 3);
        let e = repeat_bounds(&p).unwrap_err();
        assert!(e.message.contains("inside the prompt"), "{e}");
        p.positions.insert(REPEAT_START.into(), 2);
        assert_eq!(repeat_bounds(&p).unwrap(), (1, 2));
    }
}
