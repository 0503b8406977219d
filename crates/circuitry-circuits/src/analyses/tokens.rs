//! `tokens`: the prompts as the model sees them, one row per token, for joining with other tables.

use circuitry_spec::TokensParams;

use super::prelude::*;

crate::table_row! {
    pub struct TokenRow {
        prompt = "Prompt id (index in the dataset).",
        position = "Token index within the prompt.",
        token_id: u32 = "Vocabulary id of the token.",
        token = "Text of the token.",
        position_name: Option<String> = "Names of this position in the dataset (e.g. IO, S2, END; comma-separated), null if none besides first/last.",
        corrupt_token_id: Option<u32> = "Token of the counterfactual prompt at this position (null without one).",
        corrupt_token: Option<String> = "Text of the counterfactual token (null without one).",
    }
}

pub struct Tokens {
    params: TokensParams,
}

impl Kind for Tokens {
    type Params = TokensParams;
    const TABLES: &'static [TableDecl] = &[TableDecl::main::<TokenRow>()];

    fn build(params: Self::Params, _: BuildContext) -> Result<Self, AnalysisError> {
        Ok(Tokens { params })
    }
}

impl Analysis for Tokens {
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
        let mut table = Rows::<TokenRow>::new();
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
                table.push(TokenRow {
                    prompt: prompt.id,
                    position: pos as i32,
                    token_id: id,
                    token: model.token_text(id),
                    position_name: (!names.is_empty()).then(|| names.join(",")),
                    corrupt_token_id: corrupt_id,
                    corrupt_token: corrupt_id.map(|c| model.token_text(c)),
                });
            }
        }
        emit(sink, None, table)
    }
}
