//! What `select` returns: for every KV head of a layer, the token ids to attend, ascending.

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
}
