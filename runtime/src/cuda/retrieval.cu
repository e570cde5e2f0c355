// kvpq's retrieval on the GPU: LUT build, scan and exact top-k of one layer's searches,
// bit-exact with the golden model (docs/design.md section 3). blockIdx.y is the search
// (one KV head), blockIdx.x a chunk of CHUNK tokens. The host prepends the accelerator's
// widths as #defines: D, M, KC (centroids), SUB (D / M), CODE_BITS, TOKEN_BITS, TPB
// (tokens per beat), WPB (64-bit words per beat), LUT_BITS, KEY_BITS (score bits),
// DIGIT_BITS, PASSES, THREADS, TPT (tokens per thread), NMAX (tokens per search at most),
// JOB_BYTES, LUT_PER_THREAD.
//
// Top-k is a radix select on keys = score + 2^(KEY_BITS-1) (unsigned, same order): each
// pass histograms one digit of the keys that still tie with the threshold's prefix, so
// after PASSES passes the threshold key T and the number `need` of tokens equal to T that
// make k are known. A token is a hit if its key is above T, or equal to T and among the
// first `need` such tokens in index order: ties go to the smaller index, as in the golden
// model, and hits come out in ascending index.

#define CHUNK (THREADS * TPT)
#define BINS (1 << DIGIT_BITS)
#define WARPS (THREADS / 32)

typedef unsigned int u32;
typedef unsigned long long u64;

// One search, as the host lays it out (JOB_BYTES apart, 8-byte aligned); the query's
// D int32 values follow the header. After the jobs of a call come the patch words: code
// words appended to resident streams since their last search.
struct Job {
    u64 codes;       // device pointer: the head's packed code words
    u64 codebook;    // device pointer: int32 centroids [M][KC][SUB]
    u64 sel;         // device pointer: u32 ids of the whole selection, or 0
    u32 n;           // tokens to scan
    u32 k;           // hits wanted, at most n (0: the search is skipped)
    u32 hit_off;     // first (index, score) slot of its hits in `hits`
    u32 sel_base;    // token id of stream position 0 (the sinks come first)
    u32 sink;        // sink ids 0..sink written first to `sel`
    u32 local_start; // first id of the local window, written after the hits
    u32 local;       // tokens in the window
    u32 patch_len;   // code words to copy from the patch area ...
    u32 patch_src;   // ... starting at this word of it ...
    u32 patch_dst;   // ... to this word of `codes`
};

__device__ __forceinline__ const Job* job_of(const unsigned char* jobs, int j) {
    return (const Job*)(jobs + (size_t)j * JOB_BYTES);
}

__device__ __forceinline__ int digit_shift(int p) {
    int s = KEY_BITS - (p + 1) * DIGIT_BITS;
    return s < 0 ? 0 : s;
}

__device__ __forceinline__ int digit_width(int p) {
    return KEY_BITS - p * DIGIT_BITS - digit_shift(p);
}

__device__ __forceinline__ u32 key_of(int score) {
    return ((u32)score + (1u << (KEY_BITS - 1))) & (u32)((1ull << KEY_BITS) - 1);
}

__device__ __forceinline__ int score_of(u32 key) {
    return (int)key - (1 << (KEY_BITS - 1));
}

// Exclusive prefix sum over the block (in thread order); `total` gets the block's sum.
__device__ u32 block_exclusive_scan(u32 v, u32* total) {
    __shared__ u32 warp_sums[WARPS];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    u32 x = v;
    for (int o = 1; o < 32; o <<= 1) {
        u32 y = __shfl_up_sync(0xffffffffu, x, o);
        if (lane >= o) x += y;
    }
    if (lane == 31) warp_sums[warp] = x;
    __syncthreads();
    if (warp == 0) {
        u32 w = lane < WARPS ? warp_sums[lane] : 0;
        for (int o = 1; o < 32; o <<= 1) {
            u32 y = __shfl_up_sync(0xffffffffu, w, o);
            if (lane >= o) w += y;
        }
        if (lane < WARPS) warp_sums[lane] = w;
    }
    __syncthreads();
    u32 before = (warp > 0 ? warp_sums[warp - 1] : 0) + x - v;
    *total = warp_sums[WARPS - 1];
    __syncthreads();
    return before;
}

__device__ u32 block_sum(u32 v) {
    u32 total;
    block_exclusive_scan(v, &total);
    return total;
}

// The threshold's digit of pass p: the largest bin b with (tokens in bins above b) < rem
// <= (tokens in bins from b up); rem becomes what is still needed inside bin b.
__device__ void choose_bin(const u32* global_hist, int p, u32* prefix, u32* rem) {
    __shared__ u32 chosen[2];
    __shared__ u32 hist[BINS];
    int bins = 1 << digit_width(p);
    // Coalesced into shared memory first: the threads then read their runs from there.
    for (int b = threadIdx.x; b < bins; b += THREADS) hist[b] = global_hist[b];
    __syncthreads();
    int per = (bins + THREADS - 1) / THREADS;
    // Thread i holds bins hi_i, hi_i - 1, ... (descending), so thread order is key order.
    int hi = bins - 1 - (int)threadIdx.x * per;
    u32 mine = 0;
    for (int i = 0; i < per; i++) {
        int b = hi - i;
        if (b >= 0) mine += hist[b];
    }
    u32 total;
    u32 above = block_exclusive_scan(mine, &total);
    u32 r = *rem;
    if (above < r && r <= above + mine) {
        u32 acc = above;
        for (int i = 0; i < per; i++) {
            int b = hi - i;
            if (b < 0) break;
            u32 c = hist[b];
            if (r <= acc + c) {
                chosen[0] = (u32)b;
                chosen[1] = r - acc;
                break;
            }
            acc += c;
        }
    }
    __syncthreads();
    *prefix = (*prefix << digit_width(p)) | chosen[0];
    *rem = chosen[1];
    __syncthreads();
}

// Walks passes 0..passes-1 of search j's histograms: the threshold's prefix and what is
// still needed inside it.
__device__ void walk(const u32* hist, int j, u32 k, int passes, u32* prefix, u32* rem) {
    *prefix = 0;
    *rem = k;
    for (int p = 0; p < passes; p++) {
        choose_bin(hist + ((size_t)j * PASSES + p) * BINS, p, prefix, rem);
    }
}

// Copies each search's patch words into its resident code stream (before the scan).
extern "C" __global__ void __launch_bounds__(THREADS)
pq_patch(const unsigned char* jobs, int heads) {
    const Job* job = job_of(jobs, blockIdx.x);
    const u64* patch = (const u64*)(jobs + (size_t)heads * JOB_BYTES) + job->patch_src;
    u64* codes = (u64*)job->codes + job->patch_dst;
    for (u32 i = threadIdx.x; i < job->patch_len; i += THREADS) codes[i] = patch[i];
}

// LUT build (exact integer dot products, one block-floating-point shift for the table)
// into shared memory, then the scores of the chunk's tokens as keys, and the histogram of
// digit 0. Every block of a search builds the LUT itself (M x KC x SUB multiplies, fewer
// than the scan's reads): a separate kernel would cost more in launch and latency.
extern "C" __global__ void __launch_bounds__(THREADS)
pq_scan(const unsigned char* jobs, u32* keys, u32* hist, u32* state) {
    const Job* job = job_of(jobs, blockIdx.y);
    const u32 n = job->n, start = blockIdx.x * CHUNK;
    // Block 0 builds the LUT even with nothing to scan: the result carries its shift.
    if ((job->k == 0 || start >= n) && blockIdx.x != 0) return;
    __shared__ int lut[M * KC];
    __shared__ int q[D];
    __shared__ u32 h[BINS];
    __shared__ u64 warp_max[WARPS];
    const int* query = (const int*)((const unsigned char*)job + sizeof(Job));
    for (int d = threadIdx.x; d < D; d += THREADS) q[d] = query[d];
    for (int b = threadIdx.x; b < BINS; b += THREADS) h[b] = 0;
    __syncthreads();
    const int* cb = (const int*)job->codebook;
    long long acc[LUT_PER_THREAD];
    u64 max_abs = 0;
#pragma unroll
    for (int i = 0; i < LUT_PER_THREAD; i++) {
        int e = threadIdx.x + i * THREADS;
        long long a = 0;
        if (e < M * KC) {
            const int* qm = q + (e / KC) * SUB;
#if SUB % 4 == 0
            // 16-byte loads of the centroid row, all in flight at once.
            const int4* c = (const int4*)(cb + (size_t)e * SUB);
#pragma unroll
            for (int d = 0; d < SUB / 4; d++) {
                int4 v = c[d];
                a += (long long)qm[4 * d] * v.x + (long long)qm[4 * d + 1] * v.y +
                     (long long)qm[4 * d + 2] * v.z + (long long)qm[4 * d + 3] * v.w;
            }
#else
            const int* c = cb + (size_t)e * SUB;
#pragma unroll
            for (int d = 0; d < SUB; d++) a += (long long)qm[d] * c[d];
#endif
            u64 mag = a < 0 ? (u64)(-a) : (u64)a;
            max_abs = mag > max_abs ? mag : max_abs;
        }
        acc[i] = a;
    }
    for (int o = 16; o > 0; o >>= 1) {
        u64 y = __shfl_xor_sync(0xffffffffu, max_abs, o);
        max_abs = y > max_abs ? y : max_abs;
    }
    if ((threadIdx.x & 31) == 0) warp_max[threadIdx.x >> 5] = max_abs;
    __syncthreads();
    u64 top = 0;
    for (int w = 0; w < WARPS; w++) top = warp_max[w] > top ? warp_max[w] : top;
    int bit_length = top == 0 ? 0 : 64 - __clzll((long long)top);
    int shift = bit_length > LUT_BITS - 1 ? bit_length - (LUT_BITS - 1) : 0;
#pragma unroll
    for (int i = 0; i < LUT_PER_THREAD; i++) {
        int e = threadIdx.x + i * THREADS;
        if (e < M * KC) lut[e] = (int)(acc[i] >> shift);  // arithmetic: floor
    }
    if (blockIdx.x == 0 && threadIdx.x == 0) state[blockIdx.y * 4 + 2] = (u32)shift;
    __syncthreads();
    if (job->k == 0 || start >= n) return;

    const u64* words = (const u64*)job->codes;
    u32* out = keys + (size_t)blockIdx.y * NMAX;
    const u64 mask = (1ull << CODE_BITS) - 1;
#pragma unroll
    for (int i = 0; i < TPT; i++) {
        u32 t = start + i * THREADS + threadIdx.x;
        if (t >= n) continue;
        const u64* beat = words + (size_t)(t / TPB) * WPB;
        u32 bit = (t % TPB) * TOKEN_BITS;
        int score = 0;
#pragma unroll
        for (int m = 0; m < M; m++) {
            u32 pos = bit + m * CODE_BITS, w = pos >> 6, off = pos & 63;
            u64 v = __ldg(beat + w) >> off;
            if (off + CODE_BITS > 64) v |= __ldg(beat + w + 1) << (64 - off);
            score += lut[m * KC + (int)(v & mask)];
        }
        u32 key = key_of(score);
        out[t] = key;
        atomicAdd(&h[key >> digit_shift(0)], 1u);
    }
    __syncthreads();
    u32* g = hist + (size_t)blockIdx.y * PASSES * BINS;
    for (int b = threadIdx.x; b < (1 << digit_width(0)); b += THREADS) {
        if (h[b]) atomicAdd(&g[b], h[b]);
    }
}

// Pass p >= 1: the histogram of digit p over the keys that match the threshold's prefix
// so far.
extern "C" __global__ void __launch_bounds__(THREADS)
pq_refine(const unsigned char* jobs, const u32* keys, u32* hist, int p) {
    const Job* job = job_of(jobs, blockIdx.y);
    const u32 n = job->n, start = blockIdx.x * CHUNK;
    if (job->k == 0 || start >= n) return;
    __shared__ u32 h[BINS];
    for (int b = threadIdx.x; b < BINS; b += THREADS) h[b] = 0;
    u32 prefix, rem;
    walk(hist, blockIdx.y, job->k, p, &prefix, &rem);
    const u32* in = keys + (size_t)blockIdx.y * NMAX;
    const int above = digit_shift(p - 1), sh = digit_shift(p);
    const u32 dmask = (1u << digit_width(p)) - 1;
#pragma unroll
    for (int i = 0; i < TPT; i++) {
        u32 t = start + i * THREADS + threadIdx.x;
        if (t >= n) continue;
        u32 key = in[t];
        if ((key >> above) == prefix) atomicAdd(&h[(key >> sh) & dmask], 1u);
    }
    __syncthreads();
    u32* g = hist + ((size_t)blockIdx.y * PASSES + p) * BINS;
    for (int b = threadIdx.x; b <= (int)dmask; b += THREADS) {
        if (h[b]) atomicAdd(&g[b], h[b]);
    }
}

// The threshold, and per chunk the tokens above it and equal to it.
extern "C" __global__ void __launch_bounds__(THREADS)
pq_count(const unsigned char* jobs, const u32* keys, const u32* hist, u32* counts, u32* state) {
    const Job* job = job_of(jobs, blockIdx.y);
    const u32 n = job->n, start = blockIdx.x * CHUNK;
    if (job->k == 0 || start >= n) return;
    u32 threshold, need;
    walk(hist, blockIdx.y, job->k, PASSES, &threshold, &need);
    const u32* in = keys + (size_t)blockIdx.y * NMAX;
    u32 gt = 0, eq = 0;
#pragma unroll
    for (int i = 0; i < TPT; i++) {
        u32 t = start + i * THREADS + threadIdx.x;
        if (t >= n) continue;
        u32 key = in[t];
        gt += key > threshold;
        eq += key == threshold;
    }
    gt = block_sum(gt);
    eq = block_sum(eq);
    if (threadIdx.x == 0) {
        u32* c = counts + ((size_t)blockIdx.y * gridDim.x + blockIdx.x) * 2;
        c[0] = gt;
        c[1] = eq;
        if (blockIdx.x == 0) {
            state[blockIdx.y * 4 + 0] = threshold;
            state[blockIdx.y * 4 + 1] = need;
        }
    }
}

// The hits in ascending index: (index, score) pairs from hit_off, and with a selection
// buffer the ids sinks, sel_base + index of each hit, then the local window.
// Block 0 of each search also clears its histograms for the next call (pq_count, their
// last reader, has finished).
extern "C" __global__ void __launch_bounds__(THREADS)
pq_emit(const unsigned char* jobs, const u32* keys, const u32* counts, const u32* state,
        u32* hits, u32* hist) {
    const Job* job = job_of(jobs, blockIdx.y);
    const u32 n = job->n, k = job->k, start = blockIdx.x * CHUNK;
    u32* sel = (u32*)job->sel;
    if (blockIdx.x == 0) {
        u32* g = hist + (size_t)blockIdx.y * PASSES * BINS;
        for (u32 i = threadIdx.x; i < PASSES * BINS; i += THREADS) g[i] = 0;
    }
    if (sel && blockIdx.x == 0) {
        for (u32 i = threadIdx.x; i < job->sink; i += THREADS) sel[i] = i;
        for (u32 i = threadIdx.x; i < job->local; i += THREADS)
            sel[job->sink + k + i] = job->local_start + i;
    }
    if (k == 0 || start >= n) return;
    const u32 threshold = state[blockIdx.y * 4 + 0], need = state[blockIdx.y * 4 + 1];
    // Tokens above / equal to the threshold in the chunks before this one.
    const u32* c = counts + (size_t)blockIdx.y * gridDim.x * 2;
    u32 gt_before = 0, eq_before = 0;
    for (u32 b = threadIdx.x; b < blockIdx.x; b += THREADS) {
        gt_before += c[2 * b];
        eq_before += c[2 * b + 1];
    }
    gt_before = block_sum(gt_before);
    eq_before = block_sum(eq_before);
    // Each thread takes TPT consecutive tokens, so thread order is index order. The chunk's
    // keys are staged in shared memory by coalesced reads first, one pad word per TPT so
    // that the threads' consecutive runs fall in different banks.
    __shared__ u32 staged[CHUNK + CHUNK / TPT];
    const u32* in = keys + (size_t)blockIdx.y * NMAX;
#pragma unroll
    for (int i = 0; i < TPT; i++) {
        u32 at = i * THREADS + threadIdx.x, t = start + at;
        if (t < n) staged[at + at / TPT] = in[t];
    }
    __syncthreads();
    const u32* mine = staged + threadIdx.x * (TPT + 1);
    const u32 first = start + threadIdx.x * TPT;
    u32 gt = 0, eq = 0;
    for (int i = 0; i < TPT; i++) {
        if (first + i >= n) break;
        u32 key = mine[i];
        gt += key > threshold;
        eq += key == threshold;
    }
    // A chunk holds at most CHUNK (< 2^16) tokens: both counts scan as one word.
    u32 total;
    u32 packed = block_exclusive_scan((gt << 16) | eq, &total);
    gt = gt_before + (packed >> 16);
    eq = eq_before + (packed & 0xffffu);
    u32* out = hits + 2 * (size_t)job->hit_off;
    for (int i = 0; i < TPT; i++) {
        u32 t = first + i;
        if (t >= n) break;
        u32 key = mine[i];
        u32 pos;
        if (key > threshold) {
            pos = gt + (eq < need ? eq : need);
            gt++;
        } else if (key == threshold) {
            if (eq >= need) {
                eq++;
                continue;
            }
            pos = gt + eq;
            eq++;
        } else {
            continue;
        }
        out[2 * pos] = t;
        out[2 * pos + 1] = (u32)score_of(key);
        if (sel) sel[job->sink + pos] = job->sel_base + t;
    }
}
