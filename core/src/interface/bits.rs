//! Packing integers into port words (little-endian 32-bit words, fields LSB first), as every
//! stream of the interface carries them.

/// Packs `values` as consecutive two's-complement fields of `bits` bits into 32-bit words.
pub fn pack_fields(values: impl IntoIterator<Item = i64>, bits: u32, total_bits: u32) -> Vec<u32> {
    let mut words = vec![0u32; total_bits.div_ceil(32) as usize];
    let mask = if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    for (i, v) in values.into_iter().enumerate() {
        let mut field = (v as u64) & mask;
        let mut pos = i * bits as usize;
        let mut left = bits as usize;
        while left > 0 {
            let (w, off) = (pos / 32, pos % 32);
            let take = (32 - off).min(left);
            words[w] |= ((field & ((1u64 << take) - 1)) as u32) << off;
            field >>= take;
            pos += take;
            left -= take;
        }
    }
    words
}

/// Field `index` of `bits` (at most 64) bits from port words: the inverse of [`pack_fields`]
/// without the sign.
pub fn field(words: &[u32], index: usize, bits: u32) -> u64 {
    let mut v = 0u64;
    for b in 0..bits as usize {
        let pos = index * bits as usize + b;
        v |= u64::from((words[pos / 32] >> (pos % 32)) & 1) << b;
    }
    v
}

/// Sign-extends the low `bits` bits of `v`.
pub fn sign_extend(v: u64, bits: u32) -> i64 {
    let shift = 64 - bits;
    ((v << shift) as i64) >> shift
}

/// The 32-bit words of beat `index` of packed code words (`words_per_beat` u64 per beat),
/// truncated to `beat_bits`.
pub fn beat_words(packed: &[u64], words_per_beat: usize, index: usize, beat_bits: u32) -> Vec<u32> {
    let beat = &packed[index * words_per_beat..(index + 1) * words_per_beat];
    let mut out: Vec<u32> = beat
        .iter()
        .flat_map(|w| [*w as u32, (*w >> 32) as u32])
        .collect();
    out.truncate(beat_bits.div_ceil(32) as usize);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_signed_fields_across_words() {
        let w = pack_fields([-1, 2, -3], 12, 36);
        assert_eq!(w.len(), 2);
        assert_eq!(w[0], 0xfff | (2 << 12) | ((0xffd & 0xff) << 24));
        assert_eq!(w[1], 0xf);
        assert_eq!(sign_extend(0xffd, 12), -3);
        assert_eq!(sign_extend(0x7ff, 12), 2047);
    }
}
