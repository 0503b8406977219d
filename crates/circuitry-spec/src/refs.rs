//! Reference types shared by analyses: which positions ([`PositionSpec`], [`PositionsSpec`]), which
//! tokens ([`TokenSpec`], [`TokenSelection`]), what a logit attribution explains ([`Target`]) and
//! what an intervention measures ([`MetricSpec`]).
//!
//! Each has a short string form and a table form; parsing normalizes both to one canonical
//! value, so `positions = "last"` and `positions = ["last"]` hash the same.

use std::borrow::Cow;
use std::fmt;

use circuitry_vocab::keyword_or_list;
use circuitry_vocab::keyword_or_list::{Alone, ListItem};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, MapAccess, Visitor, value::MapAccessDeserializer};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

// ---------------------------------------------------------------------------------------------
// PositionSpec

/// One token position of a prompt.
// As written: names and negative indices are resolved per prompt by the analyses
// (`circuitry_circuits::refs::position`, or as an intervention's `PromptPositions`/`MetricPosition`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PositionSpec {
    /// `"first"`: position 0 (the BOS token when the dataset prepends one).
    First,
    /// `"last"`: the last token of each prompt (padding excluded).
    Last,
    /// A named position of the dataset, e.g. `"END"` or `"S2"` for the `ioi` generator.
    Named(String),
    /// A token index; negative values count from the end (`-1` is the last token).
    Index(i64),
}

impl fmt::Display for PositionSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PositionSpec::First => f.write_str("first"),
            PositionSpec::Last => f.write_str("last"),
            PositionSpec::Named(n) => f.write_str(n),
            PositionSpec::Index(i) => write!(f, "{i}"),
        }
    }
}

impl Serialize for PositionSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            PositionSpec::Index(i) => s.serialize_i64(*i),
            other => s.serialize_str(&other.to_string()),
        }
    }
}

struct PositionRefVisitor;

impl Visitor<'_> for PositionRefVisitor {
    type Value = PositionSpec;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a position: \"first\", \"last\", a named position or an integer index")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<PositionSpec, E> {
        match v {
            "first" => Ok(PositionSpec::First),
            "last" => Ok(PositionSpec::Last),
            "all" => Err(E::custom(
                "\"all\" selects several positions, but this key takes exactly one",
            )),
            "" => Err(E::custom("a position name cannot be empty")),
            name => Ok(PositionSpec::Named(name.to_string())),
        }
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<PositionSpec, E> {
        Ok(PositionSpec::Index(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<PositionSpec, E> {
        i64::try_from(v)
            .map(PositionSpec::Index)
            .map_err(|_| E::custom("position index out of range"))
    }
}

impl<'de> Deserialize<'de> for PositionSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(PositionRefVisitor)
    }
}

impl JsonSchema for PositionSpec {
    fn schema_name() -> Cow<'static, str> {
        "PositionRef".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "title": "position",
            "description": "One token position: \"first\", \"last\", a named position of the dataset (the ioi generator names IO, S1, S2 and END) or an integer token index (negative counts from the end: -1 is the last token).",
            "anyOf": [
                { "type": "string", "minLength": 1, "not": { "const": "all" }, "examples": ["last", "first", "END", "S2"] },
                { "type": "integer" }
            ]
        })
    }
}

impl ListItem for PositionSpec {
    const ALONE: Alone = Alone {
        strings: true,
        integers: true,
        ..Alone::NOWHERE
    };

    fn schema(g: &mut SchemaGenerator) -> Schema {
        g.subschema_for::<PositionSpec>()
    }
}

// ---------------------------------------------------------------------------------------------
// PositionsSpec

// As written; not `circuitry_models::BatchPositions`, the slots of a padded batch an edit touches.
/// A set of positions: `"all"`, one [`PositionSpec`], or a list of them.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub enum PositionsSpec {
    /// `"all"`: every position of every prompt.
    #[default]
    All,
    /// The listed positions (a single position is a list of one).
    List(Vec<PositionSpec>),
}

keyword_or_list! {
    PositionsSpec: "all" => All, [PositionSpec] => List;

    const SCHEMA_NAME: &'static str = "Positions";
    const TITLE: &'static str = "positions";
    const DESCRIPTION: &'static str =
        "A set of token positions: \"all\", one position, or a list of positions.";
    const EXPECTING: &'static str = "\"all\", a position or a list of positions";
    const EMPTY_LIST: &'static str =
        "an empty list selects no position; write \"all\" or list at least one";
}

impl PositionsSpec {
    /// Only the last position.
    pub fn last() -> Self {
        PositionsSpec::List(vec![PositionSpec::Last])
    }

    /// The listed positions, or `None` for `"all"`.
    pub fn as_list(&self) -> Option<&[PositionSpec]> {
        match self {
            PositionsSpec::All => None,
            PositionsSpec::List(l) => Some(l),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// TokenSpec

/// One vocabulary token.
// As written: literal text is tokenized by the analyses (the interventions' resolved token is
// `circuitry_circuits::interventions::TokenRef`, an answer name or an id).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TokenSpec {
    /// A string: an answer token of the dataset (e.g. `"IO"` or `"S"` for the ioi generator).
    Answer(String),
    /// `{ text = " Mary" }`: literal text that must tokenize to exactly one token.
    Text(String),
    /// `{ id = 5 }`: a raw token id.
    Id(u32),
}

impl fmt::Display for TokenSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenSpec::Answer(a) => write!(f, "{a}"),
            TokenSpec::Text(t) => {
                write!(f, "{{ text = {} }}", serde_json::Value::String(t.clone()))
            }
            TokenSpec::Id(i) => write!(f, "{{ id = {i} }}"),
        }
    }
}

impl Serialize for TokenSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            TokenSpec::Answer(a) => s.serialize_str(a),
            TokenSpec::Text(t) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("text", t)?;
                m.end()
            }
            TokenSpec::Id(i) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("id", i)?;
                m.end()
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRefTable {
    text: Option<String>,
    id: Option<u32>,
}

struct TokenRefVisitor;

impl<'de> Visitor<'de> for TokenRefVisitor {
    type Value = TokenSpec;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a token: an answer name, { text = \"...\" } or { id = N }")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<TokenSpec, E> {
        if v.is_empty() {
            return Err(E::custom(
                "an answer name cannot be empty (for literal text write { text = \"...\" })",
            ));
        }
        Ok(TokenSpec::Answer(v.to_string()))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<TokenSpec, E> {
        Err(E::custom(format_args!(
            "a bare integer is not a token; write a raw token id as {{ id = {v} }}"
        )))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<TokenSpec, E> {
        self.visit_i64(v as i64)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<TokenSpec, A::Error> {
        let t = TokenRefTable::deserialize(MapAccessDeserializer::new(map))?;
        match (t.text, t.id) {
            (Some(text), None) if !text.is_empty() => Ok(TokenSpec::Text(text)),
            (Some(_), None) => Err(de::Error::custom("token text cannot be empty")),
            (None, Some(id)) => Ok(TokenSpec::Id(id)),
            _ => Err(de::Error::custom(
                "a token table needs exactly one of `text` or `id`",
            )),
        }
    }
}

impl<'de> Deserialize<'de> for TokenSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TokenRefVisitor)
    }
}

impl JsonSchema for TokenSpec {
    fn schema_name() -> Cow<'static, str> {
        "TokenRef".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "title": "token",
            "description": "One token: a string names an answer token of the dataset (the ioi generator defines IO and S); { text = \" Mary\" } is literal text that must be exactly one token; { id = 5 } is a raw token id.",
            "anyOf": [
                { "type": "string", "minLength": 1, "description": "An answer name of the dataset, e.g. \"IO\"." },
                {
                    "type": "object",
                    "properties": { "text": { "type": "string", "minLength": 1, "description": "Literal text that must tokenize to exactly one token." } },
                    "required": ["text"],
                    "additionalProperties": false
                },
                {
                    "type": "object",
                    "properties": { "id": { "type": "integer", "minimum": 0, "description": "A raw token id." } },
                    "required": ["id"],
                    "additionalProperties": false
                }
            ]
        })
    }
}

impl ListItem for TokenSpec {
    const ALONE: Alone = Alone {
        strings: true,
        integers: true,
        tables: true,
    };

    fn schema(g: &mut SchemaGenerator) -> Schema {
        g.subschema_for::<TokenSpec>()
    }
}

// ---------------------------------------------------------------------------------------------
// TokenSelection

/// Which tokens an analysis reports on: the actual next token, or a fixed list.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TokenSelection {
    /// `"next"`: the token that actually follows each position in the prompt.
    Next,
    /// The listed tokens (a single token is a list of one).
    Tokens(Vec<TokenSpec>),
}

keyword_or_list! {
    TokenSelection: "next" => Next, [TokenSpec] => Tokens;

    const SCHEMA_NAME: &'static str = "TokenSelection";
    const TITLE: &'static str = "tokens";
    const DESCRIPTION: &'static str =
        "\"next\" (the token that actually follows each position) or a list of tokens.";
    const EXPECTING: &'static str = "\"next\" or a list of tokens";
    const EMPTY_LIST: &'static str =
        "an empty list selects no token; write \"next\" or list at least one";
}

// ---------------------------------------------------------------------------------------------
// Target

/// What a logit attribution explains.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// `"next"`: the logit of the token that actually follows the explained position.
    Next,
    /// `{ token = TokenSpec }`: the logit of one token.
    Token(TokenSpec),
    /// `{ diff = [A, B] }`: the logit difference `logit(A) - logit(B)`.
    Diff(TokenSpec, TokenSpec),
}

impl Serialize for Target {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Target::Next => s.serialize_str("next"),
            Target::Token(t) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("token", t)?;
                m.end()
            }
            Target::Diff(a, b) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("diff", &[a, b])?;
                m.end()
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetTable {
    token: Option<TokenSpec>,
    diff: Option<[TokenSpec; 2]>,
}

struct TargetVisitor;

impl<'de> Visitor<'de> for TargetVisitor {
    type Value = Target;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"next\", { token = ... } or { diff = [..., ...] }")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Target, E> {
        if v == "next" {
            Ok(Target::Next)
        } else {
            Err(E::custom(format_args!(
                "expected \"next\", {{ token = ... }} or {{ diff = [..., ...] }}, found string {}; \
                 to explain an answer token write {{ token = {} }}",
                serde_json::Value::String(v.into()),
                serde_json::Value::String(v.into())
            )))
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Target, A::Error> {
        let t = TargetTable::deserialize(MapAccessDeserializer::new(map))?;
        match (t.token, t.diff) {
            (Some(token), None) => Ok(Target::Token(token)),
            (None, Some([a, b])) => Ok(Target::Diff(a, b)),
            _ => Err(de::Error::custom(
                "a target table needs exactly one of `token` or `diff`",
            )),
        }
    }
}

impl<'de> Deserialize<'de> for Target {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TargetVisitor)
    }
}

impl JsonSchema for Target {
    fn schema_name() -> Cow<'static, str> {
        "Target".into()
    }

    fn json_schema(g: &mut SchemaGenerator) -> Schema {
        let token = g.subschema_for::<TokenSpec>();
        json_schema!({
            "title": "target",
            "description": "What a logit attribution explains: \"next\" (the token that actually follows the position), { token = T } (the logit of one token) or { diff = [A, B] } (the logit difference A - B).",
            "anyOf": [
                { "const": "next" },
                {
                    "type": "object",
                    "properties": { "token": { "description": "The token whose logit is explained.", "allOf": [token] } },
                    "required": ["token"],
                    "additionalProperties": false
                },
                {
                    "type": "object",
                    "properties": { "diff": { "description": "[A, B]: explain logit(A) - logit(B).", "type": "array", "items": token, "minItems": 2, "maxItems": 2 } },
                    "required": ["diff"],
                    "additionalProperties": false
                }
            ]
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Metric

/// What an intervention measures on the model's output, optionally normalized.
///
/// Forms: `"loss"`, `"kl"`, or a table with exactly one of `logit_diff = [A, B]`,
/// `logprob = T`, `prob = T`, `loss = true`, `kl = true`, `icl_score = [EARLY, LATE]`, `top1 = T`, plus `normalize = true|false`
/// (default false). Normalized, a metric reads `(m(patched) - m(corrupt)) / (m(clean) -
/// m(corrupt))`: 1 means the clean behaviour is fully restored, 0 not at all.
// As written; `circuitry_circuits::interventions::Metric` is the same metric with its tokens
// tokenized and its position resolved to a `MetricPosition`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MetricSpec {
    /// The raw quantity.
    pub measure: Measure,
    /// Report it normalized between the corrupt (0) and clean (1) baselines.
    pub normalize: bool,
}

/// The raw quantity of a [`MetricSpec`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Measure {
    /// `logit(A) - logit(B)` at the measured position.
    LogitDiff(TokenSpec, TokenSpec),
    /// `log p(T)` at the measured position.
    Logprob(TokenSpec),
    /// `p(T)` at the measured position.
    Prob(TokenSpec),
    /// Mean next-token cross-entropy loss over the prompt.
    Loss,
    /// Olsson et al.'s in-context learning score: the loss on token `late` minus the loss on
    /// token `early` (token indices, `1 <= early < late`).
    IclScore { early: u32, late: u32 },
    /// KL divergence of the intervened model's next-token distribution from the clean one.
    Kl,
    /// 1 when `T` is the model's top prediction at the measured position, else 0: averaged over
    /// prompts, accuracy; on counterfactual pairs with `T = "counterfactual"`, interchange
    /// intervention accuracy.
    Top1(TokenSpec),
}

impl Serialize for MetricSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        match &self.measure {
            Measure::LogitDiff(a, b) => m.serialize_entry("logit_diff", &[a, b])?,
            Measure::Logprob(t) => m.serialize_entry("logprob", t)?,
            Measure::Prob(t) => m.serialize_entry("prob", t)?,
            Measure::Loss => m.serialize_entry("loss", &true)?,
            Measure::IclScore { early, late } => m.serialize_entry("icl_score", &[early, late])?,
            Measure::Kl => m.serialize_entry("kl", &true)?,
            Measure::Top1(t) => m.serialize_entry("top1", t)?,
        }
        m.serialize_entry("normalize", &self.normalize)?;
        m.end()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricTable {
    logit_diff: Option<[TokenSpec; 2]>,
    logprob: Option<TokenSpec>,
    prob: Option<TokenSpec>,
    loss: Option<bool>,
    kl: Option<bool>,
    icl_score: Option<[u32; 2]>,
    top1: Option<TokenSpec>,
    #[serde(default)]
    normalize: bool,
}

struct MetricVisitor;

impl<'de> Visitor<'de> for MetricVisitor {
    type Value = MetricSpec;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"loss\", \"kl\" or a metric table")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<MetricSpec, E> {
        let measure = match v {
            "loss" => Measure::Loss,
            "kl" => Measure::Kl,
            _ => return Err(E::unknown_variant(v, &["loss", "kl"])),
        };
        Ok(MetricSpec {
            measure,
            normalize: false,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<MetricSpec, A::Error> {
        let t = MetricTable::deserialize(MapAccessDeserializer::new(map))?;
        let mut measures = Vec::new();
        if let Some([a, b]) = t.logit_diff {
            measures.push(Measure::LogitDiff(a, b));
        }
        if let Some(tok) = t.logprob {
            measures.push(Measure::Logprob(tok));
        }
        if let Some(tok) = t.prob {
            measures.push(Measure::Prob(tok));
        }
        if let Some([early, late]) = t.icl_score {
            measures.push(Measure::IclScore { early, late });
        }
        if let Some(tok) = t.top1 {
            measures.push(Measure::Top1(tok));
        }
        for (flag, measure, name) in [(t.loss, Measure::Loss, "loss"), (t.kl, Measure::Kl, "kl")] {
            match flag {
                Some(true) => measures.push(measure),
                Some(false) => {
                    return Err(de::Error::custom(format_args!(
                        "`{name} = false` means nothing: write `{name} = true` or another measure"
                    )));
                }
                None => {}
            }
        }
        if measures.len() != 1 {
            return Err(de::Error::custom(
                "a metric table needs exactly one of `logit_diff`, `logprob`, `prob`, `loss`, `kl`, `icl_score` or `top1`",
            ));
        }
        Ok(MetricSpec {
            measure: measures.remove(0),
            normalize: t.normalize,
        })
    }
}

impl<'de> Deserialize<'de> for MetricSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(MetricVisitor)
    }
}

impl JsonSchema for MetricSpec {
    fn schema_name() -> Cow<'static, str> {
        "Metric".into()
    }

    fn json_schema(g: &mut SchemaGenerator) -> Schema {
        let token = g.subschema_for::<TokenSpec>();
        let normalize = json_schema!({
            "type": "boolean",
            "default": false,
            "description": "Report (m(patched) - m(corrupt)) / (m(clean) - m(corrupt)): 1 = clean behaviour restored, 0 = none."
        });
        let one = |key: &str, value: Schema, doc: &str| {
            json_schema!({
                "type": "object",
                "description": doc,
                "properties": {
                    key: { "description": doc, "allOf": [value] },
                    "normalize": normalize.clone()
                },
                "required": [key],
                "additionalProperties": false
            })
        };
        json_schema!({
            "title": "metric",
            "description": "What an intervention measures: \"loss\", \"kl\", or a table with exactly one of logit_diff = [A, B], logprob = T, prob = T, loss = true, kl = true, icl_score = [EARLY, LATE], top1 = T, and optionally normalize = true.",
            "anyOf": [
                { "enum": ["loss", "kl"] },
                one("logit_diff", json_schema!({ "type": "array", "items": token.clone(), "minItems": 2, "maxItems": 2 }), "logit(A) - logit(B) at the measured position."),
                one("logprob", token.clone(), "log p(T) at the measured position."),
                one("prob", token.clone(), "p(T) at the measured position."),
                one("top1", token, "1 when T is the top prediction at the measured position, else 0 (accuracy; interchange intervention accuracy on counterfactual pairs with T = \"counterfactual\")."),
                one("loss", json_schema!({ "const": true }), "Mean next-token cross-entropy loss."),
                one("kl", json_schema!({ "const": true }), "KL divergence from the clean next-token distribution."),
                one("icl_score", json_schema!({ "type": "array", "items": { "type": "integer", "minimum": 1 }, "minItems": 2, "maxItems": 2 }), "In-context learning score (Olsson et al. 2022): the loss on token LATE minus the loss on token EARLY (token indices, 1 <= EARLY < LATE).")
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::de::from_node;
    use crate::diagnostic::Sources;
    use crate::node::parse_document;

    fn parse<T: serde::de::DeserializeOwned>(value: &str) -> Result<T, String> {
        let sources = Sources {
            file_path: "t.toml".into(),
            file_text: format!("v = {value}\n"),
            overrides: vec![],
        };
        let root = parse_document(&sources).map_err(|d| d.message)?;
        from_node::<T>(root.get("v").unwrap(), "v")
            .map_err(|e| e.into_diagnostic(&sources, &[]).message)
    }

    #[test]
    fn positions_forms() {
        assert_eq!(
            parse::<PositionsSpec>("\"all\"").unwrap(),
            PositionsSpec::All
        );
        assert_eq!(
            parse::<PositionsSpec>("\"last\"").unwrap(),
            PositionsSpec::last()
        );
        assert_eq!(
            parse::<PositionsSpec>("[\"last\"]").unwrap(),
            PositionsSpec::last()
        );
        assert_eq!(
            parse::<PositionsSpec>("[-1, \"END\", 0]").unwrap(),
            PositionsSpec::List(vec![
                PositionSpec::Index(-1),
                PositionSpec::Named("END".into()),
                PositionSpec::Index(0)
            ])
        );
        assert!(
            parse::<PositionsSpec>("[]")
                .unwrap_err()
                .contains("empty list")
        );
        assert!(
            parse::<PositionSpec>("\"all\"")
                .unwrap_err()
                .contains("exactly one")
        );
        assert!(parse::<PositionSpec>("1.5").is_err());
    }

    #[test]
    fn token_forms() {
        assert_eq!(
            parse::<TokenSpec>("\"IO\"").unwrap(),
            TokenSpec::Answer("IO".into())
        );
        assert_eq!(
            parse::<TokenSpec>("{ text = \" Mary\" }").unwrap(),
            TokenSpec::Text(" Mary".into())
        );
        assert_eq!(parse::<TokenSpec>("{ id = 5 }").unwrap(), TokenSpec::Id(5));
        assert!(parse::<TokenSpec>("5").unwrap_err().contains("{ id = 5 }"));
        assert!(parse::<TokenSpec>("{ id = 5, text = \"a\" }").is_err());
        assert!(
            parse::<TokenSpec>("{ idd = 5 }")
                .unwrap_err()
                .contains("unknown key `idd`")
        );
        assert_eq!(
            parse::<TokenSelection>("\"next\"").unwrap(),
            TokenSelection::Next
        );
        assert_eq!(
            parse::<TokenSelection>("\"IO\"").unwrap(),
            TokenSelection::Tokens(vec![TokenSpec::Answer("IO".into())])
        );
    }

    #[test]
    fn target_and_metric_forms() {
        assert_eq!(parse::<Target>("\"next\"").unwrap(), Target::Next);
        assert_eq!(
            parse::<Target>("{ diff = [\"IO\", \"S\"] }").unwrap(),
            Target::Diff(
                TokenSpec::Answer("IO".into()),
                TokenSpec::Answer("S".into())
            )
        );
        assert!(
            parse::<Target>("\"IO\"")
                .unwrap_err()
                .contains("{ token = \"IO\" }")
        );
        assert!(parse::<Target>("{ diff = [\"IO\"] }").is_err());
        assert_eq!(
            parse::<MetricSpec>("{ logit_diff = [\"IO\", \"S\"], normalize = true }").unwrap(),
            MetricSpec {
                measure: Measure::LogitDiff(
                    TokenSpec::Answer("IO".into()),
                    TokenSpec::Answer("S".into())
                ),
                normalize: true
            }
        );
        assert_eq!(parse::<MetricSpec>("\"kl\"").unwrap().measure, Measure::Kl);
        assert_eq!(
            parse::<MetricSpec>("{ loss = true }").unwrap().measure,
            Measure::Loss
        );
        assert!(parse::<MetricSpec>("{ loss = false }").is_err());
        assert!(parse::<MetricSpec>("{ logprob = \"IO\", prob = \"IO\" }").is_err());
        assert!(
            parse::<MetricSpec>("\"los\"")
                .unwrap_err()
                .contains("unknown value")
        );
    }

    #[test]
    fn serialization_is_canonical() {
        let p = parse::<PositionsSpec>("\"last\"").unwrap();
        assert_eq!(serde_json::to_string(&p).unwrap(), "[\"last\"]");
        let m = parse::<MetricSpec>("\"loss\"").unwrap();
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            "{\"loss\":true,\"normalize\":false}"
        );
        let t = parse::<Target>("{ token = { id = 3 } }").unwrap();
        assert_eq!(serde_json::to_string(&t).unwrap(), "{\"token\":{\"id\":3}}");
    }
}
