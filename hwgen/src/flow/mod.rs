//! Running the external tools on generated RTL: Verilator lint and Yosys synthesis checks.

pub mod lint;
pub mod tools;
pub mod yosys;

pub use tools::{Tool, ToolError};
