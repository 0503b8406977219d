//! The subcommands. Each returns a [`Failure`] with the exit code and the message to print.

use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use circuitry_circuits::analyses::declared_tables;
use circuitry_models::{HookLayout, ModelSource, Positional};
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

pub fn run(
    file: &Path,
    out: &Path,
    set: &[String],
    device: Option<String>,
    quiet: bool,
) -> Result<(), Failure> {
    let experiment = load(file, set)?;
    let options = RunOptions {
        out_root: out.to_path_buf(),
        quiet,
        device,
    };
    let report = circuitry_runner::run(&experiment, &options).map_err(run_failed)?;
    if !quiet {
        for t in &report.manifest.tables {
            say!(
                "{}  ({} rows)",
                report.out_dir.join(&t.path).display(),
                t.rows
            );
        }
    }
    Ok(())
}

pub fn plan(file: &Path, format: PlanFormat, set: &[String]) -> Result<(), Failure> {
    let experiment = load(file, set)?;
    let plan = circuitry_runner::plan(&experiment).map_err(run_failed)?;
    write_out(format_args!("{}", plan.render(format)))?;
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
    match c.positional {
        Positional::Learned => say!("  positions      learned"),
        Positional::Rotary { theta, dim } => {
            say!("  positions      rotary (theta {theta}, {dim} dims)")
        }
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
            let heads = if matches!(
                h.kind,
                circuitry_models::HookKind::K | circuitry_models::HookKind::V
            ) {
                c.n_kv_heads
            } else {
                c.n_heads
            };
            let shape = match h.kind.layout() {
                HookLayout::BatchPosD => format!("[batch, pos, {}]", last_dim(&c, h.kind)),
                HookLayout::BatchPosHeadD => {
                    let d = if h.kind == circuitry_models::HookKind::Result {
                        c.d_model
                    } else {
                        c.d_head
                    };
                    format!("[batch, pos, {heads}, {d}]")
                }
                HookLayout::BatchHeadQK => format!("[batch, {}, query_pos, key_pos]", c.n_heads),
            };
            let name = h.to_string().replacen("blocks.0.", "blocks.L.", 1);
            say!("    {name:32} {shape}");
        }
    }
    Ok(())
}

fn last_dim(c: &circuitry_models::ModelConfig, kind: circuitry_models::HookKind) -> usize {
    use circuitry_models::HookKind::*;
    match kind {
        Ln1Scale | Ln2Scale | LnFinalScale => 1,
        MlpPre | MlpPreLinear | MlpPost => c.d_mlp,
        Logits => c.d_vocab,
        _ => c.d_model,
    }
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
    Ok(())
}
