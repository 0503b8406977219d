//! Per-head scores that a kind writes per prompt or as means over prompts (`per_prompt`): what
//! `head_detector` and `induction_scores` share.

use circuitry_models::ModelConfig;

use super::selected_layers_heads;
use crate::analysis::{AnalysisError, TableDecl};
use crate::table::Row;

/// Running sums of `n_scores` scores for every selected head, over the prompts seen so far.
pub(crate) struct HeadScoreMeans {
    layers: Vec<usize>,
    heads: Vec<usize>,
    n_scores: usize,
    /// Indexed by (layer index, head index, score index).
    sums: Vec<f64>,
    n_prompts: u32,
}

impl HeadScoreMeans {
    /// Sums for the heads that the `layers` and `heads` filters select, checked against the model.
    pub(crate) fn select(
        config: &ModelConfig,
        (layers, heads): (Option<&[u32]>, Option<&[u32]>),
        n_scores: usize,
    ) -> Result<HeadScoreMeans, AnalysisError> {
        let (layers, heads) = selected_layers_heads(config, layers, heads)?;
        Ok(HeadScoreMeans::new(layers, heads, n_scores))
    }

    fn new(layers: Vec<usize>, heads: Vec<usize>, n_scores: usize) -> HeadScoreMeans {
        let sums = vec![0.0; layers.len() * heads.len() * n_scores];
        HeadScoreMeans {
            layers,
            heads,
            n_scores,
            sums,
            n_prompts: 0,
        }
    }

    pub(crate) fn layers(&self) -> &[usize] {
        &self.layers
    }

    pub(crate) fn heads(&self) -> &[usize] {
        &self.heads
    }

    pub(crate) fn n_prompts(&self) -> u32 {
        self.n_prompts
    }

    /// Adds one prompt's scores of head `heads[hi]` of layer `layers[li]`.
    pub(crate) fn add(&mut self, li: usize, hi: usize, scores: impl IntoIterator<Item = f64>) {
        let start = (li * self.heads.len() + hi) * self.n_scores;
        for (sum, x) in self.sums[start..start + self.n_scores]
            .iter_mut()
            .zip(scores)
        {
            *sum += x;
        }
    }

    /// Counts one prompt whose scores have all been added.
    pub(crate) fn end_prompt(&mut self) {
        self.n_prompts += 1;
    }

    /// Every selected `(layer, head)`, layer-major, with the means of its scores over the prompts
    /// (zero when there were none).
    pub(crate) fn means(&self) -> impl Iterator<Item = (usize, usize, Vec<f64>)> + '_ {
        let n = f64::from(self.n_prompts.max(1));
        let per_layer = self.heads.len() * self.n_scores;
        self.layers
            .iter()
            .enumerate()
            .flat_map(move |(li, &layer)| {
                self.heads.iter().enumerate().map(move |(hi, &head)| {
                    let start = li * per_layer + hi * self.n_scores;
                    let sums = &self.sums[start..start + self.n_scores];
                    (layer, head, sums.iter().map(|s| s / n).collect())
                })
            })
    }
}

/// The two tables of a `per_prompt` kind, of which it writes one.
pub(crate) struct PerPromptTables {
    pub(crate) averaged: TableDecl,
    pub(crate) per_prompt: TableDecl,
}

impl PerPromptTables {
    /// Averaged rows `A` (the default) and per-prompt rows `P`.
    pub(crate) const fn new<A: Row, P: Row>() -> PerPromptTables {
        PerPromptTables {
            averaged: TableDecl::main::<A>().when("per_prompt = false (default)"),
            per_prompt: TableDecl::main::<P>().when("per_prompt = true"),
        }
    }

    /// The table written with this `per_prompt` setting.
    pub(crate) fn chosen(&self, per_prompt: bool) -> Vec<TableDecl> {
        vec![if per_prompt {
            self.per_prompt
        } else {
            self.averaged
        }]
    }
}
