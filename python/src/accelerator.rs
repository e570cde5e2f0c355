//! `kvpq.Accelerator`: a validated accelerator description (the TOML of `examples/`), and the
//! retrieval policy numbers a decoding loop needs from it.

use std::path::PathBuf;

use kvpq_core::spec::{Accelerator as CoreAccelerator, AcceleratorConfig};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use crate::errors::{config_error, input_error};

/// An accelerator description: PQ shape, widths, engine limits and the retrieval policy.
#[pyclass(module = "kvpq", frozen, eq)]
#[derive(Clone, PartialEq)]
pub struct Accelerator {
    pub(crate) inner: CoreAccelerator,
}

impl Accelerator {
    /// Reads `source`: an `Accelerator`, a path (`os.PathLike`, or a `str` with neither a
    /// newline nor `=`) or TOML text.
    pub(crate) fn from_any(source: &Bound<'_, PyAny>) -> PyResult<CoreAccelerator> {
        if let Ok(acc) = source.cast::<Accelerator>() {
            return Ok(acc.get().inner.clone());
        }
        if let Ok(s) = source.cast::<PyString>() {
            let s = s.to_cow()?;
            // One line without `=` cannot be a description: a path, to report as missing.
            if s.contains('\n') || s.contains('=') {
                return Self::parse(&s);
            }
            return Self::read(PathBuf::from(s.as_ref()));
        }
        match source.extract::<PathBuf>() {
            Ok(path) => Self::read(path),
            Err(_) => Err(pyo3::exceptions::PyTypeError::new_err(format!(
                "config: expected an Accelerator, TOML text or a path, got {}",
                source.get_type().name()?
            ))),
        }
    }

    fn parse(text: &str) -> PyResult<CoreAccelerator> {
        let cfg = AcceleratorConfig::from_toml_str(text).map_err(config_error)?;
        CoreAccelerator::new(cfg).map_err(config_error)
    }

    fn read(path: PathBuf) -> PyResult<CoreAccelerator> {
        CoreAccelerator::from_toml_file(&path).map_err(config_error)
    }
}

/// Python's `json.loads` of a serializable value: configs and manifests become plain dicts.
pub(crate) fn to_py<'py>(
    py: Python<'py>,
    value: &impl serde::Serialize,
) -> PyResult<Bound<'py, PyAny>> {
    let text = serde_json::to_string(value)
        .map_err(|e| input_error("internal", format!("cannot serialize: {e}")))?;
    py.import("json")?.call_method1("loads", (text,))
}

#[pymethods]
impl Accelerator {
    /// Reads a description: TOML text, a path to a TOML file, or an `Accelerator`.
    #[new]
    fn new(source: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(Self {
            inner: Self::from_any(source)?,
        })
    }

    /// Parses TOML text.
    #[staticmethod]
    fn from_toml(text: &str) -> PyResult<Self> {
        Ok(Self {
            inner: Self::parse(text)?,
        })
    }

    /// Reads a TOML file.
    #[staticmethod]
    fn from_file(path: PathBuf) -> PyResult<Self> {
        Ok(Self {
            inner: Self::read(path)?,
        })
    }

    /// The description as TOML (parses back to an equal `Accelerator`).
    fn to_toml(&self) -> String {
        self.inner.config().to_toml_string()
    }

    /// The description as a dict (`config["pq"]["head_dim"]`).
    #[getter]
    fn config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, self.inner.config())
    }

    /// How code beats are packed: `m`, `code_bits`, `beat_bits`, `tokens_per_beat`,
    /// `padding_bits` and `words_per_beat` (64-bit words).
    #[getter]
    fn layout<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let l = &self.inner.derived().layout;
        let d = PyDict::new(py);
        d.set_item("m", l.m)?;
        d.set_item("code_bits", l.code_bits)?;
        d.set_item("beat_bits", l.beat_bits)?;
        d.set_item("tokens_per_beat", l.tokens_per_beat)?;
        d.set_item("padding_bits", l.padding_bits)?;
        d.set_item("words_per_beat", l.words_per_beat())?;
        Ok(d)
    }

    /// Name of the design.
    #[getter]
    fn name(&self) -> String {
        self.inner.config().name.clone()
    }

    /// Key dimension per head D.
    #[getter]
    fn head_dim(&self) -> u32 {
        self.inner.config().pq.head_dim
    }

    /// Query heads per KV head (their queries are summed).
    #[getter]
    fn gqa_group(&self) -> u32 {
        self.inner.config().retrieval.gqa_group
    }

    /// Longest context the engine scans (`engine.max_tokens`).
    #[getter]
    fn max_tokens(&self) -> u32 {
        self.inner.config().engine.max_tokens
    }

    /// How the retrieval policy splits a context of `tokens`: a dict of `tokens`, `sink`,
    /// `local`, `middle` and `topk`; `select` returns `sink + topk + local` ids per head.
    fn policy_split<'py>(&self, py: Python<'py>, tokens: u32) -> PyResult<Bound<'py, PyDict>> {
        let s = self.inner.policy_split(tokens);
        let d = PyDict::new(py);
        d.set_item("tokens", tokens)?;
        d.set_item("sink", s.sink)?;
        d.set_item("local", s.local)?;
        d.set_item("middle", s.middle)?;
        d.set_item("topk", s.topk)?;
        Ok(d)
    }

    fn __repr__(&self) -> String {
        let c = self.inner.config();
        format!(
            "Accelerator(name={:?}, head_dim={}, m={}, code_bits={}, gqa_group={}, \
             max_tokens={})",
            c.name,
            c.pq.head_dim,
            c.pq.m,
            c.pq.code_bits,
            c.retrieval.gqa_group,
            c.engine.max_tokens
        )
    }
}
