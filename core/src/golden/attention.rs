//! The float attention reference for one KV head and its GQA group of query heads: dense
//! softmax attention, the attention mass a selection captures, the relative error of
//! attention restricted to a selection, and the exact top-k the retrieval aims at.
//!
//! Logits are q.k / sqrt(D), accumulated in f64; softmax subtracts the per-head maximum.
//! Sums over tokens run over fixed chunks combined in order, so results do not depend on the
//! thread count.

use ndarray::{Array1, Array2, ArrayView2, Axis};
use rayon::prelude::*;

use super::reference::exact_top_k;

/// Tokens per parallel work item (fixed, for thread-count-independent sums).
const CHUNK: usize = 4096;

/// Softmax logits of a group of query heads over all tokens of one KV head, computed once and
/// reused by every metric of a step.
#[derive(Debug, Clone)]
pub struct GroupScores {
    /// Logits `[n][g]`: q.k / sqrt(D).
    logits: Array2<f64>,
    /// Per query head, the largest logit.
    max: Vec<f64>,
    /// Per query head, sum over all tokens of exp(logit - max).
    total: Vec<f64>,
}

impl GroupScores {
    /// Logits of `queries` (`[g][D]`) against `keys` (`[n][D]`), scale 1/sqrt(D).
    ///
    /// # Panics
    /// If the head dimensions differ.
    pub fn new(queries: ArrayView2<f32>, keys: ArrayView2<f32>) -> Self {
        let (g, d) = queries.dim();
        assert_eq!(keys.ncols(), d, "queries and keys have different head_dim");
        let n = keys.nrows();
        let scale = 1.0 / (d as f64).sqrt();
        let q64 = queries.mapv(f64::from);
        let mut logits = Array2::<f64>::zeros((n, g));
        logits
            .axis_chunks_iter_mut(Axis(0), CHUNK)
            .into_par_iter()
            .zip(keys.axis_chunks_iter(Axis(0), CHUNK).into_par_iter())
            .for_each(|(mut out, ks)| {
                for (mut row, k) in out.outer_iter_mut().zip(ks.outer_iter()) {
                    for (o, q) in row.iter_mut().zip(q64.outer_iter()) {
                        *o = scale * q.iter().zip(k).map(|(a, b)| a * f64::from(*b)).sum::<f64>();
                    }
                }
            });
        let max: Vec<f64> = logits
            .axis_iter(Axis(1))
            .map(|c| c.iter().copied().fold(f64::NEG_INFINITY, f64::max))
            .collect();
        let mut scores = Self {
            logits,
            max,
            total: Vec::new(),
        };
        scores.total = scores.sum_exp(None);
        scores
    }

    /// Query heads in the group.
    pub fn heads(&self) -> usize {
        self.logits.ncols()
    }

    /// Tokens.
    pub fn tokens(&self) -> usize {
        self.logits.nrows()
    }

    /// Per query head, sum of exp(logit - max) over `selected` (all tokens when `None`).
    fn sum_exp(&self, selected: Option<&[u32]>) -> Vec<f64> {
        let per_chunk = |rows: &[usize]| -> Vec<f64> {
            let mut s = vec![0.0; self.heads()];
            for &t in rows {
                for (h, acc) in s.iter_mut().enumerate() {
                    *acc += (self.logits[[t, h]] - self.max[h]).exp();
                }
            }
            s
        };
        let rows = self.rows(selected);
        let parts: Vec<Vec<f64>> = rows.par_chunks(CHUNK).map(per_chunk).collect();
        sum_in_order(parts, self.heads())
    }

    /// The token rows of a selection, deduplicated and sorted (all rows when `None`).
    ///
    /// # Panics
    /// If a selected token is out of range.
    fn rows(&self, selected: Option<&[u32]>) -> Vec<usize> {
        let n = self.tokens();
        match selected {
            None => (0..n).collect(),
            Some(ids) => {
                let mut rows: Vec<usize> = ids
                    .iter()
                    .map(|&i| {
                        assert!(
                            (i as usize) < n,
                            "selected token {i} out of range: {n} tokens"
                        );
                        i as usize
                    })
                    .collect();
                rows.sort_unstable();
                rows.dedup();
                rows
            }
        }
    }

    /// Softmax probability mass on `selected` (a set: duplicates count once), averaged over
    /// the group's query heads. 1 for all tokens, 0 for none.
    pub fn mass(&self, selected: &[u32]) -> f64 {
        let part = self.sum_exp(Some(selected));
        part.iter()
            .zip(&self.total)
            .map(|(p, t)| p / t)
            .sum::<f64>()
            / self.heads() as f64
    }

    /// Attention output `[g][D]` of every query head over `values` (`[n][D]`): softmax over
    /// all tokens when `selected` is `None`, else softmax renormalized over the selected
    /// tokens (zeros for an empty selection).
    ///
    /// # Panics
    /// If `values` does not have one row per token, or a selected token is out of range.
    pub fn output(&self, values: ArrayView2<f32>, selected: Option<&[u32]>) -> Array2<f64> {
        assert_eq!(
            values.nrows(),
            self.tokens(),
            "values must have one row per token"
        );
        let (g, d) = (self.heads(), values.ncols());
        let rows = self.rows(selected);
        let parts: Vec<Vec<f64>> = rows
            .par_chunks(CHUNK)
            .map(|chunk| {
                // [g][d] weighted sums, then [g] weight sums.
                let mut acc = vec![0.0; g * d + g];
                for &t in chunk {
                    let v = values.row(t);
                    for h in 0..g {
                        let p = (self.logits[[t, h]] - self.max[h]).exp();
                        acc[g * d + h] += p;
                        for (a, x) in acc[h * d..(h + 1) * d].iter_mut().zip(v) {
                            *a += p * f64::from(*x);
                        }
                    }
                }
                acc
            })
            .collect();
        let acc = sum_in_order(parts, g * d + g);
        Array2::from_shape_fn((g, d), |(h, j)| {
            let z = acc[g * d + h];
            if z > 0.0 {
                acc[h * d + j] / z
            } else {
                0.0
            }
        })
    }

    /// ||o_sparse - o_dense|| / ||o_dense||, Frobenius norms over the group's `[g][D]` outputs,
    /// o_sparse being attention restricted to `selected`. 0 when all tokens are selected; 1
    /// for an empty selection (unless o_dense is 0: then 0 if o_sparse is 0 too, else
    /// infinity).
    pub fn relative_error(&self, values: ArrayView2<f32>, selected: &[u32]) -> f64 {
        let dense = self.output(values, None);
        let sparse = self.output(values, Some(selected));
        relative_norm(&sparse, &dense)
    }
}

/// Adds equally long vectors in their order (deterministic float sums).
fn sum_in_order(parts: Vec<Vec<f64>>, len: usize) -> Vec<f64> {
    parts.into_iter().fold(vec![0.0; len], |mut acc, p| {
        acc.iter_mut().zip(p).for_each(|(a, b)| *a += b);
        acc
    })
}

/// ||a - b|| / ||b|| (0 when both are 0, infinity when only b is).
fn relative_norm(a: &Array2<f64>, b: &Array2<f64>) -> f64 {
    let diff = (a - b).mapv(|v| v * v).sum().sqrt();
    let base = b.mapv(|v| v * v).sum().sqrt();
    if diff == 0.0 {
        0.0
    } else {
        diff / base
    }
}

/// Dense softmax attention of each query head (`queries` `[g][D]`) over `keys` and `values`
/// (`[n][D]`), scale 1/sqrt(D): `[g][D]`.
pub fn dense_attention(
    queries: ArrayView2<f32>,
    keys: ArrayView2<f32>,
    values: ArrayView2<f32>,
) -> Array2<f64> {
    GroupScores::new(queries, keys).output(values, None)
}

/// Attention restricted to `selected` (softmax renormalized over them): `[g][D]`.
pub fn sparse_attention(
    queries: ArrayView2<f32>,
    keys: ArrayView2<f32>,
    values: ArrayView2<f32>,
    selected: &[u32],
) -> Array2<f64> {
    GroupScores::new(queries, keys).output(values, Some(selected))
}

/// Softmax mass captured by `selected`, averaged over the group's query heads.
pub fn attention_mass(queries: ArrayView2<f32>, keys: ArrayView2<f32>, selected: &[u32]) -> f64 {
    GroupScores::new(queries, keys).mass(selected)
}

/// ||o_sparse - o_dense|| / ||o_dense|| of attention restricted to `selected`
/// (see [`GroupScores::relative_error`]).
pub fn relative_error(
    queries: ArrayView2<f32>,
    keys: ArrayView2<f32>,
    values: ArrayView2<f32>,
    selected: &[u32],
) -> f64 {
    GroupScores::new(queries, keys).relative_error(values, selected)
}

/// The query the retrieval scores with: the sum of the group's query heads (q.k is linear in
/// q, so one MIPS per KV head serves the group, as the runtime does).
pub fn group_query(queries: ArrayView2<f32>) -> Array1<f32> {
    queries.sum_axis(Axis(0))
}

/// Exact top-k tokens by the summed group query's dot product with the keys (ties: smaller
/// index first), best first: what the PQ retrieval approximates.
pub fn group_top_k(queries: ArrayView2<f32>, keys: ArrayView2<f32>, k: usize) -> Vec<u32> {
    exact_top_k(keys, group_query(queries).view(), k)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn two_tokens_by_hand() {
        // D = 4, scale 1/2: logits of q = (2,0,0,0) are 1 and 0.
        let q = array![[2.0f32, 0.0, 0.0, 0.0]];
        let k = array![[1.0f32, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]];
        let v = array![[1.0f32, 0.0, 0.0, 0.0], [0.0, 2.0, 0.0, 0.0]];
        let e = std::f64::consts::E;
        let (p0, p1) = (e / (e + 1.0), 1.0 / (e + 1.0));
        let dense = dense_attention(q.view(), k.view(), v.view());
        let want = [p0, 2.0 * p1, 0.0, 0.0];
        assert!(
            dense.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-12),
            "{dense}"
        );
        assert!((attention_mass(q.view(), k.view(), &[0]) - p0).abs() < 1e-12);
        // Only token 0: output v0 = (1,0,0,0); error ||(1-p0, -2 p1)|| / ||(p0, 2 p1)||.
        let sparse = sparse_attention(q.view(), k.view(), v.view(), &[0]);
        assert_eq!(sparse.row(0).to_vec(), vec![1.0, 0.0, 0.0, 0.0]);
        let want_err =
            ((1.0 - p0).powi(2) + (2.0 * p1).powi(2)).sqrt() / (p0 * p0 + 4.0 * p1 * p1).sqrt();
        let err = relative_error(q.view(), k.view(), v.view(), &[0]);
        assert!((err - want_err).abs() < 1e-12, "{err} vs {want_err}");
    }

    fn random(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        Array2::from_shape_fn((rows, cols), |_| rng.random_range(-2.0f32..2.0))
    }

    #[test]
    fn all_tokens_give_mass_one_and_no_error() {
        let (q, k, v) = (random(4, 16, 1), random(9000, 16, 2), random(9000, 16, 3));
        let all: Vec<u32> = (0..9000).collect();
        let s = GroupScores::new(q.view(), k.view());
        assert!((s.mass(&all) - 1.0).abs() < 1e-12);
        assert_eq!(s.relative_error(v.view(), &all), 0.0);
        assert_eq!(s.mass(&[]), 0.0);
        assert_eq!(s.relative_error(v.view(), &[]), 1.0);
        // Duplicates count once; masses of a partition add up to 1.
        let (a, b): (Vec<u32>, Vec<u32>) = all.iter().partition(|&&i| i % 3 == 0);
        let dup: Vec<u32> = a.iter().chain(&a).copied().collect();
        assert!((s.mass(&dup) + s.mass(&b) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn large_logits_stay_finite_and_thread_count_does_not_matter() {
        let q = random(2, 8, 4) * 1000.0;
        let (k, v) = (random(10_000, 8, 5), random(10_000, 8, 6));
        let run = |threads| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| {
                    let s = GroupScores::new(q.view(), k.view());
                    (s.output(v.view(), None), s.mass(&[1, 2, 3]))
                })
        };
        let (out, mass) = run(1);
        assert!(out.iter().all(|x| x.is_finite()));
        assert_eq!((out.clone(), mass), run(3));
    }

    #[test]
    fn group_top_k_scores_the_summed_query() {
        // Head 0 likes token 0, head 1 token 1; their sum likes token 2 most.
        let q = array![[1.0f32, 0.0], [0.0, 1.0]];
        let k = array![[1.5f32, -1.0], [-1.0, 1.5], [1.0, 1.0], [-1.0, -1.0]];
        assert_eq!(group_top_k(q.view(), k.view(), 2), vec![2, 0]);
        assert_eq!(group_query(q.view()).to_vec(), vec![1.0, 1.0]);
    }
}
