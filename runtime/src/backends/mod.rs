//! The devices: `cpu`, and `board` (a ULX3S over its UART, feature `board`); `sim` (Verilator
//! model) and `xrt` (Alveo) next.

#[cfg(feature = "board")]
pub mod board;
pub mod cpu;
