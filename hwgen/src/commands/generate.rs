//! `hwgen generate`: writes the Verilog of an accelerator into a folder.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::emit::verilog;
use crate::spec::Accelerator;

/// Writes every generated file into `out_dir` (created if missing); returns the paths.
pub fn write_rtl(acc: &Accelerator, out_dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out_dir)
        .with_context(|| format!("cannot create output folder {}", out_dir.display()))?;
    let files = verilog::render(acc).context("rendering Verilog templates")?;
    let mut paths = Vec::with_capacity(files.len());
    for f in files {
        let path = out_dir.join(&f.file_name);
        std::fs::write(&path, &f.text).with_context(|| format!("cannot write {}", path.display()))?;
        paths.push(path);
    }
    Ok(paths)
}
