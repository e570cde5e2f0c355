//! `kvpq.open_folder`: a generated folder (RTL, kernel or bitstream) read and checked the way
//! every hardware backend opens it.

use std::path::PathBuf;

use kvpq_runtime::ModelShape;
use pyo3::prelude::*;

use crate::accelerator::{to_py, Accelerator};
use crate::errors::IntoPyResult;

/// A checked generated folder: its path, its description and its manifest.
#[pyclass(module = "kvpq", frozen)]
pub struct Folder {
    /// The folder.
    #[pyo3(get)]
    pub(crate) path: PathBuf,
    /// The description the folder was generated from.
    #[pyo3(get)]
    pub(crate) accelerator: Py<Accelerator>,
    /// The manifest (`manifest.json`) as a dict.
    #[pyo3(get)]
    pub(crate) manifest: Py<PyAny>,
}

#[pymethods]
impl Folder {
    fn __repr__(&self) -> String {
        format!(
            "Folder(path={:?}, accelerator={:?})",
            self.path.display().to_string(),
            self.accelerator.get().inner.config().name
        )
    }
}

/// Reads `path`'s manifest, checks every file's hash and the parameters the caller's model
/// needs; see `kvpq/_kvpq.pyi`.
#[pyfunction]
#[pyo3(signature = (path, *, head_dim=None, max_tokens=None, gqa_group=None))]
pub(crate) fn open_folder(
    py: Python<'_>,
    path: PathBuf,
    head_dim: Option<u32>,
    max_tokens: Option<u32>,
    gqa_group: Option<u32>,
) -> PyResult<Folder> {
    let shape = ModelShape {
        head_dim,
        max_tokens,
        gqa_group,
    };
    // Hashing every file takes a while: let other threads run.
    let folder = py
        .detach(|| kvpq_runtime::open_folder(&path, &shape))
        .py_err()?;
    Ok(Folder {
        manifest: to_py(py, &folder.manifest)?.unbind(),
        accelerator: Py::new(
            py,
            Accelerator {
                inner: folder.accelerator,
            },
        )?,
        path: folder.path,
    })
}
