//! The manifest written beside generated RTL: the description, every derived width, the
//! engine's ports, the code packing and a content hash the runtime checks before it trusts a
//! bitstream or model built from the folder.

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::alveo::KernelInterface;
use super::verilog::ports::{engine_ports, Port};
use super::verilog::SourceFile;
use crate::spec::{Accelerator, AcceleratorConfig, CodeLayout, Derived};

/// One generated file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileEntry {
    /// File name inside the folder.
    pub name: String,
    /// Module it defines.
    pub module: String,
    /// SHA-256 of its contents (hex).
    pub sha256: String,
}

/// How code beats are laid out (DESIGN.md section 4), in words and numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PackingDoc {
    /// The layout numbers.
    pub layout: CodeLayout,
    /// The rule.
    pub rule: &'static str,
}

/// Everything a consumer of the generated folder needs to know.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Manifest {
    /// Generator and version.
    pub generator: String,
    /// Top module.
    pub top: &'static str,
    /// The description.
    pub config: AcceleratorConfig,
    /// Derived widths, packing, storage and cycle model.
    pub derived: Derived,
    /// Engine ports.
    pub ports: Vec<Port>,
    /// Code packing.
    pub packing: PackingDoc,
    /// The Alveo kernel's interface (arguments, registers, AXI masters), for Alveo targets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel: Option<KernelInterface>,
    /// Generated files.
    pub files: Vec<FileEntry>,
    /// SHA-256 over the description and every file (hex).
    pub content_hash: String,
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

impl Manifest {
    /// Builds the manifest of `files` generated for `acc`.
    pub fn new(acc: &Accelerator, files: &[SourceFile], kernel: Option<KernelInterface>) -> Self {
        let mut sorted: Vec<&SourceFile> = files.iter().collect();
        sorted.sort_by(|a, b| a.file_name.cmp(&b.file_name));
        let mut all = Sha256::new();
        all.update(acc.config().to_toml_string().as_bytes());
        let entries = sorted
            .iter()
            .map(|f| {
                all.update(f.file_name.as_bytes());
                all.update([0u8]);
                all.update(f.text.as_bytes());
                FileEntry {
                    name: f.file_name.clone(),
                    module: f.module.clone(),
                    sha256: hex(&Sha256::digest(f.text.as_bytes())),
                }
            })
            .collect();
        Self {
            generator: format!("hwgen {}", env!("CARGO_PKG_VERSION")),
            top: "pq_topk_engine",
            config: acc.config().clone(),
            derived: *acc.derived(),
            ports: engine_ports(acc),
            packing: PackingDoc {
                layout: acc.derived().layout,
                rule: "token i of a beat at bits [i*M*b, (i+1)*M*b), code m of a token at bits \
                       [m*b, (m+1)*b), little-endian; unused high bits and the tail of the last \
                       beat are zero",
            },
            kernel,
            files: entries,
            content_hash: hex(&all.finalize()),
        }
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("manifest types always serialize") + "\n"
    }
}
