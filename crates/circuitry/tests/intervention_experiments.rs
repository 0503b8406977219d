//! The causal-intervention kinds end to end through the binary: on the tiny fixtures, inline
//! clean/corrupt token pairs reproduce TransformerLens's patching tables from Parquet; on
//! SmolLM2-135M-Instruct, `experiments/ioi-smollm2.toml` runs and its patching, path-patching
//! and EAP tables behave as IOI does (the headline numbers are printed with `--nocapture`).

use crate::common;

use std::collections::BTreeMap;
use std::time::Instant;

use common::*;

const ATOL: f64 = 1e-4;

fn run_fixture(model: &str, dir: &std::path::Path) -> std::path::PathBuf {
    let r = reference(model);
    let clean = id_rows(&r["processed.patch_clean_ids"]);
    let corrupt = id_rows(&r["processed.patch_corrupt_ids"]);
    let metric = "metric = { logit_diff = [{ id = 5 }, { id = 7 }] }";
    // END is the last token, written once from the end and once from the start.
    let records: Vec<String> = clean
        .iter()
        .zip(&corrupt)
        .enumerate()
        .map(|(i, (c, x))| {
            let end = if i % 2 == 0 { -1 } else { c.len() as i64 - 1 };
            let list = |r: &Vec<u32>| {
                let ids: Vec<String> = r.iter().map(u32::to_string).collect();
                format!("[{}]", ids.join(", "))
            };
            format!(
                "{{ ids = {}, corrupt = {}, answers = {{ A = 5, B = 7 }}, positions = {{ END = {end} }} }}",
                list(c),
                list(x),
            )
        })
        .collect();
    let toml = format!(
        r#"
name = "fixture-interventions"
seed = 5

[models.m]
path = "{path}"

[datasets.pair]
tokens = {clean}
corrupt_tokens = {corrupt}

[datasets.others]
tokens = [[3, 9, 27, 81, 15, 45, 7], [2, 4, 8, 16, 32, 64, 1]]

# The same pairs as records that name their answers and the metric's position.
[datasets.records]
tokens = [{records}]

[analyses.resid_records]
kind = "activation_patching"
model = "m"
dataset = "records"
site = "resid_pre"
positions = "each"
position = "END"
metric = {{ logit_diff = ["A", "B"] }}

[analyses.resid]
kind = "activation_patching"
model = "m"
dataset = "pair"
site = "resid_pre"
positions = "each"
{metric}

[analyses.heads]
kind = "activation_patching"
model = "m"
dataset = "pair"
site = "z"
{metric}

[analyses.zero]
kind = "ablation"
model = "m"
dataset = "pair"
units = "heads"
{metric}

[analyses.mean_self]
kind = "ablation"
model = "m"
dataset = "pair"
units = "mlps"
method = "mean"
{metric}

[analyses.mean_others]
kind = "ablation"
model = "m"
dataset = "pair"
units = "residual"
method = "mean"
reference = "others"
{metric}

[analyses.paths]
kind = "path_patching"
model = "m"
dataset = "pair"
{metric}

[analyses.attribution]
kind = "attribution_patching"
model = "m"
dataset = "pair"
{metric}

[analyses.circuit]
kind = "edge_attribution_patching"
model = "m"
dataset = "pair"
top_n = 5
{metric}
"#,
        path = fixture(model).display(),
        clean = toml_rows(&clean),
        corrupt = toml_rows(&corrupt),
        records = records.join(", "),
    );
    run_text(dir, &toml, "fixture-interventions")
}

fn check_fixture(model: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let out = run_fixture(model, tmp.path());
    let r = reference(model);
    let (shape, z_ref) = &r["processed.patch_head_z_all_pos"];
    let (n_layers, n_heads) = (shape[0], shape[1]);
    let (rshape, resid_ref) = &r["processed.patch_resid_pre"];
    let t = rshape[1];
    let clean = r["processed.patch_metric_clean"].1[0];
    let corrupt = r["processed.patch_metric_corrupt"].1[0];

    let resid = read_table(&out.join("resid.parquet"));
    assert_eq!(resid.rows(), n_layers * t, "{model}");
    assert_eq!(
        &resid.columns()[..3],
        ["model", "dataset", "prompt"],
        "the runner prepends model and dataset"
    );
    let (layer, pos, metric) = (
        resid.i32("layer"),
        resid.i32("position"),
        resid.f64("metric"),
    );
    for i in 0..resid.rows() {
        let (l, p) = (layer[i].unwrap() as usize, pos[i].unwrap() as usize);
        let want = resid_ref[l * t + p];
        assert!(
            (metric[i] - want).abs() < ATOL,
            "{model} resid_pre L{l} pos {p}: {} vs TransformerLens {want}",
            metric[i]
        );
    }
    assert!(
        resid
            .f64("metric_clean")
            .iter()
            .all(|m| (m - clean).abs() < ATOL)
    );
    assert!(
        resid
            .f64("metric_corrupt")
            .iter()
            .all(|m| (m - corrupt).abs() < ATOL)
    );
    // Records with named answers and position give the same table.
    let records = read_table(&out.join("resid_records.parquet"));
    assert_eq!(records.rows(), resid.rows());
    for column in ["metric", "metric_clean", "metric_corrupt"] {
        assert_eq!(records.f64(column), resid.f64(column), "{model} {column}");
    }
    assert_eq!(records.i32("position"), resid.i32("position"));
    let summary = read_table(&out.join("resid.summary.parquet"));
    assert_eq!(summary.rows(), n_layers * t);

    let heads = read_table(&out.join("heads.parquet"));
    assert_eq!(heads.rows(), n_layers * n_heads);
    let (layer, head, metric) = (heads.i32("layer"), heads.i32("head"), heads.f64("metric"));
    for i in 0..heads.rows() {
        let (l, h) = (layer[i].unwrap() as usize, head[i].unwrap() as usize);
        let want = z_ref[l * n_heads + h];
        assert!(
            (metric[i] - want).abs() < ATOL,
            "{model} z L{l}H{h}: {} vs TransformerLens {want}",
            metric[i]
        );
    }
    assert!(heads.i32("position").iter().all(Option::is_none));

    // Ablations run the clean prompt: the baseline is the clean metric.
    let zero = read_table(&out.join("zero.parquet"));
    assert_eq!(zero.rows(), n_layers * n_heads);
    assert!(
        zero.f64("metric_baseline")
            .iter()
            .all(|m| (m - clean).abs() < ATOL)
    );
    assert!(
        zero.str("method")
            .iter()
            .all(|m| m.as_deref() == Some("zero"))
    );
    // Mean over the prompt itself (the default reference) changes nothing.
    let mean_self = read_table(&out.join("mean_self.parquet"));
    assert_eq!(mean_self.rows(), n_layers);
    for d in mean_self.f64("delta") {
        assert!(
            d.abs() < ATOL,
            "{model}: mean ablation over the prompt itself: {d}"
        );
    }
    // Another reference does (the residual stream before block 0 is the embedding).
    let mean_others = read_table(&out.join("mean_others.parquet"));
    assert_eq!(mean_others.rows(), n_layers);
    assert!(mean_others.f64("delta")[0].abs() > 1e-3);
    assert_eq!(
        mean_others.metadata["runs"][0]["analysis"]["config"]["reference"],
        "others"
    );

    let paths = read_table(&out.join("paths.parquet"));
    assert_eq!(paths.rows(), n_layers * n_heads);
    assert!(
        paths
            .str("receivers")
            .iter()
            .all(|r| r.as_deref() == Some("logits"))
    );
    assert!(
        paths
            .str("direction")
            .iter()
            .all(|r| r.as_deref() == Some("noising"))
    );

    let attribution = read_table(&out.join("attribution.parquet"));
    // resid_pre per layer and position, z per layer, head and position.
    assert_eq!(attribution.rows(), n_layers * t + n_layers * n_heads * t);

    let edges = read_table(&out.join("circuit.parquet"));
    let nodes = read_table(&out.join("circuit.nodes.parquet"));
    let in_circuit = edges.bool("in_circuit").iter().filter(|&&b| b).count();
    assert_eq!(in_circuit, 5, "{model}: top_n = 5");
    // input, every head and MLP, and the logits.
    assert_eq!(nodes.rows(), 1 + n_layers * (n_heads + 1) + 1);
}

#[test]
fn fixture_patching_tables_from_parquet() {
    check_fixture("gpt2-tiny");
    check_fixture("llama-tiny");
}

/// Means over prompts of the `resid_patch` summary, keyed by (layer, position).
fn resid_summary(out: &std::path::Path) -> BTreeMap<(i32, i32), (f64, f64, f64)> {
    let s = read_table(&out.join("resid_patch.summary.parquet"));
    let (layer, pos, m, c, x) = (
        s.i32("layer"),
        s.i32("position"),
        s.f64("metric"),
        s.f64("metric_clean"),
        s.f64("metric_corrupt"),
    );
    (0..s.rows())
        .map(|i| ((layer[i].unwrap(), pos[i].unwrap()), (m[i], c[i], x[i])))
        .collect()
}

#[test]
fn ioi_smollm2_interventions() {
    let tmp = tempfile::tempdir().unwrap();
    let model = format!("models.smollm2.path={}", smollm2().display());
    let file = repo().join("experiments/ioi-smollm2.toml");
    let t0 = Instant::now();
    run_ok(&file, tmp.path(), &["--set", &model]);
    let seconds = t0.elapsed().as_secs_f64();
    let out = tmp.path().join("ioi-smollm2");
    println!("experiments/ioi-smollm2.toml ran in {seconds:.1} s");

    // The named positions of the patching prompts (one template: the same in every prompt).
    let tokens = read_table(&out.join("small_tokens.parquet"));
    let (prompt, position, names) = (
        tokens.u32("prompt"),
        tokens.i32("position"),
        tokens.str("position_name"),
    );
    let mut named: BTreeMap<String, i32> = BTreeMap::new();
    for i in 0..tokens.rows() {
        if let Some(n) = &names[i] {
            for n in n.split(',') {
                let prev = named.insert(n.trim().to_string(), position[i].unwrap());
                assert!(
                    prev.is_none_or(|p| p == position[i].unwrap()),
                    "{n} is not aligned across prompts (prompt {})",
                    prompt[i]
                );
            }
        }
    }
    let (io, s2, end) = (named["IO"], named["S2"], named["END"]);

    // Direct logit attribution over the large IOI dataset: the model prefers the indirect object.
    let dla = read_table(&out.join("logit_diff.parquet"));
    let (dla_prompt, value) = (dla.u32("prompt"), dla.f64("attribution"));
    let mut per_prompt: BTreeMap<u32, f64> = BTreeMap::new();
    for i in 0..dla.rows() {
        *per_prompt.entry(dla_prompt[i]).or_default() += value[i];
    }
    let n = per_prompt.len() as f64;
    let mean = per_prompt.values().sum::<f64>() / n;
    let positive = per_prompt.values().filter(|&&v| v > 0.0).count() as f64 / n;
    assert!(
        mean > 2.0 && positive > 0.9,
        "mean logit diff {mean}, {positive} positive"
    );

    let summary = resid_summary(&out);
    let n_layers = 30;
    let norm = |l: i32, p: i32| {
        let (m, c, x) = summary[&(l, p)];
        (m - x) / (c - x)
    };
    let (_, clean, corrupt) = summary[&(0, 0)];
    println!("ioi_small: mean logit diff clean {clean:.3}, corrupt (ABC) {corrupt:.3}");
    println!(
        "resid_pre patching (normalized mean): L{} END {:.3}, L0 IO {:.3}, L0 S2 {:.3}, L0 END {:.3}, L15 END {:.3}",
        n_layers - 1,
        norm(n_layers - 1, end),
        norm(0, io),
        norm(0, s2),
        norm(0, end),
        norm(15, end)
    );
    for l in [0, 5, 10, 15, 20, 25, 29] {
        let row: Vec<String> = (0..=end).map(|p| format!("{:+.2}", norm(l, p))).collect();
        println!("  L{l:>2}: {}", row.join(" "));
    }
    assert!(
        clean > corrupt + 1.0,
        "IOI: clean {clean} vs corrupt {corrupt}"
    );
    // By the last layer the information has moved to END: its residual stream there restores
    // most of the clean logit difference (not all: the last block's heads still read the
    // corrupt positions before END).
    let last_end = norm(n_layers - 1, end);
    assert!(
        (0.7..1.2).contains(&last_end),
        "the last layer's residual stream at END carries the clean behaviour: {last_end}"
    );
    let at_end: f64 = (0..=end).map(|p| norm(n_layers - 1, p)).sum();
    assert!(
        (at_end - 1.0).abs() < 0.15,
        "patched one position at a time, the last layer's effects add up to the whole: {at_end}"
    );
    assert!(
        norm(0, io) > 0.5,
        "restoring the IO token at the embedding restores much of the logit difference: {}",
        norm(0, io)
    );
    assert!(
        norm(0, end).abs() < 0.05,
        "END is the same token in both runs: {}",
        norm(0, end)
    );
    // Per-prompt rows agree with the summary's count.
    let resid = read_table(&out.join("resid_patch.parquet"));
    assert_eq!(resid.rows(), 8 * n_layers as usize * (end as usize + 1));

    // Head patching: the heads whose clean output restores the most.
    let heads = read_table(&out.join("head_patch.summary.parquet"));
    let (hl, hh, hm, hc, hx) = (
        heads.i32("layer"),
        heads.i32("head"),
        heads.f64("metric"),
        heads.f64("metric_clean"),
        heads.f64("metric_corrupt"),
    );
    assert_eq!(heads.rows(), 30 * 9);
    let mut by_head: Vec<(f64, i32, i32)> = (0..heads.rows())
        .map(|i| {
            (
                (hm[i] - hx[i]) / (hc[i] - hx[i]),
                hl[i].unwrap(),
                hh[i].unwrap(),
            )
        })
        .collect();
    by_head.sort_by(|a, b| b.0.total_cmp(&a.0));
    let top: Vec<String> = by_head
        .iter()
        .take(5)
        .map(|(v, l, h)| format!("L{l}H{h} {v:.3}"))
        .collect();
    println!("head z patching (denoising), top 5: {}", top.join(", "));

    // Path patching into the logits (noising): each head's direct effect.
    let paths = read_table(&out.join("head_paths.parquet"));
    assert_eq!(paths.rows(), 8 * 30 * 9);
    let (pl, ph, delta) = (paths.i32("layer"), paths.i32("head"), paths.f64("delta"));
    let mut mean: BTreeMap<(i32, i32), f64> = BTreeMap::new();
    for i in 0..paths.rows() {
        *mean.entry((pl[i].unwrap(), ph[i].unwrap())).or_default() += delta[i] / 8.0;
    }
    let mut ranked: Vec<((i32, i32), f64)> = mean.into_iter().collect();
    ranked.sort_by(|a, b| a.1.total_cmp(&b.1));
    let fmt = |v: &[((i32, i32), f64)]| {
        v.iter()
            .map(|((l, h), d)| format!("L{l}H{h} {d:+.3}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "path patching into the logits, largest drops (name movers): {}",
        fmt(&ranked[..5])
    );
    println!(
        "path patching into the logits, largest rises (negative name movers): {}",
        fmt(&ranked[ranked.len() - 3..])
    );
    assert!(
        ranked[0].1 < -0.1,
        "some head's direct path carries the IO preference: {:?}",
        ranked[0]
    );
    let (top_layer, _) = ranked[0].0;
    assert!(top_layer >= 10, "name movers sit late: {:?}", ranked[0]);

    // EAP: edges and nodes, the circuit of the top 100 edges.
    let edges = read_table(&out.join("circuit.parquet"));
    let nodes = read_table(&out.join("circuit.nodes.parquet"));
    let in_circuit = edges.bool("in_circuit");
    assert_eq!(in_circuit.iter().filter(|&&b| b).count(), 100);
    let (sender, receiver, input, score) = (
        edges.str("sender"),
        edges.str("receiver"),
        edges.str("receiver_input"),
        edges.f64("score"),
    );
    let mut order: Vec<usize> = (0..edges.rows()).collect();
    order.sort_by(|&a, &b| score[b].abs().total_cmp(&score[a].abs()));
    let top: Vec<String> = order
        .iter()
        .take(8)
        .map(|&i| {
            format!(
                "{}->{}.{} {:+.3}",
                sender[i].as_deref().unwrap(),
                receiver[i].as_deref().unwrap(),
                input[i].as_deref().unwrap(),
                score[i]
            )
        })
        .collect();
    println!(
        "EAP: {} edges, top 8 (units of the clean - corrupt gap): {}",
        edges.rows(),
        top.join(", ")
    );
    let node_names = nodes.str("node");
    let node_in = nodes.bool("in_circuit");
    let circuit_nodes: Vec<&str> = (0..nodes.rows())
        .filter(|&i| node_in[i])
        .map(|i| node_names[i].as_deref().unwrap())
        .collect();
    println!(
        "EAP circuit: {} nodes: {}",
        circuit_nodes.len(),
        circuit_nodes.join(" ")
    );
    assert!(circuit_nodes.contains(&"logits"));
    assert_eq!(nodes.rows(), 1 + 30 * 10 + 1);
}
