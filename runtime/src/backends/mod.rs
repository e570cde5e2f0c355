//! The devices: `cpu` (the integer path on the host), `sim` (the Verilator model of a
//! folder's RTL, feature `sim`), `xrt` (an Alveo kernel through XRT loaded at run time),
//! `board` (a ULX3S over its UART, feature `board`), `gpu` (an NVIDIA GPU, feature `cuda`).

#[cfg(feature = "board")]
pub mod board;
pub mod cpu;
#[cfg(feature = "cuda")]
pub mod gpu;
#[cfg(feature = "sim")]
pub mod sim;
pub mod xrt;
