//! Workloads to run the models on: clustered synthetic keys ([`synthetic`]), a decoding loop
//! shaped like a real model's attention ([`decode`]) and `.npy` input of real activations
//! ([`npy`]).

pub mod decode;
pub mod npy;
pub mod synthetic;

pub use decode::{DecodeSpec, DecodeWorkload, LayerData, LayerShapeError};
pub use npy::{load_layer, read_npy_f32, write_npy_f32, NpyError};
pub use synthetic::{SyntheticKv, SyntheticSpec};
