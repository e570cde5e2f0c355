//! Retrieval on the GPU: a layer's searches (LUT build, scan, exact top-k) in four kernel
//! launches, bit-exact with the golden model (`retrieval.cu` says how). Codebooks and code
//! streams stay resident on the GPU per slot; a search copies only the code words appended
//! since the slot's previous search of the same stream ([`HeadQuery::stream`]).

use std::sync::Arc;

use cudarc::driver::{
    sys, CudaFunction, CudaGraph, CudaModule, CudaSlice, CudaStream, DevicePtr, LaunchConfig,
    PinnedHostSlice, PushKernelArg,
};
use kvpq_core::golden::{Hit, QuantCodebook, QueryResult};
use kvpq_core::spec::Accelerator;

use super::context::{fault, Gpu};
use crate::checks::Slots;
use crate::selection::{Selection, Split};
use crate::{HeadQuery, LayerSearches, RuntimeError};

const SOURCE: &str = include_str!("retrieval.cu");
/// Threads per block and tokens per thread: a block takes 2,048 tokens of one search, so
/// a 128K-token layer of 8 heads spreads over 512 blocks.
const THREADS: usize = 256;
const TOKENS_PER_THREAD: usize = 8;
const CHUNK: usize = THREADS * TOKENS_PER_THREAD;
/// Bits of a radix digit: 2,048 bins of shared memory per block.
const DIGIT_BITS: u32 = 11;
/// Bytes of a job's header (`struct Job` of `retrieval.cu`): three pointers, ten u32.
const JOB_HEADER: usize = 3 * 8 + 10 * 4;
/// Code words per search that travel in the job table (a decoding step appends a token or
/// a few); longer updates, such as a prefill's stream, are copied on their own.
const PATCH_MAX: usize = 64;

/// The kernels compiled for one accelerator's widths.
struct Kernels {
    _module: Arc<CudaModule>,
    patch: CudaFunction,
    scan: CudaFunction,
    refine: CudaFunction,
    count: CudaFunction,
    emit: CudaFunction,
}

/// A slot's codebook and code stream on the GPU.
struct Resident {
    codebook: CudaSlice<i32>,
    codes: Option<CudaSlice<u64>>,
    /// Words of `codes` holding the stream, and the stream they came from.
    words: usize,
    stream: Option<u64>,
}

/// Scratch sized for the largest call so far.
struct Workspace {
    heads: usize,
    keys: CudaSlice<u32>,
    hist: CudaSlice<u32>,
    counts: CudaSlice<u32>,
    /// The job table (jobs, then patch words) on the GPU, and its pinned host side: one
    /// asynchronous copy per call.
    table: CudaSlice<u8>,
    staging: PinnedHostSlice<u8>,
    /// Per search 4 words of state (threshold, need, shift, 0), then the hits.
    out: CudaSlice<u32>,
    /// The histograms may hold counts of a call that did not finish: clear them first.
    dirty: bool,
    /// Captured calls by (searches, chunks, patch): their pointers are this workspace's.
    graphs: Vec<((usize, u32, bool), Graph)>,
}

/// What a call does for one search: its hit count min(k, n), and the words of its code
/// stream that travel in the job table.
struct Plan {
    k: usize,
    patch: std::ops::Range<usize>,
}

/// Where [`GpuRetrieval::select_into`] writes a layer's selection: `[kv_heads][per_head]`
/// token ids on the GPU (sinks, the top-k's ids, the local window, each ascending), in a
/// buffer with room for `max_per_head` ids per head (the count grows with the context).
pub struct DeviceSelection {
    /// The ids: the first `kv_heads * per_head` are the selection.
    pub ids: CudaSlice<u32>,
    /// KV heads (rows).
    pub kv_heads: usize,
    /// Ids per head of the current selection.
    pub per_head: usize,
    /// The policy's split of the context they were selected from.
    pub split: Split,
}

impl DeviceSelection {
    /// Room for `kv_heads` rows of up to `max_per_head` ids on `gpu`.
    pub fn new(gpu: &Gpu, kv_heads: usize, max_per_head: usize) -> Result<Self, RuntimeError> {
        let ids = gpu
            .stream()
            .alloc_zeros::<u32>((kv_heads * max_per_head).max(1))
            .map_err(|e| fault("allocate a selection", e))?;
        Ok(Self {
            ids,
            kv_heads,
            per_head: 0,
            split: Split::default(),
        })
    }

    /// A selection holding `ids` (`[kv_heads][per_head]` row-major), made on the host.
    pub fn from_ids(
        gpu: &Gpu,
        kv_heads: usize,
        per_head: usize,
        ids: &[u32],
    ) -> Result<Self, RuntimeError> {
        if ids.len() != kv_heads * per_head {
            return Err(RuntimeError::Shape {
                what: "selection ids".into(),
                found: format!("{} ids", ids.len()),
                expected: format!("{kv_heads} x {per_head}"),
            });
        }
        let mut sel = Self::new(gpu, kv_heads, per_head)?;
        if !ids.is_empty() {
            gpu.stream()
                .memcpy_htod(ids, &mut sel.ids.slice_mut(..ids.len()))
                .map_err(|e| fault("upload a selection", e))?;
        }
        sel.per_head = per_head;
        Ok(sel)
    }

    /// Ids per head it has room for.
    pub fn max_per_head(&self) -> usize {
        self.ids.len() / self.kv_heads.max(1)
    }

    /// Copies a selection made on the host (by the `cpu`, `sim`, `xrt` or `board` device)
    /// to the GPU.
    pub fn upload(&mut self, gpu: &Gpu, sel: &Selection) -> Result<(), RuntimeError> {
        let (heads, per_head) = (sel.kv_heads(), sel.len_per_head());
        if heads != self.kv_heads || per_head > self.max_per_head() {
            return Err(RuntimeError::Shape {
                what: "device selection".into(),
                found: format!("{} x {} ids of room", self.kv_heads, self.max_per_head()),
                expected: format!("{heads} x {per_head} (the host selection)"),
            });
        }
        gpu.stream()
            .memcpy_htod(sel.ids(), &mut self.ids.slice_mut(..heads * per_head))
            .map_err(|e| fault("upload a selection", e))?;
        self.per_head = per_head;
        self.split = sel.split();
        Ok(())
    }

    /// Copies the ids to the host (`[kv_heads][per_head]` row-major), for checks.
    pub fn to_host(&self, gpu: &Gpu) -> Result<Vec<u32>, RuntimeError> {
        gpu.stream()
            .clone_dtoh(&self.ids.slice(..self.kv_heads * self.per_head))
            .map_err(|e| fault("copy a selection back", e))
    }
}

/// The GPU's retrieval engine for one accelerator description: what the `gpu` device runs
/// and what the decoding loop calls to keep selections on the GPU.
pub struct GpuRetrieval {
    gpu: Arc<Gpu>,
    acc: Accelerator,
    kernels: Kernels,
    slots: Slots,
    resident: Vec<Option<Resident>>,
    /// The index training stamp each slot's codebook came from (0: loaded directly).
    stamps: Vec<u64>,
    ws: Option<Workspace>,
    job_bytes: usize,
    passes: u32,
}

impl GpuRetrieval {
    /// Compiles the kernels for `acc`'s widths on `gpu`.
    pub fn new(gpu: Arc<Gpu>, acc: Accelerator) -> Result<Self, RuntimeError> {
        let w = acc.derived().widths;
        let layout = acc.derived().layout;
        let c = acc.config();
        let d = c.pq.head_dim as usize;
        let key_bits = w.score_bits.min(32);
        let passes = key_bits.div_ceil(DIGIT_BITS);
        let job_bytes = (JOB_HEADER + 4 * d).next_multiple_of(8);
        let lut_entries = c.pq.m as usize * w.codebook_size as usize;
        let defines = [
            ("D", d.to_string()),
            ("M", c.pq.m.to_string()),
            ("KC", w.codebook_size.to_string()),
            ("SUB", w.sub_dim.to_string()),
            ("CODE_BITS", layout.code_bits.to_string()),
            ("TOKEN_BITS", layout.token_bits().to_string()),
            ("TPB", layout.tokens_per_beat.to_string()),
            ("WPB", layout.words_per_beat().to_string()),
            ("LUT_BITS", w.lut_bits.to_string()),
            ("KEY_BITS", key_bits.to_string()),
            ("DIGIT_BITS", DIGIT_BITS.min(key_bits).to_string()),
            ("PASSES", passes.to_string()),
            ("THREADS", THREADS.to_string()),
            ("TPT", TOKENS_PER_THREAD.to_string()),
            ("NMAX", c.engine.max_tokens.to_string()),
            ("JOB_BYTES", job_bytes.to_string()),
            ("LUT_PER_THREAD", lut_entries.div_ceil(THREADS).to_string()),
        ];
        let module = gpu.compile("retrieval", &defines, SOURCE)?;
        let load = |name: &str| {
            module
                .load_function(name)
                .map_err(|e| fault(&format!("kernel {name}"), e))
        };
        let kernels = Kernels {
            patch: load("pq_patch")?,
            scan: load("pq_scan")?,
            refine: load("pq_refine")?,
            count: load("pq_count")?,
            emit: load("pq_emit")?,
            _module: module,
        };
        Ok(Self {
            gpu,
            acc,
            kernels,
            slots: Slots::default(),
            resident: Vec::new(),
            stamps: Vec::new(),
            ws: None,
            job_bytes,
            passes,
        })
    }

    /// The GPU it runs on.
    pub fn gpu(&self) -> &Arc<Gpu> {
        &self.gpu
    }

    /// The accelerator description whose semantics it follows.
    pub fn accelerator(&self) -> &Accelerator {
        &self.acc
    }

    /// Loads (or replaces) the codebook of `slot`; its resident code stream is dropped.
    pub fn load_codebook(
        &mut self,
        slot: usize,
        codebook: QuantCodebook,
    ) -> Result<(), RuntimeError> {
        let values = codebook
            .values
            .as_standard_layout()
            .iter()
            .copied()
            .collect::<Vec<_>>();
        // Validate first (a refused load keeps the old codebook), then upload.
        let mut slots = self.slots.clone();
        slots.load(&self.acc, slot, codebook)?;
        let buf = self
            .gpu
            .stream()
            .clone_htod(&values)
            .map_err(|e| fault("upload a codebook", e))?;
        if self.resident.len() <= slot {
            self.resident.resize_with(slot + 1, || None);
        }
        self.resident[slot] = Some(Resident {
            codebook: buf,
            codes: None,
            words: 0,
            stream: None,
        });
        self.slots = slots;
        if self.stamps.len() <= slot {
            self.stamps.resize(slot + 1, 0);
        }
        self.stamps[slot] = 0;
        Ok(())
    }

    /// [`select_into`](Self::select_into) for a layer an [`Index`](crate::Index) lends
    /// ([`Index::with_searches`](crate::Index::with_searches)), loading the codebooks of a
    /// training it has not seen.
    pub fn select_layer(
        &mut self,
        layer: &LayerSearches<'_>,
        out: &mut DeviceSelection,
    ) -> Result<(), RuntimeError> {
        for (q, cb) in layer.searches.iter().zip(&layer.codebooks) {
            if self.stamps.get(q.slot) != Some(&layer.stamp) {
                self.load_codebook(q.slot, (*cb).clone())?;
                self.stamps[q.slot] = layer.stamp;
            }
        }
        self.select_into(&layer.searches, &layer.split, out)
    }

    /// Runs `queries` and returns their hits on the host, as [`crate::Device::search`].
    pub fn search(&mut self, queries: &[HeadQuery<'_>]) -> Result<Vec<QueryResult>, RuntimeError> {
        let plans = self.prepare(queries)?;
        let ks: Vec<usize> = plans.iter().map(|p| p.k).collect();
        let total: usize = ks.iter().sum();
        self.launch(queries, &plans, None)?;
        let ws = self.ws.as_ref().expect("prepared");
        let out = self
            .gpu
            .stream()
            .clone_dtoh(&ws.out.slice(..4 * queries.len() + 2 * total))
            .map_err(|e| fault("copy results back", e))?;
        let (state, hits) = out.split_at(4 * queries.len());
        let mut at = 0;
        Ok(ks
            .iter()
            .enumerate()
            .map(|(i, &k)| {
                let h = &hits[2 * at..2 * (at + k)];
                at += k;
                QueryResult {
                    hits: h
                        .chunks_exact(2)
                        .map(|p| Hit {
                            index: p[0],
                            score: p[1] as i32,
                        })
                        .collect(),
                    shift: state[4 * i + 2],
                }
            })
            .collect())
    }

    /// Runs a layer's searches (one per KV head, in head order, each with `split.topk`
    /// results over the `split.middle` tokens of its stream) and writes the selection of
    /// every head into `out` on the GPU: the sinks, `split.sink` + each hit's stream
    /// position, then the local window. Nothing comes back to the host.
    pub fn select_into(
        &mut self,
        queries: &[HeadQuery<'_>],
        split: &Split,
        out: &mut DeviceSelection,
    ) -> Result<(), RuntimeError> {
        let per_head = split.sink + split.topk + split.local;
        if out.kv_heads != queries.len() || out.max_per_head() < per_head {
            return Err(RuntimeError::Shape {
                what: "device selection".into(),
                found: format!("{} x {} ids of room", out.kv_heads, out.max_per_head()),
                expected: format!(
                    "{} x {per_head} (searches x sinks + top-k + window)",
                    queries.len()
                ),
            });
        }
        if let Some((i, q)) = queries
            .iter()
            .enumerate()
            .find(|(_, q)| q.n_tokens != split.middle || q.k != split.topk)
        {
            return Err(RuntimeError::Shape {
                what: format!("search {i} of the layer"),
                found: format!("{} tokens, k = {}", q.n_tokens, q.k),
                expected: format!("{} tokens, k = {} (the split)", split.middle, split.topk),
            });
        }
        let plans = self.prepare(queries)?;
        let stream = self.gpu.stream().clone();
        let base = out.ids.device_ptr(&stream).0;
        let sel = (0..queries.len())
            .map(|h| base + (4 * h * per_head) as u64)
            .collect::<Vec<_>>();
        self.launch(queries, &plans, Some((&sel, split)))?;
        out.split = *split;
        out.per_head = per_head;
        Ok(())
    }

    /// Checks the searches, sizes the workspace and brings every slot's code stream up to
    /// date (short updates are left to the job table).
    fn prepare(&mut self, queries: &[HeadQuery<'_>]) -> Result<Vec<Plan>, RuntimeError> {
        self.slots.check(&self.acc, queries)?;
        let hits = queries.iter().map(|q| q.k.min(q.n_tokens)).sum();
        self.reserve(queries.len(), hits)?;
        let layout = self.acc.derived().layout;
        queries
            .iter()
            .map(|q| {
                let need = layout.beats_for(q.n_tokens) * layout.words_per_beat();
                Ok(Plan {
                    k: q.k.min(q.n_tokens),
                    patch: self.sync_codes(q.slot, &q.beats[..need], q.stream)?,
                })
            })
            .collect()
    }

    /// Makes slot's resident stream hold `beats`: copies long updates now and returns the
    /// range of words left for the job table.
    fn sync_codes(
        &mut self,
        slot: usize,
        beats: &[u64],
        stream: Option<u64>,
    ) -> Result<std::ops::Range<usize>, RuntimeError> {
        let wpb = self.acc.derived().layout.words_per_beat();
        let gpu = self.gpu.clone();
        let r = self.resident[slot]
            .as_mut()
            .expect("checked: the slot has a codebook");
        // The previous stream's last beat may have filled since: update from its start.
        let from = match stream {
            Some(s) if r.stream == Some(s) && beats.len() >= r.words => {
                r.words.saturating_sub(1) / wpb * wpb
            }
            _ => 0,
        };
        // Forget the stream until the update is in: a failed call must not leave it
        // claiming words it lacks.
        r.stream = None;
        let cap = r.codes.as_ref().map_or(0, |c| c.len());
        if beats.len() > cap {
            // Grow by half again, so a stream appended token by token reallocates rarely.
            let new_cap = beats.len().max(cap + cap / 2).max(1);
            let mut buf = gpu
                .stream()
                .alloc_zeros::<u64>(new_cap)
                .map_err(|e| fault("allocate a code stream", e))?;
            if let (Some(old), true) = (r.codes.as_ref(), from > 0) {
                gpu.stream()
                    .memcpy_dtod(&old.slice(..from), &mut buf.slice_mut(..from))
                    .map_err(|e| fault("move a code stream", e))?;
            }
            r.codes = Some(buf);
        }
        let mut patch = from..beats.len();
        if patch.len() > PATCH_MAX {
            let dst = r.codes.as_mut().expect("allocated above");
            gpu.stream()
                .memcpy_htod(&beats[from..], &mut dst.slice_mut(from..beats.len()))
                .map_err(|e| fault("upload codes", e))?;
            patch = beats.len()..beats.len();
        }
        r.words = beats.len();
        Ok(patch)
    }

    /// Marks the searches' streams current once their patches are queued.
    fn commit_streams(&mut self, queries: &[HeadQuery<'_>]) {
        for q in queries {
            if let Some(r) = self.resident[q.slot].as_mut() {
                r.stream = q.stream;
            }
        }
    }

    fn reserve(&mut self, heads: usize, hits: usize) -> Result<(), RuntimeError> {
        let c = self.acc.config();
        let nmax = c.engine.max_tokens as usize;
        let chunks = nmax.div_ceil(CHUNK);
        let out_len = 4 * heads + 2 * hits;
        if let Some(ws) = &self.ws {
            if ws.heads >= heads && ws.out.len() >= out_len {
                return Ok(());
            }
        }
        let heads = heads.max(self.ws.as_ref().map_or(0, |w| w.heads)).max(1);
        let out_len = out_len.max(4 * heads + 2 * heads * c.topk.k_max as usize);
        let s = self.gpu.stream();
        let alloc = |n: usize| {
            s.alloc_zeros::<u32>(n)
                .map_err(|e| fault("allocate the retrieval workspace", e))
        };
        let table = heads * (self.job_bytes + 8 * PATCH_MAX);
        // SAFETY: the staging buffer is written before any copy reads it.
        let staging = unsafe { self.gpu.ctx().alloc_pinned_with_flags::<u8>(table, 0) }
            .map_err(|e| fault("allocate the pinned job table", e))?;
        self.ws = Some(Workspace {
            heads,
            keys: alloc(heads * nmax)?,

            hist: alloc(heads * self.passes as usize * (1 << DIGIT_BITS))?,
            counts: alloc(heads * chunks * 2)?,
            table: s
                .alloc_zeros::<u8>(table)
                .map_err(|e| fault("allocate the job table", e))?,
            staging,
            out: alloc(out_len)?,
            dirty: false,
            graphs: Vec::new(),
        });
        Ok(())
    }

    /// Uploads the job table and queues the kernels: the patch (when a stream grew), the
    /// scan, one refinement per extra digit, the count and the emit.
    fn launch(
        &mut self,
        queries: &[HeadQuery<'_>],
        plans: &[Plan],
        sel: Option<(&[u64], &Split)>,
    ) -> Result<(), RuntimeError> {
        let result = self.queue(queries, plans, sel);
        match result {
            Ok(()) => self.commit_streams(queries),
            Err(_) => {
                if let Some(ws) = self.ws.as_mut() {
                    ws.dirty = true;
                }
            }
        }
        result
    }

    fn queue(
        &mut self,
        queries: &[HeadQuery<'_>],
        plans: &[Plan],
        sel: Option<(&[u64], &Split)>,
    ) -> Result<(), RuntimeError> {
        let stream = self.gpu.stream().clone();
        let e = |what: &'static str| move |err| fault(what, err);
        let ws = self.ws.as_mut().expect("reserved");
        let jb = self.job_bytes;
        let heads = queries.len();
        let table = ws
            .staging
            .as_mut_slice()
            .map_err(e("wait for the previous job table"))?;
        let mut hit_off = 0u32;
        let mut patch_at = 0usize;
        for (i, (q, plan)) in queries.iter().zip(plans).enumerate() {
            let r = self.resident[q.slot].as_ref().expect("checked");
            let codes = r.codes.as_ref().map_or(0, |c| c.device_ptr(&stream).0);
            let (sel_ptr, base, sink, local_start, local) = match sel {
                Some((ptrs, s)) => (
                    ptrs[i],
                    s.sink as u32,
                    s.sink as u32,
                    (s.tokens - s.local) as u32,
                    s.local as u32,
                ),
                None => (0, 0, 0, 0, 0),
            };
            let job = &mut table[i * jb..(i + 1) * jb];
            job[0..8].copy_from_slice(&codes.to_le_bytes());
            job[8..16].copy_from_slice(&r.codebook.device_ptr(&stream).0.to_le_bytes());
            job[16..24].copy_from_slice(&sel_ptr.to_le_bytes());
            let words = [
                q.n_tokens as u32,
                plan.k as u32,
                hit_off,
                base,
                sink,
                local_start,
                local,
                plan.patch.len() as u32,
                patch_at as u32,
                plan.patch.start as u32,
            ];
            for (j, w) in words.iter().enumerate() {
                job[24 + 4 * j..28 + 4 * j].copy_from_slice(&w.to_le_bytes());
            }
            for (j, v) in q.query.iter().enumerate() {
                job[JOB_HEADER + 4 * j..JOB_HEADER + 4 * j + 4].copy_from_slice(&v.to_le_bytes());
            }
            let at = heads * jb + 8 * patch_at;
            for (j, w) in q.beats[plan.patch.clone()].iter().enumerate() {
                table[at + 8 * j..at + 8 * j + 8].copy_from_slice(&w.to_le_bytes());
            }
            patch_at += plan.patch.len();
            hit_off += plan.k as u32;
        }
        stream
            .memcpy_htod(&ws.staging, &mut ws.table)
            .map_err(e("upload the job table"))?;
        if ws.dirty {
            stream
                .memset_zeros(&mut ws.hist)
                .map_err(e("clear the histograms"))?;
            ws.dirty = false;
        }
        let n_max = queries.iter().map(|q| q.n_tokens).max().unwrap_or(0);
        let chunks = n_max.div_ceil(CHUNK).max(1) as u32;
        // The kernels of a call depend only on the workspace, the search count, the grid
        // and whether streams grew: replay a CUDA graph of them (one launch on the host
        // instead of five, shorter gaps on the GPU), captured the first time.
        let key = (heads, chunks, patch_at > 0);
        if let Some((_, graph)) = ws.graphs.iter().find(|(k, _)| *k == key) {
            return graph.0.launch().map_err(e("launch the retrieval graph"));
        }
        stream
            .begin_capture(sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)
            .map_err(e("capture the retrieval kernels"))?;
        let queued = queue_kernels(
            &self.kernels,
            &stream,
            ws,
            heads,
            chunks,
            self.passes,
            key.2,
        );
        let graph = stream
            .end_capture(sys::CUgraphInstantiate_flags(0))
            .map_err(e("capture the retrieval kernels"));
        queued?;
        let graph = graph?.ok_or_else(|| fault("capture the retrieval kernels", "empty graph"))?;
        graph.launch().map_err(e("launch the retrieval graph"))?;
        ws.graphs.push((key, Graph(graph)));
        Ok(())
    }
}

/// A captured call, replayed by [`GpuRetrieval`] only (through `&mut self`).
struct Graph(CudaGraph);

// SAFETY: CUDA graphs must not be used from two threads at once; a `Graph` lives in a
// `Workspace` of one `GpuRetrieval` and is launched only through `&mut GpuRetrieval`.
unsafe impl Send for Graph {}

/// Queues a call's kernels on `st`: the patch (when streams grew), the scan, one
/// refinement per extra digit, the count and the emit.
fn queue_kernels(
    k: &Kernels,
    st: &Arc<CudaStream>,
    ws: &mut Workspace,
    heads: usize,
    chunks: u32,
    passes: u32,
    patch: bool,
) -> Result<(), RuntimeError> {
    let e = |what: &'static str| move |err| fault(what, err);
    let cfg = LaunchConfig {
        grid_dim: (chunks, heads as u32, 1),
        block_dim: (THREADS as u32, 1, 1),
        shared_mem_bytes: 0,
    };
    // State and hits share `out`: the kernels take its two parts as raw pointers.
    let state = ws.out.device_ptr(st).0;
    let hits = state + 16 * heads as u64;
    // SAFETY: the argument lists match the kernels' signatures in retrieval.cu; every
    // buffer is sized by `reserve` for `heads` searches of at most NMAX tokens and their
    // hits, and the job table (rewritten before every launch) points at live resident
    // buffers of the right lengths.
    unsafe {
        if patch {
            st.launch_builder(&k.patch)
                .arg(&ws.table)
                .arg(&(heads as i32))
                .launch(LaunchConfig {
                    grid_dim: (heads as u32, 1, 1),
                    ..cfg
                })
                .map_err(e("launch pq_patch"))?;
        }
        st.launch_builder(&k.scan)
            .arg(&ws.table)
            .arg(&mut ws.keys)
            .arg(&mut ws.hist)
            .arg(&state)
            .launch(cfg)
            .map_err(e("launch pq_scan"))?;
        for p in 1..passes as i32 {
            st.launch_builder(&k.refine)
                .arg(&ws.table)
                .arg(&ws.keys)
                .arg(&mut ws.hist)
                .arg(&p)
                .launch(cfg)
                .map_err(e("launch pq_refine"))?;
        }
        st.launch_builder(&k.count)
            .arg(&ws.table)
            .arg(&ws.keys)
            .arg(&ws.hist)
            .arg(&mut ws.counts)
            .arg(&state)
            .launch(cfg)
            .map_err(e("launch pq_count"))?;
        st.launch_builder(&k.emit)
            .arg(&ws.table)
            .arg(&ws.keys)
            .arg(&ws.counts)
            .arg(&state)
            .arg(&hits)
            .arg(&mut ws.hist)
            .launch(cfg)
            .map_err(e("launch pq_emit"))?;
    }
    Ok(())
}
