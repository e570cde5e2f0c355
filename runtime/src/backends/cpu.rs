//! The CPU device: the integer path on the host, bit-exact with the golden model, and the
//! fallback where no FPGA is present.
//!
//! Speed comes from the PQCache shapes: when a token's M codes fit in
//! [`JOINT_TABLE_BITS`] bits (M = 2, b = 6 gives 12), the M per-subspace LUTs are summed
//! into one joint table indexed by the token's whole code field, so scoring a token is one
//! bit-field read and one load from a 16 KiB table that stays in L1. The exact top-k is a
//! radix select (two 16-bit histogram passes find the k-th score, a third pass collects the
//! tokens above it and the first of those equal to it), then a sort of the k survivors
//! only. Heads of a layer call run in parallel (rayon).

use rayon::prelude::*;

use kvpq_core::golden::lut::{build_lut, Lut};
use kvpq_core::golden::packing::get_bits;
use kvpq_core::golden::topk::{result_order, top_k, Hit};
use kvpq_core::golden::{QuantCodebook, QueryResult};
use kvpq_core::spec::{Accelerator, CodeLayout};

use crate::checks::Slots;
use crate::{Device, HeadQuery, RuntimeError};

/// Widest token code field scored through a joint table (2^12 entries of i32 = 16 KiB).
pub const JOINT_TABLE_BITS: u32 = 12;

/// The CPU device of one accelerator description.
#[derive(Debug, Clone)]
pub struct CpuDevice {
    acc: Accelerator,
    slots: Slots,
}

impl CpuDevice {
    /// A device for `acc` with no codebooks loaded.
    pub fn new(acc: Accelerator) -> Self {
        Self {
            acc,
            slots: Slots::default(),
        }
    }

    /// The description it serves.
    pub fn accelerator(&self) -> &Accelerator {
        &self.acc
    }
}

impl Device for CpuDevice {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn load_codebook(&mut self, slot: usize, codebook: QuantCodebook) -> Result<(), RuntimeError> {
        self.slots.load(&self.acc, slot, codebook)
    }

    fn search(&mut self, queries: &[HeadQuery<'_>]) -> Result<Vec<QueryResult>, RuntimeError> {
        let checked = self.slots.check(&self.acc, queries)?;
        let layout = self.acc.derived().layout;
        let lut_bits = self.acc.config().quant.lut_bits;
        let score_bits = self.acc.derived().widths.score_bits;
        Ok(queries
            .par_iter()
            .zip(checked)
            .map(|(q, codebook)| {
                let lut = build_lut(q.query, codebook, lut_bits);
                let scores = scores(&lut, &layout, q.beats, q.n_tokens);
                QueryResult {
                    hits: top_k_radix(&scores, q.k, score_bits),
                    shift: lut.shift,
                }
            })
            .collect())
    }
}

/// Scores of the first `n` tokens of `beats` (checked to hold them).
fn scores(lut: &Lut, layout: &CodeLayout, beats: &[u64], n: usize) -> Vec<i32> {
    let (m, b) = (layout.m as usize, layout.code_bits as usize);
    let (k, token_bits) = (1usize << b, m * b);
    let (tpb, wpb) = (layout.tokens_per_beat as usize, layout.words_per_beat());
    let table = lut.values.as_standard_layout();
    let table = table.as_slice().unwrap_or(&[]);
    let mut out = Vec::with_capacity(n);
    if token_bits as u32 <= JOINT_TABLE_BITS {
        // joint[x] = sum over m of LUT[m][code m of x]: one load per token.
        let joint: Vec<i32> = (0..1usize << token_bits)
            .map(|x| {
                (0..m)
                    .map(|mi| table[mi * k + ((x >> (mi * b)) & (k - 1))])
                    .sum()
            })
            .collect();
        for beat in beats.chunks_exact(wpb) {
            let take = tpb.min(n - out.len());
            out.extend(
                (0..take)
                    .map(|i| joint[get_bits(beat, i * token_bits, token_bits as u32) as usize]),
            );
            if out.len() == n {
                break;
            }
        }
    } else {
        for beat in beats.chunks_exact(wpb) {
            let take = tpb.min(n - out.len());
            out.extend((0..take).map(|i| {
                (0..m)
                    .map(|mi| {
                        table[mi * k + get_bits(beat, i * token_bits + mi * b, b as u32) as usize]
                    })
                    .sum::<i32>()
            }));
            if out.len() == n {
                break;
            }
        }
    }
    out
}

/// Below this many scores a comparison selection is as fast as the histograms.
const RADIX_MIN_TOKENS: usize = 4096;

/// In a histogram, the bin holding the `k`-th largest key (1-based) and how many keys lie
/// in higher bins.
fn kth_bin(hist: &[u32], k: usize) -> (usize, usize) {
    let mut above = 0usize;
    for bin in (0..hist.len()).rev() {
        let here = hist[bin] as usize;
        if above + here >= k {
            return (bin, above);
        }
        above += here;
    }
    (0, above)
}

/// The exact top-k of `scores`, each a `score_bits`-bit signed integer (<= 32), in result
/// order (score descending, smaller index first on ties): the same hits as
/// `kvpq_core::golden::topk::top_k`. The score is split into a high and a low digit of about
/// `score_bits / 2` bits, so both histograms stay small (512 and 256 bins for the default
/// 17-bit scores).
pub fn top_k_radix(scores: &[i32], k: usize, score_bits: u32) -> Vec<Hit> {
    let n = scores.len();
    if k == 0 || n < RADIX_MIN_TOKENS || k >= n || !(2..=32).contains(&score_bits) {
        return top_k(scores, k);
    }
    // Keys in [0, 2^score_bits), in score order.
    let bias = 1i64 << (score_bits - 1);
    let key = |s: i32| (i64::from(s) + bias) as u32;
    let lo_bits = score_bits / 2;
    let lo_mask = (1u32 << lo_bits) - 1;
    // Pass 1: the high digit of the k-th largest key.
    let mut hist = vec![0u32; 1 << (score_bits - lo_bits)];
    for &s in scores {
        hist[(key(s) >> lo_bits) as usize] += 1;
    }
    let (high, above_high) = kth_bin(&hist, k);
    // Pass 2: its low digit, among the keys of that high bin.
    let mut hist = vec![0u32; 1 << lo_bits];
    for &s in scores {
        let x = key(s);
        if (x >> lo_bits) as usize == high {
            hist[(x & lo_mask) as usize] += 1;
        }
    }
    let (low, above_low) = kth_bin(&hist, k - above_high);
    let threshold = ((high as u32) << lo_bits) | low as u32;
    // Pass 3: every key above the threshold, and the first (smallest-index) keys equal to it.
    let mut equal_left = k - above_high - above_low;
    let mut hits = Vec::with_capacity(k);
    for (i, &s) in scores.iter().enumerate() {
        let x = key(s);
        if x > threshold || (x == threshold && equal_left > 0) {
            if x == threshold {
                equal_left -= 1;
            }
            hits.push(Hit {
                index: i as u32,
                score: s,
            });
        }
    }
    hits.sort_unstable_by(result_order);
    hits
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (xorshift), enough to draw scores without a
    /// dependency.
    fn draw(seed: u64, n: usize, spread: i32) -> Vec<i32> {
        let mut x = seed.max(1);
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                ((x % (2 * spread as u64 + 1)) as i64 - i64::from(spread)) as i32
            })
            .collect()
    }

    #[test]
    fn radix_select_is_the_golden_top_k() {
        for (seed, n, bits) in [
            (1, 5000, 3),
            (2, 20000, 17),
            (3, 70000, 32),
            (4, 10000, 2),
            (5, 4096, 21),
        ] {
            let (lo, hi) = (-(1i64 << (bits - 1)), (1i64 << (bits - 1)) - 1);
            let mut scores = draw(seed, n, hi as i32);
            // The extremes of the width, and ties at them.
            scores[7] = lo as i32;
            scores[9] = hi as i32;
            scores[11] = hi as i32;
            for k in [1, 2, 17, n / 20, n / 5, n - 1] {
                assert_eq!(
                    top_k_radix(&scores, k, bits),
                    top_k(&scores, k),
                    "seed {seed} n {n} bits {bits} k {k}"
                );
            }
        }
    }
}
