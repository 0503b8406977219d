//! `ov_circuit`: per-head OV circuits from the weights ([`crate::weight_circuits::ov`]): copying
//! scores, the top token pairs of the token-space circuit `W_E W_V W_O W_U` and singular values.

use circuitry_spec::OvCircuitParams;

use super::head_circuits::{
    SINGULAR_VALUES, TOP_PAIRS_PART, emit_pairs_and_singular_values, selected_heads, token_pair_row,
};
use super::prelude::*;
use super::weights_only::{HostWeights, WeightsOnly};
use crate::factored::{BlockOptions, Ranking};
use crate::weight_circuits::ov::{HeadOvResult, OvOptions, OvScoreRow, ov_head, ov_scores_table};

token_pair_row! {
    /// A row of the `top_pairs` table.
    OvTopPairRow {
        src_token: "token id of the attended-to (source) token: a row of W_E W_V W_O W_U",
        dst_token: "token id of the output token whose logit changes: a column of W_E W_V W_O W_U",
        value: "entry of the token-space OV circuit W_E W_V W_O W_U: logit change of dst_token per unit attention to src_token (no final norm, no biases)",
    }
}

const SCORES: TableDecl = TableDecl::main::<OvScoreRow>();
const TOP_PAIRS: TableDecl = TableDecl::part::<OvTopPairRow>(TOP_PAIRS_PART).when("top_k > 0");

pub struct OvCircuit {
    params: OvCircuitParams,
    /// `(layer, head)`, layer-major.
    heads: Vec<(usize, usize)>,
}

impl Kind for OvCircuit {
    type Params = OvCircuitParams;
    const TABLES: &'static [TableDecl] = &[SCORES, TOP_PAIRS, SINGULAR_VALUES];

    fn build(params: Self::Params, cx: BuildContext) -> Result<Self, AnalysisError> {
        super::check_linear_paths(cx.config, false, true, true)?;
        let heads = selected_heads(cx.config, params.layers.as_deref(), params.heads.as_deref())?;
        Ok(OvCircuit { params, heads })
    }

    fn tables(&self) -> Vec<TableDecl> {
        let p = &self.params;
        [
            Some(SCORES),
            (p.top_k > 0).then_some(TOP_PAIRS),
            (p.singular_values > 0).then_some(SINGULAR_VALUES),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

impl WeightsOnly for OvCircuit {
    fn write(
        &mut self,
        weights: &HostWeights,
        model: &ModelContext,
        sink: &mut dyn TableSink,
    ) -> Result<(), AnalysisError> {
        let w = weights.get();
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
                    ov_head(w, l, h, &opts).map_err(|e| {
                        AnalysisError::new(format!("OV circuit of layer {l}, head {h}: {e}"))
                    })
                })
                .collect::<Result<Vec<HeadOvResult>, _>>()?;
            emit(sink, None, ov_scores_table(&results))?;
            let counts = (opts.top_k, n_sv);
            let circuits = ["ov", "full_ov"];
            emit_pairs_and_singular_values::<OvTopPairRow>(
                sink, model, &results, counts, circuits,
            )?;
        }
        Ok(())
    }
}
