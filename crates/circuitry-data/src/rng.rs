//! A small, version-stable pseudo-random number generator.
//!
//! Experiment files must reproduce exactly across dependency upgrades, so this crate does not use
//! the `rand` crate (whose algorithms and sampling methods may change between versions). The
//! algorithms here are fixed and documented; a golden test pins their first outputs.
//!
//! - [`SplitMix64`] (Steele, Lea and Flood 2014; the reference `splitmix64.c` by Vigna) expands a
//!   64-bit seed into the 256-bit state of
//! - [`Rng`], **xoshiro256\*\*** 1.0 (Blackman and Vigna 2018), the generator itself.
//! - [`Rng::below`] draws an integer uniformly from `[0, n)` without modulo bias with Lemire's
//!   multiply-and-reject method ("Fast Random Integer Generation in an Interval", 2019): the
//!   128-bit product `x * n` is rejected while its low half is below `2^64 mod n`.
//! - [`derive_seed`] gives each dataset its own stream from the experiment seed and a label
//!   (the dataset's name), via blake3 in key-derivation mode.
//!
//! Changing anything here changes every generated dataset: don't, or bump the derivation
//! context and document the break.

/// SplitMix64: used only to seed [`Rng`] from a single `u64`.
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// xoshiro256** seeded through [`SplitMix64`], with unbiased integer sampling.
#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// A generator whose state is the first four outputs of `SplitMix64::new(seed)` (never all
    /// zero, since SplitMix64 is a bijection of its counter).
    pub fn new(seed: u64) -> Rng {
        let mut sm = SplitMix64::new(seed);
        Rng {
            s: [sm.next_u64(), sm.next_u64(), sm.next_u64(), sm.next_u64()],
        }
    }

    /// The next 64 uniformly distributed bits.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// A uniform integer in `[0, n)` (Lemire's method, exact: no modulo bias). Panics if `n == 0`.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "Rng::below(0)");
        let mut m = u128::from(self.next_u64()) * u128::from(n);
        let mut low = m as u64;
        if low < n {
            let threshold = n.wrapping_neg() % n;
            while low < threshold {
                m = u128::from(self.next_u64()) * u128::from(n);
                low = m as u64;
            }
        }
        (m >> 64) as u64
    }

    /// A uniform index in `[0, len)`. Panics if `len == 0`.
    pub fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    /// A uniform integer in `[lo, hi)`. Panics if `lo >= hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        assert!(lo < hi, "Rng::range({lo}, {hi}): empty range");
        lo + self.below(hi - lo)
    }

    /// `k` distinct indices from `[0, n)`, in draw order, every ordered k-tuple equally likely.
    /// Draws exactly `k` values from [`Rng::below`] (with `n`, `n-1`, ...), mapping each onto the
    /// indices not yet taken. Panics if `k > n`.
    pub fn distinct(&mut self, n: usize, k: usize) -> Vec<usize> {
        assert!(
            k <= n,
            "Rng::distinct: cannot draw {k} distinct values from {n}"
        );
        let mut taken: Vec<usize> = Vec::with_capacity(k);
        let mut out = Vec::with_capacity(k);
        for i in 0..k {
            // the r-th (0-based) index in increasing order that is not yet taken
            let mut v = self.index(n - i);
            let mut sorted = taken.clone();
            sorted.sort_unstable();
            for &t in &sorted {
                if t <= v {
                    v += 1;
                }
            }
            taken.push(v);
            out.push(v);
        }
        out
    }

    /// Fisher–Yates shuffle (from the back, `below(i + 1)` for `i = len-1 .. 1`).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.index(i + 1);
            items.swap(i, j);
        }
    }
}

/// Context string of [`derive_seed`]'s blake3 key derivation. Part of the reproducibility
/// contract: changing it changes every derived seed.
pub const DERIVE_SEED_CONTEXT: &str = "circuitry-data 2025 derive_seed v1";

/// A seed for the stream labelled `label` (e.g. a dataset's name) under the experiment seed
/// `base_seed`: the first 8 bytes (little-endian) of
/// `blake3::derive_key(DERIVE_SEED_CONTEXT, base_seed.to_le_bytes() ++ label.as_bytes())`.
pub fn derive_seed(base_seed: u64, label: &str) -> u64 {
    let mut hasher = blake3::Hasher::new_derive_key(DERIVE_SEED_CONTEXT);
    hasher.update(&base_seed.to_le_bytes());
    hasher.update(label.as_bytes());
    let hash = hasher.finalize();
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&hash.as_bytes()[..8]);
    u64::from_le_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks that the first draws of `next` are `expected`; `stream` names it in a failure.
    fn assert_first_draws(stream: &str, mut next: impl FnMut() -> u64, expected: &[u64]) {
        let got: Vec<u64> = expected.iter().map(|_| next()).collect();
        assert_eq!(got, expected, "first draws of {stream}");
    }

    #[test]
    fn splitmix64_matches_published_sequence() {
        // The reference sequence for seed 1234567 (Rosetta Code, "Pseudo-random numbers/Splitmix64").
        let mut sm = SplitMix64::new(1_234_567);
        assert_first_draws(
            "SplitMix64::new(1234567).next_u64()",
            || sm.next_u64(),
            &[
                6_457_827_717_110_365_317,
                3_203_168_211_198_807_973,
                9_817_491_932_198_370_423,
                4_593_380_528_125_082_431,
                16_408_922_859_458_223_821,
            ],
        );
    }

    #[test]
    fn xoshiro_golden_outputs() {
        // Pinned values, cross-checked against an independent Python transcription of the
        // reference C code (splitmix64.c seeding xoshiro256starstar.c, Lemire's bounded draw).
        let mut rng = Rng::new(0);
        assert_first_draws(
            "Rng::new(0).next_u64()",
            || rng.next_u64(),
            &[
                11_091_344_671_253_066_420,
                13_793_997_310_169_335_082,
                1_900_383_378_846_508_768,
                7_684_712_102_626_143_532,
            ],
        );
        let mut rng = Rng::new(42);
        assert_first_draws(
            "Rng::new(42).below(1000)",
            || rng.below(1000),
            &[83, 378, 680, 924, 991, 769, 719, 850],
        );
    }

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut rng = Rng::new(7);
        let mut seen = [0usize; 7];
        for _ in 0..7000 {
            seen[rng.below(7) as usize] += 1;
        }
        assert!(seen.iter().all(|&c| c > 800 && c < 1200), "{seen:?}");
        assert_eq!(Rng::new(1).below(1), 0);
        // a huge bound exercises the rejection branch without looping forever
        let mut rng = Rng::new(3);
        for _ in 0..100 {
            assert!(rng.below(u64::MAX - 1) < u64::MAX - 1);
        }
    }

    #[test]
    fn distinct_draws_are_distinct() {
        let mut rng = Rng::new(11);
        for _ in 0..200 {
            let d = rng.distinct(5, 5);
            let mut s = d.clone();
            s.sort_unstable();
            assert_eq!(s, [0, 1, 2, 3, 4]);
        }
        let mut counts = [0usize; 4];
        for _ in 0..4000 {
            let d = rng.distinct(4, 2);
            assert_ne!(d[0], d[1]);
            counts[d[1]] += 1;
        }
        assert!(counts.iter().all(|&c| c > 850 && c < 1150), "{counts:?}");
    }
}
