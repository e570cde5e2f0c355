//! Owners of XRT handles: each checks the call that made it, turns a failing call into a
//! typed error naming the call and its return code, and releases the handle when dropped
//! (runs before buffers, buffers and kernel before the device: the owners' field order in
//! `XrtDevice` does that).

use std::ffi::{c_int, c_uint, c_void, CString};
use std::path::Path;
use std::sync::Arc;

use super::api::{Api, Handle, BO_FLAGS_NONE, SYNC_FROM_DEVICE, SYNC_TO_DEVICE};
use super::DEVICE_ENV;
use crate::RuntimeError;

/// A failing XRT call.
pub(crate) fn fault(detail: String) -> RuntimeError {
    RuntimeError::Fault {
        backend: "xrt",
        detail,
    }
}

/// `Ok` when `rc` is 0, else a fault naming `call` and `rc`.
fn check(call: impl FnOnce() -> String, rc: c_int) -> Result<(), RuntimeError> {
    if rc == 0 {
        Ok(())
    } else {
        Err(fault(format!("{} returned {rc}", call())))
    }
}

/// A C string of `bytes`; a path or name with a NUL byte cannot reach XRT.
fn c_string(what: &str, bytes: &[u8]) -> Result<CString, RuntimeError> {
    CString::new(bytes).map_err(|_| RuntimeError::Unavailable {
        backend: "xrt",
        reason: format!("{what} contains a NUL byte"),
    })
}

/// An open device (`xrtDeviceOpen`).
#[derive(Debug)]
pub(crate) struct XrtHandle {
    api: Arc<Api>,
    h: Handle,
}

// SAFETY: XRT handles are process-wide identifiers that its C API accepts from any thread
// (the library locks internally); `XrtHandle` only moves between threads, never is shared.
unsafe impl Send for XrtHandle {}

impl XrtHandle {
    /// Opens device `index`; `Unavailable` when there is none.
    pub(crate) fn open(api: &Arc<Api>, index: u32) -> Result<Self, RuntimeError> {
        // SAFETY: `xrtDeviceOpen(unsigned int)` takes a plain integer.
        let h = unsafe { (api.device_open)(c_uint::from(index)) };
        if h.is_null() {
            return Err(RuntimeError::Unavailable {
                backend: "xrt",
                reason: format!(
                    "xrtDeviceOpen({index}) found no device: check that an Alveo card is \
                     installed and listed by `xbutil examine`, or choose another index \
                     (XrtOptions::device_index or {DEVICE_ENV})"
                ),
            });
        }
        Ok(Self {
            api: Arc::clone(api),
            h,
        })
    }

    /// Programs the card with `xclbin` (`xrtDeviceLoadXclbinFile`) and returns its UUID.
    pub(crate) fn load_xclbin(&self, xclbin: &Path) -> Result<[u8; 16], RuntimeError> {
        let path = c_string("the xclbin path", xclbin.as_os_str().as_encoded_bytes())?;
        // SAFETY: `self.h` is an open device and `path` a NUL-terminated string that lives
        // through the call.
        let rc = unsafe { (self.api.device_load_xclbin_file)(self.h, path.as_ptr()) };
        check(
            || format!("xrtDeviceLoadXclbinFile({})", xclbin.display()),
            rc,
        )?;
        let mut uuid = [0u8; 16];
        // SAFETY: XRT writes exactly the 16 bytes of an `xuid_t` to `uuid`.
        let rc = unsafe { (self.api.device_get_xclbin_uuid)(self.h, uuid.as_mut_ptr()) };
        check(|| "xrtDeviceGetXclbinUUID".into(), rc)?;
        Ok(uuid)
    }
}

impl Drop for XrtHandle {
    fn drop(&mut self) {
        // SAFETY: `self.h` is open, and every kernel and buffer of it was dropped before
        // (field order of `XrtDevice`). A failing close cannot be reported from `drop`.
        unsafe { (self.api.device_close)(self.h) };
    }
}

/// An open kernel (`xrtPLKernelOpen`).
#[derive(Debug)]
pub(crate) struct Kernel {
    api: Arc<Api>,
    h: Handle,
    name: String,
}

// SAFETY: as for `XrtHandle`; XRT documents kernel handles as thread safe.
unsafe impl Send for Kernel {}

impl Kernel {
    /// Opens kernel `name` of the xclbin `uuid` loaded on `device`.
    pub(crate) fn open(
        device: &XrtHandle,
        uuid: &[u8; 16],
        name: &str,
    ) -> Result<Self, RuntimeError> {
        let c_name = c_string("the kernel name", name.as_bytes())?;
        // SAFETY: `device.h` is open, `uuid` holds the 16 bytes of an `xuid_t` and `c_name`
        // is NUL-terminated; both live through the call.
        let h = unsafe { (device.api.pl_kernel_open)(device.h, uuid.as_ptr(), c_name.as_ptr()) };
        if h.is_null() {
            return Err(fault(format!(
                "xrtPLKernelOpen({name}) returned a null handle: the xclbin has no kernel \
                 `{name}` (an xclbin built with `make KERNEL=hls` holds the HLS kernel: \
                 choose it with XrtOptions::kernel)"
            )));
        }
        Ok(Self {
            api: Arc::clone(&device.api),
            h,
            name: name.into(),
        })
    }

    /// Memory group of buffer argument `id` (`xrtKernelArgGroupId`).
    pub(crate) fn group_id(&self, id: u32) -> Result<u32, RuntimeError> {
        // SAFETY: `self.h` is an open kernel; `id` is a plain integer.
        let group = unsafe { (self.api.kernel_arg_group_id)(self.h, id as c_int) };
        u32::try_from(group).map_err(|_| {
            fault(format!(
                "xrtKernelArgGroupId({}, {id}) returned {group}",
                self.name
            ))
        })
    }

    /// Register offset of argument `id` (`xrtKernelArgOffset`).
    pub(crate) fn arg_offset(&self, id: u32) -> u32 {
        // SAFETY: `self.h` is an open kernel; `id` is a plain integer.
        unsafe { (self.api.kernel_arg_offset)(self.h, id as c_int) }
    }
}

impl Drop for Kernel {
    fn drop(&mut self) {
        // SAFETY: `self.h` is open and its runs were closed before (field order).
        unsafe { (self.api.kernel_close)(self.h) };
    }
}

/// A device buffer (`xrtBOAlloc`) and its host-side copy.
#[derive(Debug)]
pub(crate) struct Bo {
    api: Arc<Api>,
    h: Handle,
    /// Bytes allocated.
    pub(crate) size: usize,
}

// SAFETY: as for `XrtHandle`.
unsafe impl Send for Bo {}

impl Bo {
    /// Allocates `size` bytes in memory group `group` of `device`.
    pub(crate) fn alloc(device: &XrtHandle, size: usize, group: u32) -> Result<Self, RuntimeError> {
        // SAFETY: `device.h` is open; the rest are plain integers.
        let h = unsafe { (device.api.bo_alloc)(device.h, size, BO_FLAGS_NONE, group) };
        if h.is_null() {
            return Err(fault(format!(
                "xrtBOAlloc({size} bytes, group {group}) returned a null handle"
            )));
        }
        Ok(Self {
            api: Arc::clone(&device.api),
            h,
            size,
        })
    }

    /// Copies `bytes` to the start of the buffer and sends them to the device
    /// (`xrtBOWrite`, `xrtBOSync(TO_DEVICE)`).
    pub(crate) fn upload(&self, bytes: &[u8]) -> Result<(), RuntimeError> {
        self.upload_at(0, bytes)
    }

    /// Copies `bytes` to the buffer at byte `offset` and sends that range to the device.
    pub(crate) fn upload_at(&self, offset: usize, bytes: &[u8]) -> Result<(), RuntimeError> {
        if bytes.is_empty() {
            return Ok(());
        }
        if offset > self.size || bytes.len() > self.size - offset {
            return Err(fault(format!(
                "{} bytes at offset {offset} do not fit a buffer of {}",
                bytes.len(),
                self.size
            )));
        }
        // SAFETY: `self.h` is a live buffer of `self.size >= offset + bytes.len()` bytes, and
        // XRT reads `bytes.len()` bytes from `bytes`.
        let rc = unsafe {
            (self.api.bo_write)(self.h, bytes.as_ptr().cast::<c_void>(), bytes.len(), offset)
        };
        check(
            || format!("xrtBOWrite({} bytes at {offset})", bytes.len()),
            rc,
        )?;
        // SAFETY: `self.h` is live and the range lies inside it.
        let rc = unsafe { (self.api.bo_sync)(self.h, SYNC_TO_DEVICE, bytes.len(), offset) };
        check(
            || format!("xrtBOSync(TO_DEVICE, {} bytes at {offset})", bytes.len()),
            rc,
        )
    }

    /// Fetches the first `out.len()` bytes from the device into `out` (`xrtBOSync(FROM_DEVICE)`,
    /// `xrtBORead`).
    pub(crate) fn download(&self, out: &mut [u8]) -> Result<(), RuntimeError> {
        if out.is_empty() {
            return Ok(());
        }
        if out.len() > self.size {
            return Err(fault(format!(
                "{} bytes asked of a buffer of {}",
                out.len(),
                self.size
            )));
        }
        // SAFETY: `self.h` is live and the range lies inside it.
        let rc = unsafe { (self.api.bo_sync)(self.h, SYNC_FROM_DEVICE, out.len(), 0) };
        check(
            || format!("xrtBOSync(FROM_DEVICE, {} bytes)", out.len()),
            rc,
        )?;
        // SAFETY: XRT writes `out.len()` bytes, which `out` holds.
        let rc =
            unsafe { (self.api.bo_read)(self.h, out.as_mut_ptr().cast::<c_void>(), out.len(), 0) };
        check(|| format!("xrtBORead({} bytes)", out.len()), rc)
    }
}

impl Drop for Bo {
    fn drop(&mut self) {
        // SAFETY: `self.h` is live and no run in flight uses it: every call waits for the
        // runs it started before returning.
        unsafe { (self.api.bo_free)(self.h) };
    }
}

/// A reusable run of a kernel (`xrtRunOpen`).
#[derive(Debug)]
pub(crate) struct Run {
    api: Arc<Api>,
    h: Handle,
}

// SAFETY: as for `XrtHandle`.
unsafe impl Send for Run {}

impl Run {
    /// Opens a run of `kernel`.
    pub(crate) fn open(kernel: &Kernel) -> Result<Self, RuntimeError> {
        // SAFETY: `kernel.h` is an open kernel.
        let h = unsafe { (kernel.api.run_open)(kernel.h) };
        if h.is_null() {
            return Err(fault(format!(
                "xrtRunOpen({}) returned a null handle",
                kernel.name
            )));
        }
        Ok(Self {
            api: Arc::clone(&kernel.api),
            h,
        })
    }

    /// Sets buffer argument `id` to `bo`. The buffer must outlive the run's next start and
    /// wait.
    pub(crate) fn set_buffer(&self, id: u32, name: &str, bo: &Bo) -> Result<(), RuntimeError> {
        // SAFETY: `self.h` is an open run not in flight; a buffer argument is read by XRT
        // as an `xrtBufferHandle` (`void *`), which `bo.h` is.
        let rc = unsafe { (self.api.run_set_arg)(self.h, id as c_int, bo.h) };
        check(|| format!("xrtRunSetArg({id} `{name}`, buffer)"), rc)
    }

    /// Sets scalar argument `id` (a `uint` in the xclbin) to `value`.
    pub(crate) fn set_scalar(&self, id: u32, name: &str, value: u32) -> Result<(), RuntimeError> {
        let value_c: c_uint = value;
        // SAFETY: `self.h` is an open run not in flight; XRT reads a `uint` argument with
        // `va_arg(.., unsigned int)`, which a `c_uint` passes exactly.
        let rc = unsafe { (self.api.run_set_arg)(self.h, id as c_int, value_c) };
        check(|| format!("xrtRunSetArg({id} `{name}`, {value})"), rc)
    }

    /// Starts the run with the arguments set (`xrtRunStart`).
    pub(crate) fn start(&self) -> Result<(), RuntimeError> {
        // SAFETY: `self.h` is an open run whose arguments are all set.
        let rc = unsafe { (self.api.run_start)(self.h) };
        check(|| "xrtRunStart".into(), rc)
    }

    /// Waits for the started run to end; returns its `ert_cmd_state`.
    pub(crate) fn wait(&self) -> c_int {
        // SAFETY: `self.h` is an open run that was started.
        unsafe { (self.api.run_wait)(self.h) }
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        // SAFETY: `self.h` is open and not in flight (every call waits for its runs).
        unsafe { (self.api.run_close)(self.h) };
    }
}
