//! One Llama-3-8B layer's retrieval (8 KV heads, D = 128, M = 2, b = 6, k = 5 % of N) on
//! the `gpu` device against the `cpu` device on all host cores, same data, same run:
//! `cargo bench -p kvpq-runtime --features cuda --bench gpu_layer`. Prints a table of
//! medians; without a GPU it says so and stops.
//!
//! `select_into` is the decoding loop's path (the selection stays on the GPU: time to the
//! stream's completion); `search` copies the hits back to the host as the `Device` trait
//! does. Codes are resident: the timed calls copy no codes (the `+ 1 token` column copies
//! the appended words through the job table, as a decoding step does).

mod common;

use common::median_us;
use std::time::Instant;

use kvpq_core::golden::packing::pack;
use kvpq_core::golden::QuantCodebook;
use kvpq_core::spec::{
    Accelerator, AcceleratorBuilder, EngineConfig, PqConfig, ScannerConfig, TopKConfig,
};
use kvpq_runtime::backends::cpu::CpuDevice;
use kvpq_runtime::backends::gpu::GpuDevice;
use kvpq_runtime::cuda::{DeviceSelection, Gpu};
use kvpq_runtime::{Device, HeadQuery, Split};
use ndarray::{Array2, Array3};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const HEADS: usize = 8;

fn main() {
    let gpu = match Gpu::open(0) {
        Ok(g) => g,
        Err(e) => {
            println!("gpu_layer: {e}; nothing to measure");
            return;
        }
    };
    println!(
        "GPU: {}; host: {} threads",
        gpu.name(),
        rayon::current_num_threads()
    );
    println!("| N | k | gpu select_into (us) | of which queueing (us) | + 1 token per call (us) | gpu search (us) | cpu search (us) | cpu / gpu |");
    println!("|---|---|---|---|---|---|---|---|");
    // KVPQ_GPU_TOKENS=131072 measures one context only (for a profiler).
    let sizes: Vec<usize> = match std::env::var("KVPQ_GPU_TOKENS") {
        Ok(v) => vec![v.parse().expect("KVPQ_GPU_TOKENS is a token count")],
        Err(_) => vec![32_768, 131_072, 524_288],
    };
    for n in sizes {
        let k = n / 20;
        let acc: Accelerator = AcceleratorBuilder::new("bench", PqConfig::new(128, 2, 6))
            .scanner(ScannerConfig::new(42))
            .topk(TopKConfig::select((n / 10) as u32))
            .engine(EngineConfig::new(n as u32))
            .build()
            .expect("valid bench description");
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let heads: Vec<(QuantCodebook, Vec<i32>, Vec<u64>)> = (0..HEADS)
            .map(|_| {
                let values = Array3::from_shape_fn((2, 64, 64), |_| rng.random_range(-128..128));
                let query = (0..128).map(|_| rng.random_range(-127..128)).collect();
                let codes = Array2::from_shape_fn((n, 2), |_| rng.random_range(0..64) as u8);
                let beats = pack(&acc.derived().layout, codes.view()).expect("packs");
                (QuantCodebook { values, scale: 1.0 }, query, beats)
            })
            .collect();
        let mut dev = GpuDevice::on(gpu.clone(), acc.clone()).expect("kernels compile");
        let mut cpu = CpuDevice::new(acc.clone());
        for (h, (cb, _, _)) in heads.iter().enumerate() {
            dev.load_codebook(h, cb.clone()).expect("loads");
            cpu.load_codebook(h, cb.clone()).expect("loads");
        }
        let qs: Vec<HeadQuery> = heads
            .iter()
            .enumerate()
            .map(|(h, (_, q, beats))| HeadQuery {
                slot: h,
                query: q,
                beats,
                n_tokens: n,
                k,
                stream: Some(1),
            })
            .collect();
        let split = Split {
            tokens: n + 32,
            sink: 32,
            local: 0,
            middle: n,
            topk: k,
        };
        let mut sel = DeviceSelection::new(&gpu, HEADS, 32 + k).expect("allocates");
        let device = median_us(
            || {
                dev.engine()
                    .select_into(&qs, &split, &mut sel)
                    .expect("runs");
                gpu.synchronize().expect("finishes");
            },
            50,
        );
        // The host's share: queueing the call, without waiting for the GPU.
        let mut queued = Vec::new();
        for _ in 0..50 {
            let s = Instant::now();
            dev.engine()
                .select_into(&qs, &split, &mut sel)
                .expect("runs");
            queued.push(s.elapsed().as_secs_f64() * 1e6);
            gpu.synchronize().expect("finishes");
        }
        queued.sort_by(f64::total_cmp);
        let queued = queued[25];
        // A decoding step: every head's stream grew by one token since the last call.
        let mut grown = 0;
        let appending = median_us(
            || {
                grown += 1;
                let m = n - 60 + grown % 60;
                let qs: Vec<HeadQuery> =
                    qs.iter().map(|q| HeadQuery { n_tokens: m, ..*q }).collect();
                let split = Split {
                    tokens: m + 32,
                    middle: m,
                    ..split
                };
                dev.engine()
                    .select_into(&qs, &split, &mut sel)
                    .expect("runs");
                gpu.synchronize().expect("finishes");
            },
            50,
        );
        let host = median_us(|| drop(dev.search(&qs).expect("runs")), 50);
        assert_eq!(
            dev.search(&qs).expect("runs"),
            cpu.search(&qs).expect("runs"),
            "gpu and cpu differ"
        );
        let cpu_us = median_us(|| drop(cpu.search(&qs).expect("runs")), 7);
        println!(
            "| {n} | {k} | {device:.1} | {queued:.1} | {appending:.1} | {host:.1} | {cpu_us:.0} | {:.0} |",
            cpu_us / device
        );
    }
}
