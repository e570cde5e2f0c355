//! Co-simulation of the Alveo RTL kernel (`kvpq_krnl`: AXI4-Lite control, AXI4 masters,
//! the engine inside) against the golden model, driven as XRT would drive it: arguments in
//! registers, ap_start, ap_done polling, the interrupt, results read back from device
//! memory. Buffers sit at random offsets in their pages so bursts meet 4 KiB boundaries;
//! memory answers with random latency and stalls and checks the AXI4 rules.
//!
//! 12 random descriptions by default (`KVPQ_KERNEL_CONFIGS=N`, `KVPQ_KERNEL_SEED=S`), plus
//! the fastscan example at its full beat width. Memory answering SLVERR or DECERR sets the
//! header's error bits, and the next clean run is bit-exact again.

use hwgen::emit::Design;
use kvpq_core::golden::GoldenEngine;
use kvpq_core::interface::alveo::axi;
use kvpq_core::spec::{Accelerator, Platform};
use kvpq_tests::random::small_accelerators;
use kvpq_tests::workload::{draw, Values};
use kvpq_tests::{compare, env_or};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use sim::{build_model, default_cache, Fault, FaultAt, KernelCall, KernelSim, Stalls};

/// The kernel model of `acc` (built or taken from the cache), reset, with the host and
/// memory around it.
fn kernel_sim(acc: &Accelerator, seed: u64, stalls: Stalls) -> Result<KernelSim, String> {
    let name = &acc.config().name;
    let design = Design::render(acc).map_err(|e| e.to_string())?;
    let built = build_model(&design, "kvpq_krnl", &default_cache()).map_err(|e| e.to_string())?;
    KernelSim::new(&built, acc, seed, stalls).map_err(|e| format!("{name}: {e}"))
}

/// Runs a few queries through the kernel: the first loads the codebook, later ones reuse
/// it, one reloads another codebook; n_tokens and k include 0, clamping and N < k.
fn run_config(acc: &Accelerator, seed: u64, max_n: u32) -> Result<usize, String> {
    let name = acc.config().name.clone();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let stalls = Stalls {
        input_valid: rng.random_range(0.4..=1.0),
        output_ready: rng.random_range(0.4..=1.0),
    };
    let mut sim = kernel_sim(acc, seed, stalls)?;
    let c = acc.config();
    let n_all = c.engine.max_tokens.min(max_n);
    let k_max = c.topk.k_max;
    let mut checked = 0;
    for (round, values) in [Values::Uniform, Values::Ties].into_iter().enumerate() {
        let shapes = [
            (n_all, k_max),
            (rng.random_range(1..=n_all), rng.random_range(1..=k_max)),
            (n_all.min(k_max.saturating_sub(1)), k_max), // N < k
            (0, 3),                                      // empty
            (u32::MAX, u32::MAX),                        // both clamped by the kernel
        ];
        let wl = draw(
            acc,
            c.engine.max_tokens as usize,
            shapes.len(),
            values,
            seed ^ round as u64,
        );
        let golden = GoldenEngine::new(acc, wl.codebook.clone()).map_err(|e| e.to_string())?;
        for (i, (&(n, k), q)) in shapes.iter().zip(&wl.queries).enumerate() {
            let call = KernelCall {
                codebook: (i == 0).then_some(&wl.codebook),
                query: q,
                beats: &wl.beats,
                n_tokens: n,
                k,
            };
            let got = sim
                .call(&call)
                .map_err(|e| format!("{name} ({values:?}, n {n}, k {k}): {e}"))?;
            let n_eff = n.min(c.engine.max_tokens) as usize;
            let k_eff = k.min(k_max) as usize;
            let want = golden
                .run(q, &wl.beats, n_eff, k_eff)
                .map_err(|e| e.to_string())?;
            compare("kernel", &got.result, got.count as usize, &want).map_err(|e| {
                format!(
                    "{name} ({values:?}, n {n}, k {k}): {e}\n{}",
                    acc.config().to_toml_string()
                )
            })?;
            checked += 1;
        }
    }
    Ok(checked)
}

/// The `i`-th random description on an Alveo card (U280 and U55C alternate), as the sweep
/// retargets it (its kernel model is cached under that name).
pub(crate) fn alveo(acc: &Accelerator, i: usize) -> Accelerator {
    let platform = if i.is_multiple_of(2) {
        Platform::U280
    } else {
        Platform::U55c
    };
    acc.retarget(platform)
        .expect("small beats fit an AXI4 master")
}

#[test]
fn rtl_kernel_matches_the_golden_model_through_axi() {
    let count = env_or("KVPQ_KERNEL_CONFIGS", 12) as usize;
    let seed = env_or("KVPQ_KERNEL_SEED", 23);
    let mut cases: Vec<(Accelerator, u32)> = small_accelerators(seed, count)
        .iter()
        .enumerate()
        .map(|(i, a)| (alveo(a, i), u32::MAX))
        .collect();
    // A real width: 512-bit beats (4 tokens), a codebook of 2048 words (8+ bursts).
    cases.push((alveo(&kvpq_tests::example("fastscan-4bit"), 0), 3000));
    let results: Vec<Result<usize, String>> = cases
        .par_iter()
        .enumerate()
        .map(|(i, (acc, max_n))| run_config(acc, seed * 1000 + i as u64, *max_n))
        .collect();
    let failures: Vec<String> = results.iter().filter_map(|r| r.clone().err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} kernels mismatched (KVPQ_KERNEL_SEED={seed} KVPQ_KERNEL_CONFIGS={count}):\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    let queries: usize = results.iter().filter_map(|r| r.as_ref().ok()).sum();
    println!(
        "{} kernels, {queries} queries bit-exact through AXI",
        cases.len()
    );
}

/// Runs `acc`'s kernel with an injected error on a code read, on a codebook read and on a
/// result write: each run completes and flags the error (a read error withholds the
/// results: count 0), and the clean run after each is bit-exact with the golden model.
fn memory_errors(acc: &Accelerator, seed: u64) -> Result<usize, String> {
    let name = acc.config().name.clone();
    let stalls = Stalls {
        input_valid: 0.7,
        output_ready: 0.7,
    };
    let mut sim = kernel_sim(acc, seed, stalls)?;
    let c = acc.config();
    let n = c.engine.max_tokens.min(600);
    let k = c.topk.k_max;
    let wl = draw(acc, c.engine.max_tokens as usize, 4, Values::Uniform, seed);
    let golden = GoldenEngine::new(acc, wl.codebook.clone()).map_err(|e| e.to_string())?;
    let burst = |master: &str| FaultAt::Burst {
        master: master.into(),
        n: 0,
    };
    let cases = [
        (
            "SLVERR on the first code burst",
            burst("m_axi_gmem1"),
            axi::SLVERR,
            false,
        ),
        (
            "DECERR on the codebook's first word",
            FaultAt::Range {
                arg: "codebook".into(),
                bytes: 0..4,
            },
            axi::DECERR,
            false,
        ),
        (
            "SLVERR on the first result write",
            burst("m_axi_gmem2"),
            axi::SLVERR,
            true,
        ),
    ];
    let mut checked = 0;
    for (i, (what, at, resp, write)) in cases.into_iter().enumerate() {
        let q = &wl.queries[i];
        let call = KernelCall {
            codebook: Some(&wl.codebook),
            query: q,
            beats: &wl.beats,
            n_tokens: n,
            k,
        };
        let want = golden
            .run(q, &wl.beats, n as usize, k as usize)
            .map_err(|e| e.to_string())?;
        sim.inject(Fault { at, resp })
            .map_err(|e| format!("{name}: {e}"))?;
        let bad = sim
            .call(&call)
            .map_err(|e| format!("{name}, {what}: {e}"))?;
        let flags = (bad.read_error, bad.write_error);
        if flags != (!write, write) {
            return Err(format!(
                "{name}, {what}: header flags (read, write) = {flags:?}"
            ));
        }
        if !write && (bad.count != 0 || !bad.result.hits.is_empty()) {
            return Err(format!(
                "{name}, {what}: count {} after a read error",
                bad.count
            ));
        }
        if write && bad.count as usize != want.hits.len() {
            return Err(format!(
                "{name}, {what}: count {}, expected {}",
                bad.count,
                want.hits.len()
            ));
        }
        // The next run, without errors (the codebook reloaded: it may hold bad data now).
        let good = sim
            .call(&call)
            .map_err(|e| format!("{name}, after {what}: {e}"))?;
        if good.read_error || good.write_error {
            return Err(format!("{name}, after {what}: error flags still set"));
        }
        compare("kernel", &good.result, good.count as usize, &want)
            .map_err(|e| format!("{name}, after {what}: {e}"))?;
        checked += 1;
    }
    Ok(checked)
}

#[test]
fn rtl_kernel_flags_memory_errors_and_recovers() {
    let seed = env_or("KVPQ_KERNEL_SEED", 23);
    let mut cases: Vec<Accelerator> = small_accelerators(seed + 7, 2)
        .iter()
        .enumerate()
        .map(|(i, a)| alveo(a, i))
        .collect();
    cases.push(alveo(&kvpq_tests::example("fastscan-4bit"), 0));
    let results: Vec<Result<usize, String>> = cases
        .par_iter()
        .enumerate()
        .map(|(i, acc)| memory_errors(acc, seed * 1000 + 500 + i as u64))
        .collect();
    let failures: Vec<String> = results.iter().filter_map(|r| r.clone().err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} kernels failed the memory error runs (KVPQ_KERNEL_SEED={seed}):\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
