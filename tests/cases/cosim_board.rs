//! Co-simulation of `kvpq_board_top`, the byte-stream top that a board bitstream wraps, with
//! Verilator against the golden model: centroids, queries, start commands and code beats go
//! in as bytes, result records come back as bytes, with random gaps on both streams. Every
//! hit, and the shift of every query with results, must be identical.

use hwgen::emit::Design;
use kvpq_core::golden::GoldenEngine;
use kvpq_core::spec::Accelerator;
use kvpq_tests::compare;
use kvpq_tests::random::small_accelerators;
use kvpq_tests::workload::{draw, Values};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use sim::board::BoardSim;
use sim::{build_model, default_cache, Job, Stalls};

/// Runs a few queries (full context at k_max, a random shape, N < k, N = 0) through the
/// byte protocol; returns how many were checked.
fn run_board(acc: &Accelerator, seed: u64) -> Result<usize, String> {
    let name = acc.config().name.clone();
    let design = Design::render(acc).map_err(|e| format!("{name}: {e}"))?;
    let built = build_model(&design, "kvpq_board_top", &default_cache())
        .map_err(|e| format!("{name}: {e}"))?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let stalls = Stalls {
        input_valid: rng.random_range(0.3..=1.0),
        output_ready: rng.random_range(0.3..=1.0),
    };
    let mut sim = BoardSim::new(&built, acc, seed, stalls).map_err(|e| format!("{name}: {e}"))?;
    let max_n = acc.config().engine.max_tokens as usize;
    let k_max = acc.config().topk.k_max as usize;
    let shapes = [
        (max_n, k_max),
        (rng.random_range(1..=max_n), rng.random_range(1..=k_max)),
        (k_max.saturating_sub(1).min(max_n), k_max),
        (0, k_max.min(2)),
    ];
    let wl = draw(acc, max_n, shapes.len(), Values::Ties, seed);
    let golden = GoldenEngine::new(acc, wl.codebook.clone()).map_err(|e| e.to_string())?;
    sim.load_codebook(&wl.codebook)
        .map_err(|e| format!("{name}: {e}"))?;
    for (&(n, k), q) in shapes.iter().zip(&wl.queries) {
        let job = Job {
            query: q,
            beats: &wl.beats,
            n_tokens: n,
            k,
            head: 0,
        };
        let mut got = sim
            .query(&job)
            .map_err(|e| format!("{name} (n {n}, k {k}): {e}"))?;
        let want = golden.run(q, &wl.beats, n, k).map_err(|e| e.to_string())?;
        // The shift travels in the result records: a query without results reports none.
        if want.hits.is_empty() {
            got.shift = want.shift;
        }
        let count = got.hits.len();
        compare("board", &got, count, &want).map_err(|e| {
            format!(
                "{name} (n {n}, k {k}): {e}\n{}",
                acc.config().to_toml_string()
            )
        })?;
    }
    Ok(shapes.len())
}

#[test]
fn random_board_tops_match_the_golden_model() {
    let accs = small_accelerators(23, 12);
    let results: Vec<Result<usize, String>> = accs
        .par_iter()
        .enumerate()
        .map(|(i, acc)| run_board(acc, 500 + i as u64))
        .collect();
    let failures: Vec<String> = results.iter().filter_map(|r| r.clone().err()).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_ulx3s_example_matches_the_golden_model_through_its_bytes() {
    let acc = kvpq_tests::example("pqcache-ulx3s");
    assert_eq!(run_board(&acc, 7), Ok(4));
}
