//! The MLP sublayer: plain (GPT-2) or gated (SwiGLU, Llama).

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::activation;

use crate::cache::HookContext;
use crate::config::ActFn;
use crate::hooks::{HookKind, HookPoint};
use crate::linear;

/// Weights in `x @ W` layout: `w_in`/`w_gate` are `[d_model, d_mlp]`, `w_out` is `[d_mlp, d_model]`.
#[derive(Module, Debug)]
pub struct Mlp {
    pub w_in: Param<Tensor<2>>,
    pub b_in: Option<Param<Tensor<1>>>,
    pub w_gate: Option<Param<Tensor<2>>>,
    pub b_gate: Option<Param<Tensor<1>>>,
    pub w_out: Param<Tensor<2>>,
    pub b_out: Option<Param<Tensor<1>>>,
    #[module(skip)]
    pub act_fn: ActFn,
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
}

pub fn apply_act<const D: usize>(act_fn: ActFn, x: Tensor<D>) -> Tensor<D> {
    match act_fn {
        ActFn::GeluTanh => activation::gelu_approximate(x),
        ActFn::Gelu => activation::gelu(x),
        ActFn::Relu => activation::relu(x),
        ActFn::Silu => activation::silu(x),
    }
}
