//! `ov_circuit`: per-head OV circuits from the weights ([`crate::weight_circuits::ov`]): copying
//! scores, the top token pairs of the token-space circuit `W_E W_V W_O W_U` and singular values.

use circuitry_models::ModelConfig;
use circuitry_spec::AnalysisSpec;
use circuitry_spec::OvCircuitParams;

use super::head_circuits::{
    SINGULAR_VALUES, first, push_token_pairs, selected_heads, token_pair_row,
};
use crate::analysis::{Analysis, AnalysisError, Kind, ModelContext, Requirements, TableDecl, emit};
use crate::factored::{BlockOptions, Ranking};
use crate::table::{Rows, TableSink};
use crate::weight_circuits::CircuitWeights;
use crate::weight_circuits::ov::{HEAD_DOC, LAYER_DOC, RANK_DOC};
use crate::weight_circuits::ov::{
    HeadOvResult, OvOptions, OvScoreRow, SingularValueRow, ov_head, ov_scores_table,
    push_singular_values,
};

crate::table_row! {
    /// A row of the `top_pairs` table.
    pub struct OvTopPairRow {
        layer: i32 = LAYER_DOC,
        head: i32 = HEAD_DOC,
        rank: u32 = RANK_DOC,
        src_token: u32 = "token id of the attended-to (source) token: a row of W_E W_V W_O W_U",
        src_text: String = "text of src_token",
        dst_token: u32 = "token id of the output token whose logit changes: a column of W_E W_V W_O W_U",
        dst_text: String = "text of dst_token",
        value: f64 = "entry of the token-space OV circuit W_E W_V W_O W_U: logit change of dst_token per unit attention to src_token (no final norm, no biases)",
    }
}

token_pair_row!(OvTopPairRow);

const SCORES: TableDecl = TableDecl::main::<OvScoreRow>();
const TOP_PAIRS: TableDecl = TableDecl::part::<OvTopPairRow>("top_pairs").when("top_k > 0");

pub struct OvCircuit {
    params: OvCircuitParams,
    /// `(layer, head)`, layer-major.
    heads: Vec<(usize, usize)>,
}

impl Kind for OvCircuit {
    type Params = OvCircuitParams;
    const TABLES: &'static [TableDecl] = &[SCORES, TOP_PAIRS, SINGULAR_VALUES];

    fn build(
        params: &OvCircuitParams,
        _: &AnalysisSpec,
        config: &ModelConfig,
    ) -> Result<Self, AnalysisError> {
        let params = params.clone();
        let heads = selected_heads(config, params.layers.as_deref(), params.heads.as_deref())?;
        Ok(OvCircuit { params, heads })
    }

    fn tables(&self) -> Vec<TableDecl> {
        let mut tables = vec![SCORES];
        if self.params.top_k > 0 {
            tables.push(TOP_PAIRS);
        }
        if self.params.singular_values > 0 {
            tables.push(SINGULAR_VALUES);
        }
        tables
    }
}

impl Analysis for OvCircuit {
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
                let mut t = Rows::<OvTopPairRow>::new();
                for r in &results {
                    push_token_pairs(&mut t, model, r.layer, r.head, &r.top_pairs);
                }
                emit(sink, TOP_PAIRS.part, t)?;
            }
            if n_sv > 0 {
                let mut t = Rows::<SingularValueRow>::new();
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
                emit(sink, SINGULAR_VALUES.part, t)?;
            }
        }
        Ok(())
    }
}
