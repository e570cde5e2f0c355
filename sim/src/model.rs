//! A loaded Verilator model: set and read ports by position, settle, clock. Its port list is
//! the built model's (the interface description's for described modules); drivers name
//! ports through [`crate::harness::Harness`].

use std::ffi::{c_char, c_int, c_void, CString};
use std::path::Path;

use libloading::Library;

use crate::build::BuiltModel;
use crate::error::{Result, SimError};
use crate::ports::PortSpec;

type NewFn = unsafe extern "C" fn() -> *mut c_void;
type FreeFn = unsafe extern "C" fn(*mut c_void);
type TraceFn = unsafe extern "C" fn(*mut c_void, *const c_char) -> c_int;
type StepFn = unsafe extern "C" fn(*mut c_void);
type SetFn = unsafe extern "C" fn(*mut c_void, c_int, *const u32) -> c_int;
type GetFn = unsafe extern "C" fn(*mut c_void, c_int, *mut u32) -> c_int;

/// One instance of a simulation model.
pub struct Model {
    handle: *mut c_void,
    free: FreeFn,
    trace: TraceFn,
    eval: StepFn,
    tick: StepFn,
    set: SetFn,
    get: GetFn,
    ports: Vec<PortSpec>,
    top: String,
    // Declared last: the library must outlive the function pointers above.
    _lib: Library,
}

// SAFETY: the model is owned by one `Model` and only touched through `&mut self` or `&self`
// calls that the borrow checker serializes; Verilated models have no thread affinity
// (the one-thread assertion exists only in VL_DEBUG builds, which the shim is not), so
// moving the model to another thread between calls is sound. It is not `Sync`.
unsafe impl Send for Model {}

impl Model {
    /// Loads a built model and creates one instance.
    pub fn load(built: &BuiltModel) -> Result<Self> {
        let load_err = |source| SimError::Load {
            path: built.library.clone(),
            source,
        };
        // SAFETY: the library is one this crate built from its own shim; the symbols have
        // exactly the signatures declared above.
        unsafe {
            let lib = Library::new(&built.library).map_err(load_err)?;
            let new: NewFn = *lib.get::<NewFn>(b"kvpq_sim_new\0").map_err(load_err)?;
            let free = *lib.get::<FreeFn>(b"kvpq_sim_free\0").map_err(load_err)?;
            let trace = *lib.get::<TraceFn>(b"kvpq_sim_trace\0").map_err(load_err)?;
            let eval = *lib.get::<StepFn>(b"kvpq_sim_eval\0").map_err(load_err)?;
            let tick = *lib.get::<StepFn>(b"kvpq_sim_tick\0").map_err(load_err)?;
            let set = *lib.get::<SetFn>(b"kvpq_sim_set\0").map_err(load_err)?;
            let get = *lib.get::<GetFn>(b"kvpq_sim_get\0").map_err(load_err)?;
            let handle = new();
            Ok(Self {
                handle,
                free,
                trace,
                eval,
                tick,
                set,
                get,
                ports: built.ports.clone(),
                top: built.top.clone(),
                _lib: lib,
            })
        }
    }

    /// Top module.
    pub fn top(&self) -> &str {
        &self.top
    }

    /// Ports of the top module.
    pub fn ports(&self) -> &[PortSpec] {
        &self.ports
    }

    /// Position of port `name`.
    pub fn port(&self, name: &str) -> Result<usize> {
        self.ports
            .iter()
            .position(|p| p.name == name)
            .ok_or_else(|| SimError::Interface {
                module: self.top.clone(),
                what: format!("no port `{name}`"),
            })
    }

    /// Drives input port `port` with `words` (little-endian 32-bit words, high bits zero).
    pub fn set(&mut self, port: usize, words: &[u32]) {
        let p = &self.ports[port];
        assert!(
            p.input && words.len() >= p.words(),
            "port {} takes {} words",
            p.name,
            p.words()
        );
        // SAFETY: handle is live; the shim reads p.words() words.
        unsafe { (self.set)(self.handle, port as c_int, words.as_ptr()) };
    }

    /// Drives a port of at most 64 bits.
    pub fn set_u64(&mut self, port: usize, value: u64) {
        self.set(port, &[value as u32, (value >> 32) as u32]);
    }

    /// Reads port `port` into `words`.
    pub fn get(&self, port: usize, words: &mut [u32]) {
        let p = &self.ports[port];
        assert!(
            words.len() >= p.words(),
            "port {} needs {} words",
            p.name,
            p.words()
        );
        // SAFETY: handle is live; the shim writes p.words() words.
        unsafe { (self.get)(self.handle, port as c_int, words.as_mut_ptr()) };
    }

    /// Reads a port of at most 64 bits.
    pub fn get_u64(&self, port: usize) -> u64 {
        let mut w = [0u32; 2];
        self.get(port, &mut w);
        u64::from(w[0]) | (u64::from(w[1]) << 32)
    }

    /// Settles combinational logic.
    pub fn eval(&mut self) {
        // SAFETY: handle is live.
        unsafe { (self.eval)(self.handle) }
    }

    /// One clock cycle.
    pub fn tick(&mut self) {
        // SAFETY: handle is live.
        unsafe { (self.tick)(self.handle) }
    }

    /// Starts writing a VCD trace to `path`.
    pub fn trace(&mut self, path: &Path) -> Result<()> {
        let c = CString::new(path.display().to_string()).expect("paths have no NUL");
        // SAFETY: handle is live, c is a valid C string.
        let rc = unsafe { (self.trace)(self.handle, c.as_ptr()) };
        if rc != 0 {
            return Err(SimError::Interface {
                module: self.top.clone(),
                what: match rc {
                    3 => "built without --trace: use build_traced_model".into(),
                    _ => format!("cannot open trace {}", path.display()),
                },
            });
        }
        Ok(())
    }
}

impl Drop for Model {
    fn drop(&mut self) {
        // SAFETY: handle came from kvpq_sim_new and is freed once.
        unsafe { (self.free)(self.handle) }
    }
}
