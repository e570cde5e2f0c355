//! Platform code, one folder per target, named the same in every stage: the Rust module
//! (`targets::alveo`, `targets::ecp5`), its templates (`templates/alveo/`, `templates/ecp5/`)
//! and its manifest record. Each target renders its own files, runs its own flow and prints
//! its own report through the [`Target`] trait, so the commands stay platform-agnostic.
//!
//! Generic code stays outside: [`crate::emit`] renders the engine and [`crate::flow`] runs
//! the tools every target shares (Verilator lint, Yosys checks).

pub mod alveo;
pub mod ecp5;

use std::path::Path;

use thiserror::Error;

use crate::emit::verilog::SourceFile;
use crate::emit::{Design, EmitError};
use crate::flow::ToolError;
use kvpq_core::manifest::{Manifest, ManifestError};
use kvpq_core::spec::{Accelerator, Platform};

pub use alveo::Alveo;
pub use ecp5::Ecp5;

/// Why a target's build failed.
#[derive(Debug, Error)]
pub enum BuildError {
    /// A tool failed or is missing.
    #[error(transparent)]
    Tool(#[from] ToolError),
    /// The tools ran but what they produced (or what was asked of them) is unusable.
    #[error("{0}")]
    Flow(String),
}

/// A generated folder a target builds in.
#[derive(Debug, Clone)]
pub struct Folder<'a> {
    /// The folder; the target's outputs and logs go there too.
    pub dir: &'a Path,
    /// The design's Verilog files (names inside `dir`), in the order the tools read them.
    pub verilog: Vec<String>,
    /// The folder's manifest; a build records its result in it (the caller writes it).
    pub manifest: Manifest,
}

impl<'a> Folder<'a> {
    /// The folder `dir` that `design` was just written into: its files leaves first.
    pub fn of_design(dir: &'a Path, design: &Design) -> Self {
        Self {
            dir,
            verilog: design.verilog_files(),
            manifest: design.manifest.clone(),
        }
    }

    /// A folder written earlier, known only by its manifest (files in the manifest's order).
    pub fn read(dir: &'a Path) -> Result<Self, ManifestError> {
        let manifest = Manifest::read(dir)?;
        let verilog = manifest
            .files
            .iter()
            .map(|f| f.name.clone())
            .filter(|n| n.ends_with(".v"))
            .collect();
        Ok(Self {
            dir,
            verilog,
            manifest,
        })
    }
}

/// What a build may be told besides the folder.
#[derive(Default)]
pub struct BuildOptions<'a> {
    /// Module to build; `None` takes the target's choice.
    pub top: Option<&'a str>,
    /// Placement seed, for flows that place.
    pub seed: u32,
    /// Called with a step's label before (`false`) and after (`true`) the step, so a caller
    /// can show progress.
    pub on_step: Option<&'a mut dyn FnMut(&'static str, bool)>,
}

impl BuildOptions<'_> {
    /// Reports a step to [`BuildOptions::on_step`], if any.
    pub fn step(&mut self, label: &'static str, done: bool) {
        if let Some(f) = self.on_step.as_mut() {
            f(label, done);
        }
    }
}

/// A platform: what it adds to a design, the files beside it, its flow and its report.
pub trait Target {
    /// The target's name in every stage: module, template folder, `--target` family.
    fn name(&self) -> &'static str;

    /// Verilog modules the target adds to the design itself (hashed into its manifest).
    fn sources(&self, _acc: &Accelerator) -> Result<Vec<SourceFile>, EmitError> {
        Ok(Vec::new())
    }

    /// The target's files beside the design, as `(path relative to the folder, text)`.
    fn render(
        &self,
        acc: &Accelerator,
        design: &Design,
    ) -> Result<Vec<(String, String)>, EmitError>;

    /// Runs the target's flow in `folder` (holding the design and [`Target::render`]'s files)
    /// and records the result in `folder.manifest`.
    fn build(&self, folder: &mut Folder, opts: &mut BuildOptions) -> Result<(), BuildError>;

    /// The target's section of `hwgen report`, printed from what `manifest` records; `None`
    /// when it records nothing of this target.
    fn report(&self, acc: &Accelerator, manifest: &Manifest) -> Option<String>;
}

/// Where `hwgen build` puts the folder of `design` under `root`:
/// `<root>/<name>-<first 12 hash digits>`, so a folder names the RTL it was built from.
pub fn build_dir(root: &std::path::Path, design: &crate::emit::Design) -> std::path::PathBuf {
    let m = &design.manifest;
    root.join(format!("{}-{}", m.config.name, &m.content_hash[..12]))
}

/// The target of `platform`; `None` for `generic`, which has no platform files.
pub fn for_platform(platform: Platform) -> Option<Box<dyn Target>> {
    match platform {
        Platform::Generic => None,
        Platform::Ecp5 => Some(Box::new(Ecp5)),
        Platform::U280 | Platform::U55c => Some(Box::new(Alveo)),
    }
}

/// Every target, in the order reports list them.
pub fn all() -> Vec<Box<dyn Target>> {
    vec![Box::new(Alveo), Box::new(Ecp5)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_target_has_its_template_folder_under_its_name() {
        let templates = Path::new(env!("CARGO_MANIFEST_DIR")).join("../templates");
        for t in all() {
            assert!(templates.join(t.name()).is_dir(), "templates/{}", t.name());
        }
        assert_eq!(for_platform(Platform::U55c).unwrap().name(), "alveo");
        assert_eq!(for_platform(Platform::Ecp5).unwrap().name(), "ecp5");
        assert!(for_platform(Platform::Generic).is_none());
    }
}
