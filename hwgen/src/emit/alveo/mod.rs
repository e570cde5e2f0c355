//! The Alveo kernel's files: the RTL kernel around the engine and the Vitis project, both
//! rendered from the kernel interface of `kvpq_core::interface::alveo`.

pub mod rtl;
pub mod vitis;

pub use kvpq_core::interface::alveo::*;

/// Verilog files the RTL kernel is packaged from, leaves first: every generated file but the
/// open-board top.
pub fn kernel_rtl_files(design: &crate::emit::Design) -> Vec<String> {
    design
        .sources
        .iter()
        .filter(|f| f.module != "kvpq_board_top")
        .map(|f| f.file_name.clone())
        .collect()
}
