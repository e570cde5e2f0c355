// kvpq's decode-loop data movement for K/V offloaded to host memory (kv/mod.rs says the
// design). Every kernel here copies 16-byte vectors (8 bf16/f16 elements): a K or V row of
// D elements is D / 8 vectors, rows are 16-byte aligned (D % 8 == 0, buffers from
// cuMemAlloc / cuMemHostAlloc), and the element type does not matter (bits are copied).
//
// Host K/V are mapped pinned memory (CU_MEMHOSTALLOC_DEVICEMAP): kernels read and write
// them through their device address, each access a PCIe transaction (zero-copy). The
// host-memory pointers are deliberately not `const __restrict__`, so that the compiler
// keeps plain global loads for them rather than the read-only (non-coherent) path.
//
// Work item t of a copy of `rows` rows of both tensors is vector t % VECS of tensor
// (t / VECS) & 1 of row (t / VECS) >> 1: a warp reads whole K and V rows of the same token
// side by side (256-byte runs for D = 128), and K and V requests are in flight together.

typedef unsigned int u32;
typedef unsigned long long u64;

#define THREADS 256
#define UNROLL 4

__device__ __forceinline__ u32 warp_sum(u32 v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// Gathers a selection's K and V rows into out_k / out_v ([kv_heads][s][vecs] vectors).
// Row i of head h is token ids[h * s + i]. With a hot cache (slot_of != 0), a token whose
// map entry slot_of[h * capacity + id] is a row r >= 0 of the previous step's buffers
// prev_k / prev_v ([kv_heads][s_prev][vecs]) is copied from there (device memory); every
// other token comes from host memory (host_k / host_v: [kv_heads][capacity][vecs], heads
// host_head_vecs apart). Ids past the capacity give zero rows. `hits` (one u64) gains the
// number of rows found in the cache: one atomic per block.
//
// Each thread takes UNROLL items a grid apart and issues all their loads before its first
// store: with the grid sized to fill the GPU that keeps tens of thousands of 16-byte reads
// in flight, enough to cover PCIe's microsecond latency at full link bandwidth.
extern "C" __global__ void __launch_bounds__(THREADS)
kv_gather(const uint4* host_k, const uint4* host_v, u64 host_head_vecs, u32 capacity,
          const u32* __restrict__ ids, u32 s, u32 kv_heads, u32 vecs,
          const int* __restrict__ slot_of, const uint4* __restrict__ prev_k,
          const uint4* __restrict__ prev_v, u32 s_prev,
          uint4* __restrict__ out_k, uint4* __restrict__ out_v, u64* hits) {
    // The host checks that the item count fits 32 bits; the loop counts in 64 bits so that
    // stepping past the end cannot wrap around.
    const u64 total = (u64)kv_heads * s * 2 * vecs;
    const u64 stride = (u64)gridDim.x * THREADS;
    u32 my_hits = 0;
    for (u64 base = (u64)blockIdx.x * THREADS + threadIdx.x; base < total;
         base += stride * UNROLL) {
        uint4 r[UNROLL];
        uint4* dst[UNROLL];
#pragma unroll
        for (int u = 0; u < UNROLL; u++) {
            dst[u] = 0;
            const u64 t64 = base + u * stride;
            if (t64 >= total) continue;
            const u32 t = (u32)t64;
            const u32 vec = t % vecs, rest = t / vecs, tensor = rest & 1, row = rest >> 1;
            const u32 h = row / s;
            const u32 id = ids[row];
            r[u] = make_uint4(0, 0, 0, 0);
            if (id < capacity) {
                const int slot = slot_of ? slot_of[(u64)h * capacity + id] : -1;
                if (slot >= 0) {
                    const uint4* src = tensor ? prev_v : prev_k;
                    r[u] = src[((u64)h * s_prev + (u32)slot) * vecs + vec];
                    my_hits += (tensor == 0 && vec == 0);
                } else {
                    const uint4* src = tensor ? host_v : host_k;
                    r[u] = src[(u64)h * host_head_vecs + (u64)id * vecs + vec];
                }
            }
            dst[u] = (tensor ? out_v : out_k) + (u64)row * vecs + vec;
        }
#pragma unroll
        for (int u = 0; u < UNROLL; u++) {
            if (dst[u]) *dst[u] = r[u];
        }
    }
    // A block's hits, then one atomic: a global atomic per row would serialise on the
    // counter's address (hundreds of thousands of rows per layer).
    __shared__ u32 block_hits;
    if (threadIdx.x == 0) block_hits = 0;
    __syncthreads();
    my_hits = warp_sum(my_hits);
    if ((threadIdx.x & 31) == 0 && my_hits) atomicAdd(&block_hits, my_hits);
    __syncthreads();
    if (threadIdx.x == 0 && block_hits && hits) atomicAdd(hits, (u64)block_hits);
}

// Forgets the previous step's rows: slot_of[h * capacity + id] = -1 for its ids
// ([kv_heads][s]). Runs before kv_map_set, so tokens selected again get their new row.
extern "C" __global__ void __launch_bounds__(THREADS)
kv_map_clear(int* slot_of, u32 capacity, const u32* __restrict__ ids, u32 s, u32 kv_heads) {
    const u32 t = blockIdx.x * THREADS + threadIdx.x;
    if ((u64)t >= (u64)kv_heads * s) return;
    const u32 h = t / s, id = ids[t];
    if (id < capacity) slot_of[(u64)h * capacity + id] = -1;
}

// Records this step's rows: slot_of[h * capacity + ids[h][i]] = i, and keeps the ids
// (kept, [kv_heads][s]) for the next step's kv_map_clear: the caller's selection buffer
// is rewritten by the next search. Duplicate ids in a head leave one of their rows (they
// hold the same data).
extern "C" __global__ void __launch_bounds__(THREADS)
kv_map_set(int* slot_of, u32 capacity, const u32* __restrict__ ids, u32 s, u32 kv_heads,
           u32* __restrict__ kept) {
    const u32 t = blockIdx.x * THREADS + threadIdx.x;
    if ((u64)t >= (u64)kv_heads * s) return;
    const u32 h = t / s, i = t - h * s, id = ids[t];
    kept[t] = id;
    if (id < capacity) slot_of[(u64)h * capacity + id] = (int)i;
}

// Writes n tokens' rows from device buffers (src_k / src_v: [kv_heads][n][vecs]) into host
// memory at tokens at..at+n of every head: a decoding step's new K/V leave the GPU
// without a host round trip.
extern "C" __global__ void __launch_bounds__(THREADS)
kv_store(uint4* host_k, uint4* host_v, u64 host_head_vecs, u32 at,
         const uint4* __restrict__ src_k, const uint4* __restrict__ src_v, u32 n,
         u32 kv_heads, u32 vecs) {
    const u64 total = (u64)kv_heads * n * 2 * vecs;
    for (u64 t64 = (u64)blockIdx.x * THREADS + threadIdx.x; t64 < total;
         t64 += (u64)gridDim.x * THREADS) {
        const u32 t = (u32)t64;  // the host checks that the item count fits 32 bits
        const u32 vec = t % vecs, rest = t / vecs, tensor = rest & 1, row = rest >> 1;
        const u32 h = row / n, i = row - h * n;
        const uint4 x = (tensor ? src_v : src_k)[(u64)row * vecs + vec];
        (tensor ? host_v : host_k)[(u64)h * host_head_vecs + (u64)(at + i) * vecs + vec] = x;
    }
}
