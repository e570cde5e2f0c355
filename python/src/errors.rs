//! Errors as Python exceptions. Every runtime error keeps its message and becomes an
//! instance of a class of `kvpq._errors` (pure Python, so the classes can inherit from both
//! `KvpqError` and a builtin): `InputError` (a `ValueError`) when the caller's input is
//! wrong, `DeviceError` (a `RuntimeError`) when a device or its training failed,
//! `DeviceUnavailableError` when a backend cannot run here. Each carries a `kind` string.

use kvpq_core::spec::ConfigError;
use kvpq_runtime::RuntimeError;
use pyo3::prelude::*;

pyo3::import_exception!(kvpq._errors, InputError);
pyo3::import_exception!(kvpq._errors, DeviceError);
pyo3::import_exception!(kvpq._errors, DeviceUnavailableError);

/// An `InputError` of `kind` (e.g. `shape`, `dtype`) with `message`.
pub(crate) fn input_error(kind: &'static str, message: impl Into<String>) -> PyErr {
    InputError::new_err((message.into(), kind))
}

/// The exception of a runtime error: same message, class and `kind` by variant.
pub(crate) fn runtime_error(e: RuntimeError) -> PyErr {
    use RuntimeError as E;
    // Listed one by one (no `_` arm): a new variant must be classified here to compile.
    let kind = match &e {
        E::Shape { .. } => "shape",
        E::OutOfRange { .. } => "out_of_range",
        E::NonFinite { .. } => "non_finite",
        E::Budget { .. } => "budget",
        E::Capacity { .. } => "capacity",
        E::NotPrefilled { .. } => "not_prefilled",
        E::Mismatch { .. } => "mismatch",
        E::Manifest(_) => "manifest",
        E::Golden(_) => "golden",
        E::Unavailable { .. } => {
            return DeviceUnavailableError::new_err((e.to_string(), "unavailable"))
        }
        E::Fault { .. } => return DeviceError::new_err((e.to_string(), "fault")),
        E::Training { .. } => return DeviceError::new_err((e.to_string(), "training")),
        E::NoCodebook { .. } => return DeviceError::new_err((e.to_string(), "no_codebook")),
    };
    input_error(kind, e.to_string())
}

/// The exception of an accelerator description that cannot be read or is invalid.
pub(crate) fn config_error(e: ConfigError) -> PyErr {
    input_error("config", e.to_string())
}

/// `?` on runtime results inside binding methods.
pub(crate) trait IntoPyResult<T> {
    /// Maps the error to its Python exception.
    fn py_err(self) -> PyResult<T>;
}

impl<T> IntoPyResult<T> for Result<T, RuntimeError> {
    fn py_err(self) -> PyResult<T> {
        self.map_err(runtime_error)
    }
}
