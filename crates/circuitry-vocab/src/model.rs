//! How a model is run: which side batches are padded on, which weight-processing steps apply,
//! and at what precision its weights are held.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Which side prompts of different lengths are padded on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaddingSide {
    /// Pad after the prompt (default): token positions line up from the start.
    #[default]
    Right,
    /// Pad before the prompt: the last tokens line up.
    Left,
}

/// Weight-processing steps; each defaults to on, matching TransformerLens's defaults. Processing
/// leaves the logits unchanged up to a per-position constant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Processing {
    /// Fold each LayerNorm/RMSNorm's scale (and bias) into the weights of the layer that reads it.
    #[serde(default = "yes")]
    pub fold_ln: bool,
    /// Remove the mean from every weight that writes to the residual stream (LayerNorm models
    /// only; ignored for RMSNorm models).
    #[serde(default = "yes")]
    pub center_writing_weights: bool,
    /// Remove the mean over the vocabulary from the unembedding (logits shift by a constant).
    #[serde(default = "yes")]
    pub center_unembed: bool,
    /// Fold the value biases into the attention output bias.
    #[serde(default = "yes")]
    pub fold_value_biases: bool,
}

fn yes() -> bool {
    true
}

impl Processing {
    /// Every step on.
    pub const ALL: Processing = Processing {
        fold_ln: true,
        center_writing_weights: true,
        center_unembed: true,
        fold_value_biases: true,
    };
    /// Every step off.
    pub const NONE: Processing = Processing {
        fold_ln: false,
        center_writing_weights: false,
        center_unembed: false,
        fold_value_biases: false,
    };
}

impl Default for Processing {
    fn default() -> Self {
        Processing::ALL
    }
}

impl Processing {
    /// Every step on (TransformerLens's default).
    pub fn all() -> Processing {
        Processing::ALL
    }

    /// No processing: the checkpoint's weights as they are.
    pub fn none() -> Processing {
        Processing::NONE
    }
}

/// The precision a model's weight matrices are held in. Computation is f32 either way: a
/// half-precision matrix is widened where it is used, so activations, hooks and tables are f32
/// and only the memory the weights take changes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WeightDtype {
    /// 32-bit floats (default): a checkpoint stored at half precision is widened exactly.
    #[default]
    F32,
    /// bfloat16, as most recent checkpoints are stored: half the memory of f32. Matrices (the
    /// embeddings, unembedding, attention and MLP weights) are held as bf16 after loading and
    /// weight processing (done in f32, one tensor at a time, then rounded); norm weights and
    /// biases stay f32.
    Bf16,
    /// IEEE half precision, as older checkpoints are stored; held as `bf16` describes.
    F16,
}

impl WeightDtype {
    pub fn is_f32(&self) -> bool {
        *self == WeightDtype::F32
    }

    /// The name experiment files use.
    pub fn name(self) -> &'static str {
        match self {
            WeightDtype::F32 => "f32",
            WeightDtype::Bf16 => "bf16",
            WeightDtype::F16 => "f16",
        }
    }
}
