//! The shipped induction experiment on the real SmolLM2: its head ranking agrees with
//! TransformerLens on the same tokens. (`experiments/ioi-smollm2.toml` is run end to end by
//! `intervention_experiments.rs`.)

use crate::common;

use std::collections::BTreeMap;

use common::*;

fn run_experiment(name: &str, out: &std::path::Path) -> std::path::PathBuf {
    let model = format!("models.smollm2.path={}", smollm2().display());
    let file = repo().join("experiments").join(format!("{name}.toml"));
    run_ok(&file, out, &["--set", &model]);
    out.join(name)
}

#[test]
fn induction_head_ranking_agrees_with_transformer_lens() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run_experiment("induction-smollm2", tmp.path());
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("smollm2-induction.reference.json")).unwrap(),
    )
    .unwrap();

    // The same tokens TransformerLens saw (the generator is seeded and version-stable).
    let tokens = read_table(&out.join("tokens.parquet"));
    let (prompt, position, id) = (
        tokens.u32("prompt"),
        tokens.i32("position"),
        tokens.u32("token_id"),
    );
    let mut rows: BTreeMap<u32, BTreeMap<i32, u32>> = BTreeMap::new();
    for i in 0..tokens.rows() {
        rows.entry(prompt[i])
            .or_default()
            .insert(position[i].unwrap(), id[i]);
    }
    let ours: Vec<Vec<u64>> = rows
        .values()
        .map(|r| r.values().map(|&t| t as u64).collect())
        .collect();
    let theirs: Vec<Vec<u64>> = serde_json::from_value(reference["tokens"].clone()).unwrap();
    assert_eq!(
        ours, theirs,
        "the dataset's tokens changed; regenerate the reference (see scripts/reference/)"
    );

    let table = read_table(&out.join("induction.parquet"));
    let (layer, head, score) = (
        table.i32("layer"),
        table.i32("head"),
        table.f64("induction_score"),
    );
    let mut pairs: Vec<(f64, f64, (i32, i32))> = (0..table.rows())
        .map(|i| {
            let (l, h) = (layer[i].unwrap(), head[i].unwrap());
            let want = reference["induction_score"][l as usize][h as usize]
                .as_f64()
                .unwrap();
            (score[i], want, (l, h))
        })
        .collect();
    assert_eq!(pairs.len(), 30 * 9);
    for (ours, theirs, (l, h)) in &pairs {
        assert!(
            (ours - theirs).abs() < 1e-3,
            "L{l}H{h}: {ours} vs TransformerLens {theirs}"
        );
    }
    // Same ranking of the top heads (ties within 1e-3 aside).
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
    for w in pairs.windows(2).take(10) {
        let ((_, t0, h0), (_, t1, h1)) = ((w[0].0, w[0].1, w[0].2), (w[1].0, w[1].1, w[1].2));
        assert!(
            t0 + 1e-3 >= t1,
            "ranking differs: {h0:?} ({t0}) before {h1:?} ({t1}) in circuitry"
        );
    }
    let top = pairs[0].2;
    assert!(
        pairs[0].0 > 0.5,
        "SmolLM2 has a strong induction head, got {top:?} at {}",
        pairs[0].0
    );

    // The same tokens as a user's own dataset (the ids after the BOS, declared `repeats = 2`):
    // the same scores, with no generator involved.
    let rows: Vec<String> = ours
        .iter()
        .map(|r| {
            let ids: Vec<String> = r[1..].iter().map(u64::to_string).collect();
            format!("[{}]", ids.join(", "))
        })
        .collect();
    let user = tmp.path().join("user-repeats.toml");
    std::fs::write(
        &user,
        format!(
            "name = \"user-repeats\"\n[models.smollm2]\npath = {:?}\n\
             [datasets.mine]\ntokens = [{}]\nrepeats = 2\nprepend_bos = true\n\
             [analyses.induction]\nkind = \"induction_scores\"\nmodel = \"smollm2\"\ndataset = \"mine\"\n",
            smollm2().display().to_string(),
            rows.join(", ")
        ),
    )
    .unwrap();
    run_ok(&user, tmp.path(), &[]);
    let mine = read_table(&tmp.path().join("user-repeats/induction.parquet"));
    assert_eq!(
        (mine.i32("layer"), mine.i32("head")),
        (table.i32("layer"), table.i32("head"))
    );
    for column in [
        "induction_score",
        "previous_token_score",
        "duplicate_token_score",
    ] {
        assert_eq!(mine.f64(column), table.f64(column), "{column}");
    }

    // TransformerLens's own detect_head agrees with circuitry's head_detector.
    let det = read_table(&out.join("detectors.parquet"));
    let (dk, dl, dh, ds) = (
        det.str("detector"),
        det.i32("layer"),
        det.i32("head"),
        det.f64("score"),
    );
    let mut checked = 0;
    for i in 0..det.rows() {
        if dk[i].as_deref() == Some("induction") {
            let want = reference["detect_induction_head"][dl[i].unwrap() as usize]
                [dh[i].unwrap() as usize]
                .as_f64()
                .unwrap();
            assert!(
                (ds[i] - want).abs() < 1e-3,
                "detect_head L{:?}H{:?}: {} vs {want}",
                dl[i],
                dh[i],
                ds[i]
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 270);

    // In-context learning: the second repeat is far easier than the first.
    let loss = read_table(&out.join("loss.parquet"));
    let (pos, l) = (loss.i32("position"), loss.f64("loss"));
    let length = reference["repeat_length"].as_i64().unwrap() as i32;
    let mean = |f: &dyn Fn(i32) -> bool| {
        let v: Vec<f64> = (0..loss.rows())
            .filter(|&i| !l[i].is_nan() && f(pos[i].unwrap()))
            .map(|i| l[i])
            .collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    let (first, second) = (
        mean(&|p| p >= 1 && p < length),
        mean(&|p| p > length && p < 2 * length),
    );
    assert!(
        second < 0.5 * first,
        "loss on the second repeat {second} vs first {first}"
    );
}

/// `experiments/neurons-smollm2.toml`, cut down (a few windows of the corpus sample, a few
/// layers and neurons): every table is written, and every top context is text of the corpus
/// around its token, with the window's document and offset.
#[test]
fn neurons_experiment_reads_the_corpus_and_writes_every_table() {
    let tmp = tempfile::tempdir().unwrap();
    let sample = repo().join("data/corpus/fortunes-sample.txt");
    let sets = [
        format!("models.smollm2.path={}", smollm2().display()),
        format!("datasets.corpus.text={:?}", sample.to_str().unwrap()),
        "datasets.corpus.n=24".to_string(),
        "analyses.top_contexts.sample=6".to_string(),
        "analyses.top_contexts.layers=[0,29]".to_string(),
        "analyses.neuron_stats.layers=[0,29]".to_string(),
        "analyses.logit_effect.sample=3".to_string(),
        "analyses.logit_effect.layers=[0,29]".to_string(),
        "analyses.dimension.layers=[0,29]".to_string(),
        "analyses.dimension.twonn_points=200".to_string(),
        "analyses.subspaces.layers=[0]".to_string(),
    ];
    let mut args = Vec::new();
    for s in &sets {
        args.extend(["--set", s.as_str()]);
    }
    let file = repo().join("experiments/neurons-smollm2.toml");
    run_ok(&file, tmp.path(), &args);
    let out = tmp.path().join("neurons-smollm2");
    let corpus = std::fs::read_to_string(&sample).unwrap();

    let top = read_table(&out.join("top_contexts.parquet"));
    assert_eq!(top.rows(), 2 * 6 * (20 + 5));
    let (before, token, after) = (
        top.str("context_before"),
        top.str("token"),
        top.str("context_after"),
    );
    let (document, offset) = (top.i64("document"), top.i64("offset"));
    for i in 0..top.rows() {
        let text = format!(
            "{}{}{}",
            before[i].as_deref().unwrap(),
            token[i].as_deref().unwrap(),
            after[i].as_deref().unwrap()
        );
        let text = text.trim_start_matches("<|im_start|>");
        assert!(
            corpus.contains(text),
            "row {i}: {text:?} is not corpus text"
        );
        assert!(document[i] >= 0 && offset[i] >= 0);
    }
    let stats = read_table(&out.join("neuron_stats.parquet"));
    assert_eq!(stats.rows(), 2 * 1536);
    let dims = read_table(&out.join("dimension.parquet"));
    assert_eq!(dims.rows(), 2 * (1 + 9));
    assert!(dims.f64("twonn").iter().all(|d| d.is_finite() && *d > 1.0));
    let subspaces = read_table(&out.join("subspaces.parquet"));
    let components = 1 + 9 + 1; // embed, 9 heads, the MLP
    assert_eq!(subspaces.rows(), components * (components - 1) / 2);
    assert_eq!(
        read_table(&out.join("logit_effect.parquet")).rows(),
        2 * 3 * 2 * 10
    );
}
