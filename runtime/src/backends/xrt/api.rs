//! XRT's C API (`xrt_device.h`, `xrt_kernel.h`, `xrt_bo.h` of XRT 2020.2 and later), looked
//! up at run time in `libxrt_coreutil.so`, so kvpq builds and links without XRT installed
//! and only a process that opens an `xrt` device needs it.

use std::ffi::{c_char, c_int, c_uint, c_void, OsString};
use std::path::{Path, PathBuf};

use libloading::Library;

use crate::RuntimeError;

/// Environment variable naming the XRT library to load (a file name the loader searches
/// for, or a path).
pub const LIBRARY_ENV: &str = "KVPQ_XRT_LIB";
/// Library loaded when neither the caller nor [`LIBRARY_ENV`] names one: XRT's native API
/// (found through `LD_LIBRARY_PATH` once `/opt/xilinx/xrt/setup.sh` is sourced).
pub const DEFAULT_LIBRARY: &str = "libxrt_coreutil.so";

/// Opaque XRT handle (`xrtDeviceHandle`, `xrtKernelHandle`, `xrtBufferHandle`, `xrtRunHandle`
/// are all `void *`).
pub(crate) type Handle = *mut c_void;

/// `XCL_BO_SYNC_BO_TO_DEVICE` of `enum xclBOSyncDirection`.
pub(crate) const SYNC_TO_DEVICE: c_int = 0;
/// `XCL_BO_SYNC_BO_FROM_DEVICE`.
pub(crate) const SYNC_FROM_DEVICE: c_int = 1;
/// `XRT_BO_FLAGS_NONE`: an ordinary device buffer with a host-side copy.
pub(crate) const BO_FLAGS_NONE: u64 = 0;
/// `ERT_CMD_STATE_COMPLETED` of `enum ert_cmd_state`: the run ended normally.
pub(crate) const STATE_COMPLETED: c_int = 4;

/// Name of an `enum ert_cmd_state` value, for error messages.
pub(crate) fn state_name(state: c_int) -> &'static str {
    match state {
        1 => "ERT_CMD_STATE_NEW",
        2 => "ERT_CMD_STATE_QUEUED",
        3 => "ERT_CMD_STATE_RUNNING",
        4 => "ERT_CMD_STATE_COMPLETED",
        5 => "ERT_CMD_STATE_ERROR",
        6 => "ERT_CMD_STATE_ABORT",
        7 => "ERT_CMD_STATE_SUBMITTED",
        8 => "ERT_CMD_STATE_TIMEOUT",
        9 => "ERT_CMD_STATE_NORESPONSE",
        10 => "ERT_CMD_STATE_SKERROR",
        11 => "ERT_CMD_STATE_SKCRASHED",
        _ => "unknown state",
    }
}

/// Where the library name came from, for the message when it cannot be loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LibrarySource {
    /// Given to the constructor.
    Explicit,
    /// From [`LIBRARY_ENV`].
    Env,
    /// [`DEFAULT_LIBRARY`].
    Default,
}

/// The library to load: `explicit`, else `env` (the value of [`LIBRARY_ENV`]; empty counts as
/// unset), else [`DEFAULT_LIBRARY`].
pub(crate) fn library_path(
    explicit: Option<&Path>,
    env: Option<OsString>,
) -> (PathBuf, LibrarySource) {
    match (explicit, env.filter(|v| !v.is_empty())) {
        (Some(path), _) => (path.to_path_buf(), LibrarySource::Explicit),
        (None, Some(v)) => (PathBuf::from(v), LibrarySource::Env),
        (None, None) => (PathBuf::from(DEFAULT_LIBRARY), LibrarySource::Default),
    }
}

/// The entry points kvpq calls, with their C signatures (enums as `int`, the C ABI's
/// representation; `xuid_t` as a pointer to its 16 bytes, which is how an array parameter
/// is passed).
pub(crate) struct Api {
    pub(crate) device_open: unsafe extern "C" fn(c_uint) -> Handle,
    pub(crate) device_close: unsafe extern "C" fn(Handle) -> c_int,
    pub(crate) device_load_xclbin_file: unsafe extern "C" fn(Handle, *const c_char) -> c_int,
    pub(crate) device_get_xclbin_uuid: unsafe extern "C" fn(Handle, *mut u8) -> c_int,
    pub(crate) pl_kernel_open: unsafe extern "C" fn(Handle, *const u8, *const c_char) -> Handle,
    pub(crate) kernel_close: unsafe extern "C" fn(Handle) -> c_int,
    pub(crate) kernel_arg_group_id: unsafe extern "C" fn(Handle, c_int) -> c_int,
    pub(crate) kernel_arg_offset: unsafe extern "C" fn(Handle, c_int) -> u32,
    pub(crate) bo_alloc: unsafe extern "C" fn(Handle, usize, u64, u32) -> Handle,
    pub(crate) bo_free: unsafe extern "C" fn(Handle) -> c_int,
    pub(crate) bo_write: unsafe extern "C" fn(Handle, *const c_void, usize, usize) -> c_int,
    pub(crate) bo_read: unsafe extern "C" fn(Handle, *mut c_void, usize, usize) -> c_int,
    pub(crate) bo_sync: unsafe extern "C" fn(Handle, c_int, usize, usize) -> c_int,
    pub(crate) run_open: unsafe extern "C" fn(Handle) -> Handle,
    /// `int xrtRunSetArg(xrtRunHandle, int index, ...)`: a buffer argument is passed as its
    /// `xrtBufferHandle`, a `uint` scalar as `unsigned int` (XRT reads it with `va_arg` by
    /// the argument's type in the xclbin).
    pub(crate) run_set_arg: unsafe extern "C" fn(Handle, c_int, ...) -> c_int,
    pub(crate) run_start: unsafe extern "C" fn(Handle) -> c_int,
    pub(crate) run_wait: unsafe extern "C" fn(Handle) -> c_int,
    pub(crate) run_close: unsafe extern "C" fn(Handle) -> c_int,
    /// Keeps the code behind the pointers above mapped; dropped last.
    _library: Library,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Api(XRT)")
    }
}

impl Api {
    /// Loads the XRT library (`explicit`, else [`LIBRARY_ENV`], else [`DEFAULT_LIBRARY`]) and
    /// looks up every entry point; `Unavailable` says what was tried and how to fix it.
    pub(crate) fn load(explicit: Option<&Path>) -> Result<Self, RuntimeError> {
        let (path, source) = library_path(explicit, std::env::var_os(LIBRARY_ENV));
        let from = match source {
            LibrarySource::Explicit => "the path given to XrtDevice::open".to_string(),
            LibrarySource::Env => format!("from {LIBRARY_ENV}"),
            LibrarySource::Default => format!("the default; {LIBRARY_ENV} is unset"),
        };
        // SAFETY: loading a shared library runs its initializers. XRT's are those of any
        // host program linking `-lxrt_coreutil`; a path the user names is trusted like a
        // program they run.
        let library = unsafe { Library::new(&path) }.map_err(|e| RuntimeError::Unavailable {
            backend: "xrt",
            reason: format!(
                "XRT was not found: cannot load `{}` ({from}): {e}. Install XRT and source \
                 /opt/xilinx/xrt/setup.sh so the loader finds {DEFAULT_LIBRARY}, or set \
                 {LIBRARY_ENV} to the library's path (e.g. \
                 /opt/xilinx/xrt/lib/{DEFAULT_LIBRARY})",
                path.display()
            ),
        })?;
        let missing = |name: &str, e: libloading::Error| RuntimeError::Unavailable {
            backend: "xrt",
            reason: format!(
                "`{}` ({from}) was loaded but has no `{name}` ({e}): it is not XRT's \
                 {DEFAULT_LIBRARY} of XRT 2020.2 or later; set {LIBRARY_ENV} to that library",
                path.display()
            ),
        };
        macro_rules! entry {
            ($name:literal) => {
                // SAFETY: the pointer is typed with the signature XRT's headers declare for
                // this symbol (see the field), and `Api` keeps `library` alive as long as
                // the pointer can be called.
                *unsafe { library.get(concat!($name, "\0").as_bytes()) }
                    .map_err(|e| missing($name, e))?
            };
        }
        Ok(Self {
            device_open: entry!("xrtDeviceOpen"),
            device_close: entry!("xrtDeviceClose"),
            device_load_xclbin_file: entry!("xrtDeviceLoadXclbinFile"),
            device_get_xclbin_uuid: entry!("xrtDeviceGetXclbinUUID"),
            pl_kernel_open: entry!("xrtPLKernelOpen"),
            kernel_close: entry!("xrtKernelClose"),
            kernel_arg_group_id: entry!("xrtKernelArgGroupId"),
            kernel_arg_offset: entry!("xrtKernelArgOffset"),
            bo_alloc: entry!("xrtBOAlloc"),
            bo_free: entry!("xrtBOFree"),
            bo_write: entry!("xrtBOWrite"),
            bo_read: entry!("xrtBORead"),
            bo_sync: entry!("xrtBOSync"),
            run_open: entry!("xrtRunOpen"),
            run_set_arg: entry!("xrtRunSetArg"),
            run_start: entry!("xrtRunStart"),
            run_wait: entry!("xrtRunWait"),
            run_close: entry!("xrtRunClose"),
            _library: library,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_name_comes_from_the_caller_then_the_environment_then_the_default() {
        let given = Path::new("/opt/xrt/lib/libxrt_coreutil.so.2");
        assert_eq!(
            library_path(Some(given), Some("other.so".into())),
            (given.to_path_buf(), LibrarySource::Explicit)
        );
        assert_eq!(
            library_path(None, Some("/x/libxrt_coreutil.so".into())),
            (PathBuf::from("/x/libxrt_coreutil.so"), LibrarySource::Env)
        );
        for env in [None, Some(OsString::new())] {
            assert_eq!(
                library_path(None, env),
                (PathBuf::from(DEFAULT_LIBRARY), LibrarySource::Default)
            );
        }
    }

    #[test]
    fn a_missing_library_is_unavailable_and_says_what_to_set() {
        let path = Path::new("/nonexistent/kvpq/libxrt_coreutil.so");
        match Api::load(Some(path)) {
            Err(RuntimeError::Unavailable { backend, reason }) => {
                assert_eq!(backend, "xrt");
                for needle in [
                    "XRT was not found",
                    &path.display().to_string(),
                    LIBRARY_ENV,
                ] {
                    assert!(reason.contains(needle), "`{needle}` not in: {reason}");
                }
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }
}
