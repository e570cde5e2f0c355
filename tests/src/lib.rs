//! Shared helpers of the workspace-level tests: paths, scratch folders, environment knobs
//! (every `KVPQ_*` variable is listed in docs/environment.md), random descriptions and
//! workloads, and the comparison with the golden model.

use std::path::PathBuf;

use kvpq_core::golden::QueryResult;
use kvpq_core::spec::Accelerator;

/// `$var` as a number, or `default` when it is unset or not a number.
pub fn env_or(var: &str, default: u64) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// An empty scratch folder `<tmp>/kvpq-tests-<pid>/<area>/<name>` (emptied if it exists);
/// `area` is the test module, so tests running side by side never share a folder.
pub fn scratch(area: &str, name: &str) -> PathBuf {
    let dir = std::env::temp_dir()
        .join(format!("kvpq-tests-{}", std::process::id()))
        .join(area)
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir
}

/// Compares what an implementation returned (`who`: "engine", "kernel", ...) with the
/// golden model's result, and the count it reported with the golden count; `Err` names the
/// first difference.
pub fn compare(
    who: &str,
    got: &QueryResult,
    count: usize,
    want: &QueryResult,
) -> Result<(), String> {
    if got.shift != want.shift {
        return Err(format!("shift: {who} {} golden {}", got.shift, want.shift));
    }
    if let Some((i, (g, w))) = got
        .hits
        .iter()
        .zip(&want.hits)
        .enumerate()
        .find(|(_, (g, w))| g != w)
    {
        return Err(format!("result {i}: {who} {g:?} golden {w:?}"));
    }
    if got.hits.len() != want.hits.len() || count != want.hits.len() {
        return Err(format!(
            "result count: {who} returned {} and reported {count}, golden {}",
            got.hits.len(),
            want.hits.len()
        ));
    }
    Ok(())
}

/// Root of the repository.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the repository root")
        .to_path_buf()
}

/// The example descriptions shipped in `examples/`, sorted by name.
pub fn example_paths() -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(repo_root().join("examples"))
        .expect("examples/ exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    paths.sort();
    paths
}

/// Loads and validates one example by file stem, e.g. `pqcache-llama3`.
pub fn example(name: &str) -> Accelerator {
    let path = repo_root().join("examples").join(format!("{name}.toml"));
    Accelerator::from_toml_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Random valid accelerator descriptions, small enough to simulate and synthesize quickly.
pub mod random {
    use kvpq_core::spec::{
        Accelerator, AcceleratorBuilder, EngineConfig, PqConfig, QuantConfig, RetrievalConfig,
        ScannerConfig, TopKConfig,
    };
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// The first `count` valid descriptions drawn from `seed`, named `rand<seed>_<i>`.
    pub fn small_accelerators(seed: u64, count: usize) -> Vec<Accelerator> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut out = Vec::with_capacity(count);
        let mut tries = 0;
        while out.len() < count {
            tries += 1;
            assert!(
                tries < 100 * count,
                "random description generator rejects too much"
            );
            if let Some(acc) = draw(&mut rng, &format!("rand{seed}_{}", out.len())) {
                out.push(acc);
            }
        }
        out
    }

    fn draw(rng: &mut ChaCha8Rng, name: &str) -> Option<Accelerator> {
        let m = 1u32 << rng.random_range(0..=2);
        let sub = rng.random_range(1..=4u32);
        let code_bits = rng.random_range(1..=3u32);
        let k = 1u32 << code_bits;
        let qb = rng.random_range(3..=8u32);
        let cb = rng.random_range(3..=8u32);
        let acc_bits = qb + cb + kvpq_core::spec::ceil_log2(u64::from(sub));
        let lb = rng.random_range(3..=acc_bits.min(12));
        let macs = 1u32 << rng.random_range(0..=code_bits);
        let token_bits = m * code_bits;
        let beat = [32u32, 64, 128][rng.random_range(0..3)];
        let per_beat = beat / token_bits;
        let divisors: Vec<u32> = (1..=per_beat.min(4))
            .filter(|d| per_beat.is_multiple_of(*d))
            .collect();
        if divisors.is_empty() {
            return None;
        }
        let lanes = divisors[rng.random_range(0..divisors.len())];
        let k_max = rng.random_range(1..=8u32);
        // One in five holds exactly k_max tokens, so k = max_tokens is exercised.
        let max_tokens = if rng.random_bool(0.2) {
            k_max
        } else {
            rng.random_range(8..=96u32)
        };
        let topk = if rng.random_bool(0.5) {
            TopKConfig::systolic(k_max)
        } else {
            TopKConfig::select(k_max).with_radix_bits(rng.random_range(1..=3))
        };
        AcceleratorBuilder::new(name, PqConfig::new(sub * m, m, code_bits))
            .quant(QuantConfig::new(qb, cb, lb))
            .dist_unit(kvpq_core::spec::DistUnitConfig::new(macs.min(k)))
            .scanner(ScannerConfig::new(lanes))
            .topk(topk)
            .engine(EngineConfig::new(max_tokens).with_beat_bits(beat))
            // A policy that retrieves exactly k_max at max_tokens: validation refuses one that
            // retrieves nothing, and k_max must cover what it asks for.
            .retrieval(RetrievalConfig::default().with_sink_tokens(0).with_budget(
                ((f64::from(k_max) + 0.5) / f64::from(max_tokens)).min(1.0),
                0.0,
            ))
            .build()
            .ok()
    }
}

/// Random integer workloads that fit an accelerator, and the golden answer.
pub mod workload {
    use kvpq_core::golden::packing::pack;
    use kvpq_core::golden::QuantCodebook;
    use kvpq_core::spec::Accelerator;
    use ndarray::{Array2, Array3};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Codebook, codes and queries drawn for one accelerator.
    pub struct IntWorkload {
        /// Integer codebooks.
        pub codebook: QuantCodebook,
        /// Codes of `n` tokens (N x M).
        pub codes: Array2<u8>,
        /// Packed beats of the codes.
        pub beats: Vec<u64>,
        /// Integer queries.
        pub queries: Vec<Vec<i32>>,
    }

    /// How values are drawn.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Values {
        /// Uniform over the full signed ranges (extremes included).
        Uniform,
        /// Few distinct values: many equal scores (ties).
        Ties,
    }

    /// Draws a workload of `n` tokens and `queries` queries.
    pub fn draw(
        acc: &Accelerator,
        n: usize,
        queries: usize,
        values: Values,
        seed: u64,
    ) -> IntWorkload {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let c = acc.config();
        let w = acc.derived().widths;
        let (m, k, sub) = (
            c.pq.m as usize,
            w.codebook_size as usize,
            w.sub_dim as usize,
        );
        let cmax = (1i32 << (w.centroid_bits - 1)) - 1;
        let qmax = (1i32 << (w.query_bits - 1)) - 1;
        let pick = |rng: &mut ChaCha8Rng, max: i32| match values {
            Values::Uniform => rng.random_range(-max - 1..=max),
            Values::Ties => [-1, 0, 1][rng.random_range(0..3)],
        };
        let codebook = QuantCodebook {
            values: Array3::from_shape_fn((m, k, sub), |_| pick(&mut rng, cmax)),
            scale: 1.0,
        };
        let codes = Array2::from_shape_fn((n, m), |_| match values {
            Values::Uniform => rng.random_range(0..k) as u8,
            Values::Ties => rng.random_range(0..k.min(2)) as u8,
        });
        let beats = pack(&acc.derived().layout, codes.view()).expect("codes fit");
        let queries = (0..queries)
            .map(|_| (0..c.pq.head_dim).map(|_| pick(&mut rng, qmax)).collect())
            .collect();
        IntWorkload {
            codebook,
            codes,
            beats,
            queries,
        }
    }
}
