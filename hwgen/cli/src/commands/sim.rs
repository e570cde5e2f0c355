//! `hwgen sim`: the engine's Verilator model on synthetic KV data, checked against the golden
//! model, with its cycle counts next to the cycle model's.

use std::fmt;
use std::path::Path;
use std::time::Instant;

use hwgen::emit::Design;
use kvpq_core::golden::packing::pack;
use kvpq_core::golden::{GoldenEngine, PqCodebook, TrainOptions};
use kvpq_core::spec::Accelerator;
use kvpq_core::workload::{SyntheticKv, SyntheticSpec};

use sim::{build_model, EngineSim, Job, Result, SimError, Stalls};

/// Options of a simulation run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimOptions {
    /// Tokens per query (capped by max_tokens).
    pub tokens: u32,
    /// Queries, run back to back.
    pub queries: usize,
    /// Results per query; `None` takes the retrieval policy's k (capped by k_max).
    pub k: Option<u32>,
    /// Seed of data and stalls.
    pub seed: u64,
    /// Stall pattern of the environment.
    pub stalls: Stalls,
}

impl Default for SimOptions {
    fn default() -> Self {
        Self {
            tokens: 4096,
            queries: 4,
            k: None,
            seed: 0,
            stalls: Stalls::NONE,
        }
    }
}

/// Measured behaviour of the engine model.
#[derive(Debug, Clone, PartialEq)]
pub struct SimReport {
    /// Accelerator name.
    pub name: String,
    /// Tokens per query.
    pub tokens: u32,
    /// Results per query.
    pub k: u32,
    /// Queries simulated (all bit-exact against the golden model).
    pub queries: usize,
    /// Cycles from start to done of the first query, run alone: its LUT build, scan and
    /// top-k (the next queries overlap, so their start-to-done includes waiting).
    pub latency: u64,
    /// Cycles between successive done pulses in steady state (median; latency if one query).
    pub interval: u64,
    /// Scan cycles per query (median).
    pub scan_cycles: u64,
    /// tokens / (lanes * scan cycles).
    pub scan_efficiency: f64,
    /// tokens / (lanes * interval): the share of the lanes' cycles the engine delivers.
    pub engine_efficiency: f64,
    /// Cycle model: latency (LUT build included), interval, scan and engine efficiency for
    /// the same query.
    pub model: (u64, u64, f64, f64),
    /// Simulated cycles.
    pub cycles: u64,
    /// Simulated cycles per wall-clock second.
    pub cycles_per_second: f64,
    /// Seconds spent building (or finding) the model.
    pub build_seconds: f64,
}

impl fmt::Display for SimReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "simulation `{}`: {} queries x {} tokens, k = {}: bit-exact against the golden model",
            self.name, self.queries, self.tokens, self.k
        )?;
        writeln!(f, "  {:<28} {:>12} {:>12}", "", "measured", "cycle model")?;
        writeln!(
            f,
            "  {:<28} {:>12} {:>12}",
            "latency incl. LUT (cycles)", self.latency, self.model.0
        )?;
        writeln!(
            f,
            "  {:<28} {:>12} {:>12}",
            "interval (cycles/query)", self.interval, self.model.1
        )?;
        writeln!(
            f,
            "  {:<28} {:>12} {:>12}",
            "scan cycles", self.scan_cycles, ""
        )?;
        writeln!(
            f,
            "  {:<28} {:>12.4} {:>12.4}",
            "scan efficiency", self.scan_efficiency, self.model.2
        )?;
        writeln!(
            f,
            "  {:<28} {:>12.4} {:>12.4}",
            "engine efficiency", self.engine_efficiency, self.model.3
        )?;
        write!(
            f,
            "  simulated {} cycles at {:.2} M cycles/s (model built in {:.1} s)",
            self.cycles,
            self.cycles_per_second / 1e6,
            self.build_seconds
        )
    }
}

fn median(mut xs: Vec<u64>) -> u64 {
    xs.sort_unstable();
    xs.get(xs.len() / 2).copied().unwrap_or(0)
}

/// Builds the engine model of `acc` (cached under `cache`), runs clustered synthetic queries
/// through it and through the golden model, and reports cycles. A mismatch is an error.
pub fn run(acc: &Accelerator, opts: &SimOptions, cache: &Path) -> Result<SimReport> {
    let cfg = acc.config();
    let n = opts.tokens.min(cfg.engine.max_tokens) as usize;
    let k = opts
        .k
        .unwrap_or_else(|| acc.policy_k(n as u32))
        .min(cfg.topk.k_max) as usize;

    // Data: clustered keys, codebooks trained on them, GQA-summed queries.
    let mut spec = SyntheticSpec::new(
        n.max(1 << cfg.pq.code_bits),
        cfg.pq.head_dim as usize,
        opts.queries,
        cfg.retrieval.gqa_group as usize,
    );
    spec.seed = opts.seed;
    let kv = SyntheticKv::generate(&spec);
    let train = TrainOptions {
        max_iters: 10,
        seed: opts.seed,
        ..TrainOptions::default()
    };
    let codebook = PqCodebook::train(
        kv.keys.view(),
        cfg.pq.m as usize,
        cfg.pq.code_bits,
        &train,
        None,
    )?;
    let codes = codebook.encode(kv.keys.view())?;
    let beats = pack(&acc.derived().layout, codes.view())?;
    let quant = codebook.quantize(cfg.quant.centroid_bits)?;
    let golden = GoldenEngine::new(acc, quant.clone())?;
    let queries: Vec<Vec<i32>> = kv
        .kv_queries()
        .outer_iter()
        .map(|q| golden.quantize_query(&q.to_vec()).map(|qq| qq.values))
        .collect::<std::result::Result<_, _>>()?;

    let t0 = Instant::now();
    let design = Design::render(acc)?;
    let built = build_model(&design, "pq_topk_engine", cache)?;
    let build_seconds = t0.elapsed().as_secs_f64();
    let mut engine = EngineSim::new(&built, acc, opts.seed, opts.stalls)?;
    engine.load_codebook(&quant)?;
    let jobs: Vec<Job> = queries
        .iter()
        .map(|q| Job {
            query: q,
            beats: &beats,
            n_tokens: n,
            k,
            head: 0,
        })
        .collect();
    // The first query alone for the latency, then all back to back for the interval.
    let alone = engine.run(&jobs[..1])?;
    let c0 = engine.cycle();
    let t1 = Instant::now();
    let outcomes = engine.run(&jobs)?;
    let wall = t1.elapsed().as_secs_f64();
    let cycles = engine.cycle() - c0;
    let runs = jobs[..1]
        .iter()
        .zip(&alone)
        .chain(jobs.iter().zip(&outcomes));
    for (i, (job, o)) in runs.enumerate() {
        let want = golden.run(job.query, job.beats, n, k)?;
        if o.result != want {
            return Err(SimError::Mismatch(format!("query {i}")));
        }
    }
    let latency = alone[0].done_cycle - alone[0].start_cycle;
    let interval = if outcomes.len() > 1 {
        median(
            outcomes
                .windows(2)
                .map(|w| w[1].done_cycle - w[0].done_cycle)
                .collect(),
        )
    } else {
        latency
    };
    let scan_cycles = median(outcomes.iter().map(|o| o.scan_cycles).collect());
    let lanes = f64::from(cfg.scanner.lanes);
    let efficiency = |cycles: u64| {
        if cycles == 0 {
            0.0
        } else {
            n as f64 / (lanes * cycles as f64)
        }
    };
    let m = &acc.derived().cycles;
    Ok(SimReport {
        name: cfg.name.clone(),
        tokens: n as u32,
        k: k as u32,
        queries: outcomes.len(),
        latency,
        interval,
        scan_cycles,
        scan_efficiency: efficiency(scan_cycles),
        engine_efficiency: efficiency(interval),
        model: (
            m.lut_build + m.query_latency(n as u64, k as u64),
            m.query_interval(n as u64, k as u64),
            m.scan_efficiency(n as u64),
            m.engine_efficiency(n as u64, k as u64),
        ),
        cycles,
        cycles_per_second: cycles as f64 / wall.max(1e-9),
        build_seconds,
    })
}
