//! `ov_circuit`: per-head OV circuits from the weights ([`crate::weight_circuits::ov`]): copying
//! scores, the top token pairs of the token-space circuit `W_E W_V W_O W_U` and singular values.

use circuitry_models::ModelConfig;
use circuitry_spec::OvCircuitParams;

use super::{check_filters, selected};
use crate::analysis::{Analysis, AnalysisError, ModelContext, Requirements, TableDecl, emit};
use crate::factored::{BlockOptions, Ranking};
use crate::table::{ColumnSpec, DType, Table, TableSink};
use crate::weight_circuits::CircuitWeights;
use crate::weight_circuits::ov::{
    HEAD, HeadOvResult, LAYER, OV_SCORE_COLUMNS, OvOptions, RANK, SINGULAR_VALUE_COLUMNS,
    TokenPair, ov_head, ov_scores_table, push_singular_values,
};

/// Columns of the `top_pairs` table.
pub const TOP_PAIR_COLUMNS: [ColumnSpec; 8] = [
    LAYER,
    HEAD,
    RANK,
    ColumnSpec::new(
        "src_token",
        DType::U32,
        "token id of the attended-to (source) token: a row of W_E W_V W_O W_U",
    ),
    ColumnSpec::new("src_text", DType::Utf8, "text of src_token"),
    ColumnSpec::new(
        "dst_token",
        DType::U32,
        "token id of the output token whose logit changes: a column of W_E W_V W_O W_U",
    ),
    ColumnSpec::new("dst_text", DType::Utf8, "text of dst_token"),
    ColumnSpec::new(
        "value",
        DType::F64,
        "entry of the token-space OV circuit W_E W_V W_O W_U: logit change of dst_token per unit attention to src_token (no final norm, no biases)",
    ),
];

/// Builds the rows of a token-pair table (`TOP_PAIR_COLUMNS` layout) for one head.
pub(crate) fn push_token_pairs(
    t: &mut Table,
    model: &ModelContext,
    layer: usize,
    head: usize,
    pairs: &[TokenPair],
) {
    for p in pairs {
        t.push_row(vec![
            (layer as i32).into(),
            (head as i32).into(),
            p.rank.into(),
            p.src_token.into(),
            model.token_text(p.src_token).into(),
            p.dst_token.into(),
            model.token_text(p.dst_token).into(),
            p.value.into(),
        ]);
    }
}

/// The first `n` singular values (all when fewer exist).
pub(crate) fn first(values: &[f64], n: usize) -> &[f64] {
    &values[..n.min(values.len())]
}

pub struct OvCircuit {
    params: OvCircuitParams,
    /// `(layer, head)`, layer-major.
    heads: Vec<(usize, usize)>,
}

impl OvCircuit {
    pub fn new(params: OvCircuitParams, config: &ModelConfig) -> Result<Self, AnalysisError> {
        check_filters(config, params.layers.as_deref(), params.heads.as_deref())?;
        let heads = selected_heads(config, params.layers.as_deref(), params.heads.as_deref());
        Ok(OvCircuit { params, heads })
    }
}

/// Every selected `(layer, head)`, layer-major.
pub(crate) fn selected_heads(
    config: &ModelConfig,
    layers: Option<&[u32]>,
    heads: Option<&[u32]>,
) -> Vec<(usize, usize)> {
    let heads = selected(config.n_heads, heads);
    selected(config.n_layers, layers)
        .into_iter()
        .flat_map(|l| heads.iter().map(move |&h| (l, h)))
        .collect()
}

impl Analysis for OvCircuit {
    fn tables(&self) -> Vec<TableDecl> {
        let mut tables = vec![TableDecl::main(&OV_SCORE_COLUMNS)];
        if self.params.top_k > 0 {
            tables.push(TableDecl::part("top_pairs", &TOP_PAIR_COLUMNS));
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
        let opts = OvOptions {
            heads: None,
            top_k: self.params.top_k as usize,
            ranking: Ranking::Largest,
            block: BlockOptions::default(),
        };
        let n_sv = self.params.singular_values as usize;
        // One chunk per layer, so that rows reach the sink while later layers are computed.
        for chunk in self.heads.chunk_by(|a, b| a.0 == b.0) {
            let results = chunk
                .iter()
                .map(|&(l, h)| {
                    ov_head(&w, l, h, &opts).map_err(|e| {
                        AnalysisError::new(format!("OV circuit of layer {l}, head {h}: {e}"))
                    })
                })
                .collect::<Result<Vec<HeadOvResult>, _>>()?;
            emit(sink, None, ov_scores_table(&results))?;
            if opts.top_k > 0 {
                let mut t = Table::new(&TOP_PAIR_COLUMNS);
                for r in &results {
                    push_token_pairs(&mut t, model, r.layer, r.head, &r.top_pairs);
                }
                emit(sink, Some("top_pairs"), t)?;
            }
            if n_sv > 0 {
                let mut t = Table::new(&SINGULAR_VALUE_COLUMNS);
                for r in &results {
                    push_singular_values(
                        &mut t,
                        r.layer,
                        r.head,
                        "ov",
                        first(&r.singular_values, n_sv),
                    );
                    push_singular_values(
                        &mut t,
                        r.layer,
                        r.head,
                        "full_ov",
                        first(&r.full_singular_values, n_sv),
                    );
                }
                emit(sink, Some("singular_values"), t)?;
            }
        }
        Ok(())
    }
}
