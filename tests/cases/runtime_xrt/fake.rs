//! The fake XRT library (`fake_xrt.c`): compiled into a test's scratch folder and loaded
//! twice, by the test (its knobs and records) and by the device under test (as XRT). The
//! loader maps one path once, so both see the same state; each test builds its own copy,
//! so tests running side by side share nothing.

use std::ffi::{c_char, c_int, c_long, c_longlong, c_void, CStr, CString};
use std::path::PathBuf;
use std::process::Command;

use kvpq_core::interface::alveo::{ArgKind, KernelInterface};
use kvpq_tests::scratch;
use libloading::Library;

const SOURCE: &str = include_str!("fake_xrt.c");

/// What the run handler sees of one kernel argument (`fake_arg` in the C file).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct FakeArg {
    /// A buffer's device copy.
    pub data: *mut u8,
    /// Its bytes.
    pub size: u64,
    /// A scalar's value.
    pub value: u64,
    /// Non-zero for a buffer.
    pub is_buffer: i32,
    /// A buffer's memory group.
    pub group: i32,
}

/// Answers a run: returns the `ert_cmd_state` it ends in.
pub type RunHandler = unsafe extern "C" fn(*mut c_void, *const FakeArg, c_int) -> c_int;
/// `fake_xrt_report`: logs a breach found by the handler.
pub type Report = unsafe extern "C" fn(*const c_char);

/// Memory group the fake gives the buffers on HBM pseudo-channel `channel`: far from the
/// argument numbers, so a host that passes an argument index as a group is caught.
pub fn group_of(channel: u32) -> i32 {
    100 + channel as i32
}

/// One compiled and loaded copy of the fake.
pub struct Fake {
    /// The shared library, for `XrtOptions::library`.
    pub path: PathBuf,
    lib: Library,
}

impl Fake {
    /// Compiles the fake into `<scratch>/runtime_xrt/<name>/`.
    pub fn build(name: &str) -> Self {
        let dir = scratch("runtime_xrt", &format!("{name}-fake"));
        let source = dir.join("fake_xrt.c");
        std::fs::write(&source, SOURCE).expect("write fake_xrt.c");
        let path = dir.join("libfake_xrt.so");
        let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
        let out = Command::new(&cc)
            .args([
                "-std=c11", "-O1", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC",
            ])
            .arg("-o")
            .arg(&path)
            .arg(&source)
            .output()
            .unwrap_or_else(|e| panic!("the runtime_xrt tests need a C compiler ({cc}): {e}"));
        assert!(
            out.status.success(),
            "{cc} fake_xrt.c failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // SAFETY: the fake has no initializers.
        let lib = unsafe { Library::new(&path) }.expect("load the fake XRT");
        Self { path, lib }
    }

    /// The fake's function `name`, typed `T` as declared in the C file.
    pub fn sym<T: Copy>(&self, name: &str) -> T {
        // SAFETY: every caller types `T` as the C file declares `name`; the pointer is only
        // called while `self.lib` is loaded.
        unsafe { *self.lib.get::<T>(name.as_bytes()).expect(name) }
    }

    /// Tells the fake the kernel `iface` describes: its name, argument kinds, groups and
    /// register offsets (as an xclbin built from the folder would).
    pub fn configure(&self, iface: &KernelInterface) {
        let name = CString::new(iface.rtl_kernel.as_str()).expect("no NUL");
        let is_buffer: Vec<c_int> = iface
            .args
            .iter()
            .map(|a| c_int::from(a.kind == ArgKind::Buffer))
            .collect();
        let group: Vec<c_int> = iface
            .args
            .iter()
            .map(|a| {
                a.master
                    .as_deref()
                    .and_then(|m| iface.master(m))
                    .map_or(-1, |m| group_of(m.hbm_channel))
            })
            .collect();
        let offset: Vec<u32> = iface.args.iter().map(|a| a.offset).collect();
        let max: unsafe extern "C" fn() -> c_int = self.sym("fake_xrt_max_args");
        // SAFETY: returns a constant.
        let max = unsafe { max() };
        assert!(
            iface.args.len() <= max as usize,
            "the fake takes {max} kernel arguments, the interface has {}",
            iface.args.len()
        );
        let f: unsafe extern "C" fn(*const c_char, c_int, *const c_int, *const c_int, *const u32) =
            self.sym("fake_xrt_configure");
        // SAFETY: the arrays hold `args.len()` entries and outlive the call (it copies them).
        unsafe {
            f(
                name.as_ptr(),
                iface.args.len() as c_int,
                is_buffer.as_ptr(),
                group.as_ptr(),
                offset.as_ptr(),
            )
        };
    }

    /// Registers the run handler and its `user` pointer (which must outlive every run).
    pub fn set_handler(&self, handler: RunHandler, user: *mut c_void) {
        let f: unsafe extern "C" fn(RunHandler, *mut c_void) = self.sym("fake_xrt_set_run_handler");
        // SAFETY: stores two pointers.
        unsafe { f(handler, user) };
    }

    /// Makes the call of `call` after `skip` more fail with `value` (null for handles).
    pub fn inject(&self, call: &str, skip: i64, value: i64) {
        let name = CString::new(call).expect("no NUL");
        let f: unsafe extern "C" fn(*const c_char, c_long, c_longlong) =
            self.sym("fake_xrt_inject");
        // SAFETY: the fake copies the name.
        unsafe { f(name.as_ptr(), skip as c_long, value) };
    }

    /// Calls of `call` so far (all calls for `None`).
    pub fn calls(&self, call: Option<&str>) -> c_long {
        let name = call.map(|c| CString::new(c).expect("no NUL"));
        let f: unsafe extern "C" fn(*const c_char) -> c_long = self.sym("fake_xrt_calls");
        // SAFETY: a NUL-terminated name or null.
        unsafe { f(name.as_ref().map_or(std::ptr::null(), |n| n.as_ptr())) }
    }

    /// Breaches of the call sequence so far, and their log.
    pub fn violations(&self) -> (i32, String) {
        let count: unsafe extern "C" fn() -> c_int = self.sym("fake_xrt_violations");
        let log: unsafe extern "C" fn() -> *const c_char = self.sym("fake_xrt_log");
        // SAFETY: the log is a NUL-terminated static buffer.
        unsafe {
            (
                count(),
                CStr::from_ptr(log()).to_string_lossy().into_owned(),
            )
        }
    }

    /// Panics with the log when the host broke the call sequence.
    pub fn assert_clean(&self, when: &str) {
        let (n, log) = self.violations();
        assert_eq!(n, 0, "{when}: {n} call-sequence violations:\n{log}");
    }

    /// Devices, kernels, runs and buffers not released.
    pub fn live_handles(&self) -> c_long {
        let f: unsafe extern "C" fn() -> c_long = self.sym("fake_xrt_live_handles");
        // SAFETY: reads a counter.
        unsafe { f() }
    }

    /// Most runs in flight at once so far.
    pub fn max_in_flight(&self) -> i32 {
        let f: unsafe extern "C" fn() -> c_int = self.sym("fake_xrt_max_in_flight");
        // SAFETY: reads a counter.
        unsafe { f() }
    }

    /// `fake_xrt_report`, for the run handler.
    pub fn reporter(&self) -> Report {
        self.sym("fake_xrt_report")
    }
}
