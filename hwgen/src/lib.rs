//! kvpq `hwgen`: describe a PQ KV-retrieval accelerator, model it bit-exactly, and (in later
//! stages) generate its hardware.
//!
//! The crate follows the pipeline of the project: [`spec`] (the description and its derived
//! view) -> [`golden`] (the bit-exact software model) -> emitters. [`workload`] makes the
//! synthetic keys and queries the commands and tests run on, and [`commands`] holds what the
//! `hwgen` binary prints.

#![warn(missing_docs)]

pub mod commands;
pub mod emit;
pub mod flow;
pub mod golden;
pub mod spec;
pub mod workload;
