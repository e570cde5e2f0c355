//! Decode attention on the GPU: one layer, one step, batch 1, grouped-query heads.
//!
//! Queries are f32 `[q_heads][D]` on the device (a model's projections end in f32 or are
//! widened for free; f32 keeps the query exact and the kernel simple), K/V are bf16 or f16
//! rows ([`KvRows`]: a gathered selection `[kv_heads][S][D]`, a hot cache's rows, or the
//! first N tokens of a [`super::DeviceKv`] layer), and the output is f32 `[q_heads][D]`:
//! `out[j] = softmax(q[j] . K[h]^T / sqrt(D)) V[h]` with `h = j / (q_heads / kv_heads)`.
//! The same kernels serve the dense reference (S = N) and sparse attention over a
//! selection.
//!
//! Flash-decoding split: the tokens of each KV head are cut into chunks, one block per
//! (chunk, KV head) computing all the head's query heads at once (each K/V row is read
//! once per group, not once per query head), keeping a numerically stable running softmax
//! (max, sum, weighted values) in fp32. A single chunk writes the output directly; several
//! write their partial states to a workspace and a second kernel merges them
//! (`attention.cu` says how). [`Attention::run`] picks the chunk length so that the blocks
//! fill the GPU; [`Attention::run_chunked`] takes it from the caller.

use std::sync::Arc;

use cudarc::driver::{
    sys, CudaFunction, CudaModule, CudaSlice, DevicePtr, LaunchConfig, PushKernelArg,
};

use super::context::{fault, Gpu};
use super::kv::{zeros, KvRows, KvType};
use crate::RuntimeError;

const SOURCE: &str = include_str!("attention.cu");
/// Threads per block of the chunk kernel (4 warps) and tokens per slot and step (2 x
/// UNROLL 16-byte loads in flight per lane).
const THREADS: usize = 128;
const UNROLL: usize = 4;
/// Threads per block of the combine kernel (`__launch_bounds__(128)` in attention.cu).
const COMBINE_THREADS: u32 = 128;
/// Blocks per SM the automatic split aims at, and the shortest chunk it makes: shorter
/// chunks would spend more on partial states than on rows.
const BLOCKS_PER_SM: usize = 4;
const MIN_CHUNK: usize = 256;
/// Static shared memory a block may use (the chunk kernel's per-warp states).
const SHARED_MAX: usize = 48 * 1024;

struct Kernels {
    _module: Arc<CudaModule>,
    bf16: CudaFunction,
    f16: CudaFunction,
    combine: CudaFunction,
}

/// Decode attention for one layer shape (query heads, KV heads, head dimension), compiled
/// for it, with a workspace for split runs.
pub struct Attention {
    gpu: Arc<Gpu>,
    q_heads: usize,
    kv_heads: usize,
    head_dim: usize,
    kernels: Kernels,
    sms: usize,
    /// Tokens a block reads per step: warps x tokens per warp x UNROLL.
    step: usize,
    /// Partial states of split runs: (max, sum) pairs and weighted values.
    ml: Option<CudaSlice<f32>>,
    acc: Option<CudaSlice<f32>>,
}

impl Attention {
    /// Compiles the kernels for `q_heads` query heads over `kv_heads` KV heads of
    /// `head_dim` elements (a multiple of 8, at most 256; `q_heads / kv_heads x head_dim`
    /// at most 3,072).
    pub fn new(
        gpu: Arc<Gpu>,
        q_heads: usize,
        kv_heads: usize,
        head_dim: usize,
    ) -> Result<Self, RuntimeError> {
        let bad = |found: String, expected: &str| RuntimeError::Shape {
            what: "attention heads".into(),
            found,
            expected: expected.into(),
        };
        if kv_heads == 0 || q_heads == 0 || !q_heads.is_multiple_of(kv_heads) || kv_heads > 65_535 {
            return Err(bad(
                format!("{q_heads} query heads, {kv_heads} KV heads"),
                "a positive multiple of the KV heads (at most 65,535)",
            ));
        }
        if head_dim == 0 || !head_dim.is_multiple_of(8) || head_dim > 256 {
            return Err(bad(
                format!("head_dim {head_dim}"),
                "a multiple of 8 up to 256",
            ));
        }
        let group = q_heads / kv_heads;
        let warps = THREADS / 32;
        if 4 * warps * group * (head_dim + 2) > SHARED_MAX {
            return Err(bad(
                format!("{group} query heads per KV head of {head_dim}"),
                "group x head_dim at most 3,072 (shared memory)",
            ));
        }
        let lanes = (head_dim / 8).next_power_of_two();
        let defines = [
            ("D", head_dim.to_string()),
            ("G", group.to_string()),
            ("LANES", lanes.to_string()),
            ("THREADS", THREADS.to_string()),
            ("UNROLL", UNROLL.to_string()),
        ];
        let module = gpu.compile("attention", &defines, SOURCE)?;
        let load = |name: &str| {
            module
                .load_function(name)
                .map_err(|e| fault(&format!("kernel {name}"), e))
        };
        let kernels = Kernels {
            bf16: load("attn_bf16")?,
            f16: load("attn_f16")?,
            combine: load("attn_combine")?,
            _module: module,
        };
        let sms = gpu
            .ctx()
            .attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
            .map_err(|e| fault("multiprocessor count", e))?;
        Ok(Self {
            gpu,
            q_heads,
            kv_heads,
            head_dim,
            kernels,
            sms: sms.max(1) as usize,
            step: warps * (32 / lanes) * UNROLL,
            ml: None,
            acc: None,
        })
    }

    /// Query heads.
    pub fn q_heads(&self) -> usize {
        self.q_heads
    }

    /// KV heads.
    pub fn kv_heads(&self) -> usize {
        self.kv_heads
    }

    /// Head dimension.
    pub fn head_dim(&self) -> usize {
        self.head_dim
    }

    /// The chunk length [`Attention::run`] uses for `tokens` tokens per head: enough
    /// chunks for BLOCKS_PER_SM blocks per SM over all KV heads, none shorter than
    /// MIN_CHUNK tokens, a multiple of the tokens a block reads per step. At most
    /// MIN_CHUNK tokens run as one chunk (no combine kernel).
    pub fn chunk_for(&self, tokens: usize) -> usize {
        let chunks = (self.sms * BLOCKS_PER_SM).div_ceil(self.kv_heads).max(1);
        tokens
            .div_ceil(chunks)
            .max(MIN_CHUNK)
            .next_multiple_of(self.step)
    }

    /// Queues `out = attention(q, kv)` (`q`, `out`: `[q_heads][D]` f32 on the device) with
    /// the automatic split ([`Attention::chunk_for`]).
    pub fn run(
        &mut self,
        q: &CudaSlice<f32>,
        kv: &KvRows<'_>,
        out: &mut CudaSlice<f32>,
    ) -> Result<(), RuntimeError> {
        let chunk = self.chunk_for(kv.tokens);
        self.run_chunked(q, kv, chunk, out)
    }

    /// As [`Attention::run`] with chunks of `chunk` tokens: `chunk >= S` runs one block
    /// per KV head that writes the output itself; anything shorter splits the tokens and
    /// merges the chunks' partial states in a second kernel.
    pub fn run_chunked(
        &mut self,
        q: &CudaSlice<f32>,
        kv: &KvRows<'_>,
        chunk: usize,
        out: &mut CudaSlice<f32>,
    ) -> Result<(), RuntimeError> {
        let (hq, d) = (self.q_heads, self.head_dim);
        if q.len() < hq * d || out.len() < hq * d {
            return Err(RuntimeError::Shape {
                what: "attention queries / output".into(),
                found: format!("{} / {} floats", q.len(), out.len()),
                expected: format!("{hq} heads x {d} each"),
            });
        }
        if kv.kv_heads != self.kv_heads || kv.head_dim != d {
            return Err(RuntimeError::Shape {
                what: "attention K/V rows".into(),
                found: format!("{} heads of {}", kv.kv_heads, kv.head_dim),
                expected: format!("{} heads of {d}", self.kv_heads),
            });
        }
        if kv.tokens == 0 || kv.tokens > u32::MAX as usize / 2 || chunk == 0 {
            return Err(RuntimeError::Shape {
                what: "attention tokens".into(),
                found: format!("{} tokens in chunks of {chunk}", kv.tokens),
                expected: "1 to 2^31 tokens, chunks of at least 1".into(),
            });
        }
        let s = kv.tokens;
        let chunk = chunk.min(s);
        let chunks = s.div_ceil(chunk);
        let group = hq / self.kv_heads;
        let st = self.gpu.stream().clone();
        let out_ptr = out.device_ptr(&st).0;
        let (part_ml, part_acc) = if chunks > 1 {
            let states = self.kv_heads * chunks * group;
            self.reserve(states)?;
            (
                self.ml.as_ref().expect("reserved").device_ptr(&st).0,
                self.acc.as_ref().expect("reserved").device_ptr(&st).0,
            )
        } else {
            (0, 0)
        };
        let q_ptr = q.device_ptr(&st).0;
        let head_vecs = (kv.head_stride / 8) as u64;
        let (s32, chunk32, chunks32) = (s as u32, chunk as u32, chunks as u32);
        let scale_log2 = (std::f64::consts::LOG2_E / (d as f64).sqrt()) as f32;
        let direct = if chunks == 1 { out_ptr } else { 0 };
        let kernel = match kv.dtype {
            KvType::Bf16 => &self.kernels.bf16,
            KvType::F16 => &self.kernels.f16,
        };
        let cfg = LaunchConfig {
            grid_dim: (chunks32, self.kv_heads as u32, 1),
            block_dim: (THREADS as u32, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: the arguments match attn_bf16 / attn_f16 / attn_combine. q and out hold
        // q_heads x D floats (checked); the K/V rows of `kv` hold kv_heads heads of `s`
        // tokens `head_stride` elements apart (KvRows is only made by the buffers that hold
        // them, which outlive the borrow); the workspace holds kv_heads x chunks x group
        // states (reserved above).
        unsafe {
            st.launch_builder(kernel)
                .arg(&q_ptr)
                .arg(&kv.k)
                .arg(&kv.v)
                .arg(&head_vecs)
                .arg(&s32)
                .arg(&chunk32)
                .arg(&scale_log2)
                .arg(&direct)
                .arg(&part_ml)
                .arg(&part_acc)
                .launch(cfg)
                .map_err(|e| fault("launch attention", e))?;
            if chunks > 1 {
                st.launch_builder(&self.kernels.combine)
                    .arg(&part_ml)
                    .arg(&part_acc)
                    .arg(&chunks32)
                    .arg(&out_ptr)
                    .launch(LaunchConfig {
                        grid_dim: (hq as u32, 1, 1),
                        block_dim: (COMBINE_THREADS, 1, 1),
                        shared_mem_bytes: 0,
                    })
                    .map_err(|e| fault("launch attention combine", e))?;
            }
        }
        Ok(())
    }

    /// Workspace for `states` partial states (grown, never shrunk).
    fn reserve(&mut self, states: usize) -> Result<(), RuntimeError> {
        if self.ml.as_ref().is_some_and(|m| m.len() >= 2 * states) {
            return Ok(());
        }
        self.ml = None;
        self.acc = None;
        self.ml = Some(zeros(&self.gpu, 2 * states)?);
        self.acc = Some(zeros(&self.gpu, states * self.head_dim)?);
        Ok(())
    }
}
