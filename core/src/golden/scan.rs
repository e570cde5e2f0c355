//! The LUT scan: score[t] = sum over m of LUT[m][code[t][m]] (exact integers).

use ndarray::ArrayView2;

use super::error::GoldenError;
use super::lut::Lut;
use super::packing::{window64, words_for};
use crate::spec::CodeLayout;

/// Scores of tokens given as codes (N x M).
pub fn score_codes(lut: &Lut, codes: ArrayView2<u8>) -> Vec<i32> {
    codes
        .outer_iter()
        .map(|row| {
            row.iter()
                .enumerate()
                .map(|(m, &c)| lut.values[[m, c as usize]])
                .sum()
        })
        .collect()
}

/// Scores of the first `n` tokens of packed code beats, read in place.
pub fn score_packed(
    lut: &Lut,
    layout: &CodeLayout,
    words: &[u64],
    n: usize,
) -> Result<Vec<i32>, GoldenError> {
    let wpb = layout.words_per_beat();
    let needed = words_for(layout, words, n)?;
    let k = lut.values.ncols();
    let table = lut.values.as_standard_layout();
    let table = table.as_slice().expect("standard layout is contiguous");
    let (b, token_bits) = (layout.code_bits as usize, layout.token_bits() as usize);
    let (tpb, m) = (layout.tokens_per_beat as usize, layout.m as usize);
    let mask = (1u64 << b) - 1;
    let codes_per_window = 64 / b;
    let mut scores = Vec::with_capacity(n);
    for beat in words[..needed].chunks_exact(wpb) {
        for i in 0..tpb.min(n - scores.len()) {
            // Read the token through 64-bit windows, several codes per window.
            let mut score = 0i32;
            let mut mi = 0;
            while mi < m {
                let mut window = window64(beat, i * token_bits + mi * b);
                for _ in 0..codes_per_window.min(m - mi) {
                    score += table[mi * k + (window & mask) as usize];
                    window >>= b;
                    mi += 1;
                }
            }
            scores.push(score);
        }
    }
    Ok(scores)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::golden::packing::pack;
    use ndarray::{array, Array2};

    #[test]
    fn sums_one_entry_per_subspace() {
        let lut = Lut {
            values: array![[1, -2, 3], [10, 20, -30]],
            shift: 0,
        };
        let codes = array![[0u8, 0], [2, 2], [1, 1]];
        assert_eq!(score_codes(&lut, codes.view()), vec![11, -27, 18]);
    }

    #[test]
    fn packed_and_unpacked_scans_agree() {
        let lut = Lut {
            values: Array2::from_shape_fn((3, 8), |(m, c)| (m as i32 - 1) * 100 + c as i32),
            shift: 0,
        };
        let layout = CodeLayout::new(3, 3, 64); // 9-bit tokens, 7 per beat, 1 padding bit
        let codes = Array2::from_shape_fn((23, 3), |(t, m)| ((t * 5 + m * 3) % 8) as u8);
        let words = pack(&layout, codes.view()).unwrap();
        let packed = score_packed(&lut, &layout, &words, 23).unwrap();
        assert_eq!(packed, score_codes(&lut, codes.view()));
        assert!(score_packed(&lut, &layout, &words[..3], 23).is_err());
    }
}
