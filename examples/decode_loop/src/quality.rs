//! How good a selection is, against exact attention over every token: recall@k of its top-k
//! against the exact top-k (by the summed group query, what retrieval approximates), the
//! softmax mass its tokens capture (mean over the group's query heads) next to what the
//! exact top-k would capture with the same budget, and the relative
//! error of the attention output it gives (sparse against dense, both computed on the GPU
//! over the same bf16 K/V).

use kvpq_core::golden::attention::{group_top_k, GroupScores};
use kvpq_runtime::Split;
use ndarray::{s, ArrayView2, ArrayView3};
use rayon::prelude::*;

/// Quality of one layer's selection at one step.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quality {
    /// Share of the exact top-k of the middle found by the selection's top-k.
    pub recall: f64,
    /// Softmax mass captured, mean over query heads.
    pub mass: f64,
    /// The mass the same budget captures with the exact top-k (sinks and window as the
    /// selection's): the ceiling of any retrieval.
    pub oracle_mass: f64,
}

/// Recall and mass of `ids` (`[kv_heads][per_head]`, the split's sinks, top-k and window)
/// for `queries` (`[q_heads][D]`) over the first `split.tokens` keys (`[kv_heads][..][D]`).
pub fn measure(
    keys: ArrayView3<f32>,
    queries: ArrayView2<f32>,
    ids: &[u32],
    split: &Split,
) -> Quality {
    let heads = keys.dim().0;
    let group = queries.nrows() / heads;
    let per_head = ids.len() / heads;
    let per: Vec<Quality> = (0..heads)
        .into_par_iter()
        .map(|h| {
            let q = queries.slice(s![h * group..(h + 1) * group, ..]);
            let k = keys.slice(s![h, ..split.tokens, ..]);
            let sel = &ids[h * per_head..(h + 1) * per_head];
            let middle = k.slice(s![split.sink..split.sink + split.middle, ..]);
            let exact = group_top_k(q, middle, split.topk);
            let found: std::collections::HashSet<u32> = sel[split.sink..split.sink + split.topk]
                .iter()
                .map(|&t| t - split.sink as u32)
                .collect();
            let recall = if split.topk == 0 {
                1.0
            } else {
                exact.iter().filter(|t| found.contains(t)).count() as f64 / split.topk as f64
            };
            let scores = GroupScores::new(q, k);
            let mut oracle: Vec<u32> = sel[..split.sink].to_vec();
            oracle.extend(exact.iter().map(|&t| t + split.sink as u32));
            oracle.extend_from_slice(&sel[split.sink + split.topk..]);
            Quality {
                recall,
                mass: scores.mass(sel),
                oracle_mass: scores.mass(&oracle),
            }
        })
        .collect();
    Quality {
        recall: per.iter().map(|q| q.recall).sum::<f64>() / heads as f64,
        mass: per.iter().map(|q| q.mass).sum::<f64>() / heads as f64,
        oracle_mass: per.iter().map(|q| q.oracle_mass).sum::<f64>() / heads as f64,
    }
}

/// ||sparse - dense|| / ||dense|| over all query heads' outputs.
pub fn relative_error(sparse: &[f32], dense: &[f32]) -> f64 {
    let (mut num, mut den) = (0f64, 0f64);
    for (&s, &d) in sparse.iter().zip(dense) {
        num += (f64::from(s) - f64::from(d)).powi(2);
        den += f64::from(d).powi(2);
    }
    (num / den.max(f64::MIN_POSITIVE)).sqrt()
}
