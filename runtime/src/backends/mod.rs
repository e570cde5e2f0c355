//! The devices: `cpu` (the integer path on the host), `sim` (the Verilator model of a
//! folder's RTL, feature `sim`); `xrt` (Alveo) and `board` (ULX3S) follow.

pub mod cpu;
#[cfg(feature = "sim")]
pub mod sim;
