//! Runs you can trust: the node cache (reuse, resume after `kill -9`, one changed analysis
//! reruns alone), atomic publication (kills and failures around it, racing runs), byte-identical
//! outputs from a moved checkout, shards assembled without recomputation, and a sweep over
//! `train.*` analysing each variant's own model.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common;

use common::*;

const CHUNK_ENV: &str = "CIRCUITRY_CHUNK_PROMPTS";

/// `circuitry run` with prompt ranges of 16 prompts.
fn run_chunked(file: &Path, out: &Path, extra: &[&str]) {
    let o = bin()
        .args(run_args(file, out, extra))
        .env(CHUNK_ENV, "16")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn default_file() -> PathBuf {
    repo().join("experiments/default.toml")
}

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_circuitry"));
    c.current_dir(repo()).env_remove("CIRCUITRY_CACHE");
    c
}

fn run_args(file: &Path, out: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "run",
        file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push("--quiet".into());
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// Runs with `CIRCUITRY_FAILPOINT=failpoint`; returns the exit code (None: killed by a signal)
/// and stderr.
fn run_failing(file: &Path, out: &Path, failpoint: &str, extra: &[&str]) -> (Option<i32>, String) {
    let o = bin()
        .args(run_args(file, out, extra))
        .env("CIRCUITRY_FAILPOINT", failpoint)
        .output()
        .unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).to_string(),
    )
}

/// A file's length and a digest of its bytes (so that failures print names, not bytes).
type Digest = (usize, u64);

fn digest(bytes: &[u8]) -> Digest {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    (bytes.len(), h.finish())
}

/// The files of the published set `<out>/<name>`: tables by name with their bytes' digests.
fn snapshot(out: &Path, name: &str) -> BTreeMap<String, Digest> {
    let dir = out.join(name);
    let mut files = BTreeMap::new();
    for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let e = e.unwrap();
        let file = e.file_name().to_string_lossy().to_string();
        if file != "manifest.json" {
            files.insert(file, digest(&std::fs::read(e.path()).unwrap()));
        }
    }
    // The set is complete: the manifest lists exactly these tables.
    let manifest = manifest(out, name);
    let listed: BTreeSet<String> = manifest["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["path"].as_str().unwrap().to_string())
        .collect();
    let present: BTreeSet<String> = files.keys().cloned().collect();
    assert_eq!(listed, present, "manifest and tables of {}", dir.display());
    files
}

fn manifest(out: &Path, name: &str) -> serde_json::Value {
    let path = out.join(name).join("manifest.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// Names of the nodes the last run computed.
fn computed(out: &Path, name: &str) -> BTreeSet<String> {
    manifest(out, name)["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["computed"].as_bool().unwrap())
        .map(|n| n["name"].as_str().unwrap().to_string())
        .collect()
}

/// Nothing a killed or failed run could leave: no partial files or temporary links anywhere
/// under `out`, no staging directories in the cache, one run directory per experiment.
fn assert_no_leftovers(out: &Path) {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().to_string();
            if name.contains(".partial") || name.ends_with(".link") {
                found.push(p.clone());
            }
            if p.is_dir() && !p.is_symlink() {
                walk(&p, found);
            }
        }
    }
    let mut found = Vec::new();
    walk(out, &mut found);
    assert!(found.is_empty(), "leftovers: {found:?}");
    let staging: Vec<_> = std::fs::read_dir(out.join(".circuitry/cache/tmp"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(staging.is_empty(), "cache staging left: {staging:?}");
    for runs in std::fs::read_dir(out.join(".circuitry/runs"))
        .unwrap()
        .flatten()
    {
        let sets: Vec<_> = std::fs::read_dir(runs.path()).unwrap().flatten().collect();
        assert_eq!(sets.len(), 1, "{}: {sets:?}", runs.path().display());
    }
}

/// A small deterministic generator for kill delays (the test must be repeatable).
struct Lcg(u64);

impl Lcg {
    fn unit(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[test]
fn twenty_kills_then_a_rerun_write_the_bytes_of_an_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let file = default_file();
    let reference = tmp.path().join("reference");
    let started = Instant::now();
    run_ok(&file, &reference, &[]);
    let full = started.elapsed();
    let expected = snapshot(&reference, "default");
    // The interrupted runs split the per-prompt analyses into ranges of 16 prompts (more nodes
    // to resume from); the tables must not show it.
    let out = tmp.path().join("out");
    let mut rng = Lcg(9);
    let mut killed = 0;
    for i in 0..20 {
        let delay = full.mul_f64(1.2 * rng.unit());
        // Every other run recomputes everything (`--force`), so that kills keep landing mid-run
        // once the cache holds most nodes; the others resume from what earlier runs committed.
        let force: &[&str] = if i % 2 == 0 { &["--force"] } else { &[] };
        let mut child = bin()
            .args(run_args(&file, &out, force))
            .env(CHUNK_ENV, "16")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        // SIGKILL: nothing of the run's own runs after this.
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            killed += 1;
        }
        child.wait().unwrap();
    }
    assert!(killed >= 5, "only {killed} of 20 runs were killed mid-way");
    run_chunked(&file, &out, &[]);
    assert_eq!(snapshot(&out, "default"), expected);
    assert_no_leftovers(&out);
}

#[test]
fn kills_and_failures_around_publication_leave_a_complete_set() {
    let tmp = tempfile::tempdir().unwrap();
    let file = default_file();
    let change = ["--set", "datasets.repeated.n=32"];
    let (old_ref, new_ref) = (tmp.path().join("old"), tmp.path().join("new"));
    run_ok(&file, &old_ref, &[]);
    run_ok(&file, &new_ref, &change);
    let (old, new) = (snapshot(&old_ref, "default"), snapshot(&new_ref, "default"));
    assert_ne!(old, new);

    let out = tmp.path().join("out");
    run_ok(&file, &out, &[]);
    // Killed with the new set complete but not yet published: the old set stays.
    let (code, _) = run_failing(&file, &out, "before-publish", &change);
    assert_ne!(code, Some(0));
    assert_eq!(snapshot(&out, "default"), old);
    // A publication that fails: the old set untouched, nothing partial, exit 1.
    let (code, stderr) = run_failing(&file, &out, "before-publish:error", &change);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("failpoint"), "{stderr}");
    assert_eq!(snapshot(&out, "default"), old);
    assert_no_leftovers(&out);
    // Killed just after the swap: the new set, complete.
    let (code, _) = run_failing(&file, &out, "after-publish", &change);
    assert_ne!(code, Some(0));
    assert_eq!(snapshot(&out, "default"), new);
    // The next run cleans the superseded set up.
    run_ok(&file, &out, &change);
    assert_eq!(snapshot(&out, "default"), new);
    assert_no_leftovers(&out);
}

#[test]
fn a_second_run_is_refused_naming_the_holder_or_waits_with_wait() {
    let tmp = tempfile::tempdir().unwrap();
    let file = default_file();
    let out = tmp.path().join("out");
    let mut first = bin()
        .args(run_args(&file, &out, &[]))
        .env("CIRCUITRY_FAILPOINT", "after-lock:sleep-3000")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lock = out.join(".circuitry/locks/default.lock");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::read_to_string(&lock)
        .unwrap_or_default()
        .is_empty()
    {
        assert!(
            Instant::now() < deadline,
            "the first run never took the lock"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = bin().args(run_args(&file, &out, &[])).output().unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("is being written by process {}", first.id())),
        "{stderr}"
    );
    assert!(stderr.contains("--wait"), "{stderr}");
    let waiting = bin()
        .args(run_args(&file, &out, &["--wait"]))
        .output()
        .unwrap();
    assert!(
        waiting.status.success(),
        "{}",
        String::from_utf8_lossy(&waiting.stderr)
    );
    assert!(first.wait().unwrap().success());
    let reference = tmp.path().join("reference");
    run_ok(&file, &reference, &[]);
    assert_eq!(snapshot(&out, "default"), snapshot(&reference, "default"));
    assert_no_leftovers(&out);
}

#[test]
fn the_cache_reuses_unchanged_nodes_and_reruns_only_a_changed_analysis() {
    let tmp = tempfile::tempdir().unwrap();
    let file = default_file();
    let out = tmp.path().join("out");
    let plan = |extra: &[&str]| {
        let mut args = vec![
            "plan",
            file.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        String::from_utf8(circuitry(&args).stdout).unwrap()
    };
    assert!(plan(&[]).contains("analysis heads ["), "{}", plan(&[]));
    assert_eq!(plan(&[]).matches(" to compute").count(), 10);
    run_ok(&file, &out, &[]);
    assert_eq!(computed(&out, "default").len(), 10);
    let first = snapshot(&out, "default");
    assert_eq!(plan(&[]).matches(" cached").count(), 10);
    run_ok(&file, &out, &[]);
    assert!(computed(&out, "default").is_empty());
    assert_eq!(snapshot(&out, "default"), first);
    let change = ["--set", "analyses.loss.top_k=2"];
    assert_eq!(plan(&change).matches(" to compute").count(), 1);
    run_ok(&file, &out, &change);
    assert_eq!(
        computed(&out, "default"),
        BTreeSet::from(["loss".to_string()])
    );
    let changed = snapshot(&out, "default");
    assert_ne!(changed["loss.parquet"], first["loss.parquet"]);
    let heads = |out: &Path| read_table(&out.join("default/heads.parquet")).f64("induction_score");
    let before = heads(&out);
    assert!(!before.is_empty());
    // --force recomputes everything, to the same bytes.
    run_ok(&file, &out, &["--force"]);
    assert_eq!(computed(&out, "default").len(), 10);
    assert_eq!(snapshot(&out, "default"), first);
    assert_eq!(
        heads(&out),
        before,
        "the reused heads node equals a recomputed one"
    );
    // The cache listing and collection.
    let ls = circuitry(&["cache", "ls", "--out", out.to_str().unwrap()]);
    let listing = String::from_utf8_lossy(&ls.stdout);
    assert!(listing.starts_with("11 nodes in "), "{listing}");
    assert!(listing.contains("analysis heads"), "{listing}");
    let refused = circuitry(&["cache", "gc", "--out", out.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(2));
    let gc = circuitry(&[
        "cache",
        "gc",
        file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        String::from_utf8_lossy(&gc.stdout).starts_with("removed 1 node "),
        "{}",
        String::from_utf8_lossy(&gc.stdout)
    );
    let all = circuitry(&["cache", "gc", "--all", "--out", out.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&all.stdout).starts_with("removed 10 nodes "));
    run_ok(&file, &out, &[]);
    assert_eq!(computed(&out, "default").len(), 10);
}

#[test]
fn shards_fill_the_cache_and_a_plain_run_assembles_without_recomputing() {
    let tmp = tempfile::tempdir().unwrap();
    let file = default_file();
    let reference = tmp.path().join("reference");
    run_ok(&file, &reference, &[]);
    let out = tmp.path().join("out");
    let mut seen = 0;
    for shard in ["0/3", "1/3", "2/3"] {
        run_ok(&file, &out, &["--shard", shard]);
        assert!(!out.join("default").exists(), "a shard publishes nothing");
        let nodes = std::fs::read_dir(out.join(".circuitry/cache/nodes"))
            .unwrap()
            .flatten()
            .flat_map(|d| std::fs::read_dir(d.path()).unwrap().flatten())
            .count();
        assert!(nodes > seen, "shard {shard} computed nothing");
        seen = nodes;
    }
    assert_eq!(seen, 10);
    run_ok(&file, &out, &[]);
    assert!(computed(&out, "default").is_empty());
    assert_eq!(snapshot(&out, "default"), snapshot(&reference, "default"));
    let bad = circuitry(&["run", file.to_str().unwrap(), "--shard", "3/3"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("0 <= I < N"));
}

#[test]
fn prompt_ranges_are_nodes_that_shards_share_out_and_tables_do_not_show() {
    let tmp = tempfile::tempdir().unwrap();
    let file = default_file();
    let reference = tmp.path().join("reference");
    run_ok(&file, &reference, &[]);
    let out = tmp.path().join("out");
    let plan = bin()
        .args([
            "plan",
            file.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .env(CHUNK_ENV, "16")
        .output()
        .unwrap();
    let plan = String::from_utf8_lossy(&plan.stdout);
    // 64 prompts in ranges of 16: the three per-prompt analyses split in four.
    assert_eq!(plan.matches("(4 prompt ranges)").count(), 3, "{plan}");
    for shard in ["0/3", "1/3", "2/3"] {
        run_chunked(&file, &out, &["--shard", shard]);
    }
    run_chunked(&file, &out, &[]);
    let m = manifest(&out, "default");
    let nodes = m["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 7 + 3 * 4);
    assert!(nodes.iter().all(|n| n["computed"] == false), "{nodes:?}");
    let ranges: Vec<_> = nodes
        .iter()
        .filter(|n| n["name"] == "loss")
        .map(|n| n["prompts"].clone())
        .collect();
    assert_eq!(
        ranges,
        vec![
            serde_json::json!([0, 16]),
            serde_json::json!([16, 32]),
            serde_json::json!([32, 48]),
            serde_json::json!([48, 64])
        ]
    );
    assert_eq!(snapshot(&out, "default"), snapshot(&reference, "default"));
}

#[test]
fn tables_of_removed_analyses_go_and_a_moved_checkout_writes_the_same_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sets = Vec::new();
    for place in ["a/checkout", "b/elsewhere/checkout"] {
        let root = tmp.path().join(place);
        std::fs::create_dir_all(root.join(".git")).unwrap();
        let models = root.join("experiments/models/attn-only-2l");
        std::fs::create_dir_all(&models).unwrap();
        for f in ["config.json", "model.safetensors", "tokenizer.json"] {
            std::fs::copy(
                repo().join("experiments/models/attn-only-2l").join(f),
                models.join(f),
            )
            .unwrap();
        }
        let file = root.join("experiments/default.toml");
        std::fs::copy(default_file(), &file).unwrap();
        let out = root.join("outputs");
        run_ok(&file, &out, &[]);
        let m = manifest(&out, "default");
        assert_eq!(m["experiment_file"], "experiments/default.toml");
        sets.push(snapshot(&out, "default"));
    }
    assert_eq!(sets[0], sets[1]);

    // An experiment that drops an analysis: its tables are not in the new set.
    let file = tmp.path().join("e.toml");
    let base = std::fs::read_to_string(default_file()).unwrap().replace(
        "models/attn-only-2l",
        &repo()
            .join("experiments/models/attn-only-2l")
            .display()
            .to_string(),
    );
    std::fs::write(&file, &base).unwrap();
    let out = tmp.path().join("out");
    run_ok(&file, &out, &[]);
    assert!(snapshot(&out, "default").contains_key("qk.positional.parquet"));
    let without_qk = base.replace(
        "[analyses.qk]\nkind = \"qk_circuit\"",
        "[analyses.qk2]\nkind = \"qk_circuit\"",
    );
    assert_ne!(without_qk, base);
    std::fs::write(&file, &without_qk).unwrap();
    run_ok(&file, &out, &[]);
    let now = snapshot(&out, "default");
    assert!(
        !now.keys().any(|k| k.starts_with("qk.")),
        "{:?}",
        now.keys()
    );
    assert!(now.contains_key("qk2.positional.parquet"));
    assert_no_leftovers(&out);
}

const TRAIN_SWEEP: &str = r#"
name = "train-sweep"
[train.t]
output = "model"
seed = 1
n_layers = 1
d_model = 16
n_heads = 2
attn_only = true
n_ctx = 17
d_vocab = 16
steps = 30
batch_size = 8
lr = 1e-2
warmup_steps = 0
repeats = { min_length = 2, max_length = 8 }
eval_every = 10
eval_sequences = 8
eval_repeat_len = 8

[models.trained]
path = "model"

[datasets.probe]
generator = "repeated_tokens"
n = 8
length = 8
token_range = [1, 16]

[analyses.heads]
kind = "induction_scores"
model = "trained"
dataset = "probe"
"#;

#[test]
fn a_sweep_over_training_analyses_each_variants_own_model() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("sweep.toml");
    std::fs::write(
        &file,
        format!("{TRAIN_SWEEP}\n[sweep]\n\"train.t.seed\" = [1, 2]\n"),
    )
    .unwrap();
    let out = tmp.path().join("out");
    run_ok(&file, &out, &[]);
    let heads = read_table(&out.join("train-sweep/heads.parquet"));
    let curve = read_table(&out.join("train-sweep/t.parquet"));
    assert!(!curve.columns().contains(&"elapsed_s".to_string()));
    let single = tmp.path().join("single.toml");
    std::fs::write(&single, TRAIN_SWEEP).unwrap();
    let mut per_seed = Vec::new();
    for seed in [1i64, 2] {
        // A separate run of each value, with its own cache.
        let alone = tmp.path().join(format!("alone-{seed}"));
        run_ok(&single, &alone, &["--set", &format!("train.t.seed={seed}")]);
        let want = read_table(&alone.join("train-sweep/heads.parquet"));
        let rows: Vec<usize> = (0..heads.rows())
            .filter(|&i| heads.i64("seed")[i] == seed)
            .collect();
        let got: Vec<f64> = rows
            .iter()
            .map(|&i| heads.f64("induction_score")[i])
            .collect();
        assert_eq!(got, want.f64("induction_score"), "seed {seed}");
        let want_curve = read_table(&alone.join("train-sweep/t.parquet"));
        let got_curve: Vec<f64> = (0..curve.rows())
            .filter(|&i| curve.i64("seed")[i] == seed)
            .map(|i| curve.f64("train_loss")[i])
            .collect();
        assert_eq!(got_curve, want_curve.f64("train_loss"), "seed {seed}");
        per_seed.push(got);
    }
    assert_ne!(
        per_seed[0], per_seed[1],
        "the two models must differ for this to test anything"
    );
    let m = manifest(&out, "train-sweep");
    let trained: Vec<_> = m["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["kind"] == "train")
        .collect();
    assert_eq!(trained.len(), 2);
    assert_ne!(trained[0]["hash"], trained[1]["hash"]);
}

#[test]
fn submit_writes_an_array_job_and_an_assemble_job_after_it() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    // A stand-in sbatch: records its arguments, prints job ids 41, 42 as --parsable does.
    let bin_dir = tmp.path().join("bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    let calls = tmp.path().join("calls");
    let fake = bin_dir.join("sbatch");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\necho \"$@\" >> {calls}\nn=$(wc -l < {calls})\necho $((40 + n))\n",
            calls = calls.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = tmp.path().join("out");
    let file = default_file();
    let submit = |path: &str| {
        bin()
            .args([
                "submit",
                file.to_str().unwrap(),
                "--slurm",
                "--shards",
                "3",
                "--out",
                out.to_str().unwrap(),
                "--",
                "--partition",
                "gpu",
            ])
            .env("PATH", path)
            .output()
            .unwrap()
    };
    let o = submit(&format!("{}:/usr/bin:/bin", bin_dir.display()));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout.contains("shards job 41 (3 tasks)"), "{stdout}");
    assert!(
        stdout.contains("assemble job 42 (after 41 succeeds)"),
        "{stdout}"
    );
    let calls = std::fs::read_to_string(&calls).unwrap();
    let lines: Vec<&str> = calls.lines().collect();
    assert_eq!(lines.len(), 2, "{calls}");
    assert!(
        lines[0].starts_with("--parsable --partition gpu ") && lines[0].ends_with("shards.sbatch")
    );
    assert!(
        lines[1].contains("--partition gpu --dependency=afterok:41 "),
        "{}",
        lines[1]
    );
    let script = std::fs::read_to_string(lines[0].split(' ').next_back().unwrap()).unwrap();
    assert!(script.contains("#SBATCH --array=0-2"), "{script}");
    assert!(
        script.contains("--shard \"$SLURM_ARRAY_TASK_ID/3\""),
        "{script}"
    );
    // Without sbatch: a clear error, nothing submitted.
    let o = submit("/nonexistent");
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("needs SLURM's sbatch on PATH"));
}
