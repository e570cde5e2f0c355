//! Emitters: turn a validated accelerator into a folder of files (Verilog, its manifest and a
//! README; the HLS kernel follows the same pattern). Platform files are rendered by
//! [`crate::targets`].

pub mod hls;
pub mod readme;
pub mod verilog;

use std::path::{Path, PathBuf};

use askama::Template;
use thiserror::Error;

pub use kvpq_core::manifest::Manifest;
use kvpq_core::spec::Accelerator;

/// Why a folder could not be generated.
#[derive(Debug, Error)]
pub enum EmitError {
    /// A template failed to render.
    #[error("rendering templates: {0}")]
    Render(#[from] askama::Error),
    /// The accelerator cannot be wrapped as an Alveo kernel.
    #[error(transparent)]
    Kernel(#[from] kvpq_core::interface::KernelError),
    /// A board wrapper cannot be made for the accelerator.
    #[error("board {board}: {what}")]
    Board {
        /// Board name.
        board: &'static str,
        /// What is wrong, naming the field.
        what: String,
    },
    /// A file could not be written.
    #[error("cannot write {path}: {source}")]
    Io {
        /// File or folder.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
}

/// A generated design: its files and manifest, in memory.
#[derive(Debug, Clone)]
pub struct Design {
    /// Verilog sources, leaves first.
    pub sources: Vec<verilog::SourceFile>,
    /// The manifest.
    pub manifest: Manifest,
}

impl Design {
    /// Renders every file of `acc`: the engine, the board top and what the target of
    /// `target.platform` adds to the design (for Alveo, the RTL kernel around the engine).
    pub fn render(acc: &Accelerator) -> Result<Self, EmitError> {
        let mut sources = verilog::render(acc)?;
        if let Some(target) = crate::targets::for_platform(acc.config().target.platform) {
            sources.extend(target.sources(acc)?);
        }
        let manifest = Manifest::new(acc, &sources)?;
        Ok(Self { sources, manifest })
    }

    /// Names of the Verilog files, leaves first.
    pub fn verilog_files(&self) -> Vec<String> {
        self.sources.iter().map(|f| f.file_name.clone()).collect()
    }

    /// Every file of the folder as `(name, text)`: sources, `manifest.json`, `README.md`.
    pub fn files(&self) -> Result<Vec<(String, String)>, EmitError> {
        let mut files: Vec<(String, String)> = self
            .sources
            .iter()
            .map(|f| (f.file_name.clone(), f.text.clone()))
            .collect();
        files.push(("manifest.json".into(), self.manifest.to_json()));
        files.push((
            "README.md".into(),
            readme::FolderReadme::new(&self.manifest).render()? + "\n",
        ));
        Ok(files)
    }

    /// Writes [`Design::files`] into `dir`; returns the paths.
    pub fn write(&self, dir: &Path) -> Result<Vec<PathBuf>, EmitError> {
        write_files(dir, &self.files()?)
    }
}

/// Writes `(name, text)` files into `dir` (created if missing); returns the paths. A name may
/// hold a folder (`vitis/Makefile`), which is created too.
pub fn write_files(dir: &Path, files: &[(String, String)]) -> Result<Vec<PathBuf>, EmitError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| EmitError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    files
        .iter()
        .map(|(name, text)| {
            let path = dir.join(name);
            if let Some(parent) = path.parent().filter(|p| *p != dir) {
                std::fs::create_dir_all(parent).map_err(io(parent))?;
            }
            std::fs::write(&path, text).map_err(io(&path))?;
            Ok(path)
        })
        .collect()
}
