//! Prompt datasets for circuitry.
//!
//! This crate turns a dataset description into token sequences and their metadata: a
//! [`Dataset`] of [`Prompt`]s, each with a stable id (its index), token ids, optional source
//! text, an optional corrupt (counterfactual) sequence of the same length, named positions
//! (`first`, `last`; IOI adds `IO`, `S1`, `S2`, `END`), named answer tokens and pass-through
//! string fields, plus a content hash of the whole dataset. Sources ([`Source`]) are inline
//! lists (texts, records, raw token ids), JSONL/CSV/Parquet files ([`FileSource`]), natural-text
//! corpora cut into windows of tokens ([`TextConfig`]), the generators [`RepeatedTokensConfig`] and [`IoiConfig`], and
//! causal models ([`causal`]: prompts drawn from their inputs, counterfactual pairs). Everything is tokenized with the model's
//! [`circuitry_models::Tokenizer`].
//!
//! What it must not do: it never runs models (no tensors, no forward passes) and never parses
//! experiment files. The runner maps the experiment file's dataset section onto this crate's Rust
//! API ([`build_dataset`] with a [`Source`] and [`DatasetOptions`]), derives generator seeds with
//! [`derive_seed`]`(experiment_seed, dataset_name)`, and pads the groups that
//! [`Dataset::batches`] returns with `circuitry_models::TokenBatch` and [`pad_id`].
//!
//! Randomness comes from the crate's own documented, version-stable generator ([`rng`]), never
//! from the `rand` crate, so a seed reproduces the same dataset across dependency upgrades.

pub mod causal;
pub mod dataset;
pub mod error;
pub mod files;
pub mod ioi;
pub mod record;
pub mod repeated;
pub mod rng;
pub mod source;
pub mod text;

pub use causal::{
    CausalModel, CausalSampleConfig, PairingConfig, Value, counterfactual_pairs, sample_records,
};
pub use dataset::{Batch, Dataset, FIRST, LAST, Prompt, content_hash, pad_id};
pub use error::{DataError, RowIssue, RowLocation};
pub use files::{FileFormat, FileSource};
pub use ioi::{IoiConfig, IoiCorruption, IoiTemplates};
pub use record::Record;
pub use repeated::{RepeatedTokensConfig, special_token_ids};
pub use rng::{Rng, SplitMix64, derive_seed};
pub use source::{AnswerToken, DatasetOptions, Source, TokenRecord, build_dataset};
pub use text::TextConfig;
