//! Prompt ranges: an analysis whose batches write their rows alone
//! ([`Analysis::batch_local`](circuitry_circuits::analysis::Analysis::batch_local)) over a dataset
//! of more than a chunk of prompts becomes one node per range of consecutive prompts. Ranges
//! start and end on batch boundaries of the forward pass, so every batch holds the prompts it
//! would hold in one pass over the whole dataset and the rows are the same; shards share out the
//! ranges, and a killed run keeps every range it finished.

use std::ops::Range;

use circuitry_spec::DatasetSpec;

/// Environment variable setting the prompts per range (default [`DEFAULT_CHUNK_PROMPTS`]);
/// rounded up to a whole number of batches. Tables do not depend on it.
pub const CHUNK_ENV: &str = "CIRCUITRY_CHUNK_PROMPTS";

pub const DEFAULT_CHUNK_PROMPTS: usize = 256;

/// How many prompts a dataset has, when its section says ([`DatasetSpec::prompt_count`]);
/// files and corpora without `n` are only counted once read.
pub fn prompt_count(spec: &DatasetSpec) -> Option<usize> {
    spec.prompt_count().map(|n| n as usize)
}

fn chunk_prompts() -> usize {
    std::env::var(CHUNK_ENV)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(DEFAULT_CHUNK_PROMPTS)
}

/// The prompt ranges of `n` prompts in batches of `batch`: empty when one range would hold
/// them all (the analysis stays one node).
pub fn ranges(n: usize, batch: usize) -> Vec<Range<usize>> {
    let batch = batch.max(1);
    let chunk = chunk_prompts().div_ceil(batch) * batch;
    if n <= chunk {
        return Vec::new();
    }
    (0..n.div_ceil(chunk))
        .map(|i| i * chunk..((i + 1) * chunk).min(n))
        .collect()
}

/// The batches (of `batch` prompts) a prompt range covers.
pub fn batches(prompts: &Range<usize>, batch: usize) -> Range<usize> {
    let batch = batch.max(1);
    prompts.start / batch..prompts.end.div_ceil(batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_the_prompts_on_batch_boundaries() {
        // The default chunk (256) rounded up to batches of 24: 264.
        assert!(ranges(264, 24).is_empty());
        let r = ranges(600, 24);
        assert_eq!(r, vec![0..264, 264..528, 528..600]);
        assert_eq!(batches(&r[1], 24), 11..22);
        assert_eq!(batches(&r[2], 24), 22..25);
    }
}
