//! Opening a generated folder (RTL, kernel or bitstream): read the typed manifest, check every
//! file's SHA-256 and the content hash, and check the parameters against the model shape the
//! caller asks for. Every backend that runs a folder opens it here.

use std::path::{Path, PathBuf};

use kvpq_core::manifest::Manifest;
use kvpq_core::spec::Accelerator;

use crate::RuntimeError;

/// What the caller's model needs of an accelerator. `None` fields are not checked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ModelShape {
    /// Key dimension per head (`pq.head_dim`).
    pub head_dim: Option<u32>,
    /// Tokens the longest context holds (`engine.max_tokens` must be at least this).
    pub max_tokens: Option<u32>,
    /// Query heads per KV head (`retrieval.gqa_group`).
    pub gqa_group: Option<u32>,
}

/// A checked folder: its manifest and the accelerator it describes.
#[derive(Debug, Clone)]
pub struct Folder {
    /// The folder.
    pub path: PathBuf,
    /// Its manifest, typed and checked.
    pub manifest: Manifest,
    /// The validated description.
    pub accelerator: Accelerator,
}

/// Reads and checks `dir` against `shape`; `Err` names the file or the parameter, with both
/// values, that does not match.
pub fn open_folder(dir: &Path, shape: &ModelShape) -> Result<Folder, RuntimeError> {
    let manifest = Manifest::read(dir)?;
    manifest.verify_files(dir)?;
    let accelerator = manifest
        .accelerator()
        .map_err(kvpq_core::manifest::ManifestError::from)?;
    let c = accelerator.config();
    let mismatch = |field, found: u32, requested: String| RuntimeError::Mismatch {
        folder: dir.to_path_buf(),
        field,
        found: found.to_string(),
        requested,
    };
    if let Some(d) = shape.head_dim.filter(|&d| d != c.pq.head_dim) {
        return Err(mismatch("pq.head_dim", c.pq.head_dim, d.to_string()));
    }
    if let Some(n) = shape.max_tokens.filter(|&n| n > c.engine.max_tokens) {
        return Err(mismatch(
            "engine.max_tokens",
            c.engine.max_tokens,
            format!("a context of {n} tokens"),
        ));
    }
    if let Some(g) = shape.gqa_group.filter(|&g| g != c.retrieval.gqa_group) {
        return Err(mismatch(
            "retrieval.gqa_group",
            c.retrieval.gqa_group,
            g.to_string(),
        ));
    }
    Ok(Folder {
        path: dir.to_path_buf(),
        manifest,
        accelerator,
    })
}
