//! Prompts, datasets, content hashes and batching.

use std::collections::BTreeMap;

use circuitry_models::Tokenizer;
use serde::{Deserialize, Serialize};

use crate::error::DataError;

/// Position names every prompt has.
pub const FIRST: &str = "first";
/// Position name of the last token of every prompt.
pub const LAST: &str = "last";

/// One prompt of a dataset: token ids (BOS included when the dataset prepends it) and their
/// metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prompt {
    /// Stable id: the prompt's index in its dataset (the `prompt` column of every table).
    pub id: u32,
    /// The token ids fed to the model.
    pub tokens: Vec<u32>,
    /// The source text, when the prompt came from text (without the BOS token).
    pub text: Option<String>,
    /// Counterfactual token ids, exactly as long as `tokens`, when the dataset defines them.
    pub corrupt_tokens: Option<Vec<u32>>,
    /// The counterfactual's source text.
    pub corrupt_text: Option<String>,
    /// Named token indices into `tokens` (and `corrupt_tokens`, which line up): always `first`
    /// and `last`; IOI adds `IO`, `S1`, `S2`, `END`; repeated tokens add `seq_start` and
    /// `repeat_start`.
    pub positions: BTreeMap<String, usize>,
    /// Named answer token ids (IOI: `IO` and `S`; files and inline records may declare them).
    pub answers: BTreeMap<String, u32>,
    /// Pass-through string metadata (IOI: template, order, names, place, object; files: the
    /// requested field columns).
    pub fields: BTreeMap<String, String>,
}

impl Prompt {
    /// A prompt with the `first` and `last` positions set and nothing else. Panics on empty
    /// `tokens`.
    pub fn from_tokens(id: u32, tokens: Vec<u32>) -> Prompt {
        assert!(!tokens.is_empty(), "a prompt needs at least one token");
        let mut positions = BTreeMap::new();
        positions.insert(FIRST.to_string(), 0);
        positions.insert(LAST.to_string(), tokens.len() - 1);
        Prompt {
            id,
            tokens,
            text: None,
            corrupt_tokens: None,
            corrupt_text: None,
            positions,
            answers: BTreeMap::new(),
            fields: BTreeMap::new(),
        }
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The token index named `name` (`first`, `last`, `IO`, `END`...).
    pub fn position(&self, name: &str) -> Option<usize> {
        self.positions.get(name).copied()
    }

    /// The answer token named `name` (`IO`, `S`...).
    pub fn answer(&self, name: &str) -> Option<u32> {
        self.answers.get(name).copied()
    }
}

/// A named list of prompts with a content hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dataset {
    /// The dataset's name (its key in the experiment file).
    pub name: String,
    /// Prompts in id order: `prompts[i].id == i`.
    pub prompts: Vec<Prompt>,
    /// [`content_hash`] of the prompts: 64 hex digits, stable across runs and platforms. The name
    /// is not part of it, so two datasets with the same content have the same hash.
    pub hash: String,
}

impl Dataset {
    /// A dataset of `prompts`, renumbered so that `prompts[i].id == i`, with its hash computed.
    pub fn new(name: impl Into<String>, mut prompts: Vec<Prompt>) -> Dataset {
        for (i, p) in prompts.iter_mut().enumerate() {
            p.id = i as u32;
        }
        let hash = content_hash(&prompts);
        Dataset {
            name: name.into(),
            prompts,
            hash,
        }
    }

    pub fn len(&self) -> usize {
        self.prompts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.prompts.is_empty()
    }

    /// The prompt with id `id`.
    pub fn get(&self, id: u32) -> Option<&Prompt> {
        self.prompts.get(id as usize)
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Prompt> {
        self.prompts.iter()
    }

    /// True when every prompt has a corrupt counterpart.
    pub fn has_corrupt(&self) -> bool {
        !self.prompts.is_empty() && self.prompts.iter().all(|p| p.corrupt_tokens.is_some())
    }

    /// Length of the longest prompt.
    pub fn max_len(&self) -> usize {
        self.prompts.iter().map(Prompt::len).max().unwrap_or(0)
    }

    /// Position names that every prompt defines, sorted.
    pub fn position_names(&self) -> Vec<String> {
        common_keys(self.prompts.iter().map(|p| &p.positions))
    }

    /// Answer names that every prompt defines, sorted.
    pub fn answer_names(&self) -> Vec<String> {
        common_keys(self.prompts.iter().map(|p| &p.answers))
    }

    /// Consecutive groups of at most `batch_size` prompts, in id order. Pad them with
    /// `circuitry_models::TokenBatch::new(&batch.rows(), pad_id(tokenizer), side, device)`.
    pub fn batches(&self, batch_size: usize) -> Result<Vec<Batch<'_>>, DataError> {
        if batch_size == 0 {
            return Err(DataError::config(
                &self.name,
                "batch size 0",
                "use a batch size of at least 1",
            ));
        }
        Ok(self
            .prompts
            .chunks(batch_size)
            .enumerate()
            .map(|(index, prompts)| Batch { index, prompts })
            .collect())
    }
}

fn common_keys<'a, V: 'a>(mut maps: impl Iterator<Item = &'a BTreeMap<String, V>>) -> Vec<String> {
    let Some(first) = maps.next() else {
        return Vec::new();
    };
    let mut names: Vec<String> = first.keys().cloned().collect();
    for map in maps {
        names.retain(|n| map.contains_key(n));
    }
    names
}

/// A group of consecutive prompts processed together.
#[derive(Clone, Copy, Debug)]
pub struct Batch<'a> {
    /// 0-based batch number.
    pub index: usize,
    pub prompts: &'a [Prompt],
}

impl Batch<'_> {
    pub fn len(&self) -> usize {
        self.prompts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.prompts.is_empty()
    }

    /// The prompt ids of the batch.
    pub fn ids(&self) -> Vec<u32> {
        self.prompts.iter().map(|p| p.id).collect()
    }

    /// The (unpadded) clean token rows.
    pub fn rows(&self) -> Vec<Vec<u32>> {
        self.prompts.iter().map(|p| p.tokens.clone()).collect()
    }

    /// The corrupt token rows, when every prompt of the batch has one.
    pub fn corrupt_rows(&self) -> Option<Vec<Vec<u32>>> {
        self.prompts
            .iter()
            .map(|p| p.corrupt_tokens.clone())
            .collect()
    }
}

/// The id to pad batches with: the tokenizer's pad token, else its EOS token, else 0. Padded
/// slots are masked out, so the choice only has to be a valid token id.
pub fn pad_id(tokenizer: &Tokenizer) -> u32 {
    tokenizer
        .pad_token_id
        .or(tokenizer.eos_token_id)
        .unwrap_or(0)
}

/// Version tag hashed first; bump it if the encoding below changes.
const HASH_VERSION: &[u8] = b"circuitry-data dataset hash v1\0";

/// blake3 (hex) of a length-prefixed little-endian encoding of every prompt: id, tokens, text,
/// corrupt tokens and text, positions, answers and fields (maps in key order).
pub fn content_hash(prompts: &[Prompt]) -> String {
    let mut h = blake3::Hasher::new();
    h.update(HASH_VERSION);
    put_len(&mut h, prompts.len());
    for p in prompts {
        h.update(&p.id.to_le_bytes());
        put_ids(&mut h, &p.tokens);
        put_opt_str(&mut h, p.text.as_deref());
        match &p.corrupt_tokens {
            None => {
                h.update(&[0]);
            }
            Some(ids) => {
                h.update(&[1]);
                put_ids(&mut h, ids);
            }
        }
        put_opt_str(&mut h, p.corrupt_text.as_deref());
        put_len(&mut h, p.positions.len());
        for (k, v) in &p.positions {
            put_str(&mut h, k);
            h.update(&(*v as u64).to_le_bytes());
        }
        put_len(&mut h, p.answers.len());
        for (k, v) in &p.answers {
            put_str(&mut h, k);
            h.update(&v.to_le_bytes());
        }
        put_len(&mut h, p.fields.len());
        for (k, v) in &p.fields {
            put_str(&mut h, k);
            put_str(&mut h, v);
        }
    }
    h.finalize().to_hex().to_string()
}

fn put_len(h: &mut blake3::Hasher, n: usize) {
    h.update(&(n as u64).to_le_bytes());
}

fn put_ids(h: &mut blake3::Hasher, ids: &[u32]) {
    put_len(h, ids.len());
    for id in ids {
        h.update(&id.to_le_bytes());
    }
}

fn put_str(h: &mut blake3::Hasher, s: &str) {
    put_len(h, s.len());
    h.update(s.as_bytes());
}

fn put_opt_str(h: &mut blake3::Hasher, s: Option<&str>) {
    match s {
        None => {
            h.update(&[0]);
        }
        Some(s) => {
            h.update(&[1]);
            put_str(h, s);
        }
    }
}
