//! kvpq's runtime: what inference code links to retrieve KV tokens.
//!
//! A [`Device`] answers a batch of PQ top-k searches, one per KV head of a layer, in one
//! call, bit-exact with the golden model of `kvpq-core` (docs/design.md section 3). Backends
//! live in [`backends`]; [`open_folder`] checks a generated folder before a backend runs it.
//!
//! The crate depends on `kvpq-core` alone: no generator, templating or tool runner. The
//! `board` feature adds the ULX3S device and `serialport` (docs/board.md).

#![warn(missing_docs)]

pub mod backends;
mod checks;
mod device;
mod error;
mod open;

pub use device::{Device, HeadQuery};
pub use error::RuntimeError;
pub use open::{open_folder, Folder, ModelShape};
