//! `subspace_overlap`: principal angles between the residual-stream subspaces that the token
//! embedding, the learned positional embedding, each head's output and each MLP's output span,
//! from the weights alone.

use circuitry_models::burn::prelude::*;
use circuitry_models::host_values;
use circuitry_spec::SubspaceOverlapParams;

use super::prelude::*;
use super::selected_layers_heads;
use super::weights_only::{HostWeights, WeightsOnly};
use crate::matrix::{LinalgError, Mat};

crate::table_row! {
    pub struct SubspaceOverlapRow {
        component_a: &'static str = "First component: `embed`, `pos_embed`, `head` or `mlp`.",
        layer_a: Option<i32> = "Its layer (null for the embeddings).",
        head_a: Option<i32> = "Its head (heads only).",
        component_b: &'static str = "Second component (after the first in the order embed, pos_embed, then per layer its heads and its MLP).",
        layer_b: Option<i32> = "Its layer (null for the embeddings).",
        head_b: Option<i32> = "Its head (heads only).",
        rank_a: i32 = "Dimensions of the first subspace.",
        rank_b: i32 = "Dimensions of the second subspace.",
        max_cosine: f64 = "Cosine of the smallest principal angle (1 = the subspaces share a direction).",
        min_angle_degrees: f64 = "The smallest principal angle, in degrees.",
        mean_cos2: f64 = "Mean squared cosine of the min(rank_a, rank_b) principal angles: 0 for orthogonal subspaces, 1 when one contains the other.",
        random_mean_cos2: f64 = "mean_cos2 expected for random subspaces of these ranks: max(rank_a, rank_b) / d_model.",
    }
}

/// One component: what it is and an orthonormal basis of its subspace (`d_model x rank`).
struct Component {
    kind: &'static str,
    layer: Option<usize>,
    head: Option<usize>,
    basis: Mat,
}

pub struct SubspaceOverlap {
    params: SubspaceOverlapParams,
    layers: Vec<usize>,
    heads: Vec<usize>,
    rank: usize,
}

impl Kind for SubspaceOverlap {
    type Params = SubspaceOverlapParams;
    const TABLES: &'static [TableDecl] = &[TableDecl::main::<SubspaceOverlapRow>()];

    fn build(params: Self::Params, cx: BuildContext) -> Result<Self, AnalysisError> {
        let cfg = cx.config;
        let (layers, heads) =
            selected_layers_heads(cfg, params.layers.as_deref(), params.heads.as_deref())?;
        let rank = params.rank.map_or(cfg.d_head, |r| r as usize);
        if rank > cfg.d_model {
            return Err(AnalysisError::at(
                "rank",
                format!("`rank` = {rank} is more than d_model = {}", cfg.d_model),
            ));
        }
        Ok(SubspaceOverlap {
            layers,
            heads,
            rank,
            params,
        })
    }
}

/// The top `rank` right singular directions of `w` (`[n, d]`, on the device) as the columns of
/// a `d x rank` matrix, from the eigenvectors of `w^T w` (computed on the device: `d x d`).
/// Directions with no weight (beyond `w`'s rank) are left out.
fn row_space(w: Tensor<2>, rank: usize) -> Result<Mat, LinalgError> {
    let [_, d] = w.dims();
    let gram = Mat::from_f32(d, d, &host_values(&w.clone().transpose().matmul(w)));
    let (values, vectors) = gram.symmetric_eigen()?;
    let floor = values.first().copied().unwrap_or(0.0) * 1e-10;
    let kept = values.iter().take(rank).filter(|&&v| v > floor).count();
    Ok(Mat::from_fn(d, kept, |i, j| vectors[(i, j)]))
}

// Computed on the device: the host copies of `HostWeights` are never made.
impl WeightsOnly for SubspaceOverlap {
    fn write(
        &mut self,
        _: &HostWeights,
        model: &ModelContext,
        sink: &mut dyn TableSink,
    ) -> Result<(), AnalysisError> {
        let linalg = |e: LinalgError| AnalysisError::new(format!("{e}"));
        let m = model.model;
        let d_model = m.config.d_model;
        let mut components = Vec::new();
        let mut add = |kind, layer, head, w: Tensor<2>| -> Result<(), AnalysisError> {
            components.push(Component {
                kind,
                layer,
                head,
                basis: row_space(w, self.rank).map_err(linalg)?,
            });
            Ok(())
        };
        if self.params.embeddings {
            add("embed", None, None, m.w_e())?;
            if let Some(w_pos) = m.w_pos() {
                add("pos_embed", None, None, w_pos)?;
            }
        }
        for &layer in &self.layers {
            let block = &m.blocks()[layer];
            let w_o = block.attn().w_o_heads(); // [heads, d_head, d_model]
            let [_, d_head, _] = w_o.dims();
            for &head in &self.heads {
                let w = w_o
                    .clone()
                    .slice([head..head + 1, 0..d_head, 0..d_model])
                    .reshape([d_head, d_model]);
                add("head", Some(layer), Some(head), w)?;
            }
            if let Some(mlp) = block.mlp() {
                add("mlp", Some(layer), None, mlp.w_out())?;
            }
        }
        let mut rows = Rows::<SubspaceOverlapRow>::new();
        let to_i32 = |x: Option<usize>| x.map(|v| v as i32);
        for (i, a) in components.iter().enumerate() {
            for b in &components[i + 1..] {
                let (ka, kb) = (a.basis.cols(), b.basis.cols());
                let cosines = a.basis.t_matmul(&b.basis).singular_values();
                let max = cosines.first().copied().unwrap_or(0.0).clamp(0.0, 1.0);
                let pairs = ka.min(kb).max(1) as f64;
                rows.push(SubspaceOverlapRow {
                    component_a: a.kind,
                    layer_a: to_i32(a.layer),
                    head_a: to_i32(a.head),
                    component_b: b.kind,
                    layer_b: to_i32(b.layer),
                    head_b: to_i32(b.head),
                    rank_a: ka as i32,
                    rank_b: kb as i32,
                    max_cosine: max,
                    min_angle_degrees: max.acos().to_degrees(),
                    mean_cos2: cosines.iter().map(|c| c * c).sum::<f64>() / pairs,
                    random_mean_cos2: ka.max(kb) as f64 / d_model as f64,
                });
            }
        }
        emit(sink, None, rows)
    }
}
