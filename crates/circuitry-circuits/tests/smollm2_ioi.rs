//! Attribution patching against real activation patching on SmolLM2-135M-Instruct with IOI
//! prompts: residual stream by layer x position, and each head's z (all positions).
//!
//! Needs the model file (see `tests/iv_smollm2/mod.rs`); about 35 s in release on 2 cores:
//!
//! ```sh
//! cargo test -p circuitry-circuits --release --test integration smollm2_ioi -- --nocapture
//! ```

use crate::iv_smollm2;

use std::time::Instant;

use circuitry_circuits::interventions::{
    AttributionConfig, AttributionResult, PatchResult, PatchingConfig, PositionSweep,
    activation_patching, attribution_patching, pearson,
};
use circuitry_models::HookKind;

fn correlate(patched: &[PatchResult], attributed: &[AttributionResult]) -> (f64, f64, usize) {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for p in patched {
        let at = attributed
            .iter()
            .find(|r| {
                (r.prompt, r.layer, r.head, r.position) == (p.prompt, p.layer, p.head, p.position)
            })
            .expect("an attribution for every patch");
        a.push(at.attribution);
        b.push(p.metric - p.metric_corrupt);
    }
    let agree = a
        .iter()
        .zip(&b)
        .filter(|(_, y)| y.abs() > 0.05)
        .map(|(x, y)| f64::from(u8::from(x.signum() == y.signum())))
        .collect::<Vec<_>>();
    let sign = agree.iter().sum::<f64>() / agree.len().max(1) as f64;
    (pearson(&a, &b).unwrap(), sign, a.len())
}

#[test]
fn smollm2_attribution_tracks_activation_patching_on_ioi() {
    let loaded = iv_smollm2::load();
    let prompts = iv_smollm2::ioi_prompts(&loaded, 4, 1);
    let padding = iv_smollm2::padding(&loaded);
    let model = &loaded.model;
    let metric = iv_smollm2::ioi_metric();

    let t = Instant::now();
    let mut cfg = PatchingConfig::new(HookKind::ResidPre, metric.clone());
    cfg.positions = PositionSweep::Each;
    let resid = activation_patching(model, &prompts, padding, &cfg).unwrap();
    let z = activation_patching(
        model,
        &prompts,
        padding,
        &PatchingConfig::new(HookKind::Z, metric.clone()),
    )
    .unwrap();
    let t_patch = t.elapsed();

    let t = Instant::now();
    let attr_resid = attribution_patching(
        model,
        &prompts,
        padding,
        &AttributionConfig::new(vec![HookKind::ResidPre], metric.clone()),
    )
    .unwrap();
    let mut zcfg = AttributionConfig::new(vec![HookKind::Z], metric.clone());
    zcfg.per_position = false;
    let attr_z = attribution_patching(model, &prompts, padding, &zcfg).unwrap();
    let t_attr = t.elapsed();

    let (clean, corrupt) = (resid[0].metric_clean, resid[0].metric_corrupt);
    println!("IOI on SmolLM2, prompt 0: logit diff clean {clean:.3}, corrupt {corrupt:.3}");
    println!("activation patching {t_patch:.1?}, attribution patching {t_attr:.1?}");
    let (r_resid, s_resid, n_resid) = correlate(&resid, &attr_resid);
    let (r_z, s_z, n_z) = correlate(&z, &attr_z);
    println!(
        "resid_pre (layer x position x prompt, {n_resid}): pearson {r_resid:.3}, sign agreement {s_resid:.2}"
    );
    println!("head z (layer x head x prompt, {n_z}): pearson {r_z:.3}, sign agreement {s_z:.2}");
    for layer in [0usize, 1, 10, 20, 29] {
        let sub: Vec<PatchResult> = resid.iter().filter(|r| r.layer >= layer).cloned().collect();
        let (r, _, n) = correlate(&sub, &attr_resid);
        println!("  resid_pre from layer {layer} ({n}): pearson {r:.3}");
    }
    assert!(
        clean > corrupt,
        "SmolLM2 prefers the indirect object on clean IOI prompts"
    );
    assert!(r_resid > 0.5, "resid_pre correlation {r_resid}");
    assert!(r_z > 0.5, "head z correlation {r_z}");
}
