//! `peers accel`: the accelerator's rows of `scripts/bench-peers.sh` (issue [10]), one JSON
//! object per `M:bits:N` point: cycles per query and per layer call, projected at the
//! recorded ECP5 Fmax and at the U55C's kernel clock, and the share of the U55C's HBM
//! bandwidth the projected kernel uses.
//!
//! # The design of a point
//! The shape of `main.rs`'s `accelerator()` (D = 128, 512-bit beats, lanes = 512 / (M x bits),
//! `QuantConfig` 8/8/16, `select` top-k), made concrete like `examples/pqcache-llama3.toml`:
//! min(32, K) MACs, radix_bits 6, read_beats 8, `k_max` = max(max_tokens / 10, the k of
//! max_tokens tokens) (the retrieval policy's k at max_tokens must fit), a U55C
//! kernel at `--u55c-mhz` with `--engines` engines (fewer where the description is refused,
//! e.g. for HBM pseudo-channels; the row's `notes` say so), and `engine.heads` =
//! `--layer-jobs` so that loading the codebooks in co-simulation stays cheap (the cycles of a
//! call do not depend on how many codebooks the engines hold; `sim/benches/kernel_table.rs`
//! does the same). `max_tokens` is a power of two: the co-simulated points of one (M, bits)
//! share one design sized for the longest of them (one bitstream serves every context up to
//! its max_tokens, and each design costs two Verilator builds), the others get N rounded up.
//! No cycle count depends on max_tokens.
//!
//! # What is co-simulated, what is projected
//! For a point of at most `--cosim-max-tokens` tokens (and without `--no-cosim`), both parts
//! are Verilator co-simulations of the generated RTL (`sim`), every result checked against
//! the golden model (`GoldenEngine::run`, equality, no tolerance):
//! - `engine`: `pq_topk_engine` alone (`sim::EngineSim`), its `--layer-jobs` codebooks loaded,
//!   then `--layer-jobs` queries back to back (one per head). This gives the per-query cycles
//!   and the one-engine layer the ECP5 figures use.
//! - `kernel`: the Alveo RTL kernel `kvpq_krnl` (`sim::KernelSim`: AXI4-Lite control,
//!   device memory answering 1-6 cycles after each request, no stalls), one call of
//!   `--layer-jobs` jobs on the kernel's engines (job j on engine j % engines): a first call
//!   that loads the codebooks, then `--later-calls` calls with the codebooks resident, whose
//!   median is the layer's cycles (ap_start written to ap_done seen; fresh queries each call,
//!   the same codes).
//!
//! Larger points, and every point under `--no-cosim`, take the cycle model's numbers
//! (`kvpq_core::spec::CycleModel`, docs/design.md section 6.1); the model's numbers are in
//! every row beside the co-simulated ones. Nothing here is measured on an FPGA: the
//! microseconds are cycles divided by a clock.
//!
//! The data are random (seeded `ChaCha8Rng`): codes uniform over the K centroids, query and
//! centroid integers uniform over their signed range. The scan's cycles do not depend on the
//! data; the `select` unit's emit pass does a little (a bank word with more kept scores than
//! a result beat holds costs more than a cycle), and random codes give the random-order
//! scores its model estimates (docs/design.md section 6.1).
//!
//! # Per query
//! `query_cycles` is the interval between back-to-back queries on one engine, what
//! `CycleModel::query_interval` (`query_cycles_model`) counts: co-simulated, the median gap
//! between the `start`s of consecutive queries from the second on (the first waits for its
//! LUT; later LUTs are built while the previous query scans, and each query's top-k passes
//! overlap the next scan). That is a query's cost in a stream of them, the number an FPGA
//! engineer calls the per-query cost (the initiation interval).
//! A lone query takes longer, its latency: `query_latency_cycles` (co-simulated: `start` to
//! `done` of a query whose LUT was built while the previous one scanned, the median over the
//! jobs after the first) and `query_latency_model` (`CycleModel::query_latency`, the same
//! span); a query that also waits for its LUT adds `lut_build_model` cycles.
//!
//! # Projections
//! - U55C: `layer_cycles` (the kernel call) at `--u55c-mhz`; `query_us_u55c` is one query's
//!   interval on one engine.
//! - ECP5: the engine alone at `--ecp5-mhz`, `--layer-jobs` queries back to back on one engine
//!   (`layer_cycles_ecp5`: from the first query offered to the last `done`, the codebooks
//!   loaded before), code beats arriving one per cycle whenever the engine takes one. That is
//!   the engine core's speed, not the ULX3S board's: the board's 1 Mbaud UART carries a 512-bit
//!   beat in ~0.65 ms (its SDRAM could not feed 64 bytes a cycle either), and the recorded
//!   Fmax (the script passes the ULX3S build's: pqcache-ulx3s, 5 lanes, 4K tokens) is not one
//!   of this shape, whose buffers may not fit the LFE5U-85F at all: `ecp5_valid` says whether an
//!   ECP5 description of the point (one engine, max_tokens = N rounded up) passes the
//!   block-memory rule (`ecp5_note` says why not), a lower bound on what the device needs.
//! - HBM: `layer_bytes` is what one call moves (every job's code beats, ceil(N /
//!   tokens_per_beat) x 64 bytes; its job header and query, (8 + D) x 4 bytes; its results and
//!   header, (1 + min(k, N)) x 8 bytes; the codebooks are resident), `hbm_gbps` = layer_bytes
//!   over the projected call, and `hbm_share` = that over the U55C's HBM2 bandwidth
//!   ([`U55C_HBM_BYTES_PER_S`]). `scan_gbps` is the rate while every engine scans (each
//!   reads a beat per ceil(tokens_per_beat / lanes) cycles), the most the call ever asks for.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use hwgen::emit::Design;
use kvpq_core::golden::packing::pack;
use kvpq_core::golden::{GoldenEngine, QuantCodebook, QueryResult};
use kvpq_core::interface::alveo::{code_stripes, job_words, HBM_CHANNELS, HBM_CHANNEL_BYTES_PER_S};
use kvpq_core::spec::{
    Accelerator, AcceleratorBuilder, DistUnitConfig, EngineConfig, Platform, PqConfig, QuantConfig,
    ScannerConfig, TargetConfig, TopKConfig,
};
use ndarray::{Array2, Array3};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use sim::{
    build_model, default_cache, BuiltModel, EngineSim, Job, KernelCall, KernelJob, KernelSim,
    Stalls,
};

/// Bytes per second of the Alveo U55C's HBM2 (16 GB in 32 pseudo-channels): 460 GB/s, AMD
/// DS963 (the U55C data sheet). Written as the kernel's own per-channel figure
/// (`alveo::HBM_CHANNEL_BYTES_PER_S`, 14.375 GB/s, which sizes its code stripes) times the
/// 32 channels, so that the two cannot disagree.
pub const U55C_HBM_BYTES_PER_S: f64 = HBM_CHANNEL_BYTES_PER_S * HBM_CHANNELS as f64;

/// Head dimension of Llama-3-8B.
const HEAD_DIM: u32 = 128;
/// Bits of one code beat (an HBM/AXI beat).
const BEAT_BITS: u32 = 512;

/// Arguments of `peers accel`.
#[derive(clap::Args)]
pub struct AccelArgs {
    /// Points `M:bits:N` (subspaces, bits per code, tokens).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "2:6:32768,2:6:131072,2:6:524288,16:8:32768,32:4:131072"
    )]
    pub points: Vec<String>,
    /// k as a fraction of N (k = floor(N x k_frac), at least 1).
    #[arg(long, default_value_t = 0.05)]
    pub k_frac: f64,
    /// The recorded ECP5 Fmax in MHz (the ULX3S build's), for the ECP5 projection.
    #[arg(long)]
    pub ecp5_mhz: f64,
    /// The U55C kernel's clock in MHz.
    #[arg(long, default_value_t = 250.0)]
    pub u55c_mhz: f64,
    /// Jobs of a layer call: the KV heads of a Llama-3-8B layer.
    #[arg(long, default_value_t = 8)]
    pub layer_jobs: usize,
    /// Engines of the U55C kernel (fewer where the description is refused).
    #[arg(long, default_value_t = 4)]
    pub engines: u32,
    /// Points with more tokens are projected by the cycle model only.
    #[arg(long, default_value_t = 131_072)]
    pub cosim_max_tokens: usize,
    /// Kernel calls with the codebooks resident after the first (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub later_calls: usize,
    /// Projects every point with the cycle model only (no Verilator).
    #[arg(long)]
    pub no_cosim: bool,
    /// Seed of the random codes, queries and codebooks.
    #[arg(long, default_value_t = 3)]
    pub seed: u64,
}

/// One `M:bits:N` point.
#[derive(Debug, Clone, Copy)]
struct Point {
    m: u32,
    bits: u32,
    n: usize,
}

fn point(text: &str) -> Result<Point> {
    let parts: Vec<&str> = text.split(':').collect();
    let parsed = match parts.as_slice() {
        [m, b, n] => m
            .parse()
            .ok()
            .zip(b.parse().ok())
            .zip(n.parse().ok())
            .map(|((m, bits), n)| Point { m, bits, n }),
        _ => None,
    };
    let p = parsed.with_context(|| format!("point {text}: expected M:bits:N"))?;
    if p.m == 0 || p.bits == 0 || p.n == 0 || p.m.saturating_mul(p.bits) > BEAT_BITS {
        bail!("point {text}: M, bits and N must be positive, and a token must fit a beat");
    }
    if p.n > 1 << 30 {
        bail!("point {text}: N above 2^30 (the most engine.max_tokens allows)");
    }
    Ok(p)
}

/// The description of a point for the U55C kernel with `engines` engines, or, with
/// `platform` generic, for the cycle model alone.
fn describe(
    p: Point,
    max_tokens: usize,
    k_frac: f64,
    heads: u32,
    platform: Platform,
    clock_mhz: f64,
    engines: u32,
) -> Result<Accelerator> {
    // Every point of up to max_tokens tokens fits k_max, and so does the retrieval policy's k
    // at max_tokens (about 5 %).
    let k_max = (max_tokens / 10).max(k_of(max_tokens, k_frac));
    let lanes = (BEAT_BITS / (p.m * p.bits)).max(1);
    let macs = 32.min(1u32 << p.bits);
    let mut target = TargetConfig::new(platform, clock_mhz);
    if platform.is_alveo() {
        target = target.with_engines(engines);
    }
    AcceleratorBuilder::new("peers", PqConfig::new(HEAD_DIM, p.m, p.bits))
        .quant(QuantConfig::new(8, 8, 16))
        .dist_unit(DistUnitConfig::new(macs))
        .scanner(ScannerConfig::new(lanes))
        .topk(
            TopKConfig::select(k_max as u32)
                .with_radix_bits(6)
                .with_read_beats(8),
        )
        .engine(
            EngineConfig::new(max_tokens as u32)
                .with_beat_bits(BEAT_BITS)
                .with_heads(heads),
        )
        .target(target)
        .build()
        .map_err(anyhow::Error::from)
}

/// The description of a point: the U55C kernel with the most engines, at most `want`, that
/// validates; else a generic one (cycle model only). The note says what was given up.
fn choose(p: Point, max_tokens: usize, args: &AccelArgs) -> Result<(Accelerator, Option<String>)> {
    let (heads, clock_mhz, want) = (args.layer_jobs as u32, args.u55c_mhz, args.engines);
    let describe = |platform, engines| {
        describe(
            p,
            max_tokens,
            args.k_frac,
            heads,
            platform,
            clock_mhz,
            engines,
        )
    };
    let mut refused = None;
    let mut e = want;
    while e >= 1 {
        match describe(Platform::U55c, e) {
            Ok(acc) => {
                let note = refused
                    .map(|why: String| format!("u55c refused {want} engines ({why}); {e} engines"));
                return Ok((acc, note));
            }
            Err(why) => {
                refused.get_or_insert_with(|| one_line(&format!("{why:#}")));
            }
        }
        e /= 2;
    }
    let acc = describe(Platform::Generic, 1)
        .with_context(|| format!("{}:{}:{}: no description validates", p.m, p.bits, p.n))?;
    let why = refused.unwrap_or_default();
    Ok((
        acc,
        Some(format!(
            "u55c refused the kernel ({why}); the cycle model of {want} engines only"
        )),
    ))
}

/// A multi-line error (one violation per line) on one line.
fn one_line(text: &str) -> String {
    text.lines()
        .map(|l| l.trim().trim_start_matches("- "))
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The median (the upper one of an even count).
fn median(mut xs: Vec<u64>) -> u64 {
    xs.sort_unstable();
    xs[xs.len() / 2]
}

/// Random data of a point: `heads` codebooks, `jobs` code streams of N tokens.
struct Data {
    codebooks: Vec<QuantCodebook>,
    beats: Vec<Vec<u64>>,
}

impl Data {
    fn new(acc: &Accelerator, n: usize, jobs: usize, rng: &mut ChaCha8Rng) -> Result<Self> {
        let (m, kc, sub, cmax) = shape(acc);
        let codebooks = (0..acc.config().engine.heads())
            .map(|_| QuantCodebook {
                values: Array3::from_shape_fn((m, kc, sub), |_| rng.random_range(-cmax..=cmax)),
                scale: 1.0,
            })
            .collect();
        let beats = (0..jobs)
            .map(|_| {
                let codes = Array2::from_shape_fn((n, m), |_| rng.random_range(0..kc) as u8);
                pack(&acc.derived().layout, codes.view()).context("packing codes")
            })
            .collect::<Result<_>>()?;
        Ok(Self { codebooks, beats })
    }
}

/// (M, K, D/M, the largest centroid integer).
fn shape(acc: &Accelerator) -> (usize, usize, usize, i32) {
    let w = acc.derived().widths;
    (
        acc.config().pq.m as usize,
        w.codebook_size as usize,
        w.sub_dim as usize,
        (1i32 << (w.centroid_bits - 1)) - 1,
    )
}

fn queries(acc: &Accelerator, jobs: usize, rng: &mut ChaCha8Rng) -> Vec<Vec<i32>> {
    let qmax = (1i32 << (acc.derived().widths.query_bits - 1)) - 1;
    (0..jobs)
        .map(|_| {
            (0..acc.config().pq.head_dim)
                .map(|_| rng.random_range(-qmax..=qmax))
                .collect()
        })
        .collect()
}

/// Where a co-simulated result first differs from the golden model's.
fn difference(got: &QueryResult, want: &QueryResult) -> String {
    if got.shift != want.shift {
        return format!("shift {} against {}", got.shift, want.shift);
    }
    match got.hits.iter().zip(&want.hits).position(|(a, b)| a != b) {
        Some(i) => format!(
            "hit {i}: token {} score {} against token {} score {}",
            got.hits[i].index, got.hits[i].score, want.hits[i].index, want.hits[i].score
        ),
        None => format!("{} hits against {}", got.hits.len(), want.hits.len()),
    }
}

/// What the engine's co-simulation gave.
struct EngineCosim {
    /// Median gap between the starts of consecutive queries, from the second on.
    interval: u64,
    /// Median `start` to `done` of the jobs after the first (LUT built during the previous scan).
    latency: u64,
    /// From the first query offered to the last `done`.
    layer: u64,
}

/// A point's co-simulation: its description, RTL, data and golden models, and k.
struct Cosim<'a> {
    acc: &'a Accelerator,
    design: &'a Design,
    data: &'a Data,
    goldens: &'a [GoldenEngine<'a>],
    p: Point,
    k: usize,
}

impl Cosim<'_> {
    /// The Verilator model of `top` (built, or found in the cache) and the seconds it took.
    fn model(&self, top: &str) -> Result<(BuiltModel, f64)> {
        let t = Instant::now();
        let built = build_model(self.design, top, &default_cache())
            .with_context(|| format!("building the Verilator model of {top}"))?;
        Ok((built, t.elapsed().as_secs_f64()))
    }
}

fn cosim_engine(c: &Cosim, rng: &mut ChaCha8Rng) -> Result<EngineCosim> {
    let Cosim {
        acc,
        data,
        goldens,
        p,
        k,
        ..
    } = *c;
    let (built, built_s) = c.model("pq_topk_engine")?;
    let t = Instant::now();
    let mut sim = EngineSim::new(&built, acc, 1, Stalls::NONE)?;
    for (h, cb) in data.codebooks.iter().enumerate() {
        sim.load_head_codebook(h as u32, cb)?;
    }
    let heads = data.codebooks.len();
    let qs = queries(acc, data.beats.len(), rng);
    let jobs: Vec<Job> = qs
        .iter()
        .zip(&data.beats)
        .enumerate()
        .map(|(j, (q, beats))| Job {
            query: q,
            beats,
            n_tokens: p.n,
            k,
            head: (j % heads) as u32,
        })
        .collect();
    let c0 = sim.cycle();
    let out = sim.run(&jobs)?;
    for (j, (o, job)) in out.iter().zip(&jobs).enumerate() {
        let want = goldens[job.head as usize].run(job.query, job.beats, p.n, k)?;
        if o.result != want {
            bail!(
                "{}:{}:{}: the engine's co-simulation and the golden model disagree on job {j}: \
                 {}",
                p.m,
                p.bits,
                p.n,
                difference(&o.result, &want)
            );
        }
    }
    let last = out.last().context("no jobs")?;
    let res = EngineCosim {
        // From the second start on: the first query waits for its LUT, the later ones' LUTs
        // are built while the previous query scans.
        interval: median(
            out[1..]
                .windows(2)
                .map(|w| w[1].start_cycle - w[0].start_cycle)
                .collect(),
        ),
        latency: median(
            out[1..]
                .iter()
                .map(|o| o.done_cycle - o.start_cycle)
                .collect(),
        ),
        layer: last.done_cycle - c0,
    };
    eprintln!(
        "accel {}:{}:{}: engine model {built_s:.1} s to build or find, {:.1} s to run",
        p.m,
        p.bits,
        p.n,
        t.elapsed().as_secs_f64()
    );
    Ok(res)
}

/// What the kernel's co-simulation gave: the first call's cycles and the later calls'.
struct KernelCosim {
    first: u64,
    later: Vec<u64>,
}

fn cosim_kernel(c: &Cosim, later_calls: usize, rng: &mut ChaCha8Rng) -> Result<KernelCosim> {
    let Cosim {
        acc,
        data,
        goldens,
        p,
        k,
        ..
    } = *c;
    let (built, built_s) = c.model("kvpq_krnl")?;
    let t = Instant::now();
    let mut sim = KernelSim::new(&built, acc, 1, Stalls::NONE)?;
    let heads = data.codebooks.len();
    let mut cycles = Vec::new();
    for call in 0..=later_calls {
        let qs = queries(acc, data.beats.len(), rng);
        let jobs: Vec<KernelJob> = qs
            .iter()
            .zip(&data.beats)
            .enumerate()
            .map(|(j, (q, beats))| KernelJob {
                head: (j % heads) as u32,
                query: q,
                beats,
                n_tokens: p.n as u32,
                k: k as u32,
            })
            .collect();
        let got = sim.call(&KernelCall {
            codebooks: (call == 0).then_some(data.codebooks.as_slice()),
            jobs: &jobs,
        })?;
        for (j, (o, job)) in got.jobs.iter().zip(&jobs).enumerate() {
            if o.read_error || o.write_error || o.request_error {
                bail!(
                    "{}:{}:{}: kernel call {call}, job {j} flagged an error (read {}, write {}, \
                     request {})",
                    p.m,
                    p.bits,
                    p.n,
                    o.read_error,
                    o.write_error,
                    o.request_error
                );
            }
            let want = goldens[job.head as usize].run(job.query, job.beats, p.n, k)?;
            if o.result != want {
                bail!(
                    "{}:{}:{}: the kernel's co-simulation and the golden model disagree on call \
                     {call}, job {j}: {}",
                    p.m,
                    p.bits,
                    p.n,
                    difference(&o.result, &want)
                );
            }
        }
        cycles.push(got.cycles);
    }
    eprintln!(
        "accel {}:{}:{}: kernel model {built_s:.1} s to build or find, {:.1} s to run",
        p.m,
        p.bits,
        p.n,
        t.elapsed().as_secs_f64()
    );
    Ok(KernelCosim {
        first: cycles[0],
        later: cycles[1..].to_vec(),
    })
}

/// Prints one JSON object per line (serde_json::json!) for every point.
pub fn run(args: &AccelArgs) -> Result<()> {
    if args.layer_jobs < 3 || args.layer_jobs > 1024 {
        bail!(
            "--layer-jobs must be in 3..=1024 (the interval is measured between the starts of \
             the second and later queries)"
        );
    }
    if !(args.ecp5_mhz > 0.0 && args.u55c_mhz > 0.0) {
        bail!("--ecp5-mhz and --u55c-mhz must be positive");
    }
    if args.later_calls == 0 {
        bail!("--later-calls must be at least 1");
    }
    if !(args.k_frac > 0.0 && args.k_frac <= 1.0) {
        bail!("--k-frac must be in (0, 1]");
    }
    let points: Vec<Point> = args
        .points
        .iter()
        .map(|s| point(s))
        .collect::<Result<_>>()?;
    let cosim = |p: &Point| !args.no_cosim && p.n <= args.cosim_max_tokens;
    for p in &points {
        // The co-simulated points of one (M, bits) share one design, sized for the longest
        // of them, as one bitstream serves every context up to its max_tokens; the others
        // get their own (the cycle model does not depend on max_tokens).
        let max_tokens = if cosim(p) {
            points
                .iter()
                .filter(|q| cosim(q) && (q.m, q.bits) == (p.m, p.bits))
                .map(|q| q.n)
                .max()
                .unwrap_or(p.n)
        } else {
            p.n
        }
        .next_power_of_two();
        println!("{}", row(args, *p, max_tokens, cosim(p))?);
    }
    Ok(())
}

/// k of a point: floor(N x k_frac), at least 1.
fn k_of(n: usize, k_frac: f64) -> usize {
    ((n as f64 * k_frac) as usize).max(1)
}

fn row(args: &AccelArgs, p: Point, max_tokens: usize, cosim: bool) -> Result<Value> {
    let t = Instant::now();
    let jobs = args.layer_jobs;
    let k = k_of(p.n, args.k_frac);
    let (acc, mut notes) =
        choose(p, max_tokens, args).map(|(a, n)| (a, n.into_iter().collect::<Vec<_>>()))?;
    let c = acc.config();
    let d = acc.derived();
    let alveo = c.target.platform.is_alveo();
    let engines = if alveo {
        c.target.engines()
    } else {
        args.engines
    };
    let model = d.cycles;
    let (n64, k64, jobs64) = (p.n as u64, k as u64, jobs as u64);
    let interval_model = model.query_interval(n64, k64);
    let latency_model = model.query_latency(n64, k64);
    let layer_model = model.call_cycles(
        n64,
        k64,
        jobs64,
        u64::from(engines),
        u64::from(job_words(c.pq.head_dim)),
    );
    // One engine, the jobs back to back, from the model's terms: the first query waits for
    // its LUT, each later one starts one interval after the previous, the last ends one
    // latency after its start.
    let ecp5_layer_model = model.lut_build + (jobs64 - 1) * interval_model + latency_model;

    if args.no_cosim {
        notes.push("--no-cosim: cycle model only".into());
    } else if !cosim {
        notes.push(format!(
            "N above --cosim-max-tokens {}: cycle model only",
            args.cosim_max_tokens
        ));
    }
    let (mut engine, mut kernel) = (None, None);
    if cosim {
        let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
        let data = Data::new(&acc, p.n, jobs, &mut rng)?;
        let goldens: Vec<GoldenEngine> = data
            .codebooks
            .iter()
            .map(|cb| GoldenEngine::new(&acc, cb.clone()))
            .collect::<std::result::Result<_, _>>()?;
        let design = Design::render(&acc).context("rendering the RTL")?;
        let cosim = Cosim {
            acc: &acc,
            design: &design,
            data: &data,
            goldens: &goldens,
            p,
            k,
        };
        engine = Some(cosim_engine(&cosim, &mut rng)?);
        if alveo {
            kernel = Some(cosim_kernel(&cosim, args.later_calls, &mut rng)?);
        } else {
            notes.push("no U55C kernel: its layer call is the cycle model's".into());
        }
    }

    let query_cycles = engine.as_ref().map_or(interval_model, |e| e.interval);
    let layer_cycles = kernel
        .as_ref()
        .map_or(layer_model, |kc| median(kc.later.clone()));
    let layer_cycles_ecp5 = engine.as_ref().map_or(ecp5_layer_model, |e| e.layer);
    let mut parts = Vec::new();
    if engine.is_some() {
        parts.push("engine");
    }
    if kernel.is_some() {
        parts.push("kernel");
    }

    // Bytes of one call: code beats, job words, results and headers.
    let layout = d.layout;
    let beat_bytes = u64::from(layout.beat_bits / 8);
    let per_job = layout.beats_for(p.n) as u64 * beat_bytes
        + 4 * u64::from(job_words(c.pq.head_dim))
        + 8 * (1 + k.min(p.n) as u64);
    let layer_bytes = per_job * jobs64;
    let us = |cycles: u64, mhz: f64| cycles as f64 / mhz;
    let layer_us_u55c = us(layer_cycles, args.u55c_mhz);
    let hbm_gbps = layer_bytes as f64 / (layer_us_u55c * 1e3);
    let cycles_per_beat = u64::from(layout.tokens_per_beat.div_ceil(c.scanner.lanes));
    let scan_gbps = f64::from(engines.min(jobs as u32)) * beat_bytes as f64 * args.u55c_mhz
        / 1e3
        / cycles_per_beat as f64;
    // An ECP5 build for this context alone (max_tokens = N rounded up; one engine).
    let ecp5 = describe(
        p,
        p.n.next_power_of_two(),
        args.k_frac,
        jobs as u32,
        Platform::Ecp5,
        args.ecp5_mhz,
        1,
    );
    let row = json!({
        "section": "accel",
        "m": p.m, "bits": p.bits, "tokens": p.n, "k": k,
        "lanes": c.scanner.lanes, "macs": c.dist_unit.macs,
        "max_tokens": c.engine.max_tokens, "k_max": c.topk.k_max,
        "engines": engines,
        "stripes": if alveo { Some(code_stripes(c)) } else { None },
        "cosim": engine.is_some(),
        "cosim_parts": parts,
        "notes": notes,
        "query_cycles": query_cycles,
        "query_cycles_model": interval_model,
        "query_latency_cycles": engine.as_ref().map(|e| e.latency),
        "query_latency_model": latency_model,
        "lut_build_model": model.lut_build,
        "layer_jobs": jobs,
        "layer_cycles": layer_cycles,
        "layer_cycles_model": layer_model,
        "layer_cycles_first_call": kernel.as_ref().map(|kc| kc.first),
        "layer_cycles_later_calls": kernel.as_ref().map(|kc| kc.later.clone()),
        "layer_cycles_ecp5": layer_cycles_ecp5,
        "layer_cycles_ecp5_model": ecp5_layer_model,
        "ecp5_mhz": args.ecp5_mhz, "u55c_mhz": args.u55c_mhz,
        "query_us_ecp5": us(query_cycles, args.ecp5_mhz),
        "query_us_u55c": us(query_cycles, args.u55c_mhz),
        "layer_us_ecp5": us(layer_cycles_ecp5, args.ecp5_mhz),
        "layer_us_u55c": layer_us_u55c,
        "ecp5_valid": ecp5.is_ok(),
        "ecp5_note": ecp5.err().map(|e| one_line(&format!("{e:#}"))),
        "layer_bytes": layer_bytes,
        "hbm_gbps": hbm_gbps,
        "hbm_share": hbm_gbps * 1e9 / U55C_HBM_BYTES_PER_S,
        "scan_gbps": scan_gbps,
        "scan_share": scan_gbps * 1e9 / U55C_HBM_BYTES_PER_S,
    });
    eprintln!(
        "accel {}:{}:{}: {:.1} s",
        p.m,
        p.bits,
        p.n,
        t.elapsed().as_secs_f64()
    );
    Ok(row)
}
