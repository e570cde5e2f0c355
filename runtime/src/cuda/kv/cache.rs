//! The hot-token cache: the previous step's selected rows of every layer, kept on the GPU.

use super::*;

/// One layer's cached rows: the previous step's gather and the ids it came from.
struct Rows {
    k: CudaSlice<u16>,
    v: CudaSlice<u16>,
    ids: CudaSlice<u32>,
    /// Rows per head the buffers have room for, and hold.
    room: usize,
    s: usize,
}

#[derive(Default)]
struct Layer {
    /// `[kv_heads][capacity]` rows of cached tokens, -1 when absent (allocated at the
    /// layer's first gather).
    slot_of: Option<CudaSlice<i32>>,
    rows: Option<Rows>,
}

/// Hits of a [`HotCache`] since the last [`HotCache::take_stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HitStats {
    /// Selected rows found on the GPU.
    pub hits: u64,
    /// Rows selected (per head and layer).
    pub selected: u64,
}

impl HitStats {
    /// hits / selected (0 when nothing was selected).
    pub fn rate(&self) -> f64 {
        if self.selected == 0 {
            0.0
        } else {
            self.hits as f64 / self.selected as f64
        }
    }
}

/// The previous step's selected rows of every layer, kept on the GPU so that a step's
/// gather moves only the misses over PCIe. See the [module docs](self) for the design and
/// its memory.
pub struct HotCache {
    gpu: Arc<Gpu>,
    kernels: Arc<Kernels>,
    shape: KvShape,
    layers: Vec<Layer>,
    /// The buffers the next gather writes (the last layer's previous rows).
    spare: Option<Rows>,
    hits: CudaSlice<u64>,
    selected: u64,
}

impl HotCache {
    /// An empty cache for `host`'s layers (nothing is allocated until a layer's first
    /// gather).
    pub fn new(host: &HostKv) -> Result<Self, RuntimeError> {
        Ok(Self {
            gpu: host.gpu.clone(),
            kernels: host.kernels.clone(),
            shape: host.shape,
            layers: (0..host.shape.layers).map(|_| Layer::default()).collect(),
            spare: None,
            hits: zeros(&host.gpu, 1)?,
            selected: 0,
        })
    }

    /// Queues a step's gather of `sel` from `host`'s `layer`: hits come from the layer's
    /// cached rows, misses from host memory; the result becomes the layer's cache and is
    /// returned for the attention kernel. `host` must be the store the cache was made for
    /// (same shape; rows cached from another store would be served as hits).
    pub fn gather(
        &mut self,
        host: &HostKv,
        layer: usize,
        sel: &DeviceSelection,
    ) -> Result<KvRows<'_>, RuntimeError> {
        if host.shape != self.shape {
            return Err(RuntimeError::Shape {
                what: "host K/V of a hot cache".into(),
                found: format!("{:?}", host.shape),
                expected: format!("{:?}", self.shape),
            });
        }
        host.check_selection(layer, sel)?;
        let result = self.step(host, layer, sel);
        if result.is_err() {
            // The map may be half updated: forget the layer (its next gather starts cold).
            self.layers[layer] = Layer::default();
        }
        result?;
        self.selected += (sel.kv_heads * sel.per_head) as u64;
        Ok(self.rows(layer).expect("just gathered"))
    }

    fn step(
        &mut self,
        host: &HostKv,
        layer: usize,
        sel: &DeviceSelection,
    ) -> Result<(), RuntimeError> {
        let (heads, s) = (self.shape.kv_heads, sel.per_head);
        let st = self.gpu.stream().clone();
        if self.layers[layer].slot_of.is_none() {
            let len = heads * self.shape.capacity;
            // SAFETY: every byte is set to 0xff (-1 as i32) right after; the allocation
            // made the context current on this thread for the raw memset.
            let map = unsafe { st.alloc::<i32>(len) }
                .map_err(|e| fault("allocate a hot-cache map", e))?;
            // SAFETY: `map` is `len` i32 on this stream.
            unsafe {
                result::memset_d8_async(map.device_ptr(&st).0, 0xff, 4 * len, st.cu_stream())
            }
            .map_err(|e| fault("clear a hot-cache map", e))?;
            self.layers[layer].slot_of = Some(map);
        }
        let mut next = match self.spare.take() {
            Some(r) if r.room >= s => r,
            _ => {
                // An eighth more than asked: selections grow with the context, and a spare
                // that is just too small would be reallocated at every layer of every step.
                let room = s + s / 8;
                let len = (heads * room * self.shape.head_dim).max(1);
                let alloc = |n: usize| {
                    // SAFETY: device memory of plain integers; a step writes the rows and ids
                    // it later reads (kv_gather, kv_map_set) before anything reads them.
                    unsafe { st.alloc::<u16>(n) }.map_err(|e| fault("allocate hot-cache rows", e))
                };
                Rows {
                    k: alloc(len)?,
                    v: alloc(len)?,
                    // SAFETY: as above (kv_map_set writes the ids of the step).
                    ids: unsafe { st.alloc::<u32>((heads * room).max(1)) }
                        .map_err(|e| fault("allocate hot-cache ids", e))?,
                    room,
                    s: 0,
                }
            }
        };
        let l = &self.layers[layer];
        let map = l.slot_of.as_ref().expect("allocated above");
        let map_ptr = map.device_ptr(&st).0;
        let (prev_k, prev_v, prev_ids, s_prev) = match &l.rows {
            Some(r) => (
                r.k.device_ptr(&st).0,
                r.v.device_ptr(&st).0,
                r.ids.device_ptr(&st).0,
                r.s,
            ),
            None => (0, 0, 0, 0),
        };
        let ids = sel.ids.device_ptr(&st).0;
        let g = Gather {
            ids,
            s,
            slot_of: map_ptr,
            prev_k,
            prev_v,
            s_prev,
            out_k: next.k.device_ptr(&st).0,
            out_v: next.v.device_ptr(&st).0,
            hits: self.hits.device_ptr(&st).0,
            ..host.host_side(layer)
        };
        host.launch_gather(&g)?;
        let capacity = self.shape.capacity as u32;
        let h32 = heads as u32;
        let kept = next.ids.device_ptr(&st).0;
        // SAFETY: the arguments match kv_map_clear / kv_map_set; the map holds
        // kv_heads x capacity entries and ids are bounds-checked in the kernels; the id
        // buffers hold kv_heads x s_prev (previous) and kv_heads x s (this step's, and the
        // kept copy: room >= s) entries.
        unsafe {
            if s_prev > 0 {
                let sp = s_prev as u32;
                st.launch_builder(&self.kernels.map_clear)
                    .arg(&map_ptr)
                    .arg(&capacity)
                    .arg(&prev_ids)
                    .arg(&sp)
                    .arg(&h32)
                    .launch(Kernels::id_config(heads * s_prev))
                    .map_err(|e| fault("launch kv_map_clear", e))?;
            }
            if s > 0 {
                let s32 = s as u32;
                st.launch_builder(&self.kernels.map_set)
                    .arg(&map_ptr)
                    .arg(&capacity)
                    .arg(&ids)
                    .arg(&s32)
                    .arg(&h32)
                    .arg(&kept)
                    .launch(Kernels::id_config(heads * s))
                    .map_err(|e| fault("launch kv_map_set", e))?;
            }
        }
        next.s = s;
        // The previous rows are free once the kernels above have run (stream order): they
        // serve the next gather, of whichever layer.
        self.spare = self.layers[layer].rows.replace(next);
        Ok(())
    }

    /// The rows `layer`'s last gather left on the GPU.
    pub fn rows(&self, layer: usize) -> Option<KvRows<'_>> {
        let r = self.layers.get(layer)?.rows.as_ref()?;
        let s = r.k.stream();
        Some(KvRows {
            k: r.k.device_ptr(s).0,
            v: r.v.device_ptr(s).0,
            kv_heads: self.shape.kv_heads,
            tokens: r.s,
            head_stride: r.s * self.shape.head_dim,
            head_dim: self.shape.head_dim,
            dtype: self.shape.dtype,
            _borrow: PhantomData,
        })
    }

    /// Hits and selected rows since the last call (or since the cache was made), and
    /// starts counting again. Waits for the queued gathers.
    pub fn take_stats(&mut self) -> Result<HitStats, RuntimeError> {
        let hits = download(&self.gpu, &self.hits)?[0];
        self.gpu
            .stream()
            .memset_zeros(&mut self.hits)
            .map_err(|e| fault("reset the hit counter", e))?;
        let selected = std::mem::take(&mut self.selected);
        Ok(HitStats { hits, selected })
    }

    /// Forgets `layer`'s cached rows (their tokens changed in host memory): its next
    /// gather reads every row from host memory.
    pub fn invalidate(&mut self, layer: usize) {
        if let Some(l) = self.layers.get_mut(layer) {
            *l = Layer::default();
        }
    }

    /// Device memory the cache holds now, in bytes (rows, ids and maps of every layer, and
    /// the spare).
    pub fn device_bytes(&self) -> usize {
        let rows = |r: &Rows| 2 * r.k.num_bytes() + r.ids.num_bytes();
        self.layers
            .iter()
            .map(|l| {
                l.slot_of.as_ref().map_or(0, |m| m.num_bytes()) + l.rows.as_ref().map_or(0, rows)
            })
            .sum::<usize>()
            + self.spare.as_ref().map_or(0, rows)
    }
}
