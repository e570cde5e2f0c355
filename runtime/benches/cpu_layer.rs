//! One Llama-3-8B layer's retrieval on the CPU device (8 KV heads, D = 128, k = 5 % of N,
//! random codes) against the golden model doing the same searches one after the other:
//! `cargo bench -p kvpq-runtime --bench cpu_layer`.
//!
//! Shapes: the PQCache one (M = 2, b = 6: the joint path) at 32K and 128K tokens, and two
//! general-path ones at 128K (M = 32, b = 4 and M = 16, b = 8). The device runs on one core
//! (a one-thread rayon pool) and on all cores; throughput is tokens per second (8 x N per
//! layer).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kvpq_core::golden::packing::pack;
use kvpq_core::golden::{GoldenEngine, QuantCodebook};
use kvpq_core::spec::{
    Accelerator, AcceleratorBuilder, EngineConfig, PqConfig, ScannerConfig, TopKConfig,
};
use kvpq_runtime::backends::cpu::CpuDevice;
use kvpq_runtime::{Device, HeadQuery};
use ndarray::{Array2, Array3};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const HEADS: usize = 8;

/// (name, M, b, N).
const CASES: [(&str, u32, u32, usize); 4] = [
    ("m2-b6", 2, 6, 32768),
    ("m2-b6", 2, 6, 131072),
    ("m32-b4", 32, 4, 131072),
    ("m16-b8", 16, 8, 131072),
];

fn layer(c: &mut Criterion) {
    let mut group = c.benchmark_group("layer");
    group.sample_size(10);
    let one_core = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("a one-thread pool");
    for (name, m, b, n) in CASES {
        let k = n / 20;
        let (kc, sub) = (1usize << b, 128 / m as usize);
        let acc: Accelerator = AcceleratorBuilder::new("bench", PqConfig::new(128, m, b))
            .scanner(ScannerConfig::new(512 / (m * b)))
            .topk(TopKConfig::select(k as u32 + 1))
            .engine(EngineConfig::new(n as u32))
            .build()
            .expect("valid bench description");
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let heads: Vec<(QuantCodebook, Vec<i32>, Vec<u64>)> = (0..HEADS)
            .map(|_| {
                let values =
                    Array3::from_shape_fn((m as usize, kc, sub), |_| rng.random_range(-128..128));
                let query = (0..128).map(|_| rng.random_range(-127..128)).collect();
                let codes =
                    Array2::from_shape_fn((n, m as usize), |_| rng.random_range(0..kc) as u8);
                let beats = pack(&acc.derived().layout, codes.view()).expect("packs");
                (QuantCodebook { values, scale: 1.0 }, query, beats)
            })
            .collect();
        let mut dev = CpuDevice::new(acc.clone());
        for (i, (cb, _, _)) in heads.iter().enumerate() {
            dev.load_codebook(i, cb.clone()).expect("codebook");
        }
        let queries: Vec<HeadQuery> = heads
            .iter()
            .enumerate()
            .map(|(head, (_, query, beats))| HeadQuery {
                slot: head,
                query,
                beats,
                n_tokens: n,
                k,
                stream: None,
            })
            .collect();
        let goldens: Vec<GoldenEngine> = heads
            .iter()
            .map(|(cb, _, _)| GoldenEngine::new(&acc, cb.clone()).expect("engine"))
            .collect();
        let id = |what: &str| BenchmarkId::new(format!("{name}/{what}"), n);
        group.throughput(Throughput::Elements((n * HEADS) as u64));
        group.bench_function(id("cpu_1_core"), |bench| {
            bench.iter(|| one_core.install(|| dev.search(&queries).expect("search")))
        });
        group.bench_function(id("cpu_all_cores"), |bench| {
            bench.iter(|| dev.search(&queries).expect("search"))
        });
        group.bench_function(id("golden_serial"), |bench| {
            bench.iter(|| {
                goldens
                    .iter()
                    .zip(&queries)
                    .map(|(g, q)| g.run(q.query, q.beats, n, k).expect("run"))
                    .collect::<Vec<_>>()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, layer);
criterion_main!(benches);
