//! The one trait every retrieval device implements.

use kvpq_core::golden::{QuantCodebook, QueryResult};

use crate::RuntimeError;

/// One search of a layer call: a KV head's integer query over its packed codes.
#[derive(Debug, Clone, Copy)]
pub struct HeadQuery<'a> {
    /// Codebook slot (loaded with [`Device::load_codebook`]). The index uses
    /// `layer * kv_heads + head`, so a device holds every head of every layer it serves.
    pub slot: usize,
    /// Quantized query, `head_dim` integers (GQA queries already summed).
    pub query: &'a [i32],
    /// Packed code beats of the head's tokens (docs/design.md section 4).
    pub beats: &'a [u64],
    /// Tokens to scan.
    pub n_tokens: usize,
    /// Results wanted.
    pub k: usize,
    /// Identifies the code stream for devices that keep codes resident (`gpu`): a search
    /// with the same `slot` and `Some(stream)` as the slot's previous one promises that
    /// `beats` extends that search's beats (every word before its last beat unchanged, the
    /// last beat possibly filled further), so only the new words are copied. `None` makes
    /// no promise: the device takes all of `beats`. The index passes its training stamp.
    pub stream: Option<u64>,
}

/// A retrieval device: holds integer codebooks in numbered slots and answers a whole
/// layer's searches per call, so per-call overhead is paid once per layer. Results are
/// bit-exact with `kvpq_core::golden::GoldenEngine::run` on every device.
///
/// A call that returns `Err` has changed nothing the caller can observe: a refused
/// `load_codebook` keeps the slot's previous codebook, a refused `search` runs no search.
pub trait Device: Send {
    /// Short name (`cpu`, `sim`, `xrt`, `board`).
    fn name(&self) -> &'static str;

    /// Loads (or replaces) the integer codebook of `slot`.
    fn load_codebook(&mut self, slot: usize, codebook: QuantCodebook) -> Result<(), RuntimeError>;

    /// Runs every search of `queries`; results in the same order. A call with any invalid
    /// query runs none of them.
    fn search(&mut self, queries: &[HeadQuery<'_>]) -> Result<Vec<QueryResult>, RuntimeError>;
}
