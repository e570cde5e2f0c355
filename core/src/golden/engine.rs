//! The bit-exact model of `pq_topk_engine`: what the RTL and the HLS kernel must return for
//! the same integer inputs. Inputs are checked against the engine's widths and limits.

use ndarray::Array2;

use super::codebook::QuantCodebook;
use super::error::GoldenError;
use super::fixed::{fits_signed, quantize, Quantized};
use super::lut::{build_lut, Lut};
use super::scan::score_packed;
use super::topk::{top_k, Hit};
use crate::spec::Accelerator;

/// What the engine returns for one query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryResult {
    /// The top-k hits in ascending token index (at most k, fewer when N < k).
    pub hits: Vec<Hit>,
    /// LUT shift of this query (score * 2^shift is in accumulator units).
    pub shift: u32,
}

/// The golden engine: one accelerator with its codebooks loaded.
#[derive(Debug, Clone)]
pub struct GoldenEngine<'a> {
    acc: &'a Accelerator,
    codebook: QuantCodebook,
}

impl<'a> GoldenEngine<'a> {
    /// Loads integer codebooks; refuses a shape or value the engine cannot hold.
    pub fn new(acc: &'a Accelerator, codebook: QuantCodebook) -> Result<Self, GoldenError> {
        let w = &acc.derived().widths;
        let expect = (
            acc.config().pq.m as usize,
            w.codebook_size as usize,
            w.sub_dim as usize,
        );
        if codebook.values.dim() != expect {
            return Err(GoldenError::Shape {
                what: "codebook",
                found: format!("{:?}", codebook.values.dim()),
                expected: format!("{expect:?} (M, K, D/M)"),
            });
        }
        check_signed("codebook", codebook.values.iter(), w.centroid_bits)?;
        Ok(Self { acc, codebook })
    }

    /// The accelerator this engine models.
    pub fn accelerator(&self) -> &Accelerator {
        self.acc
    }

    /// The integer codebooks.
    pub fn codebook(&self) -> &QuantCodebook {
        &self.codebook
    }

    /// Quantizes a float query (host side, section 3).
    pub fn quantize_query(&self, q: &[f32]) -> Result<Quantized, GoldenError> {
        self.check_len(q.len())?;
        quantize("query", q, self.acc.config().quant.query_bits)
    }

    /// Builds the normalized LUT of an integer query.
    pub fn build_lut(&self, q: &[i32]) -> Result<Lut, GoldenError> {
        self.check_len(q.len())?;
        check_signed("query", q.iter(), self.acc.config().quant.query_bits)?;
        Ok(build_lut(
            q,
            &self.codebook,
            self.acc.config().quant.lut_bits,
        ))
    }

    /// Runs one query over the first `n_tokens` tokens of packed code beats.
    pub fn run(
        &self,
        q: &[i32],
        beats: &[u64],
        n_tokens: usize,
        k: usize,
    ) -> Result<QueryResult, GoldenError> {
        let cfg = self.acc.config();
        over_limit("n_tokens", n_tokens, cfg.engine.max_tokens)?;
        over_limit("k", k, cfg.topk.k_max)?;
        let lut = self.build_lut(q)?;
        let scores = score_packed(&lut, &self.acc.derived().layout, beats, n_tokens)?;
        Ok(QueryResult {
            hits: top_k(&scores, k),
            shift: lut.shift,
        })
    }

    /// Runs one query over codes (N x M) by packing them first.
    pub fn run_codes(
        &self,
        q: &[i32],
        codes: &Array2<u8>,
        k: usize,
    ) -> Result<QueryResult, GoldenError> {
        let beats = super::packing::pack(&self.acc.derived().layout, codes.view())?;
        self.run(q, &beats, codes.nrows(), k)
    }

    fn check_len(&self, len: usize) -> Result<(), GoldenError> {
        let d = self.acc.config().pq.head_dim as usize;
        if len != d {
            return Err(GoldenError::Shape {
                what: "query",
                found: format!("({len},)"),
                expected: format!("({d},) (head_dim)"),
            });
        }
        Ok(())
    }
}

fn over_limit(what: &'static str, value: usize, limit: u32) -> Result<(), GoldenError> {
    if value as u64 > u64::from(limit) {
        return Err(GoldenError::OverLimit {
            what,
            value: value as u64,
            limit: u64::from(limit),
        });
    }
    Ok(())
}

fn check_signed<'v>(
    what: &'static str,
    values: impl Iterator<Item = &'v i32>,
    bits: u32,
) -> Result<(), GoldenError> {
    for (position, &v) in values.enumerate() {
        if !fits_signed(i64::from(v), bits) {
            return Err(GoldenError::OutOfRange {
                what,
                position,
                value: i64::from(v),
                bits,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{AcceleratorBuilder, EngineConfig, PqConfig, ScannerConfig, TopKConfig};
    use ndarray::Array3;

    fn tiny() -> Accelerator {
        AcceleratorBuilder::new("tiny", PqConfig::new(4, 2, 2))
            .scanner(ScannerConfig::new(2))
            .topk(TopKConfig::systolic(4))
            .engine(EngineConfig::new(64).with_beat_bits(32))
            .build()
            .unwrap()
    }

    fn codebook() -> QuantCodebook {
        QuantCodebook {
            values: Array3::from_shape_fn((2, 4, 2), |(m, c, j)| (m * 8 + c * 2 + j) as i32 - 7),
            scale: 1.0,
        }
    }

    #[test]
    fn runs_a_query_end_to_end() {
        let acc = tiny();
        let eng = GoldenEngine::new(&acc, codebook()).unwrap();
        let codes = Array2::from_shape_fn((10, 2), |(t, m)| ((t + m) % 4) as u8);
        let q = [3, -1, 2, 5];
        let res = eng.run_codes(&q, &codes, 4).unwrap();
        let lut = eng.build_lut(&q).unwrap();
        let scores: Vec<i32> = (0..10)
            .map(|t| lut.values[[0, t % 4]] + lut.values[[1, (t + 1) % 4]])
            .collect();
        assert_eq!(res.hits, top_k(&scores, 4));
        assert_eq!(res.hits.len(), 4);
    }

    #[test]
    fn refuses_out_of_range_inputs() {
        let acc = tiny();
        let eng = GoldenEngine::new(&acc, codebook()).unwrap();
        let codes = Array2::<u8>::zeros((3, 2));
        assert!(matches!(
            eng.run_codes(&[128, 0, 0, 0], &codes, 1),
            Err(GoldenError::OutOfRange { what: "query", .. })
        ));
        assert!(matches!(
            eng.run_codes(&[0, 0, 0], &codes, 1),
            Err(GoldenError::Shape { what: "query", .. })
        ));
        assert!(matches!(
            eng.run_codes(&[0; 4], &codes, 5),
            Err(GoldenError::OverLimit { what: "k", .. })
        ));
        let mut bad = codebook();
        bad.values[[1, 1, 1]] = 200;
        assert!(GoldenEngine::new(&acc, bad).is_err());
    }
}
