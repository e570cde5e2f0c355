//! Opening devices by backend name: the one place a new backend (`xrt`, `board`, `sim`) is
//! added. Each takes the accelerator, an optional path (the generated folder, a serial port)
//! and backend options from a dict.

use std::path::Path;

use kvpq_core::spec::Accelerator;
use kvpq_runtime::backends::cpu::CpuDevice;
use kvpq_runtime::{Device, RuntimeError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyDictMethods};

use crate::errors::{input_error, runtime_error};

/// The backends built into this module.
pub(crate) const BUILT: &[&str] = &["cpu"];
/// Backends kvpq has or is getting, not built into this module yet.
const PLANNED: &[&str] = &["xrt", "board", "sim"];

/// Opens one device of backend `name` on `path` (the caller's), else `folder` (the checked
/// folder the description came from, which backends without a path ignore).
pub(crate) fn open(
    name: &str,
    acc: &Accelerator,
    path: Option<&Path>,
    folder: Option<&Path>,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<Box<dyn Device>> {
    match name {
        "cpu" => {
            refuse_options(name, options, &[])?;
            if let Some(p) = path {
                return Err(input_error(
                    "device",
                    format!("the cpu device takes no path (got {})", p.display()),
                ));
            }
            Ok(Box::new(CpuDevice::new(acc.clone())))
        }
        // A new backend: an arm here that reads its options and opens `path.or(folder)`.
        _ if PLANNED.contains(&name) => Err(runtime_error(RuntimeError::Unavailable {
            backend: PLANNED
                .iter()
                .find(|&&p| p == name)
                .copied()
                .unwrap_or("device"),
            reason: format!(
                "not built into this kvpq module yet (available: cpu){}",
                path.or(folder)
                    .map(|p| format!("; it would open {}", p.display()))
                    .unwrap_or_default()
            ),
        })),
        _ => Err(input_error(
            "device",
            format!(
                "unknown device {name:?}: expected one of {}",
                BUILT
                    .iter()
                    .chain(PLANNED)
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// Errs on an option key the backend does not read.
fn refuse_options(
    backend: &str,
    options: Option<&Bound<'_, PyDict>>,
    known: &[&str],
) -> PyResult<()> {
    for key in options.into_iter().flat_map(|d| d.keys()) {
        let key: String = key.extract()?;
        if !known.contains(&key.as_str()) {
            return Err(input_error(
                "device",
                format!(
                    "device option {key:?} is not one the {backend} device reads ({})",
                    if known.is_empty() {
                        "it reads none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            ));
        }
    }
    Ok(())
}
