//! What `select` returns: for every KV head of a layer, the token ids to attend, ascending.

use kvpq_core::golden::reference::{exact_top_k, recall};
use ndarray::{s, ArrayView2, ArrayView3, Axis};

use crate::RuntimeError;

/// The tokens one layer attends at one decoding step: for every KV head the sinks, the top-k
/// of the middle by PQ score and the local window, as token ids in ascending order. Every
/// head has the same count (the policy depends on the context length only), so the ids form
/// a `[kv_heads][len_per_head]` matrix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub(crate) layer: usize,
    pub(crate) kv_heads: usize,
    pub(crate) per_head: usize,
    pub(crate) ids: Vec<u32>,
    pub(crate) split: Split,
}

/// How a context was split by the retrieval policy (docs/design.md section 2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Split {
    /// Context length.
    pub tokens: usize,
    /// Sink tokens `0..sink`.
    pub sink: usize,
    /// Local window: the last `local` tokens.
    pub local: usize,
    /// Tokens between them, scanned by the device.
    pub middle: usize,
    /// Tokens retrieved from the middle.
    pub topk: usize,
}

impl Selection {
    /// A selection of `ids` (`[kv_heads][len_per_head]` row-major) of `layer`, to gather rows
    /// a caller chose or kept from an earlier `select` (bindings receive ids, not
    /// `Selection`s). Any order; [`KvStore::gather`](crate::KvStore::gather) checks them
    /// against the layer's context. The split is unknown: all zero.
    pub fn from_ids(layer: usize, kv_heads: usize, ids: Vec<u32>) -> Result<Self, RuntimeError> {
        if kv_heads == 0 || !ids.len().is_multiple_of(kv_heads) {
            return Err(RuntimeError::Shape {
                what: "selection ids".into(),
                found: format!("{} ids for {kv_heads} KV heads", ids.len()),
                expected: "a positive number of KV heads dividing the ids".into(),
            });
        }
        Ok(Self {
            layer,
            kv_heads,
            per_head: ids.len() / kv_heads,
            ids,
            split: Split::default(),
        })
    }

    /// The layer it belongs to.
    pub fn layer(&self) -> usize {
        self.layer
    }

    /// KV heads (rows).
    pub fn kv_heads(&self) -> usize {
        self.kv_heads
    }

    /// Tokens per head: sinks + top-k + local window.
    pub fn len_per_head(&self) -> usize {
        self.per_head
    }

    /// Token ids of `head`, ascending.
    pub fn head(&self, head: usize) -> &[u32] {
        &self.ids[head * self.per_head..(head + 1) * self.per_head]
    }

    /// All ids, `[kv_heads][len_per_head]` row-major.
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    /// The policy's split of the context.
    pub fn split(&self) -> Split {
        self.split
    }

    /// Mean recall@k over the heads of the top-k part against the exact float top-k of the
    /// summed GQA query over the same middle tokens (docs/design.md section 2.3), given the
    /// layer's keys `[kv_heads][tokens][head_dim]` (at least the context) and the queries
    /// the selection was made for `[kv_heads * gqa_group][head_dim]`. A measurement for
    /// benches and examples, not a hot path.
    pub fn recall(&self, keys: ArrayView3<f32>, queries: ArrayView2<f32>) -> f64 {
        let sp = self.split;
        let g = queries.nrows() / self.kv_heads.max(1);
        let total: f64 = (0..self.kv_heads)
            .map(|h| {
                let middle = keys.slice(s![h, sp.sink..sp.sink + sp.middle, ..]);
                let q = queries.slice(s![h * g..(h + 1) * g, ..]).sum_axis(Axis(0));
                let exact: Vec<u32> = exact_top_k(middle, q.view(), sp.topk)
                    .into_iter()
                    .map(|i| i + sp.sink as u32)
                    .collect();
                recall(&self.head(h)[sp.sink..sp.sink + sp.topk], &exact)
            })
            .sum();
        total / self.kv_heads.max(1) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_ids_shapes_rows_and_refuses_ragged_ids() {
        let s = Selection::from_ids(3, 2, vec![0, 5, 1, 4]).expect("2 x 2");
        assert_eq!((s.layer(), s.kv_heads(), s.len_per_head()), (3, 2, 2));
        assert_eq!(s.head(1), &[1, 4]);
        assert_eq!(s.split(), Split::default());
        assert!(Selection::from_ids(0, 2, vec![0, 1, 2]).is_err());
        assert!(Selection::from_ids(0, 0, vec![]).is_err());
    }
}
