//! `next_token`: the model's top-k next-token predictions and its loss on the actual next token.

use circuitry_models::burn::prelude::*;
use circuitry_models::burn::tensor::activation::log_softmax;
use circuitry_models::host_values;
use circuitry_spec::NextTokenParams;

use super::decode::{token_stats, top_k};
use super::prelude::*;
use crate::refs;

crate::table_row! {
    pub struct NextTokenRow {
        prompt = "Prompt id (index in the dataset).",
        position = "Token index whose next token is predicted.",
        input_token: String = "Text of the token at that position.",
        rank: u32 = "Rank of the prediction (0 = most likely).",
        token = "Text of the predicted token.",
        token_id: u32 = "Vocabulary id of the predicted token.",
        logit: f32 = "Logit of the predicted token.",
        prob: f32 = "Probability of the predicted token.",
        actual_next: Option<String> = "Text of the token that actually follows (null at the last position).",
        loss: Option<f32> = "Cross-entropy of the actual next token, -log p (null at the last position).",
    }
}

pub struct NextToken {
    params: NextTokenParams,
}

impl Kind for NextToken {
    type Params = NextTokenParams;
    const TABLES: &'static [TableDecl] = &[TableDecl::main::<NextTokenRow>()];

    fn build(params: Self::Params, _: BuildContext) -> Result<Self, AnalysisError> {
        Ok(NextToken { params })
    }
}

impl Analysis for NextToken {
    /// Each batch's rows are its prompts' alone.
    fn batch_local(&self) -> bool {
        true
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
        let mut table = Rows::<NextTokenRow>::new();
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
        let raw = host_values(&rows);
        for (i, &(r, pos)) in picks.iter().enumerate() {
            let prompt = &batch.prompts[r];
            let input = model.token_text(prompt.tokens[pos]);
            let actual = next[i].first().map(|&t| model.token_text(t));
            let loss = stats[i].first().map(|&(lp, _)| -lp);
            for (rank, &(id, logprob)) in tops[i].iter().enumerate() {
                table.push(NextTokenRow {
                    prompt: prompt.id,
                    position: pos as i32,
                    input_token: input.clone(),
                    rank: rank as u32,
                    token: model.token_text(id),
                    token_id: id,
                    logit: raw[i * v + id as usize],
                    prob: logprob.exp(),
                    actual_next: actual.clone(),
                    loss,
                });
            }
        }
        emit(sink, None, table)
    }
}
