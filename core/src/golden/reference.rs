//! The float reference: exact q.k top-k, and the recall of a retrieval against it.

use ndarray::{ArrayView1, ArrayView2};
use rayon::prelude::*;

use super::topk::smallest_k;

/// Exact float scores q.k of every key row.
pub fn exact_scores(keys: ArrayView2<f32>, q: ArrayView1<f32>) -> Vec<f32> {
    keys.outer_iter()
        .into_par_iter()
        .map(|k| k.dot(&q))
        .collect()
}

/// Indices of the `k` largest q.k (ties: smaller index first), best first.
pub fn exact_top_k(keys: ArrayView2<f32>, q: ArrayView1<f32>, k: usize) -> Vec<u32> {
    top_k_f32(&exact_scores(keys, q), k)
}

/// Indices of the `k` largest float scores (ties: smaller index first), best first.
pub fn top_k_f32(scores: &[f32], k: usize) -> Vec<u32> {
    let order = |a: &u32, b: &u32| {
        scores[*b as usize]
            .total_cmp(&scores[*a as usize])
            .then(a.cmp(b))
    };
    smallest_k((0..scores.len() as u32).collect(), k, order)
}

/// recall@k: share of the exact top-k found among the retrieved tokens (1 when both empty).
pub fn recall(retrieved: &[u32], exact: &[u32]) -> f64 {
    if exact.is_empty() {
        return 1.0;
    }
    let found: std::collections::HashSet<u32> = retrieved.iter().copied().collect();
    exact.iter().filter(|i| found.contains(i)).count() as f64 / exact.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn exact_top_k_ranks_by_inner_product() {
        let keys = array![[1.0f32, 0.0], [0.0, 1.0], [2.0, 2.0], [-1.0, 0.0]];
        let q = array![1.0f32, 0.5];
        assert_eq!(exact_top_k(keys.view(), q.view(), 2), vec![2, 0]);
    }

    #[test]
    fn float_top_k_breaks_ties_by_index() {
        assert_eq!(top_k_f32(&[1.0, 3.0, 3.0, -2.0], 3), vec![1, 2, 0]);
    }

    #[test]
    fn recall_counts_overlap() {
        assert_eq!(recall(&[1, 2, 3, 4], &[4, 5]), 0.5);
        assert_eq!(recall(&[], &[]), 1.0);
        assert_eq!(recall(&[9], &[1]), 0.0);
    }
}
