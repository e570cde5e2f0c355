//! The `gpu` device for PyTorch users (feature `cuda`): an index opened with `device="gpu"`
//! shares its [`GpuDevice`] between the index (host selections, through the `Device` trait)
//! and `select` on CUDA queries, which leaves the selection on the GPU as a
//! [`GpuSelection`]: a DLPack producer (`torch.from_dlpack(sel)` gives an int32 CUDA tensor
//! `[kv_heads][per_head]` without a copy).
//!
//! Streams. The retrieval kernels run on the `Gpu`'s stream, which only the engine touches,
//! under the device's lock (it may be capturing CUDA graphs there). Everything else here
//! runs on a second stream of the handle, `io`: the query is exported with `io` as the
//! protocol's `stream` argument, so the producer (torch) makes `io` wait for the work that
//! wrote it, and kvpq copies it to the host there (the runtime quantizes queries on the CPU)
//! and waits for that copy only. The selection's kernels are followed by an event (`ready`),
//! which `io` waits on; the selection's memory then belongs to `io` (copies, the free).
//! `__dlpack__(stream=s)` makes the consumer's stream `s` wait on `ready`
//! (`cuStreamWaitEvent`): nothing waits on the host, nothing synchronizes the device. When
//! the consumer releases the tensor, `io` waits for the work queued on `s` so far, then
//! frees the memory in its stream order.
//!
//! Contexts. kvpq and PyTorch both use the device's primary context; every entry here binds
//! it to the calling thread and restores the thread's previous context on the way out, so a
//! caller's current device is left as it was.

use std::ffi::{c_void, CStr};
use std::mem::ManuallyDrop;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::NonNull;
use std::sync::{Arc, Mutex, MutexGuard};

use cudarc::driver::{result, sys, CudaSlice, CudaStream, DevicePtr, DriverError};
use half::{bf16, f16};
use kvpq_core::golden::{QuantCodebook, QueryResult};
use kvpq_core::spec::Accelerator;
use kvpq_runtime::backends::gpu::GpuDevice;
use kvpq_runtime::cuda::{DeviceSelection, Gpu};
use kvpq_runtime::{
    DType, Device, Element, HeadQuery, Index as CoreIndex, LayerSearches, RuntimeError, Split,
};
use ndarray::Array2;
use numpy::PyArray2;
use pyo3::exceptions::{PyBufferError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyCapsule, PyDict};

use crate::dlpack::{
    self, DlDataType, DlDevice, DlManagedTensor, DlManagedTensorVersioned, DlTensor,
};
use crate::errors::{input_error, IntoPyResult};
use crate::tensor::{shape_str, Elem, Raw};

/// Ids are exported as int32 (what torch indexes with besides int64): contexts up to 2^31.
const MAX_TOKENS: usize = 1 << 31;

fn fault(what: &str, e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Fault {
        backend: "gpu",
        detail: format!("{what}: {e}"),
    }
}

/// A GPU and the stream for everything but the engine's kernels.
#[derive(Clone)]
struct Home {
    gpu: Arc<Gpu>,
    io: Arc<CudaStream>,
}

/// An index's `gpu` device: its GPU and the device, which the index also calls (through
/// [`Shared`]) for selections that come back to the host.
#[derive(Clone)]
pub(crate) struct GpuHandle {
    home: Home,
    device: Arc<Mutex<GpuDevice>>,
}

impl GpuHandle {
    /// Opens GPU `ordinal` and compiles the retrieval kernels for `acc`: the handle, and the
    /// `Device` the index owns.
    pub(crate) fn open(
        acc: &Accelerator,
        ordinal: usize,
    ) -> Result<(Self, Box<dyn Device>), RuntimeError> {
        // Opening binds the GPU's context to this thread: bind back the caller's after.
        let _restore = CurrentContext::save();
        let gpu = Gpu::open(ordinal)?;
        let io = gpu
            .ctx()
            .new_stream()
            .map_err(|e| fault("cannot create a stream", e))?;
        let device = Arc::new(Mutex::new(GpuDevice::on(gpu.clone(), acc.clone())?));
        Ok((
            Self {
                home: Home { gpu, io },
                device: device.clone(),
            },
            Box::new(Shared(device)),
        ))
    }

    /// The GPU's ordinal (its CUDA device id).
    pub(crate) fn ordinal(&self) -> usize {
        self.home.gpu.ctx().ordinal()
    }

    /// Binds the calling thread's current context back when dropped: around the drop of an
    /// index, whose GPU buffers and context rebind it as they go.
    pub(crate) fn keep_context(&self) -> CurrentContext {
        CurrentContext {
            previous: result::ctx::get_current().unwrap_or(None),
            changed: true,
        }
    }

    /// Selects `layer` for CUDA `queries` (the tensor's DLPack capsule is asked for on the
    /// `io` stream); `elem_type` maps the query's element type to the one it is read as.
    pub(crate) fn select(
        &self,
        py: Python<'_>,
        index: &CoreIndex,
        layer: usize,
        queries: &Bound<'_, PyAny>,
        k: Option<usize>,
        elem_type: impl Fn(Elem) -> PyResult<DType>,
    ) -> PyResult<GpuSelection> {
        let ordinal = self.ordinal();
        let stream = self.home.io.cu_stream() as usize;
        // `_capsule` keeps the query's memory alive until the copy below has finished.
        let (raw, device_id, _capsule) = dlpack::read_cuda(queries, "queries", stream)?;
        if usize::try_from(device_id).ok() != Some(ordinal) {
            return Err(input_error(
                "device",
                format!(
                    "queries: on CUDA device {device_id}, but the index's gpu device is GPU \
                     {ordinal}: create the index with device_options={{\"ordinal\": \
                     {device_id}}}, or move the queries (queries.to(\"cuda:{ordinal}\"))"
                ),
            ));
        }
        if raw.shape.len() != 2 {
            return Err(input_error(
                "shape",
                format!(
                    "queries: shape {}, expected 2 dimensions (kv_heads x gqa_group, head_dim)",
                    shape_str(&raw.shape)
                ),
            ));
        }
        let dtype = elem_type(raw.elem)?;
        let rows = Rows::of(&raw)?;
        let ids = py
            .detach(|| -> Result<DeviceIds, RuntimeError> {
                let _ctx = CurrentContext::bind(&self.home.gpu)?;
                let io = &self.home.io;
                let q = match dtype {
                    DType::F32 => rows.copy::<f32>(io)?,
                    DType::F16 => rows.copy::<f16>(io)?.mapv(Element::to_f32),
                    DType::Bf16 => rows.copy::<bf16>(io)?.mapv(Element::to_f32),
                };
                index.with_searches(layer, q.view(), k, |searches| self.select_layer(searches))?
            })
            .py_err()?;
        Ok(GpuSelection { ids: Arc::new(ids) })
    }

    /// Runs a layer's searches on the GPU into a new selection, marks its completion and
    /// hands its memory over to the `io` stream.
    fn select_layer(&self, searches: &LayerSearches<'_>) -> Result<DeviceIds, RuntimeError> {
        let split = searches.split;
        if split.tokens > MAX_TOKENS {
            return Err(RuntimeError::Shape {
                what: "a selection on the GPU".into(),
                found: format!("a context of {} tokens", split.tokens),
                expected: "at most 2^31 tokens (ids are int32)".into(),
            });
        }
        let (gpu, io) = (&self.home.gpu, &self.home.io);
        let heads = searches.searches.len();
        // The engine's stream is used under the lock only: allocate, select and record there
        // (and hand the memory over before a failure could free it there unlocked).
        let mut device = lock(&self.device)?;
        let mut out = DeviceSelection::new(gpu, heads, split.sink + split.topk + split.local)?;
        device.engine().select_layer(searches, &mut out)?;
        let ready = Event::record(gpu.stream().cu_stream())
            .map_err(|e| fault("record the selection's event", e))?;
        ready
            .wait_on(io.cu_stream())
            .map_err(|e| fault("order the io stream after the selection", e))?;
        let DeviceSelection {
            ids,
            kv_heads,
            per_head,
            split,
            ..
        } = out;
        let len = ids.len();
        // SAFETY: `ids` holds `len` u32 of this context, allocated stream-ordered; `io`, which
        // now owns it (and frees it when dropped), waits for everything written so far.
        let ids = unsafe { io.upgrade_device_ptr::<u32>(ids.leak(), len) };
        Ok(DeviceIds {
            ids: Some(ids),
            kv_heads,
            per_head,
            split,
            ready: Some(ready),
            home: ManuallyDrop::new(self.home.clone()),
        })
    }
}

fn lock(device: &Mutex<GpuDevice>) -> Result<MutexGuard<'_, GpuDevice>, RuntimeError> {
    device.lock().map_err(|_| RuntimeError::Fault {
        backend: "gpu",
        detail: "a thread panicked while using the device".into(),
    })
}

/// The index's side of a shared [`GpuDevice`].
struct Shared(Arc<Mutex<GpuDevice>>);

impl Device for Shared {
    fn name(&self) -> &'static str {
        "gpu"
    }

    fn load_codebook(&mut self, slot: usize, codebook: QuantCodebook) -> Result<(), RuntimeError> {
        let mut d = lock(&self.0)?;
        let _ctx = CurrentContext::bind(d.engine().gpu())?;
        d.load_codebook(slot, codebook)
    }

    fn search(&mut self, queries: &[HeadQuery<'_>]) -> Result<Vec<QueryResult>, RuntimeError> {
        let mut d = lock(&self.0)?;
        let _ctx = CurrentContext::bind(d.engine().gpu())?;
        d.search(queries)
    }
}

/// Binds a GPU's context to the calling thread and, when dropped, binds back the context
/// the thread had (so a PyTorch thread's current device stays its own).
pub(crate) struct CurrentContext {
    previous: Option<sys::CUcontext>,
    changed: bool,
}

impl CurrentContext {
    /// Remembers the calling thread's context, to bind it back on drop (nothing to do
    /// without a CUDA driver).
    fn save() -> Self {
        // SAFETY: only tries to dlopen the driver library (cudarc panics without it).
        let present = unsafe { sys::is_culib_present() };
        if present && result::init().is_ok() {
            Self {
                previous: result::ctx::get_current().unwrap_or(None),
                changed: true,
            }
        } else {
            Self {
                previous: None,
                changed: false,
            }
        }
    }

    fn bind(gpu: &Gpu) -> Result<Self, RuntimeError> {
        let ctx = gpu.ctx().cu_ctx();
        let previous =
            result::ctx::get_current().map_err(|e| fault("read the current context", e))?;
        let changed = previous != Some(ctx);
        if changed {
            // SAFETY: `ctx` is the GPU's primary context, retained while `gpu` lives.
            unsafe { result::ctx::set_current(ctx) }
                .map_err(|e| fault("bind the GPU's context", e))?;
        }
        Ok(Self { previous, changed })
    }
}

impl Drop for CurrentContext {
    fn drop(&mut self) {
        if self.changed {
            // SAFETY: the thread's previous context (or none), as it was bound on entry.
            let _ =
                unsafe { result::ctx::set_current(self.previous.unwrap_or(std::ptr::null_mut())) };
        }
    }
}

/// A CUDA event without timing, destroyed on drop (the driver releases it once it has
/// completed).
struct Event(sys::CUevent);

// SAFETY: a CUDA event handle may be used from any thread.
unsafe impl Send for Event {}
unsafe impl Sync for Event {}

impl Event {
    /// An event recorded on `stream` (of the current context): completes when the work
    /// queued there so far has.
    fn record(stream: sys::CUstream) -> Result<Self, DriverError> {
        let event = Self(result::event::create(
            sys::CUevent_flags::CU_EVENT_DISABLE_TIMING,
        )?);
        // SAFETY: a live event; the caller passes a live stream of the current context.
        unsafe { result::event::record(event.0, stream) }?;
        Ok(event)
    }

    /// Makes `stream`'s later work wait for the event (on the GPU; the host goes on).
    fn wait_on(&self, stream: sys::CUstream) -> Result<(), DriverError> {
        // SAFETY: a live event; the caller passes a live stream.
        unsafe {
            result::stream::wait_event(
                stream,
                self.0,
                sys::CUevent_wait_flags::CU_EVENT_WAIT_DEFAULT,
            )
        }
    }
}

impl Drop for Event {
    fn drop(&mut self) {
        // SAFETY: created by `record`, destroyed once.
        let _ = unsafe { result::event::destroy(self.0) };
    }
}

/// A 2-D query tensor on the GPU, read row by row.
#[derive(Clone, Copy)]
struct Rows {
    ptr: sys::CUdeviceptr,
    rows: usize,
    cols: usize,
    /// Bytes from a row to the next.
    pitch: usize,
}

impl Rows {
    /// The rows of `raw` (2-D), whose last axis must be contiguous.
    fn of(raw: &Raw) -> PyResult<Self> {
        let (rows, cols) = (raw.shape[0], raw.shape[1]);
        let size = raw.elem.size();
        let width = cols * size;
        let inner_ok = cols <= 1 || raw.strides[1] == size as isize;
        let pitch = if rows <= 1 {
            width
        } else {
            usize::try_from(raw.strides[0]).unwrap_or(0)
        };
        if !inner_ok || (rows > 1 && pitch < width) {
            return Err(input_error(
                "layout",
                format!(
                    "queries: a CUDA tensor with strides {:?} (bytes): kvpq copies it row by \
                     row, which needs each row contiguous and rows apart: pass \
                     queries.contiguous()",
                    raw.strides
                ),
            ));
        }
        Ok(Self {
            ptr: raw.ptr as sys::CUdeviceptr,
            rows,
            cols,
            pitch,
        })
    }

    /// Copies the rows to the host on `io` (which the producer ordered after its writes)
    /// and waits for the copy.
    fn copy<T: Element>(&self, io: &CudaStream) -> Result<Array2<T>, RuntimeError> {
        let mut host = vec![T::from_f32(0.0); self.rows * self.cols];
        if !host.is_empty() {
            let stream = io.cu_stream();
            let width = self.cols * std::mem::size_of::<T>();
            // SAFETY: the producer's tensor spans `rows` rows of `width` bytes `pitch` apart
            // from `ptr` on this GPU (checked by `of`), kept alive by its capsule until this
            // returns; `host` holds exactly `rows * width` bytes.
            let copied = unsafe {
                if self.pitch == width {
                    result::memcpy_dtoh_async(&mut host, self.ptr, stream)
                } else {
                    let copy = sys::CUDA_MEMCPY2D {
                        srcXInBytes: 0,
                        srcY: 0,
                        srcMemoryType: sys::CUmemorytype::CU_MEMORYTYPE_DEVICE,
                        srcHost: std::ptr::null(),
                        srcDevice: self.ptr,
                        srcArray: std::ptr::null_mut(),
                        srcPitch: self.pitch,
                        dstXInBytes: 0,
                        dstY: 0,
                        dstMemoryType: sys::CUmemorytype::CU_MEMORYTYPE_HOST,
                        dstHost: host.as_mut_ptr().cast::<c_void>(),
                        dstDevice: 0,
                        dstArray: std::ptr::null_mut(),
                        dstPitch: width,
                        WidthInBytes: width,
                        Height: self.rows,
                    };
                    sys::cuMemcpy2DAsync_v2(&copy, stream).result()
                }
            };
            copied.map_err(|e| fault("copy the queries to the host", e))?;
            io.synchronize()
                .map_err(|e| fault("copy the queries to the host", e))?;
        }
        Array2::from_shape_vec((self.rows, self.cols), host)
            .map_err(|e| fault("the queries' shape", e))
    }
}

/// A selection's ids on the GPU, owned by the `io` stream (which waited for the kernels
/// that wrote them), and the event that completes with those kernels. Dropping it frees the
/// memory in `io`'s order (after every wait queued there, see [`Holder`]); the GPU's context
/// lives as long as it does.
struct DeviceIds {
    ids: Option<CudaSlice<u32>>,
    kv_heads: usize,
    per_head: usize,
    split: Split,
    ready: Option<Event>,
    /// Dropped by `Drop` while the context is bound (the last handle releases it).
    home: ManuallyDrop<Home>,
}

impl DeviceIds {
    fn slice(&self) -> &CudaSlice<u32> {
        self.ids.as_ref().expect("dropped only in Drop")
    }

    fn ptr(&self) -> sys::CUdeviceptr {
        self.slice().device_ptr(&self.home.io).0
    }

    fn ordinal(&self) -> usize {
        self.home.gpu.ctx().ordinal()
    }

    /// Makes `consumer`'s stream wait for the ids.
    fn wait_ready(&self, consumer: Consumer) -> Result<(), RuntimeError> {
        if let (Some(stream), Some(ready)) = (consumer.stream(), &self.ready) {
            let _ctx = CurrentContext::bind(&self.home.gpu)?;
            ready
                .wait_on(stream)
                .map_err(|e| fault("make the consumer's stream wait for the selection", e))?;
        }
        Ok(())
    }

    /// A copy in new memory (DLPack's `copy=True`), made on `io`.
    fn duplicate(&self) -> Result<Self, RuntimeError> {
        let _ctx = CurrentContext::bind(&self.home.gpu)?;
        let io = &self.home.io;
        let ids = io
            .clone_dtod(self.slice())
            .map_err(|e| fault("copy a selection", e))?;
        let ready =
            Event::record(io.cu_stream()).map_err(|e| fault("record the copy's event", e))?;
        Ok(Self {
            ids: Some(ids),
            kv_heads: self.kv_heads,
            per_head: self.per_head,
            split: self.split,
            ready: Some(ready),
            home: ManuallyDrop::new((*self.home).clone()),
        })
    }

    /// The ids on the host, `[kv_heads][per_head]` row-major.
    fn to_host(&self) -> Result<Vec<u32>, RuntimeError> {
        let _ctx = CurrentContext::bind(&self.home.gpu)?;
        let n = self.kv_heads * self.per_head;
        let io = &self.home.io;
        let v = io
            .clone_dtoh(&self.slice().slice(..n))
            .map_err(|e| fault("copy a selection back", e))?;
        io.synchronize()
            .map_err(|e| fault("copy a selection back", e))?;
        Ok(v)
    }
}

impl Drop for DeviceIds {
    fn drop(&mut self) {
        // The stream-ordered free needs the context; it may run on any thread, whose own
        // context is bound back afterwards.
        let ctx = CurrentContext::bind(&self.home.gpu);
        drop(self.ids.take());
        drop(self.ready.take());
        // SAFETY: dropped once, here; not used after.
        unsafe { ManuallyDrop::drop(&mut self.home) };
        drop(ctx);
    }
}

/// The stream a DLPack consumer named (`__dlpack__(stream=...)`).
#[derive(Debug, Clone, Copy)]
enum Consumer {
    /// `-1`: the consumer synchronizes itself.
    Unsynchronized,
    /// A `CUstream`: 1 is the legacy default stream and 2 the per-thread default stream,
    /// the driver API's `CU_STREAM_LEGACY` and `CU_STREAM_PER_THREAD`.
    Stream(usize),
}

impl Consumer {
    /// The protocol's values for CUDA: `None` is the legacy default stream, `0` is refused
    /// (ambiguous).
    fn parse(stream: Option<i64>) -> PyResult<Self> {
        match stream {
            None => Ok(Self::Stream(1)),
            Some(-1) => Ok(Self::Unsynchronized),
            Some(0) => Err(PyValueError::new_err(
                "stream=0 is ambiguous for CUDA (the DLPack protocol refuses it): pass 1 for \
                 the legacy default stream, 2 for the per-thread default stream or a stream \
                 handle",
            )),
            Some(s) if s > 0 => Ok(Self::Stream(s as usize)),
            Some(s) => Err(PyValueError::new_err(format!(
                "stream={s}: expected None, -1, 1, 2 or a CUDA stream handle"
            ))),
        }
    }

    fn stream(self) -> Option<sys::CUstream> {
        match self {
            Self::Unsynchronized => None,
            Self::Stream(s) => Some(s as sys::CUstream),
        }
    }
}

/// The selection of a layer for queries on the GPU, left on the GPU: token ids
/// `[kv_heads][sink + topk + local]`, each row ascending. A DLPack producer:
/// `torch.from_dlpack(sel)` is an int32 CUDA tensor sharing its memory; the memory lives
/// while this object or any tensor made from it does.
#[pyclass(module = "kvpq", frozen)]
pub struct GpuSelection {
    ids: Arc<DeviceIds>,
}

#[pymethods]
impl GpuSelection {
    /// Exports the ids as a DLPack capsule (`dltensor_versioned` when `max_version` allows
    /// 1.x, else `dltensor`), making `stream` wait for the kernels that wrote them.
    #[pyo3(signature = (*, stream=None, max_version=None, dl_device=None, copy=None))]
    fn __dlpack__<'py>(
        &self,
        py: Python<'py>,
        stream: Option<i64>,
        max_version: Option<(u32, u32)>,
        dl_device: Option<(i32, i32)>,
        copy: Option<bool>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        let consumer = Consumer::parse(stream)?;
        let here = self.__dlpack_device__();
        if let Some(d) = dl_device.filter(|&d| d != here) {
            return Err(PyBufferError::new_err(format!(
                "the selection lives on DLPack device {here:?} (CUDA); export to {d:?} is \
                 not supported: import it, then copy (e.g. tensor.cpu())"
            )));
        }
        let ids = if copy == Some(true) {
            Arc::new(py.detach(|| self.ids.duplicate()).py_err()?)
        } else {
            self.ids.clone()
        };
        py.detach(|| ids.wait_ready(consumer)).py_err()?;
        if max_version.is_some_and(|(major, _)| major >= 1) {
            let managed = DlManagedTensorVersioned {
                version_major: 1,
                version_minor: 0,
                manager_ctx: std::ptr::null_mut(),
                deleter: Some(delete::<DlManagedTensorVersioned>),
                flags: 0,
                dl_tensor: dl_tensor_of(&ids),
            };
            export(py, managed, ids, consumer)
        } else {
            let managed = DlManagedTensor {
                dl_tensor: dl_tensor_of(&ids),
                manager_ctx: std::ptr::null_mut(),
                deleter: Some(delete::<DlManagedTensor>),
            };
            export(py, managed, ids, consumer)
        }
    }

    /// `(2, ordinal)`: kDLCUDA and the GPU's device id.
    fn __dlpack_device__(&self) -> (i32, i32) {
        (dlpack::CUDA, self.ids.ordinal() as i32)
    }

    /// `(kv_heads, sink + topk + local)`.
    #[getter]
    fn shape(&self) -> (usize, usize) {
        (self.ids.kv_heads, self.ids.per_head)
    }

    /// `"int32"`.
    #[getter]
    fn dtype(&self) -> &'static str {
        "int32"
    }

    /// The GPU's ordinal (CUDA device id).
    #[getter]
    fn device(&self) -> usize {
        self.ids.ordinal()
    }

    /// How the policy split the context: `tokens`, `sink`, `local`, `middle`, `topk`.
    #[getter]
    fn split<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.ids.split;
        let d = PyDict::new(py);
        for (key, value) in [
            ("tokens", s.tokens),
            ("sink", s.sink),
            ("local", s.local),
            ("middle", s.middle),
            ("topk", s.topk),
        ] {
            d.set_item(key, value)?;
        }
        Ok(d)
    }

    /// A copy on the host: int64 numpy `(kv_heads, per_head)`, what `select` returns for
    /// host queries. Waits for the selection (not for the whole device).
    fn to_host<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<i64>>> {
        let ids = py.detach(|| self.ids.to_host()).py_err()?;
        let ids = ids.into_iter().map(i64::from).collect();
        let ids = Array2::from_shape_vec((self.ids.kv_heads, self.ids.per_head), ids)
            .map_err(|e| input_error("internal", e.to_string()))?;
        Ok(PyArray2::from_owned_array(py, ids))
    }

    fn __repr__(&self) -> String {
        format!(
            "GpuSelection(shape=({}, {}), dtype=int32, device=cuda:{})",
            self.ids.kv_heads,
            self.ids.per_head,
            self.device()
        )
    }
}

/// The `DLTensor` of `ids` (shape and strides are set by [`export`]).
fn dl_tensor_of(ids: &DeviceIds) -> DlTensor {
    DlTensor {
        data: ids.ptr() as *mut c_void,
        device: DlDevice {
            device_type: dlpack::CUDA,
            device_id: ids.ordinal() as i32,
        },
        ndim: 2,
        // kDLInt, 32 bits: the ids are below 2^31.
        dtype: DlDataType {
            code: 0,
            bits: 32,
            lanes: 1,
        },
        shape: std::ptr::null(),
        strides: std::ptr::null(),
        byte_offset: 0,
    }
}

/// The two managed-tensor structs of DLPack.
trait Managed: Sized {
    /// The capsule's name while unconsumed.
    const NAME: &'static CStr;
    fn dl_tensor(&mut self) -> &mut DlTensor;
    fn set_manager_ctx(&mut self, ctx: *mut c_void);
}

impl Managed for DlManagedTensor {
    const NAME: &'static CStr = c"dltensor";
    fn dl_tensor(&mut self) -> &mut DlTensor {
        &mut self.dl_tensor
    }
    fn set_manager_ctx(&mut self, ctx: *mut c_void) {
        self.manager_ctx = ctx;
    }
}

impl Managed for DlManagedTensorVersioned {
    const NAME: &'static CStr = c"dltensor_versioned";
    fn dl_tensor(&mut self) -> &mut DlTensor {
        &mut self.dl_tensor
    }
    fn set_manager_ctx(&mut self, ctx: *mut c_void) {
        self.manager_ctx = ctx;
    }
}

/// What a capsule owns: the managed tensor (first, so its address is the holder's), the
/// shape and strides it points at, a share of the ids and the consumer's stream.
#[repr(C)]
struct Holder<M> {
    managed: M,
    shape: [i64; 2],
    strides: [i64; 2],
    ids: Option<Arc<DeviceIds>>,
    consumer: Consumer,
}

impl<M> Drop for Holder<M> {
    fn drop(&mut self) {
        let Some(ids) = self.ids.take() else { return };
        // The consumer may still have work queued on its stream that reads the ids: `io`
        // (where the memory is freed) waits for it first.
        if let Some(stream) = self.consumer.stream() {
            if let Ok(_ctx) = CurrentContext::bind(&ids.home.gpu) {
                if let Ok(done) = Event::record(stream) {
                    let _ = done.wait_on(ids.home.io.cu_stream());
                }
            }
        }
        drop(ids);
    }
}

/// The DLPack deleter: frees the holder of `managed` (any thread, with or without the GIL).
unsafe extern "C" fn delete<M>(managed: *mut M) {
    if managed.is_null() {
        return;
    }
    // SAFETY: `managed` is the first field of a boxed `Holder<M>` (`export`), released once
    // (by the consumer, or by the capsule's destructor while unconsumed).
    let holder = unsafe { Box::from_raw(managed.cast::<Holder<M>>()) };
    let _ = catch_unwind(AssertUnwindSafe(move || drop(holder)));
}

/// The capsule destructor: releases the tensor unless a consumer took it (and renamed the
/// capsule `used_...`).
unsafe extern "C" fn destructor<M: Managed>(capsule: *mut ffi::PyObject) {
    // SAFETY: called by Python on a capsule made by `export`; `IsValid` with the unused
    // name sets no error.
    unsafe {
        if ffi::PyCapsule_IsValid(capsule, M::NAME.as_ptr()) == 1 {
            let managed = ffi::PyCapsule_GetPointer(capsule, M::NAME.as_ptr()).cast::<M>();
            delete::<M>(managed);
        }
    }
}

/// Boxes `managed` with what it points at and wraps it in a capsule.
fn export<'py, M: Managed>(
    py: Python<'py>,
    managed: M,
    ids: Arc<DeviceIds>,
    consumer: Consumer,
) -> PyResult<Bound<'py, PyCapsule>> {
    let (heads, per_head) = (ids.kv_heads as i64, ids.per_head as i64);
    let mut holder = Box::new(Holder {
        managed,
        shape: [heads, per_head],
        strides: [per_head, 1],
        ids: Some(ids),
        consumer,
    });
    let (shape, strides) = (holder.shape.as_ptr(), holder.strides.as_ptr());
    let t = holder.managed.dl_tensor();
    t.shape = shape;
    t.strides = strides;
    let raw = Box::into_raw(holder);
    // SAFETY: `raw` is a live box.
    unsafe { (*raw).managed.set_manager_ctx(raw.cast()) };
    let pointer = NonNull::new(raw.cast::<c_void>()).expect("a box is not null");
    // SAFETY: the pointer is the managed tensor (the holder's first field), valid until
    // `delete` frees it; the destructor releases it only while the capsule is unconsumed.
    let capsule = unsafe {
        PyCapsule::new_with_pointer_and_destructor(py, pointer, M::NAME, Some(destructor::<M>))
    };
    if capsule.is_err() {
        // SAFETY: no capsule holds the pointer.
        drop(unsafe { Box::from_raw(raw) });
    }
    capsule
}
