//! `kind = "subspace_overlap"`.

use super::AnalysisKind;
use crate::validate::Checker;

analysis_params! {
    /// How independent the subspaces are that the model's components write to in the residual
    /// stream, from the weights alone: principal angles between every pair of them.
    ///
    /// The components: the token embedding (`embed`: the top `rank` right singular directions of
    /// W_E), the positional embedding when it is learned (`pos_embed`, W_pos), each head's output
    /// space (`head`: the row space of its W_O, at most d_head dimensions; the top `rank` of
    /// them) and each MLP's output (`mlp`: the top `rank` right singular directions of W_out).
    /// For each pair: the cosines of the principal angles are the singular values of U_a^T U_b.
    /// Columns: component_a, layer_a, head_a, component_b, layer_b, head_b, rank_a, rank_b,
    /// max_cosine, min_angle_degrees, mean_cos2, random_mean_cos2.
    pub struct SubspaceOverlapParams {
        /// Layers whose heads and MLPs are compared (0-based). Default: every layer.
        pub layers: Option<Vec<u32>>,
        /// Heads compared in every selected layer (0-based). Default: every head.
        pub heads: Option<Vec<u32>>,
        /// Dimensions of each component's subspace (its top singular directions). Default: d_head.
        #[schemars(range(min = 1))]
        pub rank: Option<u32>,
        /// Include the embeddings (`embed`, and `pos_embed` when learned) as components.
        #[serde(default = "super::yes")]
        pub embeddings: bool,
    }
}

impl AnalysisKind for SubspaceOverlapParams {
    fn validate(&self, c: &mut Checker<'_, '_>) {
        c.filter("layers", self.layers.as_deref());
        c.filter("heads", self.heads.as_deref());
        if let Some(r) = self.rank {
            c.positive("rank", r);
        }
    }

    fn reads_dataset(&self) -> bool {
        false
    }
}
