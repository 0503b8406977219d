//! GGML tensor data types: their ids and names, their block layout (so that a tensor's byte size,
//! and therefore a corrupt offset, can be checked for every type, supported or not), and which of
//! them circuitry dequantizes.

use super::{dequant, dequant_k};

/// Dequantizes whole blocks: `bytes` holds `n` blocks, `out` receives their `n * block` values.
pub(super) type Kernel = fn(bytes: &[u8], out: &mut [f32]);

/// `(id, name, values per block, bytes per block)` of every type in ggml's `ggml_type` enum (as of
/// gguf-py 0.19), so that errors can name unsupported types.
const LAYOUTS: &[(u32, &str, usize, usize)] = &[
    (0, "F32", 1, 4),
    (1, "F16", 1, 2),
    (2, "Q4_0", 32, 18),
    (3, "Q4_1", 32, 20),
    (6, "Q5_0", 32, 22),
    (7, "Q5_1", 32, 24),
    (8, "Q8_0", 32, 34),
    (9, "Q8_1", 32, 40),
    (10, "Q2_K", 256, 84),
    (11, "Q3_K", 256, 110),
    (12, "Q4_K", 256, 144),
    (13, "Q5_K", 256, 176),
    (14, "Q6_K", 256, 210),
    (15, "Q8_K", 256, 292),
    (16, "IQ2_XXS", 256, 66),
    (17, "IQ2_XS", 256, 74),
    (18, "IQ3_XXS", 256, 98),
    (19, "IQ1_S", 256, 50),
    (20, "IQ4_NL", 32, 18),
    (21, "IQ3_S", 256, 110),
    (22, "IQ2_S", 256, 82),
    (23, "IQ4_XS", 256, 136),
    (24, "I8", 1, 1),
    (25, "I16", 1, 2),
    (26, "I32", 1, 4),
    (27, "I64", 1, 8),
    (28, "F64", 1, 8),
    (29, "IQ1_M", 256, 56),
    (30, "BF16", 1, 2),
    (34, "TQ1_0", 256, 54),
    (35, "TQ2_0", 256, 66),
    (39, "MXFP4", 32, 17),
    (40, "NVFP4", 64, 36),
    (41, "Q1_0", 128, 18),
];

/// The types circuitry dequantizes, as listed in errors.
pub const SUPPORTED: &str =
    "F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K";

/// A GGML data type id as stored in a tensor info (possibly one this build does not know).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GgmlType(pub u32);

impl GgmlType {
    fn entry(self) -> Option<&'static (u32, &'static str, usize, usize)> {
        LAYOUTS.iter().find(|e| e.0 == self.0)
    }

    /// ggml's name for the type (`Q4_K`), or `unknown type N`.
    pub fn name(self) -> String {
        match self.entry() {
            Some(e) => e.1.to_string(),
            None => format!("unknown type {}", self.0),
        }
    }

    /// `(values per block, bytes per block)`, for every type ggml defines.
    pub fn layout(self) -> Option<(usize, usize)> {
        self.entry().map(|e| (e.2, e.3))
    }

    /// The dequantization kernel, for supported types.
    pub(super) fn kernel(self) -> Option<Kernel> {
        Some(match self.0 {
            0 => dequant::f32,
            1 => dequant::f16,
            30 => dequant::bf16,
            2 => dequant::q4_0,
            3 => dequant::q4_1,
            6 => dequant::q5_0,
            7 => dequant::q5_1,
            8 => dequant::q8_0,
            10 => dequant_k::q2_k,
            11 => dequant_k::q3_k,
            12 => dequant_k::q4_k,
            13 => dequant_k::q5_k,
            14 => dequant_k::q6_k,
            _ => return None,
        })
    }

    /// Whether circuitry can dequantize this type.
    pub fn is_supported(self) -> bool {
        self.kernel().is_some()
    }
}

/// Below this many blocks per thread, spawning threads costs more than it saves.
const MIN_BLOCKS_PER_THREAD: usize = 4096;

/// Dequantizes `bytes` (a whole number of blocks of `ty`) to f32, in parallel for large tensors.
/// `None` when the type is unsupported or `bytes` is not a whole number of blocks.
pub(super) fn dequantize(ty: GgmlType, bytes: &[u8]) -> Option<Vec<f32>> {
    let kernel = ty.kernel()?;
    let (block, size) = ty.layout()?;
    if !bytes.len().is_multiple_of(size) {
        return None;
    }
    let n_blocks = bytes.len() / size;
    let mut out = vec![0f32; n_blocks * block];
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = cores.min(n_blocks / MIN_BLOCKS_PER_THREAD).max(1);
    if threads == 1 {
        kernel(bytes, &mut out);
    } else {
        let per_thread = n_blocks.div_ceil(threads);
        std::thread::scope(|s| {
            for (b, o) in bytes
                .chunks(per_thread * size)
                .zip(out.chunks_mut(per_thread * block))
            {
                s.spawn(move || kernel(b, o));
            }
        });
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_supported_type_has_a_layout_and_is_listed() {
        for &(id, name, _, _) in LAYOUTS {
            let ty = GgmlType(id);
            if ty.is_supported() {
                assert!(
                    SUPPORTED.split(", ").any(|s| s == name),
                    "{name} missing from SUPPORTED"
                );
            }
        }
        assert_eq!(
            SUPPORTED.split(", ").count(),
            LAYOUTS
                .iter()
                .filter(|e| GgmlType(e.0).is_supported())
                .count()
        );
        assert_eq!(GgmlType(99).name(), "unknown type 99");
        assert!(!GgmlType(99).is_supported());
    }

    #[test]
    fn parallel_and_serial_dequantization_agree() {
        // Enough Q8_0 blocks to use several threads, with varied scales and values.
        let n_blocks = 3 * MIN_BLOCKS_PER_THREAD + 17;
        let mut bytes = Vec::with_capacity(n_blocks * 34);
        for i in 0..n_blocks {
            bytes.extend_from_slice(&half::f16::from_f32(0.001 * (i % 97) as f32).to_le_bytes());
            bytes.extend((0..32).map(|j| ((i * 31 + j * 7) % 256) as u8));
        }
        let parallel = dequantize(GgmlType(8), &bytes).unwrap();
        let mut serial = vec![0f32; n_blocks * 32];
        dequant::q8_0(&bytes, &mut serial);
        assert_eq!(parallel, serial);
    }
}
