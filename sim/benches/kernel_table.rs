//! The Alveo RTL kernel in Verilator (`cargo bench -p sim --bench kernel_table`): cycles from
//! the ap_start write to ap_done through its AXI ports (memory answering after 1-6 cycles,
//! no stalls), next to the engine's own cycle model, so the wrapper's cost per query shows.
//! Every result is checked against the golden model.

use std::path::Path;

use hwgen::emit::Design;
use kvpq_core::golden::packing::pack;
use kvpq_core::golden::{GoldenEngine, QuantCodebook};
use kvpq_core::spec::{Accelerator, AcceleratorConfig, Platform};
use ndarray::{Array2, Array3};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sim::{build_model, default_cache, KernelCall, KernelSim, Stalls};

fn example(name: &str) -> Accelerator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../examples/{name}.toml"));
    let cfg = AcceleratorConfig::from_toml_file(&path).expect("example parses");
    Accelerator::new(cfg)
        .and_then(|a| {
            if a.config().target.platform.is_alveo() {
                Ok(a)
            } else {
                a.retarget(Platform::U280)
            }
        })
        .expect("example fits an Alveo kernel")
}

fn median(mut xs: Vec<u64>) -> u64 {
    xs.sort_unstable();
    xs[xs.len() / 2]
}

fn main() {
    println!("## Alveo RTL kernel through AXI (cycles from ap_start to ap_done)");
    println!(
        "| config | N | k | first call (codebook load) | later calls (median of 3) | engine model | wrapper cycles |"
    );
    println!("|---|---|---|---|---|---|---|");
    for name in ["pqcache-llama3", "fastscan-4bit"] {
        let acc = example(name);
        let c = acc.config();
        let w = acc.derived().widths;
        let design = Design::render(&acc).unwrap();
        let built = build_model(&design, "kvpq_krnl", &default_cache()).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let (m, k, sub) = (
            c.pq.m as usize,
            w.codebook_size as usize,
            w.sub_dim as usize,
        );
        let cmax = (1i32 << (w.centroid_bits - 1)) - 1;
        let qmax = (1i32 << (w.query_bits - 1)) - 1;
        let codebook = QuantCodebook {
            values: Array3::from_shape_fn((m, k, sub), |_| rng.random_range(-cmax..=cmax)),
            scale: 1.0,
        };
        let golden = GoldenEngine::new(&acc, codebook.clone()).unwrap();
        for n in [4096u32, 32768]
            .into_iter()
            .filter(|&n| n <= c.engine.max_tokens)
        {
            let codes = Array2::from_shape_fn((n as usize, m), |_| rng.random_range(0..k) as u8);
            let beats = pack(&acc.derived().layout, codes.view()).unwrap();
            let topk = acc.policy_k(n).min(c.topk.k_max);
            let mut sim = KernelSim::new(&built, &acc, 1, Stalls::NONE).unwrap();
            let mut cycles = Vec::new();
            for i in 0..4 {
                let q: Vec<i32> = (0..c.pq.head_dim)
                    .map(|_| rng.random_range(-qmax..=qmax))
                    .collect();
                let call = KernelCall {
                    codebook: (i == 0).then_some(&codebook),
                    query: &q,
                    beats: &beats,
                    n_tokens: n,
                    k: topk,
                };
                let got = sim.call(&call).unwrap();
                let want = golden.run(&q, &beats, n as usize, topk as usize).unwrap();
                assert_eq!(got.result, want, "{name}: kernel and golden model disagree");
                cycles.push(got.cycles);
            }
            let later = median(cycles[1..].to_vec());
            let model = acc.derived().cycles.lut_build
                + acc
                    .derived()
                    .cycles
                    .query_latency(u64::from(n), u64::from(topk));
            println!(
                "| {name} | {n} | {topk} | {} | {later} | {model} | {} |",
                cycles[0],
                later as i64 - model as i64
            );
        }
    }
}
