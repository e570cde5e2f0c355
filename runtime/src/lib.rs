//! kvpq's runtime: what inference code links to retrieve KV tokens.
//!
//! A [`Device`] answers a batch of PQ top-k searches, one per KV head of a layer, in one
//! call, bit-exact with the golden model of `kvpq-core` (docs/design.md section 3). Backends
//! live in [`backends`]; [`open_folder`] checks a generated folder before a backend runs it.
//!
//! Of kvpq's crates it depends on `kvpq-core` alone: no generator, templating or tool runner
//! (the `sim` feature adds the Verilator model; the `board` feature the ULX3S device and
//! `serialport`, docs/board.md). XRT is loaded at run time, never linked.

#![warn(missing_docs)]

pub mod backends;
mod checks;
#[cfg(feature = "cuda")]
pub mod cuda;
mod device;
mod error;
pub mod index;
mod open;
mod selection;
pub mod store;

pub use checks::MAX_SLOTS;
pub use device::{Device, HeadQuery};
pub use error::RuntimeError;
pub use index::{HeadCodes, Index, IndexOptions, LayerSearches, Sharding, TrainingOptions};
pub use open::{open_folder, Folder, ModelShape};
pub use selection::{Selection, Split};
pub use store::{DType, Element, KvStore};
