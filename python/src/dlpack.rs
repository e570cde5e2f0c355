//! The consumer side of the DLPack protocol (dmlc/dlpack `dlpack.h`, the Python array API's
//! `__dlpack__`): the C structs and the reading of a capsule into a [`Raw`] description.
//!
//! The capsule is borrowed, not consumed: it is kept alive (and unrenamed) for the call, and
//! its destructor, which the producer wrote, frees the tensor afterwards. So a capsule is
//! released by the one party that the protocol allows to do it whatever happens here.

use std::ffi::c_void;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyCapsule, PyCapsuleMethods, PyDict};

use crate::errors::input_error;
use crate::tensor::{Elem, Raw};

/// `DLDevice`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct DlDevice {
    device_type: i32,
    device_id: i32,
}

/// `DLDataType`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct DlDataType {
    code: u8,
    bits: u8,
    lanes: u16,
}

/// `DLTensor`.
#[repr(C)]
struct DlTensor {
    data: *mut c_void,
    device: DlDevice,
    ndim: i32,
    dtype: DlDataType,
    shape: *const i64,
    /// In elements; null means row-major compact.
    strides: *const i64,
    byte_offset: u64,
}

/// `DLManagedTensor` (the unversioned capsule `dltensor`).
#[repr(C)]
struct DlManagedTensor {
    dl_tensor: DlTensor,
    manager_ctx: *mut c_void,
    deleter: Option<unsafe extern "C" fn(*mut DlManagedTensor)>,
}

/// `DLManagedTensorVersioned` (DLPack 1.x, the capsule `dltensor_versioned`).
#[repr(C)]
struct DlManagedTensorVersioned {
    version_major: u32,
    version_minor: u32,
    manager_ctx: *mut c_void,
    deleter: Option<unsafe extern "C" fn(*mut DlManagedTensorVersioned)>,
    flags: u64,
    dl_tensor: DlTensor,
}

const FLAG_READ_ONLY: u64 = 1;
/// `kDLCPU`, `kDLCUDAHost` (pinned host memory), `kDLROCMHost`: memory the CPU reads.
const HOST_DEVICES: [i32; 3] = [1, 3, 11];

/// Asks `obj` for a DLPack capsule and describes its tensor: (memory, writable, capsule). The
/// capsule must outlive every use of the memory.
pub(crate) fn read<'py>(
    obj: &Bound<'py, PyAny>,
    what: &'static str,
) -> PyResult<(Raw, bool, Bound<'py, PyAny>)> {
    let py = obj.py();
    // Ask for DLPack 1.0 first: it carries the read-only flag (and numpy exports read-only
    // arrays only that way); producers that predate it reject the keyword.
    let kwargs = PyDict::new(py);
    kwargs.set_item("max_version", (1, 0))?;
    let capsule = match obj.call_method("__dlpack__", (), Some(&kwargs)) {
        Ok(c) => c,
        Err(e) if e.is_instance_of::<PyTypeError>(py) => obj.call_method0("__dlpack__")?,
        Err(e) => return Err(e),
    };
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
    Ok((raw, writable, capsule))
}

/// Reads a `DLTensor`'s fields into a [`Raw`], refusing memory the CPU cannot read.
fn describe(t: &DlTensor, what: &str) -> PyResult<Raw> {
    if !HOST_DEVICES.contains(&t.device.device_type) {
        return Err(input_error(
            "device",
            format!(
                "{what}: the tensor lives on DLPack device type {} (id {}); kvpq reads host \
                 memory: move it to the CPU first (e.g. tensor.cpu())",
                t.device.device_type, t.device.device_id
            ),
        ));
    }
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
