//! `hwgen estimate DIR`: UltraScale+ resource estimates of a generated folder (the Alveo
//! target's build), written into its `manifest.json` under `estimates.xcup.<top>` and printed.

use std::path::Path;

use anyhow::{Context, Result};

use hwgen::targets::alveo::estimate::Estimate;
use hwgen::targets::{Alveo, BuildOptions, Folder, Target};
use kvpq_core::manifest::Manifest;

/// The context every command that reads a generated folder's manifest gives its errors.
fn manifest_context(dir: &Path) -> String {
    format!(
        "reading the manifest of {} (a folder written by `hwgen generate` or `hwgen build`)",
        dir.display()
    )
}

/// Reads and checks `DIR/manifest.json`.
pub fn read_manifest(dir: &Path) -> Result<Manifest> {
    Manifest::read(dir).with_context(|| manifest_context(dir))
}

/// Synthesizes `top` (default: the manifest's top, the engine) of the folder for UltraScale+
/// and records the estimate in the manifest.
pub fn run(dir: &Path, top: Option<&str>) -> Result<Estimate> {
    let mut folder = Folder::read(dir).with_context(|| manifest_context(dir))?;
    let top = top.unwrap_or(&folder.manifest.top).to_string();
    let opts = &mut BuildOptions {
        top: Some(&top),
        ..BuildOptions::default()
    };
    Alveo
        .build(&mut folder, opts)
        .context("UltraScale+ synthesis (yosys)")?;
    folder.manifest.write(dir)?;
    Ok(folder.manifest.estimates.xcup[&top].clone())
}
