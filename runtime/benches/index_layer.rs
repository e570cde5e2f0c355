//! One Llama-3-8B layer through the retrieval index on the CPU device (PQCache config:
//! 8 KV heads, D = 128, M = 2, b = 6, budget 10 % + 32 sinks, GQA 4): `select` at 32K and
//! 128K tokens on one core and on all cores, and the prefill's codebook training + encoding
//! of a 128K-token layer on one core (core-seconds):
//! `cargo bench -p kvpq-runtime --bench index_layer`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kvpq_core::spec::{Accelerator, AcceleratorConfig};
use kvpq_core::workload::synthetic::{SyntheticKv, SyntheticSpec};
use kvpq_runtime::backends::cpu::CpuDevice;
use kvpq_runtime::{DType, Index, IndexOptions, TrainingOptions};
use ndarray::{Array2, Array3};

const HEADS: usize = 8;

fn pqcache() -> Accelerator {
    let text = include_str!("../../examples/pqcache-llama3.toml");
    let config = AcceleratorConfig::from_toml_str(text).expect("the example parses");
    Accelerator::new(config).expect("the example is valid")
}

/// Structured keys `[heads][n][128]` and one step's queries `[heads * 4][128]`.
fn workload(n: usize) -> (Array3<f32>, Array2<f32>) {
    let (keys, mut steps) = SyntheticKv::layer(&SyntheticSpec::new(n, 128, 1, 4), HEADS);
    (keys, steps.remove(0))
}

fn select(c: &mut Criterion) {
    let mut group = c.benchmark_group("select");
    group.sample_size(20);
    let all = std::thread::available_parallelism().map_or(1, |n| n.get());
    for n in [32768usize, 131072] {
        let (keys, queries) = workload(n);
        group.throughput(Throughput::Elements((n * HEADS) as u64));
        for threads in [1, all] {
            // The CPU device on its own pool of `threads` threads.
            let device = CpuDevice::with_threads(pqcache(), threads).expect("threads");
            let opts = IndexOptions::new(1, HEADS).with_dtype(DType::F16);
            let index = Index::new(pqcache(), opts, vec![Box::new(device)]).expect("index");
            index.prefill(0, keys.view(), keys.view()).expect("prefill");
            index.wait_trained(0).expect("trained");
            let id = BenchmarkId::new(format!("{threads}_threads"), n);
            group.bench_with_input(id, &n, |b, _| {
                b.iter(|| index.select(0, queries.view()).expect("select"))
            });
        }
    }
    group.finish();
}

fn prefill(c: &mut Criterion) {
    let mut group = c.benchmark_group("prefill_one_core");
    group.sample_size(10);
    let n = 131072;
    let (keys, _) = workload(n);
    let training = TrainingOptions {
        threads: 1,
        ..TrainingOptions::default()
    };
    let opts = IndexOptions::new(1, HEADS)
        .with_dtype(DType::F16)
        .with_training(training);
    let index = Index::cpu(pqcache(), opts).expect("index");
    group.bench_with_input(BenchmarkId::new("train_and_encode", n), &n, |b, _| {
        b.iter(|| {
            index.prefill(0, keys.view(), keys.view()).expect("prefill");
            index.wait_trained(0).expect("trained");
        })
    });
    group.finish();
}

criterion_group!(benches, select, prefill);
criterion_main!(benches);
