//! Co-simulation of kvpq's generated RTL with Verilator, driven from Rust.
//!
//! Layers, bottom up: [`build::build_model`] verilates a generated design into a shared
//! library (cached by content hash; described modules take their ports from the interface
//! description, checked against their Verilog), [`model::Model`] loads it, and
//! [`harness::Harness`] names its ports, clocks it and offers stalls, one cycle budget and
//! valid/ready handshakes. On the harness, [`driver::EngineSim`] plays the engine's
//! environment (codebooks, queries, code beats, results, cycle counts), [`board::BoardSim`]
//! a host on the byte stream of the board top that bitstreams wrap, and [`alveo::KernelSim`]
//! XRT and device memory around the Alveo RTL kernel.

#![warn(missing_docs)]

pub mod alveo;
pub mod board;
pub mod build;
pub mod driver;
pub mod error;
pub mod harness;
pub mod model;
pub mod ports;

pub use alveo::{
    Fault, FaultAt, KernelCall, KernelJob, KernelJobOutcome, KernelOutcome, KernelSim,
};
pub use build::{build_model, build_traced_model, default_cache, BuiltModel};
pub use driver::{EngineSim, Job, JobOutcome};
pub use error::{Result, SimError};
pub use harness::{Harness, PortId, Sink, Source, Stalls};
pub use model::Model;
