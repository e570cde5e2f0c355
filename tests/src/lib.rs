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
            // Codebooks held on chip, by position (not drawn, so the descriptions of every
            // seed stay as they were before the engine held several).
            let heads = [1, 2, 1, 3][out.len() % 4];
            if let Some(acc) = draw(&mut rng, &format!("rand{seed}_{}", out.len()), heads) {
                out.push(acc);
            }
        }
        out
    }

    fn draw(rng: &mut ChaCha8Rng, name: &str, heads: u32) -> Option<Accelerator> {
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
            .engine(
                EngineConfig::new(max_tokens)
                    .with_beat_bits(beat)
                    .with_heads(heads),
            )
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

/// Integer workloads that fit an accelerator: random draws and adversarial score streams.
pub mod workload {
    use kvpq_core::golden::packing::pack;
    use kvpq_core::golden::scan::score_codes;
    use kvpq_core::golden::{GoldenEngine, QuantCodebook};
    use kvpq_core::spec::Accelerator;
    use ndarray::{s, Array2, Array3};
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use sim::Job;

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

    impl IntWorkload {
        /// One engine job per (n_tokens, k) shape, each with the next query (as many jobs
        /// as there are shapes and queries, whichever is fewer).
        pub fn jobs(&self, shapes: &[(usize, usize)]) -> Vec<Job<'_>> {
            shapes
                .iter()
                .zip(&self.queries)
                .map(|(&(n_tokens, k), query)| Job {
                    query,
                    beats: &self.beats,
                    n_tokens,
                    k,
                    head: 0,
                })
                .collect()
        }
    }

    /// Adversarial score streams for the top-k (docs/design.md section 3.3): the shapes of
    /// scores a random draw almost never produces.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Stream {
        /// Every centroid of a subspace is the same vector, so all N scores are equal
        /// whatever the (random) codes. Three queries: random, zero (every LUT entry 0,
        /// shift 0) and the most negative value everywhere.
        AllEqual,
        /// The score never decreases with the token index (recency): codes count up in
        /// base K over the tokens, the LUT is monotone in the code and exact (shift 0).
        /// Two queries: all ones (rising, the newest tokens win) and all minus ones
        /// (falling, the oldest win). Subspaces the LUT width cannot weigh get zero
        /// centroids and random codes; N above the distinct scores gives runs of ties.
        Rising,
        /// A random codebook and query; about k/2 tokens score above a threshold and
        /// max(2k, N/16) more (thousands at N = 32K, k = 5 %) exactly at it, at random
        /// positions, so the k-th place is decided among them by the token index. One query.
        ThresholdTies,
    }

    /// Every stream, in the order the tests run them.
    pub const STREAMS: [Stream; 3] = [Stream::AllEqual, Stream::Rising, Stream::ThresholdTies];

    /// The `stream` workload of `n` tokens for top-`k` queries (`k` places the threshold of
    /// [`Stream::ThresholdTies`]). The codebook and queries depend only on `acc`, `stream`
    /// and `seed`, so one loaded codebook serves every (n, k) of a stream.
    pub fn adversarial(
        acc: &Accelerator,
        stream: Stream,
        n: usize,
        k: usize,
        seed: u64,
    ) -> IntWorkload {
        let c = acc.config();
        let w = acc.derived().widths;
        let (m, kk) = (c.pq.m as usize, w.codebook_size as usize);
        let d = c.pq.head_dim as usize;
        // The codes get their own generator, seeded by n and k too.
        let mut rng = ChaCha8Rng::seed_from_u64(
            seed ^ (n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (k as u64).rotate_left(32),
        );
        let random_codes =
            |rng: &mut ChaCha8Rng| Array2::from_shape_fn((n, m), |_| rng.random_range(0..kk) as u8);
        let (codebook, codes, queries) = match stream {
            Stream::AllEqual => {
                // draw() with no tokens: a codebook and queries independent of n.
                let mut base = draw(acc, 0, 1, Values::Uniform, seed);
                for mut sub_cb in base.codebook.values.outer_iter_mut() {
                    let first = sub_cb.row(0).to_owned();
                    for mut centroid in sub_cb.rows_mut() {
                        centroid.assign(&first);
                    }
                }
                let q_min = -(1i32 << (w.query_bits - 1));
                let queries = vec![base.queries.remove(0), vec![0; d], vec![q_min; d]];
                (base.codebook, random_codes(&mut rng), queries)
            }
            Stream::Rising => {
                let (codebook, digits) = rising_codebook(acc);
                let levels = (kk as u128).pow(digits as u32);
                let mut codes = random_codes(&mut rng);
                for t in 0..n {
                    // Rank of token t among `levels` equal slices of the stream, in base K.
                    let mut r = t as u128 * levels / n as u128;
                    for mi in 0..digits {
                        codes[[t, mi]] = (r % kk as u128) as u8;
                        r /= kk as u128;
                    }
                }
                (codebook, codes, vec![vec![1; d], vec![-1; d]])
            }
            Stream::ThresholdTies => {
                let base = draw(acc, 0, 1, Values::Uniform, seed);
                let lut = GoldenEngine::new(acc, base.codebook.clone())
                    .expect("drawn in range")
                    .build_lut(&base.queries[0])
                    .expect("drawn in range");
                let mut codes = random_codes(&mut rng);
                let scores = score_codes(&lut, codes.view());
                let mut order: Vec<usize> = (0..n).collect();
                order.sort_by_key(|&t| std::cmp::Reverse(scores[t]));
                if let Some(&at) = order.get((k.max(1) / 2).min(n.saturating_sub(1))) {
                    // Fewer than k tokens score above `at`'s score; copies of its codes
                    // below it make the tie at the k-th place thousands long.
                    let tie = codes.row(at).to_owned();
                    let mut below: Vec<usize> =
                        (0..n).filter(|&t| scores[t] < scores[at]).collect();
                    below.shuffle(&mut rng);
                    for &t in below.iter().take((2 * k).max(n / 16)) {
                        codes.row_mut(t).assign(&tie);
                    }
                }
                (base.codebook, codes, base.queries)
            }
        };
        let beats = pack(&acc.derived().layout, codes.view()).expect("codes fit");
        IntWorkload {
            codebook,
            codes,
            beats,
            queries,
        }
    }

    /// The codebook of [`Stream::Rising`] and how many subspaces carry a base-K digit: with
    /// the all-ones query, LUT[m][c] = c * K^m for the first `digits` subspaces and 0 for the
    /// others, every entry within LB - 1 bits so the shift is 0 and a token's score is its
    /// codes read as a base-K number. When not even K - 1 fits, subspace 0 alone carries
    /// floor(c * cap / (K - 1)): still monotone in the code, with ties.
    fn rising_codebook(acc: &Accelerator) -> (QuantCodebook, usize) {
        let w = acc.derived().widths;
        let (m, kk, sub) = (
            acc.config().pq.m as usize,
            w.codebook_size as usize,
            w.sub_dim as usize,
        );
        let cmax = (1i64 << (w.centroid_bits - 1)) - 1;
        // An entry is the sum of a centroid's D/M elements (the query is 1), and must stay
        // below 2^(LB-1) for a zero shift.
        let cap = (sub as i64 * cmax).min((1i64 << (w.lut_bits - 1)) - 1);
        let top = kk as i64 - 1;
        let mut values = Array3::zeros((m, kk, sub));
        let mut spread = |mi: usize, c: usize, mut sum: i64| {
            for v in values.slice_mut(s![mi, c, ..]).iter_mut() {
                let e = sum.min(cmax);
                *v = e as i32;
                sum -= e;
            }
        };
        let mut digits = 0;
        let mut weight = 1i64;
        while digits < m && top.checked_mul(weight).is_some_and(|v| v <= cap) {
            for c in 0..kk {
                spread(digits, c, c as i64 * weight);
            }
            digits += 1;
            weight = weight.saturating_mul(kk as i64);
        }
        if digits == 0 {
            for c in 0..kk {
                spread(0, c, c as i64 * cap / top);
            }
            digits = 1;
        }
        (QuantCodebook { values, scale: 1.0 }, digits)
    }
}
