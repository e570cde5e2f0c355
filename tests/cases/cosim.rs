//! Co-simulation of the generated engine with Verilator against the golden model: every
//! result, score, shift and count of every query must be identical.
//!
//! The sweep covers 100 random valid descriptions by default (`KVPQ_COSIM_CONFIGS=N` for more,
//! `KVPQ_COSIM_SEED=S` for another draw, `KVPQ_COSIM_ONLY=name` for one). Each one runs
//! uniform and tie-heavy data, random valid/ready stalls, N not a multiple of the beat,
//! N < k, N = 0, k = k_max, and a reset between queries. A mismatch writes a VCD trace and
//! prints the first differing result and the command that reproduces it.

use std::path::PathBuf;

use hwgen::emit::Design;
use kvpq_core::golden::GoldenEngine;
use kvpq_core::spec::Accelerator;
use kvpq_tests::random::small_accelerators;
use kvpq_tests::workload::{draw, Values};
use kvpq_tests::{compare, env_or};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use sim::{build_model, build_traced_model, default_cache, EngineSim, Job, SimError, Stalls};

/// The queries of one case: (n_tokens, k) pairs covering the edge cases.
fn shapes(acc: &Accelerator, rng: &mut ChaCha8Rng) -> Vec<(usize, usize)> {
    let max_n = acc.config().engine.max_tokens as usize;
    let k_max = acc.config().topk.k_max as usize;
    let tpb = acc.derived().layout.tokens_per_beat as usize;
    let mut s = vec![
        (max_n, k_max), // full context, k = k_max
        (rng.random_range(1..=max_n), rng.random_range(1..=k_max)),
        (k_max.saturating_sub(1).min(max_n), k_max), // N < k
        (0, k_max.min(3)),                           // empty query
        (max_n, 0),                                  // k = 0
    ];
    // N not a multiple of the beat (when the beat holds more than one token).
    if tpb > 1 && max_n > tpb {
        s.push((
            tpb + 1 + rng.random_range(0..tpb - 1).min(max_n - tpb - 1),
            k_max,
        ));
    }
    s
}

/// Runs every case of one description; Err carries a report of the first mismatch.
fn run_config(acc: &Accelerator, seed: u64, trace: Option<PathBuf>) -> Result<usize, String> {
    let name = acc.config().name.clone();
    let design = Design::render(acc).map_err(|e| format!("{name}: {e}"))?;
    // Only a replay that writes a trace pays for the slower traced model.
    let build = if trace.is_some() {
        build_traced_model
    } else {
        build_model
    };
    let built =
        build(&design, "pq_topk_engine", &default_cache()).map_err(|e| format!("{name}: {e}"))?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let stalls = Stalls {
        input_valid: rng.random_range(0.3..=1.0),
        output_ready: rng.random_range(0.3..=1.0),
    };
    let mut sim = EngineSim::new(&built, acc, seed, stalls).map_err(|e| format!("{name}: {e}"))?;
    if let Some(path) = &trace {
        sim.trace(path).map_err(|e| e.to_string())?;
    }
    let mut checked = 0;
    let heads = acc.config().engine.heads();
    for (round, values) in [Values::Uniform, Values::Ties].into_iter().enumerate() {
        let max_n = acc.config().engine.max_tokens as usize;
        let shapes = shapes(acc, &mut rng);
        // One workload (codebook, codes, queries) per head the engine holds, every codebook
        // loaded before the first query; job i reads head i mod heads, so consecutive queries
        // switch codebooks.
        let mut wls = Vec::new();
        let mut goldens = Vec::new();
        for head in 0..heads {
            let wl = draw(
                acc,
                max_n,
                shapes.len(),
                values,
                seed ^ round as u64 ^ (u64::from(head) << 32),
            );
            goldens.push(GoldenEngine::new(acc, wl.codebook.clone()).map_err(|e| e.to_string())?);
            sim.load_head_codebook(head, &wl.codebook)
                .map_err(|e| format!("{name}: {e}"))?;
            wls.push(wl);
        }
        let jobs: Vec<Job> = shapes
            .iter()
            .enumerate()
            .map(|(i, &(n_tokens, k))| {
                let head = i as u32 % heads;
                let wl = &wls[head as usize];
                Job {
                    query: &wl.queries[i],
                    beats: &wl.beats,
                    n_tokens,
                    k,
                    head,
                }
            })
            .collect();
        let outcomes = sim
            .run(&jobs)
            .map_err(|e| format!("{name} ({values:?}): {e}"))?;
        for (job, o) in jobs.iter().zip(&outcomes) {
            let want = goldens[job.head as usize]
                .run(job.query, job.beats, job.n_tokens, job.k)
                .map_err(|e| e.to_string())?;
            compare("engine", &o.result, o.count as usize, &want).map_err(|e| {
                format!(
                    "{name} ({values:?}, head {}, n_tokens {}, k {}): {e}",
                    job.head, job.n_tokens, job.k
                )
            })?;
            checked += 1;
        }
        // Reset between rounds: the codebook is reloaded, queries in flight are gone.
        sim.reset();
    }
    Ok(checked)
}

#[test]
fn random_configs_match_the_golden_model() {
    let count = env_or("KVPQ_COSIM_CONFIGS", 100) as usize;
    let seed = env_or("KVPQ_COSIM_SEED", 11);
    let only = std::env::var("KVPQ_COSIM_ONLY").ok();
    // Each description keeps its own seed, whether it runs alone or in the sweep.
    let accs: Vec<(u64, Accelerator)> = small_accelerators(seed, count)
        .into_iter()
        .enumerate()
        .map(|(i, a)| (seed.wrapping_mul(1000).wrapping_add(i as u64), a))
        .filter(|(_, a)| only.as_ref().is_none_or(|o| &a.config().name == o))
        .collect();
    let results: Vec<Result<usize, String>> = accs
        .par_iter()
        .map(|(case_seed, acc)| run_config(acc, *case_seed, None))
        .collect();
    let mut failures = Vec::new();
    let mut queries = 0;
    for ((case_seed, acc), r) in accs.iter().zip(results) {
        match r {
            Ok(n) => queries += n,
            Err(report) => {
                let trace =
                    std::env::temp_dir().join(format!("kvpq-cosim-{}.vcd", acc.config().name));
                let _ = run_config(acc, *case_seed, Some(trace.clone()));
                failures.push(format!(
                    "{report}\n  trace: {}\n  reproduce: KVPQ_COSIM_SEED={seed} KVPQ_COSIM_CONFIGS={count} \
                     KVPQ_COSIM_ONLY={} cargo test -p kvpq-tests --test kvpq -- cosim::\n--- config ---\n{}",
                    trace.display(),
                    acc.config().name,
                    acc.config().to_toml_string()
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} configs mismatched:\n{}",
        failures.len(),
        accs.len(),
        failures.join("\n")
    );
    println!("{} configs, {queries} queries bit-exact", accs.len());
}

#[test]
fn a_replay_writes_a_trace_and_an_untraced_model_says_why_it_cannot() {
    // The replay path runs only after a mismatch: exercise it here on the smallest model.
    let acc = small_accelerators(11, 1).remove(0);
    let dir = kvpq_tests::scratch("cosim", "trace");
    let vcd = dir.join("replay.vcd");
    let checked = run_config(&acc, 7, Some(vcd.clone())).expect("bit-exact with a trace");
    assert!(checked > 0);
    let text = std::fs::read_to_string(&vcd).expect("a VCD was written");
    assert!(
        text.contains("$enddefinitions") && text.contains("#"),
        "not a VCD"
    );

    let design = Design::render(&acc).expect("renders");
    let built = build_model(&design, "pq_topk_engine", &default_cache()).expect("model");
    let mut sim = EngineSim::new(&built, &acc, 0, Stalls::NONE).expect("loads");
    let e = sim.trace(&dir.join("no.vcd")).unwrap_err().to_string();
    assert!(e.contains("build_traced_model"), "{e}");
}

/// A codebook or a query for a head the engine does not hold is refused by name, before
/// anything reaches the model; the engine then still answers a valid query.
#[test]
fn a_head_past_engine_heads_is_refused() {
    let acc = small_accelerators(11, 4)
        .into_iter()
        .find(|a| a.config().engine.heads() > 1)
        .expect("a description with several heads");
    let heads = acc.config().engine.heads();
    let design = Design::render(&acc).unwrap();
    let built = build_model(&design, "pq_topk_engine", &default_cache()).unwrap();
    let mut sim = EngineSim::new(&built, &acc, 1, Stalls::NONE).unwrap();
    let n = acc.config().engine.max_tokens as usize;
    let wl = draw(&acc, n, 1, Values::Uniform, 5);
    let e = sim.load_head_codebook(heads, &wl.codebook).unwrap_err();
    assert!(
        matches!(&e, SimError::Request(w) if w.contains(&format!("head {heads}"))),
        "{e}"
    );
    sim.load_head_codebook(heads - 1, &wl.codebook).unwrap();
    let mut job = wl.jobs(&[(n, 1)])[0];
    job.head = heads;
    let e = sim.run(&[job]).unwrap_err();
    assert!(matches!(&e, SimError::Request(_)), "{e}");
    job.head = heads - 1;
    let got = sim.run(&[job]).unwrap();
    let want = GoldenEngine::new(&acc, wl.codebook.clone())
        .unwrap()
        .run(job.query, job.beats, n, 1)
        .unwrap();
    compare("engine", &got[0].result, got[0].count as usize, &want).unwrap();
}
