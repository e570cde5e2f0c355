//! `hwgen estimate DIR`: UltraScale+ resource estimates of a generated folder, written into
//! its `manifest.json` under `estimates.xcup.<top>` and printed.

use std::path::Path;

use anyhow::{bail, Context, Result};

use hwgen::flow::xilinx::{estimate_xcup, Estimate};
use kvpq_core::manifest::Manifest;

/// Reads and checks `DIR/manifest.json`.
pub fn read_manifest(dir: &Path) -> Result<Manifest> {
    Manifest::read(dir).with_context(|| {
        format!(
            "reading the manifest of {} (a folder written by `hwgen generate` or `hwgen build`)",
            dir.display()
        )
    })
}

/// Synthesizes `top` (default: the manifest's top, the engine) of the folder for UltraScale+
/// and records the estimate in the manifest.
pub fn run(dir: &Path, top: Option<&str>) -> Result<Estimate> {
    let mut manifest = read_manifest(dir)?;
    let files: Vec<String> = manifest
        .files
        .iter()
        .map(|f| f.name.clone())
        .filter(|n| n.ends_with(".v"))
        .collect();
    if files.is_empty() {
        bail!("manifest.json lists no Verilog files");
    }
    let top = top.unwrap_or(&manifest.top).to_string();
    if !files.contains(&format!("{top}.v")) {
        bail!(
            "module `{top}` is not among the folder's files ({})",
            files.join(", ")
        );
    }
    let estimate = estimate_xcup(dir, &files, &top).context("UltraScale+ synthesis (yosys)")?;
    manifest.estimates.xcup.insert(top, estimate.clone());
    manifest.write(dir)?;
    Ok(estimate)
}
