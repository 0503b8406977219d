//! Decoding residual-stream vectors to next-token distributions on the device, and reading back
//! only what tables need (log-probs and ranks of chosen tokens, top-k).

use circuitry_models::burn::prelude::*;
use circuitry_models::burn::tensor::activation::log_softmax;
use circuitry_models::{Transformer, host_ints, host_values};

/// Log-probabilities `[n, d_vocab]` of residual vectors `x` (`[n, d_model]`) decoded through
/// the final norm (its scale recomputed for each vector) and the unembedding
/// ([`Transformer::decode`]).
pub fn log_probs(model: &Transformer, x: Tensor<2>) -> Tensor<2> {
    let [n, d] = x.dims();
    let logits = model.decode(x.reshape([1, n, d]));
    log_softmax(logits.reshape([n as i64, -1]), 1)
}

/// Log-prob and rank (0 = most likely) of `targets[i][j]` under row `i` of `log_probs`.
pub fn token_stats(log_probs: &Tensor<2>, targets: &[Vec<u32>]) -> Vec<Vec<(f32, u32)>> {
    let [n, v] = log_probs.dims();
    let m = targets.iter().map(Vec::len).max().unwrap_or(0);
    if n == 0 || m == 0 {
        return targets.iter().map(|_| Vec::new()).collect();
    }
    let device = log_probs.device();
    // Pad ragged target lists with token 0 and drop the padding afterwards.
    let ids: Vec<i64> = targets
        .iter()
        .flat_map(|t| (0..m).map(move |j| t.get(j).copied().unwrap_or(0) as i64))
        .collect();
    let idx = Tensor::<2, Int>::from_data(TensorData::new(ids, [n, m]), &device);
    let chosen = log_probs.clone().gather(1, idx); // [n, m]
    // rank = number of tokens strictly more likely.
    let ranks = log_probs
        .clone()
        .unsqueeze_dim::<3>(1)
        .expand([n, m, v])
        .greater(chosen.clone().unsqueeze_dim::<3>(2).expand([n, m, v]))
        .int()
        .sum_dim(2)
        .reshape([n, m]);
    let (lp, rk) = (host_values(&chosen), host_ints(&ranks));
    targets
        .iter()
        .enumerate()
        .map(|(i, t)| {
            (0..t.len())
                .map(|j| (lp[i * m + j], rk[i * m + j] as u32))
                .collect()
        })
        .collect()
}

/// The `k` most likely tokens of each row: `(token id, log-prob)` in decreasing order.
pub fn top_k(log_probs: &Tensor<2>, k: usize) -> Vec<Vec<(u32, f32)>> {
    let [n, v] = log_probs.dims();
    let k = k.min(v);
    if n == 0 || k == 0 {
        return vec![Vec::new(); n];
    }
    let (values, indices) = log_probs.clone().topk_with_indices(k, 1);
    let (values, indices) = (host_values(&values), host_ints(&indices));
    (0..n)
        .map(|i| {
            (0..k)
                .map(|j| (indices[i * k + j] as u32, values[i * k + j]))
                .collect()
        })
        .collect()
}
