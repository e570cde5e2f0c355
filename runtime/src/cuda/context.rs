//! Which GPU, and how its kernels are compiled: a CUDA context with one stream, and NVRTC
//! compiling kernel sources for the device's own architecture at run time.

use std::fmt::Display;
use std::sync::Arc;

use cudarc::driver::{CudaContext, CudaModule, CudaStream};
use cudarc::nvrtc::{compile_ptx_with_opts, CompileOptions};

use crate::RuntimeError;

/// One GPU with the stream every kvpq kernel of this handle runs on, in order.
///
/// Opening needs the CUDA driver (`libcuda.so`) and NVRTC (`libnvrtc.so`) at run time;
/// without them [`Gpu::open`] answers [`RuntimeError::Unavailable`].
pub struct Gpu {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    name: String,
    capability: (i32, i32),
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpu")
            .field("name", &self.name)
            .field("capability", &self.capability)
            .finish()
    }
}

/// A driver or compiler failure during a call, as the runtime reports it.
pub(crate) fn fault(what: &str, e: impl Display) -> RuntimeError {
    RuntimeError::Fault {
        backend: "gpu",
        detail: format!("{what}: {e}"),
    }
}

fn unavailable(reason: String) -> RuntimeError {
    RuntimeError::Unavailable {
        backend: "gpu",
        reason,
    }
}

impl Gpu {
    /// Opens GPU `ordinal` (its primary context) and a stream on it.
    pub fn open(ordinal: usize) -> Result<Arc<Self>, RuntimeError> {
        // cudarc panics when it cannot load a library: look first, and answer an error.
        // SAFETY: only tries to dlopen the library names.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err(unavailable(
                "the CUDA driver library (libcuda.so) is not on the library path".into(),
            ));
        }
        // SAFETY: as above.
        if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
            return Err(unavailable(
                "NVRTC (libnvrtc.so, CUDA 12 or 13) is not on the library path".into(),
            ));
        }
        let count = CudaContext::device_count()
            .map_err(|e| unavailable(format!("the CUDA driver answers: {e}")))?;
        if ordinal >= count.max(0) as usize {
            return Err(unavailable(format!(
                "GPU {ordinal} asked for, the driver sees {count}"
            )));
        }
        let ctx = CudaContext::new(ordinal)
            .map_err(|e| unavailable(format!("cannot open GPU {ordinal}: {e}")))?;
        // One stream orders every kernel of this handle: cudarc's per-buffer events
        // (for multi-stream safety) would only add a record and a wait per launch.
        // SAFETY: every buffer of this handle is used on `stream` only.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx
            .new_stream()
            .map_err(|e| fault("cannot create a stream", e))?;
        let name = ctx.name().map_err(|e| fault("device name", e))?;
        let capability = ctx
            .compute_capability()
            .map_err(|e| fault("compute capability", e))?;
        Ok(Arc::new(Self {
            ctx,
            stream,
            name,
            capability,
        }))
    }

    /// The device's name, e.g. `NVIDIA H100 80GB HBM3`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Compute capability (major, minor).
    pub fn capability(&self) -> (i32, i32) {
        self.capability
    }

    /// Waits until every kernel and copy queued so far has finished.
    pub fn synchronize(&self) -> Result<(), RuntimeError> {
        self.stream
            .synchronize()
            .map_err(|e| fault("synchronize", e))
    }

    /// The CUDA context (the device's primary context, which PyTorch and the CUDA runtime
    /// share), for code that exchanges memory with other CUDA users: binding it to a
    /// thread, events (the Python bindings' DLPack export).
    pub fn ctx(&self) -> &Arc<CudaContext> {
        &self.ctx
    }

    /// The stream every kvpq kernel of this handle runs on, in order: work of other CUDA
    /// users that reads kvpq's results, or that kvpq reads, orders itself against it with
    /// events (`cuEventRecord` / `cuStreamWaitEvent`).
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// Compiles `source` (CUDA C++, `extern "C"` kernels) for this device with `defines`
    /// prepended as `#define NAME VALUE` lines, and loads it.
    pub(crate) fn compile(
        &self,
        what: &str,
        defines: &[(&str, String)],
        source: &str,
    ) -> Result<Arc<CudaModule>, RuntimeError> {
        let mut text = String::new();
        for (name, value) in defines {
            text.push_str(&format!("#define {name} {value}\n"));
        }
        text.push_str(source);
        let (major, minor) = self.capability;
        let opts = CompileOptions {
            options: vec![format!("--gpu-architecture=compute_{major}{minor}")],
            name: Some(format!("{what}.cu")),
            ..Default::default()
        };
        let ptx = compile_ptx_with_opts(&text, opts)
            .map_err(|e| fault(&format!("NVRTC cannot compile the {what} kernels"), e))?;
        self.ctx
            .load_module(ptx)
            .map_err(|e| fault(&format!("cannot load the {what} kernels"), e))
    }
}
