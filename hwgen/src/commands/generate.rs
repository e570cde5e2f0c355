//! `hwgen generate`: writes the Verilog of an accelerator, its manifest and a README.

use std::path::{Path, PathBuf};

use crate::emit::{hls, Design, EmitError};
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

/// Writes the HLS kernel, its parameter header and the C simulation harness into `dir`.
pub fn write_hls(acc: &Accelerator, dir: &Path) -> Result<Vec<PathBuf>, EmitError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| EmitError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut paths = Vec::new();
    for f in hls::render(acc)? {
        let path = dir.join(&f.file_name);
        std::fs::write(&path, &f.text).map_err(io(&path))?;
        paths.push(path);
    }
    Ok(paths)
}
