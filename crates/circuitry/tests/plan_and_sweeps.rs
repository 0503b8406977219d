//! `circuitry plan` shares forward passes; sweeps become table columns; `--set` overrides keys;
//! `validate`, `schema`, `analyses` and `inspect` answer.

use crate::common;

use common::*;

fn experiment(dir: &std::path::Path, body: &str) -> std::path::PathBuf {
    let file = dir.join("e.toml");
    let text = format!(
        "name = \"e\"\n[models.m]\npath = \"{}\"\n[datasets.rep]\ngenerator = \"repeated_tokens\"\nn = 5\nlength = 6\n{body}",
        fixture("gpt2-tiny").display()
    );
    std::fs::write(&file, text).unwrap();
    file
}

const TWO_ANALYSES: &str = r#"
[analyses.heads]
kind = "head_detector"
model = "m"
dataset = "rep"
[analyses.patterns]
kind = "attention_pattern"
model = "m"
dataset = "rep"
batch_size = 2
[analyses.comp]
kind = "composition_scores"
model = "m"
baseline_samples = 0
"#;

#[test]
fn two_analyses_on_one_dataset_share_one_forward_pass() {
    let tmp = tempfile::tempdir().unwrap();
    let file = experiment(tmp.path(), TWO_ANALYSES);
    let o = circuitry(&["plan", file.to_str().unwrap(), "--format", "json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let plan: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let forwards = plan["variants"][0]["forwards"].as_array().unwrap();
    assert_eq!(forwards.len(), 1, "{plan:#}");
    assert_eq!(
        forwards[0]["analyses"],
        serde_json::json!(["heads", "patterns"])
    );
    assert_eq!(forwards[0]["batch_size"], 2, "the smaller batch size wins");
    // The union of both analyses' hooks: the attention pattern of every layer.
    assert_eq!(
        forwards[0]["hooks"],
        serde_json::json!(["blocks.0.attn.hook_pattern", "blocks.1.attn.hook_pattern"])
    );
    assert_eq!(
        plan["variants"][0]["weight_analyses"],
        serde_json::json!([["m", "comp"]])
    );
    for format in ["text", "dot", "mermaid"] {
        let o = circuitry(&["plan", file.to_str().unwrap(), "--format", format]);
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success() && text.contains("heads"),
            "{format}: {text}"
        );
    }
    let dot = String::from_utf8_lossy(
        &circuitry(&["plan", file.to_str().unwrap(), "--format", "dot"]).stdout,
    )
    .to_string();
    assert_eq!(dot.matches("label=\"forward m x rep\"").count(), 1, "{dot}");
}

#[test]
fn sweeps_become_columns_and_overrides_apply() {
    let tmp = tempfile::tempdir().unwrap();
    let body = format!("{TWO_ANALYSES}\n[sweep]\n\"datasets.rep.length\" = [4, 8]\n");
    let file = experiment(tmp.path(), &body);
    let out = tmp.path().join("out");
    run_ok(&file, &out, &["--set", "analyses.patterns.layers=[1]"]);
    let heads = read_table(&out.join("e/heads.parquet"));
    assert_eq!(heads.columns()[0], "length", "the sweep column comes first");
    let lengths = heads.i64("length");
    assert_eq!(
        heads.rows(),
        2 * 2 * 4 * 3,
        "2 runs x 2 layers x 4 heads x 3 detectors"
    );
    assert_eq!(
        lengths.iter().filter(|&&l| l == 4).count(),
        heads.rows() / 2
    );
    assert_eq!(heads.metadata["runs"].as_array().unwrap().len(), 2);
    let patterns = read_table(&out.join("e/patterns.parquet"));
    assert!(
        patterns.i32("layer").iter().all(|l| *l == Some(1)),
        "--set layers=[1] applied"
    );
    assert_eq!(
        patterns.metadata["overrides"],
        serde_json::json!(["analyses.patterns.layers=[1]"])
    );
    // Longer sequences have more query/key pairs.
    let plens = patterns.i64("length");
    let n4 = plens.iter().filter(|&&l| l == 4).count();
    let n8 = plens.iter().filter(|&&l| l == 8).count();
    assert!(n8 > n4 && n4 > 0, "{n4} vs {n8}");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("e/manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["runs"], 2);
    assert_eq!(manifest["tables"].as_array().unwrap().len(), 3);
}

#[test]
fn a_run_replaces_outputs_atomically_and_is_reproducible() {
    let tmp = tempfile::tempdir().unwrap();
    let file = experiment(tmp.path(), TWO_ANALYSES);
    let out = tmp.path().join("out");
    run_ok(&file, &out, &[]);
    let first = std::fs::read(out.join("e/heads.parquet")).unwrap();
    run_ok(&file, &out, &[]);
    let second = std::fs::read(out.join("e/heads.parquet")).unwrap();
    assert_eq!(first, second, "same experiment, same bytes");
    let names: Vec<String> = std::fs::read_dir(out.join("e"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert!(names.iter().all(|n| !n.contains("partial")), "{names:?}");
}

/// The kind list is the one source: every kind the circuits registry builds is in the JSON
/// Schema and in `circuitry analyses` with every table and column it declares.
#[test]
fn every_kind_is_in_the_schema_and_the_listing_with_its_tables() {
    let schema = String::from_utf8_lossy(&circuitry(&["schema"]).stdout).to_string();
    let listing = String::from_utf8_lossy(&circuitry(&["analyses"]).stdout).to_string();
    assert!(!circuitry_circuits::analyses::KINDS.is_empty());
    for (kind, tables) in circuitry_circuits::analyses::KINDS {
        assert!(!tables.is_empty(), "{kind} declares no table");
        assert!(
            tables.iter().any(|t| t.part.is_none()),
            "{kind} declares no main table"
        );
        assert!(
            schema.contains(&format!("\"const\": \"{kind}\"")),
            "{kind} missing from the schema"
        );
        // A kind's section runs from its header line to the next unindented line.
        let start = listing
            .match_indices(&format!("{kind}: "))
            .map(|(i, _)| i)
            .find(|&i| i == 0 || listing.as_bytes()[i - 1] == b'\n')
            .unwrap_or_else(|| panic!("{kind} missing from `circuitry analyses`:\n{listing}"));
        let rest = &listing[start..];
        let end = rest
            .match_indices('\n')
            .map(|(i, _)| i + 1)
            .find(|&i| rest[i..].starts_with(|c: char| c.is_ascii_alphabetic()))
            .unwrap_or(rest.len());
        let section = &rest[..end];
        for table in *tables {
            let file = table.file_name("<analysis>");
            assert!(
                section.contains(&format!("output {file}:")),
                "{kind}: {file}"
            );
            for c in table.columns {
                assert!(
                    section.contains(c.description),
                    "{kind}: {file}: {}",
                    c.name
                );
            }
        }
    }
}

/// A reader that closes the pipe early (`circuitry schema | head -1`) ends the command quietly:
/// success, nothing on stderr, in every subcommand that writes to stdout.
#[test]
fn a_closed_stdout_ends_quietly() {
    use std::process::{Command, Stdio};
    let llama = fixture("llama-tiny");
    let default = repo().join("experiments/default.toml");
    let commands: [&[&str]; 5] = [
        &["schema"],
        &["analyses"],
        &["inspect", llama.to_str().unwrap(), "--hooks"],
        &["plan", default.to_str().unwrap()],
        &["validate", default.to_str().unwrap()],
    ];
    for args in commands {
        let mut child = Command::new(env!("CARGO_BIN_EXE_circuitry"))
            .args(args)
            .current_dir(repo())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Close the read end before the command has started writing (it is still starting up),
        // so that its writes fail with a broken pipe.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {:?}\n{stderr}", out.status);
        assert!(stderr.is_empty(), "{args:?} wrote to stderr:\n{stderr}");
    }
}

#[test]
fn informational_commands_answer() {
    let schema = circuitry(&["schema"]);
    let schema: serde_json::Value = serde_json::from_slice(&schema.stdout).unwrap();
    assert!(schema["properties"]["analyses"].is_object(), "{schema}");
    let listing = String::from_utf8_lossy(&circuitry(&["analyses"]).stdout).to_string();
    for kind in [
        "attention_pattern",
        "logit_lens",
        "direct_logit_attribution",
        "head_detector",
        "next_token",
        "ov_circuit",
    ] {
        assert!(
            listing.contains(kind),
            "{kind} missing from `circuitry analyses`"
        );
    }
    assert!(listing.contains("attribution") && listing.contains("output <analysis>.parquet"));
    let bad = circuitry(&["analyses", "atention_pattern"]);
    assert_eq!(bad.status.code(), Some(2));
    let inspect = circuitry(&[
        "inspect",
        fixture("llama-tiny").to_str().unwrap(),
        "--hooks",
    ]);
    let text = String::from_utf8_lossy(&inspect.stdout);
    assert!(
        text.contains("llama") && text.contains("blocks.L.attn.hook_rot_q"),
        "{text}"
    );
    assert!(
        text.contains("[batch, pos, 2, 16]"),
        "GQA keys have 2 heads: {text}"
    );
    let tmp = tempfile::tempdir().unwrap();
    let file = experiment(tmp.path(), TWO_ANALYSES);
    let v = circuitry(&["validate", file.to_str().unwrap()]);
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
}
