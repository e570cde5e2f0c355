//! The README written into every generated folder.

use askama::Template;

use kvpq_core::manifest::{FileEntry, Manifest};

/// Template data of the folder README.
#[derive(Template)]
#[template(path = "README.md")]
pub struct FolderReadme<'a> {
    name: &'a str,
    version: &'a str,
    head_dim: u32,
    m: u32,
    code_bits: u32,
    lanes: u32,
    strategy: String,
    k_max: u32,
    max_tokens: u32,
    content_hash: &'a str,
    files: &'a [FileEntry],
    alveo: bool,
}

impl<'a> FolderReadme<'a> {
    /// README of the folder described by `manifest`.
    pub fn new(manifest: &'a Manifest) -> Self {
        let c = &manifest.config;
        Self {
            name: &c.name,
            version: env!("CARGO_PKG_VERSION"),
            head_dim: c.pq.head_dim,
            m: c.pq.m,
            code_bits: c.pq.code_bits,
            lanes: c.scanner.lanes,
            strategy: c.topk.strategy.to_string(),
            k_max: c.topk.k_max,
            max_tokens: c.engine.max_tokens,
            content_hash: &manifest.content_hash,
            files: &manifest.files,
            alveo: manifest.interface.kernel.is_some(),
        }
    }
}
