//! Dequantization of GGML's float types and its "legacy" 32-value block quantizations (Q4_0,
//! Q4_1, Q5_0, Q5_1, Q8_0). Each kernel takes whole blocks and follows the arithmetic of ggml's
//! reference `dequantize_row_*` (and of gguf-py's `dequantize`) operation for operation, so the
//! results agree bit for bit: `d * q` for symmetric types, `d * q + m` for those with a minimum.
//!
//! Within a 32-value block, byte `j` of the packed nibbles holds value `j` in its low half and
//! value `j + 16` in its high half; Q5 types keep the fifth bits of all 32 values in one u32.

/// Reads a little-endian f16 at `at`.
pub(super) fn f16_at(b: &[u8], at: usize) -> f32 {
    half::f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

pub(super) fn f32(bytes: &[u8], out: &mut [f32]) {
    for (b, o) in bytes.chunks_exact(4).zip(out.iter_mut()) {
        *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    }
}

pub(super) fn f16(bytes: &[u8], out: &mut [f32]) {
    for (b, o) in bytes.chunks_exact(2).zip(out.iter_mut()) {
        *o = half::f16::from_le_bytes([b[0], b[1]]).to_f32();
    }
}

/// bf16 is the top half of an f32, so widening is exact.
pub(super) fn bf16(bytes: &[u8], out: &mut [f32]) {
    for (b, o) in bytes.chunks_exact(2).zip(out.iter_mut()) {
        *o = f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16);
    }
}

/// Low nibble of byte `j` for `j < 16`, high nibble of byte `j - 16` otherwise.
fn nibble(qs: &[u8], j: usize) -> u8 {
    if j < 16 {
        qs[j] & 0x0F
    } else {
        qs[j - 16] >> 4
    }
}

/// Q4_0: `d: f16, qs: [u8; 16]`; `x = d * (q - 8)`.
pub(super) fn q4_0(bytes: &[u8], out: &mut [f32]) {
    for (b, o) in bytes.chunks_exact(18).zip(out.chunks_exact_mut(32)) {
        let d = f16_at(b, 0);
        let qs = &b[2..18];
        for (j, x) in o.iter_mut().enumerate() {
            *x = d * (nibble(qs, j) as i32 - 8) as f32;
        }
    }
}

/// Q4_1: `d: f16, m: f16, qs: [u8; 16]`; `x = d * q + m`.
pub(super) fn q4_1(bytes: &[u8], out: &mut [f32]) {
    for (b, o) in bytes.chunks_exact(20).zip(out.chunks_exact_mut(32)) {
        let (d, m) = (f16_at(b, 0), f16_at(b, 2));
        let qs = &b[4..20];
        for (j, x) in o.iter_mut().enumerate() {
            *x = d * nibble(qs, j) as f32 + m;
        }
    }
}

/// Q5_0: `d: f16, qh: u32, qs: [u8; 16]`; `x = d * (q - 16)` with bit `j` of `qh` as bit 4.
pub(super) fn q5_0(bytes: &[u8], out: &mut [f32]) {
    for (b, o) in bytes.chunks_exact(22).zip(out.chunks_exact_mut(32)) {
        let d = f16_at(b, 0);
        let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
        let qs = &b[6..22];
        for (j, x) in o.iter_mut().enumerate() {
            let q = nibble(qs, j) | (((qh >> j) & 1) as u8) << 4;
            *x = d * (q as i32 - 16) as f32;
        }
    }
}

/// Q5_1: `d: f16, m: f16, qh: u32, qs: [u8; 16]`; `x = d * q + m`.
pub(super) fn q5_1(bytes: &[u8], out: &mut [f32]) {
    for (b, o) in bytes.chunks_exact(24).zip(out.chunks_exact_mut(32)) {
        let (d, m) = (f16_at(b, 0), f16_at(b, 2));
        let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
        let qs = &b[8..24];
        for (j, x) in o.iter_mut().enumerate() {
            let q = nibble(qs, j) | (((qh >> j) & 1) as u8) << 4;
            *x = d * q as f32 + m;
        }
    }
}

/// Q8_0: `d: f16, qs: [i8; 32]`; `x = d * q`.
pub(super) fn q8_0(bytes: &[u8], out: &mut [f32]) {
    for (b, o) in bytes.chunks_exact(34).zip(out.chunks_exact_mut(32)) {
        let d = f16_at(b, 0);
        for (q, x) in b[2..34].iter().zip(o.iter_mut()) {
            *x = d * (*q as i8) as f32;
        }
    }
}
