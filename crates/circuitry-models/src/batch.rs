//! Padded batches of token sequences with attention masks and position ids.

use burn::prelude::*;

pub use circuitry_vocab::PaddingSide;

/// A batch of token sequences of possibly different lengths, padded to a rectangle.
///
/// Position ids count real tokens only, so a left-padded sequence sees the same positions (and
/// therefore the same logits) as when it is run alone.
#[derive(Clone, Debug)]
pub struct TokenBatch {
    /// `[batch, seq]` token ids (padding slots hold `pad_id`).
    pub ids: Tensor<2, Int>,
    /// `[batch, seq]` position ids of each slot.
    pub positions: Tensor<2, Int>,
    /// `[batch, seq]`, true on real tokens; `None` when no row is padded.
    pub key_mask: Option<Tensor<2, Bool>>,
    /// Host copy of the unpadded rows.
    pub rows: Vec<Vec<u32>>,
    pub side: PaddingSide,
    pub seq_len: usize,
}

impl TokenBatch {
    /// Pads `rows` to the longest one. Panics on an empty batch or an empty row; callers validate
    /// datasets before batching.
    pub fn new(rows: &[Vec<u32>], pad_id: u32, side: PaddingSide, device: &Device) -> TokenBatch {
        assert!(!rows.is_empty(), "a batch needs at least one sequence");
        assert!(
            rows.iter().all(|r| !r.is_empty()),
            "sequences must be non-empty"
        );
        let b = rows.len();
        let seq_len = rows.iter().map(Vec::len).max().unwrap_or(0);
        let mut ids = vec![pad_id as i64; b * seq_len];
        let mut positions = vec![0i64; b * seq_len];
        let mut mask = vec![false; b * seq_len];
        for (r, row) in rows.iter().enumerate() {
            let offset = match side {
                PaddingSide::Right => 0,
                PaddingSide::Left => seq_len - row.len(),
            };
            for (i, &tok) in row.iter().enumerate() {
                let slot = r * seq_len + offset + i;
                ids[slot] = tok as i64;
                positions[slot] = i as i64;
                mask[slot] = true;
            }
        }
        let padded = mask.iter().any(|m| !m);
        TokenBatch {
            ids: Tensor::from_data(TensorData::new(ids, [b, seq_len]), device),
            positions: Tensor::from_data(TensorData::new(positions, [b, seq_len]), device),
            key_mask: padded
                .then(|| Tensor::from_data(TensorData::new(mask, [b, seq_len]), device)),
            rows: rows.to_vec(),
            side,
            seq_len,
        }
    }

    /// A batch of equal-length rows (no padding).
    pub fn unpadded(rows: &[Vec<u32>], device: &Device) -> TokenBatch {
        TokenBatch::new(rows, 0, PaddingSide::Right, device)
    }

    /// The batch cut to its first `s` slots (the prefix pass whose keys and values a pass over
    /// the remaining slots reads through `Span::past`): same rows, padding and position ids;
    /// each row keeps its real tokens in those slots (possibly none).
    pub fn first_slots(&self, s: usize) -> TokenBatch {
        assert!(
            s <= self.seq_len,
            "{s} slots of a batch of {}",
            self.seq_len
        );
        let b = self.batch_size();
        let rows = (0..b)
            .map(|r| {
                let pad = self.seq_len - self.rows[r].len();
                match self.side {
                    PaddingSide::Right => self.rows[r][..s.min(self.rows[r].len())].to_vec(),
                    PaddingSide::Left => self.rows[r][..s.saturating_sub(pad)].to_vec(),
                }
            })
            .collect();
        TokenBatch {
            ids: self.ids.clone().slice([0..b, 0..s]),
            positions: self.positions.clone().slice([0..b, 0..s]),
            key_mask: self.key_mask.clone().map(|m| m.slice([0..b, 0..s])),
            rows,
            side: self.side,
            seq_len: s,
        }
    }

    pub fn batch_size(&self) -> usize {
        self.rows.len()
    }

    /// The slot (column) holding the `i`-th real token of row `r`.
    pub fn slot(&self, r: usize, i: usize) -> usize {
        match self.side {
            PaddingSide::Right => i,
            PaddingSide::Left => self.seq_len - self.rows[r].len() + i,
        }
    }

    /// The slot of the last real token of each row.
    pub fn last_slots(&self) -> Vec<usize> {
        (0..self.rows.len())
            .map(|r| self.slot(r, self.rows[r].len() - 1))
            .collect()
    }

    /// Largest position id in the batch plus one.
    pub fn max_len(&self) -> usize {
        self.rows.iter().map(Vec::len).max().unwrap_or(0)
    }

    pub fn device(&self) -> Device {
        self.ids.device()
    }
}
