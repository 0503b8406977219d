//! The MLP sublayer: plain (GPT-2) or gated (SwiGLU, Llama).

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::activation;

use crate::cache::HookContext;
use crate::config::ActFn;
use crate::hooks::{HookKind, HookPoint};
use crate::{linear, weight};

/// Weights in `x @ W` layout: `w_in`/`w_gate` are `[d_model, d_mlp]`, `w_out` is `[d_mlp, d_model]`.
#[derive(Module, Debug)]
/// The fields are private; other crates read the weights through the accessors.
pub struct Mlp {
    pub(crate) w_in: Param<Tensor<2>>,
    pub(crate) b_in: Option<Param<Tensor<1>>>,
    pub(crate) w_gate: Option<Param<Tensor<2>>>,
    pub(crate) b_gate: Option<Param<Tensor<1>>>,
    pub(crate) w_out: Param<Tensor<2>>,
    pub(crate) b_out: Option<Param<Tensor<1>>>,
    #[module(skip)]
    pub(crate) act_fn: ActFn,
}

impl Mlp {
    pub(crate) fn forward(&self, x: Tensor<3>, layer: usize, hooks: &mut HookContext) -> Tensor<3> {
        let hp = |k| HookPoint::layer(layer, k);
        let post = match &self.w_gate {
            Some(w_gate) => {
                // TransformerLens: hook_pre is the gate's pre-activation, hook_pre_linear the up projection.
                let pre = linear(x.clone(), w_gate, self.b_gate.as_ref());
                let pre = hooks.h3(hp(HookKind::MlpPre), pre);
                let pre_linear = linear(x, &self.w_in, self.b_in.as_ref());
                let pre_linear = hooks.h3(hp(HookKind::MlpPreLinear), pre_linear);
                apply_act(self.act_fn, pre) * pre_linear
            }
            None => {
                let pre = linear(x, &self.w_in, self.b_in.as_ref());
                let pre = hooks.h3(hp(HookKind::MlpPre), pre);
                apply_act(self.act_fn, pre)
            }
        };
        let post = hooks.h3(hp(HookKind::MlpPost), post);
        linear(post, &self.w_out, self.b_out.as_ref())
    }

    /// `W_in` (for gated MLPs the up projection), `[d_model, d_mlp]`.
    pub fn w_in(&self) -> Tensor<2> {
        weight(&self.w_in)
    }
    pub fn b_in(&self) -> Option<Tensor<1>> {
        self.b_in.as_ref().map(Param::val)
    }
    /// `W_gate`, `[d_model, d_mlp]`, for gated MLPs.
    pub fn w_gate(&self) -> Option<Tensor<2>> {
        self.w_gate.as_ref().map(weight)
    }
    pub fn b_gate(&self) -> Option<Tensor<1>> {
        self.b_gate.as_ref().map(Param::val)
    }
    /// `W_out`, `[d_mlp, d_model]`.
    pub fn w_out(&self) -> Tensor<2> {
        weight(&self.w_out)
    }
    pub fn b_out(&self) -> Option<Tensor<1>> {
        self.b_out.as_ref().map(Param::val)
    }
    pub fn act_fn(&self) -> ActFn {
        self.act_fn
    }
}

pub fn apply_act<const D: usize>(act_fn: ActFn, x: Tensor<D>) -> Tensor<D> {
    match act_fn {
        ActFn::GeluTanh => activation::gelu_approximate(x),
        ActFn::Gelu => activation::gelu(x),
        ActFn::Relu => activation::relu(x),
        ActFn::Silu => activation::silu(x),
    }
}
