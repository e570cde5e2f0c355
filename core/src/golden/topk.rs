//! Exact top-k under docs/design.md section 3: the k tokens with the largest scores, ties to
//! the smaller token index, returned in ascending token index (the consumers use the top-k as
//! a set); fewer than k tokens return them all.

use std::cmp::Ordering;

/// One retrieved token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Hit {
    /// Position in the query's code stream.
    pub index: u32,
    /// Integer score (LUT units; multiply by 2^shift and the scales for floats).
    pub score: i32,
}

/// The rank order that decides who wins a place: higher score first, then lower index.
pub fn rank_order(a: &Hit, b: &Hit) -> Ordering {
    b.score.cmp(&a.score).then(a.index.cmp(&b.index))
}

/// The `k` first items of `items` under the total order `order`, sorted: a partial
/// selection, then a sort of the survivors only.
pub fn smallest_k<T>(mut items: Vec<T>, k: usize, order: impl Fn(&T, &T) -> Ordering) -> Vec<T> {
    let k = k.min(items.len());
    if k == 0 {
        return Vec::new();
    }
    if k < items.len() {
        items.select_nth_unstable_by(k - 1, &order);
        items.truncate(k);
    }
    items.sort_unstable_by(order);
    items
}

/// The `k` best tokens of `scores` under [`rank_order`], in ascending token index.
pub fn top_k(scores: &[i32], k: usize) -> Vec<Hit> {
    let hits: Vec<Hit> = scores
        .iter()
        .enumerate()
        .map(|(i, &score)| Hit {
            index: i as u32,
            score,
        })
        .collect();
    let mut best = smallest_k(hits, k, rank_order);
    best.sort_unstable_by_key(|h| h.index);
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(h: &[Hit]) -> Vec<u32> {
        h.iter().map(|h| h.index).collect()
    }

    #[test]
    fn ranks_by_score_then_index_and_returns_ascending_indices() {
        let scores = [5, 9, 5, 9, -1, 5];
        let h = top_k(&scores, 4);
        assert_eq!(idx(&h), vec![0, 1, 2, 3]);
        assert_eq!(h[2].score, 5);
        assert_eq!(idx(&top_k(&scores, 3)), vec![0, 1, 3]);
    }

    #[test]
    fn ties_at_the_boundary_keep_smaller_indices() {
        let scores = [3; 10];
        assert_eq!(idx(&top_k(&scores, 3)), vec![0, 1, 2]);
    }

    #[test]
    fn fewer_tokens_than_k_returns_all() {
        let h = top_k(&[1, 7, 3], 10);
        assert_eq!(idx(&h), vec![0, 1, 2]);
        assert!(top_k(&[], 4).is_empty());
        assert!(top_k(&[1, 2], 0).is_empty());
    }

    #[test]
    fn extreme_scores_rank_correctly() {
        let h = top_k(&[i32::MIN, i32::MAX, 0], 2);
        assert_eq!(idx(&h), vec![1, 2]);
    }
}
