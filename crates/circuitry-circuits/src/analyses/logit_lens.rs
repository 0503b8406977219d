//! `logit_lens`: what the residual stream after each layer predicts, decoded through the final
//! norm (scale recomputed for that layer's residual, as in nostalgebraist's logit lens) and the
//! unembedding. After the last layer this is exactly the model's output distribution.

use circuitry_models::burn::prelude::*;
use circuitry_models::{HookKind, HookPoint};
use circuitry_spec::LogitLensParams;
use circuitry_spec::TokenSelection;

use super::decode::{log_probs, token_stats, top_k};
use super::prelude::*;
use super::{check_filters, selected};
use crate::refs;

crate::table_row! {
    pub struct LogitLensRow {
        prompt = "Prompt id (index in the dataset).",
        layer = "Block whose output (blocks.L.hook_resid_post) is decoded.",
        position = "Token index whose residual stream is decoded.",
        input_token: String = "Text of the token at that position.",
        kind: &'static str = "`target` for the requested tokens, `top` for the top-k predictions.",
        token = "Text of the reported token.",
        token_id: u32 = "Vocabulary id of the reported token.",
        logprob: f32 = "Log-probability of the token under the decoded distribution.",
        rank: u32 = "Rank of the token (0 = most likely).",
    }
}

pub struct LogitLens {
    params: LogitLensParams,
    layers: Vec<usize>,
}

impl Kind for LogitLens {
    type Params = LogitLensParams;
    const TABLES: &'static [TableDecl] = &[TableDecl::main::<LogitLensRow>()];

    fn build(params: Self::Params, cx: BuildContext) -> Result<Self, AnalysisError> {
        check_filters(cx.config, params.layers.as_deref(), None)?;
        Ok(LogitLens {
            layers: selected(cx.config.n_layers, params.layers.as_deref()),
            params,
        })
    }
}

impl Analysis for LogitLens {
    /// Each batch's rows are its prompts' alone.
    fn batch_local(&self) -> bool {
        true
    }

    fn requirements(&self) -> Requirements {
        Requirements::at_layers(&self.layers, HookKind::ResidPost)
    }

    fn process(
        &mut self,
        model: &ModelContext,
        batch: &BatchContext,
        sink: &mut dyn TableSink,
    ) -> Result<(), AnalysisError> {
        let cfg = &model.model.config;
        // (row, token index, target ids) for every decoded vector.
        let mut picks: Vec<(usize, usize, Vec<u32>)> = Vec::new();
        for (r, prompt) in batch.prompts.iter().enumerate() {
            for pos in refs::positions(&self.params.positions, prompt)? {
                let targets = match &self.params.tokens {
                    TokenSelection::Next => match prompt.tokens.get(pos + 1) {
                        Some(&t) => vec![t],
                        None if self.params.top_k.is_some() => vec![],
                        None => continue,
                    },
                    TokenSelection::Tokens(list) => list
                        .iter()
                        .enumerate()
                        .map(|(i, t)| {
                            let key = format!("tokens.{i}");
                            refs::token(&key, t, prompt, model.tokenizer, cfg.d_vocab)
                        })
                        .collect::<Result<_, _>>()?,
                };
                picks.push((r, pos, targets));
            }
        }
        let mut table = Rows::<LogitLensRow>::new();
        if picks.is_empty() {
            return emit(sink, None, table);
        }
        let [b, t] = batch.clean.ids.dims();
        let device = batch.clean.device();
        let flat: Vec<i64> = picks
            .iter()
            .map(|(r, pos, _)| (r * t + batch.slot(*r, *pos)) as i64)
            .collect();
        let index = Tensor::<1, Int>::from_data(TensorData::new(flat, [picks.len()]), &device);
        let targets: Vec<Vec<u32>> = picks.iter().map(|p| p.2.clone()).collect();
        for &layer in &self.layers {
            let hook = HookPoint::layer(layer, HookKind::ResidPost);
            let resid = batch
                .clean_output
                .cache
                .get3(&hook)
                .map_err(|e| AnalysisError::new(format!("internal error: {e}")))?;
            let d = resid.dims()[2];
            let x = resid.reshape([b * t, d]).select(0, index.clone());
            let lp = log_probs(model.model, x);
            let stats = token_stats(&lp, &targets);
            let tops = self.params.top_k.map(|k| top_k(&lp, k as usize));
            for (i, (r, pos, ids)) in picks.iter().enumerate() {
                let prompt = &batch.prompts[*r];
                let input = model.token_text(prompt.tokens[*pos]);
                let mut push = |kind: &'static str, id: u32, logprob: f32, rank: u32| {
                    table.push(LogitLensRow {
                        prompt: prompt.id,
                        layer: layer as i32,
                        position: *pos as i32,
                        input_token: input.clone(),
                        kind,
                        token: model.token_text(id),
                        token_id: id,
                        logprob,
                        rank,
                    });
                };
                for (&id, &(logprob, rank)) in ids.iter().zip(&stats[i]) {
                    push("target", id, logprob, rank);
                }
                if let Some(tops) = &tops {
                    for (rank, &(id, logprob)) in tops[i].iter().enumerate() {
                        push("top", id, logprob, rank as u32);
                    }
                }
            }
        }
        emit(sink, None, table)
    }
}
