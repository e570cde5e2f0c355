//! The decode-loop kernels after retrieval against host references on an NVIDIA GPU: the
//! zero-copy gather and the hot cache copy rows bit for bit and count their hits exactly,
//! device writes land in host memory, attention matches an f64 reference for 1 to 100K
//! tokens (grouped-query heads, split and unsplit), and dense attention over a device K/V
//! equals sparse attention over a selection of every token. Without a GPU every test checks
//! that opening one is refused cleanly, then stops.

mod common;

use common::gpu;
use std::collections::HashSet;
use std::sync::Arc;

use kvpq_runtime::cuda::{
    download, upload, zeros, Attention, DeviceKv, DeviceSelection, GatherBuf, Gpu, HostKv,
    HotCache, KvRows, KvShape, KvType,
};
use kvpq_runtime::RuntimeError;
use rand::seq::{index, IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn shape(
    layers: usize,
    kv_heads: usize,
    capacity: usize,
    head_dim: usize,
    dtype: KvType,
) -> KvShape {
    KvShape {
        layers,
        kv_heads,
        capacity,
        head_dim,
        dtype,
    }
}

/// Random element bits: the gather copies bits, NaN patterns included.
fn random_bits(rng: &mut ChaCha8Rng, len: usize) -> Vec<u16> {
    (0..len).map(|_| rng.random()).collect()
}

/// Random values in (-amp, amp) rounded to `dtype`, as bits.
fn random_values(rng: &mut ChaCha8Rng, len: usize, amp: f32, dtype: KvType) -> Vec<u16> {
    let xs: Vec<f32> = (0..len).map(|_| rng.random_range(-amp..amp)).collect();
    let mut out = vec![0; len];
    dtype.encode(&xs, &mut out);
    out
}

/// `s` distinct ids of `0..n` per head, ascending (as retrieval writes them).
fn selection(rng: &mut ChaCha8Rng, heads: usize, n: usize, s: usize) -> Vec<u32> {
    let mut ids = Vec::with_capacity(heads * s);
    for _ in 0..heads {
        let mut h: Vec<u32> = index::sample(rng, n, s)
            .into_iter()
            .map(|i| i as u32)
            .collect();
        h.sort_unstable();
        ids.extend(h);
    }
    ids
}

/// The next step's selection: about `keep` of each head's previous ids stay (at most `s`),
/// the rest are other tokens of `0..n`; ascending.
fn next_selection(
    rng: &mut ChaCha8Rng,
    prev: &[u32],
    heads: usize,
    n: usize,
    s: usize,
    keep: f64,
) -> Vec<u32> {
    let s_prev = prev.len() / heads;
    let mut ids = Vec::with_capacity(heads * s);
    for h in 0..heads {
        let old = &prev[h * s_prev..(h + 1) * s_prev];
        let kept = ((s_prev as f64 * keep).round() as usize).min(s);
        let mut chosen: Vec<u32> = old.choose_multiple(rng, kept).copied().collect();
        let taken: HashSet<u32> = old.iter().copied().collect();
        let mut fresh: Vec<u32> = (0..n as u32).filter(|t| !taken.contains(t)).collect();
        fresh.shuffle(rng);
        chosen.extend(fresh.into_iter().take(s - kept));
        chosen.sort_unstable();
        ids.extend(chosen);
    }
    ids
}

/// Host gather: row `i` of head `h` is token `ids[h][i]` of `data` (`[heads][cap][d]`), zero
/// for ids past the capacity.
fn host_gather(data: &[u16], heads: usize, cap: usize, d: usize, ids: &[u32]) -> Vec<u16> {
    let s = ids.len() / heads;
    let mut out = Vec::with_capacity(ids.len() * d);
    for h in 0..heads {
        for &id in &ids[h * s..(h + 1) * s] {
            let id = id as usize;
            if id < cap {
                let at = (h * cap + id) * d;
                out.extend_from_slice(&data[at..at + d]);
            } else {
                out.extend(std::iter::repeat_n(0, d));
            }
        }
    }
    out
}

/// Rows found again: the ids each head shares with its previous selection.
fn overlap(prev: &[u32], next: &[u32], heads: usize) -> u64 {
    let (sp, sn) = (prev.len() / heads, next.len() / heads);
    (0..heads)
        .map(|h| {
            let old: HashSet<u32> = prev[h * sp..(h + 1) * sp].iter().copied().collect();
            next[h * sn..(h + 1) * sn]
                .iter()
                .filter(|id| old.contains(id))
                .count() as u64
        })
        .sum()
}

#[test]
fn zero_copy_gather_is_a_bit_exact_copy() {
    let Some(gpu) = gpu() else { return };
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    // D = 96: 12 vectors a row (the attention pads its lanes to 16, the gather does not).
    let cases = [
        (8, 3_000, 128, KvType::Bf16),
        (3, 1_001, 64, KvType::F16),
        (2, 517, 96, KvType::Bf16),
    ];
    for (heads, cap, d, dtype) in cases {
        let mut host = HostKv::new(gpu.clone(), shape(2, heads, cap, d, dtype)).unwrap();
        eprintln!("pinned K/V read at their host address: {}", host.unified());
        let len = heads * cap * d;
        let (k, v) = (random_bits(&mut rng, len), random_bits(&mut rng, len));
        // Two writes of token ranges ([heads][n][d] each), then the whole layer reads back.
        let split = cap / 3;
        let part = |x: &[u16], r: std::ops::Range<usize>| {
            (0..heads)
                .flat_map(|h| x[(h * cap + r.start) * d..(h * cap + r.end) * d].to_vec())
                .collect::<Vec<u16>>()
        };
        host.write_u16(1, 0, &part(&k, 0..split), &part(&v, 0..split))
            .unwrap();
        host.write_u16(1, split, &part(&k, split..cap), &part(&v, split..cap))
            .unwrap();
        let (hk, hv) = host.layer(1).unwrap();
        assert!(hk == k && hv == v, "layer read back");
        assert!(host.layer(0).unwrap().0.iter().all(|&x| x == 0));
        for s in [1, 7, 64, cap / 10, cap] {
            let mut ids = selection(&mut rng, heads, cap, s);
            if s == 7 {
                ids[3] = (cap + 5) as u32; // past the capacity: a zero row
            }
            let sel = DeviceSelection::from_ids(&gpu, heads, s, &ids).unwrap();
            let mut out = GatherBuf::new(&gpu, heads, s, d, dtype).unwrap();
            host.gather(1, &sel, &mut out).unwrap();
            let (gk, gv) = out.to_host(&gpu).unwrap();
            assert!(
                gk == host_gather(&k, heads, cap, d, &ids),
                "K: {heads} heads, D {d}, S {s}"
            );
            assert!(
                gv == host_gather(&v, heads, cap, d, &ids),
                "V: {heads} heads, D {d}, S {s}"
            );
            let (rk, rv) = out.rows().to_host(&gpu).unwrap();
            assert!(rk == gk && rv == gv);
        }
        // f32 writes round to nearest even, as the half crate does.
        let xs: Vec<f32> = (0..heads * 3 * d)
            .map(|_| rng.random_range(-4.0..4.0))
            .collect();
        host.write_f32(0, cap - 3, &xs, &xs).unwrap();
        let (hk, _) = host.layer(0).unwrap();
        for h in 0..heads {
            for i in 0..3 * d {
                let x = xs[h * 3 * d + i];
                let want = match dtype {
                    KvType::Bf16 => half::bf16::from_f32(x).to_bits(),
                    KvType::F16 => half::f16::from_f32(x).to_bits(),
                };
                assert_eq!(hk[(h * cap + cap - 3) * d + i], want);
                assert_eq!(dtype.decode(want), x_round(x, dtype));
            }
        }
    }
}

fn x_round(x: f32, dtype: KvType) -> f32 {
    match dtype {
        KvType::Bf16 => half::bf16::from_f32(x).to_f32(),
        KvType::F16 => half::f16::from_f32(x).to_f32(),
    }
}

#[test]
fn hot_cache_serves_hits_from_the_gpu_and_counts_them() {
    let Some(gpu) = gpu() else { return };
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let (layers, heads, cap, d) = (3, 4, 20_000, 128);
    let mut host = HostKv::new(gpu.clone(), shape(layers, heads, cap, d, KvType::Bf16)).unwrap();
    let data: Vec<(Vec<u16>, Vec<u16>)> = (0..layers)
        .map(|l| {
            let len = heads * cap * d;
            let (k, v) = (random_bits(&mut rng, len), random_bits(&mut rng, len));
            host.write_u16(l, 0, &k, &v).unwrap();
            (k, v)
        })
        .collect();
    let mut cache = HotCache::new(&host).unwrap();
    let mut prev: Vec<Option<Vec<u32>>> = vec![None; layers];
    // (rows per head, share of the previous selection kept, layers gathered): growing and
    // shrinking selections, no overlap, the same selection again, a skipped layer (the
    // spare buffers rotate between layers), a one-row selection.
    let steps: [(usize, f64, &[usize]); 9] = [
        (2_000, 0.9, &[0, 1, 2]),
        (2_000, 0.9, &[0, 1, 2]),
        (2_100, 0.9, &[0, 2]),
        (1_900, 0.0, &[0, 1, 2]),
        (1_900, 1.0, &[0, 1, 2]),
        (2_500, 0.8, &[2, 0]),
        (100, 0.5, &[0, 1, 2]),
        (1, 1.0, &[1]),
        (3_000, 0.95, &[0, 1, 2]),
    ];
    for (step, &(s, keep, which)) in steps.iter().enumerate() {
        let mut want_hits = 0;
        for &l in which {
            let ids = match &prev[l] {
                Some(p) => next_selection(&mut rng, p, heads, cap, s, keep),
                None => selection(&mut rng, heads, cap, s),
            };
            want_hits += prev[l].as_ref().map_or(0, |p| overlap(p, &ids, heads));
            let sel = DeviceSelection::from_ids(&gpu, heads, s, &ids).unwrap();
            let rows = cache.gather(&host, l, &sel).unwrap();
            assert_eq!(
                (rows.kv_heads(), rows.tokens(), rows.head_dim()),
                (heads, s, d)
            );
            let (gk, gv) = rows.to_host(&gpu).unwrap();
            let (k, v) = &data[l];
            assert!(
                gk == host_gather(k, heads, cap, d, &ids),
                "K: step {step} layer {l}"
            );
            assert!(
                gv == host_gather(v, heads, cap, d, &ids),
                "V: step {step} layer {l}"
            );
            prev[l] = Some(ids);
        }
        // The counter sums the step's layers; it is read once per step.
        let st = cache.take_stats().unwrap();
        let selected = (which.len() * heads * s) as u64;
        assert_eq!((st.hits, st.selected), (want_hits, selected), "step {step}");
        eprintln!("step {step}: hit rate {:.3}", st.rate());
    }
    eprintln!("hot cache: {} bytes on the GPU", cache.device_bytes());
    // A forgotten layer starts cold and still gathers right.
    cache.invalidate(1);
    let ids = selection(&mut rng, heads, cap, 500);
    let sel = DeviceSelection::from_ids(&gpu, heads, 500, &ids).unwrap();
    let (gk, _) = cache.gather(&host, 1, &sel).unwrap().to_host(&gpu).unwrap();
    assert!(gk == host_gather(&data[1].0, heads, cap, d, &ids));
    assert_eq!(cache.take_stats().unwrap().hits, 0);
    // The same selection again: every row is a hit.
    let (gk, _) = cache.gather(&host, 1, &sel).unwrap().to_host(&gpu).unwrap();
    assert!(gk == host_gather(&data[1].0, heads, cap, d, &ids));
    assert_eq!(cache.take_stats().unwrap().hits, (heads * 500) as u64);
    // A selection of the wrong head count is refused.
    let bad = DeviceSelection::from_ids(&gpu, heads - 1, 10, &vec![0; (heads - 1) * 10]).unwrap();
    assert!(matches!(
        cache.gather(&host, 0, &bad),
        Err(RuntimeError::Shape { .. })
    ));
}

#[test]
fn device_rows_are_written_to_host_memory() {
    let Some(gpu) = gpu() else { return };
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let (heads, cap, d) = (4, 300, 64);
    let mut host = HostKv::new(gpu.clone(), shape(2, heads, cap, d, KvType::F16)).unwrap();
    let n = 5;
    let (k, v) = (
        random_bits(&mut rng, heads * n * d),
        random_bits(&mut rng, heads * n * d),
    );
    let (dk, dv) = (upload(&gpu, &k).unwrap(), upload(&gpu, &v).unwrap());
    host.write_from_device(1, 100, &dk, &dv, n).unwrap();
    let (hk, hv) = host.layer(1).unwrap();
    for h in 0..heads {
        for t in 0..cap {
            let at = (h * cap + t) * d;
            let (want_k, want_v) = if (100..100 + n).contains(&t) {
                let src = (h * n + t - 100) * d;
                (&k[src..src + d], &v[src..src + d])
            } else {
                (&[0u16; 64][..], &[0u16; 64][..])
            };
            assert_eq!(&hk[at..at + d], want_k, "K head {h} token {t}");
            assert_eq!(&hv[at..at + d], want_v, "V head {h} token {t}");
        }
    }
    assert!(matches!(
        host.write_from_device(1, cap - 2, &dk, &dv, n),
        Err(RuntimeError::Capacity { .. })
    ));
    assert!(matches!(
        host.write_from_device(2, 0, &dk, &dv, n),
        Err(RuntimeError::OutOfRange { .. })
    ));
    assert!(matches!(
        host.write_u16(0, 0, &k[..d * 3], &v[..d * 3]),
        Err(RuntimeError::Shape { .. })
    ));
}

/// `softmax(q K^T / sqrt(D)) V` per query head in f64 over the same element values
/// (`k`, `v`: `[kv_heads][S][d]` bits), and the largest `sum_i |q_i k_i| / sqrt(D)` (the
/// magnitude the f32 scores are rounded at).
fn reference(
    q: &[f32],
    k: &[u16],
    v: &[u16],
    dtype: KvType,
    q_heads: usize,
    kv_heads: usize,
    d: usize,
) -> (Vec<f64>, f64) {
    let group = q_heads / kv_heads;
    let s = k.len() / (kv_heads * d);
    let kf: Vec<f64> = k.iter().map(|&b| dtype.decode(b) as f64).collect();
    let vf: Vec<f64> = v.iter().map(|&b| dtype.decode(b) as f64).collect();
    let scale = 1.0 / (d as f64).sqrt();
    let mut out = vec![0.0; q_heads * d];
    let mut magnitude: f64 = 0.0;
    for j in 0..q_heads {
        let h = j / group;
        let qj: Vec<f64> = q[j * d..(j + 1) * d].iter().map(|&x| x as f64).collect();
        let scores: Vec<f64> = (0..s)
            .map(|t| {
                let row = &kf[(h * s + t) * d..(h * s + t + 1) * d];
                let mag: f64 = row.iter().zip(&qj).map(|(a, b)| (a * b).abs()).sum();
                magnitude = magnitude.max(mag * scale);
                row.iter().zip(&qj).map(|(a, b)| a * b).sum::<f64>() * scale
            })
            .collect();
        let m = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mut sum = 0.0;
        let o = &mut out[j * d..(j + 1) * d];
        for (t, sc) in scores.iter().enumerate() {
            let w = (sc - m).exp();
            sum += w;
            for (x, vv) in o.iter_mut().zip(&vf[(h * s + t) * d..(h * s + t + 1) * d]) {
                *x += w * vv;
            }
        }
        o.iter_mut().for_each(|x| *x /= sum);
    }
    (out, magnitude)
}

/// Attention's output against the f64 reference. Both sides use the same bf16/f16 values
/// (widened exactly), so only the GPU's fp32 arithmetic differs:
/// * a score is a sum of D products in f32 (8 per lane, then a tree of up to 5 levels,
///   after one rounding of q * log2(e) / sqrt(D)): its error is a few units of 2^-24 of
///   `sum |q_i k_i| / sqrt(D)` (the magnitude), and a score error e changes its weight by a
///   factor exp(e): allowed 1e-6 x magnitude, about 15 ulps' worth;
/// * exp2f is within 2 ulps, and the sums of weights and weighted values run over at most
///   tens of thousands of terms per slot before the tree merges: relative error ~sqrt(n)
///   x 2^-24 in expectation, 1e-5 at 100K tokens; allowed 1e-4.
///
/// The output is a convex combination of value rows, so both are measured against the
/// largest |value|.
fn check(got: &[f32], want: &[f64], magnitude: f64, vmax: f64, what: &str) -> f64 {
    let bound = vmax * (1e-4 + 1e-6 * magnitude);
    let mut worst: f64 = 0.0;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g as f64 - w).abs();
        assert!(
            err <= bound,
            "{what}: element {i} is {g}, the reference {w} (error {err:e}, bound {bound:e})"
        );
        worst = worst.max(err / vmax);
    }
    worst
}

/// Attention of `q_heads` over `kv_heads` heads of `d` against the f64 reference for each
/// length, K/V and values in (-1, 1), queries in (-amp, amp): the automatic split, one
/// chunk (no combine kernel), short chunks (many partial states) and, for short contexts,
/// one token per chunk.
fn attention_case(
    gpu: &Arc<Gpu>,
    rng: &mut ChaCha8Rng,
    (q_heads, kv_heads, d): (usize, usize, usize),
    dtype: KvType,
    amp: f32,
    lengths: &[usize],
) {
    let mut att = Attention::new(gpu.clone(), q_heads, kv_heads, d).unwrap();
    for &s in lengths {
        let mut kv = DeviceKv::new(gpu.clone(), shape(1, kv_heads, s, d, dtype)).unwrap();
        let k = random_values(rng, kv_heads * s * d, 1.0, dtype);
        let v = random_values(rng, kv_heads * s * d, 1.0, dtype);
        kv.write_u16(0, 0, &k, &v).unwrap();
        let q: Vec<f32> = (0..q_heads * d)
            .map(|_| rng.random_range(-amp..amp))
            .collect();
        let qd = upload(gpu, &q).unwrap();
        let (want, magnitude) = reference(&q, &k, &v, dtype, q_heads, kv_heads, d);
        let vmax = v
            .iter()
            .map(|&b| dtype.decode(b).abs() as f64)
            .fold(0.0, f64::max)
            .max(1e-30);
        let rows = kv.rows(0, s).unwrap();
        let mut out = zeros::<f32>(gpu, q_heads * d).unwrap();
        let mut chunks = vec![None, Some(s), Some(if s <= 10_000 { 64 } else { 1_000 })];
        if s <= 300 {
            chunks.push(Some(1));
        }
        for chunk in chunks {
            match chunk {
                None => att.run(&qd, &rows, &mut out).unwrap(),
                Some(c) => att.run_chunked(&qd, &rows, c, &mut out).unwrap(),
            }
            let got = download(gpu, &out).unwrap();
            let what = format!(
                "{q_heads}/{kv_heads} heads of {d}, {dtype}, amp {amp}, S {s}, chunk {chunk:?} (auto {})",
                att.chunk_for(s)
            );
            let worst = check(&got, &want, magnitude, vmax, &what);
            eprintln!("{what}: max error / max|v| = {worst:.2e} (score magnitude {magnitude:.0})");
        }
    }
}

#[test]
fn attention_matches_an_f64_reference() {
    let Some(gpu) = gpu() else { return };
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    // GQA group 4, off and on the block's 32-token step and the 256-token minimum chunk.
    let lengths = [
        1, 2, 3, 31, 32, 33, 255, 256, 257, 1_000, 4_097, 30_000, 100_000,
    ];
    // Moderate scores, and scores of hundreds of nats (exp of them overflows f32: only the
    // running maximum keeps the softmax finite).
    for (dtype, amp) in [
        (KvType::Bf16, 6.0),
        (KvType::F16, 6.0),
        (KvType::Bf16, 120.0),
    ] {
        attention_case(&gpu, &mut rng, (8, 2, 128), dtype, amp, &lengths);
    }
}

#[test]
fn attention_serves_other_head_shapes() {
    let Some(gpu) = gpu() else { return };
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let lengths = [1, 33, 1_000, 5_000];
    // No grouping and 8 lanes a token (D = 64), a group of 3 and 12 of 16 lanes live
    // (D = 96), a group of 8 and a whole warp a token (D = 256).
    attention_case(&gpu, &mut rng, (4, 4, 64), KvType::F16, 6.0, &lengths);
    attention_case(&gpu, &mut rng, (6, 2, 96), KvType::Bf16, 6.0, &lengths);
    attention_case(&gpu, &mut rng, (16, 2, 256), KvType::Bf16, 6.0, &lengths);
}

#[test]
fn dense_attention_over_device_kv_equals_sparse_over_every_token() {
    let Some(gpu) = gpu() else { return };
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let (q_heads, kv_heads, d, cap) = (8, 2, 128, 5_000);
    let sh = shape(1, kv_heads, cap, d, KvType::Bf16);
    let mut host = HostKv::new(gpu.clone(), sh).unwrap();
    let k = random_values(&mut rng, kv_heads * cap * d, 1.0, KvType::Bf16);
    let v = random_values(&mut rng, kv_heads * cap * d, 1.0, KvType::Bf16);
    host.write_u16(0, 0, &k, &v).unwrap();
    let mut att = Attention::new(gpu.clone(), q_heads, kv_heads, d).unwrap();
    let q: Vec<f32> = (0..q_heads * d)
        .map(|_| rng.random_range(-6.0..6.0))
        .collect();
    let qd = upload(&gpu, &q).unwrap();
    let mut cache = HotCache::new(&host).unwrap();
    // The whole layer (one copy per tensor) and a prefix (one copy per head, strided).
    for n in [cap, 3_001] {
        let mut kv = DeviceKv::new(gpu.clone(), sh).unwrap();
        kv.copy_from_host(0, &host, 0, n).unwrap();
        let ids: Vec<u32> = (0..kv_heads).flat_map(|_| 0..n as u32).collect();
        let sel = DeviceSelection::from_ids(&gpu, kv_heads, n, &ids).unwrap();
        let mut gathered = GatherBuf::new(&gpu, kv_heads, n, d, KvType::Bf16).unwrap();
        host.gather(0, &sel, &mut gathered).unwrap();
        let (dk, _) = kv.rows(0, n).unwrap().to_host(&gpu).unwrap();
        assert!(
            dk == host_gather(&k, kv_heads, cap, d, &ids),
            "copied K, {n} tokens"
        );
        let mut outs = Vec::new();
        for chunk in [None, Some(n), Some(100)] {
            let sources: [KvRows<'_>; 2] = [kv.rows(0, n).unwrap(), gathered.rows()];
            let mut pair = Vec::new();
            for rows in sources {
                let mut out = zeros::<f32>(&gpu, q_heads * d).unwrap();
                match chunk {
                    None => att.run(&qd, &rows, &mut out).unwrap(),
                    Some(c) => att.run_chunked(&qd, &rows, c, &mut out).unwrap(),
                }
                pair.push(download(&gpu, &out).unwrap());
            }
            assert!(
                pair[0] == pair[1],
                "dense != sparse: {n} tokens, chunk {chunk:?}"
            );
            outs.push(pair.swap_remove(0));
        }
        // The hot cache's rows of the same selection, cold then warm, give the same output.
        for _ in 0..2 {
            let rows = cache.gather(&host, 0, &sel).unwrap();
            let mut out = zeros::<f32>(&gpu, q_heads * d).unwrap();
            att.run(&qd, &rows, &mut out).unwrap();
            assert!(
                download(&gpu, &out).unwrap() == outs[0],
                "hot cache, {n} tokens"
            );
        }
        let (want, magnitude) = reference(
            &q,
            &host_gather(&k, kv_heads, cap, d, &ids),
            &host_gather(&v, kv_heads, cap, d, &ids),
            KvType::Bf16,
            q_heads,
            kv_heads,
            d,
        );
        for out in &outs {
            check(out, &want, magnitude, 1.0, &format!("dense, {n} tokens"));
        }
    }
}

#[test]
fn refused_shapes_name_the_input() {
    let Some(gpu) = gpu() else { return };
    for (q_heads, kv_heads, d) in [
        (6, 4, 128),
        (8, 0, 128),
        (8, 2, 12),
        (8, 2, 264),
        (64, 1, 128),
    ] {
        assert!(
            matches!(
                Attention::new(gpu.clone(), q_heads, kv_heads, d),
                Err(RuntimeError::Shape { .. })
            ),
            "{q_heads} / {kv_heads} / {d}"
        );
    }
    assert!(matches!(
        HostKv::new(gpu.clone(), shape(1, 2, 100, 12, KvType::Bf16)),
        Err(RuntimeError::Shape { .. })
    ));
    let sh = shape(1, 2, 100, 64, KvType::Bf16);
    let host = HostKv::new(gpu.clone(), sh).unwrap();
    let kv = DeviceKv::new(gpu.clone(), sh).unwrap();
    let mut att = Attention::new(gpu.clone(), 4, 2, 64).unwrap();
    let q = zeros::<f32>(&gpu, 4 * 64).unwrap();
    let mut out = zeros::<f32>(&gpu, 4 * 64).unwrap();
    // No tokens, too many tokens, a query buffer too short, rows of another head count.
    assert!(matches!(
        att.run(&q, &kv.rows(0, 0).unwrap(), &mut out),
        Err(RuntimeError::Shape { .. })
    ));
    assert!(matches!(
        kv.rows(0, 101),
        Err(RuntimeError::Capacity { .. })
    ));
    let short = zeros::<f32>(&gpu, 64).unwrap();
    assert!(matches!(
        att.run(&short, &kv.rows(0, 10).unwrap(), &mut out),
        Err(RuntimeError::Shape { .. })
    ));
    let mut att3 = Attention::new(gpu.clone(), 6, 3, 64).unwrap();
    assert!(matches!(
        att3.run(&q, &kv.rows(0, 10).unwrap(), &mut out),
        Err(RuntimeError::Shape { .. })
    ));
    // A gather buffer with room for fewer rows than the selection is refused; one with
    // more room takes it and holds the selection's rows.
    let sel = DeviceSelection::from_ids(&gpu, 2, 3, &[0, 1, 2, 3, 4, 5]).unwrap();
    let mut small = GatherBuf::new(&gpu, 2, 2, 64, KvType::Bf16).unwrap();
    assert!(matches!(
        host.gather(0, &sel, &mut small),
        Err(RuntimeError::Shape { .. })
    ));
    let mut buf = GatherBuf::new(&gpu, 2, 4, 64, KvType::Bf16).unwrap();
    host.gather(0, &sel, &mut buf).unwrap();
    assert_eq!(buf.rows().tokens(), 3);
    assert!(matches!(
        host.gather(1, &sel, &mut buf),
        Err(RuntimeError::OutOfRange { .. })
    ));
}

/// Runs without a GPU: the element conversions the host writes use.
#[test]
fn element_types_round_like_the_half_crate() {
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let mut xs: Vec<f32> = (0..10_000)
        .map(|_| rng.random_range(-70_000.0..70_000.0))
        .collect();
    xs.extend([0.0, -0.0, 1e-9, 65_504.0, 65_520.0, f32::MAX, f32::INFINITY]);
    for dtype in [KvType::Bf16, KvType::F16] {
        let mut bits = vec![0u16; xs.len()];
        dtype.encode(&xs, &mut bits);
        for (&x, &b) in xs.iter().zip(&bits) {
            let want = match dtype {
                KvType::Bf16 => half::bf16::from_f32(x).to_bits(),
                KvType::F16 => half::f16::from_f32(x).to_bits(),
            };
            assert_eq!(b, want, "{dtype} {x}");
            assert_eq!(dtype.decode(b).to_bits(), x_round(x, dtype).to_bits());
        }
    }
}
