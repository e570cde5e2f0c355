// kvpq's decode attention: one layer, one step, batch 1, grouped-query heads, flash-decoding
// split over the tokens (attention.rs says how it is called). The host prepends:
//   D      head dimension (a multiple of 8, at most 256)
//   G      query heads per KV head (query head j reads KV head j / G)
//   LANES  lanes that share a token: D / 8 rounded up to a power of two (a lane holds one
//          16-byte vector, 8 elements, of the K and V rows)
//   THREADS, UNROLL
//
// Block (c, h) takes tokens [c * chunk, min(S, (c + 1) * chunk)) of KV head h for its G
// query heads. A warp reads 32 / LANES tokens at once (a "slot" each), the block
// WARPS * SLOTS; every slot keeps its own running softmax state (max m, sum l, acc[D]) in
// registers, UNROLL tokens per step so that 2 * UNROLL row loads per lane are in flight.
// The block's slots are merged through shared memory, then either the block writes the
// normalised output (one chunk: no second kernel) or its partial state (m, l, acc) goes to
// the workspace and attn_combine merges the chunks.
//
// Numbers: scores are in log2 units (the query is scaled by log2(e) / sqrt(D) once, then
// exp2f), accumulation is fp32 throughout, and every state merge rescales by exp2f of a
// difference of maxima (never of an absolute score), so nothing overflows for any length.

typedef unsigned int u32;
typedef unsigned long long u64;

#define WARPS (THREADS / 32)
#define VECS (D / 8)
#define SLOTS (32 / LANES)
#define STRIDE (WARPS * SLOTS)
#define FULL 0xffffffffu
#define NEG_INF __uint_as_float(0xff800000u)

__device__ __forceinline__ float f16_to_f32(unsigned short h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}

// The 8 elements of a 16-byte vector (element 2i is the low half of word i), exactly.
template <bool BF16>
__device__ __forceinline__ void widen8(uint4 v, float* x) {
    const u32 w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int i = 0; i < 4; i++) {
        if (BF16) {
            x[2 * i] = __uint_as_float(w[i] << 16);
            x[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
        } else {
            x[2 * i] = f16_to_f32((unsigned short)(w[i] & 0xffffu));
            x[2 * i + 1] = f16_to_f32((unsigned short)(w[i] >> 16));
        }
    }
}

// (m, l, acc) <- the merge of two softmax states over disjoint token sets. A state that has
// seen no token has m = -inf, l = 0, acc = 0; two of them stay so (no exp2f(-inf + inf)).
__device__ __forceinline__ void merge8(float& m, float& l, float* acc, float m2, float l2,
                                       const float* acc2) {
    const float mn = fmaxf(m, m2);
    if (mn == NEG_INF) return;
    const float a = exp2f(m - mn), b = exp2f(m2 - mn);
    l = l * a + l2 * b;
#pragma unroll
    for (int i = 0; i < 8; i++) acc[i] = acc[i] * a + acc2[i] * b;
    m = mn;
}

template <bool BF16>
__device__ __forceinline__ void attn_chunk(const float* __restrict__ q,
                                           const uint4* __restrict__ k,
                                           const uint4* __restrict__ v, u64 head_vecs, u32 s,
                                           u32 chunk, float scale_log2, float* __restrict__ out,
                                           float* __restrict__ part_ml,
                                           float* __restrict__ part_acc) {
    __shared__ float sm_m[WARPS][G];
    __shared__ float sm_l[WARPS][G];
    __shared__ float sm_acc[WARPS][G][D];
    const u32 h = blockIdx.y, c = blockIdx.x, chunks = gridDim.x;
    const u32 t0 = c * chunk;
    const u32 t1 = min(s, t0 + chunk);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int sub = lane % LANES;
    const u32 slot = warp * SLOTS + lane / LANES;
    // Lanes past D / 8 (D / 8 not a power of two) hold zeros and only join the reductions.
    const bool live = sub < VECS;

    float qs[G][8];
#pragma unroll
    for (int g = 0; g < G; g++) {
#pragma unroll
        for (int i = 0; i < 8; i++) {
            qs[g][i] = live ? q[(h * G + g) * D + sub * 8 + i] * scale_log2 : 0.0f;
        }
    }
    float m[G], l[G], acc[G][8];
#pragma unroll
    for (int g = 0; g < G; g++) {
        m[g] = NEG_INF;
        l[g] = 0.0f;
#pragma unroll
        for (int i = 0; i < 8; i++) acc[g][i] = 0.0f;
    }
    const uint4* kh = k + (u64)h * head_vecs + sub;
    const uint4* vh = v + (u64)h * head_vecs + sub;

    // The bound is the same for the whole block, so every lane runs every shuffle.
    for (u32 base = t0; base < t1; base += STRIDE * UNROLL) {
        uint4 kr[UNROLL], vr[UNROLL];
        bool ok[UNROLL];
#pragma unroll
        for (int u = 0; u < UNROLL; u++) {
            const u32 t = base + u * STRIDE + slot;
            ok[u] = t < t1;
            kr[u] = make_uint4(0, 0, 0, 0);
            vr[u] = make_uint4(0, 0, 0, 0);
            if (ok[u] && live) {
                kr[u] = kh[(u64)t * VECS];
                vr[u] = vh[(u64)t * VECS];
            }
        }
        float sc[UNROLL][G];
#pragma unroll
        for (int u = 0; u < UNROLL; u++) {
            float kx[8];
            widen8<BF16>(kr[u], kx);
#pragma unroll
            for (int g = 0; g < G; g++) {
                float p = 0.0f;
#pragma unroll
                for (int i = 0; i < 8; i++) p = fmaf(qs[g][i], kx[i], p);
#pragma unroll
                for (int o = LANES / 2; o > 0; o >>= 1) p += __shfl_xor_sync(FULL, p, o);
                sc[u][g] = ok[u] ? p : NEG_INF;
            }
        }
        float vx[UNROLL][8];
#pragma unroll
        for (int u = 0; u < UNROLL; u++) widen8<BF16>(vr[u], vx[u]);
#pragma unroll
        for (int g = 0; g < G; g++) {
            float mx = m[g];
#pragma unroll
            for (int u = 0; u < UNROLL; u++) mx = fmaxf(mx, sc[u][g]);
            if (mx == NEG_INF) continue;  // this slot has no token yet
            const float a = exp2f(m[g] - mx);
            l[g] *= a;
#pragma unroll
            for (int i = 0; i < 8; i++) acc[g][i] *= a;
#pragma unroll
            for (int u = 0; u < UNROLL; u++) {
                const float p = exp2f(sc[u][g] - mx);
                l[g] += p;
#pragma unroll
                for (int i = 0; i < 8; i++) acc[g][i] = fmaf(p, vx[u][i], acc[g][i]);
            }
            m[g] = mx;
        }
    }

    // The warp's slots: butterfly over the lane bits above LANES.
#pragma unroll
    for (int o = LANES; o < 32; o <<= 1) {
#pragma unroll
        for (int g = 0; g < G; g++) {
            const float m2 = __shfl_xor_sync(FULL, m[g], o);
            const float l2 = __shfl_xor_sync(FULL, l[g], o);
            float a2[8];
#pragma unroll
            for (int i = 0; i < 8; i++) a2[i] = __shfl_xor_sync(FULL, acc[g][i], o);
            merge8(m[g], l[g], acc[g], m2, l2, a2);
        }
    }
    if (lane < LANES) {
#pragma unroll
        for (int g = 0; g < G; g++) {
            if (live) {
#pragma unroll
                for (int i = 0; i < 8; i++) sm_acc[warp][g][sub * 8 + i] = acc[g][i];
            }
            if (lane == 0) {
                sm_m[warp][g] = m[g];
                sm_l[warp][g] = l[g];
            }
        }
    }
    __syncthreads();

    // The block's warps, one (query head, dimension) per thread and step. The chunk holds a
    // token (t0 < S), so the maximum is finite; warps without tokens weigh exp2f(-inf) = 0.
    for (int e = threadIdx.x; e < G * D; e += THREADS) {
        const int g = e / D, d = e % D;
        float mx = NEG_INF;
#pragma unroll
        for (int w = 0; w < WARPS; w++) mx = fmaxf(mx, sm_m[w][g]);
        float sum = 0.0f, a = 0.0f;
#pragma unroll
        for (int w = 0; w < WARPS; w++) {
            const float wt = exp2f(sm_m[w][g] - mx);
            sum = fmaf(sm_l[w][g], wt, sum);
            a = fmaf(sm_acc[w][g][d], wt, a);
        }
        if (out) {
            out[(h * G + g) * D + d] = a / sum;
        } else {
            const u64 idx = ((u64)h * chunks + c) * G + g;
            part_acc[idx * D + d] = a;
            if (d == 0) {
                part_ml[2 * idx] = mx;
                part_ml[2 * idx + 1] = sum;
            }
        }
    }
}

// One chunk of bf16 (attn_bf16) or f16 (attn_f16) K/V. q: [q_heads][D] f32; k, v: rows of
// D elements, KV head h's token t at vector (h * head_vecs + t * VECS); out: [q_heads][D]
// f32 when gridDim.x == 1, else 0 and the partial states go to part_ml
// ([kv_heads][chunks][G] pairs (m, l)) and part_acc ([kv_heads][chunks][G][D]).
extern "C" __global__ void __launch_bounds__(THREADS)
attn_bf16(const float* q, const uint4* k, const uint4* v, u64 head_vecs, u32 s, u32 chunk,
          float scale_log2, float* out, float* part_ml, float* part_acc) {
    attn_chunk<true>(q, k, v, head_vecs, s, chunk, scale_log2, out, part_ml, part_acc);
}

extern "C" __global__ void __launch_bounds__(THREADS)
attn_f16(const float* q, const uint4* k, const uint4* v, u64 head_vecs, u32 s, u32 chunk,
         float scale_log2, float* out, float* part_ml, float* part_acc) {
    attn_chunk<false>(q, k, v, head_vecs, s, chunk, scale_log2, out, part_ml, part_acc);
}

// Merges the chunks' partial states of query head blockIdx.x (KV head j / G) into its
// output row. Every thread finds the maximum and the sum itself (cached, broadcast reads of
// a few hundred floats) and then owns dimensions d, d + blockDim.x, ...; chunks are
// merged in order, so the result does not depend on the thread count.
extern "C" __global__ void __launch_bounds__(128)
attn_combine(const float* __restrict__ part_ml, const float* __restrict__ part_acc,
             u32 chunks, float* __restrict__ out) {
    const u32 j = blockIdx.x, h = j / G, g = j % G;
    const float* ml = part_ml + 2 * ((u64)h * chunks * G + g);
    const float* acc = part_acc + ((u64)h * chunks * G + g) * D;
    float mx = NEG_INF;
    for (u32 c = 0; c < chunks; c++) mx = fmaxf(mx, ml[2 * (u64)c * G]);
    float sum = 0.0f;
    for (u32 c = 0; c < chunks; c++) {
        sum = fmaf(ml[2 * (u64)c * G + 1], exp2f(ml[2 * (u64)c * G] - mx), sum);
    }
    const float inv = 1.0f / sum;
    for (u32 d = threadIdx.x; d < D; d += blockDim.x) {
        float a = 0.0f;
        for (u32 c = 0; c < chunks; c++) {
            a = fmaf(acc[(u64)c * G * D + d], exp2f(ml[2 * (u64)c * G] - mx), a);
        }
        out[(u64)j * D + d] = a * inv;
    }
}
