//! `hwgen generate`: writes the Verilog of an accelerator, its manifest and a README.

use std::path::{Path, PathBuf};

use crate::emit::{Design, EmitError};
use crate::spec::Accelerator;

/// Renders `acc` and writes the folder `out_dir`; returns the written paths.
pub fn write_design(
    acc: &Accelerator,
    out_dir: &Path,
) -> Result<(Design, Vec<PathBuf>), EmitError> {
    let design = Design::render(acc)?;
    let paths = design.write(out_dir)?;
    Ok((design, paths))
}
