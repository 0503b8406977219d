//! Every architecture through the binary, on the tiny Hugging Face fixtures
//! (`scripts/reference/architectures.py`): `circuitry inspect` describes what sets each apart,
//! and an experiment of patching, attribution patching and attention patterns runs on each and
//! behaves as patching must (restoring the one corrupted token's embedding restores the clean
//! run; patching a position both runs share changes nothing).

use crate::common;

use common::*;

/// Each fixture with lines `circuitry inspect` must print for it.
const MODELS: &[(&str, &[&str])] = &[
    (
        "gptneox-tiny",
        &[
            "architecture   gpt_neox",
            "attention and MLP in parallel",
            "4 dims",
        ],
    ),
    (
        "gemma-tiny",
        &["architecture   gemma", "key/value heads 1", "d_head 24"],
    ),
    (
        "gemma2-tiny",
        &[
            "pre- and post-norms",
            "scores / 5.65",
            "soft-capped at 5",
            "sliding window of 4 keys in layers 0",
            "logits         soft-capped at 3",
        ],
    ),
    (
        "gemma3-tiny",
        &[
            "query/key norms per head",
            "sliding window of 4 keys in layers 0, 2",
            "linear scaling x4; sliding-window layers theta 10000, unscaled",
        ],
    ),
    (
        "qwen3-tiny",
        &["query/key norms per head", "attn.hook_q_normed"],
    ),
    (
        "olmo2-tiny",
        &[
            "post-norms (ln1_post, ln2_post)",
            "query/key norms over all heads",
        ],
    ),
    ("phi3-tiny", &["sliding window of 6 keys", "8 dims"]),
];

#[test]
fn inspect_describes_every_architecture() {
    for (name, lines) in MODELS {
        let o = circuitry(&["inspect", fixture(name).to_str().unwrap(), "--hooks"]);
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        for line in *lines {
            assert!(stdout.contains(line), "{name}: no `{line}` in\n{stdout}");
        }
        // Parallel blocks have no stream between attention and MLP.
        assert_eq!(
            stdout.contains("hook_resid_mid"),
            *name != "gptneox-tiny",
            "{name}:\n{stdout}"
        );
    }
}

/// Two clean/corrupt pairs, each differing in its second token, with two answers.
const PAIR: &str = r#"[datasets.pair]
tokens = [
  { ids = [5, 6, 7, 8, 9, 10, 11, 12], corrupt = [5, 40, 7, 8, 9, 10, 11, 12], answers = { A = 20, B = 21 } },
  { ids = [30, 31, 32, 33, 34, 35], corrupt = [30, 50, 32, 33, 34, 35], answers = { A = 22, B = 23 } },
]"#;

#[test]
fn patching_runs_and_behaves_on_every_architecture() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, _) in MODELS {
        let toml = format!(
            r#"
name = "architectures"
[models.m]
path = "{path}"
tokenizer = "{tokenizer}"
{pair}
[analyses.resid]
kind = "activation_patching"
model = "m"
dataset = "pair"
site = "resid_pre"
positions = "each"
metric = {{ logit_diff = ["A", "B"] }}
[analyses.attribution]
kind = "attribution_patching"
model = "m"
dataset = "pair"
metric = {{ logit_diff = ["A", "B"] }}
[analyses.patterns]
kind = "attention_pattern"
model = "m"
dataset = "pair"
"#,
            path = fixture(name).display(),
            tokenizer = fixture("llama-tiny").join("tokenizer.json").display(),
            pair = PAIR,
        );
        let file = tmp.path().join(format!("{name}.toml"));
        std::fs::write(&file, toml).unwrap();
        let out = tmp.path().join(name);
        run_ok(&file, &out, &[]);
        let out = out.join("architectures");
        let resid = read_table(&out.join("resid.parquet"));
        let (prompt, layer, pos) = (
            resid.u32("prompt"),
            resid.i32("layer"),
            resid.i32("position"),
        );
        let (metric, clean, corrupt) = (
            resid.f64("metric"),
            resid.f64("metric_clean"),
            resid.f64("metric_corrupt"),
        );
        let mut checked = 0;
        for i in 0..resid.rows() {
            assert!(metric[i].is_finite(), "{name}: row {i}");
            assert!(
                (clean[i] - corrupt[i]).abs() > 1e-3,
                "{name}: clean and corrupt agree, the test shows nothing"
            );
            let want = match (layer[i], pos[i]) {
                // The corrupted token's embedding, restored: the clean run.
                (Some(0), Some(1)) => clean[i],
                // A token both prompts share, at any layer before attention mixed the runs: the
                // corrupt run.
                (Some(0), Some(0)) => corrupt[i],
                _ => continue,
            };
            assert!(
                (metric[i] - want).abs() < 1e-4,
                "{name} prompt {} layer 0 position {:?}: {} vs {want}",
                prompt[i],
                pos[i],
                metric[i]
            );
            checked += 1;
        }
        assert_eq!(checked, 4, "{name}");
        let attribution = read_table(&out.join("attribution.parquet"));
        assert!(attribution.rows() > 0, "{name}");
        let columns = attribution.columns();
        let value = columns
            .iter()
            .find(|c| *c == "attribution")
            .unwrap_or_else(|| panic!("{name}: columns {columns:?}"));
        assert!(
            attribution.f64(value).iter().all(|x| x.is_finite()),
            "{name}: non-finite attribution"
        );
        assert!(
            read_table(&out.join("patterns.parquet")).rows() > 0,
            "{name}"
        );
    }
}

#[test]
fn inspect_describes_a_converted_gguf_file_as_its_hugging_face_checkpoint() {
    // (GGUF file under tests/fixtures/gguf, the Hugging Face fixture it was converted from).
    for (gguf, hf) in [
        ("arch-qwen3.gguf", "qwen3-tiny"),
        ("arch-olmo2.gguf", "olmo2-tiny"),
        ("arch-phi3.gguf", "phi3-tiny"),
        ("arch-gemma.gguf", "gemma-tiny"),
        ("arch-gemma2.gguf", "gemma2-tiny"),
        ("arch-gemma3.gguf", "gemma3-tiny"),
        ("arch-gptneox.gguf", "gptneox-tiny"),
        ("arch-llama-rope-linear.gguf", "rope-linear"),
    ] {
        let describe = |path: std::path::PathBuf| {
            let o = circuitry(&["inspect", path.to_str().unwrap(), "--hooks"]);
            assert!(
                o.status.success(),
                "{gguf}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            // Everything but the first line, which names the file.
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .skip(1)
                .collect::<Vec<_>>()
                .join("\n")
        };
        let from_gguf = describe(fixture("gguf").join(gguf));
        assert!(from_gguf.contains("hook points"), "{gguf}:\n{from_gguf}");
        assert_eq!(from_gguf, describe(fixture(hf)), "{gguf} vs {hf}");
    }
}

#[test]
fn a_bf16_model_runs_the_same_experiment_within_its_rounding() {
    let tmp = tempfile::tempdir().unwrap();
    let path = fixture("llama-tiny");
    let mut toml = format!(
        r#"
name = "half"
[models.full]
path = "{path}"
[models.half]
path = "{path}"
dtype = "bf16"
{pair}
"#,
        path = path.display(),
        pair = PAIR,
    );
    for model in ["full", "half"] {
        toml.push_str(&format!(
            r#"
[analyses.{model}]
kind = "activation_patching"
model = "{model}"
dataset = "pair"
site = "resid_pre"
positions = "each"
metric = {{ logit_diff = ["A", "B"] }}
"#
        ));
    }
    let out = run_text(tmp.path(), &toml, "half");
    let (full, half) = (
        read_table(&out.join("full.parquet")),
        read_table(&out.join("half.parquet")),
    );
    assert_eq!(full.rows(), half.rows());
    let mut largest = 0f64;
    for column in ["metric", "metric_clean", "metric_corrupt"] {
        for (a, b) in full.f64(column).iter().zip(half.f64(column)) {
            largest = largest.max((a - b).abs());
        }
    }
    // bf16 keeps 8 bits of mantissa: the logit differences move, by little.
    assert!(
        largest > 0.0,
        "the bf16 model computed exactly the f32 numbers"
    );
    assert!(largest < 0.05, "bf16 moved a metric by {largest}");
}
