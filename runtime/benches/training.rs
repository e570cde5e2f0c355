//! What subsampled, early-stopped training costs and loses, on one Llama-3-8B layer (PQCache
//! config: 8 KV heads, D = 128, M = 2, b = 6): prefill seconds on one core and recall@k of the
//! selections against the exact float top-k, for the index's default training and for
//! full-data training (every key, 25 iterations, tolerance 1e-4); then the recall after 4K
//! generated tokens whose keys drift to new topics, with and without background
//! re-training (half of a re-training's points from the tokens appended since the last).
//! The default training also runs on all cores. Prints a table:
//! `cargo bench -p kvpq-runtime --bench training` (`KVPQ_BENCH_TOKENS`, default 131072).

use std::time::Instant;

use kvpq_core::spec::{Accelerator, AcceleratorConfig};
use kvpq_core::workload::synthetic::{SyntheticKv, SyntheticSpec};
use kvpq_runtime::{DType, Index, IndexOptions, TrainingOptions};
use ndarray::{s, Array2, Array3, Axis};

const HEADS: usize = 8;
const D: usize = 128;
const G: usize = 4;
const QUERIES: usize = 8;
const GENERATED: usize = 4096;

fn pqcache() -> Accelerator {
    let text = include_str!("../../examples/pqcache-llama3.toml");
    let config = AcceleratorConfig::from_toml_str(text).expect("the example parses");
    Accelerator::new(config).expect("the example is valid")
}

/// Keys `[heads][n][D]` and `QUERIES` steps of queries `[heads * G][D]`.
fn workload(n: usize, seed: u64) -> (Array3<f32>, Vec<Array2<f32>>) {
    let mut spec = SyntheticSpec::new(n, D, QUERIES, G);
    spec.seed = seed;
    SyntheticKv::layer(&spec, HEADS)
}

/// Mean recall@k of the selections' top-k over the query steps.
fn mean_recall(index: &Index, keys: &Array3<f32>, steps: &[Array2<f32>]) -> f64 {
    let total: f64 = steps
        .iter()
        .map(|q| {
            let sel = index.select(0, q.view()).expect("select");
            sel.recall(keys.view(), q.view())
        })
        .sum();
    total / steps.len() as f64
}

fn index(training: TrainingOptions, retrain: Option<usize>, capacity: usize) -> Index {
    let mut opts = IndexOptions::new(1, HEADS)
        .with_dtype(DType::F16)
        .with_capacity(capacity)
        .with_training(training);
    opts.retrain_every = retrain;
    Index::cpu(pqcache(), opts).expect("index")
}

fn main() {
    // `cargo bench` passes `--bench`; this binary takes no arguments.
    let n: usize = std::env::var("KVPQ_BENCH_TOKENS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(131072)
        .min(131072 - GENERATED);
    let capacity = 32 + 131072;
    let (keys, steps) = workload(n, 1);
    let subsampled = TrainingOptions {
        threads: 1,
        ..TrainingOptions::default()
    };
    let full = TrainingOptions {
        points_per_centroid: usize::MAX,
        max_iters: 25,
        tolerance: 1e-4,
        seed: 0,
        threads: 1,
    };
    println!(
        "## Prefill training, one layer ({HEADS} KV heads x {n} tokens, D = {D}, M = 2, b = 6)\n"
    );
    let all_cores = TrainingOptions {
        threads: 0,
        ..subsampled
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("| training | threads | points per head | prefill call s (store) | training + encoding s | recall@k (k = 5 %) |");
    println!("|---|---|---|---|---|---|");
    let fewer = |points_per_centroid| TrainingOptions {
        points_per_centroid,
        ..subsampled
    };
    for (name, t) in [
        ("subsampled (default)", subsampled),
        ("subsampled (default)", all_cores),
        ("128 points per centroid", fewer(128)),
        ("256 points per centroid", fewer(256)),
        ("full data", full),
    ] {
        let index = index(t, None, capacity);
        let start = Instant::now();
        index.prefill(0, keys.view(), keys.view()).expect("prefill");
        let stored = start.elapsed().as_secs_f64();
        index.wait_trained(0).expect("trained");
        let trained = start.elapsed().as_secs_f64() - stored;
        let points = n.min(t.points_per_centroid.saturating_mul(64));
        let r = mean_recall(&index, &keys, &steps);
        let threads = if t.threads == 0 { cores } else { t.threads };
        println!("| {name} | {threads} | {points} | {stored:.3} | {trained:.3} | {r:.4} |");
    }

    // Generation drifts: 4K new tokens from other topics, queried by queries about them.
    let (new_keys, new_steps) = workload(GENERATED, 2);
    let all = ndarray::concatenate(Axis(1), &[keys.view(), new_keys.view()]).expect("concat");
    println!(
        "\n## Recall after {GENERATED} generated tokens from new topics (appended 16 at a time)\n"
    );
    println!("| re-training | recall@k, queries on the new topics | recall@k, prefill queries |");
    println!("|---|---|---|");
    for retrain in [None, Some(1024)] {
        let training = TrainingOptions {
            threads: 0,
            ..TrainingOptions::default()
        };
        let index = index(training, retrain, capacity);
        index.prefill(0, keys.view(), keys.view()).expect("prefill");
        for chunk in 0..GENERATED / 16 {
            let part = new_keys.slice(s![.., chunk * 16..(chunk + 1) * 16, ..]);
            index.append(0, part, part).expect("append");
        }
        index.wait_trained(0).expect("trained");
        let label = retrain.map_or("none".to_string(), |r| format!("every {r} tokens"));
        println!(
            "| {label} | {:.4} | {:.4} |",
            mean_recall(&index, &all, &new_steps),
            mean_recall(&index, &all, &steps)
        );
    }
}
