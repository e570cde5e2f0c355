//! `hwgen estimate DIR`: UltraScale+ resource estimates of a generated folder, written into
//! its `manifest.json` under `estimates.xcup.<top>` and printed.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::flow::xilinx::{estimate_xcup, Estimate};

/// Reads `DIR/manifest.json` as JSON.
pub fn read_manifest(dir: &Path) -> Result<Value> {
    let path = dir.join("manifest.json");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "reading {} (is {} a folder written by `hwgen generate`?)",
            path.display(),
            dir.display()
        )
    })?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

pub(crate) fn write_manifest(dir: &Path, manifest: &Value) -> Result<()> {
    let path = dir.join("manifest.json");
    let text = serde_json::to_string_pretty(manifest).context("serializing the manifest")? + "\n";
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
}

/// The Verilog files the manifest lists.
fn verilog_files(manifest: &Value) -> Result<Vec<String>> {
    let files = manifest["files"]
        .as_array()
        .context("manifest.json has no `files` list")?;
    let names: Vec<String> = files
        .iter()
        .filter_map(|f| f["name"].as_str())
        .filter(|n| n.ends_with(".v"))
        .map(str::to_string)
        .collect();
    if names.is_empty() {
        bail!("manifest.json lists no Verilog files");
    }
    Ok(names)
}

/// Synthesizes `top` (default: the manifest's top, the engine) of the folder for UltraScale+
/// and records the estimate in the manifest.
pub fn run(dir: &Path, top: Option<&str>) -> Result<Estimate> {
    let mut manifest = read_manifest(dir)?;
    let files = verilog_files(&manifest)?;
    let top = match top {
        Some(t) => t.to_string(),
        None => manifest["top"]
            .as_str()
            .context("manifest.json has no `top`")?
            .to_string(),
    };
    if !files.contains(&format!("{top}.v")) {
        bail!(
            "module `{top}` is not among the folder's files ({})",
            files.join(", ")
        );
    }
    let estimate = estimate_xcup(dir, &files, &top).context("UltraScale+ synthesis (yosys)")?;
    let root = manifest
        .as_object_mut()
        .context("manifest.json is not a JSON object")?;
    let estimates = root
        .entry("estimates")
        .or_insert_with(|| Value::Object(Default::default()));
    let xcup = estimates
        .as_object_mut()
        .context("manifest `estimates` is not an object")?
        .entry("xcup")
        .or_insert_with(|| Value::Object(Default::default()));
    xcup.as_object_mut()
        .context("manifest `estimates.xcup` is not an object")?
        .insert(top, serde_json::to_value(&estimate)?);
    write_manifest(dir, &manifest)?;
    Ok(estimate)
}
