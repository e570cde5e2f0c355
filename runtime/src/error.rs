//! Why a device refused a call. Nothing is changed on error.

use thiserror::Error;

/// Why a device call failed.
#[derive(Debug, Error)]
pub enum RuntimeError {
    /// The call names a head the device has no codebook for.
    #[error("head {head}: no codebook loaded (the device holds {loaded} heads)")]
    NoCodebook {
        /// The head asked for.
        head: usize,
        /// Heads with a codebook.
        loaded: usize,
    },
    /// An input does not have the shape the accelerator description asks for.
    #[error("{what}: {found}, expected {expected}")]
    Shape {
        /// The input, e.g. `query of head 3`.
        what: String,
        /// What was given.
        found: String,
        /// What the description asks for.
        expected: String,
    },
    /// The golden model refused an input (e.g. a codebook of the wrong shape).
    #[error(transparent)]
    Golden(#[from] kvpq_core::golden::GoldenError),
}
