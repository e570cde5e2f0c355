//! Drives `kvpq_board_top` through its byte protocol, as a host behind the board's UART
//! would: command bytes and payloads in, 32-bit-free result records out, with seeded random
//! gaps on both byte streams.
//!
//! The protocol (one command byte, then a fixed payload, least significant byte first):
//! `0x01` one centroid, `0x02` one query, `0x03` `{k, n_tokens}`, `0x04` one code beat. Each
//! result comes back as `{last, shift, score, index}` in whole bytes.
//!
//! Besides whole codebooks and queries, the model takes raw bytes ([`BoardSim::push`],
//! [`BoardSim::pump`]), so a bridge can stand it behind a byte stream (a pseudo-terminal in
//! place of the board's UART) and drive it from a real host.

use std::collections::VecDeque;

use crate::build::BuiltModel;
use crate::driver::Job;
use crate::error::{Result, SimError};
use crate::harness::{Harness, PortId, Sink, Source, Stalls};
use kvpq_core::golden::{Hit, QuantCodebook, QueryResult};
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
    /// Raw host bytes not yet taken by the board ([`BoardSim::push`]).
    pending: VecDeque<u8>,
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
            pending: VecDeque::new(),
        };
        sim.reset();
        Ok(sim)
    }

    /// Cycles simulated so far.
    pub fn cycle(&self) -> u64 {
        self.h.cycle()
    }

    /// Holds reset for two cycles; raw bytes not yet taken are dropped.
    pub fn reset(&mut self) {
        self.pending.clear();
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

    /// Queues raw host bytes; [`Self::pump`] hands them to the board's receive stream in order,
    /// each held until the board takes it.
    pub fn push(&mut self, bytes: &[u8]) {
        self.pending.extend(bytes);
    }

    /// Whether the board has nothing left to do without more host bytes: none queued, no
    /// command waiting for the engine, no query in flight, no result byte to send.
    pub fn idle(&self) -> bool {
        self.pending.is_empty()
            && self.h.get(self.p.rx.ready) == 1
            && self.h.get(self.p.busy) == 0
            && self.h.get(self.p.tx.valid) == 0
    }

    /// Clocks the model for up to `cycles` cycles, stopping early once it is [idle](Self::idle),
    /// with queued bytes on the receive stream (one per handshake, as the stalls allow); returns
    /// the bytes the board sent meanwhile.
    pub fn pump(&mut self, cycles: u64) -> Vec<u8> {
        for _ in 0..cycles {
            if self.idle() {
                break;
            }
            match self.pending.front() {
                Some(&byte) => {
                    self.h.set(self.p.rx.data, u64::from(byte));
                    let valid = self.h.offer(&self.p.rx, true);
                    self.h.eval();
                    let taken = self.h.fires(valid, self.p.rx.ready);
                    self.step();
                    if taken {
                        self.pending.pop_front();
                    }
                }
                None => {
                    self.h.set(self.p.rx.valid, 0);
                    self.step();
                }
            }
        }
        std::mem::take(&mut self.received)
    }

    /// Sends the integer codebooks (M*K centroids, entries m*K + c in order).
    pub fn load_codebook(&mut self, codebook: &QuantCodebook) -> Result<()> {
        let (m, k, sub) = codebook.values.dim();
        let bits = self.acc.config().quant.centroid_bits;
        let bytes = self.format.codebook_frames(codebook, bits);
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
        let bytes = f.query_frames(
            job.query,
            cfg.quant.query_bits,
            &d.layout,
            job.beats,
            job.n_tokens,
            job.k,
        )?;
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
