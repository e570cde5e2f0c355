//! Measures the generated engine in Verilator and prints tables (`cargo bench -p sim`):
//! scan efficiency of the example configurations at N = 4K, 32K and 128K, top-k intake and
//! drain for both strategies at k = 64, 1024 and 8192, and simulation speed.
//! `KVPQ_BENCH_QUICK=1` limits N to 32K.

use std::path::Path;

use hwgen_cli::commands::sim::{run, SimOptions, SimReport};
use kvpq_core::spec::{Accelerator, AcceleratorConfig, TopKConfig, TopKStrategy};
use sim::default_cache;

fn example(name: &str) -> AcceleratorConfig {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../examples/{name}.toml"));
    AcceleratorConfig::from_toml_file(&path).expect("example parses")
}

fn simulate(acc: &Accelerator, tokens: u32, k: Option<u32>) -> SimReport {
    let opts = SimOptions {
        tokens,
        queries: 3,
        k,
        ..SimOptions::default()
    };
    run(acc, &opts, &default_cache()).unwrap_or_else(|e| panic!("{}: {e}", acc.config().name))
}

fn main() {
    let quick = std::env::var_os("KVPQ_BENCH_QUICK").is_some();
    let lengths: &[u32] = if quick {
        &[4096, 32768]
    } else {
        &[4096, 32768, 131072]
    };

    println!("## Scan efficiency (tokens / (lanes x scan cycles)), queries back to back");
    println!("| config | N | k | scan cycles | scan eff. | model | latency | interval | model interval |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for name in ["pqcache-llama3", "fastscan-4bit", "large-m16-b8"] {
        let acc = Accelerator::new(example(name)).unwrap();
        for &n in lengths
            .iter()
            .filter(|&&n| n <= acc.config().engine.max_tokens)
        {
            let r = simulate(&acc, n, None);
            println!(
                "| {name} | {n} | {} | {} | {:.4} | {:.4} | {} | {} | {} |",
                r.k, r.scan_cycles, r.scan_efficiency, r.model.2, r.latency, r.interval, r.model.1
            );
        }
    }

    println!("\n## Top-k intake and drain (pqcache-llama3 shape, N = 32768, 42 lanes)");
    println!("| strategy | k | scores taken per scan cycle | drain cycles after the scan | model drain |");
    println!("|---|---|---|---|---|");
    for strategy in [TopKStrategy::Systolic, TopKStrategy::Select] {
        for k in [64u32, 1024, 8192] {
            let mut cfg = example("pqcache-llama3");
            cfg.name = format!("intake-{strategy}-{k}");
            cfg.topk = match strategy {
                TopKStrategy::Systolic => TopKConfig::systolic(k),
                TopKStrategy::Select => TopKConfig::select(k),
            };
            // k is set per query; keep the policy's own k within k_max.
            cfg.retrieval.budget = f64::from(k) / f64::from(cfg.engine.max_tokens);
            let acc = match Accelerator::new(cfg) {
                Ok(acc) => acc,
                Err(e) => {
                    let why = e
                        .violations()
                        .first()
                        .map_or(e.to_string(), |v| v.rule.clone());
                    println!("| {strategy} | {k} | refused: {why} | | |");
                    continue;
                }
            };
            let n = 32768;
            let r = simulate(&acc, n, Some(k));
            let c = &acc.derived().cycles;
            let drain = r.latency - c.lut_build - r.scan_cycles - c.scan_depth - 3;
            println!(
                "| {strategy} | {k} | {:.2} | {drain} | {} |",
                f64::from(n) / r.scan_cycles as f64,
                c.topk_drain(u64::from(n), u64::from(k))
            );
        }
    }

    println!("\n## Simulation speed (default config pqcache-llama3, N = 32768)");
    let acc = Accelerator::new(example("pqcache-llama3")).unwrap();
    let r = simulate(&acc, 32768, None);
    println!(
        "{:.3} M cycles/s ({} cycles)",
        r.cycles_per_second / 1e6,
        r.cycles
    );
}
