//! `kind = "head_detector"`.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::AnalysisKind;
use crate::validate::Checker;

analysis_params! {
    /// Scores every head for how well its attention matches previous-token, duplicate-token and
    /// induction patterns.
    ///
    /// Follows TransformerLens's `detect_head`: the score compares each head's attention pattern with
    /// the detector's ideal pattern. Columns: layer, head, detector, score (and prompt with
    /// `per_prompt = true`). Induction and duplicate-token detection need repeated tokens, e.g. the
    /// `repeated_tokens` generator.
    pub struct HeadDetectorParams {
        /// Which patterns to score.
        #[serde(default = "all_detectors")]
        pub detectors: Vec<Detector>,
        /// Layers to score (0-based). Default: every layer.
        pub layers: Option<Vec<u32>>,
        /// Heads to score in every selected layer (0-based). Default: every head.
        pub heads: Option<Vec<u32>>,
        /// One row per prompt instead of one row per layer, head and detector averaged over prompts
        /// (the average is what TransformerLens's `detect_head` returns).
        #[serde(default)]
        pub per_prompt: bool,
        /// Ignore attention to the first (BOS) token, as TransformerLens's `exclude_bos`.
        #[serde(default)]
        pub exclude_bos: bool,
        /// Ignore attention of each token to itself, as TransformerLens's `exclude_current_token`.
        #[serde(default)]
        pub exclude_current_token: bool,
        /// How a pattern is compared with the detector's ideal pattern, as TransformerLens's
        /// `error_measure`: "mul" (attention mass on the ideal entries) or "abs" (one minus the mean
        /// absolute difference).
        #[serde(default)]
        pub error_measure: ErrorMeasure,
    }
}

/// An ideal attention pattern to compare heads with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Detector {
    /// Each token attends to the token just before it.
    PreviousToken,
    /// Each token attends to earlier occurrences of the same token.
    DuplicateToken,
    /// Each token attends to the token after an earlier occurrence of itself.
    Induction,
}

impl fmt::Display for Detector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Detector::PreviousToken => "previous_token",
            Detector::DuplicateToken => "duplicate_token",
            Detector::Induction => "induction",
        })
    }
}

/// How `head_detector` compares a pattern with the ideal one (TransformerLens's `error_measure`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorMeasure {
    /// Attention mass on the ideal pattern's entries, averaged over query positions (default).
    #[default]
    Mul,
    /// One minus the mean absolute difference from the ideal pattern.
    Abs,
}

fn all_detectors() -> Vec<Detector> {
    vec![
        Detector::PreviousToken,
        Detector::DuplicateToken,
        Detector::Induction,
    ]
}

impl AnalysisKind for HeadDetectorParams {
    fn validate(&self, c: &mut Checker<'_, '_>) {
        c.distinct("detectors", &self.detectors);
        c.filter("layers", self.layers.as_deref());
        c.filter("heads", self.heads.as_deref());
    }
}
