//! Memory and throughput of `neuron_top_contexts` on SmolLM2-135M-Instruct, side by side with a
//! plain forward pass, on N and 10 N windows of 64 tokens of the fortune corpus (the installed
//! corpus, `scripts/install-corpus.sh`, else the sample in `data/corpus/`). Each run is a fresh
//! `circuitry run` process into an empty cache.
//!
//! Prints each run's wall time, its tokens per second (over the analysis's compute time: its
//! nodes' seconds in `manifest.json`), and its peak resident memory (the process's `VmHWM`,
//! read from `/proc` every 10 ms until it exits), then the ratio of the 10 N run's peak to the
//! N run's. Fails if `neuron_top_contexts`' peak grows by more than 1.2x.
//!
//! ```sh
//! cargo bench -p circuitry --bench neurons            # N = 50
//! cargo bench -p circuitry --bench neurons -- 20      # N = 20
//! ```

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Tokens per window (every window is full, after a BOS).
const WINDOW: usize = 64;

fn corpus() -> PathBuf {
    let installed = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default()
        .join(".cache/circuitry/corpus/fortunes");
    if installed.is_dir() {
        installed
    } else {
        repo().join("data/corpus/fortunes-sample.txt")
    }
}

fn experiment(dir: &Path, analysis: &str, windows: usize) -> PathBuf {
    let model = circuitry_testkit::smollm2_gguf();
    let body = match analysis {
        "forward" => "kind = \"next_token\"\npositions = \"last\"".to_string(),
        _ => "kind = \"neuron_top_contexts\"\nsample = 200\ntop_k = 20\nbottom_k = 5".to_string(),
    };
    let text = format!(
        "name = \"bench\"\n[models.m]\npath = {model:?}\n[datasets.d]\ntext = {corpus:?}\n\
         separator = \"%\"\nwindow = {WINDOW}\nn = {windows}\n[analyses.a]\nmodel = \"m\"\n\
         dataset = \"d\"\nbatch_size = 16\n{body}\n",
        corpus = corpus()
    );
    let file = dir.join(format!("{analysis}-{windows}.toml"));
    std::fs::write(&file, text).unwrap();
    file
}

/// Peak resident memory of process `pid` so far, in bytes.
fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

struct Measured {
    seconds: f64,
    /// The analysis's compute time (its nodes' seconds in `manifest.json`): the forward passes
    /// and the analysis, without loading and planning.
    compute: f64,
    peak: u64,
}

fn run(file: &Path, out: &Path) -> Measured {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_circuitry"))
        .arg("run")
        .arg(file)
        .arg("--out")
        .arg(out)
        .arg("--quiet")
        .env_remove("CIRCUITRY_CACHE")
        // One node per analysis (no prompt ranges), so its seconds are the whole pass.
        .env("CIRCUITRY_CHUNK_PROMPTS", "1000000")
        .stderr(Stdio::piped())
        .spawn()
        .expect("run circuitry");
    let mut peak = 0;
    let status = loop {
        if let Some(p) = peak_rss(child.id()) {
            peak = peak.max(p);
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let seconds = started.elapsed().as_secs_f64();
    if !status.success() {
        let mut err = String::new();
        use std::io::Read;
        child.stderr.take().unwrap().read_to_string(&mut err).ok();
        panic!("circuitry run {} failed:\n{err}", file.display());
    }
    let manifest = std::fs::read_to_string(out.join("bench/manifest.json")).expect("manifest");
    let manifest: serde_json::Value = serde_json::from_str(&manifest).expect("manifest json");
    // The analysis's one node (and, were there others, theirs).
    let compute = manifest["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| n["seconds"].as_f64().expect("node seconds"))
        .sum();
    Measured {
        seconds,
        compute,
        peak,
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .map(|a| a.parse().expect("N: a number of windows"))
        .unwrap_or(50);
    let tmp = std::env::temp_dir().join(format!("circuitry-neuron-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    println!(
        "neuron_top_contexts vs a plain forward pass on SmolLM2, windows of {WINDOW} tokens of {}",
        corpus().display()
    );
    let mut peaks = Vec::new();
    for analysis in ["forward", "neuron_top_contexts"] {
        for windows in [n, 10 * n] {
            let out = tmp.join(format!("out-{analysis}-{windows}"));
            let m = run(&experiment(&tmp, analysis, windows), &out);
            let tokens = windows * (WINDOW + 1);
            println!(
                "  {analysis:20} {windows:5} windows  {:7.1} s ({:7.1} s computing)  {:6.0} tokens/s  peak {:7.1} MiB",
                m.seconds,
                m.compute,
                tokens as f64 / m.compute,
                m.peak as f64 / (1 << 20) as f64
            );
            peaks.push(m.peak as f64);
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
    let (forward, top) = (peaks[1] / peaks[0], peaks[3] / peaks[2]);
    println!("  peak with 10x the text: forward pass {forward:.3}x, neuron_top_contexts {top:.3}x");
    assert!(
        top <= 1.2,
        "neuron_top_contexts' memory grew {top:.3}x with 10x the text"
    );
}
