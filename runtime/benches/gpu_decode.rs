//! One Llama-3-8B layer's decode step after retrieval (32 query heads, 8 KV heads, D = 128,
//! bf16) at N = 32K, 128K and 512K tokens with a 10 % selection per KV head:
//! `cargo bench -p kvpq-runtime --features cuda --bench gpu_decode`. Prints a markdown
//! table of medians (wall clock to the stream's completion); without a GPU it says so and
//! stops. `KVPQ_DECODE_TOKENS=131072` measures one context only (for a profiler).
//!
//! Columns: dense attention over all N tokens with the K/V resident on the GPU; the same
//! with K/V offloaded to pinned host memory, copied over (DMA) and then attended; the
//! zero-copy gather of the selection from host memory (and the PCIe bandwidth it reaches,
//! counting the K and V bytes moved); the gather through the hot cache when each step's
//! selection keeps ~90 % of the previous one (and the hit rate measured); sparse attention
//! over the gathered rows; and a sparse step (hot gather + attention).

mod common;

use common::median_us;
use std::collections::HashSet;

use kvpq_runtime::cuda::{
    upload, zeros, Attention, DeviceKv, DeviceSelection, GatherBuf, Gpu, HostKv, HotCache, KvShape,
    KvType,
};
use rand::seq::{index, IndexedRandom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const Q_HEADS: usize = 32;
const KV_HEADS: usize = 8;
const D: usize = 128;
/// Tokens written to host memory per call while filling a layer.
const FILL: usize = 8_192;

/// `s` distinct ascending ids of `0..n` per head.
fn selection(rng: &mut ChaCha8Rng, n: usize, s: usize) -> Vec<u32> {
    (0..KV_HEADS)
        .flat_map(|_| {
            let mut h: Vec<u32> = index::sample(rng, n, s)
                .into_iter()
                .map(|i| i as u32)
                .collect();
            h.sort_unstable();
            h
        })
        .collect()
}

/// A selection that keeps `keep` of each head of `prev` and takes the rest elsewhere.
fn overlapping(rng: &mut ChaCha8Rng, prev: &[u32], n: usize, keep: f64) -> Vec<u32> {
    let s = prev.len() / KV_HEADS;
    let kept = (s as f64 * keep).round() as usize;
    prev.chunks_exact(s)
        .flat_map(|old| {
            let mut ids: Vec<u32> = old.choose_multiple(rng, kept).copied().collect();
            let mut taken: HashSet<u32> = old.iter().copied().collect();
            while ids.len() < s {
                let t = rng.random_range(0..n as u32);
                if taken.insert(t) {
                    ids.push(t);
                }
            }
            ids.sort_unstable();
            ids
        })
        .collect()
}

/// Bits of bf16 values of magnitude 1/16 to 2, either sign (the timing does not depend on
/// them; a cheap generator keeps filling 2 GiB quick).
fn fill_bits(state: &mut u64, out: &mut [u16]) {
    for x in out {
        *state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let r = (*state >> 33) as u16;
        let exp = 123 + (r >> 7) % 5;
        *x = (r & 0x8000) | (exp << 7) | (r & 0x7f);
    }
}

fn main() {
    let gpu = match Gpu::open(0) {
        Ok(g) => g,
        Err(e) => {
            println!("gpu_decode: {e}; nothing to measure");
            return;
        }
    };
    println!(
        "GPU: {}; one layer: {Q_HEADS} query heads, {KV_HEADS} KV heads, D = {D}, bf16; selection 10 % per KV head",
        gpu.name()
    );
    println!("| N | S per head | dense, KV on GPU (us) | dense, KV offloaded: copy + attend (us) | gather zero-copy (us) | zero-copy GB/s | gather hot cache (us) | hit rate | sparse attention (us) | sparse step: hot gather + attend (us) |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let sizes: Vec<usize> = match std::env::var("KVPQ_DECODE_TOKENS") {
        Ok(v) => vec![v.parse().expect("KVPQ_DECODE_TOKENS is a token count")],
        Err(_) => vec![32_768, 131_072, 524_288],
    };
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut att = Attention::new(gpu.clone(), Q_HEADS, KV_HEADS, D).expect("kernels compile");
    for n in sizes {
        let s = n / 10;
        let shape = KvShape {
            layers: 1,
            kv_heads: KV_HEADS,
            capacity: n,
            head_dim: D,
            dtype: KvType::Bf16,
        };
        let mut host = HostKv::new(gpu.clone(), shape).expect("pinned host memory");
        let mut state = 1u64;
        let mut k = vec![0u16; KV_HEADS * FILL * D];
        let mut v = vec![0u16; KV_HEADS * FILL * D];
        for at in (0..n).step_by(FILL) {
            let len = KV_HEADS * FILL.min(n - at) * D;
            fill_bits(&mut state, &mut k[..len]);
            fill_bits(&mut state, &mut v[..len]);
            host.write_u16(0, at, &k[..len], &v[..len]).expect("writes");
        }
        let mut dense = DeviceKv::new(gpu.clone(), shape).expect("device memory");
        dense.copy_from_host(0, &host, 0, n).expect("copies");
        let q: Vec<f32> = (0..Q_HEADS * D)
            .map(|_| rng.random_range(-2.0..2.0))
            .collect();
        let q = upload(&gpu, &q).expect("uploads");
        let mut out = zeros::<f32>(&gpu, Q_HEADS * D).expect("allocates");
        let reps = if n > 200_000 { 11 } else { 31 };

        let on_gpu = median_us(
            || {
                att.run(&q, &dense.rows(0, n).expect("rows"), &mut out)
                    .expect("runs");
                gpu.synchronize().expect("finishes");
            },
            reps,
        );
        let offloaded = median_us(
            || {
                dense.copy_from_host(0, &host, 0, n).expect("copies");
                att.run(&q, &dense.rows(0, n).expect("rows"), &mut out)
                    .expect("runs");
                gpu.synchronize().expect("finishes");
            },
            reps,
        );

        let a = selection(&mut rng, n, s);
        let b = overlapping(&mut rng, &a, n, 0.9);
        let sel_a = DeviceSelection::from_ids(&gpu, KV_HEADS, s, &a).expect("uploads");
        let sel_b = DeviceSelection::from_ids(&gpu, KV_HEADS, s, &b).expect("uploads");
        let mut buf = GatherBuf::new(&gpu, KV_HEADS, s, D, KvType::Bf16).expect("allocates");
        let zero_copy = median_us(
            || {
                host.gather(0, &sel_a, &mut buf).expect("gathers");
                gpu.synchronize().expect("finishes");
            },
            reps,
        );
        let bytes = (2 * KV_HEADS * s * D * 2) as f64;

        // Steps alternate between the two selections, so each keeps ~90 % of the last.
        let mut cache = HotCache::new(&host).expect("cache");
        cache.gather(&host, 0, &sel_a).expect("gathers");
        cache.take_stats().expect("stats");
        let mut flip = false;
        let hot = median_us(
            || {
                flip = !flip;
                let sel = if flip { &sel_b } else { &sel_a };
                cache.gather(&host, 0, sel).expect("gathers");
                gpu.synchronize().expect("finishes");
            },
            reps,
        );
        let stats = cache.take_stats().expect("stats");

        let sparse = median_us(
            || {
                att.run(&q, &buf.rows(), &mut out).expect("runs");
                gpu.synchronize().expect("finishes");
            },
            reps,
        );
        let step = median_us(
            || {
                flip = !flip;
                let sel = if flip { &sel_b } else { &sel_a };
                let rows = cache.gather(&host, 0, sel).expect("gathers");
                att.run(&q, &rows, &mut out).expect("runs");
                gpu.synchronize().expect("finishes");
            },
            reps,
        );
        println!(
            "| {n} | {s} | {on_gpu:.0} | {offloaded:.0} | {zero_copy:.0} | {:.1} | {hot:.0} | {:.3} | {sparse:.0} | {step:.0} |",
            bytes / zero_copy / 1e3,
            stats.rate(),
        );
    }
}
