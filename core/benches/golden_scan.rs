//! Golden model throughput: LUT build + scan + exact top-k over N = 128K tokens of packed
//! codes, for the example configurations. Reports tokens/s (criterion "elements").
//!
//! Also PQ codebook training at the PQCache shape: 2 subspaces of 128K x 64 (D = 128),
//! K = 64, 25 Lloyd iterations (tolerance 0, so every run does all 25); run it on one
//! thread with `RAYON_NUM_THREADS=1 cargo bench -p kvpq-core --bench golden_scan -- train`.
//!
//! An example built for shorter contexts (fastscan-4bit: 4096 tokens, k <= 256) is widened
//! to 128K tokens for the measurement, its k capped at its k_max.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ndarray::{Array2, Array3};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::hint::black_box;
use std::path::Path;

use kvpq_core::golden::packing::pack;
use kvpq_core::golden::{GoldenEngine, PqCodebook, QuantCodebook, TrainOptions};
use kvpq_core::spec::{Accelerator, AcceleratorConfig};

const N: usize = 128 * 1024;

fn bench_scan(c: &mut Criterion) {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut group = c.benchmark_group("golden_scan_topk");
    group.throughput(Throughput::Elements(N as u64));
    group.sample_size(20);
    for name in ["pqcache-llama3", "fastscan-4bit", "large-m16-b8"] {
        let mut cfg = AcceleratorConfig::from_toml_file(&examples.join(format!("{name}.toml")))
            .expect("example config parses");
        if (cfg.engine.max_tokens as usize) < N {
            cfg.engine.max_tokens = N as u32;
            // Keep the policy's k within k_max at the wider context.
            cfg.retrieval.budget = cfg
                .retrieval
                .budget
                .min(f64::from(cfg.topk.k_max) / N as f64);
        }
        let acc = Accelerator::new(cfg).expect("widened example is valid");
        let cfg = acc.config();
        let w = acc.derived().widths;
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let cmax = (1i32 << (w.centroid_bits - 1)) - 1;
        let qmax = (1i32 << (w.query_bits - 1)) - 1;
        let codebook = QuantCodebook {
            values: Array3::from_shape_fn(
                (
                    cfg.pq.m as usize,
                    w.codebook_size as usize,
                    w.sub_dim as usize,
                ),
                |_| rng.random_range(-cmax..=cmax),
            ),
            scale: 1.0,
        };
        let engine = GoldenEngine::new(&acc, codebook).unwrap();
        let n = N;
        let codes = Array2::from_shape_fn((n, cfg.pq.m as usize), |_| {
            rng.random_range(0..w.codebook_size) as u8
        });
        let beats = pack(&acc.derived().layout, codes.view()).unwrap();
        let q: Vec<i32> = (0..cfg.pq.head_dim)
            .map(|_| rng.random_range(-qmax..=qmax))
            .collect();
        let k = acc.policy_k(n as u32).clamp(1, cfg.topk.k_max) as usize;
        group.bench_with_input(BenchmarkId::new(name, format!("k={k}")), &k, |b, &k| {
            b.iter(|| engine.run(black_box(&q), black_box(&beats), n, k).unwrap())
        });
    }
    group.finish();
}

fn bench_train(c: &mut Criterion) {
    let mut group = c.benchmark_group("pq_train");
    group.sample_size(10);
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    // Keys around 64 centers, so the clusters are not uniform noise.
    let centers = Array2::from_shape_fn((64, 128), |_| rng.random_range(-4.0f32..4.0));
    let keys = Array2::from_shape_fn((N, 128), |(t, j)| {
        centers[[(t / 32) % 64, j]] + rng.random_range(-1.0f32..1.0)
    });
    let opts = TrainOptions {
        max_iters: 25,
        tolerance: 0.0,
        seed: 0,
    };
    group.bench_function("m2-k64-128k-25it", |b| {
        b.iter(|| PqCodebook::train(black_box(keys.view()), 2, 6, &opts, None).unwrap())
    });
    group.bench_function("encode-m2-k64-128k", |b| {
        let cb = PqCodebook::train(
            keys.view(),
            2,
            6,
            &TrainOptions {
                max_iters: 2,
                ..opts
            },
            None,
        )
        .unwrap();
        b.iter(|| cb.encode(black_box(keys.view())).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench_scan, bench_train);
criterion_main!(benches);
