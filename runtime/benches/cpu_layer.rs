//! One Llama-3-8B layer's retrieval on the CPU device (8 KV heads, D = 128, M = 2, b = 6,
//! k = 5 % of N) against the golden model doing the same searches one after the other:
//! `cargo bench -p kvpq-runtime --bench cpu_layer`.

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

fn layer(c: &mut Criterion) {
    let mut group = c.benchmark_group("layer");
    group.sample_size(10);
    for n in [32768usize, 131072] {
        let k = n / 20;
        let acc: Accelerator = AcceleratorBuilder::new("bench", PqConfig::new(128, 2, 6))
            .scanner(ScannerConfig::new(42))
            .topk(TopKConfig::select(k as u32 + 1))
            .engine(EngineConfig::new(n as u32))
            .build()
            .expect("valid bench description");
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let heads: Vec<(QuantCodebook, Vec<i32>, Vec<u64>)> = (0..HEADS)
            .map(|_| {
                let values = Array3::from_shape_fn((2, 64, 64), |_| rng.random_range(-128..128));
                let query = (0..128).map(|_| rng.random_range(-127..128)).collect();
                let codes = Array2::from_shape_fn((n, 2), |_| rng.random_range(0..64u8));
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
            })
            .collect();
        let goldens: Vec<GoldenEngine> = heads
            .iter()
            .map(|(cb, _, _)| GoldenEngine::new(&acc, cb.clone()).expect("engine"))
            .collect();
        group.throughput(Throughput::Elements((n * HEADS) as u64));
        group.bench_with_input(BenchmarkId::new("cpu_device", n), &n, |b, _| {
            b.iter(|| dev.search(&queries).expect("search"))
        });
        group.bench_with_input(BenchmarkId::new("golden_serial", n), &n, |b, _| {
            b.iter(|| {
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
