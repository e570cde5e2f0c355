//! LUT build and normalization (docs/design.md section 3): exact integer dot products of the
//! query's sub-vectors with every centroid, then one block-floating-point shift for the
//! whole table.

use ndarray::{Array2, Axis};

use super::codebook::QuantCodebook;
use super::fixed::{lut_shift, shift_right_floor};

/// A normalized LUT: `values[[m, c]]` fits `lut_bits`-bit signed; the true accumulator is
/// about `values << shift`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lut {
    /// Entries, shape (M, K).
    pub values: Array2<i32>,
    /// Arithmetic right shift applied to every accumulator.
    pub shift: u32,
}

/// Exact accumulators `acc[m][c] = sum_j q[m*(D/M)+j] * C[m][c][j]`.
///
/// The caller guarantees `q.len() == M * D/M` (the engine checks it).
pub fn accumulators(q: &[i32], codebook: &QuantCodebook) -> Array2<i64> {
    let (m, k, sub) = codebook.values.dim();
    Array2::from_shape_fn((m, k), |(mi, c)| {
        let cent = codebook.values.index_axis(Axis(0), mi);
        let cent = cent.index_axis(Axis(0), c);
        q[mi * sub..(mi + 1) * sub]
            .iter()
            .zip(cent.iter())
            .map(|(&a, &b)| i64::from(a) * i64::from(b))
            .sum()
    })
}

/// Normalizes accumulators to `lut_bits`-bit entries with one shift.
pub fn normalize(acc: &Array2<i64>, lut_bits: u32) -> Lut {
    let max_abs = acc.iter().map(|v| v.unsigned_abs()).max().unwrap_or(0);
    let shift = lut_shift(max_abs, lut_bits);
    Lut {
        values: acc.mapv(|v| shift_right_floor(v, shift) as i32),
        shift,
    }
}

/// Builds the normalized LUT of an integer query.
pub fn build_lut(q: &[i32], codebook: &QuantCodebook, lut_bits: u32) -> Lut {
    normalize(&accumulators(q, codebook), lut_bits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::golden::fixed::fits_signed;
    use ndarray::{array, Array3};

    fn codebook(values: Vec<i32>, shape: (usize, usize, usize)) -> QuantCodebook {
        QuantCodebook {
            values: Array3::from_shape_vec(shape, values).unwrap(),
            scale: 1.0,
        }
    }

    #[test]
    fn accumulates_per_subspace() {
        // M = 2, K = 2, D/M = 2.
        let cb = codebook(vec![1, 2, -3, 4, 5, 6, 7, -8], (2, 2, 2));
        let acc = accumulators(&[1, 1, 2, -1], &cb);
        assert_eq!(acc, array![[3, 1], [4, 22]]);
    }

    #[test]
    fn no_shift_when_the_table_fits() {
        let lut = normalize(&array![[127, -127]], 8);
        assert_eq!(lut.shift, 0);
        assert_eq!(lut.values, array![[127, -127]]);
        // The rule looks at magnitudes: |-128| has bit length 8, so it shifts even though
        // -128 itself would fit 8-bit signed.
        let lut = normalize(&array![[127, -128]], 8);
        assert_eq!(lut.shift, 1);
        assert_eq!(lut.values, array![[63, -64]]);
    }

    #[test]
    fn shift_uses_largest_magnitude_and_floors_negatives() {
        // max |acc| = 300 -> bit length 9 -> shift 9 - 7 = 2.
        let lut = normalize(&array![[300, -300, -1, 3]], 8);
        assert_eq!(lut.shift, 2);
        assert_eq!(lut.values, array![[75, -75, -1, 0]]);
        // A negative extreme: -256 has bit length 9 as well.
        let lut = normalize(&array![[-256, 5]], 8);
        assert_eq!(lut.shift, 2);
        assert_eq!(lut.values, array![[-64, 1]]);
    }

    #[test]
    fn all_zero_query_gives_zero_table() {
        let cb = codebook(vec![3; 8], (2, 2, 2));
        let lut = build_lut(&[0; 4], &cb, 8);
        assert_eq!(lut.shift, 0);
        assert!(lut.values.iter().all(|&v| v == 0));
    }

    #[test]
    fn extreme_inputs_fit_after_shift() {
        // Most negative query and centroid values: the largest products of the widths.
        let cb = codebook(vec![-128; 64], (1, 1, 64));
        let lut = build_lut(&[-128; 64], &cb, 16);
        assert_eq!(lut.shift, 21 - 15); // 64 * 2^14 = 2^20: bit length 21
        assert!(fits_signed(i64::from(lut.values[[0, 0]]), 16));
        assert_eq!(lut.values[[0, 0]], 1 << 14);
    }
}
