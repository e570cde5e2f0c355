//! Drives the `pq_topk_engine` model like its environment would: codebook, query, code beat
//! and result streams with seeded random valid/ready stalls, and the start/done control.

use std::collections::VecDeque;

use crate::build::BuiltModel;
use crate::error::{Result, SimError};
use crate::harness::{Harness, PortId, Sink, Source, Stalls};
use kvpq_core::golden::{Hit, QuantCodebook, QueryResult};
use kvpq_core::interface::bits::{beat_words, field, pack_fields, sign_extend};
use kvpq_core::interface::{engine_ports, Streams};
use kvpq_core::spec::Accelerator;

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
    /// Codebook (KV head) the query's LUT is built from: < `engine.heads`.
    pub head: u32,
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
    rst: PortId,
    cb: Source,
    cb_head: PortId,
    q: Source,
    q_head: PortId,
    start: PortId,
    n_tokens: PortId,
    k: PortId,
    ready: PortId,
    done: PortId,
    code: Source,
    res: Sink,
    res_n: PortId,
    res_index: PortId,
    res_score: PortId,
    res_last: PortId,
    res_shift: PortId,
    res_count: PortId,
}

/// The engine model with its driver.
pub struct EngineSim {
    h: Harness,
    acc: Accelerator,
    streams: Streams,
    p: Ports,
}

impl EngineSim {
    /// Loads a model of `pq_topk_engine` built for `acc` and resets it.
    pub fn new(built: &BuiltModel, acc: &Accelerator, seed: u64, stalls: Stalls) -> Result<Self> {
        let streams = Streams::of(acc);
        let h = Harness::new(built, &engine_ports(&streams), seed, stalls)?;
        let p = Ports {
            rst: h.port("rst")?,
            cb: h.source("cb")?,
            cb_head: h.port("cb_head")?,
            q: h.source("q")?,
            q_head: h.port("q_head")?,
            start: h.port("start")?,
            n_tokens: h.port("n_tokens")?,
            k: h.port("k")?,
            ready: h.port("ready")?,
            done: h.port("done")?,
            code: h.source("code")?,
            res: h.sink("res")?,
            res_n: h.port("res_n")?,
            res_index: h.port("res_index")?,
            res_score: h.port("res_score")?,
            res_last: h.port("res_last")?,
            res_shift: h.port("res_shift")?,
            res_count: h.port("res_count")?,
        };
        let mut sim = Self {
            h,
            acc: acc.clone(),
            streams,
            p,
        };
        sim.reset();
        Ok(sim)
    }

    /// Cycles simulated so far.
    pub fn cycle(&self) -> u64 {
        self.h.cycle()
    }

    /// Changes the stall pattern.
    pub fn set_stalls(&mut self, stalls: Stalls) {
        self.h.set_stalls(stalls);
    }

    /// Caps the cycles any one operation (a codebook load, a batch of jobs) may simulate;
    /// past it the operation fails with [`crate::SimError::Timeout`].
    pub fn set_cycle_limit(&mut self, limit: Option<u64>) {
        self.h.set_cycle_limit(limit);
    }

    /// Writes a VCD trace of everything from now on.
    pub fn trace(&mut self, path: &std::path::Path) -> Result<()> {
        self.h.trace(path)
    }

    fn idle_inputs(&mut self) {
        for port in [
            self.p.cb.valid,
            self.p.q.valid,
            self.p.start,
            self.p.code.valid,
            self.p.res.ready,
        ] {
            self.h.set(port, 0);
        }
    }

    /// Holds reset for two cycles (codebooks survive; queries in flight are dropped).
    pub fn reset(&mut self) {
        self.idle_inputs();
        self.h.pulse(self.p.rst, 1, 2, Harness::tick);
    }

    /// Streams an integer codebook (M*K centroids, entries m*K + c in order) as head 0's.
    pub fn load_codebook(&mut self, codebook: &QuantCodebook) -> Result<()> {
        self.load_head_codebook(0, codebook)
    }

    /// Streams an integer codebook as head `head`'s (one of `engine.heads` held on chip).
    pub fn load_head_codebook(&mut self, head: u32, codebook: &QuantCodebook) -> Result<()> {
        self.check_head(head)?;
        self.h.set(self.p.cb_head, u64::from(head));
        let (m, k, sub) = codebook.values.dim();
        let bits = self.acc.config().quant.centroid_bits;
        let width = self.streams.cb_data;
        // A centroid takes one cycle per element to write; stalls can stretch that.
        let deadline = self.h.deadline(4 * ((sub + 2) * m * k) as u64);
        for mi in 0..m {
            for c in 0..k {
                let words = pack_fields(
                    (0..sub).map(|j| i64::from(codebook.values[[mi, c, j]])),
                    bits,
                    width,
                );
                self.h.send(&self.p.cb, &words, deadline, Harness::tick)?;
            }
        }
        self.h.set(self.p.cb.valid, 0);
        Ok(())
    }

    fn check_head(&self, head: u32) -> Result<()> {
        let heads = self.acc.config().engine.heads();
        if head >= heads {
            return Err(SimError::Request(format!(
                "head {head}: the engine holds {heads} codebook(s) (engine.heads)"
            )));
        }
        Ok(())
    }

    /// Runs `jobs` back to back: queries are sent as soon as the engine takes them (so a
    /// LUT is built while the previous query scans), and each job starts as soon as the
    /// engine is ready, while the previous one's top-k may still run. Jobs finish in order.
    pub fn run(&mut self, jobs: &[Job]) -> Result<Vec<JobOutcome>> {
        let cfg = self.acc.config().clone();
        let d = *self.acc.derived();
        let qb = cfg.quant.query_bits;
        let q_width = self.streams.q_data;
        let layout = d.layout;
        let wpb = layout.words_per_beat();
        let tpb = layout.tokens_per_beat as usize;
        let lanes = cfg.scanner.lanes as u64;
        let work = jobs
            .iter()
            .map(|j| {
                d.cycles.lut_build
                    + d.cycles.query_latency(j.n_tokens as u64, j.k as u64)
                    + j.n_tokens as u64
            })
            .sum();
        let deadline = self.h.deadline(work);
        for job in jobs {
            self.check_head(job.head)?;
        }

        let mut sent = 0usize; // queries accepted
        let mut started = 0usize; // jobs started
        let mut outcomes = Vec::with_capacity(jobs.len());
        struct Active {
            job: usize,
            start_cycle: u64,
            beats_sent: usize,
            first_beat: Option<u64>,
            last_beat: u64,
            hits: Vec<Hit>,
        }
        // Jobs started and not done, oldest first: the newest takes the code beats, the oldest
        // takes the results.
        let mut active: VecDeque<Active> = VecDeque::new();
        while outcomes.len() < jobs.len() {
            self.h.check(deadline, || {
                format!(
                    "job {} of {} (queries sent {sent}, started {started})",
                    outcomes.len(),
                    jobs.len()
                )
            })?;
            // Drive inputs.
            let q_valid = self.h.offer(&self.p.q, sent < jobs.len());
            if q_valid {
                let words =
                    pack_fields(jobs[sent].query.iter().map(|&v| i64::from(v)), qb, q_width);
                self.h.set_words(self.p.q.data, &words);
                self.h.set(self.p.q_head, u64::from(jobs[sent].head));
            }
            let ready = self.h.get(self.p.ready) == 1;
            // `ready` means the last scan has ended, so its beats must all be in: the newest
            // job owns the code stream until then.
            if let Some(a) = active.back().filter(|_| ready) {
                let beats = layout.beats_for(jobs[a.job].n_tokens);
                if a.beats_sent < beats {
                    return Err(SimError::Protocol {
                        cycle: self.h.cycle(),
                        what: format!(
                            "ready with job {} at beat {} of {beats}",
                            a.job, a.beats_sent
                        ),
                    });
                }
            }
            let start = started < sent && ready;
            if start {
                self.h.set(self.p.n_tokens, jobs[started].n_tokens as u64);
                self.h.set(self.p.k, jobs[started].k as u64);
            }
            self.h.set(self.p.start, u64::from(start));
            let mut code_valid = false;
            if let Some(a) = active.back() {
                let job = &jobs[a.job];
                code_valid = self
                    .h
                    .offer(&self.p.code, a.beats_sent < layout.beats_for(job.n_tokens));
                if code_valid {
                    let words = beat_words(job.beats, wpb, a.beats_sent, layout.beat_bits);
                    self.h.set_words(self.p.code.data, &words);
                }
            } else {
                self.h.set(self.p.code.valid, 0);
            }
            let res_ready = self.h.accept(&self.p.res);
            // No engine output depends combinationally on an input (all come from registers),
            // so the outputs of the last clock edge are current without another eval.

            // Observe.
            let q_fire = self.h.fires(q_valid, self.p.q.ready);
            let code_fire = self.h.fires(code_valid, self.p.code.ready);
            let res_fire = self.h.fires(res_ready, self.p.res.valid);
            if res_fire {
                let a = active.front_mut().ok_or_else(|| SimError::Protocol {
                    cycle: self.h.cycle(),
                    what: "result without a query".into(),
                })?;
                // A beat carries res_n results in its lowest slots, in ascending token index.
                let (ix, sc) = (
                    self.h.get_words(self.p.res_index),
                    self.h.get_words(self.p.res_score),
                );
                for slot in 0..self.h.get(self.p.res_n) as usize {
                    a.hits.push(Hit {
                        index: field(&ix, slot, d.widths.index_bits) as u32,
                        score: sign_extend(
                            field(&sc, slot, d.widths.score_bits),
                            d.widths.score_bits,
                        ) as i32,
                    });
                }
                let last = self.h.get(self.p.res_last) == 1;
                let count = self.h.get(self.p.res_count) as usize;
                if last != (a.hits.len() == count) {
                    return Err(SimError::Protocol {
                        cycle: self.h.cycle(),
                        what: format!("res_last = {last} on result {} of {count}", a.hits.len()),
                    });
                }
            }
            if self.h.get(self.p.done) == 1 {
                let a = active.pop_front().ok_or_else(|| SimError::Protocol {
                    cycle: self.h.cycle(),
                    what: "done without a query".into(),
                })?;
                let job = &jobs[a.job];
                let tail = job
                    .n_tokens
                    .saturating_sub((layout.beats_for(job.n_tokens).max(1) - 1) * tpb)
                    as u64;
                outcomes.push(JobOutcome {
                    result: QueryResult {
                        hits: a.hits,
                        shift: self.h.get(self.p.res_shift) as u32,
                    },
                    count: self.h.get(self.p.res_count) as u32,
                    start_cycle: a.start_cycle,
                    done_cycle: self.h.cycle(),
                    scan_cycles: a
                        .first_beat
                        .map_or(0, |f| a.last_beat - f + tail.div_ceil(lanes)),
                });
            }
            self.h.tick();

            if q_fire {
                sent += 1;
            }
            if start {
                active.push_back(Active {
                    job: started,
                    start_cycle: self.h.cycle() - 1,
                    beats_sent: 0,
                    first_beat: None,
                    last_beat: 0,
                    hits: Vec::new(),
                });
                started += 1;
            }
            if code_fire {
                let a = active
                    .back_mut()
                    .expect("beats flow only while a job is active");
                a.beats_sent += 1;
                a.first_beat.get_or_insert(self.h.cycle() - 1);
                a.last_beat = self.h.cycle() - 1;
            }
        }
        self.idle_inputs();
        Ok(outcomes)
    }
}
