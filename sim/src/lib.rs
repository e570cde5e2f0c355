//! Co-simulation of kvpq's generated RTL with Verilator, driven from Rust.
//!
//! [`build::build_model`] verilates a generated design into a shared library (cached by
//! content hash), [`model::Model`] loads it, and [`driver::EngineSim`] plays the engine's
//! environment: codebooks, queries, code beats with random stalls, results, cycle counts;
//! [`board::BoardSim`] plays a host on the byte stream of the board top that bitstreams wrap.

#![warn(missing_docs)]

pub mod board;
pub mod build;
pub mod driver;
pub mod error;
pub mod kernel;
pub mod model;
pub mod ports;

pub use build::{build_model, default_cache, BuiltModel};
pub use driver::{EngineSim, Job, JobOutcome, Stalls};
pub use error::{Result, SimError};
pub use kernel::{KernelCall, KernelOutcome, KernelSim};
pub use model::Model;
