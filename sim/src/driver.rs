//! Drives the `pq_topk_engine` model like its environment would: codebook, query, code beat
//! and result streams with seeded random valid/ready stalls, and the start/done control.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::build::BuiltModel;
use crate::error::{Result, SimError};
use crate::model::Model;
use kvpq_core::golden::{Hit, QuantCodebook, QueryResult};
use kvpq_core::interface::bits::{beat_words, pack_fields, sign_extend};
use kvpq_core::spec::Accelerator;

/// How often the environment stalls: the probability that it offers data on an input stream
/// in a cycle, and that it accepts a result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stalls {
    /// Probability that an input stream is valid when the driver has data.
    pub input_valid: f64,
    /// Probability that the result stream is ready.
    pub output_ready: f64,
}

impl Stalls {
    /// No stalls at all.
    pub const NONE: Self = Self {
        input_valid: 1.0,
        output_ready: 1.0,
    };
}

/// One query for the engine: integer query, packed code beats, tokens and k.
#[derive(Debug, Clone, Copy)]
pub struct Job<'a> {
    /// Quantized query (head_dim values).
    pub query: &'a [i32],
    /// Packed code words (docs/design.md section 4), at least beats_for(n_tokens) beats.
    pub beats: &'a [u64],
    /// Tokens to scan.
    pub n_tokens: usize,
    /// Results wanted.
    pub k: usize,
}

/// What the engine returned for a job, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobOutcome {
    /// Hits in the order they left the engine, and the reported shift.
    pub result: QueryResult,
    /// `res_count` reported by the engine.
    pub count: u32,
    /// Cycle the engine accepted `start`.
    pub start_cycle: u64,
    /// Cycle `done` was seen.
    pub done_cycle: u64,
    /// Cycles from the first code beat accepted to the last group of the last beat issued.
    pub scan_cycles: u64,
}

struct Ports {
    rst: usize,
    cb_valid: usize,
    cb_ready: usize,
    cb_data: usize,
    q_valid: usize,
    q_ready: usize,
    q_data: usize,
    start: usize,
    n_tokens: usize,
    k: usize,
    busy: usize,
    done: usize,
    code_valid: usize,
    code_ready: usize,
    code_data: usize,
    res_valid: usize,
    res_ready: usize,
    res_index: usize,
    res_score: usize,
    res_last: usize,
    res_shift: usize,
    res_count: usize,
}

/// The engine model with its driver.
pub struct EngineSim {
    model: Model,
    acc: Accelerator,
    p: Ports,
    rng: ChaCha8Rng,
    stalls: Stalls,
    cycle: u64,
}

impl EngineSim {
    /// Loads a model of `pq_topk_engine` built for `acc` and resets it.
    pub fn new(built: &BuiltModel, acc: &Accelerator, seed: u64, stalls: Stalls) -> Result<Self> {
        let model = Model::load(built)?;
        let id = |n| model.port(n);
        let p = Ports {
            rst: id("rst")?,
            cb_valid: id("cb_valid")?,
            cb_ready: id("cb_ready")?,
            cb_data: id("cb_data")?,
            q_valid: id("q_valid")?,
            q_ready: id("q_ready")?,
            q_data: id("q_data")?,
            start: id("start")?,
            n_tokens: id("n_tokens")?,
            k: id("k")?,
            busy: id("busy")?,
            done: id("done")?,
            code_valid: id("code_valid")?,
            code_ready: id("code_ready")?,
            code_data: id("code_data")?,
            res_valid: id("res_valid")?,
            res_ready: id("res_ready")?,
            res_index: id("res_index")?,
            res_score: id("res_score")?,
            res_last: id("res_last")?,
            res_shift: id("res_shift")?,
            res_count: id("res_count")?,
        };
        let mut sim = Self {
            model,
            acc: acc.clone(),
            p,
            rng: ChaCha8Rng::seed_from_u64(seed),
            stalls,
            cycle: 0,
        };
        sim.reset();
        Ok(sim)
    }

    /// Cycles simulated so far.
    pub fn cycle(&self) -> u64 {
        self.cycle
    }

    /// Changes the stall pattern.
    pub fn set_stalls(&mut self, stalls: Stalls) {
        self.stalls = stalls;
    }

    /// Writes a VCD trace of everything from now on.
    pub fn trace(&mut self, path: &std::path::Path) -> Result<()> {
        self.model.trace(path)
    }

    fn idle_inputs(&mut self) {
        for port in [
            self.p.cb_valid,
            self.p.q_valid,
            self.p.start,
            self.p.code_valid,
            self.p.res_ready,
        ] {
            self.model.set_u64(port, 0);
        }
    }

    fn step(&mut self) {
        self.model.tick();
        self.cycle += 1;
    }

    /// Holds reset for two cycles (codebooks survive; queries in flight are dropped).
    pub fn reset(&mut self) {
        self.idle_inputs();
        self.model.set_u64(self.p.rst, 1);
        self.model.eval();
        self.step();
        self.step();
        self.model.set_u64(self.p.rst, 0);
        self.model.eval();
    }

    fn chance(&mut self, p: f64) -> bool {
        p >= 1.0 || self.rng.random_bool(p.max(0.0))
    }

    /// Streams integer codebooks (M*K centroids, entries m*K + c in order).
    pub fn load_codebook(&mut self, codebook: &QuantCodebook) -> Result<()> {
        let (m, k, sub) = codebook.values.dim();
        let bits = self.acc.config().quant.centroid_bits;
        let width = sub as u32 * bits;
        // A centroid takes one cycle per element to write; stalls can stretch that.
        let limit = self.cycle + 64 * ((sub + 2) * m * k) as u64 + 1000;
        for mi in 0..m {
            for c in 0..k {
                let words = pack_fields(
                    (0..sub).map(|j| i64::from(codebook.values[[mi, c, j]])),
                    bits,
                    width,
                );
                self.model.set(self.p.cb_data, &words);
                loop {
                    let valid = self.chance(self.stalls.input_valid);
                    self.model.set_u64(self.p.cb_valid, u64::from(valid));
                    self.model.eval();
                    let fire = valid && self.model.get_u64(self.p.cb_ready) == 1;
                    self.step();
                    if fire {
                        break;
                    }
                    if self.cycle > limit {
                        return Err(SimError::Timeout {
                            cycles: self.cycle,
                            what: "cb_ready".into(),
                        });
                    }
                }
            }
        }
        self.model.set_u64(self.p.cb_valid, 0);
        Ok(())
    }

    /// Runs `jobs` back to back: queries are sent as soon as the engine takes them (so a
    /// LUT is built while the previous query scans), each job starts once the engine is idle.
    pub fn run(&mut self, jobs: &[Job]) -> Result<Vec<JobOutcome>> {
        let cfg = self.acc.config().clone();
        let d = *self.acc.derived();
        let head_dim = cfg.pq.head_dim;
        let qb = cfg.quant.query_bits;
        let layout = d.layout;
        let wpb = layout.words_per_beat();
        let tpb = layout.tokens_per_beat as usize;
        let lanes = cfg.scanner.lanes as u64;
        let mut budget = 10_000u64;
        for j in jobs {
            budget += 20
                * (d.cycles.lut_build
                    + d.cycles.query_latency(j.n_tokens as u64, j.k as u64)
                    + j.n_tokens as u64);
        }
        let budget = (budget as f64
            / self
                .stalls
                .input_valid
                .min(self.stalls.output_ready)
                .max(0.05)) as u64;
        let limit = self.cycle + budget;

        let mut sent = 0usize; // queries accepted
        let mut started = 0usize; // jobs started
        let mut outcomes = Vec::with_capacity(jobs.len());
        struct Active {
            start_cycle: u64,
            beats_sent: usize,
            first_beat: Option<u64>,
            last_beat: u64,
            hits: Vec<Hit>,
        }
        let mut active: Option<Active> = None;
        while outcomes.len() < jobs.len() {
            if self.cycle > limit {
                return Err(SimError::Timeout {
                    cycles: self.cycle,
                    what: format!(
                        "job {} of {} (queries sent {sent}, started {started})",
                        outcomes.len(),
                        jobs.len()
                    ),
                });
            }
            // Drive inputs.
            let q_valid = sent < jobs.len() && self.chance(self.stalls.input_valid);
            if q_valid {
                let words = pack_fields(
                    jobs[sent].query.iter().map(|&v| i64::from(v)),
                    qb,
                    head_dim * qb,
                );
                self.model.set(self.p.q_data, &words);
            }
            self.model.set_u64(self.p.q_valid, u64::from(q_valid));
            let busy = self.model.get_u64(self.p.busy) == 1;
            let start = active.is_none() && started < sent && !busy;
            if start {
                self.model
                    .set_u64(self.p.n_tokens, jobs[started].n_tokens as u64);
                self.model.set_u64(self.p.k, jobs[started].k as u64);
            }
            self.model.set_u64(self.p.start, u64::from(start));
            let mut code_valid = false;
            if let Some(a) = &active {
                let job = &jobs[started - 1];
                if a.beats_sent < layout.beats_for(job.n_tokens)
                    && self.chance(self.stalls.input_valid)
                {
                    code_valid = true;
                    let words = beat_words(job.beats, wpb, a.beats_sent, layout.beat_bits);
                    self.model.set(self.p.code_data, &words);
                }
            }
            self.model.set_u64(self.p.code_valid, u64::from(code_valid));
            let res_ready = self.chance(self.stalls.output_ready);
            self.model.set_u64(self.p.res_ready, u64::from(res_ready));
            // No engine output depends combinationally on an input (all come from registers),
            // so the outputs of the last clock edge are current without another eval.

            // Observe.
            let q_fire = q_valid && self.model.get_u64(self.p.q_ready) == 1;
            let code_fire = code_valid && self.model.get_u64(self.p.code_ready) == 1;
            let res_fire = res_ready && self.model.get_u64(self.p.res_valid) == 1;
            if res_fire {
                let a = active.as_mut().ok_or_else(|| SimError::Protocol {
                    cycle: self.cycle,
                    what: "result without a query".into(),
                })?;
                a.hits.push(Hit {
                    index: self.model.get_u64(self.p.res_index) as u32,
                    score: sign_extend(self.model.get_u64(self.p.res_score), d.widths.score_bits)
                        as i32,
                });
                let last = self.model.get_u64(self.p.res_last) == 1;
                let count = self.model.get_u64(self.p.res_count) as usize;
                if last != (a.hits.len() == count) {
                    return Err(SimError::Protocol {
                        cycle: self.cycle,
                        what: format!("res_last = {last} on result {} of {count}", a.hits.len()),
                    });
                }
            }
            if self.model.get_u64(self.p.done) == 1 {
                let a = active.take().ok_or_else(|| SimError::Protocol {
                    cycle: self.cycle,
                    what: "done without a query".into(),
                })?;
                let job = &jobs[started - 1];
                let tail = job
                    .n_tokens
                    .saturating_sub((layout.beats_for(job.n_tokens).max(1) - 1) * tpb)
                    as u64;
                outcomes.push(JobOutcome {
                    result: QueryResult {
                        hits: a.hits,
                        shift: self.model.get_u64(self.p.res_shift) as u32,
                    },
                    count: self.model.get_u64(self.p.res_count) as u32,
                    start_cycle: a.start_cycle,
                    done_cycle: self.cycle,
                    scan_cycles: a
                        .first_beat
                        .map_or(0, |f| a.last_beat - f + tail.div_ceil(lanes)),
                });
            }
            self.step();

            if q_fire {
                sent += 1;
            }
            if start {
                started += 1;
                active = Some(Active {
                    start_cycle: self.cycle - 1,
                    beats_sent: 0,
                    first_beat: None,
                    last_beat: 0,
                    hits: Vec::new(),
                });
            }
            if code_fire {
                let a = active
                    .as_mut()
                    .expect("beats flow only while a job is active");
                a.beats_sent += 1;
                a.first_beat.get_or_insert(self.cycle - 1);
                a.last_beat = self.cycle - 1;
            }
        }
        self.idle_inputs();
        Ok(outcomes)
    }
}
