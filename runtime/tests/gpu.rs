//! The `gpu` device against the golden model on an NVIDIA GPU: random shapes, contexts and
//! k (ties, k >= n, k = 0, contexts off the beat), a whole layer per call, code streams
//! appended step by step while resident, device-side selections, and refused calls. Without
//! a GPU every test checks that opening one is refused cleanly, then stops (the GPU
//! machine's output is kept in docs/measurements.md).

mod common;

use common::gpu;
use kvpq_core::golden::packing::pack;
use kvpq_core::golden::{GoldenEngine, QuantCodebook};
use kvpq_core::spec::{
    Accelerator, AcceleratorBuilder, EngineConfig, PqConfig, QuantConfig, ScannerConfig, TopKConfig,
};
use kvpq_runtime::backends::gpu::GpuDevice;
use kvpq_runtime::cuda::DeviceSelection;
use kvpq_runtime::{Device, HeadQuery, RuntimeError, Split};
use ndarray::{Array2, Array3};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn accelerator(d: u32, m: u32, b: u32, beat: u32, max_tokens: u32, k_max: u32) -> Accelerator {
    AcceleratorBuilder::new("gpu-test", PqConfig::new(d, m, b))
        .quant(QuantConfig::new(8, 8, 16))
        .scanner(ScannerConfig::new(beat / (m * b)))
        .topk(TopKConfig::select(k_max))
        .engine(EngineConfig::new(max_tokens).with_beat_bits(beat))
        .build()
        .unwrap_or_else(|e| panic!("{d}/{m}/{b}/{beat}: {e}"))
}

struct Head {
    codebook: QuantCodebook,
    query: Vec<i32>,
    codes: Array2<u8>,
}

/// A random head with centroids from `levels` values (few levels: many equal scores) and
/// codes from `distinct` codes per subspace.
fn head(acc: &Accelerator, n: usize, levels: i32, distinct: usize, rng: &mut ChaCha8Rng) -> Head {
    let w = acc.derived().widths;
    let (m, k, sub) = (
        acc.config().pq.m as usize,
        w.codebook_size as usize,
        w.sub_dim as usize,
    );
    let step = 256 / levels;
    let values = Array3::from_shape_fn((m, k, sub), |_| -128 + step * rng.random_range(0..levels));
    let query = (0..acc.config().pq.head_dim)
        .map(|_| rng.random_range(-128..128))
        .collect();
    let distinct = distinct.min(k);
    let codes = Array2::from_shape_fn((n, m), |_| rng.random_range(0..distinct) as u8);
    Head {
        codebook: QuantCodebook { values, scale: 1.0 },
        query,
        codes,
    }
}

#[test]
fn random_searches_match_the_golden_model() {
    let Some(gpu) = gpu() else { return };
    // 12-bit tokens in 512-bit beats (PQCache), tokens across words, 128-bit tokens, a
    // 64-bit beat, 3 subspaces.
    let shapes: [(u32, u32, u32, u32); 7] = [
        (128, 2, 6, 512),
        (20, 2, 5, 512),
        (16, 2, 2, 64),
        (128, 16, 8, 512),
        (96, 3, 8, 512),
        (48, 8, 6, 512),
        (128, 32, 4, 512),
    ];
    let max_tokens = 70_000;
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for (d, m, b, beat) in shapes {
        let acc = accelerator(d, m, b, beat, max_tokens, max_tokens);
        let tpb = acc.derived().layout.tokens_per_beat as usize;
        let mut dev = GpuDevice::on(gpu.clone(), acc.clone()).unwrap();
        // (n, centroid levels, distinct codes): off the beat and the 4,096-token chunk,
        // heavy ties, a single code (every token ties), the longest context.
        let cases = [
            (1, 256, 256),
            (tpb + 1, 256, 256),
            (4097, 256, 256),
            (20_003, 3, 256),
            (17_000, 256, 1),
            (30_000, 2, 3),
            (max_tokens as usize, 256, 256),
        ];
        for (n, levels, distinct) in cases {
            let h = head(&acc, n, levels, distinct, &mut rng);
            let beats = pack(&acc.derived().layout, h.codes.view()).unwrap();
            dev.load_codebook(3, h.codebook.clone()).unwrap();
            let golden = GoldenEngine::new(&acc, h.codebook.clone()).unwrap();
            let ks = [
                0,
                1,
                2,
                n / 20,
                n / 8 + 1,
                rng.random_range(1..=n),
                n - 1,
                n,
                n + 7,
            ];
            for k in ks.into_iter().filter(|&k| k <= max_tokens as usize) {
                let q = HeadQuery {
                    slot: 3,
                    query: &h.query,
                    beats: &beats,
                    n_tokens: n,
                    k,
                    stream: None,
                };
                let got = dev.search(&[q]).unwrap();
                let want = golden.run(&h.query, &beats, n, k).unwrap();
                assert_eq!(
                    got[0], want,
                    "D {d} M {m} b {b} beat {beat}: n {n} k {k} levels {levels} codes {distinct}"
                );
            }
        }
    }
}

/// The PQCache shape, a layer of 8 heads per call.
fn pqcache(max_tokens: u32) -> Accelerator {
    accelerator(128, 2, 6, 512, max_tokens, max_tokens / 10)
}

#[test]
fn a_layer_per_call_with_streams_appended_step_by_step() {
    let Some(gpu) = gpu() else { return };
    let acc = pqcache(20_000);
    let layout = acc.derived().layout;
    let mut dev = GpuDevice::on(gpu, acc.clone()).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let heads: Vec<Head> = (0..8)
        .map(|_| head(&acc, 12_000, 256, 64, &mut rng))
        .collect();
    for (h, head) in heads.iter().enumerate() {
        dev.load_codebook(h, head.codebook.clone()).unwrap();
    }
    let goldens: Vec<_> = heads
        .iter()
        .map(|h| GoldenEngine::new(&acc, h.codebook.clone()).unwrap())
        .collect();
    // Prefill 10,000 tokens, then steps of 1 to 90 appended tokens; the stream id changes
    // once (a re-encoding: everything is copied again), and the codes change with it.
    let mut n = 10_000;
    let mut stream = 1;
    let mut codes: Vec<Array2<u8>> = heads.iter().map(|h| h.codes.clone()).collect();
    for step in 0..25 {
        if step == 12 {
            stream = 2;
            for c in &mut codes {
                c.mapv_inplace(|x| (x + 1) % 64);
            }
        }
        let beats: Vec<Vec<u64>> = codes
            .iter()
            .map(|c| pack(&layout, c.slice(ndarray::s![..n, ..])).unwrap())
            .collect();
        let k = n / 10;
        let qs: Vec<HeadQuery> = (0..8)
            .map(|h| HeadQuery {
                slot: h,
                query: &heads[h].query,
                beats: &beats[h],
                n_tokens: n,
                k,
                stream: Some(stream),
            })
            .collect();
        let got = dev.search(&qs).unwrap();
        for h in 0..8 {
            let want = goldens[h].run(&heads[h].query, &beats[h], n, k).unwrap();
            assert_eq!(got[h], want, "step {step} head {h} n {n}");
        }
        n += rng.random_range(1..90);
    }
}

#[test]
fn device_selections_hold_sinks_top_k_and_window() {
    let Some(gpu) = gpu() else { return };
    let acc = pqcache(40_000);
    let mut dev = GpuDevice::on(gpu.clone(), acc.clone()).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let (sink, local, middle, topk) = (32, 1_600, 30_000, 3_000);
    let split = Split {
        tokens: sink + middle + local,
        sink,
        local,
        middle,
        topk,
    };
    let heads: Vec<Head> = (0..8)
        .map(|_| head(&acc, middle, 256, 64, &mut rng))
        .collect();
    let beats: Vec<Vec<u64>> = heads
        .iter()
        .map(|h| pack(&acc.derived().layout, h.codes.view()).unwrap())
        .collect();
    for (h, head) in heads.iter().enumerate() {
        dev.load_codebook(h, head.codebook.clone()).unwrap();
    }
    let qs: Vec<HeadQuery> = (0..8)
        .map(|h| HeadQuery {
            slot: h,
            query: &heads[h].query,
            beats: &beats[h],
            n_tokens: middle,
            k: topk,
            stream: Some(1),
        })
        .collect();
    let per_head = sink + topk + local;
    let mut sel = DeviceSelection::new(&gpu, 8, per_head).unwrap();
    dev.engine().select_into(&qs, &split, &mut sel).unwrap();
    let ids = sel.to_host(&gpu).unwrap();
    for (h, head) in heads.iter().enumerate() {
        let golden = GoldenEngine::new(&acc, head.codebook.clone()).unwrap();
        let hits = golden
            .run(&head.query, &beats[h], middle, topk)
            .unwrap()
            .hits;
        let mut want: Vec<u32> = (0..sink as u32).collect();
        want.extend(hits.iter().map(|hit| sink as u32 + hit.index));
        want.extend((split.tokens - local) as u32..split.tokens as u32);
        assert_eq!(
            &ids[h * per_head..(h + 1) * per_head],
            &want[..],
            "head {h}"
        );
    }
    // A split the searches do not follow, and a buffer of the wrong shape, are refused.
    let mut bad = split;
    bad.topk += 1;
    assert!(matches!(
        dev.engine().select_into(&qs, &bad, &mut sel),
        Err(RuntimeError::Shape { .. })
    ));
    let mut small = DeviceSelection::new(&gpu, 8, per_head - 1).unwrap();
    assert!(matches!(
        dev.engine().select_into(&qs, &split, &mut small),
        Err(RuntimeError::Shape { .. })
    ));
}

#[test]
fn refused_calls_name_the_input_and_change_nothing() {
    let Some(gpu) = gpu() else { return };
    let acc = pqcache(4096);
    let mut dev = GpuDevice::on(gpu, acc.clone()).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let h = head(&acc, 1000, 256, 64, &mut rng);
    let beats = pack(&acc.derived().layout, h.codes.view()).unwrap();
    let q = HeadQuery {
        slot: 0,
        query: &h.query,
        beats: &beats,
        n_tokens: 1000,
        k: 50,
        stream: Some(4),
    };
    let e = dev.search(&[q]).unwrap_err();
    assert!(matches!(e, RuntimeError::NoCodebook { slot: 0, .. }), "{e}");
    dev.load_codebook(0, h.codebook.clone()).unwrap();
    let before = dev.search(&[q]).unwrap();
    let short = vec![0; 127];
    let bad = [
        HeadQuery { query: &short, ..q },
        HeadQuery {
            n_tokens: 5000,
            ..q
        },
        HeadQuery { k: 9000, ..q },
        HeadQuery {
            beats: &beats[..8],
            ..q
        },
    ];
    for b in bad {
        let e = dev.search(&[q, b]).unwrap_err();
        assert!(
            matches!(e, RuntimeError::Shape { .. } | RuntimeError::Golden(_)),
            "{e}"
        );
    }
    let mut wrong = h.codebook.clone();
    wrong.values[[0, 0, 0]] = 300;
    assert!(dev.load_codebook(0, wrong).is_err());
    assert_eq!(dev.search(&[q]).unwrap(), before);
}
