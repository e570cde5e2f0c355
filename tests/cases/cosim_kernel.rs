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
use kvpq_core::golden::{GoldenEngine, QuantCodebook};
use kvpq_core::interface::alveo::{axi, job_words};
use kvpq_core::spec::{Accelerator, Platform};
use kvpq_tests::random::small_accelerators;
use kvpq_tests::workload::{draw, IntWorkload, Values};
use kvpq_tests::{compare, env_or};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use sim::{build_model, default_cache, Fault, FaultAt, KernelCall, KernelJob, KernelSim, Stalls};

/// The kernel model of `acc` (built or taken from the cache), reset, with the host and
/// memory around it.
fn kernel_sim(acc: &Accelerator, seed: u64, stalls: Stalls) -> Result<KernelSim, String> {
    let name = &acc.config().name;
    let design = Design::render(acc).map_err(|e| e.to_string())?;
    let built = build_model(&design, "kvpq_krnl", &default_cache()).map_err(|e| e.to_string())?;
    KernelSim::new(&built, acc, seed, stalls).map_err(|e| format!("{name}: {e}"))
}

/// One workload per codebook head (codebook, beats, queries) and its golden model.
fn head_workloads(
    acc: &Accelerator,
    queries: usize,
    values: Values,
    seed: u64,
) -> Result<Vec<(IntWorkload, GoldenEngine<'_>)>, String> {
    let c = acc.config();
    (0..c.engine.heads())
        .map(|h| {
            let wl = draw(
                acc,
                c.engine.max_tokens as usize,
                queries,
                values,
                seed ^ (u64::from(h) << 20),
            );
            let golden = GoldenEngine::new(acc, wl.codebook.clone()).map_err(|e| e.to_string())?;
            Ok((wl, golden))
        })
        .collect()
}

/// Runs two calls of a few jobs each through the kernel, on random heads: the first loads
/// every head's codebook, the second reuses them and adds a job naming a head past
/// engine.heads (flagged, no results); n_tokens and k include 0, clamping and N < k.
fn run_config(acc: &Accelerator, seed: u64, max_n: u32) -> Result<usize, String> {
    let name = acc.config().name.clone();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let stalls = Stalls {
        input_valid: rng.random_range(0.4..=1.0),
        output_ready: rng.random_range(0.4..=1.0),
    };
    let mut sim = kernel_sim(acc, seed, stalls)?;
    let c = acc.config();
    let heads = c.engine.heads();
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
        let wls = head_workloads(acc, shapes.len(), values, seed ^ round as u64)?;
        let codebooks: Vec<QuantCodebook> = wls.iter().map(|(w, _)| w.codebook.clone()).collect();
        for call_no in 0..2 {
            let mut heads_of = Vec::new();
            let mut jobs = Vec::new();
            for (i, &(n, k)) in shapes.iter().enumerate() {
                let h = rng.random_range(0..heads);
                let wl = &wls[h as usize].0;
                heads_of.push(h);
                jobs.push(KernelJob {
                    head: h,
                    query: &wl.queries[(i + call_no) % shapes.len()],
                    beats: &wl.beats,
                    n_tokens: n,
                    k,
                });
            }
            if call_no == 1 {
                let wl = &wls[0].0;
                let at = rng.random_range(0..=jobs.len());
                heads_of.insert(at, heads);
                jobs.insert(
                    at,
                    KernelJob {
                        head: heads + rng.random_range(0..3),
                        query: &wl.queries[0],
                        beats: &wl.beats,
                        n_tokens: n_all,
                        k: k_max,
                    },
                );
            }
            let call = KernelCall {
                codebooks: (call_no == 0).then_some(codebooks.as_slice()),
                jobs: &jobs,
            };
            let got = sim
                .call(&call)
                .map_err(|e| format!("{name} ({values:?}, call {call_no}): {e}"))?;
            for (j, (job, o)) in jobs.iter().zip(&got.jobs).enumerate() {
                let (n, k) = (job.n_tokens, job.k);
                let at = format!("{name} ({values:?}, call {call_no}, job {j}, n {n}, k {k})");
                if o.read_error || o.write_error {
                    return Err(format!("{at}: memory error flagged"));
                }
                if job.head >= heads {
                    if !o.request_error || o.count != 0 {
                        return Err(format!(
                            "{at}: head {} not flagged (count {})",
                            job.head, o.count
                        ));
                    }
                    continue;
                }
                if o.request_error {
                    return Err(format!("{at}: head {} flagged", job.head));
                }
                let golden = &wls[heads_of[j] as usize].1;
                let n_eff = n.min(c.engine.max_tokens) as usize;
                let k_eff = k.min(k_max) as usize;
                let want = golden
                    .run(job.query, job.beats, n_eff, k_eff)
                    .map_err(|e| e.to_string())?;
                compare("kernel", &o.result, o.count as usize, &want)
                    .map_err(|e| format!("{at}: {e}\n{}", acc.config().to_toml_string()))?;
                checked += 1;
            }
        }
    }
    Ok(checked)
}

/// The `i`-th random description on an Alveo card (U280 and U55C alternate) with 1, 2 or 3
/// engines, as the sweep retargets it (its kernel model is cached under that name).
pub(crate) fn alveo(acc: &Accelerator, i: usize) -> Accelerator {
    let platform = if i.is_multiple_of(2) {
        Platform::U280
    } else {
        Platform::U55c
    };
    let mut config = acc.config().clone();
    config.target.platform = platform;
    config.target.engines = Some([1, 2, 3][i % 3]);
    Accelerator::new(config).expect("small beats fit an AXI4 master")
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
    // The default: result beats of up to 8 words packed into 512-bit beats at every phase,
    // 2 engines holding 2 codebooks (its 256 would take 2 M cycles to load).
    let mut llama = kvpq_tests::example("pqcache-llama3").config().clone();
    llama.engine.heads = Some(2);
    llama.target.engines = Some(2);
    cases.push((
        Accelerator::new(llama).expect("fewer heads and engines"),
        2000,
    ));
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

/// Runs `acc`'s kernel on calls of engines + 1 jobs with an injected error on job 0's first
/// code burst, on the codebooks' first word, on job 1's words and on job 0's first result
/// write: each run completes and flags exactly the jobs the error touched (a read error
/// withholds their results: count 0), the others are bit-exact, and the clean run after
/// each is bit-exact with the golden model.
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
    let n_jobs = c.target.engines() as usize + 1;
    let wls = head_workloads(acc, n_jobs, Values::Uniform, seed)?;
    let codebooks: Vec<QuantCodebook> = wls.iter().map(|(w, _)| w.codebook.clone()).collect();
    let heads = c.engine.heads();
    let jobs: Vec<KernelJob> = (0..n_jobs)
        .map(|j| {
            let wl = &wls[j % heads as usize].0;
            KernelJob {
                head: j as u32 % heads,
                query: &wl.queries[j],
                beats: &wl.beats,
                n_tokens: n,
                k,
            }
        })
        .collect();
    let wants = jobs
        .iter()
        .map(|job| {
            wls[job.head as usize]
                .1
                .run(job.query, job.beats, n as usize, k as usize)
                .map_err(|e| e.to_string())
        })
        .collect::<Result<Vec<_>, _>>()?;
    let burst = |master: &str| FaultAt::Burst {
        master: master.into(),
        n: 0,
    };
    let job_bytes = 4 * u64::from(job_words(c.pq.head_dim));
    // (what, where, code, jobs with a read error, jobs with a write error, whether the
    // fault's burst may also hold earlier jobs' words: the job stream's bursts do, so the
    // flagged jobs may start earlier than the first listed, and run to the end)
    let all: Vec<usize> = (0..n_jobs).collect();
    let cases = [
        (
            "SLVERR on job 0's first code burst",
            burst("m_axi_gmem1"),
            axi::SLVERR,
            vec![0],
            vec![],
            false,
        ),
        (
            "DECERR on the codebooks' first word",
            FaultAt::Range {
                arg: "codebooks".into(),
                bytes: 0..4,
            },
            axi::DECERR,
            all.clone(),
            vec![],
            false,
        ),
        (
            "SLVERR on job 1's n_tokens word",
            FaultAt::Range {
                arg: "jobs".into(),
                bytes: job_bytes..job_bytes + 4,
            },
            axi::SLVERR,
            (1..n_jobs).collect(),
            vec![],
            true,
        ),
        (
            "SLVERR on job 0's first result write",
            FaultAt::WriteBurst {
                master: "m_axi_gmem1".into(),
                n: 0,
            },
            axi::SLVERR,
            vec![],
            vec![0],
            false,
        ),
    ];
    let call = KernelCall {
        codebooks: Some(&codebooks),
        jobs: &jobs,
    };
    let mut checked = 0;
    for (what, at, resp, read_bad, write_bad, burst_wide) in cases {
        sim.inject(Fault { at, resp })
            .map_err(|e| format!("{name}: {e}"))?;
        let bad = sim
            .call(&call)
            .map_err(|e| format!("{name}, {what}: {e}"))?;
        // Errors strike whole bursts and a job stream error is sticky for the call: from the
        // first flagged job on, every later one is flagged.
        let first_flagged = bad.jobs.iter().position(|o| o.read_error);
        let read_bad: Vec<usize> = match (burst_wide, first_flagged) {
            (true, Some(f)) if f <= read_bad[0] => (f..n_jobs).collect(),
            _ => read_bad,
        };
        for (j, o) in bad.jobs.iter().enumerate() {
            let (r, w) = (read_bad.contains(&j), write_bad.contains(&j));
            if (o.read_error, o.write_error, o.request_error) != (r, w, false) {
                return Err(format!("{name}, {what}: job {j} flags {o:?}"));
            }
            if r {
                if o.count != 0 || !o.result.hits.is_empty() {
                    return Err(format!(
                        "{name}, {what}: job {j} count {} after a read error",
                        o.count
                    ));
                }
            } else if w {
                if o.count as usize != wants[j].hits.len() {
                    return Err(format!(
                        "{name}, {what}: job {j} count {}, expected {}",
                        o.count,
                        wants[j].hits.len()
                    ));
                }
            } else {
                compare("kernel", &o.result, o.count as usize, &wants[j])
                    .map_err(|e| format!("{name}, {what}, job {j}: {e}"))?;
            }
        }
        // The next run, without errors (the codebooks reloaded: they may hold bad data now).
        let good = sim
            .call(&call)
            .map_err(|e| format!("{name}, after {what}: {e}"))?;
        for (j, o) in good.jobs.iter().enumerate() {
            if o.read_error || o.write_error || o.request_error {
                return Err(format!("{name}, after {what}: job {j} flags still set"));
            }
            compare("kernel", &o.result, o.count as usize, &wants[j])
                .map_err(|e| format!("{name}, after {what}, job {j}: {e}"))?;
        }
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
