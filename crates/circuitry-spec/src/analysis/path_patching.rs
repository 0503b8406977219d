//! `kind = "path_patching"`.

use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use circuitry_vocab::keyword_or_list::{Alone, ListItem};
use circuitry_vocab::{Direction, HeadInput, keyword_or_list};

use super::{AnalysisKind, last, noising, yes};

use super::activation_patching::{check_metric, require_corrupt};
use crate::refs::{MetricSpec, PositionSpec};
use crate::validate::Checker;

analysis_params! {
    /// Path patching (Wang et al. 2022): a sender's output patched only along its direct path into
    /// the receivers, everything else frozen.
    ///
    /// For each sender (a head, or an MLP), the destination run is recomputed with the sender's
    /// output taken from the source run and every other head's output (and, with `freeze_mlps`,
    /// every MLP's) frozen at its destination value; the receivers (the logits, or the query, key or
    /// value inputs of chosen heads) are then patched with what they read in that run. The default
    /// direction is noising, as in the IOI paper: corrupt (e.g. ABC) activations into the clean run.
    /// Needs a dataset with corrupt prompts. Columns: prompt, sender, layer, head, receivers,
    /// direction, metric, metric_clean, metric_corrupt, normalized, delta.
    pub struct PathPatchingParams {
        /// The senders, each patched alone (or all together with `together = true`): "all" (every
        /// attention head, the default; with head receivers, every head before the last receiver's
        /// layer) or a list of { layer = L, head = H } (a head) and
        /// { mlp = L } (an MLP layer).
        #[serde(default)]
        pub senders: Senders,
        /// Patch all listed senders together as one unit instead of one at a time.
        #[serde(default)]
        pub together: bool,
        /// Where the patched paths end: "logits" (the senders' direct effect on the unembedding, the
        /// default) or a list of { layer = L, head = H, input = "q" | "k" | "v" } (a head's query,
        /// key or value input; for keys and values of grouped-query models, H is the key/value
        /// head).
        #[serde(default)]
        pub receivers: Receivers,
        /// "noising" (corrupt activations into the clean run, the default, as in the IOI paper) or
        /// "denoising" (clean activations into the corrupt run).
        #[serde(default = "noising")]
        pub direction: Direction,
        /// What is measured, e.g. { logit_diff = ["IO", "S"] }. The table always has the raw metric,
        /// the normalized one and the change from the unpatched destination run; `normalize` makes
        /// no difference here.
        pub metric: MetricSpec,
        /// The position whose next-token prediction the metric reads (IOI: "END"). Ignored by the
        /// loss metric.
        #[serde(default = "last")]
        pub position: PositionSpec,
        /// Freeze MLP outputs at their destination values too, so that only direct paths carry the
        /// sender's change (false: MLPs are recomputed, as in the IOI paper's code).
        #[serde(default = "yes")]
        pub freeze_mlps: bool,
    }
}

/// A component whose output path patching patches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SenderRef {
    /// `{ layer = L, head = H }`.
    Head { layer: u32, head: u32 },
    /// `{ mlp = L }`.
    Mlp { layer: u32 },
}

impl fmt::Display for SenderRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SenderRef::Head { layer, head } => write!(f, "L{layer}H{head}"),
            SenderRef::Mlp { layer } => write!(f, "MLP{layer}"),
        }
    }
}

impl Serialize for SenderRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            SenderRef::Head { layer, head } => {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("layer", layer)?;
                m.serialize_entry("head", head)?;
                m.end()
            }
            SenderRef::Mlp { layer } => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("mlp", layer)?;
                m.end()
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SenderTable {
    layer: Option<u32>,
    head: Option<u32>,
    mlp: Option<u32>,
}

impl<'de> Deserialize<'de> for SenderRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let t = SenderTable::deserialize(d)?;
        match (t.layer, t.head, t.mlp) {
            (Some(layer), Some(head), None) => Ok(SenderRef::Head { layer, head }),
            (None, None, Some(layer)) => Ok(SenderRef::Mlp { layer }),
            (Some(_), None, None) => Err(de::Error::custom(
                "a head sender needs `head` as well as `layer`; an MLP sender is written { mlp = L }",
            )),
            _ => Err(de::Error::custom(
                "a sender is { layer = L, head = H } (a head) or { mlp = L } (an MLP layer)",
            )),
        }
    }
}

impl ListItem for SenderRef {
    const ALONE: Alone = Alone {
        tables: true,
        ..Alone::NOWHERE
    };

    fn schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "anyOf": [
                {
                    "type": "object",
                    "description": "An attention head.",
                    "properties": {
                        "layer": { "type": "integer", "minimum": 0, "description": "The head's layer." },
                        "head": { "type": "integer", "minimum": 0, "description": "The head." }
                    },
                    "required": ["layer", "head"],
                    "additionalProperties": false
                },
                {
                    "type": "object",
                    "description": "An MLP layer.",
                    "properties": { "mlp": { "type": "integer", "minimum": 0, "description": "The MLP's layer." } },
                    "required": ["mlp"],
                    "additionalProperties": false
                }
            ]
        })
    }
}

/// The senders of a path-patching sweep.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum Senders {
    /// `"all"`: every attention head.
    #[default]
    All,
    /// The listed heads and MLPs.
    List(Vec<SenderRef>),
}

keyword_or_list! {
    Senders: "all" => All, [SenderRef] => List;

    const SCHEMA_NAME: &'static str = "Senders";
    const TITLE: &'static str = "senders";
    const DESCRIPTION: &'static str = "\"all\" (every attention head) or a list of { layer = L, head = H } (heads) and { mlp = L } (MLP layers).";
    const EXPECTING: &'static str =
        "\"all\" or a list of senders ({ layer = L, head = H } or { mlp = L })";
    const EMPTY_LIST: &'static str =
        "an empty list selects no sender; write \"all\" or list at least one";
}

/// A receiving head's input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReceiverRef {
    /// The receiving head's layer.
    pub layer: u32,
    /// The receiving head (the key/value head for `k` and `v` under grouped-query attention).
    pub head: u32,
    /// Which of its inputs: "q", "k" or "v".
    pub input: HeadInput,
}

impl ListItem for ReceiverRef {
    const ALONE: Alone = Alone {
        tables: true,
        ..Alone::NOWHERE
    };

    fn schema(g: &mut SchemaGenerator) -> Schema {
        g.subschema_for::<ReceiverRef>()
    }
}

impl fmt::Display for ReceiverRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "L{}H{}.{}", self.layer, self.head, self.input)
    }
}

/// Where the paths of a path-patching sweep end.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum Receivers {
    /// `"logits"`: the unembedding.
    #[default]
    Logits,
    /// The listed head inputs.
    Heads(Vec<ReceiverRef>),
}

keyword_or_list! {
    Receivers: "logits" => Logits, [ReceiverRef] => Heads;

    const SCHEMA_NAME: &'static str = "Receivers";
    const TITLE: &'static str = "receivers";
    const DESCRIPTION: &'static str = "\"logits\" or a list of head inputs { layer = L, head = H, input = \"q\" | \"k\" | \"v\" }.";
    const EXPECTING: &'static str =
        "\"logits\" or a list of { layer = L, head = H, input = \"q\" | \"k\" | \"v\" }";
    const EMPTY_LIST: &'static str =
        "an empty list selects no receiver; write \"logits\" or list at least one head input";
}

impl AnalysisKind for PathPatchingParams {
    fn validate(&self, c: &mut Checker<'_, '_>) {
        if let Senders::List(list) = &self.senders {
            c.distinct("senders", list);
        }
        if let Receivers::Heads(list) = &self.receivers {
            c.distinct("receivers", list);
        }
        if let (Senders::List(senders), Receivers::Heads(receivers)) =
            (&self.senders, &self.receivers)
        {
            let last = receivers.iter().map(|r| r.layer).max().unwrap_or(0);
            for (i, s) in senders.iter().enumerate() {
                let layer = match *s {
                    SenderRef::Head { layer, .. } | SenderRef::Mlp { layer } => layer,
                };
                if layer >= last {
                    c.error(
                        &format!("senders.{i}"),
                        format!(
                            "sender {s} cannot reach any receiver: the latest receiver is in layer {last}"
                        ),
                    )
                    .hint = Some("senders must sit in earlier layers than their receivers".into());
                }
            }
        }
        check_metric(c, &self.metric, &self.position);
        require_corrupt(c, "path_patching");
    }
}
