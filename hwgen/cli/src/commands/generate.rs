//! `hwgen generate`: writes the Verilog of an accelerator, its manifest and a README; the
//! HLS kernel on request; for Alveo targets also the HLS kernel and the Vitis project.

use std::path::{Path, PathBuf};

use hwgen::emit::alveo::{kernel_rtl_files, vitis};
use hwgen::emit::{hls, write_files, Design, EmitError};
use kvpq_core::spec::Accelerator;

/// Renders `acc` and writes the folder `out_dir`; returns the written paths.
pub fn write_design(
    acc: &Accelerator,
    out_dir: &Path,
) -> Result<(Design, Vec<PathBuf>), EmitError> {
    let design = Design::render(acc)?;
    let paths = design.write(out_dir)?;
    Ok((design, paths))
}

/// Writes the HLS kernel, its parameter header and the C simulation harness into `dir`.
pub fn write_hls(acc: &Accelerator, dir: &Path) -> Result<Vec<PathBuf>, EmitError> {
    let files: Vec<(String, String)> = hls::render(acc)?
        .into_iter()
        .map(|f| (f.file_name, f.text))
        .collect();
    write_files(dir, &files)
}

/// Writes the Vitis project of an Alveo design into `dir` (normally `<rtl folder>/vitis`,
/// since the Makefile and the packaging script find the Verilog in `..`).
pub fn write_vitis(
    acc: &Accelerator,
    design: &Design,
    dir: &Path,
) -> Result<Vec<PathBuf>, EmitError> {
    let Some(kernel) = &design.manifest.interface.kernel else {
        return Ok(Vec::new());
    };
    let files = vitis::render(acc, kernel, &kernel_rtl_files(design))?;
    write_files(dir, &files)
}
