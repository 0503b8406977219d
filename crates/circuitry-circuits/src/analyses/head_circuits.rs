//! What `ov_circuit` and `qk_circuit` share: the heads they select, their token-pair rows and
//! their singular-value table.

use circuitry_models::ModelConfig;

use super::selected_layers_heads;
use crate::analysis::{AnalysisError, ModelContext, TableDecl};
use crate::table::{Row, Rows};
use crate::weight_circuits::ov::{SingularValueRow, TokenPair};

/// The `singular_values` table of both kinds.
pub(crate) const SINGULAR_VALUES: TableDecl =
    TableDecl::part::<SingularValueRow>("singular_values").when("singular_values > 0");

/// Every selected `(layer, head)`, layer-major, after checking the filters.
pub(crate) fn selected_heads(
    config: &ModelConfig,
    layers: Option<&[u32]>,
    heads: Option<&[u32]>,
) -> Result<Vec<(usize, usize)>, AnalysisError> {
    let (layers, heads) = selected_layers_heads(config, layers, heads)?;
    Ok(layers
        .into_iter()
        .flat_map(|l| heads.iter().map(move |&h| (l, h)))
        .collect())
}

/// The token-pair tables of `ov_circuit` and `qk_circuit`: the same columns, described for
/// each circuit.
pub(crate) trait TokenPairRow: Row {
    fn new(layer: usize, head: usize, pair: &TokenPair, src_text: String, dst_text: String)
    -> Self;
}

/// Implements [`TokenPairRow`] for row types with the token-pair columns.
macro_rules! token_pair_row {
    ($row:ty) => {
        impl $crate::analyses::head_circuits::TokenPairRow for $row {
            fn new(
                layer: usize,
                head: usize,
                p: &$crate::weight_circuits::ov::TokenPair,
                src_text: String,
                dst_text: String,
            ) -> Self {
                Self {
                    layer: layer as i32,
                    head: head as i32,
                    rank: p.rank,
                    src_token: p.src_token,
                    src_text,
                    dst_token: p.dst_token,
                    dst_text,
                    value: p.value,
                }
            }
        }
    };
}
pub(crate) use token_pair_row;

/// Builds the rows of a token-pair table for one head.
pub(crate) fn push_token_pairs<R: TokenPairRow>(
    t: &mut Rows<R>,
    model: &ModelContext,
    layer: usize,
    head: usize,
    pairs: &[TokenPair],
) {
    for p in pairs {
        let (src, dst) = (model.token_text(p.src_token), model.token_text(p.dst_token));
        t.push(R::new(layer, head, p, src, dst));
    }
}

/// The first `n` singular values (all when fewer exist).
pub(crate) fn first(values: &[f64], n: usize) -> &[f64] {
    &values[..n.min(values.len())]
}
