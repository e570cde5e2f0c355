//! Python bindings of kvpq's runtime: the extension module `kvpq._kvpq`, wrapped by the pure
//! Python package `kvpq` (python/kvpq). A decoding loop builds an [`index::Index`] on a
//! device, prefills and appends keys and values, selects the tokens to attend and gathers
//! their rows, with numpy arrays or DLPack tensors (torch CPU tensors) and no copies. On the
//! `gpu` device (feature `cuda`) it also selects for CUDA queries and hands the selection
//! over as a DLPack tensor on the GPU (`gpu::GpuSelection`).
//!
//! Nothing panics across the boundary: every error is a Python exception (`errors`).

#![warn(missing_docs)]

mod accelerator;
mod devices;
mod dlpack;
mod errors;
mod folder;
#[cfg(feature = "cuda")]
mod gpu;
mod index;
mod tensor;

use pyo3::prelude::*;

/// The device backends built into this module, e.g. `["cpu", "xrt", "gpu"]`.
#[pyfunction]
fn backends() -> Vec<&'static str> {
    devices::built()
}

/// The extension module.
#[pymodule]
fn _kvpq(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<accelerator::Accelerator>()?;
    m.add_class::<folder::Folder>()?;
    m.add_class::<index::HeadCodes>()?;
    m.add_class::<index::Index>()?;
    m.add_class::<index::Training>()?;
    #[cfg(feature = "cuda")]
    m.add_class::<gpu::GpuSelection>()?;
    m.add_function(wrap_pyfunction!(backends, m)?)?;
    m.add_function(wrap_pyfunction!(folder::open_folder, m)?)?;
    Ok(())
}
