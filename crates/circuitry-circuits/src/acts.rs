//! Host copies of captured activations, indexed the way analyses read them.

use circuitry_models::{HookPoint, HostTensor, Output};

use crate::analysis::AnalysisError;

/// The captured value of `hook` as a host tensor, or an error naming the missing hook (a runner
/// bug: the analysis declared it in its requirements).
pub fn host(output: &Output, hook: HookPoint) -> Result<HostTensor, AnalysisError> {
    let t = output.cache.get(&hook).ok_or_else(|| {
        AnalysisError::new(format!("internal error: hook `{hook}` was not captured"))
    })?;
    Ok(HostTensor::new(t.dims(), t.to_vec()))
}

/// Row-major offset of `index` in a tensor of shape `dims`.
pub fn offset(dims: &[usize], index: &[usize]) -> usize {
    debug_assert_eq!(dims.len(), index.len());
    index.iter().zip(dims).fold(0, |acc, (i, d)| acc * d + i)
}

/// The contiguous vector at `index` along the last axis.
pub fn vector<'a>(t: &'a HostTensor, index: &[usize]) -> &'a [f32] {
    let last = *t.shape.last().expect("rank >= 1");
    let mut full = index.to_vec();
    full.push(0);
    let start = offset(&t.shape, &full);
    &t.data[start..start + last]
}
