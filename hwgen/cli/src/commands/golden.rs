//! `hwgen golden`: trains codebooks on synthetic keys, runs the bit-exact golden engine for a
//! series of decoding steps and measures recall@k against the exact float top-k.

use std::fmt;
use std::time::Instant;

use anyhow::{bail, Result};
use indicatif::{ProgressBar, ProgressStyle};
use ndarray::{s, Array2, Axis};

use kvpq_core::golden::packing::pack;
use kvpq_core::golden::reference::{exact_top_k, recall, top_k_f32};
use kvpq_core::golden::{GoldenEngine, PqCodebook, TrainOptions};
use kvpq_core::spec::{Accelerator, PolicySplit};
use kvpq_core::workload::{SyntheticKv, SyntheticSpec};

/// Options of a golden run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GoldenOptions {
    /// Context length (tokens); capped by `engine.max_tokens`.
    pub tokens: u32,
    /// Decoding steps (queries).
    pub queries: usize,
    /// Seed of data and training.
    pub seed: u64,
    /// Lloyd iterations per subspace.
    pub kmeans_iters: usize,
    /// Draw progress bars (on a terminal).
    pub progress: bool,
}

impl Default for GoldenOptions {
    fn default() -> Self {
        Self {
            tokens: 16384,
            queries: 16,
            seed: 0,
            kmeans_iters: 25,
            progress: false,
        }
    }
}

/// Mean, minimum and maximum of a series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stat {
    /// Mean.
    pub mean: f64,
    /// Minimum.
    pub min: f64,
    /// Maximum.
    pub max: f64,
}

impl Stat {
    fn of(xs: &[f64]) -> Self {
        let n = xs.len().max(1) as f64;
        Self {
            mean: xs.iter().sum::<f64>() / n,
            min: xs.iter().copied().fold(f64::INFINITY, f64::min),
            max: xs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        }
    }
}

impl fmt::Display for Stat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = f.precision().unwrap_or(4);
        write!(
            f,
            "mean {:.p$}  min {:.p$}  max {:.p$}",
            self.mean, self.min, self.max
        )
    }
}

/// What a golden run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct GoldenReport {
    /// Accelerator name.
    pub name: String,
    /// Options used.
    pub options: GoldenOptions,
    /// How the policy split the context.
    pub split: PolicySplit,
    /// Seconds spent training the codebooks.
    pub train_seconds: f64,
    /// recall@k of the bit-exact engine against the exact float top-k of the middle tokens;
    /// `None` when the policy retrieves nothing (k = 0): a perfect recall of nothing would
    /// mislead.
    pub recall: Option<Stat>,
    /// recall@k of float PQ scores (no fixed point): what PQ alone loses; `None` when k = 0.
    pub recall_float_pq: Option<Stat>,
    /// LUT shift per query.
    pub shift: Stat,
    /// Best integer score per query (`None` when k = 0).
    pub top_score: Option<Stat>,
    /// k-th integer score per query (`None` when k = 0).
    pub kth_score: Option<Stat>,
    /// Pearson correlation of rescaled integer scores with exact q.k over all middle tokens.
    pub score_correlation: Stat,
    /// Seconds per query of the golden engine (LUT + scan + top-k).
    pub engine_seconds: Stat,
}

impl fmt::Display for GoldenReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.options;
        let sp = &self.split;
        writeln!(f, "golden model `{}`", self.name)?;
        writeln!(
            f,
            "  workload        {} clustered synthetic keys, {} decoding steps, seed {}",
            o.tokens, o.queries, o.seed
        )?;
        writeln!(
            f,
            "  policy          sink {} + local window {} always attended; top-k {} of the {} middle tokens",
            sp.sink, sp.local, sp.topk, sp.middle
        )?;
        writeln!(
            f,
            "  codebooks       k-means++ / Lloyd ({} iterations max) in {:.2} s",
            o.kmeans_iters, self.train_seconds
        )?;
        match (&self.recall, &self.recall_float_pq) {
            (Some(exact), Some(float)) => {
                writeln!(f, "  recall@{:<8} {exact}  (bit-exact engine)", sp.topk)?;
                writeln!(
                    f,
                    "  recall@{:<8} {float}  (float PQ, no fixed point)",
                    sp.topk
                )?;
            }
            _ => writeln!(
                f,
                "  recall: not applicable, k = 0 (sinks + local window only) at {} tokens",
                o.tokens
            )?,
        }
        writeln!(f, "  lut shift       {:.2}", self.shift)?;
        if let (Some(top), Some(kth)) = (&self.top_score, &self.kth_score) {
            writeln!(f, "  top-1 score     {top:.1}")?;
            writeln!(f, "  k-th score      {kth:.1}")?;
        }
        writeln!(f, "  corr(score,q.k) {}", self.score_correlation)?;
        write!(
            f,
            "  engine time     {:.3} ms per query (golden model, CPU)",
            self.engine_seconds.mean * 1e3
        )
    }
}

/// Most decoding steps of one run: each is a full scan of the context.
pub const MAX_QUERIES: usize = 1 << 16;
/// Largest synthetic workload (keys and query heads as f32) a run may allocate.
pub const MAX_WORKLOAD_BYTES: u64 = 2 << 30;

/// Refuses a run whose synthetic data could not be allocated or would not finish: at least
/// one token and one query, at most [`MAX_QUERIES`] queries, and keys plus query heads
/// within [`MAX_WORKLOAD_BYTES`]. `tokens` is the context after capping by `max_tokens`.
pub fn check_workload(acc: &Accelerator, tokens: u32, queries: usize) -> Result<()> {
    let cfg = acc.config();
    if tokens == 0 {
        bail!("--tokens 0: the context must hold at least one token");
    }
    if queries == 0 || queries > MAX_QUERIES {
        bail!("--queries {queries}: must be in 1..={MAX_QUERIES}");
    }
    let (d, g) = (
        u64::from(cfg.pq.head_dim),
        u64::from(cfg.retrieval.gqa_group),
    );
    // Keys (N x D), query heads (Q x g x D) and their sums (Q x D), 4 bytes each.
    let bytes = 4 * d * (u64::from(tokens) + queries as u64 * (g + 1));
    if bytes > MAX_WORKLOAD_BYTES {
        bail!(
            "the synthetic workload of --tokens {tokens} keys and --queries {queries} x \
             retrieval.gqa_group {g} query heads of pq.head_dim {d} floats takes {:.1} GiB, \
             more than the {} GiB limit: lower --tokens or --queries",
            bytes as f64 / f64::from(1u32 << 30),
            MAX_WORKLOAD_BYTES >> 30
        );
    }
    Ok(())
}

/// Runs the golden model on synthetic data for `acc`.
pub fn run(acc: &Accelerator, opts: &GoldenOptions) -> Result<GoldenReport> {
    let cfg = acc.config();
    let n = opts.tokens.min(cfg.engine.max_tokens);
    check_workload(acc, n, opts.queries)?;
    let split = acc.policy_split(n);
    let mut spec = SyntheticSpec::new(
        n as usize,
        cfg.pq.head_dim as usize,
        opts.queries,
        cfg.retrieval.gqa_group as usize,
    );
    spec.seed = opts.seed;
    let kv = SyntheticKv::generate(&spec);

    // PQCache trains on the prefill keys: all of them.
    let k = acc.derived().widths.codebook_size as usize;
    let pb = progress_bar(
        opts.progress,
        (cfg.pq.m as usize * opts.kmeans_iters) as u64,
        "k-means",
    );
    let start = Instant::now();
    let train = TrainOptions {
        max_iters: opts.kmeans_iters,
        seed: opts.seed,
        ..TrainOptions::default()
    };
    let codebook = PqCodebook::train(
        kv.keys.view(),
        cfg.pq.m as usize,
        cfg.pq.code_bits,
        &train,
        Some(&|| pb.inc(1)),
    )?;
    pb.finish_and_clear();
    let train_seconds = start.elapsed().as_secs_f64();
    debug_assert_eq!(codebook.k(), k);

    let codes_all = codebook.encode(kv.keys.view())?;
    let (lo, hi) = (split.sink as usize, (split.sink + split.middle) as usize);
    let middle_keys = kv.keys.slice(s![lo..hi, ..]);
    let middle_codes = codes_all.slice(s![lo..hi, ..]).to_owned();
    let beats = pack(&acc.derived().layout, middle_codes.view())?;
    let engine = GoldenEngine::new(acc, codebook.quantize(cfg.quant.centroid_bits)?)?;

    let queries = kv.kv_queries();
    let kk = split.topk as usize;
    let mut m = Measurements::default();
    let pb = progress_bar(opts.progress, queries.nrows() as u64, "queries");
    for q in queries.axis_iter(Axis(0)) {
        let qf = q.to_vec();
        let qq = engine.quantize_query(&qf)?;
        let t0 = Instant::now();
        let res = engine.run(&qq.values, &beats, middle_codes.nrows(), kk)?;
        m.engine_seconds.push(t0.elapsed().as_secs_f64());

        let exact = exact_top_k(middle_keys, q, kk);
        let found: Vec<u32> = res.hits.iter().map(|h| h.index).collect();
        m.recall.push(recall(&found, &exact));
        let float_scores = float_pq_scores(&codebook, &qf, &middle_codes);
        let float_hits: Vec<u32> = top_k_f32(&float_scores, kk);
        m.recall_float_pq.push(recall(&float_hits, &exact));

        m.shift.push(f64::from(res.shift));
        if let (Some(first), Some(last)) = (res.hits.first(), res.hits.last()) {
            m.top_score.push(f64::from(first.score));
            m.kth_score.push(f64::from(last.score));
        }
        let lut = engine.build_lut(&qq.values)?;
        let int_scores = kvpq_core::golden::scan::score_codes(&lut, middle_codes.view());
        let unit =
            f64::from(qq.scale) * f64::from(engine.codebook().scale) * 2f64.powi(lut.shift as i32);
        let rescaled: Vec<f64> = int_scores.iter().map(|&s| f64::from(s) * unit).collect();
        let exact_scores: Vec<f64> = middle_keys
            .outer_iter()
            .map(|k| f64::from(k.dot(&q)))
            .collect();
        m.score_correlation.push(pearson(&rescaled, &exact_scores));
        pb.inc(1);
    }
    pb.finish_and_clear();
    Ok(GoldenReport {
        name: cfg.name.clone(),
        options: GoldenOptions { tokens: n, ..*opts },
        split,
        train_seconds,
        recall: (kk > 0).then(|| Stat::of(&m.recall)),
        recall_float_pq: (kk > 0).then(|| Stat::of(&m.recall_float_pq)),
        shift: Stat::of(&m.shift),
        top_score: (kk > 0).then(|| Stat::of(&m.top_score)),
        kth_score: (kk > 0).then(|| Stat::of(&m.kth_score)),
        score_correlation: Stat::of(&m.score_correlation),
        engine_seconds: Stat::of(&m.engine_seconds),
    })
}

#[derive(Default)]
struct Measurements {
    recall: Vec<f64>,
    recall_float_pq: Vec<f64>,
    shift: Vec<f64>,
    top_score: Vec<f64>,
    kth_score: Vec<f64>,
    score_correlation: Vec<f64>,
    engine_seconds: Vec<f64>,
}

fn progress_bar(visible: bool, len: u64, what: &str) -> ProgressBar {
    if !visible {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("  {msg:<8} [{bar:30}] {pos}/{len} {elapsed}")
            .expect("static template")
            .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}

/// Float asymmetric-distance scores: sum over m of <q_m, C[m][code]>.
fn float_pq_scores(codebook: &PqCodebook, q: &[f32], codes: &Array2<u8>) -> Vec<f32> {
    let (m, k, sub) = codebook.centroids.dim();
    let lut = Array2::from_shape_fn((m, k), |(mi, c)| {
        (0..sub)
            .map(|j| q[mi * sub + j] * codebook.centroids[[mi, c, j]])
            .sum::<f32>()
    });
    codes
        .outer_iter()
        .map(|row| {
            row.iter()
                .enumerate()
                .map(|(mi, &c)| lut[[mi, c as usize]])
                .sum()
        })
        .collect()
}

fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
        sbb += (y - mb) * (y - mb);
    }
    if saa == 0.0 || sbb == 0.0 {
        0.0
    } else {
        sab / (saa * sbb).sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pearson_of_linear_series_is_one() {
        assert!((pearson(&[1.0, 2.0, 3.0], &[2.0, 4.0, 6.0]) - 1.0).abs() < 1e-12);
        assert!((pearson(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
    }
}
