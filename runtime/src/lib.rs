//! kvpq's runtime: what inference code links to retrieve KV tokens.
//!
//! A [`Device`] answers a batch of PQ top-k searches, one per KV head of a layer, in one
//! call, bit-exact with the golden model of `kvpq-core` (docs/design.md section 3). This is
//! the first step of issue [7]: the device trait and the [`backends::cpu`] backend. The
//! retrieval index (prefill, append, select, the host KV store) and the `sim`, `xrt` and
//! `board` backends build on it.
//!
//! The crate depends on `kvpq-core` alone: no generator, templating or tool runner.

#![warn(missing_docs)]

pub mod backends;
mod device;
mod error;

pub use device::{Device, HeadQuery};
pub use error::RuntimeError;
