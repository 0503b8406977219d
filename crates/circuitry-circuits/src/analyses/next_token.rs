//! `next_token`: the model's top-k next-token predictions and its loss on the actual next token.

use circuitry_models::burn::prelude::*;
use circuitry_models::burn::tensor::activation::log_softmax;
use circuitry_spec::NextTokenParams;

use super::decode::{token_stats, top_k};
use crate::analysis::{
    Analysis, AnalysisError, BatchContext, ModelContext, Requirements, TableDecl, emit,
};
use crate::refs;
use crate::table::{ColumnSpec, DType, Table, TableSink};

pub const COLUMNS: [ColumnSpec; 10] = [
    ColumnSpec::new("prompt", DType::U32, "Prompt id (index in the dataset)."),
    ColumnSpec::new(
        "position",
        DType::I32,
        "Token index whose next token is predicted.",
    ),
    ColumnSpec::new(
        "input_token",
        DType::Utf8,
        "Text of the token at that position.",
    ),
    ColumnSpec::new(
        "rank",
        DType::U32,
        "Rank of the prediction (0 = most likely).",
    ),
    ColumnSpec::new("token", DType::Utf8, "Text of the predicted token."),
    ColumnSpec::new(
        "token_id",
        DType::U32,
        "Vocabulary id of the predicted token.",
    ),
    ColumnSpec::new("logit", DType::F32, "Logit of the predicted token."),
    ColumnSpec::new("prob", DType::F32, "Probability of the predicted token."),
    ColumnSpec::nullable(
        "actual_next",
        DType::Utf8,
        "Text of the token that actually follows (null at the last position).",
    ),
    ColumnSpec::nullable(
        "loss",
        DType::F32,
        "Cross-entropy of the actual next token, -log p (null at the last position).",
    ),
];

pub struct NextToken {
    params: NextTokenParams,
}

impl NextToken {
    pub fn new(params: NextTokenParams) -> Self {
        NextToken { params }
    }
}

impl Analysis for NextToken {
    fn tables(&self) -> Vec<TableDecl> {
        vec![TableDecl::main(&COLUMNS)]
    }

    fn requirements(&self) -> Requirements {
        Requirements::hooks([])
    }

    fn process(
        &mut self,
        model: &ModelContext,
        batch: &BatchContext,
        sink: &mut dyn TableSink,
    ) -> Result<(), AnalysisError> {
        let logits = batch.clean_output.logits.clone().ok_or_else(|| {
            AnalysisError::new("internal error: the forward pass produced no logits")
        })?;
        let mut picks: Vec<(usize, usize)> = Vec::new();
        for (r, prompt) in batch.prompts.iter().enumerate() {
            for pos in refs::positions(&self.params.positions, prompt)? {
                picks.push((r, pos));
            }
        }
        let mut table = Table::new(&COLUMNS);
        if picks.is_empty() {
            return emit(sink, None, table);
        }
        let [b, t, v] = logits.dims();
        let flat: Vec<i64> = picks
            .iter()
            .map(|&(r, pos)| (r * t + batch.slot(r, pos)) as i64)
            .collect();
        let index =
            Tensor::<1, Int>::from_data(TensorData::new(flat, [picks.len()]), &logits.device());
        let rows = logits.reshape([b * t, v]).select(0, index);
        let lp = log_softmax(rows.clone(), 1);
        let next: Vec<Vec<u32>> = picks
            .iter()
            .map(|&(r, pos)| {
                batch.prompts[r]
                    .tokens
                    .get(pos + 1)
                    .map(|&t| vec![t])
                    .unwrap_or_default()
            })
            .collect();
        let stats = token_stats(&lp, &next);
        let tops = top_k(&lp, self.params.top_k as usize);
        let raw = rows
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap_or_default();
        for (i, &(r, pos)) in picks.iter().enumerate() {
            let prompt = &batch.prompts[r];
            let input = model.token_text(prompt.tokens[pos]);
            let actual = next[i].first().map(|&t| model.token_text(t));
            let loss = stats[i].first().map(|&(lp, _)| -lp);
            for (rank, &(id, logprob)) in tops[i].iter().enumerate() {
                table.push_row(vec![
                    prompt.id.into(),
                    (pos as i32).into(),
                    input.clone().into(),
                    (rank as u32).into(),
                    model.token_text(id).into(),
                    id.into(),
                    raw[i * v + id as usize].into(),
                    logprob.exp().into(),
                    actual.clone().into(),
                    loss.into(),
                ]);
            }
        }
        emit(sink, None, table)
    }
}
