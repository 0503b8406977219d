//! `[datasets.NAME]`: where prompts come from. Each dataset has exactly one source: a
//! `generator` (`repeated_tokens`, `ioi`), inline `prompts`, or a `file`. The spec only describes
//! them; the data crate generates, reads and tokenizes.

use std::borrow::Cow;
use std::fmt;

use indexmap::IndexMap;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, MapAccess, Visitor, value::MapAccessDeserializer};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::de::{from_entries, from_node};
use crate::diagnostic::{did_you_mean, list};
use crate::node::{Entry, Node, join_path};
use crate::validate::{Checker, Ctx};

/// A dataset: its source and the options every dataset has.
#[derive(Clone, Debug, PartialEq)]
pub struct DatasetSpec {
    /// Where the prompts come from.
    pub source: DatasetSource,
    /// Prepend the model's BOS token to every prompt (and to its corrupted counterpart).
    pub prepend_bos: bool,
}

/// The source of a dataset's prompts.
#[derive(Clone, Debug, PartialEq)]
pub enum DatasetSource {
    /// `generator = "repeated_tokens"`.
    RepeatedTokens(RepeatedTokens),
    /// `generator = "ioi"`.
    Ioi(Ioi),
    /// `prompts = [...]`.
    Prompts(InlinePrompts),
    /// `tokens = [[...], ...]`.
    Tokens(InlineTokens),
    /// `file = "..."`.
    File(FileDataset),
}

/// The generators, by `generator` name.
pub const GENERATORS: &[&str] = &["repeated_tokens", "ioi"];

/// Keys every dataset may have, besides its source's own.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DatasetCommon {
    /// Prepend the model's BOS token to every prompt. Default: true for generators, false for
    /// `prompts` and `file` datasets.
    #[serde(default)]
    pub prepend_bos: Option<bool>,
}

const COMMON_KEYS: &[&str] = &["prepend_bos"];
const SOURCE_KEYS: &[&str] = &["generator", "prompts", "tokens", "file"];

/// Random token sequences repeated back to back: the standard probe for induction heads.
///
/// Each prompt draws `length` tokens uniformly at random and repeats them `repeats` times, so a
/// prompt has `length * repeats` tokens (plus BOS). Default `prepend_bos`: true.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RepeatedTokens {
    /// Number of prompts (> 0).
    #[schemars(range(min = 1))]
    pub n: u32,
    /// Random tokens per repeat (> 0).
    #[schemars(range(min = 1))]
    pub length: u32,
    /// How many times the random sequence occurs in each prompt (> 0).
    #[schemars(range(min = 1))]
    #[serde(default = "default_repeats")]
    pub repeats: u32,
    /// `[lo, hi)`: draw token ids from this half-open range. Default: the whole vocabulary except
    /// the special tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_range: Option<[u32; 2]>,
    /// Generator seed. Default: derived from the experiment's `seed` and the dataset's name (after
    /// loading, always set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

fn default_repeats() -> u32 {
    2
}

/// IOI-style sentences ("When Mary and John went to the store, John gave a drink to") with
/// counterfactual (corrupt) pairs.
///
/// Named positions: `IO` (the indirect object's name), `S1` and `S2` (the subject's first and
/// second mention) and `END` (the last token, where the answer is predicted). Answers: `IO`
/// (the correct completion, " Mary") and `S` (the subject, " John"). Default `prepend_bos`: true.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Ioi {
    /// Number of prompts (> 0).
    #[schemars(range(min = 1))]
    pub n: u32,
    /// Names to draw IO and S from, written without the leading space (a leading space is
    /// ignored). In sentences a name follows a space, so " Mary" must be a single token.
    /// Default: the 99 first names of the paper's public code (`ioi_dataset.py`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub names: Option<Vec<String>>,
    /// Sentence templates. Placeholders: `{IO}` once, `{S}` exactly twice, and optionally
    /// `{PLACE}` and `{OBJECT}`. A template ends just before the answer (e.g. "... gave it to").
    /// Default: the paper's 15 BABA templates and their 15 ABBA versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub templates: Option<Vec<String>>,
    /// Values for `{PLACE}`. Default: the paper's 8 places.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub places: Option<Vec<String>>,
    /// Values for `{OBJECT}`. Default: the paper's 8 objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objects: Option<Vec<String>>,
    /// The counterfactual prompt paired with each clean one: "abc" replaces IO, S1 and S2 by
    /// three other distinct names (the ABC distribution of Wang et al., 2022); "swap" exchanges
    /// IO and S throughout, so the correct answer flips; "s2_io" replaces the second mention of S
    /// by IO; "none" makes no corrupt prompts.
    #[serde(default)]
    pub corrupt: IoiCorruption,
    /// Drop names that are not a single token (with their leading space) under the model's
    /// tokenizer instead of failing; the names left must still be enough.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skip_multi_token_names: bool,
    /// Generator seed. Default: derived from the experiment's `seed` and the dataset's name (after
    /// loading, always set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

/// How the `ioi` generator builds each prompt's counterfactual.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum IoiCorruption {
    /// IO, S1 and S2 replaced by three other distinct names (default).
    #[default]
    Abc,
    /// IO and S exchanged everywhere: the correct answer flips from IO to S.
    Swap,
    /// The second mention of S replaced by IO, so the repeated name (and the answer) flips.
    S2Io,
    /// No corrupt prompts.
    #[serde(rename = "none")]
    NoCorruption,
}

impl IoiCorruption {
    /// The value as written in the file.
    pub fn name(self) -> &'static str {
        match self {
            IoiCorruption::Abc => "abc",
            IoiCorruption::Swap => "swap",
            IoiCorruption::S2Io => "s2_io",
            IoiCorruption::NoCorruption => "none",
        }
    }
}

/// The named positions of `ioi` prompts.
pub const IOI_POSITIONS: &[&str] = &["IO", "S1", "S2", "END"];
/// The named positions of `repeated_tokens` prompts: the first random token, and the first
/// token of the second repeat.
pub const REPEATED_POSITIONS: &[&str] = &["seq_start", "repeat_start"];
/// The answers of `ioi` prompts.
pub const IOI_ANSWERS: &[&str] = &["IO", "S"];

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Prompts written in the experiment file. Default `prepend_bos`: false.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InlinePrompts {
    /// The prompts: plain strings, or records `{ text, corrupt, answers }`. Records with answers
    /// must all name the same answers; analyses that use answers need every prompt to have them.
    pub prompts: Vec<Prompt>,
}

/// One inline prompt. A plain string is a prompt with no counterfactual and no answers.
/// Prompts given directly as token ids (no tokenizer involved), e.g. for models whose tokenizer
/// has no text form or to reproduce exact inputs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InlineTokens {
    /// One list of token ids per prompt (each list non-empty).
    pub tokens: Vec<Vec<u32>>,
    /// Counterfactual token ids: one list per prompt, each as long as its prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corrupt_tokens: Option<Vec<Vec<u32>>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "PromptRecord")]
pub struct Prompt {
    /// The prompt text.
    pub text: String,
    /// The counterfactual prompt for patching (should tokenize to as many tokens as `text`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corrupt: Option<String>,
    /// Named answer tokens, e.g. `{ IO = " Mary", S = " John" }`: each text must be one token.
    /// Analyses refer to them by name (`target = { diff = ["IO", "S"] }`).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub answers: IndexMap<String, String>,
}

fn prompt_from_string_or_table<'de, D: Deserializer<'de>>(d: D) -> Result<Prompt, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Prompt;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a prompt string or a { text, corrupt, answers } table")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Prompt, E> {
            Ok(Prompt {
                text: v.to_string(),
                corrupt: None,
                answers: IndexMap::new(),
            })
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Prompt, A::Error> {
            Prompt::deserialize(MapAccessDeserializer::new(map))
        }
    }
    d.deserialize_any(V)
}

/// A prompt as written: a string or a record (see [`Prompt`]).
struct PromptInput(Prompt);

impl<'de> Deserialize<'de> for PromptInput {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        prompt_from_string_or_table(d).map(PromptInput)
    }
}

impl JsonSchema for PromptInput {
    fn schema_name() -> Cow<'static, str> {
        "Prompt".into()
    }
    fn json_schema(g: &mut SchemaGenerator) -> Schema {
        let record = g.subschema_for::<Prompt>();
        json_schema!({
            "description": "A prompt: a plain string, or a record { text, corrupt, answers }.",
            "anyOf": [ { "type": "string" }, record ]
        })
    }
}

// `prompts` as written (strings or records); parsing turns it into `InlinePrompts`.
/// Prompts written in the experiment file. Default `prepend_bos`: false.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "InlinePrompts")]
struct InlinePromptsInput {
    /// The prompts: plain strings, or records `{ text, corrupt, answers }`. Records with answers
    /// must all name the same answers; analyses that use answers need every prompt to have them.
    prompts: Vec<PromptInput>,
}

/// Prompts read from a file, one per row. Default `prepend_bos`: false.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileDataset {
    /// The file: `.jsonl`, `.csv` or `.parquet`, relative to the experiment file's directory
    /// (`~` is the home directory).
    pub file: String,
    /// File format. Default: inferred from the extension (after loading, always set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<FileFormat>,
    /// The column (JSONL: key) holding the prompt text.
    #[serde(default = "default_text_column")]
    pub text_column: String,
    /// The column holding each prompt's counterfactual, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corrupt_column: Option<String>,
    /// Named answer tokens: answer name -> column, e.g. `{ IO = "io", S = "s" }`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub answer_columns: IndexMap<String, String>,
    /// Read only the first N rows (> 0).
    #[schemars(range(min = 1))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
}

fn default_text_column() -> String {
    "text".to_string()
}

/// The format of a dataset file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FileFormat {
    /// One JSON object per line.
    Jsonl,
    /// Comma-separated values with a header row.
    Csv,
    /// Apache Parquet.
    Parquet,
}

impl FileFormat {
    /// The format for a file name's extension, if it is one of ours.
    pub fn from_extension(file: &str) -> Option<FileFormat> {
        let ext = std::path::Path::new(file)
            .extension()?
            .to_str()?
            .to_ascii_lowercase();
        match ext.as_str() {
            "jsonl" | "ndjson" => Some(FileFormat::Jsonl),
            "csv" => Some(FileFormat::Csv),
            "parquet" | "pq" => Some(FileFormat::Parquet),
            _ => None,
        }
    }
}

impl DatasetSpec {
    /// The source's name: `repeated_tokens`, `ioi`, `prompts` or `file`.
    pub fn source_name(&self) -> &'static str {
        match &self.source {
            DatasetSource::RepeatedTokens(_) => "repeated_tokens",
            DatasetSource::Ioi(_) => "ioi",
            DatasetSource::Prompts(_) => "prompts",
            DatasetSource::Tokens(_) => "tokens",
            DatasetSource::File(_) => "file",
        }
    }

    /// Whether the prompts come from a generator.
    pub fn is_generated(&self) -> bool {
        matches!(
            self.source,
            DatasetSource::RepeatedTokens(_) | DatasetSource::Ioi(_)
        )
    }

    /// Named positions analyses may refer to (`position = "END"`).
    pub fn named_positions(&self) -> &'static [&'static str] {
        match &self.source {
            DatasetSource::Ioi(_) => IOI_POSITIONS,
            DatasetSource::RepeatedTokens(_) => REPEATED_POSITIONS,
            _ => &[],
        }
    }

    /// Answer names analyses may refer to (`target = { token = "IO" }`). For inline prompts, the
    /// names of the prompts that have answers (all of them must name the same ones).
    pub fn answer_names(&self) -> Vec<String> {
        match &self.source {
            DatasetSource::Ioi(_) => strings(IOI_ANSWERS),
            DatasetSource::RepeatedTokens(_) | DatasetSource::Tokens(_) => Vec::new(),
            DatasetSource::Prompts(p) => p
                .prompts
                .iter()
                .find(|p| !p.answers.is_empty())
                .map(|p| p.answers.keys().cloned().collect())
                .unwrap_or_default(),
            DatasetSource::File(f) => f.answer_columns.keys().cloned().collect(),
        }
    }

    /// Whether every prompt has a counterfactual (corrupt) prompt.
    pub fn has_corrupt(&self) -> bool {
        match &self.source {
            DatasetSource::RepeatedTokens(_) => false,
            DatasetSource::Ioi(i) => i.corrupt != IoiCorruption::NoCorruption,
            DatasetSource::Prompts(p) => p.prompts.iter().all(|p| p.corrupt.is_some()),
            DatasetSource::Tokens(t) => t.corrupt_tokens.is_some(),
            DatasetSource::File(f) => f.corrupt_column.is_some(),
        }
    }

    /// The number of prompts when it is known without reading anything (`None` for files).
    pub fn prompt_count(&self) -> Option<u64> {
        match &self.source {
            DatasetSource::RepeatedTokens(r) => Some(r.n.into()),
            DatasetSource::Ioi(i) => Some(i.n.into()),
            DatasetSource::Prompts(p) => Some(p.prompts.len() as u64),
            DatasetSource::Tokens(t) => Some(t.tokens.len() as u64),
            DatasetSource::File(_) => None,
        }
    }

    /// The generator seed (set for generators after loading; `None` for other sources).
    pub fn seed(&self) -> Option<u64> {
        match &self.source {
            DatasetSource::RepeatedTokens(r) => r.seed,
            DatasetSource::Ioi(i) => i.seed,
            _ => None,
        }
    }
}

impl Serialize for DatasetSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::Error;
        let (generator, body) = match &self.source {
            DatasetSource::RepeatedTokens(r) => (Some("repeated_tokens"), serde_json::to_value(r)),
            DatasetSource::Ioi(i) => (Some("ioi"), serde_json::to_value(i)),
            DatasetSource::Prompts(p) => (None, serde_json::to_value(p)),
            DatasetSource::Tokens(t) => (None, serde_json::to_value(t)),
            DatasetSource::File(f) => (None, serde_json::to_value(f)),
        };
        let body = body.map_err(S::Error::custom)?;
        let mut map = serde_json::Map::new();
        if let Some(g) = generator {
            map.insert("generator".into(), g.into());
        }
        if let serde_json::Value::Object(fields) = body {
            map.extend(fields);
        }
        map.insert("prepend_bos".into(), self.prepend_bos.into());
        map.serialize(s)
    }
}

/// The schema of a dataset table: one branch per source, each with the common keys.
pub(crate) fn dataset_schema(g: &mut SchemaGenerator) -> Schema {
    let common = DatasetCommon::json_schema(g);
    let generator = |name: &str, doc: &str| json_schema!({ "const": name, "description": format!("The generator: {doc}") });
    let branches = vec![
        crate::schema::merge_branch(
            RepeatedTokens::json_schema(g),
            &[(
                "generator",
                generator(
                    "repeated_tokens",
                    "random token sequences repeated back to back.",
                ),
            )],
            &common,
            "repeated_tokens generator",
        ),
        crate::schema::merge_branch(
            Ioi::json_schema(g),
            &[(
                "generator",
                generator("ioi", "IOI sentences with counterfactual pairs."),
            )],
            &common,
            "ioi generator",
        ),
        crate::schema::merge_branch(
            InlinePromptsInput::json_schema(g),
            &[],
            &common,
            "inline prompts",
        ),
        crate::schema::merge_branch(
            InlineTokens::json_schema(g),
            &[],
            &common,
            "inline token ids",
        ),
        crate::schema::merge_branch(
            FileDataset::json_schema(g),
            &[],
            &common,
            "prompts from a file",
        ),
    ];
    json_schema!({
        "description": "A dataset of prompts with exactly one source: `generator = \"repeated_tokens\"` or `\"ioi\"`, inline `prompts = [...]`, inline `tokens = [[...]]`, or `file = \"...\"` (.jsonl, .csv, .parquet).",
        "oneOf": branches
    })
}

/// Builds a dataset from its table, reporting problems to `ctx`. `experiment_seed` feeds the
/// default generator seed.
pub(crate) fn lower(
    name: &str,
    node: &Node,
    experiment_seed: u64,
    ctx: &mut Ctx<'_>,
) -> Option<DatasetSpec> {
    let path = join_path("datasets", name);
    let Some(entries) = node.as_table() else {
        ctx.error(
            &node.span,
            format!(
                "`{path}` must be a table, found {}",
                node.value.a_type_name()
            ),
        )
        .hint = Some(format!("write it as a [{path}] section"));
        return None;
    };
    let sources: Vec<&Entry> = entries
        .iter()
        .filter(|e| SOURCE_KEYS.contains(&e.key.as_str()))
        .collect();
    if sources.len() > 1 {
        let names: Vec<&str> = sources.iter().map(|e| e.key.as_str()).collect();
        ctx.error(
            &sources[1].key_span,
            format!("dataset `{name}` has more than one source ({})", list(names.iter().map(|n| format!("`{n}`")))),
        )
        .hint = Some("a dataset has exactly one of `generator`, `prompts` or `file`; define one dataset per source".into());
        return None;
    }
    let Some(source_entry) = sources.first() else {
        let d = ctx.error(&node.span, format!("dataset `{name}` has no source"));
        d.hint = Some(
            "add one of: generator = \"repeated_tokens\" | \"ioi\", prompts = [\"...\"], file = \"prompts.jsonl\""
                .into(),
        );
        let valid: Vec<&str> = SOURCE_KEYS.to_vec();
        for e in entries {
            if let Some(s) = did_you_mean(&e.key, &valid) {
                d.hint = Some(format!("did you mean `{s}` instead of `{}`?", e.key));
                break;
            }
        }
        return None;
    };

    let (common, rest): (Vec<Entry>, Vec<Entry>) = entries
        .iter()
        .filter(|e| e.key != "generator")
        .cloned()
        .partition(|e| COMMON_KEYS.contains(&e.key.as_str()));
    let common = match from_entries::<DatasetCommon>(common, &node.span, &path) {
        Ok(c) => Some(c),
        Err(e) => {
            ctx.de_error(e, &[]);
            None
        }
    };
    let rest = Node::table(rest, node.span.clone());
    let extra: Vec<&str> = COMMON_KEYS
        .iter()
        .chain(["generator"].iter())
        .copied()
        .collect();
    let derived_seed = || derive_seed(experiment_seed, "datasets", name);

    let source = match source_entry.key.as_str() {
        "generator" => {
            let Some(generator) = source_entry.node.as_str() else {
                ctx.error(
                    &source_entry.node.span,
                    format!(
                        "`{path}.generator` must be a string, found {}",
                        source_entry.node.value.a_type_name()
                    ),
                )
                .hint = Some(format!("generators: {}", list(GENERATORS)));
                return None;
            };
            match generator {
                "repeated_tokens" => from_node::<RepeatedTokens>(&rest, &path).map(|mut r| {
                    r.seed.get_or_insert_with(derived_seed);
                    DatasetSource::RepeatedTokens(r)
                }),
                "ioi" => from_node::<Ioi>(&rest, &path).map(|mut i| {
                    i.seed.get_or_insert_with(derived_seed);
                    for words in [&mut i.names, &mut i.places, &mut i.objects]
                        .into_iter()
                        .flatten()
                    {
                        normalize_words(words);
                    }
                    DatasetSource::Ioi(i)
                }),
                other => {
                    let d = ctx.error(
                        &source_entry.node.span,
                        format!("unknown generator `{other}`"),
                    );
                    d.hint = Some(match did_you_mean(other, GENERATORS) {
                        Some(s) => format!("did you mean `{s}`? generators: {}", list(GENERATORS)),
                        None => format!("generators: {}", list(GENERATORS)),
                    });
                    return None;
                }
            }
        }
        "prompts" => from_node::<InlinePromptsInput>(&rest, &path).map(|p| {
            DatasetSource::Prompts(InlinePrompts {
                prompts: p.prompts.into_iter().map(|p| p.0).collect(),
            })
        }),
        "tokens" => from_node::<InlineTokens>(&rest, &path).map(DatasetSource::Tokens),
        _ => from_node::<FileDataset>(&rest, &path).map(|mut f| {
            if f.format.is_none() {
                f.format = FileFormat::from_extension(&f.file);
            }
            DatasetSource::File(f)
        }),
    };
    let source = match source {
        Ok(s) => s,
        Err(e) => {
            ctx.de_error(e, &extra);
            return None;
        }
    };
    let common = common?;
    let generated = matches!(
        source,
        DatasetSource::RepeatedTokens(_) | DatasetSource::Ioi(_)
    );
    let spec = DatasetSpec {
        prepend_bos: common.prepend_bos.unwrap_or(generated),
        source,
    };
    let errors_before = ctx.diags.len();
    spec.validate(&mut ctx.checker(node, path));
    (ctx.diags.len() == errors_before).then_some(spec)
}

/// Trims the spaces users may write around IOI names, places and objects.
fn normalize_words(words: &mut [String]) {
    for w in words.iter_mut() {
        let trimmed = w.trim();
        if trimmed.len() != w.len() {
            *w = trimmed.to_string();
        }
    }
}

/// A default seed derived from the experiment seed and an entry's section and name: stable across
/// runs and platforms, different for each entry, and within TOML's integer range.
pub(crate) fn derive_seed(experiment_seed: u64, section: &str, name: &str) -> u64 {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"circuitry-spec/seed/v1\0");
    hasher.update(&experiment_seed.to_le_bytes());
    hasher.update(section.as_bytes());
    hasher.update(b"\0");
    hasher.update(name.as_bytes());
    let bytes = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&bytes.as_bytes()[..8]);
    u64::from_le_bytes(first) & (i64::MAX as u64)
}

impl DatasetSpec {
    fn validate(&self, c: &mut Checker<'_, '_>) {
        match &self.source {
            DatasetSource::RepeatedTokens(r) => {
                c.positive("n", r.n);
                c.positive("length", r.length);
                c.positive("repeats", r.repeats);
                if let Some([lo, hi]) = r.token_range
                    && lo >= hi
                {
                    c.error("token_range", format!("`token_range` [{lo}, {hi}) is empty: the first id must be below the second"));
                }
            }
            DatasetSource::Ioi(i) => validate_ioi(i, c),
            DatasetSource::Prompts(p) => validate_prompts(p, c),
            DatasetSource::Tokens(t) => validate_tokens(t, c),
            DatasetSource::File(f) => {
                if f.file.trim().is_empty() {
                    c.error("file", "`file` cannot be empty");
                }
                if f.format.is_none() {
                    c.error("file", format!("cannot tell the format of `{}` from its extension", f.file))
                        .hint = Some("use a .jsonl, .csv or .parquet file, or set format = \"jsonl\" | \"csv\" | \"parquet\"".into());
                }
                if f.text_column.is_empty() {
                    c.error("text_column", "`text_column` cannot be empty");
                }
                if f.limit == Some(0) {
                    c.error("limit", "`limit` must be greater than 0");
                }
                for (answer, column) in &f.answer_columns {
                    if column.is_empty() {
                        c.error(
                            &format!("answer_columns.{answer}"),
                            format!("the column for answer `{answer}` is empty"),
                        );
                    }
                }
            }
        }
    }
}

fn validate_tokens(t: &InlineTokens, c: &mut Checker<'_, '_>) {
    if t.tokens.is_empty() {
        c.error("tokens", "`tokens` needs at least one prompt");
    }
    for (i, row) in t.tokens.iter().enumerate() {
        if row.is_empty() {
            c.error("tokens", format!("prompt {i} of `tokens` is empty"));
        }
    }
    if let Some(corrupt) = &t.corrupt_tokens {
        if corrupt.len() != t.tokens.len() {
            c.error(
                "corrupt_tokens",
                format!(
                    "`corrupt_tokens` has {} prompts but `tokens` has {}",
                    corrupt.len(),
                    t.tokens.len()
                ),
            )
            .hint = Some("give one counterfactual per prompt, in the same order".into());
        }
        for (i, (a, b)) in t.tokens.iter().zip(corrupt).enumerate() {
            if a.len() != b.len() {
                c.error(
                    "corrupt_tokens",
                    format!(
                        "corrupt prompt {i} has {} tokens but prompt {i} has {}",
                        b.len(),
                        a.len()
                    ),
                )
                .hint = Some("a counterfactual must line up token by token with its prompt".into());
            }
        }
    }
}

fn validate_ioi(i: &Ioi, c: &mut Checker<'_, '_>) {
    c.positive("n", i.n);
    for key in ["names", "places", "objects", "templates"] {
        let items = match key {
            "names" => &i.names,
            "places" => &i.places,
            "objects" => &i.objects,
            _ => &i.templates,
        };
        let Some(items) = items else {
            continue;
        };
        c.distinct(key, items);
        for (k, item) in items.iter().enumerate() {
            if item.is_empty() {
                c.error(&format!("{key}.{k}"), format!("`{key}` has an empty entry"));
            }
        }
    }
    let needed = match i.corrupt {
        IoiCorruption::Abc => 3,
        _ => 2,
    };
    if let Some(names) = &i.names
        && !names.is_empty()
        && names.len() < needed
    {
        c.error(
            "names",
            format!(
                "`names` has {} name(s); the ioi generator with corrupt = \"{}\" needs at least {needed}",
                names.len(),
                i.corrupt.name()
            ),
        );
    }
    for (k, template) in i.templates.iter().flatten().enumerate() {
        let key = format!("templates.{k}");
        if let Err(why) = check_template(template) {
            c.error(&key, format!("invalid ioi template: {why}"))
                .hint = Some("a template has {IO} once, {S} twice, optionally {PLACE} and {OBJECT}, and ends just before the answer, e.g. \"When {IO} and {S} went to the {PLACE}, {S} gave a {OBJECT} to\"".into());
        }
    }
}

/// Checks an IOI template's placeholders.
fn check_template(template: &str) -> Result<(), String> {
    let mut counts: IndexMap<&str, usize> = IndexMap::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            return Err("a `{` is never closed".into());
        };
        let name = &rest[open + 1..open + close];
        if !["IO", "S", "PLACE", "OBJECT"].contains(&name) {
            return Err(format!(
                "unknown placeholder `{{{name}}}` (placeholders: {{IO}}, {{S}}, {{PLACE}}, {{OBJECT}})"
            ));
        }
        *counts.entry(name).or_default() += 1;
        rest = &rest[open + close + 1..];
    }
    let io = counts.get("IO").copied().unwrap_or(0);
    let s = counts.get("S").copied().unwrap_or(0);
    if io != 1 {
        return Err(format!("`{{IO}}` must occur exactly once, found {io}"));
    }
    if s != 2 {
        return Err(format!(
            "`{{S}}` must occur exactly twice (S1 and S2), found {s}"
        ));
    }
    if template.ends_with(char::is_whitespace) {
        return Err(
            "it ends with whitespace; the answer token carries its own leading space".into(),
        );
    }
    Ok(())
}

fn validate_prompts(p: &InlinePrompts, c: &mut Checker<'_, '_>) {
    if p.prompts.is_empty() {
        c.error("prompts", "`prompts` is empty");
        return;
    }
    let with_answers = p.prompts.iter().position(|p| !p.answers.is_empty());
    let reference: Vec<&String> = with_answers
        .map(|i| p.prompts[i].answers.keys().collect())
        .unwrap_or_default();
    let mut sorted_reference = reference.clone();
    sorted_reference.sort();
    for (k, prompt) in p.prompts.iter().enumerate() {
        let key = format!("prompts.{k}");
        if prompt.text.is_empty() {
            c.error(&key, format!("prompt {k} is empty"));
        }
        if prompt.corrupt.as_deref() == Some("") {
            c.error(
                &format!("{key}.corrupt"),
                format!("the corrupt prompt of prompt {k} is empty"),
            );
        }
        let answers: Vec<&String> = prompt.answers.keys().collect();
        let mut sorted = answers.clone();
        sorted.sort();
        if !answers.is_empty() && sorted != sorted_reference {
            c.error(
                &format!("{key}.answers"),
                format!(
                    "prompt {k} has answers [{}] but prompt {} has [{}]",
                    list(&answers),
                    with_answers.unwrap_or(0),
                    list(&reference)
                ),
            )
            .hint = Some("prompts that have answers must all name the same ones".into());
        }
        for (name, text) in &prompt.answers {
            if text.is_empty() {
                c.error(
                    &format!("{key}.answers.{name}"),
                    format!("answer `{name}` of prompt {k} is empty"),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates() {
        check_template("When {IO} and {S} went to the {PLACE}, {S} gave a {OBJECT} to").unwrap();
        check_template("{S} and {IO}: {S} gave it to").unwrap();
        assert!(check_template("{IO} {S}").unwrap_err().contains("twice"));
        assert!(
            check_template("{IO} {S} {S} {X}")
                .unwrap_err()
                .contains("unknown placeholder")
        );
        assert!(
            check_template("{IO} {S} {S")
                .unwrap_err()
                .contains("never closed")
        );
        assert!(
            check_template("{S} {S} to")
                .unwrap_err()
                .contains("exactly once")
        );
        assert!(
            check_template("{IO} {S} {S} to ")
                .unwrap_err()
                .contains("whitespace")
        );
    }

    #[test]
    fn seeds_are_stable_and_distinct() {
        assert_eq!(
            derive_seed(0, "datasets", "a"),
            derive_seed(0, "datasets", "a")
        );
        assert_ne!(
            derive_seed(0, "datasets", "a"),
            derive_seed(1, "datasets", "a")
        );
        assert_ne!(
            derive_seed(0, "datasets", "a"),
            derive_seed(0, "datasets", "b")
        );
        assert_ne!(
            derive_seed(0, "datasets", "a"),
            derive_seed(0, "train", "a")
        );
        assert!(derive_seed(7, "datasets", "x") <= i64::MAX as u64);
    }

    #[test]
    fn formats_from_extensions() {
        assert_eq!(
            FileFormat::from_extension("a/b.JSONL"),
            Some(FileFormat::Jsonl)
        );
        assert_eq!(FileFormat::from_extension("b.csv"), Some(FileFormat::Csv));
        assert_eq!(
            FileFormat::from_extension("b.parquet"),
            Some(FileFormat::Parquet)
        );
        assert_eq!(FileFormat::from_extension("b.txt"), None);
        assert_eq!(FileFormat::from_extension("noext"), None);
    }
}
