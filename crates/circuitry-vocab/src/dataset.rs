//! Dataset vocabulary: prompt-file formats and the IOI generator's counterfactuals.

use std::path::Path;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How the `ioi` generator builds each prompt's counterfactual.
//
// Only the three name tokens change, so clean and corrupt prompts have equal length and the same
// positions; the answers stay those of the clean prompt. `abc` is the paper's ABC distribution
// (the standard reference for path patching: it removes the IO/S information), `s2_io` its
// S2 -> IO flip (and the paired prompts of TransformerLens' exploratory-analysis demo), `swap`
// keeps the names and flips the sign of the logit difference IO - S.
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

impl IoiCorruption {
    /// Whether the generator makes corrupt prompts at all.
    pub fn is_some(self) -> bool {
        self != IoiCorruption::NoCorruption
    }

    /// The same as [`IoiCorruption::name`].
    pub fn as_str(self) -> &'static str {
        self.name()
    }
}

impl FromStr for IoiCorruption {
    type Err = String;

    fn from_str(s: &str) -> Result<IoiCorruption, String> {
        match s.to_ascii_lowercase().as_str() {
            "abc" => Ok(IoiCorruption::Abc),
            "s2_io" => Ok(IoiCorruption::S2Io),
            "swap" => Ok(IoiCorruption::Swap),
            "none" => Ok(IoiCorruption::NoCorruption),
            _ => Err(format!(
                "unknown IOI corruption `{s}`; expected abc, s2_io, swap or none"
            )),
        }
    }
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
        FileFormat::from_path(Path::new(file))
    }

    /// The format of a path's extension (case-insensitive), if it is a known one.
    pub fn from_path(path: &Path) -> Option<FileFormat> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "jsonl" | "ndjson" => Some(FileFormat::Jsonl),
            "csv" => Some(FileFormat::Csv),
            "parquet" | "pq" => Some(FileFormat::Parquet),
            _ => None,
        }
    }
}

impl FileFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            FileFormat::Jsonl => "jsonl",
            FileFormat::Csv => "csv",
            FileFormat::Parquet => "parquet",
        }
    }
}

impl FromStr for FileFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<FileFormat, String> {
        match s.to_ascii_lowercase().as_str() {
            "jsonl" | "ndjson" => Ok(FileFormat::Jsonl),
            "csv" => Ok(FileFormat::Csv),
            "parquet" => Ok(FileFormat::Parquet),
            _ => Err(format!(
                "unknown file format `{s}`; expected one of jsonl, csv, parquet"
            )),
        }
    }
}
