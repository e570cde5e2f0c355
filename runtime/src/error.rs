//! Why the runtime refused a call. Nothing is changed on error.

use std::path::PathBuf;

use thiserror::Error;

/// Why a runtime call failed.
#[derive(Debug, Error)]
pub enum RuntimeError {
    /// The call names a codebook slot the device has no codebook for.
    #[error("slot {slot}: no codebook loaded (the device holds {loaded} slots)")]
    NoCodebook {
        /// The slot asked for.
        slot: usize,
        /// Slots with a codebook.
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
    /// The backend cannot run on this machine (no XRT library, no serial port, ...).
    #[error("{backend} device unavailable: {reason}")]
    Unavailable {
        /// The backend (`xrt`, `board`, `sim`).
        backend: &'static str,
        /// Why, and what to install or check.
        reason: String,
    },
    /// The device failed during a call (an XRT error, a board that stopped answering, a
    /// simulation past its cycle limit). Results of that call are discarded.
    #[error("{backend} device fault: {detail}")]
    Fault {
        /// The backend.
        backend: &'static str,
        /// What went wrong.
        detail: String,
    },
    /// A generated folder's manifest is unreadable, inconsistent or does not match its files.
    #[error(transparent)]
    Manifest(#[from] kvpq_core::manifest::ManifestError),
    /// A folder was built for parameters other than the ones asked for.
    #[error(
        "{folder}: {field} is {found} in the folder's manifest, but {requested} was asked for"
    )]
    Mismatch {
        /// The folder.
        folder: PathBuf,
        /// The parameter, as a dotted description path (`pq.head_dim`).
        field: &'static str,
        /// The folder's value.
        found: String,
        /// The caller's value.
        requested: String,
    },
}
