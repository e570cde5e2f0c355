//! The one trait every retrieval device implements.

use kvpq_core::golden::{QuantCodebook, QueryResult};

use crate::RuntimeError;

/// One search of a layer call: a KV head's integer query over its packed codes.
#[derive(Debug, Clone, Copy)]
pub struct HeadQuery<'a> {
    /// KV head (selects the codebook loaded with [`Device::load_codebook`]).
    pub head: usize,
    /// Quantized query, `head_dim` integers (GQA queries already summed).
    pub query: &'a [i32],
    /// Packed code beats of the head's tokens (docs/design.md section 4).
    pub beats: &'a [u64],
    /// Tokens to scan.
    pub n_tokens: usize,
    /// Results wanted.
    pub k: usize,
}

/// A retrieval device: holds one codebook per KV head and answers a whole layer's searches
/// per call, so per-call overhead is paid once per layer. Results are bit-exact with
/// `kvpq_core::golden::GoldenEngine::run` on every device.
pub trait Device {
    /// Short name (`cpu`, `sim`, `xrt`, `board`).
    fn name(&self) -> &'static str;

    /// Loads (or replaces) the integer codebook of `head`.
    fn load_codebook(&mut self, head: usize, codebook: QuantCodebook) -> Result<(), RuntimeError>;

    /// Runs every search of `queries`; results in the same order. A call with any invalid
    /// query runs none of them.
    fn search(&mut self, queries: &[HeadQuery<'_>]) -> Result<Vec<QueryResult>, RuntimeError>;
}
