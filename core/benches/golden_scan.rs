//! Golden model throughput: LUT build + scan + exact top-k over N = 128K tokens of packed
//! codes, for the example configurations. Reports tokens/s (criterion "elements").
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
use kvpq_core::golden::{GoldenEngine, QuantCodebook};
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

criterion_group!(benches, bench_scan);
criterion_main!(benches);
