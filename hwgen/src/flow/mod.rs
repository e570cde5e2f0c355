//! Running the external tools every target shares on generated RTL: finding them, Verilator
//! lint and Yosys synthesis checks. Platform flows (UltraScale+ estimates, the ECP5 bitstream)
//! live with their target in [`crate::targets`].

pub mod lint;
pub mod tools;
pub mod yosys;

pub use tools::{Tool, ToolError};
