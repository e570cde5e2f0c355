//! The devices: `cpu` today; `sim` (Verilator model), `xrt` (Alveo) and `board` (ULX3S) next.

#[cfg(feature = "board")]
pub mod board;
pub mod cpu;
