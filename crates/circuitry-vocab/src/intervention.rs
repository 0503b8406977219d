//! Intervention vocabulary: the per-layer sites a patch or an attribution targets, which way a
//! patch goes, which input of a receiving head a path ends in, and what a mean ablation averages.

use std::fmt;

use schemars::JsonSchema;
use serde::de;
use serde::{Deserialize, Serialize};

/// A hook site of every layer that an intervention patches or attributes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Site {
    /// The residual stream before the block (`blocks.L.hook_resid_pre`).
    ResidPre,
    /// The residual stream between attention and MLP (`blocks.L.hook_resid_mid`; not in
    /// attention-only models).
    ResidMid,
    /// The residual stream after the block (`blocks.L.hook_resid_post`).
    ResidPost,
    /// The attention layer's output (`blocks.L.hook_attn_out`).
    AttnOut,
    /// The MLP's output (`blocks.L.hook_mlp_out`; not in attention-only models).
    MlpOut,
    /// Each head's attention-weighted values (`blocks.L.attn.hook_z`).
    Z,
    /// Each head's queries (`blocks.L.attn.hook_q`).
    Q,
    /// Each key/value head's keys (`blocks.L.attn.hook_k`).
    K,
    /// Each key/value head's values (`blocks.L.attn.hook_v`).
    V,
    /// Each head's attention pattern (`blocks.L.attn.hook_pattern`; positions are query
    /// positions).
    Pattern,
    /// Each head's output in the residual stream (`blocks.L.attn.hook_result`).
    Result,
}

impl Site {
    /// Every site, in listing order.
    pub const ALL: [Site; 11] = [
        Site::ResidPre,
        Site::ResidMid,
        Site::ResidPost,
        Site::AttnOut,
        Site::MlpOut,
        Site::Z,
        Site::Q,
        Site::K,
        Site::V,
        Site::Pattern,
        Site::Result,
    ];

    /// The name written in experiment files and tables (`resid_pre`, `z`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Site::ResidPre => "resid_pre",
            Site::ResidMid => "resid_mid",
            Site::ResidPost => "resid_post",
            Site::AttnOut => "attn_out",
            Site::MlpOut => "mlp_out",
            Site::Z => "z",
            Site::Q => "q",
            Site::K => "k",
            Site::V => "v",
            Site::Pattern => "pattern",
            Site::Result => "result",
        }
    }

    /// Whether the site has a head axis.
    pub fn has_heads(self) -> bool {
        matches!(
            self,
            Site::Z | Site::Q | Site::K | Site::V | Site::Pattern | Site::Result
        )
    }
}

impl fmt::Display for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which way activations flow between the clean and the corrupt run.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    // Source: clean, destination: corrupt ("sufficiency"); the default.
    #[default]
    /// Clean activations into the corrupt run: does the component restore the clean behaviour?
    Denoising,
    // Source: corrupt, destination: clean ("necessity").
    /// Corrupt activations into the clean run: does corrupting the component break it?
    Noising,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Denoising => "denoising",
            Direction::Noising => "noising",
        }
    }

    /// Whether the source run is the clean one.
    pub fn source_is_clean(self) -> bool {
        self == Direction::Denoising
    }
}

impl std::str::FromStr for Direction {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "denoising" | "denoise" => Ok(Direction::Denoising),
            "noising" | "noise" => Ok(Direction::Noising),
            other => Err(format!(
                "unknown patching direction `{other}`; expected denoising or noising"
            )),
        }
    }
}

/// Which input of a receiving head a path ends in.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum HeadInput {
    /// The query input.
    Q,
    /// The key input.
    K,
    /// The value input.
    V,
}

impl fmt::Display for HeadInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl HeadInput {
    pub fn as_str(self) -> &'static str {
        match self {
            HeadInput::Q => "q",
            HeadInput::K => "k",
            HeadInput::V => "v",
        }
    }
}

/// What the mean of a mean ablation is taken over.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MeanOver {
    /// Over prompts, separately at each token index (default).
    #[default]
    Prompts,
    /// Over prompts and positions: one mean per component.
    PromptsAndPositions,
}

/// Which heads the patches of a per-head sweep cover.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum HeadSweep {
    /// `"each"`: every head separately.
    #[default]
    Each,
    /// `"all"`: all heads of a layer in one patch.
    All,
    /// Each listed head separately.
    List(Vec<u32>),
}

crate::keyword_or_list! {
    HeadSweep: "each" => Each, "all" => All, [u32] => List;

    const SCHEMA_NAME: &'static str = "HeadSweep";
    const TITLE: &'static str = "heads";
    const DESCRIPTION: &'static str = "Which heads: \"each\" (every head separately), \"all\" (all heads of a layer together) or a list of head indices, each separately.";
    const EXPECTING: &'static str = "\"each\", \"all\" or a list of head indices";
    const EMPTY_LIST: &'static str =
        "an empty list selects no head; write \"each\", \"all\" or list at least one";

    fn one_from_i64<E: de::Error>(v: i64) -> Result<u32, E> {
        u32::try_from(v)
            .map_err(|_| E::custom(format_args!("head {v} is not a head index (0, 1, ...)")))
    }

    fn one_from_u64<E: de::Error>(v: u64) -> Result<u32, E> {
        Self::one_from_i64(i64::try_from(v).unwrap_or(-1))
    }
}
