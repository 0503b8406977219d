//! `head_detector`: TransformerLens's `detect_head` for previous-token, duplicate-token and
//! induction heads, per prompt or averaged over prompts.

use circuitry_models::HookKind;
use circuitry_spec::{Detector, ErrorMeasure, HeadDetectorParams};

use super::head_score_means::{HeadScoreMeans, PerPromptTables};
use super::prelude::*;
use crate::acts::{attention, patterns};

crate::table_row! {
    pub struct DetectorScoreRow {
        layer = "Layer of the head.",
        head = "Head index within the layer.",
        detector: String = "previous_token, duplicate_token or induction.",
        score: f64 = "Mean over prompts of the per-prompt score (TransformerLens detect_head).",
        n_prompts: u32 = "Prompts averaged.",
    }
}

crate::table_row! {
    pub struct PromptDetectorScoreRow {
        prompt = "Prompt id (index in the dataset).",
        layer = "Layer of the head.",
        head = "Head index within the layer.",
        detector: String = "previous_token, duplicate_token or induction.",
        score: f64 = "Score of this prompt (TransformerLens detect_head).",
    }
}

/// The ideal `seq x seq` pattern (row-major, query-major) of a detector for `tokens`, exactly as
/// TransformerLens's `get_*_detection_pattern`.
pub fn detection_pattern(detector: Detector, tokens: &[u32]) -> Vec<f32> {
    let n = tokens.len();
    let mut p = vec![0f32; n * n];
    match detector {
        Detector::PreviousToken => {
            for q in 1..n {
                p[q * n + q - 1] = 1.0;
            }
        }
        Detector::DuplicateToken => {
            for q in 0..n {
                for k in 0..q {
                    if tokens[k] == tokens[q] {
                        p[q * n + k] = 1.0;
                    }
                }
            }
        }
        Detector::Induction => {
            // The duplicate-token pattern shifted one key to the right, first column zero.
            let dup = detection_pattern(Detector::DuplicateToken, tokens);
            for q in 0..n {
                for k in 1..=q {
                    p[q * n + k] = dup[q * n + k - 1];
                }
            }
        }
    }
    p
}

/// TransformerLens's `compute_head_attention_similarity_score` for one `n x n` pattern.
pub fn similarity(
    attention: &[f32],
    ideal: &[f32],
    n: usize,
    exclude_bos: bool,
    exclude_current: bool,
    measure: ErrorMeasure,
) -> f64 {
    let excluded = |q: usize, k: usize| (exclude_bos && k == 0) || (exclude_current && q == k);
    match measure {
        ErrorMeasure::Mul => {
            let (mut hit, mut total) = (0f64, 0f64);
            for q in 0..n {
                for k in 0..n {
                    if excluded(q, k) {
                        continue;
                    }
                    let a = attention[q * n + k] as f64;
                    hit += a * ideal[q * n + k] as f64;
                    total += a;
                }
            }
            hit / total
        }
        ErrorMeasure::Abs => {
            let mut sum = 0f64;
            for q in 0..n {
                for k in 0..n {
                    if !excluded(q, k) {
                        sum += (attention[q * n + k] - ideal[q * n + k]).abs() as f64;
                    }
                }
            }
            // TransformerLens: 1 - round(mean(|diff|) * size, 3).
            1.0 - ((sum / n as f64) * 1000.0).round() / 1000.0
        }
    }
}

const PER_PROMPT_TABLES: PerPromptTables =
    PerPromptTables::new::<DetectorScoreRow, PromptDetectorScoreRow>();

pub struct HeadDetector {
    params: HeadDetectorParams,
    /// One score per detector.
    scores: HeadScoreMeans,
}

impl Kind for HeadDetector {
    type Params = HeadDetectorParams;
    const TABLES: &'static [TableDecl] =
        &[PER_PROMPT_TABLES.averaged, PER_PROMPT_TABLES.per_prompt];

    fn build(params: Self::Params, cx: BuildContext) -> Result<Self, AnalysisError> {
        let filters = (params.layers.as_deref(), params.heads.as_deref());
        let scores = HeadScoreMeans::select(cx.config, filters, params.detectors.len())?;
        Ok(HeadDetector { params, scores })
    }

    fn tables(&self) -> Vec<TableDecl> {
        PER_PROMPT_TABLES.chosen(self.params.per_prompt)
    }
}

impl Analysis for HeadDetector {
    fn requirements(&self) -> Requirements {
        Requirements::at_layers(self.scores.layers(), HookKind::Pattern)
    }

    fn process(
        &mut self,
        _: &ModelContext,
        batch: &BatchContext,
        sink: &mut dyn TableSink,
    ) -> Result<(), AnalysisError> {
        let p = &self.params;
        let mut table = Rows::<PromptDetectorScoreRow>::new();
        let patterns = patterns(&batch.clean_output.cache, self.scores.layers())?;
        let heads = self.scores.heads().to_vec();
        for (r, prompt) in batch.prompts.iter().enumerate() {
            let n = prompt.len();
            if n < 2 {
                return Err(AnalysisError::new(format!(
                    "prompt {} has a single token; head detection needs at least two",
                    prompt.id
                )));
            }
            let ideals: Vec<Vec<f32>> = p
                .detectors
                .iter()
                .map(|&d| detection_pattern(d, &prompt.tokens))
                .collect();
            for (li, pattern) in patterns.iter().enumerate() {
                for (hi, &head) in heads.iter().enumerate() {
                    // The prompt's own n x n block, padding removed.
                    let mut att = vec![0f32; n * n];
                    for q in 0..n {
                        for k in 0..=q {
                            att[q * n + k] = attention(pattern, batch, r, head, q, k);
                        }
                    }
                    let scores = ideals.iter().map(|ideal| {
                        similarity(
                            &att,
                            ideal,
                            n,
                            p.exclude_bos,
                            p.exclude_current_token,
                            p.error_measure,
                        )
                    });
                    if p.per_prompt {
                        for (detector, score) in p.detectors.iter().zip(scores) {
                            table.push(PromptDetectorScoreRow {
                                prompt: prompt.id,
                                layer: self.scores.layers()[li] as i32,
                                head: head as i32,
                                detector: detector.to_string(),
                                score,
                            });
                        }
                    } else {
                        self.scores.add(li, hi, scores);
                    }
                }
            }
            self.scores.end_prompt();
        }
        if p.per_prompt {
            emit(sink, None, table)?;
        }
        Ok(())
    }

    fn finish(&mut self, _: &ModelContext, sink: &mut dyn TableSink) -> Result<(), AnalysisError> {
        if self.params.per_prompt {
            return Ok(());
        }
        let mut table = Rows::<DetectorScoreRow>::new();
        for (layer, head, means) in self.scores.means() {
            for (detector, score) in self.params.detectors.iter().zip(means) {
                table.push(DetectorScoreRow {
                    layer: layer as i32,
                    head: head as i32,
                    detector: detector.to_string(),
                    score,
                    n_prompts: self.scores.n_prompts(),
                });
            }
        }
        emit(sink, None, table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection_patterns_match_transformer_lens_by_hand() {
        // tokens: a b a b  -> duplicates at (2,0), (3,1); induction at (2,1), (3,2).
        let t = [7, 8, 7, 8];
        let dup = detection_pattern(Detector::DuplicateToken, &t);
        let ind = detection_pattern(Detector::Induction, &t);
        let prev = detection_pattern(Detector::PreviousToken, &t);
        let ones = |p: &[f32]| -> Vec<(usize, usize)> {
            (0..16)
                .filter(|i| p[*i] == 1.0)
                .map(|i| (i / 4, i % 4))
                .collect()
        };
        assert_eq!(ones(&dup), vec![(2, 0), (3, 1)]);
        assert_eq!(ones(&ind), vec![(2, 1), (3, 2)]);
        assert_eq!(ones(&prev), vec![(1, 0), (2, 1), (3, 2)]);
    }

    #[test]
    fn mul_score_is_the_attention_mass_on_the_ideal_entries() {
        // A perfect previous-token head (BOS attends to itself).
        let n = 3;
        let att = [1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0];
        let ideal = detection_pattern(Detector::PreviousToken, &[1, 2, 3]);
        let s = similarity(&att, &ideal, n, false, false, ErrorMeasure::Mul);
        assert!((s - 2.0 / 3.0).abs() < 1e-12);
        let s = similarity(&att, &ideal, n, true, false, ErrorMeasure::Mul);
        assert!((s - 1.0).abs() < 1e-12, "{s}");
    }
}
