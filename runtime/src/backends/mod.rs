//! The devices: `cpu` and `xrt` (Alveo) today; `sim` (Verilator model) and `board` (ULX3S)
//! next.

pub mod cpu;
pub mod xrt;
