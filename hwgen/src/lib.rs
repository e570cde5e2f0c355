//! kvpq's hardware generator: turns a validated accelerator (`kvpq_core::spec`) into files
//! (Verilog, HLS C++, platform projects) and runs the external tools on them.
//!
//! [`emit`] renders a design folder from askama templates; [`flow`] runs Verilator and Yosys
//! on it; [`targets`] holds each platform's files, flow and report (Alveo, ECP5) behind one
//! trait; [`projection`] prints the cycle model's throughput and latency for the reports. The description, golden model and interface it reads live in `kvpq-core`; the
//! commands that print results live in the `hwgen` binary crate.

#![warn(missing_docs)]

pub mod emit;
pub mod flow;
pub mod projection;
pub mod targets;
