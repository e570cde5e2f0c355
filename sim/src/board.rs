//! Drives `kvpq_board_top` through its byte protocol, as a host behind the board's UART
//! would: command bytes and payloads in, 32-bit-free result records out, with seeded random
//! gaps on both byte streams.
//!
//! The protocol (one command byte, then a fixed payload, least significant byte first):
//! `0x01` one centroid, `0x02` one query, `0x03` `{k, n_tokens}`, `0x04` one code beat. Each
//! result comes back as `{last, shift, score, index}` in whole bytes.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::build::BuiltModel;
use crate::driver::{Job, Stalls};
use crate::error::{Result, SimError};
use crate::model::Model;
use kvpq_core::golden::{Hit, QuantCodebook, QueryResult};
use kvpq_core::interface::bits::{beat_words, pack_fields};
pub use kvpq_core::interface::board::{cmd, BoardFormat};
use kvpq_core::interface::Streams;
use kvpq_core::spec::Accelerator;

struct Ports {
    rst: usize,
    rx_valid: usize,
    rx_ready: usize,
    rx_data: usize,
    tx_valid: usize,
    tx_ready: usize,
    tx_data: usize,
    busy: usize,
}

/// The board top's model with a byte-stream host.
pub struct BoardSim {
    model: Model,
    acc: Accelerator,
    format: BoardFormat,
    p: Ports,
    rng: ChaCha8Rng,
    stalls: Stalls,
    cycle: u64,
    received: Vec<u8>,
}

impl BoardSim {
    /// Loads a model of `kvpq_board_top` built for `acc` and resets it.
    pub fn new(built: &BuiltModel, acc: &Accelerator, seed: u64, stalls: Stalls) -> Result<Self> {
        let model = Model::load(built)?;
        let id = |n| model.port(n);
        let p = Ports {
            rst: id("rst")?,
            rx_valid: id("rx_valid")?,
            rx_ready: id("rx_ready")?,
            rx_data: id("rx_data")?,
            tx_valid: id("tx_valid")?,
            tx_ready: id("tx_ready")?,
            tx_data: id("tx_data")?,
            busy: id("led_busy")?,
        };
        let mut sim = Self {
            model,
            acc: acc.clone(),
            format: BoardFormat::of(&Streams::of(acc)),
            p,
            rng: ChaCha8Rng::seed_from_u64(seed),
            stalls,
            cycle: 0,
            received: Vec::new(),
        };
        sim.reset();
        Ok(sim)
    }

    /// Cycles simulated so far.
    pub fn cycle(&self) -> u64 {
        self.cycle
    }

    /// Holds reset for two cycles.
    pub fn reset(&mut self) {
        self.model.set_u64(self.p.rx_valid, 0);
        self.model.set_u64(self.p.tx_ready, 0);
        self.model.set_u64(self.p.rst, 1);
        self.model.eval();
        self.step();
        self.step();
        self.model.set_u64(self.p.rst, 0);
        self.model.eval();
        self.received.clear();
    }

    fn chance(&mut self, p: f64) -> bool {
        p >= 1.0 || self.rng.random_bool(p.max(0.0))
    }

    /// One clock: the host takes a result byte when it is ready for one.
    fn step(&mut self) {
        let ready = self.chance(self.stalls.output_ready);
        self.model.set_u64(self.p.tx_ready, u64::from(ready));
        self.model.eval();
        if ready && self.model.get_u64(self.p.tx_valid) == 1 {
            self.received.push(self.model.get_u64(self.p.tx_data) as u8);
        }
        self.model.tick();
        self.cycle += 1;
    }

    /// Sends bytes one at a time, each held until the board takes it.
    fn send(&mut self, bytes: &[u8], limit: u64) -> Result<()> {
        for &b in bytes {
            loop {
                let valid = self.chance(self.stalls.input_valid);
                self.model.set_u64(self.p.rx_valid, u64::from(valid));
                self.model.set_u64(self.p.rx_data, u64::from(b));
                self.model.eval();
                let fire = valid && self.model.get_u64(self.p.rx_ready) == 1;
                self.step();
                if fire {
                    break;
                }
                if self.cycle > limit {
                    return Err(SimError::Timeout {
                        cycles: self.cycle,
                        what: "rx_ready".into(),
                    });
                }
            }
        }
        self.model.set_u64(self.p.rx_valid, 0);
        Ok(())
    }

    /// A generous cycle budget for moving `bytes` bytes plus `work` cycles of engine work.
    fn budget(&self, bytes: usize, work: u64) -> u64 {
        let rate = self
            .stalls
            .input_valid
            .min(self.stalls.output_ready)
            .max(0.05);
        self.cycle + ((20 * bytes as u64 + 20 * work + 10_000) as f64 / rate) as u64
    }

    /// Sends the integer codebooks (M*K centroids, entries m*K + c in order).
    pub fn load_codebook(&mut self, codebook: &QuantCodebook) -> Result<()> {
        let (m, k, sub) = codebook.values.dim();
        let bits = self.acc.config().quant.centroid_bits;
        let width = self.format.centroid_bits;
        let mut bytes = Vec::new();
        for mi in 0..m {
            for c in 0..k {
                let words = pack_fields(
                    (0..sub).map(|j| i64::from(codebook.values[[mi, c, j]])),
                    bits,
                    width,
                );
                bytes.extend(frame(&self.format, cmd::CENTROID, &words));
            }
        }
        let limit = self.budget(bytes.len(), (m * k * (sub + 2)) as u64);
        self.send(&bytes, limit)
    }

    /// Runs one query: query, start and code beats go out, result records come back until
    /// the one marked last (none when min(k, n_tokens) is 0) and the board is idle again.
    /// The shift of a query without results is reported as 0.
    pub fn query(&mut self, job: &Job) -> Result<QueryResult> {
        let cfg = self.acc.config().clone();
        let d = *self.acc.derived();
        let f = self.format;
        let qb = cfg.quant.query_bits;
        let mut bytes = frame(
            &f,
            cmd::QUERY,
            &pack_fields(job.query.iter().map(|&v| i64::from(v)), qb, f.query_bits),
        );
        bytes.extend(frame(
            &f,
            cmd::START,
            &f.start_words(job.n_tokens as u64, job.k as u64),
        ));
        let layout = d.layout;
        for b in 0..layout.beats_for(job.n_tokens) {
            let words = beat_words(job.beats, layout.words_per_beat(), b, layout.beat_bits);
            bytes.extend(frame(&f, cmd::BEAT, &words));
        }
        let work = d.cycles.lut_build + d.cycles.query_latency(job.n_tokens as u64, job.k as u64);
        let limit = self.budget(bytes.len() + job.k * f.record_bytes(), work);
        self.received.clear();
        self.send(&bytes, limit)?;

        let k_max = cfg.topk.k_max as usize;
        let expected = job.k.min(job.n_tokens).min(k_max);
        let rb = f.record_bytes();
        let mut hits = Vec::with_capacity(expected);
        let mut shift = 0;
        loop {
            while hits.len() < self.received.len() / rb {
                let at = hits.len() * rb;
                let r = f.decode(&self.received[at..at + rb]);
                let last = r.last;
                hits.push(Hit {
                    index: r.index,
                    score: r.score,
                });
                shift = r.shift;
                if last != (hits.len() == expected) {
                    return Err(SimError::Protocol {
                        cycle: self.cycle,
                        what: format!("last = {last} on result {} of {expected}", hits.len()),
                    });
                }
            }
            let idle = self.model.get_u64(self.p.busy) == 0;
            if hits.len() >= expected && idle {
                break;
            }
            if self.cycle > limit {
                return Err(SimError::Timeout {
                    cycles: self.cycle,
                    what: format!("result {} of {expected}", hits.len()),
                });
            }
            self.step();
        }
        if self.received.len() != expected * rb {
            return Err(SimError::Protocol {
                cycle: self.cycle,
                what: format!(
                    "{} bytes received for {expected} results of {rb} bytes",
                    self.received.len()
                ),
            });
        }
        Ok(QueryResult { hits, shift })
    }
}

/// A frame of a command this host knows the payload of.
fn frame(format: &BoardFormat, cmd: u8, words: &[u32]) -> Vec<u8> {
    format
        .frame(cmd, words)
        .expect("the host sends only the protocol's commands")
}
