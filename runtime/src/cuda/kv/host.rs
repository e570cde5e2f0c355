//! Where the old K/V live: pinned, mapped host memory, and the zero-copy gather from it.

use super::*;

/// One layer-tensor of pinned host memory: the allocation (freed on drop) and the address
/// kernels read it at.
pub(super) struct Pinned {
    buf: PinnedHostSlice<u16>,
    dev: u64,
}

impl Pinned {
    pub(super) fn view(&self) -> Result<&[u16], RuntimeError> {
        self.buf
            .as_slice()
            .map_err(|e| fault("read pinned host K/V", e))
    }
}

/// Every layer's K and V in pinned host memory that kernels read in place (zero-copy).
/// See the [module docs](self).
pub struct HostKv {
    pub(super) gpu: Arc<Gpu>,
    pub(super) shape: KvShape,
    pub(super) kernels: Arc<Kernels>,
    /// Per layer, K then V.
    pub(super) layers: Vec<[Pinned; 2]>,
    unified: bool,
}

impl HostKv {
    /// Allocates `shape` in pinned, mapped host memory (zeroed) and compiles the copy
    /// kernels. One allocation per layer and tensor: a few huge pinned regions are harder
    /// for the OS to find than many layer-sized ones.
    pub fn new(gpu: Arc<Gpu>, shape: KvShape) -> Result<Self, RuntimeError> {
        shape.check()?;
        let kernels = Arc::new(Kernels::new(&gpu)?);
        let len = shape.layer_elements();
        let mut unified = true;
        let mut layers = Vec::with_capacity(shape.layers);
        for _ in 0..shape.layers {
            let (k, k_same) = Self::alloc(&gpu, len)?;
            let (v, v_same) = Self::alloc(&gpu, len)?;
            unified &= k_same && v_same;
            layers.push([k, v]);
        }
        Ok(Self {
            gpu,
            shape,
            kernels,
            layers,
            unified,
        })
    }

    /// A zeroed pinned, mapped allocation and its device address (whether that is the
    /// host address).
    fn alloc(gpu: &Gpu, len: usize) -> Result<(Pinned, bool), RuntimeError> {
        let flags = sys::CU_MEMHOSTALLOC_DEVICEMAP | sys::CU_MEMHOSTALLOC_PORTABLE;
        // SAFETY: the memory is zeroed below before any reference to it is made.
        let mut buf = unsafe { gpu.ctx().alloc_pinned_with_flags::<u16>(len, flags) }
            .map_err(|e| fault("allocate pinned host K/V", e))?;
        let host = buf
            .as_mut_ptr()
            .map_err(|e| fault("address pinned host K/V", e))?;
        // SAFETY: `host` points at `len` u16 just allocated and used by nothing else.
        unsafe { std::ptr::write_bytes(host, 0, len) };
        let mut dev: sys::CUdeviceptr = 0;
        // SAFETY: `host` was allocated with CU_MEMHOSTALLOC_DEVICEMAP in the current context
        // (alloc_pinned_with_flags bound it to this thread); flags must be 0.
        unsafe { sys::cuMemHostGetDevicePointer_v2(&mut dev, host.cast(), 0) }
            .result()
            .map_err(|e| fault("device address of pinned host K/V", e))?;
        let same = dev == host as u64;
        Ok((Pinned { buf, dev }, same))
    }

    /// The shape.
    pub fn shape(&self) -> &KvShape {
        &self.shape
    }

    /// The GPU whose kernels read it.
    pub fn gpu(&self) -> &Arc<Gpu> {
        &self.gpu
    }

    /// Whether kernels read the memory at its host address (unified virtual addressing;
    /// always so on 64-bit Linux). Either way they use the driver's device address.
    pub fn unified(&self) -> bool {
        self.unified
    }

    /// Writes tokens `at..at + n` of every head of `layer` from bits: `keys` and `values`
    /// are `[kv_heads][n][head_dim]`. Waits for the GPU first.
    pub fn write_u16(
        &mut self,
        layer: usize,
        at: usize,
        keys: &[u16],
        values: &[u16],
    ) -> Result<(), RuntimeError> {
        let n = self
            .shape
            .check_write(layer, at, keys.len(), values.len())?;
        self.put(
            layer,
            at,
            n,
            |dst, src| dst.copy_from_slice(src),
            keys,
            values,
        )
    }

    /// As [`HostKv::write_u16`] from f32 values, rounded to the element type.
    pub fn write_f32(
        &mut self,
        layer: usize,
        at: usize,
        keys: &[f32],
        values: &[f32],
    ) -> Result<(), RuntimeError> {
        let n = self
            .shape
            .check_write(layer, at, keys.len(), values.len())?;
        let dtype = self.shape.dtype;
        self.put(
            layer,
            at,
            n,
            |dst, src| dtype.encode(src, dst),
            keys,
            values,
        )
    }

    fn put<T>(
        &mut self,
        layer: usize,
        at: usize,
        n: usize,
        copy: impl Fn(&mut [u16], &[T]),
        keys: &[T],
        values: &[T],
    ) -> Result<(), RuntimeError> {
        // A queued gather or copy may read these rows.
        self.gpu.synchronize()?;
        let d = self.shape.head_dim;
        let stride = self.shape.capacity * d;
        for (p, src) in self.layers[layer].iter_mut().zip([keys, values]) {
            let dst = p
                .buf
                .as_mut_slice()
                .map_err(|e| fault("write pinned host K/V", e))?;
            for (h, rows) in src.chunks_exact(n * d).enumerate() {
                let at = h * stride + at * d;
                copy(&mut dst[at..at + n * d], rows);
            }
        }
        Ok(())
    }

    /// Queues a write of `tokens` tokens' rows from device buffers (`keys`, `values`:
    /// `[kv_heads][tokens][head_dim]` bits) into tokens `at..at + tokens` of `layer`: a
    /// decoding step's new K/V, written by a kernel over PCIe without waiting.
    pub fn write_from_device(
        &mut self,
        layer: usize,
        at: usize,
        keys: &CudaSlice<u16>,
        values: &CudaSlice<u16>,
        tokens: usize,
    ) -> Result<(), RuntimeError> {
        let len = tokens * self.shape.kv_heads * self.shape.head_dim;
        self.shape.check_write(layer, at, len, len)?;
        if keys.len() < len || values.len() < len {
            return Err(RuntimeError::Shape {
                what: "device K/V rows to write".into(),
                found: format!("{} keys and {} values", keys.len(), values.len()),
                expected: format!("{len} each ({tokens} tokens)"),
            });
        }
        if tokens == 0 {
            return Ok(());
        }
        let s = self.gpu.stream();
        let [k, v] = &self.layers[layer];
        let (host_k, host_v) = (k.dev, v.dev);
        let (src_k, src_v) = (keys.device_ptr(s).0, values.device_ptr(s).0);
        let head_vecs = (self.shape.capacity * self.shape.head_dim / 8) as u64;
        let (at, n) = (at as u32, tokens as u32);
        let (heads, vecs) = (self.shape.kv_heads as u32, (self.shape.head_dim / 8) as u32);
        let cfg = self.kernels.copy_config(self.shape.items(tokens), 1);
        // SAFETY: the arguments match kv_store; the host rows at..at + tokens of every head
        // lie inside the layer's allocations (checked above), the sources hold `len`
        // elements, and the item count fits 32 bits (KvShape::check).
        unsafe {
            s.launch_builder(&self.kernels.store)
                .arg(&host_k)
                .arg(&host_v)
                .arg(&head_vecs)
                .arg(&at)
                .arg(&src_k)
                .arg(&src_v)
                .arg(&n)
                .arg(&heads)
                .arg(&vecs)
                .launch(cfg)
                .map_err(|e| fault("launch kv_store", e))?;
        }
        Ok(())
    }

    /// Layer `layer`'s K and V (`[kv_heads][capacity][head_dim]` bits), after everything
    /// queued so far has finished.
    pub fn layer(&self, layer: usize) -> Result<(&[u16], &[u16]), RuntimeError> {
        self.shape.check_layer(layer)?;
        self.gpu.synchronize()?;
        let [k, v] = &self.layers[layer];
        Ok((k.view()?, v.view()?))
    }

    /// Queues the zero-copy gather of `sel` from `layer` into `out`: row `i` of head `h` of
    /// `out` is token `sel.ids[h][i]` (ids past the capacity give zero rows).
    pub fn gather(
        &self,
        layer: usize,
        sel: &DeviceSelection,
        out: &mut GatherBuf,
    ) -> Result<(), RuntimeError> {
        self.check_selection(layer, sel)?;
        let want = (
            self.shape.kv_heads,
            sel.per_head,
            self.shape.head_dim,
            self.shape.dtype,
        );
        let found = (out.kv_heads, out.room, out.head_dim, out.dtype);
        if (found.0, found.2, found.3) != (want.0, want.2, want.3) || found.1 < want.1 {
            return Err(RuntimeError::Shape {
                what: "gather buffer".into(),
                found: format!("{found:?}"),
                expected: format!("{want:?} (kv_heads, rows per head at least, head_dim, dtype)"),
            });
        }
        out.per_head = sel.per_head;
        let s = self.gpu.stream();
        let g = Gather {
            ids: sel.ids.device_ptr(s).0,
            s: sel.per_head,
            slot_of: 0,
            prev_k: 0,
            prev_v: 0,
            s_prev: 0,
            out_k: out.k.device_ptr(s).0,
            out_v: out.v.device_ptr(s).0,
            hits: 0,
            ..self.host_side(layer)
        };
        self.launch_gather(&g)
    }

    pub(super) fn check_selection(
        &self,
        layer: usize,
        sel: &DeviceSelection,
    ) -> Result<(), RuntimeError> {
        self.shape.check_layer(layer)?;
        if sel.kv_heads != self.shape.kv_heads || sel.ids.len() < sel.kv_heads * sel.per_head {
            return Err(RuntimeError::Shape {
                what: "selection".into(),
                found: format!("{} heads x {}", sel.kv_heads, sel.per_head),
                expected: format!("{} heads (the K/V's)", self.shape.kv_heads),
            });
        }
        if self.shape.items(sel.per_head) > u32::MAX as usize {
            return Err(RuntimeError::Shape {
                what: "selection".into(),
                found: format!("{} ids per head", sel.per_head),
                expected: "kv_heads x ids x head_dim / 4 below 2^32".into(),
            });
        }
        Ok(())
    }

    /// A gather's host side for `layer`; the rest is filled in by the caller.
    pub(super) fn host_side(&self, layer: usize) -> Gather {
        let [k, v] = &self.layers[layer];
        Gather {
            host_k: k.dev,
            host_v: v.dev,
            ids: 0,
            s: 0,
            slot_of: 0,
            prev_k: 0,
            prev_v: 0,
            s_prev: 0,
            out_k: 0,
            out_v: 0,
            hits: 0,
        }
    }

    pub(super) fn launch_gather(&self, g: &Gather) -> Result<(), RuntimeError> {
        if g.s == 0 {
            return Ok(());
        }
        let head_vecs = (self.shape.capacity * self.shape.head_dim / 8) as u64;
        let capacity = self.shape.capacity as u32;
        let (s, s_prev) = (g.s as u32, g.s_prev as u32);
        let (heads, vecs) = (self.shape.kv_heads as u32, (self.shape.head_dim / 8) as u32);
        let cfg = self.kernels.copy_config(self.shape.items(g.s), UNROLL);
        let st = self.gpu.stream();
        // SAFETY: the arguments match kv_gather. The ids hold kv_heads x s entries (checked
        // by the callers); ids are bounds-checked against the capacity in the kernel; the
        // outputs hold kv_heads x s rows; a cache map (slot_of != 0) holds
        // kv_heads x capacity entries whose rows r >= 0 are rows of prev_k / prev_v
        // (kv_heads x s_prev rows), as HotCache maintains; the item count fits 32 bits.
        unsafe {
            st.launch_builder(&self.kernels.gather)
                .arg(&g.host_k)
                .arg(&g.host_v)
                .arg(&head_vecs)
                .arg(&capacity)
                .arg(&g.ids)
                .arg(&s)
                .arg(&heads)
                .arg(&vecs)
                .arg(&g.slot_of)
                .arg(&g.prev_k)
                .arg(&g.prev_v)
                .arg(&s_prev)
                .arg(&g.out_k)
                .arg(&g.out_v)
                .arg(&g.hits)
                .launch(cfg)
                .map_err(|e| fault("launch kv_gather", e))?;
        }
        Ok(())
    }
}

impl Drop for HostKv {
    fn drop(&mut self) {
        // Queued kernels may still read or write the pinned memory freed next.
        let _ = self.gpu.synchronize();
    }
}

/// A gathered selection on the GPU: K and V rows `[kv_heads][per_head][head_dim]`.
pub struct GatherBuf {
    k: CudaSlice<u16>,
    v: CudaSlice<u16>,
    kv_heads: usize,
    /// Rows per head of the last gather, and rows per head there is room for (selections
    /// grow with the context).
    per_head: usize,
    room: usize,
    head_dim: usize,
    dtype: KvType,
}

impl GatherBuf {
    /// Room for up to `per_head` rows of each of `kv_heads` heads.
    pub fn new(
        gpu: &Gpu,
        kv_heads: usize,
        per_head: usize,
        head_dim: usize,
        dtype: KvType,
    ) -> Result<Self, RuntimeError> {
        let len = kv_heads * per_head * head_dim;
        Ok(Self {
            k: zeros(gpu, len)?,
            v: zeros(gpu, len)?,
            kv_heads,
            per_head,
            room: per_head,
            head_dim,
            dtype,
        })
    }

    /// The rows, for the attention kernel.
    pub fn rows(&self) -> KvRows<'_> {
        let s = self.k.stream();
        KvRows {
            k: self.k.device_ptr(s).0,
            v: self.v.device_ptr(s).0,
            kv_heads: self.kv_heads,
            tokens: self.per_head,
            head_stride: self.per_head * self.head_dim,
            head_dim: self.head_dim,
            dtype: self.dtype,
            _borrow: PhantomData,
        }
    }

    /// Keys (bits), `[kv_heads][per_head][head_dim]`.
    pub fn keys(&self) -> &CudaSlice<u16> {
        &self.k
    }

    /// Values (bits), `[kv_heads][per_head][head_dim]`.
    pub fn values(&self) -> &CudaSlice<u16> {
        &self.v
    }

    /// Keys and values copied back to the host, after everything queued so far.
    pub fn to_host(&self, gpu: &Gpu) -> Result<(Vec<u16>, Vec<u16>), RuntimeError> {
        let len = self.kv_heads * self.per_head * self.head_dim;
        let mut k = download(gpu, &self.k)?;
        let mut v = download(gpu, &self.v)?;
        k.truncate(len);
        v.truncate(len);
        Ok((k, v))
    }
}
