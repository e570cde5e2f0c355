//! Code packing (docs/design.md section 4): token i of a beat at bits [i*M*b, (i+1)*M*b), code m of
//! a token at bits [m*b, (m+1)*b), little-endian; unused high bits and the tail of the last
//! beat are zero. A beat lives in host memory as `words_per_beat` little-endian u64 words.

use ndarray::{Array2, ArrayView2};

use super::error::GoldenError;
use crate::spec::CodeLayout;

/// Writes `width` bits of `value` at bit `pos` of `words`.
fn put_bits(words: &mut [u64], pos: usize, width: u32, value: u64) {
    let (w, off) = (pos / 64, (pos % 64) as u32);
    words[w] |= value << off;
    if off + width > 64 {
        words[w + 1] |= value >> (64 - off);
    }
}

/// The 64 bits of `words` starting at bit `pos` (zeros past the end).
pub(crate) fn window64(words: &[u64], pos: usize) -> u64 {
    let (w, off) = (pos / 64, (pos % 64) as u32);
    let lo = words[w] >> off;
    match (off, words.get(w + 1)) {
        (0, _) | (_, None) => lo,
        (_, Some(&hi)) => lo | (hi << (64 - off)),
    }
}

/// Reads `width` (<= 32) bits at bit `pos` of `words` (one token's code field, or one
/// code); inlined into the scanning loops of the golden model and the runtime.
#[inline]
pub fn get_bits(words: &[u64], pos: usize, width: u32) -> u64 {
    let (w, off) = (pos / 64, (pos % 64) as u32);
    let mut v = words[w] >> off;
    if off + width > 64 {
        v |= words[w + 1] << (64 - off);
    }
    v & ((1u64 << width) - 1)
}

/// Packs codes (N x M, each below 2^b) into beats; returns `beats_for(N) * words_per_beat`
/// words.
pub fn pack(layout: &CodeLayout, codes: ArrayView2<u8>) -> Result<Vec<u64>, GoldenError> {
    let mut words = Vec::new();
    pack_into(layout, &mut words, 0, codes)?;
    Ok(words)
}

/// Packs codes (N x M) as tokens `start..start + N` of `words`, which holds `start` tokens
/// packed before (a runtime appending decoded tokens); grows `words` to
/// `beats_for(start + N)` beats. On error `words` is unchanged.
pub fn pack_into(
    layout: &CodeLayout,
    words: &mut Vec<u64>,
    start: usize,
    codes: ArrayView2<u8>,
) -> Result<(), GoldenError> {
    let (n, m) = codes.dim();
    if m != layout.m as usize {
        return Err(GoldenError::Shape {
            what: "codes",
            found: format!("({n}, {m})"),
            expected: format!("(N, {})", layout.m),
        });
    }
    let k = 1u32 << layout.code_bits;
    if let Some((t, mi, code)) = codes
        .indexed_iter()
        .find(|(_, &c)| u32::from(c) >= k)
        .map(|((t, mi), &c)| (t, mi, c))
    {
        return Err(GoldenError::CodeOutOfRange {
            token: start + t,
            subspace: mi,
            code: u32::from(code),
            k,
        });
    }
    words_for(layout, words, start)?;
    let wpb = layout.words_per_beat();
    let tpb = layout.tokens_per_beat as usize;
    let token_bits = layout.token_bits() as usize;
    let b = layout.code_bits;
    // Bits past the `start` tokens are zero (packing keeps tails zero), so OR-ing works.
    words.resize(layout.beats_for(start + n) * wpb, 0);
    for (i, row) in codes.outer_iter().enumerate() {
        let t = start + i;
        let beat = &mut words[(t / tpb) * wpb..(t / tpb + 1) * wpb];
        let base = (t % tpb) * token_bits;
        for (mi, &code) in row.iter().enumerate() {
            put_bits(beat, base + mi * b as usize, b, u64::from(code));
        }
    }
    Ok(())
}

/// Words that hold `n` tokens; an error if `words` is shorter.
pub fn words_for(layout: &CodeLayout, words: &[u64], n: usize) -> Result<usize, GoldenError> {
    let needed = layout.beats_for(n) * layout.words_per_beat();
    if words.len() < needed {
        return Err(GoldenError::Shape {
            what: "packed code beats",
            found: format!("{} words", words.len()),
            expected: format!("at least {needed} words for {n} tokens"),
        });
    }
    Ok(needed)
}

/// Unpacks the first `n` tokens of packed beats back to codes (N x M).
pub fn unpack(layout: &CodeLayout, words: &[u64], n: usize) -> Result<Array2<u8>, GoldenError> {
    words_for(layout, words, n)?;
    let wpb = layout.words_per_beat();
    let m = layout.m as usize;
    let tpb = layout.tokens_per_beat as usize;
    let token_bits = layout.token_bits() as usize;
    let b = layout.code_bits;
    Ok(Array2::from_shape_fn((n, m), |(t, mi)| {
        let beat = &words[(t / tpb) * wpb..(t / tpb + 1) * wpb];
        get_bits(beat, (t % tpb) * token_bits + mi * b as usize, b) as u8
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn places_codes_little_endian() {
        // M = 2, b = 3: token bits = 6, a 32-bit beat holds 5 tokens (2 padding bits).
        let layout = CodeLayout::new(2, 3, 32);
        let codes = array![[1u8, 2], [7, 0], [5, 5], [0, 0], [3, 6], [4, 1]];
        let words = pack(&layout, codes.view()).unwrap();
        assert_eq!(words.len(), 2);
        let expect0 = 1u64 | (2 << 3) | (7 << 6) | (5 << 12) | (5 << 15) | (3 << 24) | (6 << 27);
        assert_eq!(words[0], expect0);
        assert_eq!(words[1], 4 | (1 << 3)); // zero padded tail
        assert_eq!(unpack(&layout, &words, 6).unwrap(), codes);
        // Appending in pieces gives the same words.
        let mut grown = Vec::new();
        pack_into(&layout, &mut grown, 0, codes.slice(ndarray::s![..4, ..])).unwrap();
        pack_into(&layout, &mut grown, 4, codes.slice(ndarray::s![4.., ..])).unwrap();
        assert_eq!(grown, words);
    }

    #[test]
    fn tokens_may_straddle_64_bit_words() {
        let layout = CodeLayout::new(3, 7, 128); // 21-bit tokens, 6 per beat
        let codes = Array2::from_shape_fn((13, 3), |(t, m)| ((t * 37 + m * 11) % 128) as u8);
        let words = pack(&layout, codes.view()).unwrap();
        assert_eq!(words.len(), 3 * 2);
        assert_eq!(unpack(&layout, &words, 13).unwrap(), codes);
    }

    #[test]
    fn refuses_codes_beyond_k() {
        let layout = CodeLayout::new(1, 2, 32);
        let err = pack(&layout, array![[1u8], [4]].view()).unwrap_err();
        assert_eq!(
            err,
            GoldenError::CodeOutOfRange {
                token: 1,
                subspace: 0,
                code: 4,
                k: 4
            }
        );
    }
}
