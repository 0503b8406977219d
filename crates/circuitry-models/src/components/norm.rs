//! LayerNorm and RMSNorm, with their folded ("Pre") forms.

use burn::module::Param;
use burn::prelude::*;

use crate::config::NormKind;

/// A normalisation layer. `w`/`b` are absent for the folded kinds (and `b` for RMSNorm).
#[derive(Module, Debug)]
/// The fields are private; other crates read them through the accessors.
pub struct Norm {
    pub(crate) w: Option<Param<Tensor<1>>>,
    pub(crate) b: Option<Param<Tensor<1>>>,
    #[module(skip)]
    pub(crate) kind: NormKind,
    #[module(skip)]
    pub(crate) eps: f64,
}

impl Norm {
    /// The weight `w`, `[d_model]` (absent for the folded kinds).
    pub fn w(&self) -> Option<Tensor<1>> {
        self.w.as_ref().map(Param::val)
    }
    /// The bias `b`, `[d_model]` (LayerNorm only).
    pub fn b(&self) -> Option<Tensor<1>> {
        self.b.as_ref().map(Param::val)
    }
    pub fn kind(&self) -> NormKind {
        self.kind
    }
    pub fn eps(&self) -> f64 {
        self.eps
    }

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
