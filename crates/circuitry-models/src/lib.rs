//! Transformer language models for circuitry: GPT-2, Llama (with Mistral, Qwen2/3, Phi-3 and
//! OLMo-2), GPT-NeoX and Gemma 1/2/3 families as burn modules with every
//! TransformerLens hook point, interventions at those hooks, weight loading (Hugging Face
//! safetensors directories, the local hub cache, GGUF), tokenizers, and TransformerLens-style
//! weight processing.
//!
//! This crate knows nothing of experiment files, datasets or tables, and never touches the
//! network. Modules take the device from their tensors, so the same code runs on any backend.

pub mod architectures;
pub mod batch;
pub mod cache;
pub mod components;
pub mod config;
pub mod device;
pub mod edits;
pub mod error;
pub mod hooks;
mod host;
pub mod load;
pub mod loading;
pub mod processing;
pub mod tokenizer;
pub mod transformer;
pub mod weights;

pub use batch::{PaddingSide, TokenBatch};
pub use cache::{ActivationCache, Intervention};
pub use circuitry_vocab::WeightDtype;
pub use components::attention::LayerKv;
pub use config::{
    ActFn, Architecture, BlockNorms, ConfigIssue, ModelConfig, NormKind, Positional, QkNorm,
    RopeScaling, SlidingWindow,
};
pub use device::{DeviceKind, parse_device};
pub use edits::{BatchPositions, Edit, EditOp, HookError, HookRank, HookTensor, Selection};
pub use error::{LoadError, TokenTextError};
pub use hooks::{HookKind, HookLayout, HookPoint, hook_position_shape};
pub use host::{host_ints, host_values};
pub use load::{LoadedModel, load_model, load_weights, load_weights_as};
pub use loading::ModelSource;
pub use processing::Processing;
pub use tokenizer::{Encoded, Tokenizer};
pub use transformer::{KvCache, Output, Span, Transformer};
pub use weights::{HostTensor, Weights};

pub(crate) use transformer::{linear, weight};

/// Re-exported so that downstream crates use the same burn as the models.
pub use burn;
