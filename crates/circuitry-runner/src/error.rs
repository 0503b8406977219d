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
    #[error("dataset `{dataset}`: {message}")]
    Dataset { dataset: String, message: String },
    #[error("analysis `{analysis}`: {message}")]
    Analysis { analysis: String, message: String },
    #[error("{0}")]
    Spec(String),
}

impl RunError {
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
