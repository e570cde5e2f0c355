//! The devices: `cpu` (the integer path on the host), `sim` (the Verilator model of a
//! folder's RTL, feature `sim`), `xrt` (an Alveo kernel through XRT loaded at run time);
//! `board` (ULX3S) follows.

pub mod cpu;
#[cfg(feature = "sim")]
pub mod sim;
pub mod xrt;
