//! The devices: `cpu` today; `sim` (Verilator model), `xrt` (Alveo) and `board` (ULX3S) next.

pub mod cpu;
