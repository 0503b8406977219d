//! `tokens`: the prompts as the model sees them, one row per token, for joining with other tables.

use circuitry_spec::TokensParams;

use crate::analysis::{
    Analysis, AnalysisError, BatchContext, ModelContext, Requirements, TableDecl, emit,
};
use crate::table::{ColumnSpec, DType, Table, TableSink};

pub const COLUMNS: [ColumnSpec; 7] = [
    ColumnSpec::new("prompt", DType::U32, "Prompt id (index in the dataset)."),
    ColumnSpec::new("position", DType::I32, "Token index within the prompt."),
    ColumnSpec::new("token_id", DType::U32, "Vocabulary id of the token."),
    ColumnSpec::new("token", DType::Utf8, "Text of the token."),
    ColumnSpec::nullable(
        "position_name",
        DType::Utf8,
        "Names of this position in the dataset (e.g. IO, S2, END; comma-separated), null if none besides first/last.",
    ),
    ColumnSpec::nullable(
        "corrupt_token_id",
        DType::U32,
        "Token of the counterfactual prompt at this position (null without one).",
    ),
    ColumnSpec::nullable(
        "corrupt_token",
        DType::Utf8,
        "Text of the counterfactual token (null without one).",
    ),
];

pub struct Tokens {
    params: TokensParams,
}

impl Tokens {
    pub fn new(params: TokensParams) -> Self {
        Tokens { params }
    }
}

impl Analysis for Tokens {
    fn tables(&self) -> Vec<TableDecl> {
        vec![TableDecl::main(&COLUMNS)]
    }

    /// Needs the prompts only; the shared forward pass it rides on costs it nothing extra.
    fn requirements(&self) -> Requirements {
        Requirements::hooks([])
    }

    fn process(
        &mut self,
        model: &ModelContext,
        batch: &BatchContext,
        sink: &mut dyn TableSink,
    ) -> Result<(), AnalysisError> {
        let mut table = Table::new(&COLUMNS);
        for prompt in batch.prompts {
            let corrupt = prompt
                .corrupt_tokens
                .as_ref()
                .filter(|_| self.params.corrupt);
            for (pos, &id) in prompt.tokens.iter().enumerate() {
                let names: Vec<&str> = prompt
                    .positions
                    .iter()
                    .filter(|(n, p)| **p == pos && n.as_str() != "first" && n.as_str() != "last")
                    .map(|(n, _)| n.as_str())
                    .collect();
                let corrupt_id = corrupt.map(|c| c[pos]);
                table.push_row(vec![
                    prompt.id.into(),
                    (pos as i32).into(),
                    id.into(),
                    model.token_text(id).into(),
                    (!names.is_empty()).then(|| names.join(",")).into(),
                    corrupt_id.into(),
                    corrupt_id.map(|c| model.token_text(c)).into(),
                ]);
            }
        }
        emit(sink, None, table)
    }
}
