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
    /// A layer, head or token index past the end.
    #[error("{what} {value} is out of range (there are {limit})")]
    OutOfRange {
        /// What was indexed.
        what: &'static str,
        /// The index given.
        value: usize,
        /// How many there are.
        limit: usize,
    },
    /// The layer has no context yet.
    #[error("layer {layer}: select, append or gather before prefill")]
    NotPrefilled {
        /// The layer.
        layer: usize,
    },
    /// A key, value or query is NaN or infinite.
    #[error("{what}: element {position} is {value} (keys, values and queries must be finite)")]
    NonFinite {
        /// The input.
        what: String,
        /// Flat position of the first bad element.
        position: usize,
        /// Its value.
        value: f32,
    },
    /// The layer's context would exceed the store's capacity.
    #[error("layer {layer}: {tokens} tokens exceed the store's capacity of {capacity} per layer")]
    Capacity {
        /// The layer.
        layer: usize,
        /// Tokens it would hold.
        tokens: usize,
        /// Tokens it can hold.
        capacity: usize,
    },
    /// The layer's codebook training failed.
    #[error("layer {layer}: codebook training failed: {detail}")]
    Training {
        /// The layer.
        layer: usize,
        /// Why.
        detail: String,
    },
    /// More tokens asked for than the middle of the context holds.
    #[error(
        "k = {k} exceeds the {middle} tokens between sinks and local window (context of {tokens})"
    )]
    Budget {
        /// Tokens asked for.
        k: usize,
        /// Tokens in the middle.
        middle: usize,
        /// Context length.
        tokens: usize,
    },
}
