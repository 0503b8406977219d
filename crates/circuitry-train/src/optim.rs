//! AdamW with clipping by global gradient norm, over any burn module on an autodiff device.
//!
//! The update follows PyTorch's `torch.optim.AdamW` with `torch.nn.utils.clip_grad_norm_`:
//! gradients `g` are first scaled by `clip / (norm + 1e-6)` when their global L2 norm `norm`
//! (over every parameter) exceeds `clip`; then, with `t` the 1-based update count,
//! `m = b1 m + (1 - b1) g`, `v = b2 v + (1 - b2) g^2`,
//! `p = p (1 - lr wd) - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)`.
//! Weight decay `wd` applies to parameters of rank 2 or more (weight matrices and embeddings),
//! not to biases or LayerNorm parameters. Moments are f32, like the parameters.

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::prelude::*;
use burn::tensor::Gradients;

use crate::config::OptimConfig;

struct Moments {
    m: Tensor<1>,
    v: Tensor<1>,
}

/// Optimiser state: the two moment estimates of every parameter and the update count.
pub struct AdamW {
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
    grad_clip: Option<f64>,
    updates: i32,
    moments: HashMap<ParamId, Moments>,
}

/// What one update saw.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepStats {
    /// Global L2 norm of the gradient before clipping.
    pub grad_norm: f64,
    /// Whether the gradient was scaled down.
    pub clipped: bool,
}

impl AdamW {
    pub fn new(cfg: &OptimConfig) -> AdamW {
        AdamW {
            beta1: cfg.beta1,
            beta2: cfg.beta2,
            eps: cfg.eps,
            weight_decay: cfg.weight_decay,
            grad_clip: cfg.grad_clip,
            updates: 0,
            moments: HashMap::new(),
        }
    }

    /// Applies one update with learning rate `lr` to every parameter of `module` that has a
    /// gradient in `grads`, returning the updated module (fresh leaf tensors that require grad).
    pub fn step<M: Module>(&mut self, module: M, mut grads: Gradients, lr: f64) -> (M, StepStats) {
        let mut collect = Collect {
            grads: &mut grads,
            flat: HashMap::new(),
            sum_sq: None,
        };
        module.visit(&mut collect);
        let (flat, sum_sq) = (collect.flat, collect.sum_sq);
        let grad_norm = sum_sq.map_or(0.0, |s| (s.into_scalar::<f32>() as f64).sqrt());
        let scale = match self.grad_clip {
            Some(clip) if grad_norm > clip => Some(clip / (grad_norm + 1e-6)),
            _ => None,
        };
        self.updates += 1;
        let mut update = Update {
            opt: self,
            grads: flat,
            lr,
            scale,
        };
        let module = module.map(&mut update);
        (
            module,
            StepStats {
                grad_norm,
                clipped: scale.is_some(),
            },
        )
    }
}

/// Takes every parameter's gradient out of `grads`, flattened, and sums their squares in module
/// order.
struct Collect<'a> {
    grads: &'a mut Gradients,
    flat: HashMap<ParamId, Tensor<1>>,
    sum_sq: Option<Tensor<1>>,
}

impl ModuleVisitor for Collect<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let Some(g) = param.val().grad_remove(self.grads) else {
            return;
        };
        let g = g.reshape([-1]);
        let sq = g.clone().square().sum();
        self.sum_sq = Some(match self.sum_sq.take() {
            Some(acc) => acc + sq,
            None => sq,
        });
        self.flat.insert(param.id, g);
    }
}

struct Update<'a> {
    opt: &'a mut AdamW,
    grads: HashMap<ParamId, Tensor<1>>,
    lr: f64,
    scale: Option<f64>,
}

impl ModuleMapper for Update<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(mut g) = self.grads.remove(&param.id) else {
            return param;
        };
        if let Some(s) = self.scale {
            g = g.mul_scalar(s);
        }
        let id = param.id;
        let opt = &mut *self.opt;
        let (b1, b2) = (opt.beta1, opt.beta2);
        let (m, v) = match opt.moments.remove(&id) {
            Some(Moments { m, v }) => (
                m.mul_scalar(b1) + g.clone().mul_scalar(1.0 - b1),
                v.mul_scalar(b2) + g.square().mul_scalar(1.0 - b2),
            ),
            None => (
                g.clone().mul_scalar(1.0 - b1),
                g.square().mul_scalar(1.0 - b2),
            ),
        };
        let bc1 = 1.0 - b1.powi(opt.updates);
        let bc2 = 1.0 - b2.powi(opt.updates);
        let step = m
            .clone()
            .div_scalar(bc1)
            .div(v.clone().div_scalar(bc2).sqrt().add_scalar(opt.eps))
            .mul_scalar(self.lr);
        let decay = if D >= 2 {
            opt.weight_decay * self.lr
        } else {
            0.0
        };
        opt.moments.insert(id, Moments { m, v });
        param.map(|p| {
            let dims = p.dims();
            let mut flat = p.inner().reshape([-1]);
            if decay > 0.0 {
                flat = flat.mul_scalar(1.0 - decay);
            }
            Tensor::from_inner((flat - step).reshape(dims)).require_grad()
        })
    }
}
