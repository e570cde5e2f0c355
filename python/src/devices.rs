//! Opening devices by backend name: the one place a backend is added. `cpu` needs nothing;
//! `gpu` opens an NVIDIA GPU by ordinal; `xrt`, `board` and `sim` open a generated folder
//! (the `path` argument, else the checked `Folder` the index was built from), which must
//! have been generated from the index's description, with backend options from a dict.
//! `gpu` (feature `cuda`), `board` and `sim` are cargo features of this crate (`maturin
//! build --features board`): without them they are unavailable.

use std::path::{Path, PathBuf};

use kvpq_core::spec::Accelerator;
use kvpq_runtime::backends::cpu::CpuDevice;
use kvpq_runtime::backends::xrt::{KernelKind, XrtDevice, XrtOptions};
use kvpq_runtime::{Device, ModelShape, RuntimeError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyDictMethods};

use crate::errors::{input_error, runtime_error, IntoPyResult};

/// Every backend name kvpq knows.
const ALL: &[&str] = &["cpu", "xrt", "gpu", "board", "sim"];

/// An index's `gpu` device, which `select` also reaches directly for CUDA queries.
#[cfg(feature = "cuda")]
pub(crate) type GpuHandle = crate::gpu::GpuHandle;
/// No `gpu` device without the `cuda` feature.
#[cfg(not(feature = "cuda"))]
#[derive(Clone)]
pub(crate) enum GpuHandle {}

#[cfg(not(feature = "cuda"))]
impl GpuHandle {
    /// As the `cuda` feature's (never called: there is no handle).
    pub(crate) fn keep_context(&self) {
        match *self {}
    }
}

/// The backends built into this module.
pub(crate) fn built() -> Vec<&'static str> {
    let mut names = vec!["cpu", "xrt"];
    if cfg!(feature = "cuda") {
        names.push("gpu");
    }
    if cfg!(feature = "board") {
        names.push("board");
    }
    if cfg!(feature = "sim") {
        names.push("sim");
    }
    names
}

/// A backend's options: typed reads by key, then [`Options::finish`] refuses the rest.
struct Options<'a, 'py> {
    backend: &'a str,
    dict: Option<&'a Bound<'py, PyDict>>,
    known: Vec<&'static str>,
}

impl<'a, 'py> Options<'a, 'py> {
    fn item(&mut self, key: &'static str) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.known.push(key);
        match self.dict {
            Some(d) => Ok(d.get_item(key)?.filter(|v| !v.is_none())),
            None => Ok(None),
        }
    }

    fn path(&mut self, key: &'static str) -> PyResult<Option<PathBuf>> {
        self.item(key)?.map(|v| v.extract()).transpose()
    }

    fn u32(&mut self, key: &'static str) -> PyResult<Option<u32>> {
        self.item(key)?.map(|v| v.extract()).transpose()
    }

    fn string(&mut self, key: &'static str) -> PyResult<Option<String>> {
        self.item(key)?.map(|v| v.extract()).transpose()
    }

    /// Errs on a key the backend did not read.
    fn finish(self) -> PyResult<()> {
        for key in self.dict.into_iter().flat_map(|d| d.keys()) {
            let key: String = key.extract()?;
            if !self.known.contains(&key.as_str()) {
                return Err(input_error(
                    "device",
                    format!(
                        "device option {key:?} is not one the {} device reads ({})",
                        self.backend,
                        if self.known.is_empty() {
                            "it reads none".to_string()
                        } else {
                            self.known.join(", ")
                        }
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// The generated folder a hardware backend opens, checked (manifest, hashes, shape) and
/// generated from `acc`: a device runs its folder's description, the index `acc`.
fn folder_for(
    name: &str,
    acc: &Accelerator,
    path: Option<&Path>,
    folder: Option<&Path>,
) -> PyResult<(PathBuf, ModelShape)> {
    let dir = path.or(folder).ok_or_else(|| {
        input_error(
            "device",
            format!(
                "the {name} device opens a generated folder: pass path=..., or build the \
                 index on kvpq.open_folder(...)"
            ),
        )
    })?;
    let c = acc.config();
    let shape = ModelShape {
        head_dim: Some(c.pq.head_dim),
        max_tokens: None,
        gqa_group: Some(c.retrieval.gqa_group),
    };
    let opened = kvpq_runtime::open_folder(dir, &shape).py_err()?;
    if opened.accelerator.config() != c {
        return Err(input_error(
            "mismatch",
            format!(
                "{}: generated from the description {:?}, not the index's {:?}: pass \
                 kvpq.open_folder(path) as the index's config",
                dir.display(),
                opened.accelerator.config().name,
                c.name
            ),
        ));
    }
    Ok((dir.to_path_buf(), shape))
}

/// Errs when a device that opens no folder is given a path.
fn no_path(name: &str, path: Option<&Path>) -> PyResult<()> {
    match path {
        Some(p) => Err(input_error(
            "device",
            format!("the {name} device takes no path (got {})", p.display()),
        )),
        None => Ok(()),
    }
}

/// Opens one device of backend `name` on `path` (the caller's), else `folder` (the checked
/// folder the description came from, which `cpu` and `gpu` ignore). A `gpu` device also
/// comes back as its handle.
pub(crate) fn open(
    name: &str,
    acc: &Accelerator,
    path: Option<&Path>,
    folder: Option<&Path>,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<(Box<dyn Device>, Option<GpuHandle>)> {
    let mut opts = Options {
        backend: name,
        dict: options,
        known: Vec::new(),
    };
    let device: Box<dyn Device> = match name {
        "cpu" => {
            no_path(name, path)?;
            opts.finish()?;
            Box::new(CpuDevice::new(acc.clone()))
        }
        #[cfg(feature = "cuda")]
        "gpu" => {
            no_path(name, path)?;
            let ordinal = opts.u32("ordinal")?.unwrap_or(0) as usize;
            opts.finish()?;
            let (handle, device) = GpuHandle::open(acc, ordinal).py_err()?;
            return Ok((device, Some(handle)));
        }
        "xrt" => {
            let kernel = match opts.string("kernel")?.as_deref() {
                None | Some("rtl") => KernelKind::Rtl,
                Some("hls") => KernelKind::Hls,
                Some(other) => {
                    return Err(input_error(
                        "device",
                        format!("xrt kernel {other:?}: expected \"rtl\" or \"hls\""),
                    ))
                }
            };
            let xrt = XrtOptions {
                library: opts.path("library")?,
                device_index: opts.u32("device_index")?,
                xclbin: opts.path("xclbin")?,
                kernel,
            };
            opts.finish()?;
            let (dir, shape) = folder_for(name, acc, path, folder)?;
            Box::new(XrtDevice::open(&dir, &shape, &xrt).py_err()?)
        }
        #[cfg(feature = "board")]
        "board" => {
            let port = opts.string("port")?.ok_or_else(|| {
                input_error(
                    "device",
                    "the board device needs its serial port: device_options={\"port\": \
                     \"/dev/ttyUSB0\"}",
                )
            })?;
            opts.finish()?;
            let (dir, shape) = folder_for(name, acc, path, folder)?;
            Box::new(
                kvpq_runtime::backends::board::BoardDevice::open(&dir, &shape, &port).py_err()?,
            )
        }
        #[cfg(feature = "sim")]
        "sim" => {
            opts.finish()?;
            let (dir, shape) = folder_for(name, acc, path, folder)?;
            Box::new(kvpq_runtime::backends::sim::SimDevice::open(&dir, &shape).py_err()?)
        }
        _ if ALL.contains(&name) => {
            let (backend, feature) = match name {
                "gpu" => ("gpu", "cuda"),
                "board" => ("board", "board"),
                _ => ("sim", "sim"),
            };
            return Err(runtime_error(RuntimeError::Unavailable {
                backend,
                reason: format!(
                    "not built into this kvpq module: build it with `maturin build \
                     --features {feature}` (python/)"
                ),
            }));
        }
        _ => {
            return Err(input_error(
                "device",
                format!(
                    "unknown device {name:?}: expected one of {}",
                    ALL.join(", ")
                ),
            ))
        }
    };
    Ok((device, None))
}
