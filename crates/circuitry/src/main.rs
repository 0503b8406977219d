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
    /// Run an experiment and write its tables to <OUT>/<experiment name>/.
    Run {
        /// The experiment file.
        file: PathBuf,
        /// Root directory of the outputs.
        #[arg(long, default_value = "outputs")]
        out: PathBuf,
        /// Override a key of an entry the file defines before validation, e.g.
        /// --set analyses.heads.layers=[0,1] (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Compute device: flex (default), tch, cuda, cuda:N, wgpu, ndarray (backends other than
        /// flex must be compiled in with cargo features).
        #[arg(long)]
        device: Option<String>,
        /// No progress bars or status lines.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Show how an experiment would run: shared forward passes, analyses and tables.
    Plan {
        file: PathBuf,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
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
            file,
            out,
            set,
            device,
            quiet,
        } => commands::run(&file, &out, &set, device, quiet),
        Command::Plan { file, format, set } => commands::plan(&file, format.into(), &set),
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
