//! Times the node cache on an experiment (default `experiments/ioi-smollm2.toml`): a first run
//! into an empty cache, a second unchanged run, and a run with one analysis parameter changed,
//! each a fresh `circuitry run` process, side by side in one invocation.
//!
//! Prints each run's wall time, its ratio to the first, the nodes it computed and the forward
//! passes it made (from `manifest.json`), and fails if the unchanged run computed anything or
//! the changed run computed more than the changed analysis.
//!
//! ```sh
//! cargo bench -p circuitry --bench cache
//! # another experiment and change: FILE KEY=VALUE ANALYSIS
//! cargo bench -p circuitry --bench cache -- experiments/default.toml analyses.loss.top_k=2 loss
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

struct Timed {
    seconds: f64,
    computed: Vec<String>,
    forward_passes: u64,
}

fn run(file: &Path, out: &Path, extra: &[&str]) -> Timed {
    let started = Instant::now();
    let o = Command::new(env!("CARGO_BIN_EXE_circuitry"))
        .arg("run")
        .arg(file)
        .arg("--out")
        .arg(out)
        .arg("--quiet")
        .args(extra)
        .current_dir(repo())
        .env_remove("CIRCUITRY_CACHE")
        .output()
        .expect("run circuitry");
    let seconds = started.elapsed().as_secs_f64();
    assert!(
        o.status.success(),
        "circuitry run failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let text = std::fs::read_to_string(manifest_path(file, out)).expect("manifest");
    let m: serde_json::Value = serde_json::from_str(&text).expect("manifest json");
    Timed {
        seconds,
        computed: m["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["computed"] == true)
            .map(|n| n["name"].as_str().unwrap().to_string())
            .collect(),
        forward_passes: m["forward_passes"].as_u64().unwrap(),
    }
}

fn manifest_path(file: &Path, out: &Path) -> PathBuf {
    let text = std::fs::read_to_string(file).expect("experiment file");
    let name = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("name = "))
        .map(|n| n.trim_matches('"').to_string())
        .expect("experiment name");
    out.join(name).join("manifest.json")
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let file = repo().join(
        args.first()
            .map(String::as_str)
            .unwrap_or("experiments/ioi-smollm2.toml"),
    );
    let change = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "analyses.predictions.top_k=3".to_string());
    let changed = args
        .get(2)
        .cloned()
        .unwrap_or_else(|| "predictions".to_string());
    let tmp = std::env::temp_dir().join(format!("circuitry-cache-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let first = run(&file, &tmp, &[]);
    let second = run(&file, &tmp, &[]);
    let third = run(&file, &tmp, &["--set", &change]);
    let _ = std::fs::remove_dir_all(&tmp);
    println!("cache benchmark on {}", file.display());
    for (label, t) in [
        ("first run (empty cache)", &first),
        ("second run (unchanged)", &second),
        (&*format!("changed {change}"), &third),
    ] {
        println!(
            "  {label:40} {:8.2} s  {:6.2} % of the first  {:2} nodes computed, {} forward passes",
            t.seconds,
            100.0 * t.seconds / first.seconds,
            t.computed.len(),
            t.forward_passes
        );
    }
    assert!(
        second.computed.is_empty() && second.forward_passes == 0,
        "the unchanged run computed {:?}",
        second.computed
    );
    assert_eq!(third.computed, vec![changed], "the changed run");
}
