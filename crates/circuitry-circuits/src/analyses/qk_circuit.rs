//! `qk_circuit`: per-head QK circuits from the weights ([`crate::weight_circuits::qk`]): a
//! per-head summary, the top token pairs of `W_E W_Q W_Kᵀ W_Eᵀ`, the positional circuit
//! `W_pos W_Q W_Kᵀ W_posᵀ` (learned positions) and singular values.

use circuitry_models::Positional;
use circuitry_spec::QkCircuitParams;

use super::head_circuits::{
    SINGULAR_VALUES, TOP_PAIRS_PART, emit_pairs_and_singular_values, selected_heads, token_pair_row,
};
use super::prelude::*;
use super::weights_only::{HostWeights, WeightsOnly};
use crate::factored::{BlockOptions, Ranking};
use crate::table::Table;
use crate::weight_circuits::ov::{HEAD_DOC, LAYER_DOC};
use crate::weight_circuits::qk::{
    HeadQkResult, PositionScore, QkOptions, QkPositionalRow, qk_head, qk_positional_table,
};

crate::table_row! {
    /// A row of the main (per-head) table.
    pub struct QkScoreRow {
        layer = LAYER_DOC,
        head = HEAD_DOC,
        frobenius_norm: f64 = "Frobenius norm of the QK circuit W_Q W_K^T (unscaled)",
        top_singular_value: f64 = "largest singular value of W_Q W_K^T",
        full_frobenius_norm: f64 = "Frobenius norm of the token-space QK circuit W_E W_Q W_K^T W_E^T",
        positional_previous_token: Option<f64> = "fraction of query positions q in 1..max_positions whose highest-scoring causal key in the positional circuit W_pos W_Q W_K^T W_pos^T is q - 1 (null without learned positions)",
    }
}

token_pair_row! {
    /// A row of the `top_pairs` table.
    QkTopPairRow {
        src_token: "token id of the key (source) token: a column of W_E W_Q W_K^T W_E^T",
        dst_token: "token id of the query (destination) token: a row of W_E W_Q W_K^T W_E^T",
        value: "entry of the token-space QK circuit W_E W_Q W_K^T W_E^T (unscaled attention score; no norm, biases or rotary)",
    }
}

/// The fraction of query positions `q >= 1` whose best causal key is `q - 1`; `None` with fewer
/// than two positions. `scores` holds every causal entry, query-major, as
/// [`HeadQkResult::positional`].
pub fn previous_token_fraction(scores: &[PositionScore]) -> Option<f64> {
    let mut best: Vec<(u32, f64)> = Vec::new(); // per query: (argmax key, max score)
    for s in scores {
        let q = s.query_pos as usize;
        if best.len() <= q {
            best.resize(q + 1, (0, f64::NEG_INFINITY));
        }
        if s.score > best[q].1 {
            best[q] = (s.key_pos, s.score);
        }
    }
    if best.len() < 2 {
        return None;
    }
    let hits = (1..best.len())
        .filter(|&q| best[q].0 as usize + 1 == q)
        .count();
    Some(hits as f64 / (best.len() - 1) as f64)
}

fn norm(singular_values: &[f64]) -> f64 {
    singular_values.iter().map(|s| s * s).sum::<f64>().sqrt()
}

const SCORES: TableDecl = TableDecl::main::<QkScoreRow>();
const TOP_PAIRS: TableDecl = TableDecl::part::<QkTopPairRow>(TOP_PAIRS_PART).when("top_k > 0");
const POSITIONAL: TableDecl =
    TableDecl::part::<QkPositionalRow>("positional").when("learned positions, max_positions > 0");

pub struct QkCircuit {
    params: QkCircuitParams,
    /// `(layer, head)`, layer-major.
    heads: Vec<(usize, usize)>,
    /// Whether the model has learned positions and `max_positions > 0`.
    positional: bool,
}

impl Kind for QkCircuit {
    type Params = QkCircuitParams;
    const TABLES: &'static [TableDecl] = &[SCORES, TOP_PAIRS, POSITIONAL, SINGULAR_VALUES];

    fn build(params: Self::Params, cx: BuildContext) -> Result<Self, AnalysisError> {
        super::check_linear_paths(cx.config, true, false, false)?;
        let heads = selected_heads(cx.config, params.layers.as_deref(), params.heads.as_deref())?;
        let positional = cx.config.positional == Positional::Learned && params.max_positions > 0;
        Ok(QkCircuit {
            params,
            heads,
            positional,
        })
    }

    fn tables(&self) -> Vec<TableDecl> {
        let p = &self.params;
        [
            Some(SCORES),
            (p.top_k > 0).then_some(TOP_PAIRS),
            self.positional.then_some(POSITIONAL),
            (p.singular_values > 0).then_some(SINGULAR_VALUES),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

impl QkCircuit {
    fn summary(&self, results: &[HeadQkResult]) -> Table {
        let mut t = Rows::<QkScoreRow>::new();
        for r in results {
            let positional = if self.positional {
                previous_token_fraction(&r.positional)
            } else {
                None
            };
            t.push(QkScoreRow {
                layer: r.layer as i32,
                head: r.head as i32,
                frobenius_norm: norm(&r.singular_values),
                top_singular_value: r.singular_values.first().copied().unwrap_or(0.0),
                full_frobenius_norm: norm(&r.full_singular_values),
                positional_previous_token: positional,
            });
        }
        t.into_table()
    }
}

impl WeightsOnly for QkCircuit {
    fn write(
        &mut self,
        weights: &HostWeights,
        model: &ModelContext,
        sink: &mut dyn TableSink,
    ) -> Result<(), AnalysisError> {
        let w = weights.get();
        let opts = QkOptions {
            heads: None,
            top_k: self.params.top_k as usize,
            ranking: Ranking::Largest,
            max_positions: if self.positional {
                self.params.max_positions as usize
            } else {
                0
            },
            block: BlockOptions::default(),
        };
        let n_sv = self.params.singular_values as usize;
        // One chunk per layer, so that rows reach the sink while later layers are computed.
        for chunk in self.heads.chunk_by(|a, b| a.0 == b.0) {
            let results: Vec<HeadQkResult> = chunk
                .iter()
                .map(|&(l, h)| qk_head(w, l, h, &opts))
                .collect();
            emit(sink, None, self.summary(&results))?;
            if self.positional {
                emit(sink, POSITIONAL.part, qk_positional_table(&results))?;
            }
            let counts = (opts.top_k, n_sv);
            let circuits = ["qk", "full_qk"];
            emit_pairs_and_singular_values::<QkTopPairRow>(
                sink, model, &results, counts, circuits,
            )?;
        }
        Ok(())
    }
}
