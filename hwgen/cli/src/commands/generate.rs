//! `hwgen generate`: writes the Verilog of an accelerator, its manifest and a README; the
//! HLS kernel on request; and the files of its platform's target (for Alveo, the HLS kernel
//! and the Vitis project; for ECP5, the ULX3S board files).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use hwgen::emit::{hls, Design, EmitError};
use hwgen::targets;
use kvpq_core::manifest::{FILE_NAME, MAX_BYTES};
use kvpq_core::spec::{Accelerator, AcceleratorConfig};

/// Renders `acc` and writes the folder `out_dir`; returns the written paths.
pub fn write_design(
    acc: &Accelerator,
    out_dir: &Path,
) -> std::result::Result<(Design, Vec<PathBuf>), EmitError> {
    let design = Design::render(acc)?;
    let paths = design.write(out_dir)?;
    Ok((design, paths))
}

/// Every file `hwgen generate` writes for `acc`, as paths relative to the output folder:
/// the design folder, `hls/` with `hls`, and the files of its platform's target (for Alveo,
/// `hls/` and `vitis/`, whose Makefile finds the Verilog in `..`; for ECP5, the ULX3S board
/// files).
pub fn planned_files(
    acc: &Accelerator,
    hls: bool,
) -> std::result::Result<(Design, Vec<(PathBuf, String)>), EmitError> {
    let design = Design::render(acc)?;
    let mut files = design.files()?;
    if hls {
        files.extend(hls::files(acc)?);
    }
    if let Some(target) = targets::for_platform(acc.config().target.platform) {
        for (name, text) in target.render(acc, &design)? {
            // The Alveo target renders the HLS kernel itself: write it once.
            if !files.iter().any(|(n, _)| *n == name) {
                files.push((name, text));
            }
        }
    }
    let files = files
        .into_iter()
        .map(|(name, text)| (PathBuf::from(name), text))
        .collect();
    Ok((design, files))
}

/// What `hwgen generate` did to a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    /// Files written.
    pub written: Vec<PathBuf>,
    /// Files of the folder's previous design removed first (`--force`).
    pub removed: Vec<PathBuf>,
    /// Content hash of the new design.
    pub content_hash: String,
}

/// The design a folder's `manifest.json` describes, read leniently: an old or damaged
/// manifest must still say which files it generated, so that they can be removed.
struct OldDesign {
    name: Option<String>,
    /// Files it generated (relative, checked to stay inside the folder).
    files: BTreeSet<PathBuf>,
}

impl OldDesign {
    fn read(dir: &Path) -> Option<Result<Self, String>> {
        let path = dir.join(FILE_NAME);
        if !path.exists() {
            return None;
        }
        Some(Self::parse(&path))
    }

    fn parse(path: &Path) -> Result<Self, String> {
        let bytes = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
        if bytes > MAX_BYTES {
            return Err(format!("{bytes} bytes is not a manifest"));
        }
        let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("not JSON: {e}"))?;
        let name = v["config"]["name"].as_str().map(str::to_string);
        let mut files: BTreeSet<PathBuf> = [FILE_NAME, "README.md"].map(PathBuf::from).into();
        for f in v["files"].as_array().into_iter().flatten() {
            if let Some(p) = f["name"].as_str().and_then(inside) {
                files.insert(p);
            }
        }
        // The HLS and target files are not listed: render them from the old description,
        // when it still validates.
        let old = serde_json::from_value::<AcceleratorConfig>(v["config"].clone())
            .ok()
            .and_then(|c| Accelerator::new(c).ok());
        if let Some(Ok((_, planned))) = old.map(|acc| planned_files(&acc, true)) {
            files.extend(planned.into_iter().map(|(p, _)| p));
        }
        Ok(Self { name, files })
    }
}

/// `name` as a path inside the folder, or `None` if it could leave it (`..`, absolute): a
/// hostile manifest must not make `--force` delete files elsewhere.
fn inside(name: &str) -> Option<PathBuf> {
    let p = PathBuf::from(name);
    let plain = !name.is_empty()
        && p.components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
    plain.then_some(p)
}

/// Generates `acc` into `dir`, refusing to mix two designs in one folder.
///
/// A folder without `manifest.json` is written into as is. A folder whose manifest names
/// another design, or cannot be read, is refused; so is one where files of the previous
/// generation (the Verilog its manifest lists, its `hls/` and `vitis/` files) would remain
/// beside the new ones. With `force`, exactly those previous files are removed first;
/// files no manifest accounts for are never touched.
pub fn generate(acc: &Accelerator, dir: &Path, hls: bool, force: bool) -> Result<Generated> {
    let (design, files) = planned_files(acc, hls)?;
    let new: BTreeSet<&Path> = files.iter().map(|(p, _)| p.as_path()).collect();
    let name = &acc.config().name;
    let mut removed = Vec::new();
    if let Some(old) = OldDesign::read(dir) {
        let hint = "choose another --out folder, or pass --force to remove the previous \
                    design's generated files first";
        let old = match (old, force) {
            (Ok(old), _) => old,
            (Err(e), false) => bail!(
                "{} holds a manifest.json that cannot be read ({e}); {hint}",
                dir.display()
            ),
            // Nothing is known about the previous files: only the manifest goes.
            (Err(_), true) => OldDesign {
                name: None,
                files: [PathBuf::from(FILE_NAME)].into(),
            },
        };
        let stale: Vec<&PathBuf> = old
            .files
            .iter()
            .filter(|p| !new.contains(p.as_path()) && dir.join(p).is_file())
            .collect();
        if !force {
            if let Some(other) = old.name.as_ref().filter(|o| *o != name) {
                bail!(
                    "{} holds the design `{other}` (its manifest.json), not `{name}`: \
                     refusing to mix two designs in one folder; {hint}",
                    dir.display()
                );
            }
            if !stale.is_empty() {
                let shown: Vec<String> = stale
                    .iter()
                    .take(8)
                    .map(|p| p.display().to_string())
                    .collect();
                bail!(
                    "{}: {} file(s) of the previous generation would remain beside the new \
                     ones ({}{}); {hint}",
                    dir.display(),
                    stale.len(),
                    shown.join(", "),
                    if stale.len() > shown.len() {
                        ", ..."
                    } else {
                        ""
                    }
                );
            }
        }
        for p in old.files.iter().filter(|p| dir.join(p).is_file()) {
            let path = dir.join(p);
            std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
            removed.push(path);
        }
        // Folders the previous design made and left empty go too; others fail quietly.
        for sub in ["hls", "vitis"] {
            let _ = std::fs::remove_dir(dir.join(sub));
        }
    }
    let mut written = Vec::with_capacity(files.len());
    for (rel, text) in &files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        written.push(path);
    }
    // Keep only removals that were not rewritten: those are the stale files.
    removed.retain(|p| !written.contains(p));
    Ok(Generated {
        written,
        removed,
        content_hash: design.manifest.content_hash,
    })
}
