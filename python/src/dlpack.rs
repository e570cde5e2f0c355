//! The DLPack protocol (dmlc/dlpack `dlpack.h`, the Python array API's `__dlpack__`): the C
//! structs, and the consumer side, reading a capsule into a [`Raw`] description. (The
//! producer side, GPU selections, is `gpu.rs`.)
//!
//! The capsule is borrowed, not consumed: it is kept alive (and unrenamed) for the call, and
//! its destructor, which the producer wrote, frees the tensor afterwards. So a capsule is
//! released by the one party that the protocol allows to do it whatever happens here.

use std::ffi::c_void;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyCapsule, PyCapsuleMethods, PyDict, PyDictMethods};

use crate::errors::input_error;
use crate::tensor::{Elem, Raw};

/// `DLDevice`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DlDevice {
    pub(crate) device_type: i32,
    pub(crate) device_id: i32,
}

/// `DLDataType`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub(crate) struct DlDataType {
    pub(crate) code: u8,
    pub(crate) bits: u8,
    pub(crate) lanes: u16,
}

/// `DLTensor`.
#[repr(C)]
pub(crate) struct DlTensor {
    pub(crate) data: *mut c_void,
    pub(crate) device: DlDevice,
    pub(crate) ndim: i32,
    pub(crate) dtype: DlDataType,
    pub(crate) shape: *const i64,
    /// In elements; null means row-major compact.
    pub(crate) strides: *const i64,
    pub(crate) byte_offset: u64,
}

/// `DLManagedTensor` (the unversioned capsule `dltensor`).
#[repr(C)]
pub(crate) struct DlManagedTensor {
    pub(crate) dl_tensor: DlTensor,
    pub(crate) manager_ctx: *mut c_void,
    pub(crate) deleter: Option<unsafe extern "C" fn(*mut DlManagedTensor)>,
}

/// `DLManagedTensorVersioned` (DLPack 1.x, the capsule `dltensor_versioned`).
#[repr(C)]
pub(crate) struct DlManagedTensorVersioned {
    pub(crate) version_major: u32,
    pub(crate) version_minor: u32,
    pub(crate) manager_ctx: *mut c_void,
    pub(crate) deleter: Option<unsafe extern "C" fn(*mut DlManagedTensorVersioned)>,
    pub(crate) flags: u64,
    pub(crate) dl_tensor: DlTensor,
}

const FLAG_READ_ONLY: u64 = 1;
/// `kDLCPU`, `kDLCUDAHost` (pinned host memory), `kDLROCMHost`: memory the CPU reads.
const HOST_DEVICES: [i32; 3] = [1, 3, 11];
/// `kDLCUDA`: memory of an NVIDIA GPU.
pub(crate) const CUDA: i32 = 2;

/// The device `obj` says its memory lives on (`__dlpack_device__`: device type and id), or
/// `None` for a numpy array or an object without the method.
pub(crate) fn device_of(obj: &Bound<'_, PyAny>) -> PyResult<Option<DlDevice>> {
    if obj.cast::<numpy::PyUntypedArray>().is_ok() || !obj.hasattr("__dlpack_device__")? {
        return Ok(None);
    }
    let (device_type, device_id): (i32, i32) = obj.call_method0("__dlpack_device__")?.extract()?;
    Ok(Some(DlDevice {
        device_type,
        device_id,
    }))
}

/// Asks `obj` for a DLPack capsule: DLPack 1.0 first (it carries the read-only flag, and
/// numpy exports read-only arrays only that way), without `max_version` for producers that
/// predate it and reject the keyword. `stream` is the consumer's CUDA stream (the
/// protocol's `stream` argument) when the memory is read on a GPU.
fn export<'py>(obj: &Bound<'py, PyAny>, stream: Option<usize>) -> PyResult<Bound<'py, PyAny>> {
    let py = obj.py();
    let kwargs = PyDict::new(py);
    if let Some(s) = stream {
        kwargs.set_item("stream", s)?;
    }
    kwargs.set_item("max_version", (1, 0))?;
    match obj.call_method("__dlpack__", (), Some(&kwargs)) {
        Ok(c) => Ok(c),
        Err(e) if e.is_instance_of::<PyTypeError>(py) => {
            kwargs.del_item("max_version")?;
            obj.call_method("__dlpack__", (), Some(&kwargs))
        }
        Err(e) => Err(e),
    }
}

/// Asks `obj` for a DLPack capsule and describes its tensor: (memory, writable, capsule). The
/// memory is host memory (refused otherwise). The capsule must outlive every use of it.
pub(crate) fn read<'py>(
    obj: &Bound<'py, PyAny>,
    what: &'static str,
) -> PyResult<(Raw, bool, Bound<'py, PyAny>)> {
    let capsule = export(obj, None)?;
    let (raw, device, writable) = describe_capsule(&capsule, what)?;
    if !HOST_DEVICES.contains(&device.device_type) {
        return Err(input_error(
            "device",
            format!(
                "{what}: the tensor lives on DLPack device type {} (id {}); kvpq reads host \
                 memory: move it to the CPU first (e.g. tensor.cpu())",
                device.device_type, device.device_id
            ),
        ));
    }
    Ok((raw, writable, capsule))
}

/// Asks `obj`, a tensor on a CUDA GPU, for a DLPack capsule to be read on the consumer's
/// stream `stream` (a `CUstream` handle: the producer orders its pending writes before
/// that stream's next work) and describes it: (memory, as device addresses, its device id,
/// capsule). The capsule must outlive every use of the memory.
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
pub(crate) fn read_cuda<'py>(
    obj: &Bound<'py, PyAny>,
    what: &'static str,
    stream: usize,
) -> PyResult<(Raw, i32, Bound<'py, PyAny>)> {
    let capsule = export(obj, Some(stream))?;
    let (raw, device, _) = describe_capsule(&capsule, what)?;
    if device.device_type != CUDA {
        return Err(input_error(
            "device",
            format!(
                "{what}: __dlpack_device__ said CUDA, but the tensor lives on DLPack device \
                 type {} (id {})",
                device.device_type, device.device_id
            ),
        ));
    }
    Ok((raw, device.device_id, capsule))
}

/// Describes the tensor of an exported capsule: (memory, device, writable).
fn describe_capsule(
    capsule: &Bound<'_, PyAny>,
    what: &'static str,
) -> PyResult<(Raw, DlDevice, bool)> {
    let capsule_ref = capsule.cast::<PyCapsule>().map_err(|_| {
        PyTypeError::new_err(format!("{what}: __dlpack__ did not return a capsule"))
    })?;
    let (tensor, writable) = if capsule_ref.is_valid_checked(Some(c"dltensor_versioned")) {
        let ptr = capsule_ref.pointer_checked(Some(c"dltensor_versioned"))?;
        // SAFETY: a capsule of this name holds a DLManagedTensorVersioned (the protocol).
        let managed = unsafe { &*ptr.as_ptr().cast::<DlManagedTensorVersioned>() };
        if managed.version_major != 1 {
            return Err(input_error(
                "dlpack",
                format!(
                    "{what}: DLPack {}.{} tensor; this module reads 1.x",
                    managed.version_major, managed.version_minor
                ),
            ));
        }
        (&managed.dl_tensor, managed.flags & FLAG_READ_ONLY == 0)
    } else if capsule_ref.is_valid_checked(Some(c"dltensor")) {
        let ptr = capsule_ref.pointer_checked(Some(c"dltensor"))?;
        // SAFETY: a capsule of this name holds a DLManagedTensor (the protocol). Before 1.0
        // DLPack could not say read-only: such memory is taken as writable.
        let managed = unsafe { &*ptr.as_ptr().cast::<DlManagedTensor>() };
        (&managed.dl_tensor, true)
    } else {
        return Err(input_error(
            "dlpack",
            format!("{what}: __dlpack__ returned a capsule that is not an unused DLPack tensor"),
        ));
    };
    let raw = describe(tensor, what)?;
    Ok((raw, tensor.device, writable))
}

/// Reads a `DLTensor`'s fields into a [`Raw`] (addresses on the tensor's device).
fn describe(t: &DlTensor, what: &str) -> PyResult<Raw> {
    let dt = t.dtype;
    let elem = Elem::from_dlpack(dt.code, dt.bits)
        .filter(|_| dt.lanes == 1)
        .ok_or_else(|| {
            input_error(
                "dtype",
                format!(
                    "{what}: DLPack dtype (code {}, {} bits, {} lanes) is not supported",
                    dt.code, dt.bits, dt.lanes
                ),
            )
        })?;
    let ndim = usize::try_from(t.ndim)
        .ok()
        .filter(|&n| n <= 64)
        .ok_or_else(|| input_error("dlpack", format!("{what}: ndim {} is invalid", t.ndim)))?;
    let read = |p: *const i64, name: &str| -> PyResult<Vec<i64>> {
        if ndim == 0 {
            return Ok(Vec::new());
        }
        if p.is_null() {
            return Err(input_error("dlpack", format!("{what}: null {name} array")));
        }
        // SAFETY: the producer gives `ndim` entries (the protocol).
        Ok(unsafe { std::slice::from_raw_parts(p, ndim) }.to_vec())
    };
    let shape: Vec<usize> = read(t.shape, "shape")?
        .into_iter()
        .map(|n| {
            usize::try_from(n).map_err(|_| input_error("dlpack", format!("{what}: dimension {n}")))
        })
        .collect::<PyResult<_>>()?;
    let size = elem.size() as isize;
    let overflow = || input_error("dlpack", format!("{what}: the strides overflow"));
    let strides: Vec<isize> = if t.strides.is_null() {
        // Row-major compact (allowed before DLPack 1.2).
        let mut s = vec![0isize; ndim];
        let mut acc = size;
        for i in (0..ndim).rev() {
            s[i] = acc;
            acc = acc.saturating_mul(shape[i] as isize);
        }
        s
    } else {
        read(t.strides, "strides")?
            .into_iter()
            .map(|s| isize::try_from(s).ok().and_then(|s| s.checked_mul(size)))
            .collect::<Option<_>>()
            .ok_or_else(overflow)?
    };
    let ptr = t.data.cast::<u8>().wrapping_add(t.byte_offset as usize);
    Ok(Raw {
        ptr,
        elem,
        shape,
        strides,
    })
}
