//! The `circuitry` command line: a thin layer over the runner, spec and models crates.

mod commands;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Declarative mechanistic interpretability: experiment files (TOML) to tidy Parquet tables.
#[derive(Parser)]
#[command(name = "circuitry", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run an experiment and publish its tables as <OUT>/<experiment name>/: nodes the cache
    /// holds are reused, the rest computed (a killed run resumes where it stopped).
    Run {
        #[command(flatten)]
        target: Target,
        /// Recompute every node, replacing its cache entries.
        #[arg(long)]
        force: bool,
        /// If another run is writing these outputs, wait for it instead of failing.
        #[arg(long)]
        wait: bool,
        /// Compute only share I of N of the nodes into the cache and publish nothing; a plain
        /// `run` afterwards assembles the tables (see `submit`).
        #[arg(long, value_name = "I/N")]
        shard: Option<circuitry_runner::Shard>,
        /// No progress bars or status lines.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Submit an experiment to a cluster: an array job of N shards computing into the shared
    /// cache, and a job after it (afterok) assembling the tables. Prints the job ids.
    Submit {
        #[command(flatten)]
        target: Target,
        /// Submit to SLURM with sbatch (the only scheduler so far).
        #[arg(long, required = true)]
        slurm: bool,
        /// Number of shards (array tasks).
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=10000))]
        shards: u32,
        /// Options for sbatch, after `--`: e.g. -- --partition gpu --gres gpu:1 --time 2:00:00.
        #[arg(last = true, value_name = "SBATCH OPTIONS")]
        sbatch: Vec<String>,
    },
    /// Show how an experiment would run: shared forward passes, analyses and tables, which
    /// nodes the cache holds, and estimated cost.
    Plan {
        #[command(flatten)]
        target: Target,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Inspect or clean the node cache.
    Cache {
        #[command(subcommand)]
        action: CacheAction,
    },
    /// Check experiment files without running them.
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
    /// Print the experiment file JSON Schema.
    Schema,
    /// Describe a model: architecture, sizes and hook points.
    Inspect {
        /// A Hugging Face model directory, a .gguf file, or a hub id ORG/NAME in the local cache.
        model: String,
        /// Print the hook points with their shapes.
        #[arg(long)]
        hooks: bool,
    },
    /// List every analysis kind with its parameters and output columns.
    Analyses {
        /// Show only this kind.
        kind: Option<String>,
    },
}

/// An experiment, with where its outputs and node cache are.
#[derive(clap::Args)]
struct Target {
    /// The experiment file.
    file: PathBuf,
    /// Override a key of an entry the file defines before validation, e.g.
    /// --set analyses.heads.layers=[0,1] (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Compute device: flex (default), tch, cuda, cuda:N, wgpu, ndarray (backends other than
    /// flex must be compiled in with cargo features).
    #[arg(long)]
    device: Option<String>,
    #[command(flatten)]
    store: Store,
}

/// Where outputs and the node cache are.
#[derive(clap::Args)]
struct Store {
    /// Root directory of the outputs.
    #[arg(long, default_value = "outputs")]
    out: PathBuf,
    /// The node cache directory (default: $CIRCUITRY_CACHE, else <OUT>/.circuitry/cache).
    #[arg(long, value_name = "DIR")]
    cache: Option<PathBuf>,
}

#[derive(Subcommand)]
enum CacheAction {
    /// List the cached nodes: hash, kind, name, experiment, size, compute time.
    Ls {
        #[command(flatten)]
        store: Store,
    },
    /// Remove every cached node the given experiments do not use (none given: with --all,
    /// every node), and leftovers of killed runs.
    Gc {
        /// Experiments whose nodes to keep.
        files: Vec<PathBuf>,
        /// Remove every node (needed when no experiment is given).
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        store: Store,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Dot,
    Mermaid,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run {
            target,
            force,
            wait,
            shard,
            quiet,
        } => {
            let options = circuitry_runner::RunOptions {
                out_root: target.store.out,
                quiet,
                device: target.device,
                cache: target.store.cache,
                force,
                wait,
                shard,
            };
            commands::run(&target.file, &target.set, &options)
        }
        Command::Submit {
            target,
            slurm: _,
            shards,
            sbatch,
        } => commands::submit(
            &target.file,
            &target.store.out,
            target.store.cache,
            shards as usize,
            &target.set,
            target.device,
            sbatch,
        ),
        Command::Plan { target, format } => commands::plan(
            &target.file,
            format.into(),
            &target.set,
            &target.store.out,
            target.device,
            target.store.cache,
        ),
        Command::Cache { action } => match action {
            CacheAction::Ls { store } => commands::cache_ls(&store.out, store.cache),
            CacheAction::Gc { files, all, store } => {
                commands::cache_gc(&files, all, &store.out, store.cache)
            }
        },
        Command::Validate { files, set } => commands::validate(&files, &set),
        Command::Schema => commands::schema(),
        Command::Inspect { model, hooks } => commands::inspect(&model, hooks),
        Command::Analyses { kind } => commands::analyses(kind.as_deref()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) if failure.code == commands::Failure::CLOSED_OUTPUT => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("{}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

impl From<Format> for circuitry_runner::PlanFormat {
    fn from(f: Format) -> Self {
        match f {
            Format::Text => circuitry_runner::PlanFormat::Text,
            Format::Dot => circuitry_runner::PlanFormat::Dot,
            Format::Mermaid => circuitry_runner::PlanFormat::Mermaid,
            Format::Json => circuitry_runner::PlanFormat::Json,
        }
    }
}
