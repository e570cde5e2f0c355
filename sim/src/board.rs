//! Drives `kvpq_board_top` through its byte protocol, as a host behind the board's UART
//! would: command bytes and payloads in, 32-bit-free result records out, with seeded random
//! gaps on both byte streams.
//!
//! The protocol (one command byte, then a fixed payload, least significant byte first):
//! `0x01` one centroid, `0x02` one query, `0x03` `{k, n_tokens}`, `0x04` one code beat. Each
//! result comes back as `{last, shift, score, index}` in whole bytes.

use crate::build::BuiltModel;
use crate::driver::Job;
use crate::error::{Result, SimError};
use crate::harness::{Harness, PortId, Sink, Source, Stalls};
use kvpq_core::golden::{Hit, QuantCodebook, QueryResult};
use kvpq_core::interface::bits::{beat_words, pack_fields};
pub use kvpq_core::interface::board::{cmd, BoardFormat};
use kvpq_core::interface::{board_ports, Streams};
use kvpq_core::spec::Accelerator;

struct Ports {
    rst: PortId,
    rx: Source,
    tx: Sink,
    tx_data: PortId,
    busy: PortId,
}

/// The board top's model with a byte-stream host.
pub struct BoardSim {
    h: Harness,
    acc: Accelerator,
    format: BoardFormat,
    p: Ports,
    received: Vec<u8>,
}

impl BoardSim {
    /// Loads a model of `kvpq_board_top` built for `acc` and resets it.
    pub fn new(built: &BuiltModel, acc: &Accelerator, seed: u64, stalls: Stalls) -> Result<Self> {
        let h = Harness::new(built, &board_ports(), seed, stalls)?;
        let p = Ports {
            rst: h.port("rst")?,
            rx: h.source("rx")?,
            tx: h.sink("tx")?,
            tx_data: h.port("tx_data")?,
            busy: h.port("led_busy")?,
        };
        let mut sim = Self {
            h,
            acc: acc.clone(),
            format: BoardFormat::of(&Streams::of(acc)),
            p,
            received: Vec::new(),
        };
        sim.reset();
        Ok(sim)
    }

    /// Cycles simulated so far.
    pub fn cycle(&self) -> u64 {
        self.h.cycle()
    }

    /// Holds reset for two cycles.
    pub fn reset(&mut self) {
        self.h.set(self.p.rx.valid, 0);
        self.h.set(self.p.tx.ready, 0);
        let (tx, tx_data) = (self.p.tx, self.p.tx_data);
        let received = &mut self.received;
        self.h
            .pulse(self.p.rst, 1, 2, |h| host_step(h, &tx, tx_data, received));
        self.received.clear();
    }

    /// Sends bytes one at a time, each held until the board takes it.
    fn send(&mut self, bytes: &[u8], deadline: u64) -> Result<()> {
        let (tx, tx_data) = (self.p.tx, self.p.tx_data);
        for &b in bytes {
            let received = &mut self.received;
            self.h.send(&self.p.rx, &[u32::from(b)], deadline, |h| {
                host_step(h, &tx, tx_data, received)
            })?;
        }
        self.h.set(self.p.rx.valid, 0);
        Ok(())
    }

    fn step(&mut self) {
        host_step(&mut self.h, &self.p.tx, self.p.tx_data, &mut self.received);
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
        let deadline = self.h.deadline((bytes.len() + m * k * (sub + 2)) as u64);
        self.send(&bytes, deadline)
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
        let deadline = self
            .h
            .deadline((bytes.len() + job.k * f.record_bytes()) as u64 + work);
        self.received.clear();
        self.send(&bytes, deadline)?;

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
                        cycle: self.h.cycle(),
                        what: format!("last = {last} on result {} of {expected}", hits.len()),
                    });
                }
            }
            let idle = self.h.get(self.p.busy) == 0;
            if hits.len() >= expected && idle {
                break;
            }
            self.h
                .check(deadline, || format!("result {} of {expected}", hits.len()))?;
            self.step();
        }
        if self.received.len() != expected * rb {
            return Err(SimError::Protocol {
                cycle: self.h.cycle(),
                what: format!(
                    "{} bytes received for {expected} results of {rb} bytes",
                    self.received.len()
                ),
            });
        }
        Ok(QueryResult { hits, shift })
    }
}

/// One clock with the host on the result side: it takes a result byte when it is ready for
/// one (a free function so that byte sends can clock with it while borrowing the harness).
fn host_step(h: &mut Harness, tx: &Sink, tx_data: PortId, received: &mut Vec<u8>) {
    let ready = h.accept(tx);
    h.eval();
    if h.fires(ready, tx.valid) {
        received.push(h.get(tx_data) as u8);
    }
    h.tick();
}

/// A frame of a command this host knows the payload of.
fn frame(format: &BoardFormat, cmd: u8, words: &[u32]) -> Vec<u8> {
    format
        .frame(cmd, words)
        .expect("the host sends only the protocol's commands")
}
