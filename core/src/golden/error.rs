//! Errors of the golden model: inputs that do not fit the accelerator.

use thiserror::Error;

/// Why the golden model refused its input.
#[derive(Debug, Error, PartialEq)]
pub enum GoldenError {
    /// A float input holds NaN or an infinity.
    #[error("{what} holds a non-finite value ({value}) at position {position}")]
    NonFinite {
        /// Which input.
        what: &'static str,
        /// Flat position of the value.
        position: usize,
        /// The value.
        value: f32,
    },
    /// An input has the wrong length or shape.
    #[error("{what} has shape {found}, expected {expected}")]
    Shape {
        /// Which input.
        what: &'static str,
        /// Shape found.
        found: String,
        /// Shape required.
        expected: String,
    },
    /// An integer input lies outside its signed width.
    #[error("{what} value {value} at position {position} does not fit {bits}-bit signed")]
    OutOfRange {
        /// Which input.
        what: &'static str,
        /// Flat position of the value.
        position: usize,
        /// The value.
        value: i64,
        /// Signed width it must fit.
        bits: u32,
    },
    /// A code is not below K = 2^code_bits.
    #[error("code {code} of token {token}, subspace {subspace} is not below K = {k}")]
    CodeOutOfRange {
        /// Token index.
        token: usize,
        /// Subspace.
        subspace: usize,
        /// The code.
        code: u32,
        /// Codebook size.
        k: u32,
    },
    /// A query asks for more than the engine was built for.
    #[error("{what} = {value} exceeds the engine's limit {limit}")]
    OverLimit {
        /// Which quantity (n_tokens, k).
        what: &'static str,
        /// Value asked for.
        value: u64,
        /// Limit of the engine.
        limit: u64,
    },
    /// k-means cannot pick K distinct centroids from fewer points.
    #[error("k-means needs at least {k} training points for {k} centroids, got {points}")]
    TooFewPoints {
        /// Training points given.
        points: usize,
        /// Centroids asked for.
        k: usize,
    },
}
