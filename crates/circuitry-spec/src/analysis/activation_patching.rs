//! `kind = "activation_patching"`, and the types the causal-intervention kinds share: patching
//! sites ([`Site`]), the direction of a patch ([`Direction`]), which positions a sweep patches
//! ([`PatchPositions`]) and which heads ([`HeadSweep`]).

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::AnalysisKind;
use crate::refs::{Measure, Metric, PositionRef};
use crate::validate::Checker;

/// Activation patching: each component's activation copied from one run of a clean/corrupt pair
/// into the other, and the metric of the patched run.
///
/// Denoising (the default) patches clean activations into the corrupt run: a component that
/// restores the clean behaviour carries the information the corruption removed. Noising patches
/// corrupt activations into the clean run. Sweeps every selected layer, each head separately
/// for per-head sites (`z`, `q`, `k`, `v`, `pattern`, `result`), at all positions together or
/// one position at a time. Patched passes reuse the unpatched prefix of the destination run and
/// run many patches as rows of one batch. Needs a dataset with corrupt prompts (the ioi
/// generator, `corrupt` texts, `corrupt_tokens` or a `corrupt_column`). Columns: prompt, site,
/// layer, head, position, position_name, direction, metric, metric_clean, metric_corrupt,
/// normalized; with `summary = true` (the default) also `<name>.summary.parquet` with the means
/// over prompts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActivationPatchingParams {
    /// The activation patched: "resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out"
    /// (one per layer), or per head "z", "q", "k", "v", "pattern", "result".
    #[serde(default = "resid_pre")]
    pub site: Site,
    /// Layers to patch (0-based). Default: every layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layers: Option<Vec<u32>>,
    /// For per-head sites: "each" (every head separately, the default), "all" (all heads of a
    /// layer together) or a list of heads, each patched separately. For `k` and `v` of
    /// grouped-query models the heads are key/value heads. Sites without heads take no `heads`.
    #[serde(default)]
    pub heads: HeadSweep,
    /// Which positions one patch covers: "all" (every position together, the default),
    /// "each" (one patch per token index) or a list of positions (named like "S2" or "END",
    /// "first", "last", or token indices), each patched separately.
    #[serde(default)]
    pub positions: PatchPositions,
    /// "denoising" (clean activations into the corrupt run, the default) or "noising" (corrupt
    /// activations into the clean run).
    #[serde(default = "denoising")]
    pub direction: Direction,
    /// What is measured on the patched run, e.g. { logit_diff = ["IO", "S"] }. The table
    /// always has the raw metric and the normalized one, (patched - corrupt) / (clean - corrupt);
    /// `normalize` makes no difference here.
    pub metric: Metric,
    /// The position whose next-token prediction the metric reads (IOI: "END"). Ignored by the
    /// loss metric, which averages over every position.
    #[serde(default = "last")]
    pub position: PositionRef,
    /// Also write `<name>.summary.parquet`: per patch, the means over prompts of the metrics and
    /// the normalized mean.
    #[serde(default = "yes")]
    pub summary: bool,
}

fn resid_pre() -> Site {
    Site::ResidPre
}

fn denoising() -> Direction {
    Direction::Denoising
}

pub(super) fn last() -> PositionRef {
    PositionRef::Last
}

fn yes() -> bool {
    true
}

impl AnalysisKind for ActivationPatchingParams {
    fn validate(&self, c: &mut Checker<'_, '_>) {
        c.filter("layers", self.layers.as_deref());
        if !self.site.has_heads() && self.heads != HeadSweep::Each {
            c.error(
                "heads",
                format!("site `{}` has no heads, so it takes no `heads`", self.site),
            )
            .hint = Some(
                "remove `heads`, or patch a per-head site: z, q, k, v, pattern or result".into(),
            );
        }
        if let HeadSweep::List(heads) = &self.heads {
            c.distinct("heads", heads);
        }
        check_patch_positions(c, "positions", &self.positions);
        check_metric(c, &self.metric, &self.position);
        require_corrupt(c, "activation_patching");
    }
}

/// Checks a metric and the position it is read at.
pub(super) fn check_metric(c: &mut Checker<'_, '_>, metric: &Metric, position: &PositionRef) {
    c.metric("metric", metric);
    if metric.measure != Measure::Loss {
        c.position("position", position);
    }
}

/// Checks the positions of a patching or ablation sweep.
pub(super) fn check_patch_positions(c: &mut Checker<'_, '_>, key: &str, p: &PatchPositions) {
    if let PatchPositions::List(items) = p {
        for (i, item) in items.iter().enumerate() {
            c.position(&format!("{key}.{i}"), item);
        }
        c.distinct(key, items);
    }
}

/// The analysis's dataset must pair every prompt with a corrupt counterpart.
pub(super) fn require_corrupt(c: &mut Checker<'_, '_>, kind: &str) {
    let Some((name, dataset)) = c.dataset else {
        return;
    };
    if dataset.has_corrupt() {
        return;
    }
    let source = dataset.source_name();
    c.error(
        "dataset",
        format!("`{kind}` needs clean/corrupt prompt pairs, but dataset `{name}` ({source}) has no corrupt prompts"),
    )
    .hint = Some(
        "use the ioi generator (corrupt = \"abc\"), give inline prompts a `corrupt` text, inline tokens `corrupt_tokens`, or a file a `corrupt_column`".into(),
    );
}

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

    /// Whether the site exists only in models with MLPs.
    pub fn needs_mlp(self) -> bool {
        matches!(self, Site::ResidMid | Site::MlpOut)
    }
}

impl fmt::Display for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which way activations flow between the clean and the corrupt run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Clean activations into the corrupt run: does the component restore the clean behaviour?
    Denoising,
    /// Corrupt activations into the clean run: does corrupting the component break it?
    Noising,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Denoising => "denoising",
            Direction::Noising => "noising",
        })
    }
}

// ---------------------------------------------------------------------------------------------
// PatchPositions

/// Which positions the patches (or ablations) of a sweep cover.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum PatchPositions {
    /// `"all"`: every position of the prompt, in one patch.
    #[default]
    All,
    /// `"each"`: one patch per token index (up to the longest prompt).
    Each,
    /// One patch per listed position.
    List(Vec<PositionRef>),
}

impl Serialize for PatchPositions {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            PatchPositions::All => s.serialize_str("all"),
            PatchPositions::Each => s.serialize_str("each"),
            PatchPositions::List(l) => l.serialize(s),
        }
    }
}

struct PatchPositionsVisitor;

impl<'de> Visitor<'de> for PatchPositionsVisitor {
    type Value = PatchPositions;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"all\", \"each\", a position or a list of positions")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<PatchPositions, E> {
        match v {
            "all" => Ok(PatchPositions::All),
            "each" => Ok(PatchPositions::Each),
            _ => PositionRef::deserialize(de::value::StrDeserializer::<E>::new(v))
                .map(|p| PatchPositions::List(vec![p])),
        }
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<PatchPositions, E> {
        Ok(PatchPositions::List(vec![PositionRef::Index(v)]))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<PatchPositions, E> {
        i64::try_from(v)
            .map(|i| PatchPositions::List(vec![PositionRef::Index(i)]))
            .map_err(|_| E::custom("position index out of range"))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<PatchPositions, A::Error> {
        let mut list = Vec::new();
        while let Some(p) = seq.next_element::<PositionRef>()? {
            list.push(p);
        }
        if list.is_empty() {
            return Err(de::Error::custom(
                "an empty list selects no position; write \"all\", \"each\" or list at least one",
            ));
        }
        Ok(PatchPositions::List(list))
    }
}

impl<'de> Deserialize<'de> for PatchPositions {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(PatchPositionsVisitor)
    }
}

impl JsonSchema for PatchPositions {
    fn schema_name() -> Cow<'static, str> {
        "PatchPositions".into()
    }

    fn json_schema(g: &mut SchemaGenerator) -> Schema {
        let one = g.subschema_for::<PositionRef>();
        json_schema!({
            "title": "patch positions",
            "description": "Which positions one patch covers: \"all\" (every position, together), \"each\" (one patch per token index) or a list of positions, each patched separately.",
            "anyOf": [
                { "enum": ["all", "each"] },
                one,
                { "type": "array", "items": one, "minItems": 1 }
            ]
        })
    }
}

// ---------------------------------------------------------------------------------------------
// HeadSweep

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

impl Serialize for HeadSweep {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            HeadSweep::Each => s.serialize_str("each"),
            HeadSweep::All => s.serialize_str("all"),
            HeadSweep::List(l) => l.serialize(s),
        }
    }
}

struct HeadSweepVisitor;

impl<'de> Visitor<'de> for HeadSweepVisitor {
    type Value = HeadSweep;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"each\", \"all\" or a list of head indices")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<HeadSweep, E> {
        match v {
            "each" => Ok(HeadSweep::Each),
            "all" => Ok(HeadSweep::All),
            other => Err(E::unknown_variant(other, &["each", "all"])),
        }
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<HeadSweep, E> {
        u32::try_from(v)
            .map(|h| HeadSweep::List(vec![h]))
            .map_err(|_| E::custom(format_args!("head {v} is not a head index (0, 1, ...)")))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<HeadSweep, E> {
        self.visit_i64(i64::try_from(v).unwrap_or(-1))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<HeadSweep, A::Error> {
        let mut list = Vec::new();
        while let Some(h) = seq.next_element::<u32>()? {
            list.push(h);
        }
        if list.is_empty() {
            return Err(de::Error::custom(
                "an empty list selects no head; write \"each\", \"all\" or list at least one",
            ));
        }
        Ok(HeadSweep::List(list))
    }
}

impl<'de> Deserialize<'de> for HeadSweep {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(HeadSweepVisitor)
    }
}

impl JsonSchema for HeadSweep {
    fn schema_name() -> Cow<'static, str> {
        "HeadSweep".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "title": "heads",
            "description": "Which heads: \"each\" (every head separately), \"all\" (all heads of a layer together) or a list of head indices, each separately.",
            "anyOf": [
                { "enum": ["each", "all"] },
                { "type": "integer", "minimum": 0 },
                { "type": "array", "items": { "type": "integer", "minimum": 0 }, "minItems": 1 }
            ]
        })
    }
}
