//! `[datasets.NAME]`: where prompts come from. Each dataset has exactly one source: a
//! `generator` (`repeated_tokens`, `ioi`), inline `prompts`, or a `file`. The spec only describes
//! them; the data crate generates, reads and tokenizes.

use std::borrow::Cow;
use std::fmt;

use indexmap::IndexMap;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, MapAccess, Visitor, value::MapAccessDeserializer};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use circuitry_vocab::{FileFormat, IoiCorruption};

use crate::schema_branch::merge_branch;
use crate::spec_struct::spec_struct;

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
    RepeatedTokens(RepeatedTokensSpec),
    /// `generator = "ioi"`.
    Ioi(Ioi),
    /// `prompts = [...]`.
    Prompts(InlinePrompts),
    /// `tokens = [[...], ...]`.
    Tokens(InlineTokens),
    /// `file = "..."`.
    File(FileDataset),
    /// `text = "..."`: a corpus cut into windows of tokens.
    Text(TextDataset),
    /// `generator = "causal_model"`.
    CausalModel(CausalModelDataset),
    /// `counterfactuals = "..."`: pairs of another dataset's prompts.
    Counterfactuals(CounterfactualsDataset),
}

/// The generators, by `generator` name.
pub const GENERATORS: &[&str] = &["repeated_tokens", "ioi", "causal_model"];

/// Keys every dataset may have, besides its source's own.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DatasetCommon {
    /// Prepend the model's BOS token to every prompt. Default: true for generators and `text`
    /// corpora, false for `prompts`, `tokens` and `file` datasets.
    #[serde(default)]
    pub prepend_bos: Option<bool>,
}

pub(crate) const COMMON_KEYS: &[&str] = &["prepend_bos"];
pub(crate) const SOURCE_KEYS: &[&str] = &[
    "generator",
    "prompts",
    "tokens",
    "file",
    "text",
    "counterfactuals",
];

spec_struct! {
    /// Random token sequences repeated back to back: the standard probe for induction heads.
    ///
    /// Each prompt draws `length` tokens uniformly at random and repeats them `repeats` times, so a
    /// prompt has `length * repeats` tokens (plus BOS). Default `prepend_bos`: true.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields, rename = "RepeatedTokens")]
    // As written (seed optional until lowering fills it); the data crate's resolved generator
    // configuration is `circuitry_data::RepeatedTokensConfig`.
    pub struct RepeatedTokensSpec {
        /// Number of prompts (1 to 1000000, the most one dataset may have; `n * (length *
        /// repeats + BOS)` at most 100000000 tokens).
        #[schemars(range(min = 1, max = 1_000_000))]
        pub n: u32,
        /// Random tokens per repeat (> 0; `length * repeats` plus BOS must fit the model's
        /// context).
        #[schemars(range(min = 1))]
        pub length: u32,
        /// How many times the random sequence occurs in each prompt (> 0).
        #[schemars(range(min = 1))]
        #[serde(default = "default_repeats")]
        pub repeats: u32,
        /// `[lo, hi)`: draw token ids from this half-open range. Default: the whole vocabulary except
        /// the special tokens.
        pub token_range: Option<[u32; 2]>,
        /// Generator seed. Default: derived from the experiment's `seed` and the dataset's name (after
        /// loading, always set).
        pub seed: Option<u64>,
    }
}

fn default_repeats() -> u32 {
    2
}

spec_struct! {
    /// IOI-style sentences ("When Mary and John went to the store, John gave a drink to") with
    /// counterfactual (corrupt) pairs.
    ///
    /// Named positions: `IO` (the indirect object's name), `S1` and `S2` (the subject's first and
    /// second mention) and `END` (the last token, where the answer is predicted). Answers: `IO`
    /// (the correct completion, " Mary") and `S` (the subject, " John"). Default `prepend_bos`: true.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct Ioi {
        /// Number of prompts (1 to 1000000, the most one dataset may have).
        #[schemars(range(min = 1, max = 1_000_000))]
        pub n: u32,
        /// Names to draw IO and S from, written without the leading space (a leading space is
        /// ignored). In sentences a name follows a space, so " Mary" must be a single token.
        /// Default: the 99 first names of the paper's public code (`ioi_dataset.py`).
        pub names: Option<Vec<String>>,
        /// Sentence templates. Placeholders: `{IO}` once, `{S}` exactly twice, and optionally
        /// `{PLACE}` and `{OBJECT}`. A template ends just before the answer (e.g. "... gave it to").
        /// Default: the paper's 15 BABA templates and their 15 ABBA versions.
        pub templates: Option<Vec<String>>,
        /// Values for `{PLACE}`. Default: the paper's 8 places.
        pub places: Option<Vec<String>>,
        /// Values for `{OBJECT}`. Default: the paper's 8 objects.
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
        pub seed: Option<u64>,
    }
}

/// The named positions of `ioi` prompts.
pub const IOI_POSITIONS: &[&str] = &["IO", "S1", "S2", "END"];
/// The named positions of `repeated_tokens` prompts: the first random token, and the first
/// token of the second repeat.
pub const REPEATED_POSITIONS: &[&str] = &["seq_start", "repeat_start"];
/// The answer of `causal_model` prompts: the output's token.
pub const CAUSAL_OUTPUT_ANSWER: &str = "output";
/// The answers counterfactual pairs add: the causal model's output on the base and under the
/// interchange.
pub const COUNTERFACTUAL_ANSWERS: &[&str] = &["base", "counterfactual"];
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
    pub prompts: Vec<PromptSpec>,
    /// Declares that every prompt (after the BOS, if prepended) is this many copies of one
    /// sequence, `r r ...` (at least 2): each prompt is checked when the dataset is built and
    /// gets the positions `seq_start` and `repeat_start`, as `repeated_tokens` prompts do, so
    /// `induction_scores` and `icl_heads` read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeats: Option<u32>,
}

spec_struct! {
    /// Prompts given directly as token ids (no tokenizer involved), e.g. for models whose
    /// tokenizer has no text form or to reproduce exact inputs. Default `prepend_bos`: false.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct InlineTokens {
        /// The prompts: each a list of token ids (non-empty), or a record `{ ids, corrupt,
        /// answers, positions }`.
        pub tokens: Vec<TokenRow>,
        /// Counterfactual token ids: one list per prompt, each as long as its prompt.
        pub corrupt_tokens: Option<Vec<Vec<u32>>>,
        /// Declares that every prompt (after the BOS, if prepended) is this many copies of one
        /// sequence, `r r ...` (at least 2): each prompt is checked when the dataset is built and
        /// gets the positions `seq_start` and `repeat_start`, as `repeated_tokens` prompts do, so
        /// `induction_scores` and `icl_heads` read it.
        pub repeats: Option<u32>,
    }
}

/// An answer token written in a `tokens` record: its id, or a text that is one token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum AnswerToken {
    Id(u32),
    Text(String),
}

spec_struct! {
    /// One prompt of token ids, with what a plain list cannot say.
    #[derive(Clone, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    #[schemars(rename = "TokenRecord")]
    pub struct TokenRow {
        /// The token ids (non-empty).
        pub ids: Vec<u32>,
        /// Counterfactual token ids, as many as `ids`.
        pub corrupt: Option<Vec<u32>>,
        /// Named answer tokens: an id, or a text that must be one token, e.g.
        /// `{ IO = 5335, S = " John" }`. Analyses refer to them by name.
        #[serde(default)]
        pub answers: IndexMap<String, AnswerToken>,
        /// Named positions: token indices into `ids` as written (a prepended BOS moves them along
        /// with their tokens; negative counts from the end, -1 the last), e.g. `{ END = -1 }`.
        #[serde(default)]
        pub positions: IndexMap<String, i64>,
    }
}

impl TokenRow {
    /// A plain list of ids.
    pub fn ids(ids: Vec<u32>) -> TokenRow {
        TokenRow {
            ids,
            corrupt: None,
            answers: IndexMap::new(),
            positions: IndexMap::new(),
        }
    }

    fn is_plain(&self) -> bool {
        self.corrupt.is_none() && self.answers.is_empty() && self.positions.is_empty()
    }
}

/// A plain row is written back as its list of ids (so resolved files and hashes read as written);
/// a record as a table of its keys that are set.
impl Serialize for TokenRow {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        if self.is_plain() {
            return self.ids.serialize(s);
        }
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("ids", &self.ids)?;
        if let Some(c) = &self.corrupt {
            map.serialize_entry("corrupt", c)?;
        }
        if !self.answers.is_empty() {
            map.serialize_entry("answers", &self.answers)?;
        }
        if !self.positions.is_empty() {
            map.serialize_entry("positions", &self.positions)?;
        }
        map.end()
    }
}

/// A `tokens` entry as written: a list of ids or a record (see [`TokenRow`]).
pub(crate) struct TokenRowInput(pub TokenRow);

impl<'de> Deserialize<'de> for TokenRowInput {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TokenRow;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of token ids or a { ids, corrupt, answers, positions } table")
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<TokenRow, A::Error> {
                Vec::<u32>::deserialize(de::value::SeqAccessDeserializer::new(seq))
                    .map(TokenRow::ids)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<TokenRow, A::Error> {
                TokenRow::deserialize(MapAccessDeserializer::new(map))
            }
        }
        d.deserialize_any(V).map(TokenRowInput)
    }
}

impl JsonSchema for TokenRowInput {
    fn schema_name() -> Cow<'static, str> {
        "TokenPrompt".into()
    }
    fn json_schema(g: &mut SchemaGenerator) -> Schema {
        let record = g.subschema_for::<TokenRow>();
        json_schema!({
            "description": "A prompt of token ids: a list, or a record { ids, corrupt, answers, positions }.",
            "anyOf": [ { "type": "array", "items": { "type": "integer", "minimum": 0 } }, record ]
        })
    }
}

spec_struct! {
    // `tokens` as written (lists or records); parsing turns it into `InlineTokens`.
    /// Prompts given directly as token ids (no tokenizer involved), e.g. for models whose
    /// tokenizer has no text form or to reproduce exact inputs. Default `prepend_bos`: false.
    #[derive(Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    #[schemars(rename = "InlineTokens")]
    pub(crate) struct InlineTokensInput {
        /// The prompts: each a list of token ids (non-empty), or a record `{ ids, corrupt,
        /// answers, positions }`.
        pub tokens: Vec<TokenRowInput>,
        /// Counterfactual token ids: one list per prompt, each as long as its prompt.
        pub corrupt_tokens: Option<Vec<Vec<u32>>>,
        /// Declares that every prompt (after the BOS, if prepended) is this many copies of one
        /// sequence, `r r ...` (at least 2): each prompt is checked when the dataset is built and
        /// gets the positions `seq_start` and `repeat_start`, as `repeated_tokens` prompts do, so
        /// `induction_scores` and `icl_heads` read it.
        pub repeats: Option<u32>,
    }
}

spec_struct! {
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields, rename = "Prompt")]
    #[schemars(rename = "PromptRecord")]
    // One inline prompt as written (text); `circuitry_data::Prompt` is a tokenized prompt.
    pub struct PromptSpec {
        /// The prompt text.
        pub text: String,
        /// The counterfactual prompt for patching (should tokenize to as many tokens as `text`).
        pub corrupt: Option<String>,
        /// Named answer tokens, e.g. `{ IO = " Mary", S = " John" }`: each text must be one token.
        /// Analyses refer to them by name (`target = { diff = ["IO", "S"] }`).
        #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
        pub answers: IndexMap<String, String>,
        /// Named positions: token indices into the text's tokens (a prepended BOS moves them
        /// along with their tokens; negative counts from the end, -1 the last), e.g.
        /// `{ S2 = 9, END = -1 }`.
        #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
        pub positions: IndexMap<String, i64>,
    }
}

fn prompt_from_string_or_table<'de, D: Deserializer<'de>>(d: D) -> Result<PromptSpec, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = PromptSpec;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a prompt string or a { text, corrupt, answers, positions } table")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<PromptSpec, E> {
            Ok(PromptSpec {
                text: v.to_string(),
                corrupt: None,
                answers: IndexMap::new(),
                positions: IndexMap::new(),
            })
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<PromptSpec, A::Error> {
            PromptSpec::deserialize(MapAccessDeserializer::new(map))
        }
    }
    d.deserialize_any(V)
}

/// A prompt as written: a string or a record (see [`PromptSpec`]).
pub(crate) struct PromptInput(pub PromptSpec);

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
        let record = g.subschema_for::<PromptSpec>();
        json_schema!({
            "description": "A prompt: a plain string, or a record { text, corrupt, answers, positions }.",
            "anyOf": [ { "type": "string" }, record ]
        })
    }
}

// `prompts` as written (strings or records); parsing turns it into `InlinePrompts`.
/// Prompts written in the experiment file. Default `prepend_bos`: false.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "InlinePrompts")]
pub(crate) struct InlinePromptsInput {
    /// The prompts: plain strings, or records `{ text, corrupt, answers }`. Records with answers
    /// must all name the same answers; analyses that use answers need every prompt to have them.
    pub prompts: Vec<PromptInput>,
    /// Declares that every prompt (after the BOS, if prepended) is this many copies of one
    /// sequence, `r r ...` (at least 2): each prompt is checked when the dataset is built and
    /// gets the positions `seq_start` and `repeat_start`, as `repeated_tokens` prompts do, so
    /// `induction_scores` and `icl_heads` read it.
    #[serde(default)]
    pub repeats: Option<u32>,
}

spec_struct! {
    /// Prompts read from a file, one per row. Default `prepend_bos`: false.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct FileDataset {
        /// The file: `.jsonl`, `.csv` or `.parquet`, relative to the experiment file's directory
        /// (`~` is the home directory).
        pub file: String,
        /// File format. Default: inferred from the extension (after loading, always set).
        pub format: Option<FileFormat>,
        /// The column (JSONL: key) holding the prompt text.
        #[serde(default = "default_text_column")]
        pub text_column: String,
        /// The column holding each prompt's counterfactual, if any.
        pub corrupt_column: Option<String>,
        /// Named answer tokens: answer name -> column, e.g. `{ IO = "io", S = "s" }`.
        #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
        pub answer_columns: IndexMap<String, String>,
        /// Named positions: position name -> column of integer token indices into the text's
        /// tokens (a prepended BOS moves them along; negative counts from the end), e.g.
        /// `{ END = "end" }`.
        #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
        pub position_columns: IndexMap<String, String>,
        /// Read only the first N rows (1 to 1000000). Without it every row is read; a file may give
        /// at most 1000000 rows, lines (JSONL, CSV) and cells (Parquet) of at most 1 MiB, and at
        /// most 1 GiB is read.
        #[schemars(range(min = 1, max = 1_000_000))]
        pub limit: Option<u64>,
        /// Declares that every prompt (after the BOS, if prepended) is this many copies of one
        /// sequence, `r r ...` (at least 2): each prompt is checked when the dataset is built and
        /// gets the positions `seq_start` and `repeat_start`, as `repeated_tokens` prompts do, so
        /// `induction_scores` and `icl_heads` read it.
        pub repeats: Option<u32>,
    }
}

spec_struct! {
    /// Natural text cut into windows of tokens, for neuron and dimension studies. Default
    /// `prepend_bos`: true.
    ///
    /// The corpus is a UTF-8 file or a directory of them (every regular file whose name does not
    /// start with `.`, in name order). A file is one document, or several separated by a
    /// `separator` line. Each document is tokenized whole and cut into windows of `window`
    /// tokens starting every `stride` tokens; windows never cross documents. Each prompt keeps
    /// the fields `document` (the document's index in the corpus), `offset` (the token index in
    /// the document where the window starts) and `file`.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct TextDataset {
        /// The corpus: a text file or a directory of text files, relative to the experiment
        /// file's directory (`~` is the home directory). At most 1 GiB is read.
        pub text: String,
        /// A line that separates documents (compared after trimming trailing whitespace), e.g.
        /// "%" for fortune files; "" makes blank lines separate documents. Default: each file is
        /// one document.
        pub separator: Option<String>,
        /// Tokens per window, BOS not counted (> 0; with BOS it must fit the model's context).
        #[schemars(range(min = 1))]
        pub window: u32,
        /// Tokens from the start of one window to the start of the next in a document (> 0).
        /// Default: `window` (windows do not overlap).
        #[schemars(range(min = 1))]
        pub stride: Option<u32>,
        /// A document's last window, shorter than `window`, is kept when it has at least this
        /// many tokens (1 to `window`); shorter documents give no prompt. Default: `window` (full
        /// windows only).
        #[schemars(range(min = 1))]
        pub min_tokens: Option<u32>,
        /// Take this many windows (1 to 1000000), drawn without replacement with `seed` and kept
        /// in corpus order. Default: every window (at most 1000000).
        #[schemars(range(min = 1, max = 1_000_000))]
        pub n: Option<u32>,
        /// Seed of the draw of `n` windows. Default: derived from the experiment's `seed` and the
        /// dataset's name (after loading, always set).
        pub seed: Option<u64>,
    }
}

spec_struct! {
    /// Prompts drawn from a `[causal_models.*]` entry. Default `prepend_bos`: true.
    ///
    /// Prompt `i` draws every input uniformly from the causal model's `values` (in the order of
    /// `inputs`) with a generator seeded from `seed`; with `balance`, draws are repeated until the
    /// balanced variables take the `i mod C`-th of their `C` value combinations, so that every
    /// combination is equally frequent. The text is `template` with `{NAME}` replaced by the value
    /// of the input, variable or `output` NAME. Each prompt keeps every input, variable and the
    /// output as fields, and the answer `output` (the output's token).
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct CausalModelDataset {
        /// The `[causal_models.*]` entry.
        pub causal_model: String,
        /// Number of prompts (1 to 1000000).
        #[schemars(range(min = 1, max = 1_000_000))]
        pub n: u32,
        /// The prompt text, e.g. "{a} {b} {c} {d}" (add " {output}" for training rows).
        pub template: String,
        /// Variables (inputs, intermediates or `output`) whose value combinations are drawn
        /// equally often; each combination must be reachable.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub balance: Vec<String>,
        /// Generator seed. Default: derived from the experiment's `seed` and the dataset's name
        /// (after loading, always set).
        pub seed: Option<u64>,
    }
}

spec_struct! {
    /// Counterfactual pairs for interchange interventions: each prompt of the base dataset (the
    /// `base`) is paired with a `source` prompt of the same dataset, drawn with `seed` among those
    /// with the same tokens count and named positions (so sites line up). The pair's prompt is the
    /// base, its counterfactual (corrupt) prompt the source; its answers are the base's, plus
    /// `base` (the causal model's output on the base) and `counterfactual` (its output when the
    /// `intervene` variables take their values on the source and everything downstream is
    /// recomputed). Fields: the base's, plus `source` (the source prompt's index) and
    /// `counterfactual_output`. `prepend_bos` does not apply: the base's prompts are used as they
    /// are.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct CounterfactualsDataset {
        /// The base dataset (a `[datasets.*]` entry that is not itself counterfactuals).
        pub counterfactuals: String,
        /// The `[causal_models.*]` entry whose inputs the base's prompts carry as fields.
        pub causal_model: String,
        /// The variables taken from the source (inputs or intermediates).
        pub intervene: Vec<String>,
        /// Draw each source among those that change the causal model's output (bases without one
        /// are dropped), so that an intervention that does nothing scores 0.
        #[serde(default)]
        pub changing_only: bool,
        /// Seed of the pairing. Default: derived from the experiment's `seed` and the dataset's
        /// name (after loading, always set).
        pub seed: Option<u64>,
        /// The base dataset, filled in when the experiment is checked (its positions and answers
        /// are this dataset's).
        #[serde(skip)]
        #[schemars(skip)]
        pub base: ResolvedBase,
    }
}

/// A counterfactual dataset's base, once the experiment is checked (`None` before).
pub type ResolvedBase = Option<Box<DatasetSpec>>;

fn default_text_column() -> String {
    "text".to_string()
}

impl DatasetSpec {
    /// The source's name: `repeated_tokens`, `ioi`, `prompts` or `file`.
    /// The `repeats` a `tokens`, `prompts` or `file` dataset declares its prompts to have.
    pub fn declared_repeats(&self) -> Option<u32> {
        match &self.source {
            DatasetSource::Tokens(t) => t.repeats,
            DatasetSource::Prompts(p) => p.repeats,
            DatasetSource::File(f) => f.repeats,
            _ => None,
        }
    }

    pub fn source_name(&self) -> &'static str {
        match &self.source {
            DatasetSource::RepeatedTokens(_) => "repeated_tokens",
            DatasetSource::Ioi(_) => "ioi",
            DatasetSource::Prompts(_) => "prompts",
            DatasetSource::Tokens(_) => "tokens",
            DatasetSource::File(_) => "file",
            DatasetSource::Text(_) => "text",
            DatasetSource::CausalModel(_) => "causal_model",
            DatasetSource::Counterfactuals(_) => "counterfactuals",
        }
    }

    /// Whether the prompts come from a generator.
    pub fn is_generated(&self) -> bool {
        matches!(
            self.source,
            DatasetSource::RepeatedTokens(_) | DatasetSource::Ioi(_)
        )
    }

    /// Named positions analyses may refer to (`position = "END"`): a generator's, the repeat
    /// positions of a dataset that declares `repeats`, and those its records or columns name.
    pub fn named_positions(&self) -> Vec<String> {
        let mut names = match &self.source {
            DatasetSource::Ioi(_) => strings(IOI_POSITIONS),
            DatasetSource::RepeatedTokens(_) => strings(REPEATED_POSITIONS),
            DatasetSource::Counterfactuals(c) => c
                .base
                .as_ref()
                .map_or_else(Vec::new, |b| b.named_positions()),
            DatasetSource::Tokens(t) => t
                .tokens
                .iter()
                .flat_map(|r| r.positions.keys().cloned())
                .collect(),
            DatasetSource::Prompts(p) => p
                .prompts
                .iter()
                .flat_map(|r| r.positions.keys().cloned())
                .collect(),
            DatasetSource::File(f) => f.position_columns.keys().cloned().collect(),
            _ => Vec::new(),
        };
        if self.declared_repeats().is_some() {
            names.extend(strings(REPEATED_POSITIONS));
        }
        let mut seen = std::collections::BTreeSet::new();
        names.retain(|n| seen.insert(n.clone()));
        names
    }

    /// Answer names analyses may refer to (`target = { token = "IO" }`). For inline prompts, the
    /// names of the prompts that have answers (all of them must name the same ones).
    pub fn answer_names(&self) -> Vec<String> {
        match &self.source {
            DatasetSource::Ioi(_) => strings(IOI_ANSWERS),
            DatasetSource::RepeatedTokens(_) | DatasetSource::Text(_) => Vec::new(),
            DatasetSource::Tokens(t) => t
                .tokens
                .iter()
                .find(|r| !r.answers.is_empty())
                .map(|r| r.answers.keys().cloned().collect())
                .unwrap_or_default(),
            DatasetSource::Prompts(p) => p
                .prompts
                .iter()
                .find(|p| !p.answers.is_empty())
                .map(|p| p.answers.keys().cloned().collect())
                .unwrap_or_default(),
            DatasetSource::File(f) => f.answer_columns.keys().cloned().collect(),
            DatasetSource::CausalModel(_) => strings(&[CAUSAL_OUTPUT_ANSWER]),
            DatasetSource::Counterfactuals(c) => {
                let mut names = c.base.as_ref().map_or_else(Vec::new, |b| b.answer_names());
                for extra in COUNTERFACTUAL_ANSWERS {
                    if !names.iter().any(|n| n == extra) {
                        names.push(extra.to_string());
                    }
                }
                names
            }
        }
    }

    /// Whether every prompt has a counterfactual (corrupt) prompt.
    pub fn has_corrupt(&self) -> bool {
        match &self.source {
            DatasetSource::RepeatedTokens(_) => false,
            DatasetSource::Ioi(i) => i.corrupt != IoiCorruption::NoCorruption,
            DatasetSource::Prompts(p) => p.prompts.iter().all(|p| p.corrupt.is_some()),
            DatasetSource::Tokens(t) => {
                t.corrupt_tokens.is_some() || t.tokens.iter().all(|r| r.corrupt.is_some())
            }
            DatasetSource::File(f) => f.corrupt_column.is_some(),
            DatasetSource::Text(_) | DatasetSource::CausalModel(_) => false,
            DatasetSource::Counterfactuals(_) => true,
        }
    }

    /// The number of prompts when it is known without reading anything (`None` for files and
    /// corpora without `n`).
    pub fn prompt_count(&self) -> Option<u64> {
        match &self.source {
            DatasetSource::RepeatedTokens(r) => Some(r.n.into()),
            DatasetSource::Ioi(i) => Some(i.n.into()),
            DatasetSource::Prompts(p) => Some(p.prompts.len() as u64),
            DatasetSource::Tokens(t) => Some(t.tokens.len() as u64),
            DatasetSource::File(_) => None,
            DatasetSource::Text(t) => t.n.map(u64::from),
            DatasetSource::CausalModel(c) => Some(c.n.into()),
            DatasetSource::Counterfactuals(c) if !c.changing_only => {
                c.base.as_ref().and_then(|b| b.prompt_count())
            }
            DatasetSource::Counterfactuals(_) => None,
        }
    }

    /// The generator seed (set for generators and corpora after loading; `None` for other
    /// sources).
    pub fn seed(&self) -> Option<u64> {
        match &self.source {
            DatasetSource::RepeatedTokens(r) => r.seed,
            DatasetSource::Ioi(i) => i.seed,
            DatasetSource::Text(t) => t.seed,
            DatasetSource::CausalModel(c) => c.seed,
            DatasetSource::Counterfactuals(c) => c.seed,
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
            DatasetSource::Text(t) => (None, serde_json::to_value(t)),
            DatasetSource::CausalModel(c) => (Some("causal_model"), serde_json::to_value(c)),
            DatasetSource::Counterfactuals(c) => (None, serde_json::to_value(c)),
        };
        let body = body.map_err(S::Error::custom)?;
        let mut map = serde_json::Map::new();
        if let Some(g) = generator {
            map.insert("generator".into(), g.into());
        }
        if let serde_json::Value::Object(fields) = body {
            map.extend(fields);
        }
        // Pairs take their tokens from their base dataset, BOS included: the key is not theirs.
        if !matches!(self.source, DatasetSource::Counterfactuals(_)) {
            map.insert("prepend_bos".into(), self.prepend_bos.into());
        }
        map.serialize(s)
    }
}

/// The schema of a dataset table: one branch per source, each with the common keys.
pub(crate) fn dataset_schema(g: &mut SchemaGenerator) -> Schema {
    let common = DatasetCommon::json_schema(g);
    let generators = [
        (
            RepeatedTokensSpec::json_schema(g),
            "repeated_tokens",
            "random token sequences repeated back to back.",
        ),
        (
            Ioi::json_schema(g),
            "ioi",
            "IOI sentences with counterfactual pairs.",
        ),
        (
            CausalModelDataset::json_schema(g),
            "causal_model",
            "prompts drawn from a causal model's inputs.",
        ),
    ];
    let other_sources = [
        (InlinePromptsInput::json_schema(g), "inline prompts"),
        (InlineTokensInput::json_schema(g), "inline token ids"),
        (FileDataset::json_schema(g), "prompts from a file"),
        (
            TextDataset::json_schema(g),
            "a text corpus cut into windows of tokens",
        ),
        (
            CounterfactualsDataset::json_schema(g),
            "counterfactual pairs of another dataset's prompts",
        ),
    ];
    // A generator's branch also requires its `generator` constant.
    let branches: Vec<Schema> = generators
        .into_iter()
        .map(|(base, name, doc)| {
            let generator =
                json_schema!({ "const": name, "description": format!("The generator: {doc}") });
            let title = format!("{name} generator");
            merge_branch(base, &[("generator", generator)], &common, &title)
        })
        .chain(
            other_sources
                .into_iter()
                .map(|(base, title)| merge_branch(base, &[], &common, title)),
        )
        .collect();
    json_schema!({
        "description": "A dataset of prompts with exactly one source: `generator = \"repeated_tokens\"` or `\"ioi\"`, inline `prompts = [...]`, inline `tokens = [[...]]`, `file = \"...\"` (.jsonl, .csv, .parquet), or a `text = \"...\"` corpus cut into windows of tokens, `generator = \"causal_model\"`, or `counterfactuals = \"DATASET\"` pairs.",
        "oneOf": branches
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_are_stable_and_distinct() {
        let seed = derive_seed(0, "datasets", "a");
        assert_eq!(seed, derive_seed(0, "datasets", "a"));
        // Each input on its own changes the seed.
        for (master, section, name) in [
            (1, "datasets", "a"),
            (0, "datasets", "b"),
            (0, "train", "a"),
        ] {
            assert_ne!(
                seed,
                derive_seed(master, section, name),
                "{master} {section} {name}"
            );
        }
        assert!(derive_seed(7, "datasets", "x") <= i64::MAX as u64);
    }

    #[test]
    fn formats_from_extensions() {
        for (path, format) in [
            ("a/b.JSONL", Some(FileFormat::Jsonl)),
            ("b.csv", Some(FileFormat::Csv)),
            ("b.parquet", Some(FileFormat::Parquet)),
            ("b.txt", None),
            ("noext", None),
        ] {
            assert_eq!(FileFormat::from_extension(path), format, "{path:?}");
        }
    }
}
