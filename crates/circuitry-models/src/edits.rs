//! Interventions at hook points: which entries an edit touches ([`Selection`]) and what it does
//! to them ([`EditOp`]).

use std::fmt;

use burn::prelude::*;

use crate::hooks::{HookLayout, HookPoint};

/// A hook's tensor; hooks are rank 3 (`[batch, pos, d]`) or rank 4 (per head / attention), as
/// [`crate::HookKind::rank`] says.
#[derive(Clone, Debug)]
pub enum HookTensor {
    R3(Tensor<3>),
    R4(Tensor<4>),
}

/// A hook's tensor that is not there, or not of the rank asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HookError {
    /// The hook was not captured.
    NotCaptured { hook: HookPoint },
    /// The tensor (of `hook`, where known) has shape `dims`, but rank `expected` was asked for.
    WrongRank {
        hook: Option<HookPoint>,
        expected: usize,
        dims: Vec<usize>,
    },
}

impl HookError {
    /// The same error, naming `hook`.
    pub fn at(self, hook: HookPoint) -> HookError {
        match self {
            HookError::WrongRank { expected, dims, .. } => HookError::WrongRank {
                hook: Some(hook),
                expected,
                dims,
            },
            HookError::NotCaptured { .. } => HookError::NotCaptured { hook },
        }
    }
}

impl fmt::Display for HookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HookError::NotCaptured { hook } => write!(f, "`{hook}` was not captured"),
            HookError::WrongRank {
                hook,
                expected,
                dims,
            } => {
                match hook {
                    Some(h) => write!(f, "`{h}` (rank {})", h.kind.rank())?,
                    None => f.write_str("a hook tensor")?,
                }
                write!(
                    f,
                    " holds a rank-{} tensor {dims:?}, but a rank-{expected} one was asked for",
                    dims.len()
                )
            }
        }
    }
}

impl std::error::Error for HookError {}

impl HookTensor {
    pub fn dims(&self) -> Vec<usize> {
        match self {
            HookTensor::R3(t) => t.dims().to_vec(),
            HookTensor::R4(t) => t.dims().to_vec(),
        }
    }

    pub fn rank(&self) -> usize {
        match self {
            HookTensor::R3(_) => 3,
            HookTensor::R4(_) => 4,
        }
    }

    /// The rank-3 tensor; an error for a rank-4 one (name the hook with [`HookError::at`]).
    pub fn r3(self) -> Result<Tensor<3>, HookError> {
        match self {
            HookTensor::R3(t) => Ok(t),
            HookTensor::R4(t) => Err(HookError::WrongRank {
                hook: None,
                expected: 3,
                dims: t.dims().to_vec(),
            }),
        }
    }

    /// The rank-4 tensor; an error for a rank-3 one.
    pub fn r4(self) -> Result<Tensor<4>, HookError> {
        match self {
            HookTensor::R4(t) => Ok(t),
            HookTensor::R3(t) => Err(HookError::WrongRank {
                hook: None,
                expected: 4,
                dims: t.dims().to_vec(),
            }),
        }
    }

    /// Host copy as `f32`, row-major.
    pub fn to_vec(&self) -> Vec<f32> {
        match self {
            HookTensor::R3(t) => crate::host_values(t),
            HookTensor::R4(t) => crate::host_values(t),
        }
    }

    pub fn detach(self) -> HookTensor {
        match self {
            HookTensor::R3(t) => HookTensor::R3(t.detach()),
            HookTensor::R4(t) => HookTensor::R4(t.detach()),
        }
    }
}

impl From<Tensor<3>> for HookTensor {
    fn from(t: Tensor<3>) -> Self {
        HookTensor::R3(t)
    }
}

impl From<Tensor<4>> for HookTensor {
    fn from(t: Tensor<4>) -> Self {
        HookTensor::R4(t)
    }
}

/// Which sequence slots of each row of a padded batch an edit touches (indices into the padded
/// rows, not into the prompts).
#[derive(Clone, Debug, Default, PartialEq)]
pub enum BatchPositions {
    #[default]
    All,
    /// The same positions in every selected row.
    Same(Vec<usize>),
    /// Positions per batch row (`per_row[b]` for row `b`); rows beyond the list are untouched.
    PerRow(Vec<Vec<usize>>),
}

/// Which entries of a hook tensor an edit touches. Empty fields mean "all".
///
/// `positions` index the sequence axis (for attention scores and patterns, the query axis);
/// `heads` the head axis of per-head hooks; `features` the last axis (neurons of `mlp.hook_post`,
/// residual directions, key positions of a pattern).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Selection {
    pub rows: Option<Vec<usize>>,
    pub positions: BatchPositions,
    pub heads: Option<Vec<usize>>,
    pub features: Option<Vec<usize>>,
}

impl Selection {
    pub fn all() -> Selection {
        Selection::default()
    }
    pub fn positions(positions: Vec<usize>) -> Selection {
        Selection {
            positions: BatchPositions::Same(positions),
            ..Selection::default()
        }
    }
    pub fn heads(heads: Vec<usize>) -> Selection {
        Selection {
            heads: Some(heads),
            ..Selection::default()
        }
    }
    pub fn is_all(&self) -> bool {
        *self == Selection::default()
    }

    /// The selection as a host boolean mask of the given hook shape.
    fn mask(&self, layout: HookLayout, dims: &[usize]) -> Vec<bool> {
        let (b, a1, a2, a3) = match dims.len() {
            3 => (dims[0], dims[1], 1, dims[2]),
            _ => (dims[0], dims[1], dims[2], dims[3]),
        };
        // Which axis holds positions and which heads, by layout.
        let (pos_axis, head_axis) = match layout {
            HookLayout::BatchPosD => (1, None),
            HookLayout::BatchPosHeadD => (1, Some(2)),
            HookLayout::BatchHeadQK => (2, Some(1)),
        };
        let in_list =
            |list: &Option<Vec<usize>>, i: usize| list.as_ref().is_none_or(|l| l.contains(&i));
        let mut out = vec![false; b * a1 * a2 * a3];
        for row in 0..b {
            if !in_list(&self.rows, row) {
                continue;
            }
            let row_positions: Option<&[usize]> = match &self.positions {
                BatchPositions::All => None,
                BatchPositions::Same(p) => Some(p),
                BatchPositions::PerRow(per_row) => match per_row.get(row) {
                    Some(p) => Some(p),
                    None => continue,
                },
            };
            for i1 in 0..a1 {
                for i2 in 0..a2 {
                    let pos = if pos_axis == 1 { i1 } else { i2 };
                    if row_positions.is_some_and(|p| !p.contains(&pos)) {
                        continue;
                    }
                    if let Some(axis) = head_axis {
                        let head = if axis == 1 { i1 } else { i2 };
                        if !in_list(&self.heads, head) {
                            continue;
                        }
                    }
                    for i3 in 0..a3 {
                        if in_list(&self.features, i3) {
                            out[((row * a1 + i1) * a2 + i2) * a3 + i3] = true;
                        }
                    }
                }
            }
        }
        out
    }
}

/// What an edit does to the selected entries.
#[derive(Clone, Debug)]
pub enum EditOp {
    /// Take the selected entries from `value`, which has the hook's full shape (patching).
    Replace(HookTensor),
    /// Set the selected entries to zero (zero ablation).
    Zero,
    /// Add `value` (the hook's full shape) to the selected entries (steering; and, with a
    /// zero tensor that requires grad, the handle for gradients at this hook).
    Add(HookTensor),
    /// Multiply the selected entries by a constant.
    Scale(f32),
}

/// One intervention at one hook point. Its value, if any, has the hook's rank ([`Edit::new`]
/// checks it), so applying it in the forward pass cannot fail.
#[derive(Clone, Debug)]
pub struct Edit {
    hook: HookPoint,
    selection: Selection,
    op: EditOp,
}

impl Edit {
    /// An edit at `hook`; an error when `op`'s value is not of the hook's rank.
    pub fn new(hook: HookPoint, selection: Selection, op: EditOp) -> Result<Edit, HookError> {
        if let EditOp::Replace(v) | EditOp::Add(v) = &op
            && v.rank() != hook.kind.rank()
        {
            return Err(HookError::WrongRank {
                hook: Some(hook),
                expected: hook.kind.rank(),
                dims: v.dims(),
            });
        }
        Ok(Edit {
            hook,
            selection,
            op,
        })
    }

    pub fn hook(&self) -> HookPoint {
        self.hook
    }

    /// The entries it touches, to change (the rank check does not depend on them).
    pub fn selection_mut(&mut self) -> &mut Selection {
        &mut self.selection
    }

    /// The edit applied to a tensor of its hook's layout, as the forward pass applies it at its
    /// hook. An error when `x` is not of the hook's rank.
    pub fn apply<const D: usize>(&self, x: Tensor<D>) -> Result<Tensor<D>, HookError>
    where
        Tensor<D>: HookRank,
    {
        if D != self.hook.kind.rank() {
            return Err(HookError::WrongRank {
                hook: Some(self.hook),
                expected: D,
                dims: x.dims().to_vec(),
            });
        }
        let mask = (!self.selection.is_all())
            .then(|| bool_mask::<D>(&self.selection, self.hook.kind.layout(), &x));
        let value = |v: &HookTensor| Tensor::<D>::from_hook(v.clone()).map_err(|e| e.at(self.hook));
        Ok(match &self.op {
            EditOp::Replace(v) => select(x, value(v)?, mask),
            EditOp::Zero => {
                let zeros = x.zeros_like();
                select(x, zeros, mask)
            }
            EditOp::Add(v) => {
                let added = x.clone() + value(v)?;
                select(x, added, mask)
            }
            EditOp::Scale(f) => {
                let scaled = x.clone() * *f;
                select(x, scaled, mask)
            }
        })
    }
}

/// The tensor types hooks hold, taken out of a [`HookTensor`] of the same rank.
pub trait HookRank: Sized {
    /// The tensor; an error when `t` has another rank (name the hook with [`HookError::at`]).
    fn from_hook(t: HookTensor) -> Result<Self, HookError>;
}

impl HookRank for Tensor<3> {
    fn from_hook(t: HookTensor) -> Result<Self, HookError> {
        t.r3()
    }
}

impl HookRank for Tensor<4> {
    fn from_hook(t: HookTensor) -> Result<Self, HookError> {
        t.r4()
    }
}

fn bool_mask<const D: usize>(
    sel: &Selection,
    layout: HookLayout,
    x: &Tensor<D>,
) -> Tensor<D, Bool> {
    let dims = x.dims();
    let mask = sel.mask(layout, &dims);
    Tensor::<D, Bool>::from_data(TensorData::new(mask, dims), &x.device())
}

/// `new` where the mask is set (everywhere without a mask), `old` elsewhere.
fn select<const D: usize>(
    old: Tensor<D>,
    new: Tensor<D>,
    mask: Option<Tensor<D, Bool>>,
) -> Tensor<D> {
    match mask {
        None => new,
        Some(m) => old.mask_where(m, new),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_masks_follow_layout() {
        let sel = Selection {
            positions: BatchPositions::Same(vec![1]),
            heads: Some(vec![0]),
            ..Selection::default()
        };
        // [b=1, pos=2, head=2, d=1]: only (pos 1, head 0)
        let m = sel.mask(HookLayout::BatchPosHeadD, &[1, 2, 2, 1]);
        assert_eq!(m, vec![false, false, true, false]);
        // [b=1, head=2, q=2, k=1]: only (head 0, q 1)
        let m = sel.mask(HookLayout::BatchHeadQK, &[1, 2, 2, 1]);
        assert_eq!(m, vec![false, true, false, false]);
        let per_row = Selection {
            positions: BatchPositions::PerRow(vec![vec![0], vec![1]]),
            ..Selection::default()
        };
        let m = per_row.mask(HookLayout::BatchPosD, &[3, 2, 1]);
        assert_eq!(m, vec![true, false, false, true, false, false]);
    }

    #[test]
    fn a_value_of_another_rank_is_an_error_naming_the_hook() {
        use crate::HookKind;
        let device = Default::default();
        let z = HookPoint::layer(1, HookKind::Z);
        let rank3 = HookTensor::R3(Tensor::<3>::zeros([1, 2, 3], &device));
        let e = Edit::new(z, Selection::all(), EditOp::Replace(rank3.clone())).unwrap_err();
        assert_eq!(
            e,
            HookError::WrongRank {
                hook: Some(z),
                expected: 4,
                dims: vec![1, 2, 3]
            }
        );
        assert!(e.to_string().contains("blocks.1.attn.hook_z"), "{e}");
        assert!(Edit::new(z, Selection::all(), EditOp::Add(rank3.clone())).is_err());
        // Ops without a value fit every hook; applying at another rank is an error too.
        let zero = Edit::new(z, Selection::all(), EditOp::Zero).unwrap();
        let e = zero
            .apply(Tensor::<3>::zeros([1, 2, 3], &device))
            .unwrap_err();
        assert!(matches!(e, HookError::WrongRank { expected: 3, .. }), "{e}");
        let resid = HookPoint::layer(0, HookKind::ResidPre);
        let add = Edit::new(resid, Selection::all(), EditOp::Add(rank3)).unwrap();
        let x = add.apply(Tensor::<3>::ones([1, 2, 3], &device)).unwrap();
        assert_eq!(x.sum().into_scalar::<f32>(), 6.0);
    }
}
