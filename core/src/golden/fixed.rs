//! The fixed-point rules of docs/design.md section 3: quantization of queries and codebooks and
//! the block-floating-point shift of the LUT. The RTL and HLS implement exactly these.
//!
//! Host arithmetic is IEEE f32 with round-to-nearest: `scale = max_abs / (2^(bits-1) - 1)`
//! and `x / scale` are single f32 divisions (never a multiplication by a reciprocal).

use super::error::GoldenError;
use crate::spec::bit_length;

/// Rounds half away from zero (2.5 -> 3, -2.5 -> -3).
pub fn round_half_away_from_zero(x: f32) -> f32 {
    x.round()
}

/// Clamps `v` into the range of a `bits`-bit signed integer.
pub fn saturate(v: i64, bits: u32) -> i64 {
    let max = (1i64 << (bits - 1)) - 1;
    v.clamp(-max - 1, max)
}

/// Whether `v` fits a `bits`-bit signed integer.
pub fn fits_signed(v: i64, bits: u32) -> bool {
    saturate(v, bits) == v
}

/// Scale of a tensor whose largest magnitude is `max_abs`: `max_abs / (2^(bits-1) - 1)`,
/// or 1 when the tensor is all zero or the division underflows to zero.
pub fn scale_for(max_abs: f32, bits: u32) -> f32 {
    let s = max_abs / ((1u32 << (bits - 1)) - 1) as f32;
    if s == 0.0 {
        1.0
    } else {
        s
    }
}

/// Signed integers with the scale that maps them back to floats (`x ~= value * scale`).
#[derive(Debug, Clone, PartialEq)]
pub struct Quantized {
    /// The integers, each within the signed width.
    pub values: Vec<i32>,
    /// The scale.
    pub scale: f32,
}

/// Quantizes `xs` with one shared scale to `bits`-bit signed integers (section 3).
pub fn quantize(what: &'static str, xs: &[f32], bits: u32) -> Result<Quantized, GoldenError> {
    let mut max_abs = 0.0f32;
    for (position, &x) in xs.iter().enumerate() {
        if !x.is_finite() {
            return Err(GoldenError::NonFinite {
                what,
                position,
                value: x,
            });
        }
        max_abs = max_abs.max(x.abs());
    }
    let scale = scale_for(max_abs, bits);
    let values = xs
        .iter()
        .map(|&x| saturate(round_half_away_from_zero(x / scale) as i64, bits) as i32)
        .collect();
    Ok(Quantized { values, scale })
}

/// The LUT shift for the largest accumulator magnitude `max_abs`:
/// `max(0, bit_length(max_abs) - (lut_bits - 1))`.
pub fn lut_shift(max_abs: u64, lut_bits: u32) -> u32 {
    bit_length(max_abs).saturating_sub(lut_bits - 1)
}

/// Arithmetic right shift (floor division by 2^shift).
pub fn shift_right_floor(v: i64, shift: u32) -> i64 {
    v >> shift
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_half_away_from_zero() {
        assert_eq!(round_half_away_from_zero(2.5), 3.0);
        assert_eq!(round_half_away_from_zero(-2.5), -3.0);
        assert_eq!(round_half_away_from_zero(0.5), 1.0);
        assert_eq!(round_half_away_from_zero(-0.5), -1.0);
        assert_eq!(round_half_away_from_zero(1.4999), 1.0);
        assert_eq!(round_half_away_from_zero(-1.4999), -1.0);
    }

    #[test]
    fn quantization_scale_maps_max_to_full_range() {
        let q = quantize("q", &[127.0, -254.0, 1.0, -1.0], 8).unwrap();
        assert_eq!(q.scale, 2.0);
        // 63.5 -> 64 and +-0.5 -> +-1: half away from zero.
        assert_eq!(q.values, vec![64, -127, 1, -1]);
    }

    #[test]
    fn ties_round_away_from_zero_in_quantization() {
        // scale = 127 / 127 = 1, so the values themselves are rounded.
        let q = quantize("q", &[127.0, 2.5, -2.5, -0.5], 8).unwrap();
        assert_eq!(q.scale, 1.0);
        assert_eq!(q.values, vec![127, 3, -3, -1]);
    }

    #[test]
    fn all_zero_tensor_has_unit_scale() {
        let q = quantize("q", &[0.0; 4], 6).unwrap();
        assert_eq!(q.scale, 1.0);
        assert_eq!(q.values, vec![0; 4]);
    }

    #[test]
    fn underflowing_scale_falls_back_to_one() {
        let tiny = f32::from_bits(1); // smallest subnormal
        let q = quantize("q", &[tiny, -tiny], 8).unwrap();
        assert_eq!(q.scale, 1.0);
        assert_eq!(q.values, vec![0, 0]);
    }

    #[test]
    fn saturation_clamps_to_signed_range() {
        assert_eq!(saturate(200, 8), 127);
        assert_eq!(saturate(-200, 8), -128);
        assert_eq!(saturate(-128, 8), -128);
        assert_eq!(saturate(5, 2), 1);
        assert_eq!(saturate(-5, 2), -2);
        assert!(fits_signed(-128, 8));
        assert!(!fits_signed(128, 8));
    }

    #[test]
    fn non_finite_input_is_refused_with_its_position() {
        let err = quantize("query", &[1.0, f32::NAN], 8).unwrap_err();
        assert!(matches!(
            err,
            GoldenError::NonFinite {
                what: "query",
                position: 1,
                ..
            }
        ));
        assert!(quantize("query", &[f32::INFINITY], 8).is_err());
    }

    #[test]
    fn lut_shift_follows_bit_length() {
        // lut_bits = 8 keeps 7 magnitude bits.
        assert_eq!(lut_shift(0, 8), 0);
        assert_eq!(lut_shift(127, 8), 0);
        assert_eq!(lut_shift(128, 8), 1);
        assert_eq!(lut_shift(255, 8), 1);
        assert_eq!(lut_shift(256, 8), 2);
        assert_eq!(lut_shift(1 << 20, 16), 6);
    }

    #[test]
    fn shift_is_arithmetic_floor() {
        assert_eq!(shift_right_floor(-1, 1), -1);
        assert_eq!(shift_right_floor(-3, 1), -2);
        assert_eq!(shift_right_floor(3, 1), 1);
        assert_eq!(shift_right_floor(-256, 2), -64);
        assert_eq!(shift_right_floor(-257, 2), -65);
    }
}
