//! LayerNorm and RMSNorm, with their folded ("Pre") forms.

use burn::module::Param;
use burn::prelude::*;

use crate::config::NormKind;

/// A normalisation layer. `w`/`b` are absent for the folded kinds (and `b` for RMSNorm).
#[derive(Module, Debug)]
pub struct Norm {
    pub w: Option<Param<Tensor<1>>>,
    pub b: Option<Param<Tensor<1>>>,
    #[module(skip)]
    pub kind: NormKind,
    #[module(skip)]
    pub eps: f64,
}

impl Norm {
    /// The scale `[batch, pos, 1]` that the input is divided by (TransformerLens's `hook_scale`).
    pub fn scale(&self, x: &Tensor<3>) -> Tensor<3> {
        let x = if self.kind.centers() {
            x.clone() - x.clone().mean_dim(2)
        } else {
            x.clone()
        };
        (x.square().mean_dim(2) + self.eps).sqrt()
    }

    /// Normalises `x` by an already computed (possibly edited) `scale`.
    pub fn apply(&self, x: Tensor<3>, scale: Tensor<3>) -> Tensor<3> {
        let x = if self.kind.centers() {
            x.clone() - x.mean_dim(2)
        } else {
            x
        };
        let mut y = x / scale;
        if let Some(w) = &self.w {
            y = y * w.val().unsqueeze::<3>();
        }
        if let Some(b) = &self.b {
            y = y + b.val().unsqueeze::<3>();
        }
        y
    }
}
