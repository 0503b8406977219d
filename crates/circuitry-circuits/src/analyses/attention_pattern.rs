//! `attention_pattern`: attention probabilities of selected heads, one row per entry.

use circuitry_models::HookKind;
use circuitry_spec::AttentionPatternParams;

use super::prelude::*;
use super::selected_layers_heads;
use crate::acts::{attention, patterns};
use crate::refs;

crate::table_row! {
    pub struct AttentionRow {
        prompt = "Prompt id (index in the dataset).",
        layer = "Layer of the head.",
        head = "Head index within the layer.",
        query_position: i32 = "Token index attending (destination).",
        key_position: i32 = "Token index attended to (source); at most query_position.",
        query_token: String = "Text of the query token.",
        key_token: String = "Text of the key token.",
        attention: f32 = "Attention probability (blocks.L.attn.hook_pattern).",
    }
}

pub struct AttentionPattern {
    params: AttentionPatternParams,
    layers: Vec<usize>,
    heads: Vec<usize>,
}

impl Kind for AttentionPattern {
    type Params = AttentionPatternParams;
    const TABLES: &'static [TableDecl] = &[TableDecl::main::<AttentionRow>()];

    fn build(params: Self::Params, cx: BuildContext) -> Result<Self, AnalysisError> {
        let (layers, heads) =
            selected_layers_heads(cx.config, params.layers.as_deref(), params.heads.as_deref())?;
        Ok(AttentionPattern {
            layers,
            heads,
            params,
        })
    }
}

impl Analysis for AttentionPattern {
    /// Each batch's rows are its prompts' alone.
    fn batch_local(&self) -> bool {
        true
    }

    fn requirements(&self) -> Requirements {
        Requirements::at_layers(&self.layers, HookKind::Pattern)
    }

    fn process(
        &mut self,
        model: &ModelContext,
        batch: &BatchContext,
        sink: &mut dyn TableSink,
    ) -> Result<(), AnalysisError> {
        let mut table = Rows::<AttentionRow>::new();
        let patterns = patterns(&batch.clean_output.cache, &self.layers)?;
        for (&layer, pattern) in self.layers.iter().zip(&patterns) {
            for (r, prompt) in batch.prompts.iter().enumerate() {
                if !refs::keep(self.params.prompts.as_deref(), prompt.id as usize) {
                    continue;
                }
                let queries = refs::positions(&self.params.query_positions, prompt)?;
                let keys = refs::positions(&self.params.key_positions, prompt)?;
                let texts: Vec<String> =
                    prompt.tokens.iter().map(|&t| model.token_text(t)).collect();
                for &head in &self.heads {
                    for &q in &queries {
                        for &k in keys.iter().filter(|&&k| k <= q) {
                            let a = attention(pattern, batch, r, head, q, k);
                            if self.params.min_attention.is_some_and(|m| (a as f64) < m) {
                                continue;
                            }
                            table.push(AttentionRow {
                                prompt: prompt.id,
                                layer: layer as i32,
                                head: head as i32,
                                query_position: q as i32,
                                key_position: k as i32,
                                query_token: texts[q].clone(),
                                key_token: texts[k].clone(),
                                attention: a,
                            });
                        }
                    }
                }
            }
        }
        emit(sink, None, table)
    }
}
