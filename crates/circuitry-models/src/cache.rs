//! Captured activations, and the per-forward-pass context that applies edits and captures.

use std::collections::{BTreeMap, BTreeSet};

use burn::prelude::*;

use crate::edits::{Edit, HookError, HookTensor};
use crate::hooks::{HookKind, HookPoint};

/// Activations captured during one forward pass, keyed by hook point.
#[derive(Clone, Debug, Default)]
pub struct ActivationCache {
    map: BTreeMap<HookPoint, HookTensor>,
}

impl ActivationCache {
    pub fn get(&self, hook: &HookPoint) -> Option<&HookTensor> {
        self.map.get(hook)
    }

    /// A rank-3 hook's tensor (`[batch, pos, d]`); an error naming the hook when it was not
    /// captured or holds a rank-4 tensor.
    pub fn get3(&self, hook: &HookPoint) -> Result<Tensor<3>, HookError> {
        self.captured(hook)?.r3().map_err(|e| e.at(*hook))
    }

    /// A rank-4 hook's tensor (per head, or attention scores/pattern); an error naming the hook
    /// when it was not captured or holds a rank-3 tensor.
    pub fn get4(&self, hook: &HookPoint) -> Result<Tensor<4>, HookError> {
        self.captured(hook)?.r4().map_err(|e| e.at(*hook))
    }

    fn captured(&self, hook: &HookPoint) -> Result<HookTensor, HookError> {
        self.map
            .get(hook)
            .cloned()
            .ok_or(HookError::NotCaptured { hook: *hook })
    }

    pub fn insert(&mut self, hook: HookPoint, value: HookTensor) {
        self.map.insert(hook, value);
    }

    pub fn remove(&mut self, hook: &HookPoint) -> Option<HookTensor> {
        self.map.remove(hook)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&HookPoint, &HookTensor)> {
        self.map.iter()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// What a forward pass should record and change.
#[derive(Clone, Debug, Default)]
pub struct Intervention {
    /// Hook points whose values (after any edits there) are captured.
    pub capture: BTreeSet<HookPoint>,
    /// Edits, applied in order at their hook points.
    pub edits: Vec<Edit>,
}

impl Intervention {
    pub fn capture<I: IntoIterator<Item = HookPoint>>(hooks: I) -> Intervention {
        Intervention {
            capture: hooks.into_iter().collect(),
            edits: Vec::new(),
        }
    }

    pub fn with_edits(mut self, edits: Vec<Edit>) -> Intervention {
        self.edits = edits;
        self
    }

    /// Whether the hook is captured or edited, so the forward pass must materialise it.
    pub fn touches(&self, hook: HookPoint) -> bool {
        self.capture.contains(&hook) || self.edits.iter().any(|e| e.hook() == hook)
    }

    pub fn touches_kind(&self, kind: HookKind) -> bool {
        self.capture.iter().any(|h| h.kind == kind)
            || self.edits.iter().any(|e| e.hook().kind == kind)
    }
}

/// Why applying an edit in the forward pass cannot fail: it is applied at its own hook, of the
/// rank [`Edit::new`] checked its value against.
const AT_ITS_HOOK: &str = "an edit applied at its own hook has the hook's rank";

/// Applies an [`Intervention`] as the forward pass reaches each hook point.
pub(crate) struct HookContext<'a> {
    pub(crate) intervention: &'a Intervention,
    pub(crate) cache: ActivationCache,
}

impl<'a> HookContext<'a> {
    pub(crate) fn new(intervention: &'a Intervention) -> Self {
        HookContext {
            intervention,
            cache: ActivationCache::default(),
        }
    }

    pub(crate) fn touches(&self, hook: HookPoint) -> bool {
        self.intervention.touches(hook)
    }

    /// Applies the edits at `hook` and captures it.
    pub(crate) fn h3(&mut self, hook: HookPoint, mut x: Tensor<3>) -> Tensor<3> {
        for edit in self.intervention.edits.iter().filter(|e| e.hook() == hook) {
            x = edit.apply(x).expect(AT_ITS_HOOK);
        }
        if self.intervention.capture.contains(&hook) {
            self.cache.insert(hook, HookTensor::R3(x.clone()));
        }
        x
    }

    pub(crate) fn h4(&mut self, hook: HookPoint, mut x: Tensor<4>) -> Tensor<4> {
        for edit in self.intervention.edits.iter().filter(|e| e.hook() == hook) {
            x = edit.apply(x).expect(AT_ITS_HOOK);
        }
        if self.intervention.capture.contains(&hook) {
            self.cache.insert(hook, HookTensor::R4(x.clone()));
        }
        x
    }
}
