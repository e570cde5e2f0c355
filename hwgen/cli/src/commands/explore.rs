//! `hwgen explore SPACE.toml`: sweeps lanes, m, code_bits, lut_bits and the top-k strategy
//! around a base description; for each valid point it synthesizes the engine for ECP5
//! (Yosys), runs the golden model for recall on synthetic keys and the cycle model for
//! throughput; writes `points.csv` and two SVG plots marking the Pareto front (recall up,
//! throughput up, LUTs down).

use std::fmt::Write as _;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use plotters::prelude::*;
use rayon::prelude::*;
use serde::Deserialize;

use super::golden::{self, GoldenOptions};
use hwgen::emit::Design;
use hwgen::targets::ecp5::synth::{synth_ecp5_cells, Ecp5Cells};
use kvpq_core::spec::{Accelerator, AcceleratorConfig, TopKStrategy, MAX_DESCRIPTION_BYTES};

/// Largest k the systolic unit takes (per-lane queues).
const SYSTOLIC_K_LIMIT: u32 = 256;

/// A design space: a base description and the values to sweep.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Space {
    /// Base description (TOML), relative to the space file.
    pub base: PathBuf,
    /// Values to sweep; an absent list keeps the base value.
    #[serde(default)]
    pub sweep: Sweep,
    /// Context length for recall and throughput (capped by max_tokens).
    #[serde(default = "default_tokens")]
    pub tokens: u32,
    /// Decoding steps per point.
    #[serde(default = "default_queries")]
    pub queries: usize,
    /// Seed of the synthetic keys and of k-means.
    #[serde(default)]
    pub seed: u64,
    /// Lloyd iterations per subspace.
    #[serde(default = "default_kmeans")]
    pub kmeans_iters: usize,
    /// Override of engine.max_tokens (a smaller score buffer synthesizes much faster).
    #[serde(default)]
    pub max_tokens: Option<u32>,
}

/// Swept values.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sweep {
    /// Scanner lanes; 0 means one lane per token of a beat.
    #[serde(default)]
    pub lanes: Vec<u32>,
    /// Subspaces.
    #[serde(default)]
    pub m: Vec<u32>,
    /// Code bits (K = 2^b).
    #[serde(default)]
    pub code_bits: Vec<u32>,
    /// LUT entry bits.
    #[serde(default)]
    pub lut_bits: Vec<u32>,
    /// Top-k strategies.
    #[serde(default)]
    pub strategy: Vec<TopKStrategy>,
    /// Radix bits of the `select` unit's threshold passes (2^r - 1 comparators per lane).
    #[serde(default)]
    pub radix_bits: Vec<u32>,
}

fn default_tokens() -> u32 {
    4096
}
fn default_queries() -> usize {
    8
}
fn default_kmeans() -> usize {
    15
}

/// One evaluated point.
#[derive(Debug, Clone)]
pub struct Point {
    /// Point name.
    pub name: String,
    /// Lanes, m, code bits, LUT bits, strategy.
    pub lanes: u32,
    /// Subspaces.
    pub m: u32,
    /// Code bits.
    pub code_bits: u32,
    /// LUT bits.
    pub lut_bits: u32,
    /// Strategy.
    pub strategy: TopKStrategy,
    /// `ok`, or why the point was skipped.
    pub status: String,
    /// Mean recall@k of the bit-exact engine.
    pub recall: f64,
    /// Tokens per second at the base clock (cycle model).
    pub tokens_per_s: f64,
    /// Latency of one query at `tokens` (cycle model), microseconds.
    pub latency_us: f64,
    /// ECP5 cells.
    pub cells: Ecp5Cells,
    /// On the Pareto front.
    pub pareto: bool,
}

/// Loads a space file.
pub fn load(path: &Path) -> Result<(Space, AcceleratorConfig)> {
    // Read like a description: at most MAX_DESCRIPTION_BYTES, so `/dev/zero` cannot grow
    // without bound.
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_DESCRIPTION_BYTES + 1).read_to_end(&mut bytes))
        .with_context(|| format!("reading {}", path.display()))?;
    if bytes.len() as u64 > MAX_DESCRIPTION_BYTES {
        bail!(
            "{}: larger than the {MAX_DESCRIPTION_BYTES}-byte limit of a space file",
            path.display()
        );
    }
    let text = String::from_utf8(bytes).with_context(|| format!("reading {}", path.display()))?;
    let space: Space =
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let base_path = path.parent().unwrap_or(Path::new(".")).join(&space.base);
    let base = AcceleratorConfig::from_toml_file(&base_path)
        .with_context(|| format!("base description {}", base_path.display()))?;
    Ok((space, base))
}

fn or_base<T: Copy>(list: &[T], base: T) -> Vec<T> {
    if list.is_empty() {
        vec![base]
    } else {
        list.to_vec()
    }
}

/// Every combination of the sweep, as descriptions (not yet validated).
pub fn points(space: &Space, base: &AcceleratorConfig) -> Vec<AcceleratorConfig> {
    let s = &space.sweep;
    let mut out = Vec::new();
    for &m in &or_base(&s.m, base.pq.m) {
        for &b in &or_base(&s.code_bits, base.pq.code_bits) {
            for &lb in &or_base(&s.lut_bits, base.quant.lut_bits) {
                for &strategy in &or_base(&s.strategy, base.topk.strategy) {
                    for &radix in &or_base(&s.radix_bits, base.topk.radix_bits.unwrap_or(0)) {
                        for &lanes in &or_base(&s.lanes, base.scanner.lanes) {
                            let mut c = base.clone();
                            c.pq.m = m;
                            c.pq.code_bits = b;
                            c.quant.lut_bits = lb;
                            if let Some(n) = space.max_tokens {
                                c.engine.max_tokens = n;
                                c.topk.k_max = c.topk.k_max.min(n);
                            }
                            c.topk.strategy = strategy;
                            if radix > 0 {
                                c.topk.radix_bits = Some(radix);
                            }
                            if strategy == TopKStrategy::Systolic {
                                c.topk.k_max = c.topk.k_max.min(SYSTOLIC_K_LIMIT);
                                c.topk.radix_bits = None;
                            }
                            // A MAC group shares one subspace: at most K MACs.
                            c.dist_unit.macs = c.dist_unit.macs.min(1 << b.min(16));
                            let per_beat = c.engine.beat_bits / (m * b).max(1);
                            c.scanner.lanes = if lanes == 0 { per_beat.max(1) } else { lanes };
                            c.name = format!(
                                "{}-l{}-m{m}-b{b}-lb{lb}-{strategy}{}",
                                base.name,
                                c.scanner.lanes,
                                c.topk
                                    .radix_bits
                                    .map_or(String::new(), |r| format!("-r{r}"))
                            );
                            out.push(c);
                        }
                    }
                }
            }
        }
    }
    out
}

fn evaluate(cfg: AcceleratorConfig, space: &Space, dir: &Path) -> Point {
    let mut p = Point {
        name: cfg.name.clone(),
        lanes: cfg.scanner.lanes,
        m: cfg.pq.m,
        code_bits: cfg.pq.code_bits,
        lut_bits: cfg.quant.lut_bits,
        strategy: cfg.topk.strategy,
        status: "ok".into(),
        recall: 0.0,
        tokens_per_s: 0.0,
        latency_us: 0.0,
        cells: Ecp5Cells::default(),
        pareto: false,
    };
    let result = (|| -> Result<()> {
        let acc = Accelerator::new(cfg.clone()).map_err(|e| {
            anyhow::anyhow!(
                "invalid: {}",
                e.violations()
                    .first()
                    .map_or(e.to_string(), |v| format!("{} {}", v.field, v.rule))
            )
        })?;
        let n = space.tokens.min(cfg.engine.max_tokens);
        let opts = GoldenOptions {
            tokens: n,
            queries: space.queries,
            seed: space.seed,
            kmeans_iters: space.kmeans_iters,
            progress: false,
        };
        // A point whose policy retrieves nothing at the space's context has no recall to
        // rank: it is an error, not a perfect score.
        p.recall = golden::run(&acc, &opts)
            .context("golden model")?
            .recall
            .with_context(|| {
                format!("recall not applicable: the retrieval policy gives k = 0 at {n} tokens")
            })?
            .mean;
        let cycles = &acc.derived().cycles;
        let hz = cfg.target.clock_mhz * 1e6;
        p.tokens_per_s = f64::from(cfg.scanner.lanes) * hz * cycles.scan_efficiency(u64::from(n));
        let k = acc.policy_k(n).min(cfg.topk.k_max);
        p.latency_us = cycles.query_latency(u64::from(n), u64::from(k)) as f64 / hz * 1e6;
        let design = Design::render(&acc).context("rendering RTL")?;
        let pdir = dir.join(&cfg.name);
        design.write(&pdir).context("writing RTL")?;
        p.cells = synth_ecp5_cells(&pdir, &design.verilog_files(), "pq_topk_engine")
            .context("yosys synth_ecp5")?;
        Ok(())
    })();
    if let Err(e) = result {
        p.status = format!("{e:#}").replace([',', '\n'], ";");
    }
    p
}

/// Marks the points no other valid point beats on recall, throughput and LUTs at once.
pub fn mark_pareto(points: &mut [Point]) {
    let ok: Vec<usize> = (0..points.len())
        .filter(|&i| points[i].status == "ok")
        .collect();
    for &i in &ok {
        let a = &points[i];
        let dominated = ok.iter().any(|&j| {
            let b = &points[j];
            j != i
                && b.recall >= a.recall
                && b.tokens_per_s >= a.tokens_per_s
                && b.cells.lut4 <= a.cells.lut4
                && (b.recall > a.recall
                    || b.tokens_per_s > a.tokens_per_s
                    || b.cells.lut4 < a.cells.lut4)
        });
        points[i].pareto = !dominated;
    }
}

/// The CSV of the points.
pub fn csv(points: &[Point]) -> String {
    let mut out = String::from(
        "name,lanes,m,code_bits,lut_bits,strategy,status,recall,tokens_per_s,latency_us,lut4,ff,bram,dsp,pareto\n",
    );
    for p in points {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{:.4},{:.0},{:.2},{},{},{},{},{}",
            p.name,
            p.lanes,
            p.m,
            p.code_bits,
            p.lut_bits,
            p.strategy,
            p.status,
            p.recall,
            p.tokens_per_s,
            p.latency_us,
            p.cells.lut4,
            p.cells.ff,
            p.cells.bram,
            p.cells.dsp,
            p.pareto
        );
    }
    out
}

/// Draws recall against `x` for the valid points, the Pareto front in red.
fn plot(
    path: &Path,
    title: &str,
    x_label: &str,
    points: &[Point],
    x: impl Fn(&Point) -> f64,
) -> Result<()> {
    let ok: Vec<&Point> = points.iter().filter(|p| p.status == "ok").collect();
    let xmax = ok.iter().map(|p| x(p)).fold(0.0, f64::max) * 1.1 + 1e-9;
    let root = SVGBackend::new(path, (800, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..xmax, 0.0..1.0f64)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc("recall@k")
        .draw()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    chart
        .draw_series(
            ok.iter()
                .filter(|p| !p.pareto)
                .map(|p| Circle::new((x(p), p.recall), 4, BLUE.mix(0.6).filled())),
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .label("design point")
        .legend(|(x, y)| Circle::new((x, y), 4, BLUE.filled()));
    chart
        .draw_series(
            ok.iter()
                .filter(|p| p.pareto)
                .map(|p| Circle::new((x(p), p.recall), 6, RED.filled())),
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .label("Pareto front (recall, throughput, LUTs)")
        .legend(|(x, y)| Circle::new((x, y), 6, RED.filled()));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

/// Runs the exploration into `out`: per-point RTL and logs under `out/points`, `points.csv`,
/// `recall_vs_throughput.svg`, `recall_vs_luts.svg`. Returns the points.
pub fn run(space_path: &Path, out: &Path, progress: bool) -> Result<Vec<Point>> {
    let (space, base) = load(space_path)?;
    let configs = points(&space, &base);
    let dir = out.join("points");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let bar = if progress {
        ProgressBar::new(configs.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("explore [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut evaluated: Vec<Point> = configs
        .into_par_iter()
        .map(|c| {
            let p = evaluate(c, &space, &dir);
            bar.inc(1);
            bar.set_message(p.name.clone());
            p
        })
        .collect();
    bar.finish_and_clear();
    mark_pareto(&mut evaluated);
    let csv_path = out.join("points.csv");
    std::fs::write(&csv_path, csv(&evaluated))
        .with_context(|| format!("writing {}", csv_path.display()))?;
    plot(
        &out.join("recall_vs_throughput.svg"),
        &format!("{}: recall vs throughput", base.name),
        &format!("M tokens/s at {} MHz (cycle model)", base.target.clock_mhz),
        &evaluated,
        |p| p.tokens_per_s / 1e6,
    )?;
    plot(
        &out.join("recall_vs_luts.svg"),
        &format!("{}: recall vs ECP5 LUT4", base.name),
        "LUT4 sites (yosys synth_ecp5)",
        &evaluated,
        |p| p.cells.lut4 as f64,
    )?;
    Ok(evaluated)
}
