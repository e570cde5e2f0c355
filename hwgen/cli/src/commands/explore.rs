//! `hwgen explore SPACE.toml`: sweeps lanes, m, code_bits, lut_bits and the top-k strategy
//! around a base description; for each valid point it synthesizes the engine for ECP5
//! (Yosys), runs the golden model for recall on synthetic keys and the cycle model for
//! throughput (N x clock / interval between queries, top-k included: docs/design.md 6.1);
//! writes `points.csv` and two SVG plots marking the Pareto front (recall up, throughput up,
//! LUTs down), each point labelled with its parameters.

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
use kvpq_core::spec::{
    Accelerator, AcceleratorConfig, Projection, TopKStrategy, MAX_DESCRIPTION_BYTES,
};

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
    /// Radix bits of the `select` unit, when the description sets them.
    pub radix_bits: Option<u32>,
    /// `ok`, or why the point was skipped.
    pub status: String,
    /// Mean recall@k of the bit-exact engine.
    pub recall: f64,
    /// Cycle model of one query at the space's `tokens` and the base clock
    /// ([`Accelerator::project`]): interval, efficiencies, tokens/s; zero when skipped.
    pub projection: Projection,
    /// ECP5 cells.
    pub cells: Ecp5Cells,
    /// On the Pareto front.
    pub pareto: bool,
}

impl Point {
    /// Tokens per second of the engine with queries back to back (cycle model).
    pub fn tokens_per_s(&self) -> f64 {
        self.projection.tokens_per_s()
    }

    /// The point's parameters in a few characters, as the plots label it:
    /// `L42 m2 b6 lb16 sel r4` (lanes, subspaces, code bits, LUT bits, top-k strategy and
    /// radix bits).
    pub fn label(&self) -> String {
        let strategy = match (self.strategy, self.radix_bits) {
            (TopKStrategy::Systolic, _) => "sys".to_string(),
            (TopKStrategy::Select, None) => "sel".to_string(),
            (TopKStrategy::Select, Some(r)) => format!("sel r{r}"),
        };
        format!(
            "L{} m{} b{} lb{} {strategy}",
            self.lanes, self.m, self.code_bits, self.lut_bits
        )
    }
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
        radix_bits: cfg.topk.radix_bits,
        status: "ok".into(),
        recall: 0.0,
        projection: Projection::default(),
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
        // Throughput from the interval between queries: the top-k drain counts.
        p.projection = acc.project(n, cfg.target.clock_mhz);
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
                && b.tokens_per_s() >= a.tokens_per_s()
                && b.cells.lut4 <= a.cells.lut4
                && (b.recall > a.recall
                    || b.tokens_per_s() > a.tokens_per_s()
                    || b.cells.lut4 < a.cells.lut4)
        });
        points[i].pareto = !dominated;
    }
}

/// The CSV of the points: throughput from the interval between queries (`tokens_per_s`),
/// with the interval, both efficiencies and the latency beside it.
pub fn csv(points: &[Point]) -> String {
    let mut out = String::from(
        "name,lanes,m,code_bits,lut_bits,strategy,status,recall,tokens,k,tokens_per_s,\
         scan_efficiency,engine_efficiency,interval_cycles,latency_cycles,latency_us,lut4,ff,\
         bram,dsp,pareto\n",
    );
    for p in points {
        let q = &p.projection;
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{:.4},{},{},{:.0},{:.4},{:.4},{},{},{:.2},{},{},{},{},{}",
            p.name,
            p.lanes,
            p.m,
            p.code_bits,
            p.lut_bits,
            p.strategy,
            p.status,
            p.recall,
            q.tokens,
            q.k,
            q.tokens_per_s(),
            q.scan_efficiency,
            q.engine_efficiency,
            q.interval,
            q.latency,
            q.latency_us(),
            p.cells.lut4,
            p.cells.ff,
            p.cells.bram,
            p.cells.dsp,
            p.pareto
        );
    }
    out
}

/// Most valid points a plot labels all of; beyond it only the Pareto points get labels
/// (the legend says so), since dozens of labels cannot stay apart.
const LABEL_ALL_MAX: usize = 24;
/// Font of the point labels (plotters' size; SVG text of about 10 px).
const LABEL_FONT: (&str, u32) = ("sans-serif", 12);
/// Radius of a Pareto point's marker in pixels (the larger one); labels keep clear of it.
const MARKER_RADIUS: i32 = 6;
/// Plot area and legend band of the SVGs, in pixels.
const PLOT_SIZE: (u32, u32) = (860, 580);
const LEGEND_BAND: u32 = 56;

/// A box in pixels: left, top, right, bottom.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rect {
    l: i32,
    t: i32,
    r: i32,
    b: i32,
}

impl Rect {
    fn overlaps(&self, o: &Rect) -> bool {
        self.l < o.r && o.l < self.r && self.t < o.b && o.t < self.b
    }

    fn inside(&self, o: &Rect) -> bool {
        self.l >= o.l && self.r <= o.r && self.t >= o.t && self.b <= o.b
    }
}

/// Where a label went: its box, and whether it sits away from its point (a leader line
/// then joins them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Placed {
    rect: Rect,
    leader: bool,
}

/// Places the labels of `sizes` (width, height) beside the points `anchors`, in `order`,
/// inside `area`: a label overlaps no other label and no marker (`radius` around every
/// point, labelled or not). Each label tries eight positions around its point, then the same
/// farther out; `None` where none is free.
fn place_labels(
    anchors: &[(i32, i32)],
    sizes: &[(i32, i32)],
    order: &[usize],
    area: Rect,
    radius: i32,
) -> Vec<Option<Placed>> {
    let mut taken: Vec<Rect> = anchors
        .iter()
        .map(|&(x, y)| Rect {
            l: x - radius,
            t: y - radius,
            r: x + radius,
            b: y + radius,
        })
        .collect();
    let mut out = vec![None; anchors.len()];
    for &i in order {
        let ((x, y), (w, h)) = (anchors[i], sizes[i]);
        let found = (0..4).find_map(|ring| {
            let g = radius + 2 + ring * 14;
            let d = g * 7 / 10; // diagonal offsets, about g / sqrt(2)
                                // Right, left, above, below, then the four corners: the first free one wins.
            [
                (x + g, y - h / 2),
                (x - g - w, y - h / 2),
                (x - w / 2, y - g - h),
                (x - w / 2, y + g),
                (x + d, y - d - h),
                (x + d, y + d),
                (x - d - w, y - d - h),
                (x - d - w, y + d),
            ]
            .into_iter()
            .map(|(l, t)| Rect {
                l,
                t,
                r: l + w,
                b: t + h,
            })
            .find(|r| r.inside(&area) && !taken.iter().any(|o| o.overlaps(r)))
            .map(|rect| Placed {
                rect,
                leader: ring > 0,
            })
        });
        if let Some(p) = found {
            taken.push(p.rect);
            out[i] = Some(p);
        }
    }
    out
}

fn plot_error(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("drawing the plot: {e}")
}

/// Draws recall against `x` for the valid points, the Pareto front in red, each point
/// labelled with [`Point::label`] (only the Pareto points when there are more than
/// [`LABEL_ALL_MAX`]); a band below the chart holds the legend.
fn plot(
    path: &Path,
    title: &str,
    x_label: &str,
    points: &[Point],
    x: impl Fn(&Point) -> f64,
) -> Result<()> {
    let ok: Vec<&Point> = points.iter().filter(|p| p.status == "ok").collect();
    let xmax = ok.iter().map(|p| x(p)).fold(0.0, f64::max) * 1.1 + 1e-9;
    let root = SVGBackend::new(path, (PLOT_SIZE.0, PLOT_SIZE.1 + LEGEND_BAND)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let (top, band) = root.split_vertically(PLOT_SIZE.1);
    let mut chart = ChartBuilder::on(&top)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..xmax, 0.0..1.0f64)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc("recall@k")
        .draw()
        .map_err(plot_error)?;
    chart
        .draw_series(
            ok.iter()
                .filter(|p| !p.pareto)
                .map(|p| Circle::new((x(p), p.recall), 4, BLUE.mix(0.6).filled())),
        )
        .map_err(plot_error)?;
    chart
        .draw_series(
            ok.iter()
                .filter(|p| p.pareto)
                .map(|p| Circle::new((x(p), p.recall), MARKER_RADIUS, RED.filled())),
        )
        .map_err(plot_error)?;

    // Labels in pixels, placed so they stay apart; Pareto points first, so they win a spot.
    let label_all = ok.len() <= LABEL_ALL_MAX;
    let font = TextStyle::from(LABEL_FONT);
    let anchors: Vec<(i32, i32)> = ok
        .iter()
        .map(|p| chart.backend_coord(&(x(p), p.recall)))
        .collect();
    let texts: Vec<String> = ok.iter().map(|p| p.label()).collect();
    let sizes = texts
        .iter()
        .map(|t| {
            let (w, h) = top.estimate_text_size(t, &font).map_err(plot_error)?;
            Ok((w as i32 + 2, h as i32 + 2))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut order: Vec<usize> = (0..ok.len())
        .filter(|&i| label_all || ok[i].pareto)
        .collect();
    order.sort_by_key(|&i| !ok[i].pareto);
    let (xr, yr) = chart.plotting_area().get_pixel_range();
    let area = Rect {
        l: xr.start,
        t: yr.start,
        r: xr.end,
        b: yr.end,
    };
    let placed = place_labels(&anchors, &sizes, &order, area, MARKER_RADIUS);
    let mut missing = 0;
    for &i in &order {
        let Some(p) = placed[i] else {
            missing += 1;
            continue;
        };
        if p.leader {
            let (ax, ay) = anchors[i];
            let end = (ax.clamp(p.rect.l, p.rect.r), ay.clamp(p.rect.t, p.rect.b));
            top.draw(&PathElement::new(
                vec![(ax, ay), end],
                BLACK.mix(0.3).stroke_width(1),
            ))
            .map_err(plot_error)?;
        }
        let colour = if ok[i].pareto {
            RED.mix(0.9)
        } else {
            BLACK.mix(0.75)
        };
        top.draw(&Text::new(
            texts[i].clone(),
            (p.rect.l + 1, p.rect.t + 1),
            font.color(&colour),
        ))
        .map_err(plot_error)?;
    }

    // Legend band: markers, what the labels mean, and which points carry one.
    let legend = TextStyle::from(LABEL_FONT);
    band.draw(&Circle::new((70, 14), 4, BLUE.mix(0.6).filled()))
        .map_err(plot_error)?;
    band.draw(&Text::new("design point", (80, 8), legend.clone()))
        .map_err(plot_error)?;
    band.draw(&Circle::new((200, 14), MARKER_RADIUS, RED.filled()))
        .map_err(plot_error)?;
    band.draw(&Text::new(
        "Pareto front (recall, throughput, LUTs)",
        (212, 8),
        legend.clone(),
    ))
    .map_err(plot_error)?;
    let mut which = if label_all {
        "every point labelled".to_string()
    } else {
        format!(
            "only the Pareto points labelled ({} others in points.csv)",
            ok.iter().filter(|p| !p.pareto).count()
        )
    };
    if missing > 0 {
        let _ = write!(which, "; {missing} label(s) left out for lack of room");
    }
    band.draw(&Text::new(
        format!(
            "labels: L lanes, m subspaces, b code bits, lb LUT bits, top-k sel(ect, r radix bits) \
             or sys(tolic); {which}"
        ),
        (64, 30),
        legend,
    ))
    .map_err(plot_error)?;
    root.present().map_err(plot_error)?;
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
    let n = space
        .tokens
        .min(space.max_tokens.unwrap_or(base.engine.max_tokens));
    plot(
        &out.join("recall_vs_throughput.svg"),
        &format!("{}: recall vs throughput at {n} tokens", base.name),
        &format!(
            "M tokens/s at {} MHz (cycle model: N x clock / interval between queries, top-k              included)",
            base.target.clock_mhz
        ),
        &evaluated,
        |p| p.tokens_per_s() / 1e6,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_stay_apart_and_inside() {
        let area = Rect {
            l: 0,
            t: 0,
            r: 400,
            b: 300,
        };
        // Three points on top of each other, one in a corner: all placed, none overlapping
        // another label or any marker, all inside the area.
        let anchors = [(200, 150), (202, 151), (198, 149), (395, 5)];
        let sizes = [(110, 12); 4];
        let placed = place_labels(&anchors, &sizes, &[0, 1, 2, 3], area, 6);
        let rects: Vec<Rect> = placed.iter().map(|p| p.unwrap().rect).collect();
        for (i, r) in rects.iter().enumerate() {
            assert!(r.inside(&area), "{r:?}");
            for (j, o) in rects.iter().enumerate() {
                assert!(i == j || !r.overlaps(o), "{r:?} {o:?}");
            }
            for &(x, y) in &anchors {
                let marker = Rect {
                    l: x - 6,
                    t: y - 6,
                    r: x + 6,
                    b: y + 6,
                };
                assert!(!r.overlaps(&marker), "{r:?} covers ({x}, {y})");
            }
        }
        assert!(
            !placed[0].unwrap().leader,
            "the first label sits next to its point"
        );
        // No room at all: left out, not drawn over the others.
        let tiny = Rect {
            l: 0,
            t: 0,
            r: 20,
            b: 20,
        };
        assert_eq!(
            place_labels(&[(10, 10)], &[(110, 12)], &[0], tiny, 6),
            vec![None]
        );
    }

    fn point(lanes: u32, recall: f64, pareto: bool) -> Point {
        Point {
            name: format!("p{lanes}"),
            lanes,
            m: 2,
            code_bits: 2,
            lut_bits: 16,
            strategy: TopKStrategy::Select,
            radix_bits: None,
            status: "ok".into(),
            recall,
            projection: Projection {
                tokens: 64,
                clock_mhz: 100.0,
                interval: 100 + u64::from(lanes),
                ..Projection::default()
            },
            cells: Ecp5Cells::default(),
            pareto,
        }
    }

    #[test]
    fn many_points_label_the_pareto_front_only() {
        let dir = std::env::temp_dir().join(format!("hwgen-explore-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("many.svg");
        let points: Vec<Point> = (1..=30)
            .map(|i| point(i, f64::from(i) / 40.0, i % 10 == 0))
            .collect();
        plot(&path, "many", "x", &points, |p| p.tokens_per_s()).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_dir_all(&dir).ok();
        assert!(
            svg.contains("only the Pareto points labelled (27 others in points.csv)"),
            "{svg}"
        );
        for p in &points {
            let label = format!(">\n{}\n<", p.label());
            assert_eq!(svg.contains(&label), p.pareto, "{}", p.label());
        }
    }

    #[test]
    fn label_names_the_parameters() {
        let mut p = Point {
            name: "x".into(),
            lanes: 42,
            m: 2,
            code_bits: 6,
            lut_bits: 16,
            strategy: TopKStrategy::Select,
            radix_bits: Some(4),
            status: "ok".into(),
            recall: 0.5,
            projection: Projection::default(),
            cells: Ecp5Cells::default(),
            pareto: false,
        };
        assert_eq!(p.label(), "L42 m2 b6 lb16 sel r4");
        p.strategy = TopKStrategy::Systolic;
        assert_eq!(p.label(), "L42 m2 b6 lb16 sys");
    }
}
