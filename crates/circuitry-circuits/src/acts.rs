//! Host copies of captured activations, indexed the way analyses read them.

use circuitry_models::{ActivationCache, HookKind, HookPoint, HostTensor, Output};

use crate::analysis::{AnalysisError, BatchContext};

/// The captured value of `hook` as a host tensor, or an error naming the missing hook (a runner
/// bug: the analysis declared it in its requirements).
pub fn host(output: &Output, hook: HookPoint) -> Result<HostTensor, AnalysisError> {
    cached(&output.cache, hook)
}

/// [`host`] from an activation cache.
pub fn cached(cache: &ActivationCache, hook: HookPoint) -> Result<HostTensor, AnalysisError> {
    let t = cache.get(&hook).ok_or_else(|| {
        AnalysisError::new(format!("internal error: hook `{hook}` was not captured"))
    })?;
    Ok(HostTensor::new(t.dims(), t.to_vec()))
}

/// The values of a captured activation (always f32).
pub fn dense(t: &HostTensor) -> &[f32] {
    t.as_f32().expect("activations are captured as f32")
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
    &dense(t)[start..start + last]
}

/// Host copies of `blocks.L.attn.hook_pattern` for each of `layers`.
pub fn patterns(
    cache: &ActivationCache,
    layers: &[usize],
) -> Result<Vec<HostTensor>, AnalysisError> {
    layers
        .iter()
        .map(|&l| cached(cache, HookPoint::layer(l, HookKind::Pattern)))
        .collect()
}

/// Attention of batch row `r`, head `head`, from token `q` to token `k` of the prompt (token
/// indices, not padded slots).
pub fn attention(
    pattern: &HostTensor,
    batch: &BatchContext,
    r: usize,
    head: usize,
    q: usize,
    k: usize,
) -> f32 {
    dense(pattern)[offset(
        &pattern.shape,
        &[r, head, batch.slot(r, q), batch.slot(r, k)],
    )]
}
