//! K/V for the decoding loop after retrieval: where the old keys and values live, and how a
//! step's selected rows reach the attention kernel ([`super::attention`]).
//!
//! * [`HostKv`]: every layer's K and V in pinned, mapped host memory (`cuMemHostAlloc` with
//!   `DEVICEMAP | PORTABLE`), `[layers][kv_heads][capacity][head_dim]` elements of bf16 or
//!   f16 ([`KvType`], stored as their u16 bits). The host writes token ranges; kernels read
//!   the same memory over PCIe through its device address, which with unified addressing
//!   is the host address itself ([`HostKv::unified`]). Nothing is copied ahead of use.
//! * [`HostKv::gather`]: the zero-copy gather. A selection `[kv_heads][S]` of token ids on
//!   the GPU (a [`DeviceSelection`], as retrieval writes it) becomes K and V rows
//!   `[kv_heads][S][head_dim]` in device memory ([`GatherBuf`]), read straight from host
//!   memory with 16-byte loads, tens of thousands in flight.
//! * [`HotCache`]: consecutive decoding steps select mostly the same tokens, so the rows a
//!   layer gathered at the previous step stay on the GPU and only the misses cross the
//!   link. See below.
//! * [`DeviceKv`]: the whole K/V in device memory, for the dense "KV on GPU" reference and
//!   for the "copy the layer over, then attend" baseline ([`DeviceKv::copy_from_host`]).
//!
//! # The hot cache
//!
//! Per layer the cache holds the previous step's gathered rows (K and V buffers
//! `[kv_heads][S_prev][D]`, and the ids they came from) plus a map
//! `slot_of[kv_heads][capacity]` (i32): the row of each cached token in those buffers, or
//! -1. A step of a layer is four kernels on the stream, no host round trip:
//!
//! 1. `kv_gather` writes the new rows into a spare pair of buffers: a token whose map
//!    entry is `r >= 0` is copied from row `r` of the previous buffers (device to device),
//!    the others from host memory (PCIe). Each block adds its hit count to one u64 counter.
//! 2. `kv_map_clear` sets the previous ids' entries to -1,
//! 3. `kv_map_set` sets the new ids' entries to their rows (tokens selected again get
//!    their new row, as 3 runs after 2) and keeps a copy of the ids for the next step's
//!    clear (the caller's selection buffer is rewritten by the next search).
//! 4. The new buffers become the layer's cache; the previous ones become the spare.
//!
//! The spare is shared by all layers: after a layer's step its old buffers are free and
//! serve the next layer's gather, so double buffering costs one layer's rows in all, not
//! one per layer. The hit counter is read only when asked ([`HotCache::take_stats`], one
//! synchronisation), not per layer. Rows are copies: a token rewritten in host memory
//! after it was cached must be dropped with [`HotCache::invalidate`] (decoding never
//! rewrites old tokens).
//!
//! Memory, per layer: `2 * kv_heads * S * D * 2` bytes of rows, `4 * kv_heads * S` bytes of
//! ids, `4 * kv_heads * capacity` bytes of map; plus one spare set of rows and ids. (Rows
//! and ids are allocated an eighth larger than the selection that first needs them, so
//! that selections growing with the context keep their buffers.) For
//! Llama-3-8B (32 layers, 8 KV heads, D = 128, bf16) at a 512K-token capacity and a 10 %
//! selection (S = 52,429): 214.7 MB rows + 1.7 MB ids + 16.8 MB map = 233 MB per layer,
//! 7.5 GB for 32 layers plus 216 MB spare, against 68.7 GB for the whole K/V on the GPU.
//!
//! # Ordering
//!
//! Every kernel and copy of a [`Gpu`] runs on its one stream, in order. Host writes into a
//! [`HostKv`] first wait for that stream (a queued kernel may still read the rows), and so
//! does dropping it; [`HostKv::write_from_device`] is the asynchronous path for a step's
//! new rows, which are produced on the GPU.

use std::marker::PhantomData;
use std::sync::Arc;

use cudarc::driver::{
    result, sys, CudaFunction, CudaModule, CudaSlice, DevicePtr, DeviceRepr, LaunchConfig,
    PinnedHostSlice, PushKernelArg, ValidAsZeroBits,
};
use half::slice::{HalfBitsSliceExt, HalfFloatSliceExt};
use half::{bf16, f16};

use super::context::{fault, Gpu};
use super::retrieval::DeviceSelection;
use crate::RuntimeError;

mod cache;
mod device;
mod host;

pub use cache::{HitStats, HotCache};
pub use device::DeviceKv;
pub use host::{GatherBuf, HostKv};

const SOURCE: &str = include_str!("kv.cu");
/// Threads per block and items per thread of the copy kernels (`THREADS`, `UNROLL` of
/// `kv.cu`).
const THREADS: u32 = 256;
const UNROLL: u32 = 4;
/// Resident blocks per SM the copy grids are sized for: 8 x 256 threads fill an SM, and
/// with UNROLL loads each that is 8,192 16-byte reads in flight per SM.
const BLOCKS_PER_SM: u32 = 8;

/// Element type of the K/V the GPU kernels read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KvType {
    /// bfloat16.
    Bf16,
    /// IEEE binary16.
    F16,
}

impl KvType {
    /// Rounds `xs` to this type (round to nearest even) into `out`, as bits.
    ///
    /// # Panics
    /// If the lengths differ.
    pub fn encode(self, xs: &[f32], out: &mut [u16]) {
        match self {
            KvType::Bf16 => out
                .reinterpret_cast_mut::<bf16>()
                .convert_from_f32_slice(xs),
            KvType::F16 => out.reinterpret_cast_mut::<f16>().convert_from_f32_slice(xs),
        }
    }

    /// The value of one element's bits (exact in f32).
    pub fn decode(self, bits: u16) -> f32 {
        match self {
            KvType::Bf16 => bf16::from_bits(bits).to_f32(),
            KvType::F16 => f16::from_bits(bits).to_f32(),
        }
    }
}

impl std::fmt::Display for KvType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KvType::Bf16 => "bf16",
            KvType::F16 => "f16",
        })
    }
}

/// The shape of a K/V store: `layers x kv_heads x capacity x head_dim` elements per
/// tensor (K, V), each layer `[kv_heads][capacity][head_dim]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvShape {
    /// Layers.
    pub layers: usize,
    /// KV heads per layer.
    pub kv_heads: usize,
    /// Tokens per head a layer can hold.
    pub capacity: usize,
    /// Elements per row: a multiple of 8 (rows move as 16-byte vectors).
    pub head_dim: usize,
    /// Element type.
    pub dtype: KvType,
}

impl KvShape {
    /// Elements of one layer's K (or V).
    pub fn layer_elements(&self) -> usize {
        self.kv_heads * self.capacity * self.head_dim
    }

    /// Bytes of one layer's K and V together.
    pub fn layer_bytes(&self) -> usize {
        2 * 2 * self.layer_elements()
    }

    fn check(&self) -> Result<(), RuntimeError> {
        let bad = |found: String, expected: &str| {
            Err(RuntimeError::Shape {
                what: "K/V shape".into(),
                found,
                expected: expected.into(),
            })
        };
        if self.layers == 0 || self.kv_heads == 0 || self.capacity == 0 || self.head_dim == 0 {
            return bad(format!("{self:?}"), "no zero dimension");
        }
        if !self.head_dim.is_multiple_of(8) {
            return bad(
                format!("head_dim {}", self.head_dim),
                "a multiple of 8 (16-byte rows)",
            );
        }
        // Ids are u32 and cache rows i32; copy kernels count items in 32 bits.
        if self.capacity > i32::MAX as usize || self.items(self.capacity) > u32::MAX as usize {
            return bad(
                format!("{} tokens x {} heads", self.capacity, self.kv_heads),
                "kv_heads x capacity x head_dim / 4 below 2^32",
            );
        }
        Ok(())
    }

    /// Work items (16-byte vectors of K and V) of `tokens` rows per head.
    fn items(&self, tokens: usize) -> usize {
        2 * self.kv_heads * tokens * (self.head_dim / 8)
    }

    fn check_layer(&self, layer: usize) -> Result<(), RuntimeError> {
        if layer >= self.layers {
            return Err(RuntimeError::OutOfRange {
                what: "layer",
                value: layer,
                limit: self.layers,
            });
        }
        Ok(())
    }

    /// Tokens per head of a `[kv_heads][n][head_dim]` write of `len` elements at `at`.
    fn check_write(
        &self,
        layer: usize,
        at: usize,
        keys: usize,
        values: usize,
    ) -> Result<usize, RuntimeError> {
        self.check_layer(layer)?;
        let row = self.kv_heads * self.head_dim;
        if keys != values || !keys.is_multiple_of(row) {
            return Err(RuntimeError::Shape {
                what: format!("K/V rows written to layer {layer}"),
                found: format!("{keys} keys and {values} values"),
                expected: format!(
                    "as many values as keys, a multiple of kv_heads x head_dim = {row}"
                ),
            });
        }
        let n = keys / row;
        if at + n > self.capacity {
            return Err(RuntimeError::Capacity {
                layer,
                tokens: at + n,
                capacity: self.capacity,
            });
        }
        Ok(n)
    }
}

/// Rows of K and V on the GPU that the attention kernel reads: KV head `h`'s token `t`
/// starts at element `h * head_stride + t * head_dim` of both tensors. Borrowed from the
/// buffers that hold them ([`DeviceKv::rows`], [`GatherBuf::rows`], [`HotCache::rows`]).
#[derive(Debug, Clone, Copy)]
pub struct KvRows<'a> {
    pub(crate) k: u64,
    pub(crate) v: u64,
    pub(crate) kv_heads: usize,
    pub(crate) tokens: usize,
    pub(crate) head_stride: usize,
    pub(crate) head_dim: usize,
    pub(crate) dtype: KvType,
    _borrow: PhantomData<&'a ()>,
}

impl KvRows<'_> {
    /// KV heads.
    pub fn kv_heads(&self) -> usize {
        self.kv_heads
    }

    /// Tokens per head.
    pub fn tokens(&self) -> usize {
        self.tokens
    }

    /// Elements per row.
    pub fn head_dim(&self) -> usize {
        self.head_dim
    }

    /// Element type.
    pub fn dtype(&self) -> KvType {
        self.dtype
    }

    /// Keys and values copied back to the host as `[kv_heads][tokens][head_dim]` bits, after
    /// everything queued so far (for checks).
    pub fn to_host(&self, gpu: &Gpu) -> Result<(Vec<u16>, Vec<u16>), RuntimeError> {
        let row = self.tokens * self.head_dim;
        let st = gpu.stream();
        // Raw driver calls need the context current on this thread (cudarc's calls bind it).
        gpu.ctx()
            .bind_to_thread()
            .map_err(|e| fault("bind the context", e))?;
        let mut out = [
            vec![0u16; self.kv_heads * row],
            vec![0u16; self.kv_heads * row],
        ];
        for (dst, src) in out.iter_mut().zip([self.k, self.v]) {
            for (h, d) in dst.chunks_exact_mut(row.max(1)).enumerate() {
                let from = src + 2 * (h * self.head_stride) as u64;
                // SAFETY: head h's `tokens` rows lie inside the buffer the rows borrow from
                // (KvRows is only made by their owners); a copy into pageable memory returns
                // once it has finished.
                unsafe { result::memcpy_dtoh_async(d, from, st.cu_stream()) }
                    .map_err(|e| fault("copy K/V rows back", e))?;
            }
        }
        gpu.synchronize()?;
        let [k, v] = out;
        Ok((k, v))
    }
}

/// Copies `xs` to a new device buffer on `gpu`'s stream (tests, benches and callers
/// without another way to reach the GPU).
pub fn upload<T: DeviceRepr>(gpu: &Gpu, xs: &[T]) -> Result<CudaSlice<T>, RuntimeError> {
    gpu.stream()
        .clone_htod(xs)
        .map_err(|e| fault("upload a buffer", e))
}

/// A zeroed device buffer of `len` elements on `gpu`.
pub fn zeros<T: DeviceRepr + ValidAsZeroBits>(
    gpu: &Gpu,
    len: usize,
) -> Result<CudaSlice<T>, RuntimeError> {
    gpu.stream()
        .alloc_zeros(len.max(1))
        .map_err(|e| fault("allocate a buffer", e))
}

/// Copies a device buffer back to the host, after everything queued before it.
pub fn download<T: DeviceRepr>(gpu: &Gpu, xs: &CudaSlice<T>) -> Result<Vec<T>, RuntimeError> {
    gpu.stream()
        .clone_dtoh(xs)
        .map_err(|e| fault("copy a buffer back", e))
}

/// The copy kernels of `kv.cu`, compiled once per [`HostKv`] and shared with its caches.
struct Kernels {
    _module: Arc<CudaModule>,
    gather: CudaFunction,
    map_clear: CudaFunction,
    map_set: CudaFunction,
    store: CudaFunction,
    /// Streaming multiprocessors, for the copy grids.
    sms: u32,
}

impl Kernels {
    fn new(gpu: &Gpu) -> Result<Self, RuntimeError> {
        let module = gpu.compile("kv", &[], SOURCE)?;
        let load = |name: &str| {
            module
                .load_function(name)
                .map_err(|e| fault(&format!("kernel {name}"), e))
        };
        let sms = gpu
            .ctx()
            .attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
            .map_err(|e| fault("multiprocessor count", e))?;
        Ok(Self {
            gather: load("kv_gather")?,
            map_clear: load("kv_map_clear")?,
            map_set: load("kv_map_set")?,
            store: load("kv_store")?,
            _module: module,
            sms: sms.max(1) as u32,
        })
    }

    /// A grid-stride copy's launch: enough blocks to fill the GPU, no more than the items
    /// need.
    fn copy_config(&self, items: usize, per_thread: u32) -> LaunchConfig {
        let want = items.div_ceil((THREADS * per_thread) as usize).max(1);
        let blocks = want.min((self.sms * BLOCKS_PER_SM) as usize) as u32;
        LaunchConfig {
            grid_dim: (blocks, 1, 1),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        }
    }

    /// One thread per id, for the map kernels.
    fn id_config(ids: usize) -> LaunchConfig {
        LaunchConfig {
            grid_dim: (ids.div_ceil(THREADS as usize).max(1) as u32, 1, 1),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        }
    }
}

/// What one `kv_gather` launch reads and writes (device addresses; 0 for "none").
struct Gather {
    host_k: u64,
    host_v: u64,
    ids: u64,
    s: usize,
    slot_of: u64,
    prev_k: u64,
    prev_v: u64,
    s_prev: usize,
    out_k: u64,
    out_v: u64,
    hits: u64,
}
