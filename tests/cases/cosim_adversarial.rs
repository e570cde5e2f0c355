//! Adversarial score streams (`kvpq_tests::workload::Stream`: all scores equal, scores
//! rising or falling with the token index, thousands of ties at the k-th score) on the
//! engine RTL, the Alveo RTL kernel and the HLS C simulation, bit-exact with the golden
//! model. Every stream runs the main shape, k = 1, k = N, N = 1 (with k = 1 and k > N) and
//! N not a multiple of the lanes.
//!
//! The default example runs at N = 32K, k = 5 % (`KVPQ_ADVERSARIAL_TOKENS` for another N);
//! random descriptions are the first ones of the main sweeps, whose models are cached:
//! `KVPQ_ADVERSARIAL_CONFIGS` (4) engines and C simulations, `KVPQ_ADVERSARIAL_KERNELS` (2)
//! kernels, plus the fastscan example's kernel; `KVPQ_ADVERSARIAL_SEED` draws other data.

use hwgen::emit::Design;
use kvpq_core::golden::scan::score_codes;
use kvpq_core::golden::{GoldenEngine, QuantCodebook, QueryResult};
use kvpq_core::spec::Accelerator;
use kvpq_tests::random::small_accelerators;
use kvpq_tests::workload::{adversarial, IntWorkload, Stream, STREAMS};
use kvpq_tests::{compare, env_or, example};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use sim::{
    build_model, default_cache, BuiltModel, EngineSim, Job, KernelCall, KernelJob, KernelSim,
    Stalls,
};

/// The default design, at the context the issue measures.
fn default_case() -> (Accelerator, usize, usize) {
    let n = env_or("KVPQ_ADVERSARIAL_TOKENS", 32 * 1024) as usize;
    let acc = example("pqcache-llama3");
    let n = n.clamp(1, acc.config().engine.max_tokens as usize);
    let k = (n / 20).clamp(1, acc.config().topk.k_max as usize);
    (acc, n, k)
}

/// Small descriptions at their full context and k_max.
fn small_case(acc: Accelerator) -> (Accelerator, usize, usize) {
    let c = acc.config();
    let (n, k) = (c.engine.max_tokens as usize, c.topk.k_max as usize);
    (acc, n, k)
}

/// The default design and the first `KVPQ_ADVERSARIAL_CONFIGS` descriptions drawn from
/// `sweep_seed`.
fn default_and_random(sweep_seed: u64) -> Vec<(Accelerator, usize, usize)> {
    let count = env_or("KVPQ_ADVERSARIAL_CONFIGS", 4) as usize;
    let mut cases = vec![default_case()];
    cases.extend(
        small_accelerators(sweep_seed, count)
            .into_iter()
            .map(small_case),
    );
    cases
}

/// The (n_tokens, k) pairs every stream runs, from the main shape (n, k).
fn shapes(acc: &Accelerator, n: usize, k: usize) -> Vec<(usize, usize)> {
    let k_max = acc.config().topk.k_max as usize;
    let lanes = acc.config().scanner.lanes as usize;
    let tpb = acc.derived().layout.tokens_per_beat as usize;
    // One token past a whole number of lane groups (of beats when one lane takes a beat).
    let unit = if lanes > 1 { lanes } else { tpb };
    let ragged = (n / 2 / unit * unit + 1).min(n);
    let mut s = vec![
        (n, k),
        (n, 1),
        (k_max.min(n), k_max.min(n)), // k = N
        (1, 1),
        (ragged, (k * ragged / n).max(1)),
    ];
    if k_max > 1 {
        s.push((1, k_max)); // N < k
    }
    s
}

/// The workloads of one stream, one per shape; they share the codebook and queries.
fn workloads(
    acc: &Accelerator,
    stream: Stream,
    n: usize,
    k: usize,
    seed: u64,
) -> Vec<(usize, usize, IntWorkload)> {
    shapes(acc, n, k)
        .into_iter()
        .map(|(n, k)| (n, k, adversarial(acc, stream, n, k, seed)))
        .collect()
}

/// Every query of every workload as an engine job.
fn jobs(wls: &[(usize, usize, IntWorkload)]) -> Vec<Job<'_>> {
    wls.iter()
        .flat_map(|(n, k, wl)| {
            wl.queries.iter().map(move |q| Job {
                query: q,
                beats: &wl.beats,
                n_tokens: *n,
                k: *k,
                head: 0,
            })
        })
        .collect()
}

/// Compares one result with the golden model's; `Err` names the case.
fn check(
    who: &str,
    acc: &Accelerator,
    stream: Stream,
    job: &Job,
    got: &QueryResult,
    count: usize,
    golden: &GoldenEngine,
) -> Result<(), String> {
    let want = golden
        .run(job.query, job.beats, job.n_tokens, job.k)
        .map_err(|e| e.to_string())?;
    compare(who, got, count, &want).map_err(|e| {
        format!(
            "{} {stream:?} (n_tokens {}, k {}, query {:?}...): {e}",
            acc.config().name,
            job.n_tokens,
            job.k,
            &job.query[..job.query.len().min(4)]
        )
    })
}

/// The verilated model `top` of `acc` (from the cache) and the stalls of a case's seed.
fn model(acc: &Accelerator, top: &str, seed: u64) -> Result<(BuiltModel, Stalls), String> {
    let name = &acc.config().name;
    let design = Design::render(acc).map_err(|e| format!("{name}: {e}"))?;
    let built = build_model(&design, top, &default_cache()).map_err(|e| format!("{name}: {e}"))?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let stalls = Stalls {
        input_valid: rng.random_range(0.5..=1.0),
        output_ready: rng.random_range(0.5..=1.0),
    };
    Ok((built, stalls))
}

/// Runs `case` on every (description, n, k) in parallel, each with its own seed, and fails
/// with every report and how to reproduce them.
fn run_all(
    what: &str,
    cases: &[(Accelerator, usize, usize)],
    case: impl Fn(&Accelerator, usize, usize, u64) -> Result<usize, String> + Sync,
) {
    let results: Vec<Result<usize, String>> = cases
        .par_iter()
        .enumerate()
        .map(|(i, (acc, n, k))| case(acc, *n, *k, seed() * 1000 + i as u64))
        .collect();
    let failures: Vec<&str> = results
        .iter()
        .filter_map(|r| r.as_ref().err().map(String::as_str))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} {what} mismatched (reproduce: KVPQ_ADVERSARIAL_SEED={} cargo test -p \
         kvpq-tests --test kvpq -- cosim_adversarial::):\n{}",
        failures.len(),
        results.len(),
        seed(),
        failures.join("\n")
    );
    let queries: usize = results.iter().filter_map(|r| r.as_ref().ok()).sum();
    println!(
        "{} {what}, {queries} adversarial queries bit-exact",
        results.len()
    );
}

fn seed() -> u64 {
    env_or("KVPQ_ADVERSARIAL_SEED", 13)
}

#[test]
fn streams_have_their_shape() {
    let mut cases = vec![default_case()];
    cases.extend(small_accelerators(11, 12).into_iter().map(small_case));
    for (acc, n, k) in &cases {
        for (n, k) in shapes(acc, *n, *k) {
            for stream in STREAMS {
                let wl = adversarial(acc, stream, n, k, seed());
                let golden = GoldenEngine::new(acc, wl.codebook.clone()).expect("in range");
                let what = format!("{} {stream:?} n {n} k {k}", acc.config().name);
                for (qi, q) in wl.queries.iter().enumerate() {
                    let lut = golden.build_lut(q).expect("in range");
                    let s = score_codes(&lut, wl.codes.view());
                    match stream {
                        Stream::AllEqual => assert!(s.windows(2).all(|w| w[0] == w[1]), "{what}"),
                        Stream::Rising => {
                            // Query 0 rises, query 1 (its negation) falls; both exact.
                            let sign = if qi == 0 { 1 } else { -1 };
                            assert_eq!(lut.shift, 0, "{what}");
                            assert!(s.windows(2).all(|w| sign * w[0] <= sign * w[1]), "{what}");
                            assert!(n < 2 || s[0] != s[n - 1], "{what}: flat");
                        }
                        Stream::ThresholdTies => {
                            let mut sorted = s.clone();
                            sorted.sort_unstable_by(|a, b| b.cmp(a));
                            let kth = sorted[k.min(n) - 1];
                            let ties = s.iter().filter(|&&v| v == kth).count();
                            let at_or_above = s.iter().filter(|&&v| v >= kth).count();
                            // Tied tokens on both sides of the k-th place, unless all fit.
                            assert!(n <= k || at_or_above > k, "{what}: no tie left out");
                            if n >= 1 << 15 && k > 1 {
                                assert!(ties >= 2 * k, "{what}: {ties} ties at the threshold");
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Runs every stream and shape on one implementation (`who`) of `acc`: `run` answers one
/// stream's jobs (loading its codebook first) with each result and reported count; every
/// answer is compared with the golden model. Returns how many were checked.
fn each_stream(
    who: &str,
    acc: &Accelerator,
    (n, k, seed): (usize, usize, u64),
    mut run: impl FnMut(Stream, &QuantCodebook, &[Job]) -> Result<Vec<(QueryResult, usize)>, String>,
) -> Result<usize, String> {
    let name = &acc.config().name;
    let mut checked = 0;
    for stream in STREAMS {
        let wls = workloads(acc, stream, n, k, seed);
        let codebook = &wls[0].2.codebook;
        let golden = GoldenEngine::new(acc, codebook.clone()).map_err(|e| e.to_string())?;
        let jobs = jobs(&wls);
        let got = run(stream, codebook, &jobs).map_err(|e| format!("{name} {stream:?}: {e}"))?;
        if got.len() != jobs.len() {
            return Err(format!(
                "{name} {stream:?}: {} answers to {} jobs",
                got.len(),
                jobs.len()
            ));
        }
        for (job, (result, count)) in jobs.iter().zip(&got) {
            check(who, acc, stream, job, result, *count, &golden)?;
            checked += 1;
        }
    }
    Ok(checked)
}

/// Runs every stream and shape through the engine model of `acc`, each stream's jobs back
/// to back.
fn engine_case(acc: &Accelerator, n: usize, k: usize, seed: u64) -> Result<usize, String> {
    let (built, stalls) = model(acc, "pq_topk_engine", seed)?;
    let mut sim = EngineSim::new(&built, acc, seed, stalls)
        .map_err(|e| format!("{}: {e}", acc.config().name))?;
    each_stream("engine", acc, (n, k, seed), |_, codebook, jobs| {
        sim.load_codebook(codebook).map_err(|e| e.to_string())?;
        let outcomes = sim.run(jobs).map_err(|e| e.to_string())?;
        // A reset between streams, as between the main sweep's rounds.
        sim.reset();
        Ok(outcomes
            .into_iter()
            .map(|o| (o.result, o.count as usize))
            .collect())
    })
}

#[test]
fn engine_matches_the_golden_model_on_adversarial_streams() {
    // The main co-simulation sweep's first descriptions (their models are cached).
    run_all("engines", &default_and_random(11), engine_case);
}

/// Runs every stream and shape through the Alveo kernel model of `acc`, as XRT calls would
/// (the first call of a stream loads its codebook).
fn kernel_case(acc: &Accelerator, n: usize, k: usize, seed: u64) -> Result<usize, String> {
    let (built, stalls) = model(acc, "kvpq_krnl", seed)?;
    let mut sim = KernelSim::new(&built, acc, seed, stalls)
        .map_err(|e| format!("{}: {e}", acc.config().name))?;
    let heads = acc.config().engine.heads();
    each_stream("kernel", acc, (n, k, seed), |_, codebook, jobs| {
        // One call for the stream's jobs, spread over the engines and the heads (every head
        // holds the stream's codebook).
        let codebooks = vec![codebook.clone(); heads as usize];
        let kernel_jobs: Vec<KernelJob> = jobs
            .iter()
            .enumerate()
            .map(|(i, job)| KernelJob {
                head: i as u32 % heads,
                query: job.query,
                beats: job.beats,
                n_tokens: job.n_tokens as u32,
                k: job.k as u32,
            })
            .collect();
        let o = sim
            .call(&KernelCall {
                codebooks: Some(&codebooks),
                jobs: &kernel_jobs,
            })
            .map_err(|e| format!("({} jobs): {e}", jobs.len()))?;
        Ok(o.jobs
            .into_iter()
            .map(|o| (o.result, o.count as usize))
            .collect())
    })
}

#[test]
fn kernel_matches_the_golden_model_on_adversarial_streams() {
    let count = env_or("KVPQ_ADVERSARIAL_KERNELS", 2) as usize;
    // The kernel sweep's first descriptions, retargeted as it does (same cached models).
    let accs: Vec<Accelerator> = small_accelerators(23, count)
        .iter()
        .enumerate()
        .map(|(i, a)| crate::cosim_kernel::alveo(a, i))
        .collect();
    let mut cases: Vec<_> = accs.into_iter().map(small_case).collect();
    // A real width (512-bit beats) and a systolic k in the hundreds, at the sweep's 3000 tokens.
    let fastscan = crate::cosim_kernel::alveo(&example("fastscan-4bit"), 0);
    cases.push((fastscan, 3000, 150));
    run_all("kernels", &cases, kernel_case);
}

/// Runs every stream and shape through the HLS C simulation of `acc`.
fn csim_case(acc: &Accelerator, n: usize, k: usize, seed: u64) -> Result<usize, String> {
    let bin = crate::hls_csim::build(acc).map_err(|e| format!("{}: {e}", acc.config().name))?;
    each_stream("csim", acc, (n, k, seed), |stream, codebook, jobs| {
        let tag = format!("adversarial-{seed}-{stream:?}");
        crate::hls_csim::run_jobs(&bin, codebook, jobs, &tag)
    })
}

#[test]
fn hls_csim_matches_the_golden_model_on_adversarial_streams() {
    // The C simulation sweep's first descriptions (their binaries are cached).
    run_all("C simulations", &default_and_random(5), csim_case);
}
