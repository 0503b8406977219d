//! `qk_circuit`: per-head QK circuits from the weights ([`crate::weight_circuits::qk`]): a
//! per-head summary, the top token pairs of `W_E W_Q W_Kᵀ W_Eᵀ`, the positional circuit
//! `W_pos W_Q W_Kᵀ W_posᵀ` (learned positions) and singular values.

use circuitry_models::{ModelConfig, Positional};
use circuitry_spec::QkCircuitParams;

use super::check_filters;
use super::ov_circuit::{first, push_token_pairs, selected_heads};
use crate::analysis::{Analysis, AnalysisError, ModelContext, Requirements, TableDecl, emit};
use crate::factored::{BlockOptions, Ranking};
use crate::table::{ColumnSpec, DType, Table, TableSink, Value};
use crate::weight_circuits::CircuitWeights;
use crate::weight_circuits::ov::{HEAD, LAYER, RANK, SINGULAR_VALUE_COLUMNS, push_singular_values};
use crate::weight_circuits::qk::{
    HeadQkResult, PositionScore, QK_POSITIONAL_COLUMNS, QkOptions, qk_head, qk_positional_table,
};

/// Columns of the main (per-head) table.
pub const COLUMNS: [ColumnSpec; 6] = [
    LAYER,
    HEAD,
    ColumnSpec::new(
        "frobenius_norm",
        DType::F64,
        "Frobenius norm of the QK circuit W_Q W_K^T (unscaled)",
    ),
    ColumnSpec::new(
        "top_singular_value",
        DType::F64,
        "largest singular value of W_Q W_K^T",
    ),
    ColumnSpec::new(
        "full_frobenius_norm",
        DType::F64,
        "Frobenius norm of the token-space QK circuit W_E W_Q W_K^T W_E^T",
    ),
    ColumnSpec::nullable(
        "positional_previous_token",
        DType::F64,
        "fraction of query positions q in 1..max_positions whose highest-scoring causal key in the positional circuit W_pos W_Q W_K^T W_pos^T is q - 1 (null without learned positions)",
    ),
];

/// Columns of the `top_pairs` table.
pub const TOP_PAIR_COLUMNS: [ColumnSpec; 8] = [
    LAYER,
    HEAD,
    RANK,
    ColumnSpec::new(
        "src_token",
        DType::U32,
        "token id of the key (source) token: a column of W_E W_Q W_K^T W_E^T",
    ),
    ColumnSpec::new("src_text", DType::Utf8, "text of src_token"),
    ColumnSpec::new(
        "dst_token",
        DType::U32,
        "token id of the query (destination) token: a row of W_E W_Q W_K^T W_E^T",
    ),
    ColumnSpec::new("dst_text", DType::Utf8, "text of dst_token"),
    ColumnSpec::new(
        "value",
        DType::F64,
        "entry of the token-space QK circuit W_E W_Q W_K^T W_E^T (unscaled attention score; no norm, biases or rotary)",
    ),
];

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

pub struct QkCircuit {
    params: QkCircuitParams,
    /// `(layer, head)`, layer-major.
    heads: Vec<(usize, usize)>,
    /// Whether the model has learned positions and `max_positions > 0`.
    positional: bool,
}

impl QkCircuit {
    pub fn new(params: QkCircuitParams, config: &ModelConfig) -> Result<Self, AnalysisError> {
        check_filters(config, params.layers.as_deref(), params.heads.as_deref())?;
        let heads = selected_heads(config, params.layers.as_deref(), params.heads.as_deref());
        let positional = config.positional == Positional::Learned && params.max_positions > 0;
        Ok(QkCircuit {
            params,
            heads,
            positional,
        })
    }

    fn summary(&self, results: &[HeadQkResult]) -> Table {
        let mut t = Table::new(&COLUMNS);
        for r in results {
            let positional = if self.positional {
                previous_token_fraction(&r.positional)
            } else {
                None
            };
            t.push_row(vec![
                (r.layer as i32).into(),
                (r.head as i32).into(),
                norm(&r.singular_values).into(),
                r.singular_values.first().copied().unwrap_or(0.0).into(),
                norm(&r.full_singular_values).into(),
                positional.map_or(Value::Null, Value::F64),
            ]);
        }
        t
    }
}

impl Analysis for QkCircuit {
    fn tables(&self) -> Vec<TableDecl> {
        let mut tables = vec![TableDecl::main(&COLUMNS)];
        if self.params.top_k > 0 {
            tables.push(TableDecl::part("top_pairs", &TOP_PAIR_COLUMNS));
        }
        if self.positional {
            tables.push(TableDecl::part("positional", &QK_POSITIONAL_COLUMNS));
        }
        if self.params.singular_values > 0 {
            tables.push(TableDecl::part("singular_values", &SINGULAR_VALUE_COLUMNS));
        }
        tables
    }

    fn requirements(&self) -> Requirements {
        Requirements::weights_only()
    }

    fn finish(
        &mut self,
        model: &ModelContext,
        sink: &mut dyn TableSink,
    ) -> Result<(), AnalysisError> {
        let w = CircuitWeights::from_transformer(model.model);
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
                .map(|&(l, h)| qk_head(&w, l, h, &opts))
                .collect();
            emit(sink, None, self.summary(&results))?;
            if opts.top_k > 0 {
                let mut t = Table::new(&TOP_PAIR_COLUMNS);
                for r in &results {
                    push_token_pairs(&mut t, model, r.layer, r.head, &r.top_pairs);
                }
                emit(sink, Some("top_pairs"), t)?;
            }
            if self.positional {
                emit(sink, Some("positional"), qk_positional_table(&results))?;
            }
            if n_sv > 0 {
                let mut t = Table::new(&SINGULAR_VALUE_COLUMNS);
                for r in &results {
                    push_singular_values(
                        &mut t,
                        r.layer,
                        r.head,
                        "qk",
                        first(&r.singular_values, n_sv),
                    );
                    push_singular_values(
                        &mut t,
                        r.layer,
                        r.head,
                        "full_qk",
                        first(&r.full_singular_values, n_sv),
                    );
                }
                emit(sink, Some("singular_values"), t)?;
            }
        }
        Ok(())
    }
}
