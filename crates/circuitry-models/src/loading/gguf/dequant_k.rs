//! Dequantization of GGML's K-quants: 256-value super-blocks split into 16 or 8 sub-blocks, each
//! with its own quantized scale (and minimum) relative to the super-block's f16 scale(s). The
//! byte layouts are those of ggml's `block_q*_K` structs; the arithmetic follows gguf-py's
//! `dequantize` operation for operation (`(d * sc) * q - (dmin * m)`), so results agree bit for
//! bit.
//!
//! Packing convention shared by all of them: values come in 128-value halves; within a half, the
//! 2-bit (or 4-bit) planes of one run of 32 (or 64) bytes hold consecutive groups of 32 values,
//! lowest bits first.

use super::dequant::f16_at;

const QK_K: usize = 256;

/// Q2_K: `scales: [u8; 16]` (low nibble scale, high nibble min, per 16 values), `qs: [u8; 64]`
/// (2-bit), `d: f16`, `dmin: f16`.
pub(super) fn q2_k(bytes: &[u8], out: &mut [f32]) {
    for (b, o) in bytes.chunks_exact(84).zip(out.chunks_exact_mut(QK_K)) {
        let (scales, qs) = (&b[0..16], &b[16..80]);
        let (d, dmin) = (f16_at(b, 80), f16_at(b, 82));
        for (e, x) in o.iter_mut().enumerate() {
            let sc = scales[e / 16];
            let dl = d * (sc & 0x0F) as f32;
            let ml = dmin * (sc >> 4) as f32;
            let (half, plane, l) = (e / 128, (e % 128) / 32, e % 32);
            let q = (qs[half * 32 + l] >> (2 * plane)) & 3;
            *x = dl * q as f32 - ml;
        }
    }
}

/// Q3_K: `hmask: [u8; 32]` (bit 2 of each value, inverted), `qs: [u8; 64]` (low 2 bits),
/// `scales: [u8; 12]` (16 six-bit scales, offset by 32), `d: f16`.
pub(super) fn q3_k(bytes: &[u8], out: &mut [f32]) {
    for (b, o) in bytes.chunks_exact(110).zip(out.chunks_exact_mut(QK_K)) {
        let (hmask, qs, scales) = (&b[0..32], &b[32..96], &b[96..108]);
        let d = f16_at(b, 108);
        // Scale i: low 4 bits from nibble i/8 of byte i%8, high 2 bits from bits 2*(i/4) of
        // byte 8 + i%4.
        let mut dl = [0f32; 16];
        for (i, dl) in dl.iter_mut().enumerate() {
            let low = (scales[i % 8] >> (4 * (i / 8))) & 0x0F;
            let high = (scales[8 + i % 4] >> (2 * (i / 4))) & 0x03;
            *dl = d * ((low | high << 4) as i32 - 32) as f32;
        }
        for (e, x) in o.iter_mut().enumerate() {
            let (half, plane, l) = (e / 128, (e % 128) / 32, e % 32);
            let low = ((qs[half * 32 + l] >> (2 * plane)) & 3) as i32;
            // A set mask bit means "no offset"; a clear one subtracts 4.
            let high = (((hmask[l] >> (e / 32)) & 1) ^ 1) as i32;
            *x = dl[e / 16] * (low - (high << 2)) as f32;
        }
    }
}

/// The eight 6-bit scales and minima of Q4_K and Q5_K, packed into 12 bytes: bytes 0-3 hold
/// scales 0-3 (low 6 bits) and the top bits of scales 4-7; bytes 4-7 the same for the minima;
/// bytes 8-11 the low 4 bits of scales 4-7 (low nibble) and minima 4-7 (high nibble).
fn scales_and_mins(s: &[u8]) -> ([u8; 8], [u8; 8]) {
    let mut sc = [0u8; 8];
    let mut mn = [0u8; 8];
    for k in 0..4 {
        sc[k] = s[k] & 0x3F;
        mn[k] = s[4 + k] & 0x3F;
        sc[4 + k] = (s[8 + k] & 0x0F) | ((s[k] >> 2) & 0x30);
        mn[4 + k] = (s[8 + k] >> 4) | ((s[4 + k] >> 2) & 0x30);
    }
    (sc, mn)
}

/// Per-sub-block scale `d * sc` and offset `dmin * m` of Q4_K and Q5_K.
fn scale_offsets(b: &[u8]) -> ([f32; 8], [f32; 8]) {
    let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
    let (sc, mn) = scales_and_mins(&b[4..16]);
    (sc.map(|s| d * s as f32), mn.map(|m| dmin * m as f32))
}

/// The 4-bit value `e` of a Q4_K/Q5_K block: 64 values per 32 bytes, low nibbles first.
fn low_nibble(qs: &[u8], e: usize) -> u8 {
    (qs[(e / 64) * 32 + e % 32] >> (4 * ((e % 64) / 32))) & 0x0F
}

/// Q4_K: `d: f16, dmin: f16, scales: [u8; 12], qs: [u8; 128]`; 8 sub-blocks of 32.
pub(super) fn q4_k(bytes: &[u8], out: &mut [f32]) {
    for (b, o) in bytes.chunks_exact(144).zip(out.chunks_exact_mut(QK_K)) {
        let (dd, dm) = scale_offsets(b);
        let qs = &b[16..144];
        for (e, x) in o.iter_mut().enumerate() {
            let j = e / 32;
            *x = dd[j] * low_nibble(qs, e) as f32 - dm[j];
        }
    }
}

/// Q5_K: `d: f16, dmin: f16, scales: [u8; 12], qh: [u8; 32], qs: [u8; 128]`; bit `j` of
/// `qh[l]` is bit 4 of value `32 * j + l`.
pub(super) fn q5_k(bytes: &[u8], out: &mut [f32]) {
    for (b, o) in bytes.chunks_exact(176).zip(out.chunks_exact_mut(QK_K)) {
        let (dd, dm) = scale_offsets(b);
        let (qh, qs) = (&b[16..48], &b[48..176]);
        for (e, x) in o.iter_mut().enumerate() {
            let j = e / 32;
            let q = low_nibble(qs, e) | ((qh[e % 32] >> j) & 1) << 4;
            *x = dd[j] * q as f32 - dm[j];
        }
    }
}

/// Q6_K: `ql: [u8; 128]` (low 4 bits), `qh: [u8; 64]` (high 2 bits), `scales: [i8; 16]`,
/// `d: f16`; `x = (d * scale) * (q - 32)`.
pub(super) fn q6_k(bytes: &[u8], out: &mut [f32]) {
    for (b, o) in bytes.chunks_exact(210).zip(out.chunks_exact_mut(QK_K)) {
        let (ql, qh, scales) = (&b[0..128], &b[128..192], &b[192..208]);
        let d = f16_at(b, 208);
        for (e, x) in o.iter_mut().enumerate() {
            let half = e / 128;
            let r = e % 128;
            let low = (ql[half * 64 + r % 64] >> (4 * (r / 64))) & 0x0F;
            let high = (qh[half * 32 + r % 32] >> (2 * (r / 32))) & 0x03;
            let q = (low | high << 4) as i32 - 32;
            *x = (d * (scales[e / 16] as i8) as f32) * q as f32;
        }
    }
}
