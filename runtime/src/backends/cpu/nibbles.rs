//! The general path's scoring for 4-bit codes with byte shuffles (x86-64 with AVX2), as
//! fast-scan PQ does it, bit-exact with the integer LUT.
//!
//! A code of 4 bits indexes 16 LUT entries: one byte shuffle (`vpshufb`) looks up 32 tokens'
//! codes at once in a table held in a register. The LUT's entries are up to 16 bits, so
//! each subspace has two byte tables, the entries' low bytes and their high bytes (offset
//! by 128 to be unsigned); the sums of each are exact in 16-bit lanes (at most 256 codes of
//! 255), and a token's score is 256 x (high sum - 128 M) + low sum in 32 bits: the same
//! integer as the scalar path's, with no rounding anywhere.
//!
//! Tokens are stored whole (token-major), not interleaved by subspace as fast-scan
//! layouts are, so each block of 32 tokens is first transposed (16 x 16 bytes per 128-bit
//! lane, four rounds of unpacks) into one register per code byte.

use std::arch::x86_64::*;

use kvpq_core::spec::CodeLayout;

/// Tokens scored per block: one per byte of a 256-bit register.
const BLOCK: usize = 32;

/// Code bytes of a token transposed per round (one 128-bit lane of a token).
const COLUMN: usize = 16;

/// Writes the scores of the first `scores.len()` tokens of `beats` when the layout and the
/// CPU allow it (4-bit codes filling whole bytes and beats, LUT entries of 16 bits at most,
/// AVX2, the stream holding that many tokens); returns false, having written nothing,
/// otherwise.
pub(super) fn score(lut: &[i32], layout: &CodeLayout, beats: &[u64], scores: &mut [i32]) -> bool {
    let m = layout.m as usize;
    let fits = layout.code_bits == 4
        && m.is_multiple_of(2)
        && (1..=256).contains(&m)
        && layout.padding_bits == 0
        && layout.beat_bits.is_multiple_of(64)
        && lut.len() >= 16 * m
        && lut[..16 * m].iter().all(|&e| i16::try_from(e).is_ok())
        && scores.len() * (m / 2) <= beats.len() * 8;
    if !fits || !std::arch::is_x86_feature_detected!("avx2") {
        return false;
    }
    // Whole tokens in whole 64-bit words with no padding: the codes are one little-endian
    // byte stream, token t at bytes t * M/2.
    // SAFETY: u8 has no alignment or validity requirements, and the slice covers exactly
    // the words' bytes.
    let bytes = unsafe { std::slice::from_raw_parts(beats.as_ptr().cast::<u8>(), beats.len() * 8) };
    // SAFETY: AVX2 is present (checked above).
    unsafe { score_avx2(&lut[..16 * m], m, bytes, scores) };
    true
}

/// The byte tables of one code position: the low bytes of its 16 entries, and the high
/// bytes + 128; both zero past the token's last code.
#[target_feature(enable = "avx2")]
fn tables(lut: &[i32], m: usize, code: usize) -> (__m256i, __m256i) {
    let mut lo = [0u8; 16];
    let mut hi = [0u8; 16];
    if code < m {
        for (x, &e) in lut[code * 16..code * 16 + 16].iter().enumerate() {
            lo[x] = e as u8; // the low byte
            hi[x] = ((e >> 8) + 128) as u8; // -128..=127 as 0..=255
        }
    }
    // SAFETY: 16-byte arrays read unaligned.
    unsafe {
        (
            _mm256_broadcastsi128_si256(_mm_loadu_si128(lo.as_ptr().cast())),
            _mm256_broadcastsi128_si256(_mm_loadu_si128(hi.as_ptr().cast())),
        )
    }
}

/// 16 x 16 bytes per lane: byte j of input p becomes byte p of output j.
#[target_feature(enable = "avx2")]
fn transpose(r: &[__m256i; 16]) -> [__m256i; 16] {
    let mut s1 = [_mm256_setzero_si256(); 16];
    for i in 0..8 {
        // Tokens 2i, 2i+1; bytes 8h..8h+8 in s1[8h + i], 16-bit unit u = byte 8h + u.
        s1[i] = _mm256_unpacklo_epi8(r[2 * i], r[2 * i + 1]);
        s1[8 + i] = _mm256_unpackhi_epi8(r[2 * i], r[2 * i + 1]);
    }
    let mut s2 = [_mm256_setzero_si256(); 16];
    for h in 0..2 {
        for q in 0..4 {
            // Tokens 4q..4q+4; bytes 4c..4c+4 in s2[4c + q], 32-bit unit v = byte 4c + v.
            let (a, b) = (s1[8 * h + 2 * q], s1[8 * h + 2 * q + 1]);
            s2[8 * h + q] = _mm256_unpacklo_epi16(a, b);
            s2[8 * h + 4 + q] = _mm256_unpackhi_epi16(a, b);
        }
    }
    let mut s3 = [_mm256_setzero_si256(); 16];
    for c in 0..4 {
        for o in 0..2 {
            // Tokens 8o..8o+8; bytes 2d, 2d+1 in s3[2d + o], 64-bit unit e = byte 2d + e.
            let (a, b) = (s2[4 * c + 2 * o], s2[4 * c + 2 * o + 1]);
            s3[4 * c + o] = _mm256_unpacklo_epi32(a, b);
            s3[4 * c + 2 + o] = _mm256_unpackhi_epi32(a, b);
        }
    }
    let mut out = [_mm256_setzero_si256(); 16];
    for d in 0..8 {
        out[2 * d] = _mm256_unpacklo_epi64(s3[2 * d], s3[2 * d + 1]);
        out[2 * d + 1] = _mm256_unpackhi_epi64(s3[2 * d], s3[2 * d + 1]);
    }
    out
}

/// Sums of one byte table's lookups for 32 tokens, exact in 16-bit lanes: `all` adds each
/// 16-bit lane (even token + 256 x odd token, wrapping), `odd` adds its high bytes alone.
#[derive(Clone, Copy)]
struct Sums {
    all: __m256i,
    odd: __m256i,
}

impl Sums {
    #[target_feature(enable = "avx2")]
    fn new() -> Self {
        Self {
            all: _mm256_setzero_si256(),
            odd: _mm256_setzero_si256(),
        }
    }

    #[target_feature(enable = "avx2")]
    fn add(&mut self, bytes: __m256i) {
        self.all = _mm256_add_epi16(self.all, bytes);
        self.odd = _mm256_add_epi16(self.odd, _mm256_srli_epi16(bytes, 8));
    }

    /// The even and the odd tokens' sums (lane L, word i: tokens 16L + 2i and 16L + 2i + 1).
    #[target_feature(enable = "avx2")]
    fn split(&self) -> ([u16; 16], [u16; 16]) {
        // The even tokens' sums: all - 256 x odd, exact because each is below 2^16.
        let even = _mm256_sub_epi16(self.all, _mm256_slli_epi16(self.odd, 8));
        let (mut e, mut o) = ([0u16; 16], [0u16; 16]);
        // SAFETY: 32-byte arrays written unaligned.
        unsafe {
            _mm256_storeu_si256(e.as_mut_ptr().cast(), even);
            _mm256_storeu_si256(o.as_mut_ptr().cast(), self.odd);
        }
        (e, o)
    }
}

#[target_feature(enable = "avx2")]
fn score_avx2(lut: &[i32], m: usize, bytes: &[u8], scores: &mut [i32]) {
    let n = scores.len();
    let tb = m / 2;
    let columns = tb.div_ceil(COLUMN);
    // tabs[2 * byte + nibble]: the tables of code 2 * byte + nibble.
    let tabs: Vec<(__m256i, __m256i)> = (0..2 * columns * COLUMN)
        .map(|code| tables(lut, m, code))
        .collect();
    let nibble = _mm256_set1_epi8(0x0f);
    let offset = 128 * m as i32;
    let mut t0 = 0;
    // A block reads 16 bytes from each of its tokens' columns: stop where that would pass
    // the stream's end.
    while t0 + BLOCK <= n && (t0 + BLOCK - 1) * tb + columns * COLUMN <= bytes.len() {
        let (mut lo, mut hi) = (Sums::new(), Sums::new());
        for col in 0..columns {
            let mut r = [_mm256_setzero_si256(); 16];
            for (p, reg) in r.iter_mut().enumerate() {
                let at = |t: usize| bytes[(t0 + t) * tb + col * COLUMN..].as_ptr().cast();
                // SAFETY: the loop's condition keeps both 16-byte reads inside `bytes`.
                *reg = unsafe { _mm256_loadu2_m128i(at(16 + p), at(p)) };
            }
            for (j, v) in transpose(&r).into_iter().enumerate() {
                let code = 2 * (col * COLUMN + j);
                let low = _mm256_and_si256(v, nibble);
                let high = _mm256_and_si256(_mm256_srli_epi16(v, 4), nibble);
                for (tab, idx) in [(tabs[code], low), (tabs[code + 1], high)] {
                    lo.add(_mm256_shuffle_epi8(tab.0, idx));
                    hi.add(_mm256_shuffle_epi8(tab.1, idx));
                }
            }
        }
        let ((lo_even, lo_odd), (hi_even, hi_odd)) = (lo.split(), hi.split());
        let out: &mut [i32; BLOCK] = (&mut scores[t0..t0 + BLOCK])
            .try_into()
            .expect("a whole block");
        for w in 0..16 {
            let token = 16 * (w / 8) + 2 * (w % 8);
            out[token] = 256 * (i32::from(hi_even[w]) - offset) + i32::from(lo_even[w]);
            out[token + 1] = 256 * (i32::from(hi_odd[w]) - offset) + i32::from(lo_odd[w]);
        }
        t0 += BLOCK;
    }
    for (t, s) in scores.iter_mut().enumerate().skip(t0) {
        *s = bytes[t * tb..(t + 1) * tb]
            .iter()
            .enumerate()
            .map(|(j, &b)| {
                lut[32 * j + usize::from(b & 15)] + lut[32 * j + 16 + usize::from(b >> 4)]
            })
            .sum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvpq_core::golden::packing::get_bits;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// The scalar definition: the sum of each code's LUT entry.
    fn reference(lut: &[i32], layout: &CodeLayout, beats: &[u64], t: usize) -> i32 {
        let m = layout.m as usize;
        let wpb = layout.words_per_beat();
        let tpb = layout.tokens_per_beat as usize;
        let beat = &beats[(t / tpb) * wpb..(t / tpb + 1) * wpb];
        (0..m)
            .map(|c| {
                let pos = (t % tpb) * 4 * m + 4 * c;
                lut[16 * c + get_bits(beat, pos, 4) as usize]
            })
            .sum()
    }

    #[test]
    fn equals_the_sum_of_entries() {
        if !std::arch::is_x86_feature_detected!("avx2") {
            eprintln!("no AVX2 here: the shuffle path is not taken, nothing to check");
            return;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for (m, beat_bits) in [
            (32, 512),
            (8, 512),
            (16, 256),
            (64, 512),
            (2, 64),
            (34, 2176),
            (256, 1024),
        ] {
            let layout = CodeLayout::new(m, 4, beat_bits);
            for n in [0usize, 1, 31, 32, 33, 100, 1000] {
                let beats_needed = n.div_ceil(layout.tokens_per_beat as usize).max(1);
                let beats: Vec<u64> = (0..beats_needed * layout.words_per_beat())
                    .map(|_| rng.random())
                    .collect();
                // Extremes of 16 bits included: the byte split must hold at both ends.
                let lut: Vec<i32> = (0..16 * m as usize)
                    .map(|i| match i % 7 {
                        0 => i32::from(i16::MIN),
                        1 => i32::from(i16::MAX),
                        _ => rng.random_range(-32768..=32767),
                    })
                    .collect();
                let mut got = vec![i32::MIN; n];
                assert!(score(&lut, &layout, &beats, &mut got));
                for (t, s) in got.iter().enumerate() {
                    assert_eq!(
                        *s,
                        reference(&lut, &layout, &beats, t),
                        "m {m}, n {n}, token {t}"
                    );
                }
            }
        }
    }

    #[test]
    fn declines_what_it_cannot_score_exactly() {
        let layout = CodeLayout::new(32, 4, 512);
        let mut lut = vec![0i32; 16 * 32];
        lut[3] = 40_000; // wider than 16 bits
        let mut scores = [7i32; 4];
        assert!(!score(&lut, &layout, &[0; 8], &mut scores));
        let odd = CodeLayout::new(3, 4, 512); // half-byte tokens
        assert!(!score(&[0; 48], &odd, &[0; 8], &mut scores));
        let six = CodeLayout::new(32, 6, 512);
        assert!(!score(&[0; 64 * 32], &six, &[0; 8], &mut scores[..2]));
        // More tokens than the stream holds.
        assert!(!score(&[0; 16 * 32], &layout, &[0; 8], &mut [0; 5]));
        assert_eq!(scores, [7; 4], "a declined call writes nothing");
    }
}
