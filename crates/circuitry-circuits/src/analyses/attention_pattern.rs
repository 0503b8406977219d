//! `attention_pattern`: attention probabilities of selected heads, one row per entry.

use circuitry_models::{HookKind, HookPoint, ModelConfig};
use circuitry_spec::AttentionPatternParams;

use super::{check_filters, selected};
use crate::acts::{attention, patterns};
use crate::analysis::{
    Analysis, AnalysisError, BatchContext, ModelContext, Requirements, TableDecl, emit,
};
use crate::refs;
use crate::table::{ColumnSpec, DType, Table, TableSink};

pub const COLUMNS: [ColumnSpec; 8] = [
    ColumnSpec::new("prompt", DType::U32, "Prompt id (index in the dataset)."),
    ColumnSpec::new("layer", DType::I32, "Layer of the head."),
    ColumnSpec::new("head", DType::I32, "Head index within the layer."),
    ColumnSpec::new(
        "query_position",
        DType::I32,
        "Token index attending (destination).",
    ),
    ColumnSpec::new(
        "key_position",
        DType::I32,
        "Token index attended to (source); at most query_position.",
    ),
    ColumnSpec::new("query_token", DType::Utf8, "Text of the query token."),
    ColumnSpec::new("key_token", DType::Utf8, "Text of the key token."),
    ColumnSpec::new(
        "attention",
        DType::F32,
        "Attention probability (blocks.L.attn.hook_pattern).",
    ),
];

pub struct AttentionPattern {
    params: AttentionPatternParams,
    layers: Vec<usize>,
    heads: Vec<usize>,
}

impl AttentionPattern {
    pub fn new(
        params: AttentionPatternParams,
        config: &ModelConfig,
    ) -> Result<Self, AnalysisError> {
        check_filters(config, params.layers.as_deref(), params.heads.as_deref())?;
        Ok(AttentionPattern {
            layers: selected(config.n_layers, params.layers.as_deref()),
            heads: selected(config.n_heads, params.heads.as_deref()),
            params,
        })
    }
}

impl Analysis for AttentionPattern {
    fn tables(&self) -> Vec<TableDecl> {
        vec![TableDecl::main(&COLUMNS)]
    }

    fn requirements(&self) -> Requirements {
        Requirements::hooks(
            self.layers
                .iter()
                .map(|&l| HookPoint::layer(l, HookKind::Pattern)),
        )
    }

    fn process(
        &mut self,
        model: &ModelContext,
        batch: &BatchContext,
        sink: &mut dyn TableSink,
    ) -> Result<(), AnalysisError> {
        let mut table = Table::new(&COLUMNS);
        let patterns = patterns(batch.clean_output, &self.layers)?;
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
                            table.push_row(vec![
                                prompt.id.into(),
                                (layer as i32).into(),
                                (head as i32).into(),
                                (q as i32).into(),
                                (k as i32).into(),
                                texts[q].clone().into(),
                                texts[k].clone().into(),
                                a.into(),
                            ]);
                        }
                    }
                }
            }
        }
        emit(sink, None, table)
    }
}
