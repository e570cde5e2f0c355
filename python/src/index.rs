//! `kvpq.Index`: the runtime's retrieval index for a Python decoding loop. Arrays come in as
//! numpy arrays or DLPack tensors without a copy; every call that waits or works (prefill,
//! append, select, gather, training waits) releases the GIL, so threads can serve different
//! layers at once. An index with a `gpu` device also selects for CUDA queries and leaves
//! the selection on the GPU (`gpu.rs`).

use std::mem::ManuallyDrop;
use std::path::PathBuf;

use half::{bf16, f16};
use kvpq_runtime::{
    DType, Element, HeadCodes as CoreHeadCodes, Index as CoreIndex, IndexOptions, RuntimeError,
    Selection, Sharding, TrainingOptions,
};
use ndarray::{Array2, ArrayView3, ArrayViewMut3, Ix2, Ix3};
use numpy::{PyArray1, PyArray2, PyArray3};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use crate::accelerator::Accelerator;
use crate::devices::{self, GpuHandle};
use crate::dlpack;
use crate::errors::{input_error, IntoPyResult};
use crate::folder::Folder;
use crate::tensor::{Elem, Strided, Tensor};

/// Codebook training at prefill (and re-training): `None` fields keep the runtime's default.
#[pyclass(module = "kvpq", frozen, get_all)]
#[derive(Clone)]
pub struct Training {
    /// Training points per centroid (k-means sees at most this many x K keys per head).
    points_per_centroid: usize,
    /// Lloyd iterations at most.
    max_iters: usize,
    /// Stop when the inertia improves by less than this fraction.
    tolerance: f64,
    /// Seed of the subsample and of k-means++.
    seed: u64,
    /// Threads of the background training pool (0: one per core).
    threads: usize,
}

impl Training {
    fn options(&self) -> TrainingOptions {
        TrainingOptions {
            points_per_centroid: self.points_per_centroid,
            max_iters: self.max_iters,
            tolerance: self.tolerance,
            seed: self.seed,
            threads: self.threads,
        }
    }
}

#[pymethods]
impl Training {
    #[new]
    #[pyo3(signature = (*, points_per_centroid=None, max_iters=None, tolerance=None, seed=None, threads=None))]
    fn new(
        points_per_centroid: Option<usize>,
        max_iters: Option<usize>,
        tolerance: Option<f64>,
        seed: Option<u64>,
        threads: Option<usize>,
    ) -> Self {
        let d = TrainingOptions::default();
        Self {
            points_per_centroid: points_per_centroid.unwrap_or(d.points_per_centroid),
            max_iters: max_iters.unwrap_or(d.max_iters),
            tolerance: tolerance.unwrap_or(d.tolerance),
            seed: seed.unwrap_or(d.seed),
            threads: threads.unwrap_or(d.threads),
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "Training(points_per_centroid={}, max_iters={}, tolerance={}, seed={}, threads={})",
            self.points_per_centroid, self.max_iters, self.tolerance, self.seed, self.threads
        )
    }
}

/// One head's codebooks and packed code stream, copied out of the index.
#[pyclass(module = "kvpq", frozen, get_all)]
pub struct HeadCodes {
    /// Float codebooks, float32 `(m, K, head_dim / m)`.
    centroids: Py<PyAny>,
    /// Integer codebooks the device holds, int32 `(m, K, head_dim / m)`.
    quant_centroids: Py<PyAny>,
    /// Scale of the integer codebooks (`centroid ~= value * scale`).
    quant_scale: f32,
    /// Packed codes, uint64 words (docs/design.md section 4); stream position `i` is token
    /// `sink_tokens + i`.
    beats: Py<PyAny>,
    /// Tokens in the stream (the context minus the sinks).
    stream_tokens: usize,
}

impl HeadCodes {
    fn new(py: Python<'_>, h: CoreHeadCodes) -> Self {
        Self {
            centroids: PyArray3::from_owned_array(py, h.codebook.centroids)
                .into_any()
                .unbind(),
            quant_centroids: PyArray3::from_owned_array(py, h.quant.values)
                .into_any()
                .unbind(),
            quant_scale: h.quant.scale,
            beats: PyArray1::from_vec(py, h.beats).into_any().unbind(),
            stream_tokens: h.stream_tokens,
        }
    }
}

/// The retrieval index of one model: stores every layer's keys and values, trains PQ
/// codebooks at prefill (in the background), and selects the tokens each decoding step
/// attends. `Index(config, layers, kv_heads, *, dtype="f32", device="cpu", path=None,
/// device_options=None, capacity=None, sharding="layers", retrain_every=None,
/// training=None)`; the stubs (kvpq/_kvpq.pyi) document every argument.
#[pyclass(module = "kvpq", frozen)]
pub struct Index {
    inner: ManuallyDrop<CoreIndex>,
    /// The first `gpu` device, shared with `inner`: `select` on CUDA queries runs on it.
    gpu: ManuallyDrop<Option<GpuHandle>>,
}

impl Drop for Index {
    fn drop(&mut self) {
        // Freeing GPU buffers and the GPU's context binds it to this thread: bind back the
        // thread's own (a PyTorch thread's current device) afterwards.
        let _keep = self.gpu.as_ref().map(GpuHandle::keep_context);
        // SAFETY: dropped once, here; not used after.
        unsafe {
            ManuallyDrop::drop(&mut self.inner);
            ManuallyDrop::drop(&mut self.gpu);
        }
    }
}

/// Which write a key/value call makes.
#[derive(Clone, Copy)]
enum Write {
    Prefill,
    Append,
}

/// A gather destination: the caller's buffer itself when C-contiguous, else a staging
/// vector copied into the strided view afterwards.
enum Dest<'a, T> {
    Direct(&'a mut [T]),
    Staged(Vec<T>, ArrayViewMut3<'a, T>),
}

impl<'a, T: Element> Dest<'a, T> {
    /// # Safety
    /// As [`Strided::view_mut`]: the buffer is alive and nothing else touches it meanwhile.
    unsafe fn new(s: &'a Strided<T, Ix3>) -> Self {
        // SAFETY: forwarded to the caller.
        match unsafe { s.slice_mut() } {
            Some(slice) => Dest::Direct(slice),
            None => {
                // SAFETY: forwarded to the caller.
                let view = unsafe { s.view_mut() };
                Dest::Staged(vec![T::from_f32(0.0); view.len()], view)
            }
        }
    }

    fn slice(&mut self) -> &mut [T] {
        match self {
            Dest::Direct(s) => s,
            Dest::Staged(v, _) => v,
        }
    }

    /// Copies a staged result into the caller's strided buffer.
    fn finish(self) -> Result<(), RuntimeError> {
        if let Dest::Staged(v, mut view) = self {
            let src =
                ArrayView3::from_shape(view.raw_dim(), &v).map_err(|e| RuntimeError::Fault {
                    backend: "python",
                    detail: format!("staging a gather: {e}"),
                })?;
            view.assign(&src);
        }
        Ok(())
    }
}

/// A non-negative index argument (`layer`, `head`); negative ones are refused like the
/// runtime refuses ones past the end.
fn index_arg(value: i64, what: &'static str, limit: usize) -> PyResult<usize> {
    usize::try_from(value).map_err(|_| {
        input_error(
            "out_of_range",
            format!("{what} {value} is out of range (there are {limit})"),
        )
    })
}

/// The store type named by `dtype`: `f32`, `float32`, `numpy.float32`, `torch.bfloat16` ...
fn parse_dtype(dtype: Option<&Bound<'_, PyAny>>) -> PyResult<DType> {
    let Some(dtype) = dtype else {
        return Ok(DType::F32);
    };
    // numpy dtypes and scalar types print their name, torch dtypes `torch.<name>`.
    let text = match dtype.cast::<PyString>() {
        Ok(s) => s.to_cow()?.into_owned(),
        Err(_) => match dtype.getattr("__name__") {
            Ok(name) => name.str()?.to_cow()?.into_owned(),
            Err(_) => dtype.str()?.to_cow()?.into_owned(),
        },
    };
    match text.trim_start_matches("torch.") {
        "f32" | "float32" | "float" => Ok(DType::F32),
        "f16" | "float16" | "half" => Ok(DType::F16),
        "bf16" | "bfloat16" => Ok(DType::Bf16),
        other => Err(input_error(
            "dtype",
            format!("dtype {other:?}: expected f32, f16 or bf16"),
        )),
    }
}

/// The array types holding elements of a store type: bfloat16 also as uint16 bits (numpy has
/// no bfloat16).
fn elems_of(dtype: DType) -> &'static [Elem] {
    match dtype {
        DType::F32 => &[Elem::F32],
        DType::F16 => &[Elem::F16],
        DType::Bf16 => &[Elem::Bf16, Elem::U16],
    }
}

/// Token ids of a `(kv_heads, n)` integer array, each in `0..2^32`.
fn read_ids(t: &Tensor<'_>) -> PyResult<Vec<u32>> {
    macro_rules! ids {
        ($t:ty) => {{
            let s = t.strided::<$t, Ix2>()?;
            // SAFETY: `t` is alive for this call and the GIL is held (no other Python code
            // runs); the ids are only read.
            let view = unsafe { s.view() };
            view.iter()
                .enumerate()
                .map(|(i, &x)| {
                    u32::try_from(x).map_err(|_| {
                        input_error(
                            "out_of_range",
                            format!("ids: element {i} is {x}, not a token id"),
                        )
                    })
                })
                .collect()
        }};
    }
    match t.elem() {
        Elem::I64 => ids!(i64),
        Elem::I32 => ids!(i32),
        Elem::I16 => ids!(i16),
        Elem::U64 => ids!(u64),
        Elem::U32 => ids!(u32),
        Elem::U16 => ids!(u16),
        other => Err(input_error(
            "dtype",
            format!(
                "ids: dtype {}, expected an integer type (int64 as select returns)",
                other.name()
            ),
        )),
    }
}

impl Index {
    fn store_dtype(&self) -> DType {
        self.inner.options().dtype
    }

    fn layer_arg(&self, layer: i64) -> PyResult<usize> {
        index_arg(layer, "layer", self.inner.options().layers)
    }

    /// The memory of `t` as `T`: float32, float16, bfloat16 (DLPack), or uint16 holding
    /// bfloat16 bits when the index stores bf16.
    fn float_elem(&self, t: &Tensor<'_>) -> PyResult<DType> {
        self.float_type(t.elem(), t.what)
    }

    /// [`Self::float_elem`] of an element type; `what` names the argument.
    fn float_type(&self, elem: Elem, what: &str) -> PyResult<DType> {
        match elem {
            Elem::F32 => Ok(DType::F32),
            Elem::F16 => Ok(DType::F16),
            Elem::Bf16 => Ok(DType::Bf16),
            Elem::U16 if self.store_dtype() == DType::Bf16 => Ok(DType::Bf16),
            other => Err(input_error(
                "dtype",
                format!(
                    "{}: dtype {} is not supported: pass float32, float16 or bfloat16{}",
                    what,
                    other.name(),
                    if self.store_dtype() == DType::Bf16 {
                        " (or uint16 holding bfloat16 bits)"
                    } else {
                        ""
                    }
                ),
            )),
        }
    }

    /// Prefill or append: checks both tensors, then writes with the GIL released.
    fn write(
        &self,
        py: Python<'_>,
        call: Write,
        layer: i64,
        keys: &Bound<'_, PyAny>,
        values: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let layer = self.layer_arg(layer)?;
        let (k, v) = (
            Tensor::extract(keys, "keys")?,
            Tensor::extract(values, "values")?,
        );
        for t in [&k, &v] {
            t.expect_ndim(3, "(kv_heads, tokens, head_dim)")?;
        }
        let dtype = self.float_elem(&k)?;
        if self.float_elem(&v)? != dtype || v.elem() != k.elem() {
            return Err(input_error(
                "dtype",
                format!(
                    "values: dtype {}, expected {} (the keys' dtype)",
                    v.elem().name(),
                    k.elem().name()
                ),
            ));
        }
        match dtype {
            DType::F32 => self.write_as::<f32>(py, call, layer, &k, &v),
            DType::F16 => self.write_as::<f16>(py, call, layer, &k, &v),
            DType::Bf16 => self.write_as::<bf16>(py, call, layer, &k, &v),
        }
    }

    fn write_as<T: Element>(
        &self,
        py: Python<'_>,
        call: Write,
        layer: usize,
        k: &Tensor<'_>,
        v: &Tensor<'_>,
    ) -> PyResult<()> {
        let (ks, vs) = (k.strided::<T, Ix3>()?, v.strided::<T, Ix3>()?);
        let index = &self.inner;
        py.detach(|| {
            // SAFETY: `k` and `v` keep the memory alive until this returns; the runtime only
            // reads it.
            let (kv, vv) = unsafe { (ks.view(), vs.view()) };
            match call {
                Write::Prefill => index.prefill(layer, kv, vv),
                Write::Append => index.append(layer, kv, vv),
            }
        })
        .py_err()
    }

    /// Select with the GIL released, reading f32 queries in place.
    fn select_f32(
        &self,
        py: Python<'_>,
        layer: usize,
        q: &Tensor<'_>,
        k: Option<usize>,
    ) -> PyResult<Selection> {
        let qs = q.strided::<f32, Ix2>()?;
        py.detach(|| {
            // SAFETY: `q` keeps the memory alive until this returns; it is only read.
            select(&self.inner, layer, unsafe { qs.view() }, k)
        })
        .py_err()
    }

    /// Select with the GIL released on f16 or bf16 queries, widened (exactly) to f32.
    fn select_widened<T: Element>(
        &self,
        py: Python<'_>,
        layer: usize,
        q: &Tensor<'_>,
        k: Option<usize>,
    ) -> PyResult<Selection> {
        let qs = q.strided::<T, Ix2>()?;
        py.detach(|| {
            // SAFETY: as in `select_f32`.
            let q32 = unsafe { qs.view() }.mapv(Element::to_f32);
            select(&self.inner, layer, q32.view(), k)
        })
        .py_err()
    }

    fn gather_as<T: Element>(
        &self,
        py: Python<'_>,
        sel: &Selection,
        k: &Tensor<'_>,
        v: &Tensor<'_>,
    ) -> PyResult<()> {
        let (ks, vs) = (k.strided::<T, Ix3>()?, v.strided::<T, Ix3>()?);
        let store = self.inner.store();
        py.detach(|| {
            // SAFETY: both buffers are alive (held by `k` and `v`), checked writable, without
            // self-overlap and disjoint from each other.
            let (mut kd, mut vd) = unsafe { (Dest::new(&ks), Dest::new(&vs)) };
            store.gather(sel, kd.slice(), vd.slice())?;
            kd.finish()?;
            vd.finish()
        })
        .py_err()
    }
}

impl Index {
    /// `select` on queries in the memory of CUDA device `device_id`: on the index's `gpu`
    /// device, with the selection left there.
    fn select_cuda<'py>(
        &self,
        py: Python<'py>,
        layer: usize,
        queries: &Bound<'py, PyAny>,
        device_id: i32,
        k: Option<usize>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let Some(gpu) = self.gpu.as_ref() else {
            return Err(input_error(
                "device",
                format!(
                    "queries: a CUDA tensor (device {device_id}), but this index selects on \
                     {:?}{}: create it with device=\"gpu\" to select on the GPU (the ids stay \
                     there), or pass queries.cpu()",
                    self.inner.device_names(),
                    if cfg!(feature = "cuda") {
                        ""
                    } else {
                        " and this kvpq module has no gpu backend (maturin build --features cuda)"
                    }
                ),
            ));
        };
        #[cfg(feature = "cuda")]
        {
            let sel = gpu.select(py, &self.inner, layer, queries, k, |e| {
                self.float_type(e, "queries")
            })?;
            Ok(Bound::new(py, sel)?.into_any())
        }
        #[cfg(not(feature = "cuda"))]
        {
            let _ = (py, layer, queries, k);
            match *gpu {}
        }
    }
}

/// `select` or `select_k`.
fn select(
    index: &CoreIndex,
    layer: usize,
    q: ndarray::ArrayView2<'_, f32>,
    k: Option<usize>,
) -> Result<Selection, RuntimeError> {
    match k {
        None => index.select(layer, q),
        Some(k) => index.select_k(layer, q, k),
    }
}

#[pymethods]
impl Index {
    /// Creates an index on `device` for a description (`Accelerator`, TOML text or path, or
    /// a `Folder`).
    #[new]
    #[pyo3(signature = (config, layers, kv_heads, *, dtype=None, device=None, path=None, device_options=None, capacity=None, sharding="layers", retrain_every=None, training=None))]
    #[allow(clippy::too_many_arguments)] // Python keyword arguments
    fn new(
        config: &Bound<'_, PyAny>,
        layers: usize,
        kv_heads: usize,
        dtype: Option<&Bound<'_, PyAny>>,
        device: Option<&Bound<'_, PyAny>>,
        path: Option<PathBuf>,
        device_options: Option<&Bound<'_, PyDict>>,
        capacity: Option<usize>,
        sharding: &str,
        retrain_every: Option<usize>,
        training: Option<&Bound<'_, Training>>,
    ) -> PyResult<Self> {
        // A checked folder brings its description and is the devices' default path.
        let (acc, folder) = match config.cast::<Folder>() {
            Ok(f) => (
                f.get().accelerator.get().inner.clone(),
                Some(f.get().path.clone()),
            ),
            Err(_) => (Accelerator::from_any(config)?, None),
        };
        let names: Vec<String> = match device {
            None => vec!["cpu".into()],
            Some(d) => match d.cast::<PyString>() {
                Ok(s) => vec![s.to_cow()?.into_owned()],
                Err(_) => d.extract()?,
            },
        };
        let sharding = match sharding {
            "layers" => Sharding::Layers,
            "heads" => Sharding::Heads,
            other => {
                return Err(input_error(
                    "sharding",
                    format!("sharding {other:?}: expected \"layers\" or \"heads\""),
                ))
            }
        };
        let mut opts = IndexOptions::new(layers, kv_heads)
            .with_dtype(parse_dtype(dtype)?)
            .with_sharding(sharding);
        if let Some(c) = capacity {
            opts = opts.with_capacity(c);
        }
        if let Some(r) = retrain_every {
            opts = opts.with_retrain_every(r);
        }
        if let Some(t) = training {
            opts = opts.with_training(t.get().options());
        }
        let (mut devices, mut gpu) = (Vec::with_capacity(names.len()), None);
        for n in &names {
            let (device, handle) =
                devices::open(n, &acc, path.as_deref(), folder.as_deref(), device_options)?;
            devices.push(device);
            gpu = gpu.or(handle);
        }
        Ok(Self {
            inner: ManuallyDrop::new(CoreIndex::new(acc, opts, devices).py_err()?),
            gpu: ManuallyDrop::new(gpu),
        })
    }

    /// Starts a sequence on `layer` with its prompt's keys and values.
    fn prefill(
        &self,
        py: Python<'_>,
        layer: i64,
        keys: &Bound<'_, PyAny>,
        values: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        self.write(py, Write::Prefill, layer, keys, values)
    }

    /// Appends decoded tokens' keys and values to `layer`.
    fn append(
        &self,
        py: Python<'_>,
        layer: i64,
        keys: &Bound<'_, PyAny>,
        values: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        self.write(py, Write::Append, layer, keys, values)
    }

    /// The token ids `layer` attends for `queries`, int64 `(kv_heads, len_per_head)`; for
    /// CUDA queries, a `GpuSelection` on the GPU.
    #[pyo3(signature = (layer, queries, k=None))]
    fn select<'py>(
        &self,
        py: Python<'py>,
        layer: i64,
        queries: &Bound<'py, PyAny>,
        k: Option<i64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let layer = self.layer_arg(layer)?;
        let k = k
            .map(|k| {
                usize::try_from(k)
                    .map_err(|_| input_error("budget", format!("k = {k} is negative")))
            })
            .transpose()?;
        if let Some(device) = dlpack::device_of(queries)? {
            if device.device_type == dlpack::CUDA {
                return self.select_cuda(py, layer, queries, device.device_id, k);
            }
        }
        let q = Tensor::extract(queries, "queries")?;
        q.expect_ndim(2, "(kv_heads x gqa_group, head_dim)")?;
        let sel = match self.float_elem(&q)? {
            DType::F32 => self.select_f32(py, layer, &q, k)?,
            DType::F16 => self.select_widened::<f16>(py, layer, &q, k)?,
            DType::Bf16 => self.select_widened::<bf16>(py, layer, &q, k)?,
        };
        let ids: Vec<i64> = sel.ids().iter().map(|&t| i64::from(t)).collect();
        let ids = Array2::from_shape_vec((sel.kv_heads(), sel.len_per_head()), ids)
            .map_err(|e| input_error("internal", e.to_string()))?;
        Ok(PyArray2::from_owned_array(py, ids).into_any())
    }

    /// Copies the keys and values of `ids` of `layer`; returns `(keys, values)`.
    #[pyo3(signature = (layer, ids, keys_out=None, values_out=None))]
    fn gather<'py>(
        &self,
        py: Python<'py>,
        layer: i64,
        ids: &Bound<'py, PyAny>,
        keys_out: Option<Bound<'py, PyAny>>,
        values_out: Option<Bound<'py, PyAny>>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        let layer = self.layer_arg(layer)?;
        let ids = Tensor::extract(ids, "ids")?;
        ids.expect_ndim(2, "(kv_heads, len_per_head)")?;
        let (heads, per_head) = (ids.shape()[0], ids.shape()[1]);
        let sel = Selection::from_ids(layer, heads, read_ids(&ids)?).py_err()?;
        let d = self.inner.accelerator().config().pq.head_dim as usize;
        let shape = [heads, per_head, d];
        let dtype = self.store_dtype();
        let alloc = || -> Bound<'py, PyAny> {
            match dtype {
                DType::F32 => PyArray3::<f32>::zeros(py, shape, false).into_any(),
                DType::F16 => PyArray3::<f16>::zeros(py, shape, false).into_any(),
                DType::Bf16 => PyArray3::<u16>::zeros(py, shape, false).into_any(),
            }
        };
        let keys_out = keys_out.unwrap_or_else(alloc);
        let values_out = values_out.unwrap_or_else(alloc);
        let (k, v) = (
            Tensor::extract(&keys_out, "keys_out")?,
            Tensor::extract(&values_out, "values_out")?,
        );
        for t in [&k, &v] {
            t.check_output(elems_of(dtype), &shape)?;
        }
        if let (Some((a0, a1)), Some((b0, b1))) = (k.raw.byte_range(), v.raw.byte_range()) {
            if a0 < b1 && b0 < a1 {
                return Err(input_error(
                    "overlap",
                    "keys_out and values_out share memory: pass two distinct buffers",
                ));
            }
        }
        match dtype {
            DType::F32 => self.gather_as::<f32>(py, &sel, &k, &v)?,
            DType::F16 => self.gather_as::<f16>(py, &sel, &k, &v)?,
            DType::Bf16 => self.gather_as::<bf16>(py, &sel, &k, &v)?,
        }
        Ok((keys_out, values_out))
    }

    /// Blocks until no training of `layer` is in flight.
    fn wait_trained(&self, py: Python<'_>, layer: i64) -> PyResult<()> {
        let layer = self.layer_arg(layer)?;
        py.detach(|| self.inner.wait_trained(layer)).py_err()
    }

    /// Context length of `layer` (0 before its prefill).
    fn tokens(&self, layer: i64) -> PyResult<usize> {
        self.inner.tokens(self.layer_arg(layer)?).py_err()
    }

    /// A copy of one head's codebooks and code stream (waits for a pending training).
    fn head_codes(&self, py: Python<'_>, layer: i64, head: i64) -> PyResult<HeadCodes> {
        let layer = self.layer_arg(layer)?;
        let head = index_arg(head, "head", self.inner.options().kv_heads)?;
        let codes = py.detach(|| self.inner.head_codes(layer, head)).py_err()?;
        Ok(HeadCodes::new(py, codes))
    }

    /// Layers.
    #[getter]
    fn layers(&self) -> usize {
        self.inner.options().layers
    }

    /// KV heads per layer.
    #[getter]
    fn kv_heads(&self) -> usize {
        self.inner.options().kv_heads
    }

    /// Query heads per layer (`kv_heads x gqa_group`): the rows `select` takes.
    #[getter]
    fn q_heads(&self) -> usize {
        self.inner.options().kv_heads
            * self.inner.accelerator().config().retrieval.gqa_group as usize
    }

    /// Key dimension per head.
    #[getter]
    fn head_dim(&self) -> usize {
        self.inner.accelerator().config().pq.head_dim as usize
    }

    /// Element type of the KV store: `f32`, `f16` or `bf16`.
    #[getter(dtype)]
    fn dtype_name(&self) -> String {
        self.store_dtype().to_string()
    }

    /// Tokens each layer can hold.
    #[getter]
    fn capacity(&self) -> usize {
        self.inner.store().capacity()
    }

    /// Names of the devices, in index order.
    #[getter]
    fn devices(&self) -> Vec<&'static str> {
        self.inner.device_names()
    }

    /// The accelerator description.
    #[getter]
    fn accelerator(&self) -> Accelerator {
        Accelerator {
            inner: self.inner.accelerator().clone(),
        }
    }

    fn __repr__(&self) -> String {
        let o = self.inner.options();
        format!(
            "Index(accelerator={:?}, layers={}, kv_heads={}, dtype={:?}, devices={:?})",
            self.inner.accelerator().config().name,
            o.layers,
            o.kv_heads,
            o.dtype.to_string(),
            self.inner.device_names()
        )
    }
}
