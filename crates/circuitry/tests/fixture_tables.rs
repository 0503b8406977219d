//! End to end: run the binary on the tiny fixture models and compare its Parquet tables with the
//! TransformerLens reference values stored in the fixtures.

use crate::common;

use common::*;

const ATOL: f64 = 1e-4;

/// Writes an experiment analysing fixture `model` and runs it; returns the output directory.
fn run_fixture(model: &str, dir: &std::path::Path) -> std::path::PathBuf {
    let r = reference(model);
    let clean = id_rows(&r["processed.patch_clean_ids"]);
    let corrupt = id_rows(&r["processed.patch_corrupt_ids"]);
    let repeated = id_rows(&r["repeated.input_ids"]);
    let toml = format!(
        r#"
name = "fixture"
[models.m]
path = "{path}"

[datasets.pair]
tokens = {clean}
corrupt_tokens = {corrupt}

[datasets.rep_first]
tokens = {rep_first}

[analyses.dla]
kind = "direct_logit_attribution"
model = "m"
dataset = "pair"
target = {{ diff = [{{ id = 5 }}, {{ id = 7 }}] }}

[analyses.next]
kind = "next_token"
model = "m"
dataset = "pair"
top_k = 128
positions = "all"

[analyses.heads]
kind = "head_detector"
model = "m"
dataset = "rep_first"

[analyses.lens]
kind = "logit_lens"
model = "m"
dataset = "pair"

[datasets.plain]
tokens = {plain}

[analyses.patterns]
kind = "attention_pattern"
model = "m"
dataset = "plain"

[analyses.comp]
kind = "composition_scores"
model = "m"
baseline_samples = 0

[analyses.ov]
kind = "ov_circuit"
model = "m"
top_k = 0
singular_values = 0
"#,
        path = fixture(model).display(),
        clean = toml_rows(&clean),
        corrupt = toml_rows(&corrupt),
        rep_first = toml_rows(&repeated[..1]),
        plain = toml_rows(&id_rows(&r["plain.input_ids"])),
    );
    run_text(dir, &toml, "fixture")
}

fn check(model: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let out = run_fixture(model, tmp.path());
    let r = reference(model);
    let (shape, dla_ref) = &r["processed.dla_head_last_pos"];
    let n_heads = shape[1];

    // Direct logit attribution per head equals TransformerLens's.
    let dla = read_table(&out.join("dla.parquet"));
    let comps = dla.str("component");
    let (layers, heads, values) = (dla.i32("layer"), dla.i32("head"), dla.f64("attribution"));
    let mut seen = 0;
    for i in 0..dla.rows() {
        if comps[i].as_deref() == Some("head") {
            let (l, h) = (layers[i].unwrap() as usize, heads[i].unwrap() as usize);
            let want = dla_ref[l * n_heads + h];
            assert!(
                (values[i] - want).abs() < ATOL,
                "{model} DLA L{l}H{h}: {} vs {want}",
                values[i]
            );
            seen += 1;
        }
    }
    assert_eq!(seen, dla_ref.len(), "{model}: every head has a DLA row");
    // All components together are the model's logit difference.
    let total: f64 = values.iter().sum();
    let metric = r["processed.patch_metric_clean"].1[0];
    assert!(
        (total - metric).abs() < 1e-3,
        "{model}: DLA sums to {total}, logit diff is {metric}"
    );

    // The logits behind next_token agree with that logit difference too.
    let next = read_table(&out.join("next.parquet"));
    let (ids, logits, pos) = (
        next.u32("token_id"),
        next.f64("logit"),
        next.i32("position"),
    );
    let last = *pos.iter().flatten().max().unwrap();
    let logit_of = |t: u32| {
        (0..next.rows())
            .find(|&i| ids[i] == t && pos[i] == Some(last))
            .map(|i| logits[i])
            .unwrap()
    };
    assert!(
        (logit_of(5) - logit_of(7) - metric).abs() < ATOL,
        "{model}: next_token logits"
    );

    // Head detector scores equal TransformerLens's detect_head (mul measure) on the first row.
    let heads = read_table(&out.join("heads.parquet"));
    let (det, hl, hh, score) = (
        heads.str("detector"),
        heads.i32("layer"),
        heads.i32("head"),
        heads.f64("score"),
    );
    for i in 0..heads.rows() {
        let key = format!("repeated.detect_{}_head", det[i].as_deref().unwrap());
        let (l, h) = (hl[i].unwrap() as usize, hh[i].unwrap() as usize);
        let want = r[&key].1[l * n_heads + h];
        assert!(
            (score[i] - want).abs() < ATOL,
            "{model} {key} L{l}H{h}: {} vs {want}",
            score[i]
        );
    }
    assert_eq!(heads.rows(), 3 * dla_ref.len());

    // Composition scores and OV copying scores from the weights alone.
    let comp = read_table(&out.join("comp.parquet"));
    let (kind, la, ha, lb, hb, s) = (
        comp.str("kind"),
        comp.i32("layer_a"),
        comp.i32("head_a"),
        comp.i32("layer_b"),
        comp.i32("head_b"),
        comp.f64("score"),
    );
    let n_layers = shape[0];
    for i in 0..comp.rows() {
        let key = format!("processed.composition_{}", kind[i].as_deref().unwrap());
        let idx = ((la[i].unwrap() as usize * n_heads + ha[i].unwrap() as usize) * n_layers
            + lb[i].unwrap() as usize)
            * n_heads
            + hb[i].unwrap() as usize;
        let want = r[&key].1[idx];
        assert!(
            (s[i] - want).abs() < ATOL,
            "{model} {key} row {i}: {} vs {want}",
            s[i]
        );
    }
    assert!(comp.rows() > 0);
    let ov = read_table(&out.join("ov.parquet"));
    let (ol, oh, cs, fcs) = (
        ov.i32("layer"),
        ov.i32("head"),
        ov.f64("copying_score"),
        ov.f64("full_copying_score"),
    );
    for i in 0..ov.rows() {
        let idx = ol[i].unwrap() as usize * n_heads + oh[i].unwrap() as usize;
        assert!(
            (cs[i] - r["processed.ov_copying_score"].1[idx]).abs() < ATOL,
            "{model} OV copying"
        );
        assert!(
            (fcs[i] - r["processed.full_ov_copying_score"].1[idx]).abs() < ATOL,
            "{model} full OV copying"
        );
    }
    assert_eq!(ov.rows(), dla_ref.len());

    // The logit lens after the last layer is the model's own output distribution.
    let lens = read_table(&out.join("lens.parquet"));
    let (ll, lp, lt, llp) = (
        lens.i32("layer"),
        lens.i32("position"),
        lens.u32("token_id"),
        lens.f64("logprob"),
    );
    let probs = next.f64("prob");
    let final_layer = (n_layers - 1) as i32;
    let mut matched = 0;
    for i in (0..lens.rows()).filter(|&i| ll[i] == Some(final_layer)) {
        if let Some(j) = (0..next.rows()).find(|&j| pos[j] == lp[i] && ids[j] == lt[i]) {
            assert!(
                (llp[i] - probs[j].ln()).abs() < 1e-3,
                "{model}: lens {} vs model {}",
                llp[i],
                probs[j].ln()
            );
            matched += 1;
        }
    }
    assert!(
        matched > 0,
        "{model}: the final-layer lens row at the last position has a next_token row"
    );

    // Attention patterns equal the reference hook (processing leaves attention unchanged).
    let patterns = read_table(&out.join("patterns.parquet"));
    let (pp, pl, ph, pq, pk, pa) = (
        patterns.u32("prompt"),
        patterns.i32("layer"),
        patterns.i32("head"),
        patterns.i32("query_position"),
        patterns.i32("key_position"),
        patterns.f64("attention"),
    );
    for i in 0..patterns.rows() {
        let (l, h, q, k) = (
            pl[i].unwrap() as usize,
            ph[i].unwrap() as usize,
            pq[i].unwrap() as usize,
            pk[i].unwrap() as usize,
        );
        let (shape, values) = &r[&format!("plain.blocks.{l}.attn.hook_pattern")];
        let want = values[((pp[i] as usize * shape[1] + h) * shape[2] + q) * shape[3] + k];
        assert!(
            (pa[i] - want).abs() < ATOL,
            "{model} pattern L{l}H{h} {q}->{k}: {} vs {want}",
            pa[i]
        );
    }
    let (s, _) = &r["plain.blocks.0.attn.hook_pattern"];
    assert_eq!(
        patterns.rows(),
        n_layers * s[0] * s[1] * s[2] * (s[2] + 1) / 2,
        "every causal entry"
    );

    // Every table records where it came from.
    assert_eq!(dla.metadata["experiment"], "fixture");
    assert_eq!(
        dla.metadata["runs"][0]["analysis"]["kind"],
        "direct_logit_attribution"
    );
    assert!(
        dla.metadata["runs"][0]["model"]["content_hash"]
            .as_str()
            .unwrap()
            .len()
            == 64
    );
    assert!(
        dla.columns()
            .starts_with(&["model".to_string(), "dataset".to_string()])
    );
    assert!(
        ov.columns()
            .starts_with(&["model".to_string(), "layer".to_string()]),
        "weight tables have no dataset column"
    );
}

#[test]
fn gpt2_tiny_tables_match_transformer_lens() {
    check("gpt2-tiny");
}

#[test]
fn llama_tiny_tables_match_transformer_lens() {
    check("llama-tiny");
}
