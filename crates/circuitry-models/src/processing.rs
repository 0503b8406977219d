//! Weight processing as TransformerLens's `HookedTransformer` does it by default, so that
//! circuit-level results are comparable: fold the norms' learned parameters into the next linear
//! maps, centre the weights that write to the residual stream (LayerNorm models only), centre the
//! unembedding, and fold value biases into the output bias. Logits change only by a constant per
//! position (so probabilities are unchanged).
//!
//! What cannot be folded stays: post-norms (they write to the residual stream) and query/key
//! norms keep their scales; writing weights are centred only where every reader of the residual
//! stream centres (LayerNorm models without post-norms); the unembedding stays uncentred under a
//! logit soft-cap, which a constant shift would change (as in TransformerLens).
//!
//! Matrices held at half precision ([`HostTensor::held_as`]) are changed one at a time in f32
//! and rounded back after each step, so processing never holds the model in f32.

use crate::config::NormKind;
use crate::weights::{BlockNames, HostTensor, Weights, names};

pub use circuitry_vocab::Processing;

/// Applies `processing` to `weights` (in the order TransformerLens uses).
pub fn process(mut weights: Weights, processing: Processing) -> Weights {
    let layer_norm = weights.config.norm.centers();
    if processing.fold_ln && weights.config.norm.has_weight() {
        fold_norms(&mut weights);
    }
    let center_writing =
        processing.center_writing_weights && layer_norm && !weights.config.block_norms.post();
    if center_writing {
        center_writing_weights(&mut weights);
    }
    if processing.center_unembed && weights.config.logit_softcap.is_none() {
        let w_u = weights
            .tensors
            .get_mut("unembed.W_U")
            .expect("checked weights");
        w_u.update(subtract_row_means);
        if let Some(b_u) = weights.tensors.get_mut("unembed.b_U") {
            subtract_mean(b_u);
        }
    }
    if processing.fold_value_biases {
        fold_value_biases(&mut weights, center_writing);
    }
    weights
}

/// Folds each norm's scale (and LayerNorm's shift) into the maps that read its output, leaving
/// `LayerNormPre`/`RmsNormPre`. For LayerNorm the reading weights are also centred along
/// `d_model`, which cannot change outputs because the normalised input is centred.
fn fold_norms(weights: &mut Weights) {
    let cfg = weights.config.clone();
    let centre = cfg.norm.centers();
    let t = &mut weights.tensors;
    let fold = |t: &mut std::collections::BTreeMap<String, HostTensor>,
                (norm_w, norm_b): (&str, &str),
                readers: &[(&str, &str)]| {
        let w = t.remove(norm_w).expect("norm weight");
        let b = t.remove(norm_b);
        for (w_name, b_name) in readers {
            let mut mat = t.remove(*w_name).expect("reader weight");
            if let Some(b) = &b {
                let shift = vec_mat(&b.data(), &mat);
                let bias = t.entry(b_name.to_string()).or_insert_with(|| {
                    HostTensor::new(vec![mat.shape[1]], vec![0.0; mat.shape[1]])
                });
                for (x, s) in bias.data_mut().iter_mut().zip(shift) {
                    *x += s;
                }
            }
            // One update, so a half-precision matrix is rounded once.
            mat.update(|mat| {
                scale_rows(mat, &w.data());
                if centre {
                    subtract_column_means(mat);
                }
            });
            t.insert(w_name.to_string(), mat);
        }
    };
    for l in (0..cfg.n_layers).filter(|_| cfg.block_norms.pre()) {
        let n = BlockNames::new(l);
        fold(t, (&n.ln1_w, &n.ln1_b), &n.qkv());
        if !cfg.attn_only {
            let mut mlp = vec![(n.w_in.as_str(), n.b_in.as_str())];
            if cfg.gated_mlp {
                mlp.push((n.w_gate.as_str(), n.b_gate.as_str()));
            }
            fold(t, (&n.ln2_w, &n.ln2_b), &mlp);
        }
    }
    fold(
        t,
        (names::LN_FINAL_W, names::LN_FINAL_B),
        &[(names::W_U, names::B_U)],
    );
    let c = &mut weights.config;
    if c.norm == NormKind::LayerNorm {
        // Folding the shift created biases on every reader.
        c.qkv_bias = true;
        c.mlp_bias = c.mlp_bias || !c.attn_only;
        c.unembed_bias = true;
    }
    c.norm = c.norm.folded();
}

/// Removes the mean along `d_model` from everything that writes to the residual stream.
fn center_writing_weights(weights: &mut Weights) {
    let cfg = weights.config.clone();
    let t = &mut weights.tensors;
    let mut writers = vec![names::W_E.to_string(), names::W_POS.to_string()];
    for l in 0..cfg.n_layers {
        let n = BlockNames::new(l);
        writers.extend([n.w_o, n.w_out]);
    }
    for name in writers {
        if let Some(w) = t.get_mut(&name) {
            w.update(subtract_row_means);
        }
    }
    for l in 0..cfg.n_layers {
        let n = BlockNames::new(l);
        for name in [n.b_o, n.b_out] {
            if let Some(b) = t.get_mut(&name) {
                subtract_mean(b);
            }
        }
    }
}

/// `b_O += sum_h b_V[h] @ W_O[h]`, `b_V = 0`: value biases have a constant effect because
/// attention patterns sum to one.
fn fold_value_biases(weights: &mut Weights, center_writing: bool) {
    let cfg = weights.config.clone();
    let (h, dh, d) = (cfg.n_heads, cfg.d_head, cfg.d_model);
    let group = cfg.kv_group();
    let mut any = false;
    for l in 0..cfg.n_layers {
        let n = BlockNames::new(l);
        let Some(b_v) = weights.tensors.get(&n.b_v).cloned() else {
            continue;
        };
        any = true;
        // b_V per query head (key/value heads repeated under GQA), concatenated: [h * dh].
        let b_v_heads: Vec<f32> = (0..h)
            .flat_map(|head| b_v.data()[(head / group) * dh..(head / group + 1) * dh].to_vec())
            .collect();
        let w_o = &weights.tensors[&n.w_o];
        let shift = vec_mat(&b_v_heads, w_o);
        let b_o = weights
            .tensors
            .entry(n.b_o.clone())
            .or_insert_with(|| HostTensor::new(vec![d], vec![0.0; d]));
        for (x, s) in b_o.data_mut().iter_mut().zip(shift) {
            *x += s;
        }
        if center_writing {
            subtract_mean(b_o);
        }
        weights
            .tensors
            .get_mut(&n.b_v)
            .expect("present")
            .data_mut()
            .fill(0.0);
    }
    if any {
        weights.config.attn_out_bias = true;
    }
}

/// `v @ m` for a vector of length `m.shape[0]`.
fn vec_mat(v: &[f32], m: &HostTensor) -> Vec<f32> {
    let (r, c) = (m.shape[0], m.shape[1]);
    let data = m.data();
    let mut out = vec![0f64; c];
    for (i, &vi) in v.iter().enumerate().take(r) {
        let vi = vi as f64;
        for (o, x) in out.iter_mut().zip(&data[i * c..(i + 1) * c]) {
            *o += vi * *x as f64;
        }
    }
    out.into_iter().map(|x| x as f32).collect()
}

/// Multiplies row `i` by `s[i]`.
fn scale_rows(m: &mut HostTensor, s: &[f32]) {
    let c = m.shape[1];
    for (i, row) in m.data_mut().chunks_mut(c).enumerate() {
        row.iter_mut().for_each(|x| *x *= s[i]);
    }
}

/// Subtracts from each column its mean (centring along the row axis, e.g. `d_model` of `W_Q`).
fn subtract_column_means(m: &mut HostTensor) {
    let (r, c) = (m.shape[0], m.shape[1]);
    let mut mean = vec![0f64; c];
    for row in m.data().chunks(c) {
        for (s, x) in mean.iter_mut().zip(row) {
            *s += *x as f64;
        }
    }
    mean.iter_mut().for_each(|s| *s /= r as f64);
    for row in m.data_mut().chunks_mut(c) {
        for (x, s) in row.iter_mut().zip(&mean) {
            *x -= *s as f32;
        }
    }
}

/// Subtracts from each row its mean (centring along the last axis, e.g. `d_model` of `W_O`).
fn subtract_row_means(m: &mut HostTensor) {
    let c = *m.shape.last().expect("matrix");
    for row in m.data_mut().chunks_mut(c) {
        let mean = row.iter().map(|x| *x as f64).sum::<f64>() / c as f64;
        row.iter_mut().for_each(|x| *x -= mean as f32);
    }
}

fn subtract_mean(v: &mut HostTensor) {
    let data = v.data_mut();
    let mean = data.iter().map(|x| *x as f64).sum::<f64>() / data.len() as f64;
    data.iter_mut().for_each(|x| *x -= mean as f32);
}
