//! Emitters: turn a validated accelerator into files (Verilog now; HLS and platform projects
//! follow the same pattern).

pub mod verilog;
