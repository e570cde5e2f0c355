//! kvpq's core: what every other part of the project reads and nothing more.
//!
//! [`spec`] is the description of an accelerator (DSL), its validation and the derived view
//! (every width, the code packing, storage, the cycle model); [`interface`] is what crosses
//! the accelerator's boundary, computed once from the derived view (engine ports, the board
//! byte protocol, the Alveo kernel's registers and buffers); [`manifest`] is the record a
//! generated folder carries and a runtime reads back; [`golden`] is the bit-exact software
//! model every implementation must match; [`workload`] makes synthetic keys and queries.
//!
//! The crate needs no templating, tool runner, plotting or command-line crates, so inference
//! code can link it without a hardware generator.

#![warn(missing_docs)]

pub mod golden;
pub mod interface;
pub mod manifest;
pub mod spec;
pub mod workload;
