//! What `ov_circuit` and `qk_circuit` share: the heads they select, their token-pair rows and
//! their singular-value table.

use circuitry_models::ModelConfig;

use super::selected_layers_heads;
use crate::analysis::{AnalysisError, ModelContext, TableDecl, emit};
use crate::table::{Row, Rows, TableSink};
use crate::weight_circuits::ov::{HeadOvResult, SingularValueRow, TokenPair, push_singular_values};
use crate::weight_circuits::qk::HeadQkResult;

/// The `singular_values` table of both kinds.
pub(crate) const SINGULAR_VALUES: TableDecl =
    TableDecl::part::<SingularValueRow>("singular_values").when("singular_values > 0");

/// The part name of both kinds' `top_pairs` table.
pub(crate) const TOP_PAIRS_PART: &str = "top_pairs";

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

/// Declares a token-pair row type (a [`TokenPairRow`]): the same columns for both circuits,
/// with the circuit's own descriptions of `src_token`, `dst_token` and `value`.
macro_rules! token_pair_row {
    ($(#[$meta:meta])* $row:ident { src_token: $src:expr, dst_token: $dst:expr, value: $value:expr $(,)? }) => {
        $crate::table_row! {
            $(#[$meta])*
            pub struct $row {
                layer = $crate::weight_circuits::ov::LAYER_DOC,
                head = $crate::weight_circuits::ov::HEAD_DOC,
                rank: u32 = $crate::weight_circuits::ov::RANK_DOC,
                src_token: u32 = $src,
                src_text: String = "text of src_token",
                dst_token: u32 = $dst,
                dst_text: String = "text of dst_token",
                value: f64 = $value,
            }
        }

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

/// What the OV and the QK circuit of one head both hold.
pub(crate) trait HeadCircuitResult {
    fn layer_head(&self) -> (usize, usize);
    fn top_pairs(&self) -> &[TokenPair];
    /// Singular values of the head's circuit and of its token-space circuit, descending.
    fn singular_values(&self) -> [&[f64]; 2];
}

macro_rules! head_circuit_result {
    ($result:ty) => {
        impl HeadCircuitResult for $result {
            fn layer_head(&self) -> (usize, usize) {
                (self.layer, self.head)
            }
            fn top_pairs(&self) -> &[TokenPair] {
                &self.top_pairs
            }
            fn singular_values(&self) -> [&[f64]; 2] {
                [&self.singular_values, &self.full_singular_values]
            }
        }
    };
}
head_circuit_result!(HeadOvResult);
head_circuit_result!(HeadQkResult);

/// Writes the `top_pairs` part of one layer's `results` (when `top_k > 0`) and its
/// `singular_values` part (the first `n_singular` of each circuit, when `n_singular > 0`);
/// `circuits` names the head's circuit and its token-space circuit in the `circuit` column.
pub(crate) fn emit_pairs_and_singular_values<R: TokenPairRow>(
    sink: &mut dyn TableSink,
    model: &ModelContext,
    results: &[impl HeadCircuitResult],
    (top_k, n_singular): (usize, usize),
    circuits: [&'static str; 2],
) -> Result<(), AnalysisError> {
    if top_k > 0 {
        let mut t = Rows::<R>::new();
        for r in results {
            let (layer, head) = r.layer_head();
            for p in r.top_pairs() {
                let (src, dst) = (model.token_text(p.src_token), model.token_text(p.dst_token));
                t.push(R::new(layer, head, p, src, dst));
            }
        }
        emit(sink, Some(TOP_PAIRS_PART), t)?;
    }
    if n_singular > 0 {
        let mut t = Rows::<SingularValueRow>::new();
        for r in results {
            let (layer, head) = r.layer_head();
            for (circuit, values) in circuits.into_iter().zip(r.singular_values()) {
                let first = &values[..n_singular.min(values.len())];
                push_singular_values(&mut t, layer, head, circuit, first);
            }
        }
        emit(sink, SINGULAR_VALUES.part, t)?;
    }
    Ok(())
}
