//! Errors from configuring, running and saving a training run.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("training config: `{field}` {message}")]
    Config { field: String, message: String },
    #[error("batch for step {step}: {message}")]
    Batch { step: usize, message: String },
    #[error("loss became {value} at step {step}; lower optim.lr or set optim.grad_clip")]
    NonFinite { step: usize, value: f32 },
    #[error("building the model: {0}")]
    Model(#[from] circuitry_models::LoadError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Write { path: PathBuf, message: String },
}

impl TrainError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> TrainError {
        TrainError::Io {
            path: path.into(),
            source,
        }
    }
}
