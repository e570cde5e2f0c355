//! Running the external tools on generated RTL: Verilator lint, Yosys synthesis checks and
//! UltraScale+ resource estimates.

pub mod ecp5;
pub mod ecp5_synth;
pub mod lint;
pub mod tools;
pub mod xilinx;
pub mod yosys;

pub use tools::{Tool, ToolError};
