//! Peak memory (and time) of loading, processing and running a real model with its weights held as f32,
//! bf16 and f16 (`dtype` of `[models.NAME]`), each measured in a fresh child process (the
//! kernel's high-water mark of resident memory, `VmHWM`), side by side in one run.
//!
//! Run (release):
//!   cargo bench -p circuitry-models --bench weight_memory
//! Environment: CIRCUITRY_BENCH_MODEL (a .gguf file or a Hugging Face model directory; default
//! CIRCUITRY_SMOLLM2_GGUF, else ~/.cache/circuitry/models/SmolLM2-135M-Instruct.Q4_1.gguf),
//! BENCH_SEQ (tokens of the forward pass, timed best of 3; 64).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use circuitry_models::burn::prelude::*;
use circuitry_models::loading::expand_home;
use circuitry_models::processing::process;
use circuitry_models::{
    ModelSource, Processing, TokenBatch, Transformer, WeightDtype, load_weights_as,
};

const CHILD: &str = "CIRCUITRY_WEIGHT_MEMORY_CHILD";

/// A field of `/proc/self/status` in MiB (`VmHWM`, `VmRSS`).
fn status_mib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"));
    kib / 1024.0
}

fn model_path() -> String {
    std::env::var("CIRCUITRY_BENCH_MODEL")
        .or_else(|_| std::env::var("CIRCUITRY_SMOLLM2_GGUF"))
        .unwrap_or_else(|_| "~/.cache/circuitry/models/SmolLM2-135M-Instruct.Q4_1.gguf".into())
}

/// Loads and runs the model at `dtype`; prints `dtype peak_mib final_mib load_s forward_s
/// max_logit` (the forward pass best of 3).
fn child(dtype: WeightDtype) {
    let path = expand_home(&model_path());
    let source = ModelSource::resolve(path.to_str().expect("utf-8 path"), Path::new("."))
        .unwrap_or_else(|e| panic!("{e}"));
    let start = Instant::now();
    let weights = load_weights_as(&source, dtype).unwrap_or_else(|e| panic!("{e}"));
    let weights = process(weights, Processing::all());
    let device = Device::flex();
    let model = Transformer::from_weights(weights, &device).unwrap_or_else(|e| panic!("{e}"));
    let seconds = start.elapsed().as_secs_f64();
    let seq: usize = std::env::var("BENCH_SEQ")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let vocab = model.config.d_vocab as u32;
    let ids: Vec<u32> = (0..seq as u32).map(|i| (i * 7919 + 13) % vocab).collect();
    let batch = TokenBatch::unpadded(&[ids], &device);
    let mut forward = f64::MAX;
    let mut max = 0f32;
    for _ in 0..3 {
        let t = Instant::now();
        max = model.logits(&batch).max().into_scalar();
        forward = forward.min(t.elapsed().as_secs_f64());
    }
    println!(
        "{} {:.1} {:.1} {seconds:.2} {forward:.3} {max}",
        dtype.name(),
        status_mib("VmHWM"),
        status_mib("VmRSS")
    );
}

fn main() {
    let dtypes = [WeightDtype::F32, WeightDtype::Bf16, WeightDtype::F16];
    if let Ok(name) = std::env::var(CHILD) {
        let dtype = dtypes
            .into_iter()
            .find(|d| d.name() == name)
            .expect("a dtype name");
        child(dtype);
        return;
    }
    println!("model: {}", expand_home(&model_path()).display());
    println!(
        "{:6} {:>14} {:>14} {:>10} {:>8} {:>10} {:>10}",
        "dtype", "peak RSS MiB", "final RSS MiB", "peak/f32", "load s", "forward s", "max logit"
    );
    let exe = std::env::current_exe().expect("this binary");
    let mut f32_peak = None;
    for dtype in dtypes {
        let out = Command::new(&exe)
            .env(CHILD, dtype.name())
            .output()
            .expect("run the child");
        assert!(
            out.status.success(),
            "{}: {}",
            dtype.name(),
            String::from_utf8_lossy(&out.stderr)
        );
        let line = String::from_utf8_lossy(&out.stdout);
        let fields: Vec<&str> = line.split_whitespace().collect();
        let peak: f64 = fields[1].parse().expect("peak");
        let base = *f32_peak.get_or_insert(peak);
        println!(
            "{:6} {:>14} {:>14} {:>10.2} {:>8} {:>10} {:>10}",
            fields[0],
            fields[1],
            fields[2],
            peak / base,
            fields[3],
            fields[4],
            fields[5]
        );
    }
}
