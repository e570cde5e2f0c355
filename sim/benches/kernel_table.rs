//! The Alveo RTL kernel in Verilator (`cargo bench -p sim --bench kernel_table`): cycles from
//! the ap_start write to ap_done of a call answering one layer (8 jobs) through its AXI
//! ports (memory answering after 1-6 cycles, no stalls), next to the kernel's cycle model
//! (`CycleModel::call_cycles`). Every result is checked against the golden model.
//! `KVPQ_KERNEL_TOKENS=4096,131072` picks the token counts. The engines hold one layer's
//! codebooks (`engine.heads` at most 8).

use std::path::Path;

use hwgen::emit::Design;
use kvpq_core::golden::packing::pack;
use kvpq_core::golden::{GoldenEngine, QuantCodebook};
use kvpq_core::interface::alveo::job_words;
use kvpq_core::spec::{Accelerator, AcceleratorConfig, Platform};
use ndarray::{Array2, Array3};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sim::{build_model, default_cache, KernelCall, KernelJob, KernelSim, Stalls};

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
    // Jobs of one call: every KV head of a Llama-3-8B layer.
    const LAYER_JOBS: usize = 8;
    println!("## Alveo RTL kernel through AXI: one call answers a layer ({LAYER_JOBS} jobs)");
    println!(
        "| config | engines | N | k | first call (codebook load) | later calls (median of 2) | cycle model | later call at the clock |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let ns: Vec<u32> = std::env::var("KVPQ_KERNEL_TOKENS")
        .ok()
        .map(|v| {
            v.split(',')
                .map(|x| x.parse().expect("token counts"))
                .collect()
        })
        .unwrap_or_else(|| vec![4096, 32768]);
    for name in ["pqcache-llama3", "fastscan-4bit"] {
        // One layer's codebooks are loaded (at one 32-bit word per cycle all 256 of the
        // default would take 2 M cycles in Verilator); a call's cycles do not depend on how
        // many codebooks the engines hold.
        let mut cfg = example(name).config().clone();
        cfg.engine.heads = Some(cfg.engine.heads().min(LAYER_JOBS as u32));
        let acc = Accelerator::new(cfg).expect("fewer heads stay valid");
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
        let heads = c.engine.heads() as usize;
        let codebooks: Vec<QuantCodebook> = (0..heads)
            .map(|_| QuantCodebook {
                values: Array3::from_shape_fn((m, k, sub), |_| rng.random_range(-cmax..=cmax)),
                scale: 1.0,
            })
            .collect();
        let goldens: Vec<GoldenEngine> = codebooks
            .iter()
            .map(|cb| GoldenEngine::new(&acc, cb.clone()).unwrap())
            .collect();
        for &n in ns.iter().filter(|&&n| n <= c.engine.max_tokens) {
            let beats: Vec<Vec<u64>> = (0..LAYER_JOBS)
                .map(|_| {
                    let codes =
                        Array2::from_shape_fn((n as usize, m), |_| rng.random_range(0..k) as u8);
                    pack(&acc.derived().layout, codes.view()).unwrap()
                })
                .collect();
            let topk = acc.policy_k(n).min(c.topk.k_max);
            let mut sim = KernelSim::new(&built, &acc, 1, Stalls::NONE).unwrap();
            let mut cycles = Vec::new();
            for i in 0..3 {
                let queries: Vec<Vec<i32>> = (0..LAYER_JOBS)
                    .map(|_| {
                        (0..c.pq.head_dim)
                            .map(|_| rng.random_range(-qmax..=qmax))
                            .collect()
                    })
                    .collect();
                let jobs: Vec<KernelJob> = (0..LAYER_JOBS)
                    .map(|j| KernelJob {
                        head: (j % heads) as u32,
                        query: &queries[j],
                        beats: &beats[j],
                        n_tokens: n,
                        k: topk,
                    })
                    .collect();
                let call = KernelCall {
                    codebooks: (i == 0).then_some(codebooks.as_slice()),
                    jobs: &jobs,
                };
                let got = sim.call(&call).unwrap();
                for (j, o) in got.jobs.iter().enumerate() {
                    let want = goldens[j % heads]
                        .run(&queries[j], &beats[j], n as usize, topk as usize)
                        .unwrap();
                    assert_eq!(o.result, want, "{name}: kernel and golden model disagree");
                }
                cycles.push(got.cycles);
            }
            let later = median(cycles[1..].to_vec());
            let engines = c.target.engines();
            let model = acc.derived().cycles.call_cycles(
                u64::from(n),
                u64::from(topk),
                LAYER_JOBS as u64,
                u64::from(engines),
                u64::from(job_words(c.pq.head_dim)),
            );
            println!(
                "| {name} | {engines} | {n} | {topk} | {} | {later} | {model} | {:.1} us |",
                cycles[0],
                later as f64 / c.target.clock_mhz
            );
        }
    }
}
