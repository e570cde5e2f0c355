//! PQ codebooks: training (k-means per subspace), encoding keys to codes, and quantizing the
//! centroids to the integers the hardware holds.

use ndarray::{s, Array2, Array3, ArrayView2, Axis};
use rayon::prelude::*;

use super::error::GoldenError;
use super::fixed::{quantize, Quantized};
use super::kmeans::{kmeans, nearest_rows, row_norms, KMeansOptions, CHUNK_ROWS};

/// Training options of a PQ codebook.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainOptions {
    /// Lloyd iterations per subspace at most.
    pub max_iters: usize,
    /// Relative inertia improvement below which k-means stops.
    pub tolerance: f64,
    /// Seed; subspace m uses `seed + m`.
    pub seed: u64,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            max_iters: 25,
            tolerance: 1e-4,
            seed: 0,
        }
    }
}

/// Float codebooks of all M subspaces: `centroids[[m, c, j]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct PqCodebook {
    /// Centroids, shape (M, K, D/M).
    pub centroids: Array3<f32>,
}

impl PqCodebook {
    /// Trains M codebooks of 2^`code_bits` centroids on the rows of `keys` (N x D).
    ///
    /// `progress`, if given, is called once per Lloyd iteration of any subspace.
    pub fn train(
        keys: ArrayView2<f32>,
        m: usize,
        code_bits: u32,
        opts: &TrainOptions,
        progress: Option<&(dyn Fn() + Sync)>,
    ) -> Result<Self, GoldenError> {
        let (_, dim) = keys.dim();
        if m == 0 || dim % m != 0 {
            return Err(GoldenError::Shape {
                what: "keys",
                found: format!("{:?}", keys.dim()),
                expected: format!("(N, D) with D divisible by m = {m}"),
            });
        }
        let sub = dim / m;
        let k = 1usize << code_bits;
        let per_subspace: Result<Vec<Array2<f32>>, GoldenError> = (0..m)
            .into_par_iter()
            .map(|mi| {
                let data = keys.slice(s![.., mi * sub..(mi + 1) * sub]);
                let data = data.as_standard_layout();
                let km_opts = KMeansOptions {
                    k,
                    max_iters: opts.max_iters,
                    tolerance: opts.tolerance,
                    seed: opts.seed.wrapping_add(mi as u64),
                };
                kmeans(data.view(), &km_opts, progress).map(|km| km.centroids)
            })
            .collect();
        let per_subspace = per_subspace?;
        let mut centroids = Array3::<f32>::zeros((m, k, sub));
        for (mi, c) in per_subspace.into_iter().enumerate() {
            centroids.index_axis_mut(Axis(0), mi).assign(&c);
        }
        Ok(Self { centroids })
    }

    /// Subspaces M.
    pub fn m(&self) -> usize {
        self.centroids.dim().0
    }

    /// Centroids per subspace K.
    pub fn k(&self) -> usize {
        self.centroids.dim().1
    }

    /// Dimensions per subspace D/M.
    pub fn sub_dim(&self) -> usize {
        self.centroids.dim().2
    }

    /// Codes of the rows of `keys` (N x D): the nearest centroid (L2) per subspace.
    pub fn encode(&self, keys: ArrayView2<f32>) -> Result<Array2<u8>, GoldenError> {
        let (n, dim) = keys.dim();
        let (m, sub) = (self.m(), self.sub_dim());
        if dim != m * sub {
            return Err(GoldenError::Shape {
                what: "keys",
                found: format!("({n}, {dim})"),
                expected: format!("(N, {})", m * sub),
            });
        }
        // Per fixed chunk of keys and subspace: the nearest centroids of all its rows from
        // one matrix product (`kmeans::nearest_rows`), as training assigns them.
        let norms: Vec<Vec<f32>> = self.centroids.outer_iter().map(row_norms).collect();
        let mut codes = Array2::<u8>::zeros((n, m));
        codes
            .axis_chunks_iter_mut(Axis(0), CHUNK_ROWS)
            .into_par_iter()
            .zip(keys.axis_chunks_iter(Axis(0), CHUNK_ROWS))
            .for_each(|(mut out, chunk)| {
                for (mi, norms) in norms.iter().enumerate() {
                    let x = chunk.slice(s![.., mi * sub..(mi + 1) * sub]);
                    let cb = self.centroids.index_axis(Axis(0), mi);
                    for (code, (c, _)) in out
                        .column_mut(mi)
                        .iter_mut()
                        .zip(nearest_rows(x, cb, norms))
                    {
                        *code = c as u8;
                    }
                }
            });
        Ok(codes)
    }

    /// Quantizes all centroids with one scale to `centroid_bits`-bit signed integers.
    pub fn quantize(&self, centroid_bits: u32) -> Result<QuantCodebook, GoldenError> {
        let flat: Vec<f32> = self.centroids.iter().copied().collect();
        let Quantized { values, scale } = quantize("codebook", &flat, centroid_bits)?;
        let values = Array3::from_shape_vec(self.centroids.raw_dim(), values)
            .expect("quantize keeps the element count");
        Ok(QuantCodebook { values, scale })
    }
}

/// Integer codebooks as the PQ distance unit holds them.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantCodebook {
    /// Quantized centroids, shape (M, K, D/M), each within CB-bit signed.
    pub values: Array3<i32>,
    /// Scale back to floats.
    pub scale: f32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn trains_and_encodes_each_subspace() {
        // Subspace 0 takes values {0, 10}, subspace 1 takes {-5, 5}.
        let keys = Array2::from_shape_fn((64, 4), |(i, j)| {
            if j < 2 {
                if i % 2 == 0 {
                    0.0
                } else {
                    10.0
                }
            } else if i % 4 < 2 {
                -5.0
            } else {
                5.0
            }
        });
        let cb = PqCodebook::train(keys.view(), 2, 1, &TrainOptions::default(), None).unwrap();
        assert_eq!(cb.centroids.dim(), (2, 2, 2));
        let codes = cb.encode(keys.view()).unwrap();
        // Tokens with equal sub-vectors share codes; different ones do not.
        assert_eq!(codes[[0, 0]], codes[[2, 0]]);
        assert_ne!(codes[[0, 0]], codes[[1, 0]]);
        assert_eq!(codes[[0, 1]], codes[[1, 1]]);
        assert_ne!(codes[[0, 1]], codes[[2, 1]]);
        for (t, key) in keys.outer_iter().enumerate() {
            for mi in 0..2 {
                let c = cb.centroids.slice(s![mi, codes[[t, mi]] as usize, ..]);
                assert_eq!(c.to_vec(), key.slice(s![mi * 2..mi * 2 + 2]).to_vec());
            }
        }
    }

    #[test]
    fn quantized_codebook_uses_one_scale() {
        let centroids = Array3::from_shape_vec((1, 2, 2), vec![3.5, -0.5, 1.25, 14.0]).unwrap();
        let q = PqCodebook { centroids }.quantize(4).unwrap();
        assert_eq!(q.scale, 2.0);
        assert_eq!(
            q.values.iter().copied().collect::<Vec<_>>(),
            vec![2, 0, 1, 7]
        );
    }

    #[test]
    fn encode_checks_key_width() {
        let cb = PqCodebook {
            centroids: Array3::zeros((2, 2, 3)),
        };
        assert!(matches!(
            cb.encode(Array2::zeros((1, 5)).view()),
            Err(GoldenError::Shape { .. })
        ));
    }
}
