//! Errors of building and running simulation models.

use std::path::PathBuf;
use thiserror::Error;

/// Why a simulation could not be built or run.
#[derive(Debug, Error)]
pub enum SimError {
    /// An external tool (Verilator, the C++ compiler) failed or is missing.
    #[error(transparent)]
    Tool(#[from] hwgen::flow::ToolError),
    /// The RTL or the shim could not be rendered.
    #[error(transparent)]
    Emit(#[from] hwgen::emit::EmitError),
    /// The shim template failed.
    #[error("rendering the C++ shim: {0}")]
    Render(#[from] askama::Error),
    /// A file operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// File or folder.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The built model could not be loaded.
    #[error("loading simulation model {path}: {source}")]
    Load {
        /// Shared library.
        path: PathBuf,
        /// Loader error.
        source: libloading::Error,
    },
    /// The generated Verilog lacks the module or a port the driver needs.
    #[error("module `{module}`: {what}")]
    Interface {
        /// Module.
        module: String,
        /// What is missing or wrong.
        what: String,
    },
    /// The design stopped making progress.
    #[error("no progress after {cycles} cycles: {what}")]
    Timeout {
        /// Cycles simulated.
        cycles: u64,
        /// What the driver was waiting for.
        what: String,
    },
    /// The golden model refused the workload.
    #[error("golden model: {0}")]
    Golden(#[from] kvpq_core::golden::GoldenError),
    /// The engine's results differ from the golden model's.
    #[error("engine and golden model disagree: {0}")]
    Mismatch(String),
    /// The driver was asked for something the design cannot do (nothing was sent).
    #[error("invalid request: {0}")]
    Request(String),
    /// The design broke its own protocol.
    #[error("protocol violation at cycle {cycle}: {what}")]
    Protocol {
        /// Cycle.
        cycle: u64,
        /// What happened.
        what: String,
    },
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, SimError>;
