//! The subcommands. Each returns a [`Failure`] with the exit code and the message to print.

use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use circuitry_circuits::analyses::declared_tables;
use circuitry_models::{HookLayout, ModelSource, Positional, RopeScaling};
use circuitry_runner::{PlanFormat, RunError, RunOptions};
use circuitry_spec::{Experiment, SpecError};

/// Why a command failed, and with which exit code (2: invalid input files, 1: run failures).
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    /// Standard output was closed by its reader (`circuitry analyses | head -1`): the command
    /// ends quietly, successfully.
    pub const CLOSED_OUTPUT: u8 = 0;
}

/// Writes `text` to standard output; a closed pipe ends the command quietly.
fn write_out(text: fmt::Arguments<'_>) -> Result<(), Failure> {
    io::stdout()
        .lock()
        .write_fmt(text)
        .map_err(|e| match e.kind() {
            io::ErrorKind::BrokenPipe => Failure {
                code: Failure::CLOSED_OUTPUT,
                message: String::new(),
            },
            _ => failed(format!("writing the output: {e}")),
        })
}

/// `println!` for the commands' output, through [`write_out`].
macro_rules! say {
    () => {
        write_out(format_args!("\n"))?
    };
    ($($arg:tt)*) => {
        write_out(format_args!("{}\n", format_args!($($arg)*)))?
    };
}

fn invalid(e: SpecError) -> Failure {
    Failure {
        code: 2,
        message: e.to_string(),
    }
}

fn failed(e: impl std::fmt::Display) -> Failure {
    Failure {
        code: 1,
        message: format!("error: {e}"),
    }
}

/// A run failure; errors located in the experiment file render as diagnostics.
fn run_failed(e: RunError) -> Failure {
    match e {
        RunError::Located(d) => Failure {
            code: 1,
            message: d.to_string(),
        },
        other => failed(other),
    }
}

fn load(file: &Path, set: &[String]) -> Result<Experiment, Failure> {
    Experiment::from_file_with_overrides(file, set).map_err(invalid)
}

pub fn run(file: &Path, set: &[String], options: &RunOptions) -> Result<(), Failure> {
    let experiment = load(file, set)?;
    let report = circuitry_runner::run(&experiment, options).map_err(run_failed)?;
    if let (false, Some(dir), Some(manifest)) = (options.quiet, &report.out_dir, &report.manifest) {
        for t in &manifest.tables {
            say!("{}  ({} rows)", dir.join(&t.path).display(), t.rows);
        }
    }
    Ok(())
}

pub fn submit(
    file: &Path,
    out: &Path,
    cache: Option<PathBuf>,
    shards: usize,
    set: &[String],
    device: Option<String>,
    sbatch_args: Vec<String>,
) -> Result<(), Failure> {
    let experiment = load(file, set)?;
    // Plan first: a file that cannot run fails here, not in a queue hours later.
    let device_name = circuitry_runner::device_name(&experiment, device.as_deref());
    circuitry_runner::plan(&experiment, &device_name).map_err(run_failed)?;
    let absolute = |p: &Path| std::path::absolute(p).map_err(failed);
    let out_root = absolute(out)?;
    let cache = circuitry_runner::Cache::for_outputs(&out_root, cache.as_deref());
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let submission = circuitry_runner::slurm::Submission {
        exe: std::env::current_exe().map_err(failed)?,
        workdir: std::env::current_dir().map_err(failed)?,
        experiment: experiment.name.clone(),
        file: absolute(file)?,
        out_root: out_root.clone(),
        cache: absolute(cache.root())?,
        shards,
        sets: set.to_vec(),
        device,
        sbatch_args,
        script_dir: out_root
            .join(".circuitry")
            .join("slurm")
            .join(&experiment.name)
            .join(format!("{stamp}-{}", std::process::id())),
    };
    let submitted = submission.submit().map_err(run_failed)?;
    say!("shards job {} ({shards} tasks)", submitted.shards_job);
    say!(
        "assemble job {} (after {} succeeds)",
        submitted.assemble_job,
        submitted.shards_job
    );
    say!("scripts and logs: {}", submitted.script_dir.display());
    Ok(())
}

pub fn plan(
    file: &Path,
    format: PlanFormat,
    set: &[String],
    out: &Path,
    device: Option<String>,
    cache: Option<PathBuf>,
) -> Result<(), Failure> {
    let experiment = load(file, set)?;
    let device_name = circuitry_runner::device_name(&experiment, device.as_deref());
    let mut plan = circuitry_runner::plan(&experiment, &device_name).map_err(run_failed)?;
    let cache = circuitry_runner::Cache::for_outputs(out, cache.as_deref());
    plan.mark_cached(&cache);
    plan.estimate(&cache).map_err(run_failed)?;
    write_out(format_args!("{}", plan.render(format)))?;
    Ok(())
}

pub fn cache_ls(out: &Path, cache: Option<PathBuf>) -> Result<(), Failure> {
    let cache = circuitry_runner::Cache::for_outputs(out, cache.as_deref());
    let entries = cache.entries();
    say!(
        "{} node{} in {}",
        entries.len(),
        if entries.len() == 1 { "" } else { "s" },
        cache.root().display()
    );
    for e in &entries {
        let r = &e.record;
        say!(
            "{}  {:8} {:24} {:20} {:>10}  {:.1}s",
            &r.hash[..12.min(r.hash.len())],
            r.kind,
            r.name,
            r.experiment,
            circuitry_runner::estimate::binary_bytes(e.bytes),
            r.seconds
        );
    }
    Ok(())
}

pub fn cache_gc(
    files: &[PathBuf],
    all: bool,
    out: &Path,
    cache: Option<PathBuf>,
) -> Result<(), Failure> {
    if files.is_empty() && !all {
        return Err(Failure {
            code: 2,
            message: "error: name the experiments whose nodes to keep (`circuitry cache gc FILE...`), or pass --all to empty the cache".to_string(),
        });
    }
    let mut keep = std::collections::BTreeSet::new();
    for file in files {
        let experiment = load(file, &[])?;
        let device = circuitry_runner::device_name(&experiment, None);
        let plan = circuitry_runner::plan(&experiment, &device).map_err(run_failed)?;
        keep.extend(plan.node_hashes());
    }
    let cache = circuitry_runner::Cache::for_outputs(out, cache.as_deref());
    let (removed, bytes) = cache.gc(&keep).map_err(run_failed)?;
    say!(
        "removed {removed} node{} ({}) from {}",
        if removed == 1 { "" } else { "s" },
        circuitry_runner::estimate::binary_bytes(bytes),
        cache.root().display()
    );
    Ok(())
}

pub fn validate(files: &[PathBuf], set: &[String]) -> Result<(), Failure> {
    let mut messages = Vec::new();
    for file in files {
        match Experiment::from_file_with_overrides(file, set) {
            Ok(e) => say!(
                "{}: ok ({} run{})",
                file.display(),
                e.expand().len(),
                if e.is_sweep() { "s" } else { "" }
            ),
            Err(err) => messages.push(err.to_string()),
        }
    }
    if messages.is_empty() {
        Ok(())
    } else {
        Err(Failure {
            code: 2,
            message: messages.join("\n"),
        })
    }
}

pub fn schema() -> Result<(), Failure> {
    say!(
        "{}",
        serde_json::to_string_pretty(&circuitry_spec::json_schema()).expect("schema serializes")
    );
    Ok(())
}

pub fn inspect(location: &str, hooks: bool) -> Result<(), Failure> {
    let source = ModelSource::resolve(location, Path::new(".")).map_err(failed)?;
    let c = circuitry_models::load::read_config(&source).map_err(failed)?;
    let kind = match source {
        ModelSource::HfDir(_) => "Hugging Face directory",
        ModelSource::Gguf(_) => "GGUF file",
    };
    say!("{} ({kind})", source.path().display());
    say!("  architecture   {}", c.architecture.name());
    say!("  parameters     {:.1}M", c.n_params() as f64 / 1e6);
    say!("  layers         {}", c.n_layers);
    say!("  d_model        {}", c.d_model);
    say!(
        "  heads          {} (key/value heads {}), d_head {}",
        c.n_heads,
        c.n_kv_heads,
        c.d_head
    );
    if c.attn_only {
        say!("  mlp            none (attention-only)");
    } else {
        say!(
            "  mlp            {} ({:?}{})",
            c.d_mlp,
            c.act_fn,
            if c.gated_mlp { ", gated" } else { "" }
        );
    }
    say!("  vocabulary     {}", c.d_vocab);
    say!("  context        {}", c.n_ctx);
    say!("  norm           {:?} (eps {})", c.norm, c.norm_eps as f32);
    match &c.positional {
        Positional::Learned => say!("  positions      learned"),
        Positional::Rotary {
            theta,
            dim,
            scaling,
            local_theta,
        } => {
            let scaled = match scaling {
                RopeScaling::None => String::new(),
                other => format!(", {other}"),
            };
            let local = local_theta.map_or(String::new(), |t| {
                format!("; sliding-window layers theta {t}, unscaled")
            });
            say!("  positions      rotary (theta {theta}, {dim} dims{scaled}{local})")
        }
    }
    say!("  blocks         {}", block_layout(&c));
    say!("  attention      {}", attention_layout(&c));
    if let Some(cap) = c.logit_softcap {
        say!("  logits         soft-capped at {cap}");
    }
    say!(
        "  unembedding    {}",
        if c.tied_embeddings {
            "tied to the embedding"
        } else {
            "separate"
        }
    );
    let id = |t: Option<u32>| t.map_or("none".to_string(), |t| t.to_string());
    say!(
        "  special tokens bos {}, eos {}, pad {}",
        id(c.bos_token_id),
        id(c.eos_token_id),
        id(c.pad_token_id)
    );
    let points: Vec<_> = circuitry_models::HookPoint::all(c.n_layers)
        .into_iter()
        .filter(|h| circuitry_models::transformer::has_hook(&c, h.kind))
        .collect();
    say!(
        "  hook points    {} ({} per layer)",
        points.len(),
        points.iter().filter(|h| h.layer == Some(0)).count()
    );
    if hooks {
        for h in points.iter().filter(|h| h.layer.is_none_or(|l| l == 0)) {
            let (heads, width) = circuitry_models::hook_position_shape(&c, h.kind);
            let shape = match h.kind.layout() {
                HookLayout::BatchPosD => format!("[batch, pos, {width}]"),
                HookLayout::BatchPosHeadD => format!("[batch, pos, {heads}, {width}]"),
                HookLayout::BatchHeadQK => format!("[batch, {heads}, query_pos, key_pos]"),
            };
            let name = h.to_string().replacen("blocks.0.", "blocks.L.", 1);
            say!("    {name:32} {shape}");
        }
    }
    Ok(())
}

/// How `circuitry inspect` describes a block: where it normalises, whether attention and MLP
/// run in parallel.
fn block_layout(c: &circuitry_models::ModelConfig) -> String {
    use circuitry_models::BlockNorms;
    let norms = match c.block_norms {
        BlockNorms::Pre => "pre-norms (ln1, ln2)",
        BlockNorms::Post => "post-norms (ln1_post, ln2_post)",
        BlockNorms::PreAndPost => "pre- and post-norms (ln1, ln1_post, ln2, ln2_post)",
    };
    let order = if c.attn_only {
        "attention only"
    } else if c.parallel_attn_mlp {
        "attention and MLP in parallel"
    } else {
        "attention then MLP"
    };
    format!("{order}, {norms}")
}

/// How `circuitry inspect` describes attention: the score scale, soft-cap, query/key norms and
/// sliding window.
fn attention_layout(c: &circuitry_models::ModelConfig) -> String {
    use circuitry_models::QkNorm;
    let mut parts = vec![match c.attn_scale {
        None => "scores / sqrt(d_head)".to_string(),
        // To four decimals, so that a GGUF file's f32 scale and a config's f64 one read the same.
        Some(s) => format!("scores / {}", (s * 1e4).round() / 1e4),
    }];
    if let Some(cap) = c.attn_softcap {
        parts.push(format!("soft-capped at {cap}"));
    }
    match c.qk_norm {
        QkNorm::None => {}
        QkNorm::PerHead => parts.push("query/key norms per head".to_string()),
        QkNorm::Whole => parts.push("query/key norms over all heads".to_string()),
    }
    match &c.sliding_window {
        None => parts.push("every earlier key".to_string()),
        Some(w) => parts.push(match &w.layers {
            None => format!("sliding window of {} keys", w.size),
            Some(layers) => format!(
                "sliding window of {} keys in layers {}",
                w.size,
                layers
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
    }
    parts.join(", ")
}

pub fn analyses(kind: Option<&str>) -> Result<(), Failure> {
    let kinds = match kind {
        Some(k) => vec![circuitry_spec::analysis_kind(k).ok_or_else(|| Failure {
            code: 2,
            message: format!(
                "error: unknown analysis kind `{k}`; known kinds: {}",
                circuitry_spec::kind_names().join(", ")
            ),
        })?],
        None => circuitry_spec::analysis_kinds(),
    };
    for info in kinds {
        say!("{info}");
        // The spec's kinds and the circuits' tables come from one list.
        for table in declared_tables(&info.name).unwrap_or_default() {
            say!("  output {}:", table.file_name("<analysis>"));
            if !table.when.is_empty() {
                say!("    ({})", table.when);
            }
            for c in table.columns {
                let null = if c.nullable { ", nullable" } else { "" };
                say!("    {:22} {}{null}  {}", c.name, c.dtype, c.description);
            }
        }
        say!();
    }
    say!(
        "Every table starts with the runner's columns: one per [sweep] key, `step` (u32, the checkpoint's updates) for an analysis of a model with `checkpoints`, `model`, and `dataset` for kinds that read prompts."
    );
    if kind.is_none() {
        say!();
        say!("Datasets: each [datasets.NAME] has exactly one of these sources, with its keys.");
        say!();
        for source in circuitry_spec::dataset_sources() {
            say!("{source}");
        }
    }
    Ok(())
}
