//! Where training batches come from: any [`BatchSource`], or the built-in seeded generator of
//! repeated random tokens, plus the fixed `[BOS] r r` evaluation set.

use circuitry_data::{Rng, derive_seed};

use crate::config::{BOS_TOKEN, TrainConfig};

/// Token rows for each update. Rows of one batch must have the same length (at least 2, at most
/// the model's `n_ctx`) and ids below the vocabulary size; the loss is next-token cross-entropy
/// over every position after the first token (BOS).
///
/// The same source must return the same batch for the same step for a run to be reproducible.
pub trait BatchSource {
    fn batch(&mut self, step: usize) -> Vec<Vec<u32>>;
}

impl<F: FnMut(usize) -> Vec<Vec<u32>>> BatchSource for F {
    fn batch(&mut self, step: usize) -> Vec<Vec<u32>> {
        self(step)
    }
}

/// The synthetic distribution of [`crate::config::DataConfig`]: `batch_size` rows of
/// `[BOS] noise r gap r noise` (with `fill`, further `r' gap' r'` pairs follow the first one).
/// Batch `step` depends only on the seed and `step`: it is drawn from
/// `Rng::new(derive_seed(seed, "train/<step>"))`, row by row. For each pair a row draws, in
/// order: the repeat length `L` (uniform in `[min_repeat, min(max_repeat, R / 2)]`, `R` the
/// slots left), the gap `g` (uniform in `[0, min(max_gap, F)]`, `F = R - 2L`), for the first
/// pair only the number of noise tokens before it (uniform in `[0, F - g]`), the `L` tokens of
/// `r`, then the noise tokens before and in the gap. The tail is noise, drawn last. Every token
/// is uniform over `1..d_vocab` (never BOS).
#[derive(Clone, Debug)]
pub struct RepeatedTokenBatches {
    pub seed: u64,
    pub batch_size: usize,
    pub d_vocab: usize,
    pub seq_len: usize,
    pub min_repeat: usize,
    pub max_repeat: usize,
    pub max_gap: usize,
    pub fill: bool,
}

impl RepeatedTokenBatches {
    /// The training source a configuration declares.
    pub fn from_config(cfg: &TrainConfig) -> RepeatedTokenBatches {
        RepeatedTokenBatches {
            seed: cfg.seed,
            batch_size: cfg.optim.batch_size,
            d_vocab: cfg.arch.d_vocab,
            seq_len: cfg.data.seq_len,
            min_repeat: cfg.data.min_repeat,
            max_repeat: cfg.data.max_repeat,
            max_gap: cfg.data.max_gap,
            fill: cfg.data.fill,
        }
    }

    /// One row from `rng`, as the type's documentation describes.
    pub fn row(&self, rng: &mut Rng) -> Vec<u32> {
        let mut row = Vec::with_capacity(self.seq_len);
        row.push(BOS_TOKEN);
        loop {
            let room = self.seq_len - row.len();
            let max_len = self.max_repeat.min(room / 2);
            if max_len < self.min_repeat || (row.len() > 1 && !self.fill) {
                break;
            }
            let len = rng.range(self.min_repeat as u64, max_len as u64 + 1) as usize;
            let free = room - 2 * len;
            let gap = rng.index(self.max_gap.min(free) + 1);
            let before = if row.len() == 1 {
                rng.index(free - gap + 1)
            } else {
                0
            };
            let r: Vec<u32> = (0..len).map(|_| token(rng, self.d_vocab)).collect();
            // noise before, r, gap, r
            row.extend((0..before).map(|_| token(rng, self.d_vocab)));
            row.extend_from_slice(&r);
            row.extend((0..gap).map(|_| token(rng, self.d_vocab)));
            row.extend_from_slice(&r);
        }
        while row.len() < self.seq_len {
            row.push(token(rng, self.d_vocab));
        }
        row
    }
}

impl BatchSource for RepeatedTokenBatches {
    fn batch(&mut self, step: usize) -> Vec<Vec<u32>> {
        let mut rng = Rng::new(derive_seed(self.seed, &format!("train/{step}")));
        (0..self.batch_size).map(|_| self.row(&mut rng)).collect()
    }
}

fn token(rng: &mut Rng, d_vocab: usize) -> u32 {
    1 + rng.index(d_vocab - 1) as u32
}

/// `n` rows of `[BOS] r r` with `|r| = repeat_len`, tokens uniform over `1..d_vocab`, drawn row
/// by row from `Rng::new(seed)`.
pub fn repeated_rows(seed: u64, n: usize, repeat_len: usize, d_vocab: usize) -> Vec<Vec<u32>> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| {
            let r: Vec<u32> = (0..repeat_len).map(|_| token(&mut rng, d_vocab)).collect();
            let mut row = Vec::with_capacity(2 * repeat_len + 1);
            row.push(BOS_TOKEN);
            row.extend_from_slice(&r);
            row.extend_from_slice(&r);
            row
        })
        .collect()
}

/// The held-out evaluation set of a configuration: [`repeated_rows`] with seed
/// `derive_seed(seed, "eval")`, a stream no training batch uses.
pub fn eval_rows(cfg: &TrainConfig) -> Vec<Vec<u32>> {
    repeated_rows(
        derive_seed(cfg.seed, "eval"),
        cfg.eval.sequences,
        cfg.eval.repeat_len,
        cfg.arch.d_vocab,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_contain_a_repeat() {
        let mut src = RepeatedTokenBatches {
            seed: 3,
            batch_size: 50,
            d_vocab: 20,
            seq_len: 33,
            min_repeat: 4,
            max_repeat: 16,
            max_gap: 0,
            fill: false,
        };
        let batch = src.batch(7);
        assert_eq!(batch, src.batch(7));
        assert_ne!(batch, src.batch(8));
        for row in &batch {
            assert_eq!(row.len(), 33);
            assert_eq!(row[0], BOS_TOKEN);
            assert!(row[1..].iter().all(|&t| (1..20).contains(&t)));
            let found =
                (4..=16).any(|l| (1..=33 - 2 * l).any(|s| row[s..s + l] == row[s + l..s + 2 * l]));
            assert!(found, "{row:?}");
        }
        let exact = RepeatedTokenBatches {
            min_repeat: 16,
            ..src.clone()
        };
        let mut rng = Rng::new(1);
        let row = exact.row(&mut rng);
        assert_eq!(row[1..17], row[17..33]);
    }

    #[test]
    fn gaps_and_fill() {
        let src = RepeatedTokenBatches {
            seed: 1,
            batch_size: 1,
            d_vocab: 1000,
            seq_len: 64,
            min_repeat: 6,
            max_repeat: 10,
            max_gap: 5,
            fill: true,
        };
        let mut rng = Rng::new(4);
        let mut total = 0;
        for _ in 0..50 {
            let row = src.row(&mut rng);
            assert_eq!(row.len(), 64);
            // positions whose token reappears 6..=15 tokens later (a large vocabulary makes
            // chance repeats rare): at least one pair per row, usually more
            let repeats = (1..64)
                .filter(|&i| (i + 6..(i + 16).min(64)).any(|j| row[j] == row[i]))
                .count();
            assert!(repeats >= 6, "{row:?}");
            total += repeats;
        }
        assert!(total > 50 * 12, "{total}");
    }

    #[test]
    fn eval_rows_are_bos_r_r() {
        let rows = repeated_rows(9, 4, 5, 10);
        for r in rows {
            assert_eq!(r.len(), 11);
            assert_eq!(r[0], 0);
            assert_eq!(r[1..6], r[6..11]);
        }
    }
}
