//! The whole K/V on the GPU: the dense reference and the copy-everything baseline.

use super::*;

/// The whole K/V in device memory: `[layers]` of `[kv_heads][capacity][head_dim]` K and V.
pub struct DeviceKv {
    gpu: Arc<Gpu>,
    shape: KvShape,
    /// Per layer, K then V.
    layers: Vec<[CudaSlice<u16>; 2]>,
}

impl DeviceKv {
    /// Allocates `shape` (zeroed) on `gpu`.
    pub fn new(gpu: Arc<Gpu>, shape: KvShape) -> Result<Self, RuntimeError> {
        shape.check()?;
        let len = shape.layer_elements();
        let layers = (0..shape.layers)
            .map(|_| Ok([zeros(&gpu, len)?, zeros(&gpu, len)?]))
            .collect::<Result<_, RuntimeError>>()?;
        Ok(Self { gpu, shape, layers })
    }

    /// The shape.
    pub fn shape(&self) -> &KvShape {
        &self.shape
    }

    /// Writes tokens `at..at + n` of every head of `layer` from bits (`[kv_heads][n][D]`),
    /// one copy per head and tensor.
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
        if n == 0 {
            return Ok(());
        }
        let d = self.shape.head_dim;
        let stride = self.shape.capacity * d;
        let st = self.gpu.stream().clone();
        for (dst, src) in self.layers[layer].iter_mut().zip([keys, values]) {
            for (h, rows) in src.chunks_exact(n * d).enumerate() {
                let from = h * stride + at * d;
                st.memcpy_htod(rows, &mut dst.slice_mut(from..from + n * d))
                    .map_err(|e| fault("upload K/V rows", e))?;
            }
        }
        Ok(())
    }

    /// As [`DeviceKv::write_u16`] from f32 values, rounded to the element type.
    pub fn write_f32(
        &mut self,
        layer: usize,
        at: usize,
        keys: &[f32],
        values: &[f32],
    ) -> Result<(), RuntimeError> {
        self.shape
            .check_write(layer, at, keys.len(), values.len())?;
        let encode = |xs: &[f32]| {
            let mut out = vec![0u16; xs.len()];
            self.shape.dtype.encode(xs, &mut out);
            out
        };
        let (k, v) = (encode(keys), encode(values));
        self.write_u16(layer, at, &k, &v)
    }

    /// Queues a DMA copy of the first `tokens` tokens of every head of `host`'s
    /// `host_layer` into this store's `layer`: the "offloaded dense" baseline, moving the
    /// whole layer over PCIe at full link speed (one copy per tensor when the layouts
    /// match, else one per head).
    pub fn copy_from_host(
        &mut self,
        layer: usize,
        host: &HostKv,
        host_layer: usize,
        tokens: usize,
    ) -> Result<(), RuntimeError> {
        self.shape.check_layer(layer)?;
        host.shape.check_layer(host_layer)?;
        let (a, b) = (&self.shape, &host.shape);
        if (a.kv_heads, a.head_dim, a.dtype) != (b.kv_heads, b.head_dim, b.dtype) {
            return Err(RuntimeError::Shape {
                what: "host K/V copied to the GPU".into(),
                found: format!("{b:?}"),
                expected: format!("{a:?} (kv_heads, head_dim, dtype)"),
            });
        }
        if tokens > a.capacity.min(b.capacity) {
            return Err(RuntimeError::Capacity {
                layer,
                tokens,
                capacity: a.capacity.min(b.capacity),
            });
        }
        let d = a.head_dim;
        let runs: Vec<(usize, usize, usize)> = if tokens == a.capacity && tokens == b.capacity {
            vec![(0, 0, a.kv_heads * tokens * d)]
        } else {
            (0..a.kv_heads)
                .map(|h| (h * a.capacity * d, h * b.capacity * d, tokens * d))
                .collect()
        };
        let st = self.gpu.stream();
        // Raw driver calls need the context current on this thread (cudarc's calls bind it).
        self.gpu
            .ctx()
            .bind_to_thread()
            .map_err(|e| fault("bind the context", e))?;
        for (dst, src) in self.layers[layer].iter().zip(&host.layers[host_layer]) {
            let base = dst.device_ptr(st).0;
            let src = src.view()?;
            for &(to, from, len) in &runs {
                // SAFETY: both ranges lie inside their allocations (checked above); the
                // pinned source stays allocated and unchanged until the copy has run, as
                // HostKv's writes and drop wait for the stream first.
                unsafe {
                    result::memcpy_htod_async(
                        base + 2 * to as u64,
                        &src[from..from + len],
                        st.cu_stream(),
                    )
                }
                .map_err(|e| fault("copy host K/V to the GPU", e))?;
            }
        }
        Ok(())
    }

    /// The first `tokens` tokens of every head of `layer`, for the attention kernel.
    pub fn rows(&self, layer: usize, tokens: usize) -> Result<KvRows<'_>, RuntimeError> {
        self.shape.check_layer(layer)?;
        if tokens > self.shape.capacity {
            return Err(RuntimeError::Capacity {
                layer,
                tokens,
                capacity: self.shape.capacity,
            });
        }
        let [k, v] = &self.layers[layer];
        let s = self.gpu.stream();
        Ok(KvRows {
            k: k.device_ptr(s).0,
            v: v.device_ptr(s).0,
            kv_heads: self.shape.kv_heads,
            tokens,
            head_stride: self.shape.capacity * self.shape.head_dim,
            head_dim: self.shape.head_dim,
            dtype: self.shape.dtype,
            _borrow: PhantomData,
        })
    }
}
