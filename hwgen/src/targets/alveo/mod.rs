//! AMD Alveo cards (U280, U55C): the RTL kernel around the engine and the Vitis project, both
//! rendered from the kernel interface of `kvpq_core::interface::alveo`, and UltraScale+
//! resource estimates (Yosys `synth_xilinx`; Vitis itself is not run here).

pub mod estimate;
pub mod report;
pub mod rtl;
pub mod vitis;

pub use kvpq_core::interface::alveo::*;

use super::{BuildError, BuildOptions, Folder, Target};
use crate::emit::verilog::SourceFile;
use crate::emit::{hls, Design, EmitError};
use kvpq_core::interface::Interface;
use kvpq_core::manifest::Manifest;
use kvpq_core::spec::Accelerator;

/// Folder (inside the design's) of the Vitis project; its Makefile finds the RTL in `..`.
pub const VITIS_DIR: &str = "vitis";

/// Verilog files the RTL kernel is packaged from, leaves first: every generated file but the
/// open-board top.
pub fn kernel_rtl_files(design: &Design) -> Vec<String> {
    design
        .sources
        .iter()
        .filter(|f| f.module != "kvpq_board_top")
        .map(|f| f.file_name.clone())
        .collect()
}

/// The Alveo target.
#[derive(Debug, Clone, Copy, Default)]
pub struct Alveo;

impl Target for Alveo {
    fn name(&self) -> &'static str {
        "alveo"
    }

    /// The RTL kernel (`kvpq_krnl`, AXI4-Lite control, AXI4 reader and writer).
    fn sources(&self, acc: &Accelerator) -> Result<Vec<SourceFile>, EmitError> {
        match Interface::of(acc)?.kernel {
            Some(kernel) => Ok(rtl::render(acc, &kernel)?),
            None => Ok(Vec::new()),
        }
    }

    /// The HLS kernel under `hls/` and the Vitis project under `vitis/`.
    fn render(
        &self,
        acc: &Accelerator,
        design: &Design,
    ) -> Result<Vec<(String, String)>, EmitError> {
        let mut files = hls::files(acc)?;
        if let Some(kernel) = &design.manifest.interface.kernel {
            let project = vitis::render(acc, kernel, &kernel_rtl_files(design))?;
            files.extend(
                project
                    .into_iter()
                    .map(|(name, text)| (format!("{VITIS_DIR}/{name}"), text)),
            );
        }
        Ok(files)
    }

    /// UltraScale+ estimate of `opts.top` (default: the manifest's top, the engine), recorded
    /// under `estimates.xcup.<top>`.
    fn build(&self, folder: &mut Folder, opts: &mut BuildOptions) -> Result<(), BuildError> {
        let files = &folder.verilog;
        if files.is_empty() {
            return Err(BuildError::Flow(
                "manifest.json lists no Verilog files".into(),
            ));
        }
        let top = opts.top.unwrap_or(&folder.manifest.top).to_string();
        if !files.contains(&format!("{top}.v")) {
            return Err(BuildError::Flow(format!(
                "module `{top}` is not among the folder's files ({})",
                files.join(", ")
            )));
        }
        opts.step(estimate::STEP, false);
        let e = estimate::estimate_xcup(folder.dir, files, &top)?;
        opts.step(estimate::STEP, true);
        folder.manifest.estimates.xcup.insert(top, e);
        Ok(())
    }

    fn report(&self, acc: &Accelerator, manifest: &Manifest) -> Option<String> {
        report::estimates(acc, manifest)
    }
}
