//! Properties that could fail: weight processing changes logits only by a per-position constant;
//! padded batches give each prompt the logits it gets alone, with left and right padding.

use crate::common;

use circuitry_models::burn::prelude::*;
use circuitry_models::burn::tensor::activation::softmax;
use circuitry_models::{PaddingSide, Processing, TokenBatch};
use common::*;

#[test]
fn processing_changes_logits_only_by_a_per_position_constant() {
    let device = Device::flex();
    for &name in FIXTURE_MODELS {
        let raw = load_fixture(name, Processing::none());
        let processed = load_fixture(name, Processing::all());
        let reference = load_reference(name);
        for set in ["plain", "repeated"] {
            let batch =
                TokenBatch::unpadded(&rows(&reference[&format!("{set}.input_ids")]), &device);
            let a = raw.logits(&batch);
            let b = processed.logits(&batch);
            let pa = tensor_values(&softmax(a.clone(), 2));
            let pb = tensor_values(&softmax(b.clone(), 2));
            let diff = max_abs_diff(&pa, &pb, |_| false);
            assert!(diff < 1e-5, "{name} {set}: softmax differs by {diff}");
            // The difference is constant along the vocabulary axis...
            let delta = b - a;
            let spread = tensor_values(&(delta.clone().max_dim(2) - delta.min_dim(2)));
            let worst = spread.iter().copied().fold(0.0, f32::max);
            assert!(
                worst < 1e-4,
                "{name} {set}: logit shift not constant per position ({worst})"
            );
        }
        // ...and the processed model really is different (centred unembedding, folded norms).
        assert_ne!(
            tensor_values(&raw.w_u()),
            tensor_values(&processed.w_u()),
            "{name}: processing changed nothing"
        );
        assert!(
            processed.ln_final().w().is_none()
                && processed.blocks()[0].ln1().is_none_or(|n| n.w().is_none()),
            "{name}: norms not folded"
        );
        // Post-norms and query/key norms cannot be folded: they keep their scales.
        let block = &processed.blocks()[0];
        for norm in [block.ln1_post(), block.ln2_post(), block.attn().q_norm()]
            .into_iter()
            .flatten()
        {
            assert!(
                norm.w().is_some(),
                "{name}: a post- or q/k norm lost its scale"
            );
        }
    }
}

#[test]
fn padded_batches_match_prompts_run_alone() {
    let device = Device::flex();
    for &name in FIXTURE_MODELS {
        let model = load_fixture(name, Processing::all());
        let reference = load_reference(name);
        let all = rows(&reference["plain.input_ids"]);
        // Unequal lengths: 16, 9 and 4 tokens.
        let prompts: Vec<Vec<u32>> =
            vec![all[0].clone(), all[1][..9].to_vec(), all[2][..4].to_vec()];
        let alone: Vec<Vec<f32>> = prompts
            .iter()
            .map(|p| {
                tensor_values(
                    &model.logits(&TokenBatch::unpadded(std::slice::from_ref(p), &device)),
                )
            })
            .collect();
        for side in [PaddingSide::Right, PaddingSide::Left] {
            let batch = TokenBatch::new(&prompts, 0, side, &device);
            let logits = model.logits(&batch);
            let [_, t, v] = logits.dims();
            let values = tensor_values(&logits);
            for (r, p) in prompts.iter().enumerate() {
                let mut got = Vec::new();
                for i in 0..p.len() {
                    let slot = batch.slot(r, i);
                    let start = (r * t + slot) * v;
                    got.extend_from_slice(&values[start..start + v]);
                }
                let diff = max_abs_diff(&got, &alone[r], |_| false);
                assert!(
                    diff < 1e-4,
                    "{name} {side:?} row {r}: differs from running alone by {diff}"
                );
                assert!(
                    values.iter().all(|x| x.is_finite()),
                    "{name} {side:?}: non-finite logits"
                );
            }
        }
    }
}
