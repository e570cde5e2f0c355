//! `hwgen generate`: writes the Verilog of an accelerator, its manifest and a README; the
//! HLS kernel on request; and the files of its platform's target (for Alveo, the HLS kernel
//! and the Vitis project; for ECP5, the ULX3S board files).

use std::path::{Path, PathBuf};

use hwgen::emit::{hls, write_files, Design, EmitError};
use hwgen::targets;
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

/// Writes the files of the target of `acc`'s platform beside `design` in `dir` (for Alveo,
/// `hls/` and `vitis/`, whose Makefile finds the Verilog in `..`), and the HLS kernel under
/// `dir/hls` when `hls` asks for it; returns the written paths.
pub fn write_target(
    acc: &Accelerator,
    design: &Design,
    dir: &Path,
    hls: bool,
) -> Result<Vec<PathBuf>, EmitError> {
    let mut files = if hls { hls::files(acc)? } else { Vec::new() };
    if let Some(target) = targets::for_platform(acc.config().target.platform) {
        for (name, text) in target.render(acc, design)? {
            // The Alveo target renders the HLS kernel itself: write it once.
            if !files.iter().any(|(n, _)| *n == name) {
                files.push((name, text));
            }
        }
    }
    write_files(dir, &files)
}
