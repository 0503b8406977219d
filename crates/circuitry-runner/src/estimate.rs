//! Cost estimates `circuitry plan` prints for each forward pass: floating-point operations and
//! the peak bytes of activations held at once, from the model's configuration, the dataset's
//! batches after padding, and the hook points captured. Estimates, not measurements: they count
//! the matrix products of the forward pass and the f32 tensors it keeps.

use std::collections::BTreeSet;

use circuitry_models::{HookLayout, HookPoint, ModelConfig, hook_position_shape};
use serde::Serialize;

/// The cost of one forward node (its reference passes included).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Estimate {
    /// Floating-point operations (multiply-adds count two).
    pub flops: f64,
    /// The most bytes of activations alive at once (captured hooks plus the largest transient).
    pub peak_activation_bytes: u64,
    /// Token slots computed, padding included.
    pub tokens: u64,
}

impl Estimate {
    /// Both estimates together: operations add up, peaks do not (passes run one after another).
    pub fn then(self, other: Estimate) -> Estimate {
        Estimate {
            flops: self.flops + other.flops,
            peak_activation_bytes: self.peak_activation_bytes.max(other.peak_activation_bytes),
            tokens: self.tokens + other.tokens,
        }
    }
}

/// Operations for one token at sequence length `len`.
fn flops_per_token(c: &ModelConfig, len: usize) -> f64 {
    let d = c.d_model as f64;
    let q = (c.n_heads * c.d_head) as f64;
    let kv = (c.n_kv_heads * c.d_head) as f64;
    // Q and O projections, K and V projections, then scores and the weighted sum of values.
    let attention = 2.0 * d * q * 2.0 + 2.0 * d * kv * 2.0 + 2.0 * 2.0 * q * len as f64;
    let mlp = if c.attn_only {
        0.0
    } else {
        2.0 * d * c.d_mlp as f64 * if c.gated_mlp { 3.0 } else { 2.0 }
    };
    c.n_layers as f64 * (attention + mlp) + 2.0 * d * c.d_vocab as f64
}

/// Elements of hook `h`'s tensor for a batch of `rows` prompts of `len` tokens.
fn hook_elements(c: &ModelConfig, h: &HookPoint, rows: usize, len: usize) -> u64 {
    let (heads, width) = hook_position_shape(c, h.kind);
    let n = match h.kind.layout() {
        HookLayout::BatchPosD | HookLayout::BatchPosHeadD => rows * len * heads * width,
        HookLayout::BatchHeadQK => rows * heads * len * len,
    };
    n as u64
}

/// The cost of running `config` over `batches` (`(prompts, padded length)` each), capturing
/// `hooks` on the clean run and, if given, `corrupt_hooks` on a corrupt run of the same shape.
pub fn forward_pass(
    config: &ModelConfig,
    batches: &[(usize, usize)],
    hooks: &BTreeSet<HookPoint>,
    corrupt_hooks: Option<&BTreeSet<HookPoint>>,
) -> Estimate {
    let runs = if corrupt_hooks.is_some() { 2.0 } else { 1.0 };
    let mut e = Estimate::default();
    for &(rows, len) in batches {
        let slots = (rows * len) as f64;
        e.flops += runs * slots * flops_per_token(config, len);
        e.tokens += (runs as u64) * (rows * len) as u64;
        let captured = |hs: &BTreeSet<HookPoint>| -> u64 {
            hs.iter().map(|h| hook_elements(config, h, rows, len)).sum()
        };
        // The clean run's captures stay alive while the corrupt run computes.
        let held = captured(hooks) + corrupt_hooks.map_or(0, captured);
        let transient = [
            rows * len * config.d_vocab,
            rows * config.n_heads * len * len,
            rows * len * config.d_mlp.max(config.d_model),
        ]
        .into_iter()
        .max()
        .unwrap_or(0) as u64
            + (rows * len * config.d_model) as u64;
        e.peak_activation_bytes = e.peak_activation_bytes.max(4 * (held + transient));
    }
    e
}

/// `n` with an SI prefix: `3.2 G`.
pub fn si(n: f64) -> String {
    let (value, prefix) = [(1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")]
        .into_iter()
        .find(|(scale, _)| n >= *scale)
        .map_or((n, ""), |(scale, p)| (n / scale, p));
    format!("{value:.1} {prefix}")
}

/// `bytes` in binary units: `3.4 MiB`.
pub fn binary_bytes(bytes: u64) -> String {
    let b = bytes as f64;
    let (value, unit) = [(1u64 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")]
        .into_iter()
        .find(|(scale, _)| bytes >= *scale)
        .map_or((b, "B"), |(scale, u)| (b / scale as f64, u));
    if unit == "B" {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {unit}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use circuitry_models::HookKind;

    /// GPT-2 small: the familiar 2·N FLOPs per token (N ≈ 85M non-embedding parameters plus
    /// the 38.6M-parameter unembedding), plus the attention term at 1024 tokens.
    #[test]
    fn gpt2_small_costs_what_the_parameter_count_says() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_embd": 768,
                "n_layer": 12, "n_head": 12, "n_positions": 1024, "vocab_size": 50257,
                "layer_norm_epsilon": 1e-5, "activation_function": "gelu_new"}"#,
        )
        .unwrap();
        let source = circuitry_models::ModelSource::HfDir(dir.path().to_path_buf());
        let c = circuitry_models::load::read_config(&source).unwrap();
        let per_token = flops_per_token(&c, 1024);
        let dense = 2.0 * (12.0 * 12.0 * 768.0 * 768.0 + 768.0 * 50257.0);
        let attention = 12.0 * 4.0 * 768.0 * 1024.0;
        assert!((per_token - dense - attention).abs() < 1.0, "{per_token}");
        let hooks = BTreeSet::from([HookPoint {
            layer: Some(0),
            kind: HookKind::Pattern,
        }]);
        let e = forward_pass(&c, &[(2, 10)], &hooks, None);
        assert_eq!(e.tokens, 20);
        // Pattern: 2 x 12 x 10 x 10 floats; transient: logits 20 x 50257 plus the residual.
        assert_eq!(e.peak_activation_bytes, 4 * (2400 + 20 * 50257 + 20 * 768));
        let both = forward_pass(&c, &[(2, 10)], &hooks, Some(&hooks));
        assert_eq!(both.tokens, 40);
        assert!((both.flops - 2.0 * e.flops).abs() < 1.0);
        assert_eq!(si(3.2e9), "3.2 G");
        assert_eq!(binary_bytes(3 << 20), "3.0 MiB");
    }
}
