//! Workloads to run the models on.

pub mod synthetic;

pub use synthetic::{SyntheticKv, SyntheticSpec};
