//! Run errors: each names the file, model, dataset or analysis at fault.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Output { path: PathBuf, message: String },
    #[error("model `{model}`: {message}")]
    Model { model: String, message: String },
    /// `message` names the dataset (the data crate's errors do).
    #[error("{message}")]
    Dataset { dataset: String, message: String },
    /// A dataset error about one key of `[datasets.NAME]`: `key` is relative to the entry
    /// (`length`, `prompts.2`; empty for the entry itself), and [`RunError::located`] points at it
    /// whatever key its caller names.
    #[error("{message}")]
    DatasetAt {
        dataset: String,
        key: String,
        message: String,
    },
    #[error("analysis `{analysis}`: {message}")]
    Analysis { analysis: String, message: String },
    #[error("{0}")]
    Spec(String),
    /// Another run holds the lock on these outputs.
    #[error(
        "{} is being written by {holder}; wait for it to finish, or pass --wait to run after it",
        outputs.display()
    )]
    Busy { outputs: PathBuf, holder: String },
    /// A problem found while running, pointed at the experiment file key it comes from.
    #[error("{0}")]
    Located(Box<circuitry_spec::Diagnostic>),
}

impl RunError {
    /// Points a model, dataset or analysis error at `key` of the experiment file (a
    /// [`RunError::DatasetAt`] at its own key; other errors are returned unchanged).
    pub fn located(self, experiment: &circuitry_spec::Experiment, key: &str) -> RunError {
        match &self {
            RunError::DatasetAt {
                dataset,
                key: own,
                message,
            } => {
                let key = if own.is_empty() {
                    format!("datasets.{dataset}")
                } else {
                    format!("datasets.{dataset}.{own}")
                };
                RunError::Located(Box::new(experiment.diagnostic_at(&key, message.clone())))
            }
            RunError::Model { .. } | RunError::Dataset { .. } | RunError::Analysis { .. } => {
                RunError::Located(Box::new(experiment.diagnostic_at(key, self.to_string())))
            }
            _ => self,
        }
    }

    /// Points a file that could not be read at `key` of the experiment file.
    pub fn located_io(self, experiment: &circuitry_spec::Experiment, key: &str) -> RunError {
        match self {
            RunError::Io { path, source } => RunError::Located(Box::new(
                experiment.diagnostic_at(key, format!("{}: {source}", path.display())),
            )),
            other => other.located(experiment, key),
        }
    }

    pub fn io(path: &Path, source: std::io::Error) -> RunError {
        RunError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
    pub fn output(path: &Path, message: impl Into<String>) -> RunError {
        RunError::Output {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
}

/// An analysis's own error, pointed at its parameter (or its section) in the experiment file.
pub(crate) fn analysis_failure(
    exp: &circuitry_spec::Experiment,
    name: &str,
    e: circuitry_circuits::analysis::AnalysisError,
) -> RunError {
    let key = match &e.key {
        Some(k) => format!("analyses.{name}.{k}"),
        None => format!("analyses.{name}"),
    };
    analysis_err(name, e.message).located(exp, &key)
}

pub(crate) fn analysis_err(name: &str, message: String) -> RunError {
    RunError::Analysis {
        analysis: name.to_string(),
        message,
    }
}
