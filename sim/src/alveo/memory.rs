//! Device memory behind the kernel's AXI4 masters: buffers at fixed addresses, answered with
//! random latency and stalls, and the AXI4 rules the kernel must keep, checked on every
//! transfer: bursts of at most 256 beats that do not cross 4 KiB, aligned addresses inside an
//! allocated buffer, stable payloads while valid waits for ready, WLAST on the last beat, and
//! the constant attributes (ID 0, SIZE of the data width, INCR, LOCK 0, CACHE 0b0011, PROT 0,
//! QOS 0). Only the bytes whose write strobe is set are stored. Responses are OKAY with ID 0 unless a fault is
//! armed ([`FaultSel`]): then a matching burst is answered with its code on every read beat
//! (the data still comes) or on its write response (the data is dropped).

use std::collections::VecDeque;

use rand::Rng;

use crate::error::{Result, SimError};
use crate::harness::{Harness, PortId};
use kvpq_core::interface::alveo::{axi, AxiMaster};

struct Buffer {
    base: u64,
    bytes: Vec<u8>,
}

/// Device memory: buffers at fixed addresses, with a free page between neighbours.
#[derive(Default)]
pub(super) struct DeviceMemory {
    buffers: Vec<Buffer>,
    next: u64,
}

impl DeviceMemory {
    /// Places `bytes` at `offset` into a fresh page; returns the address.
    fn alloc(&mut self, bytes: Vec<u8>, offset: u64) -> u64 {
        if self.next == 0 {
            self.next = 0x1000_0000;
        }
        let base = self.next + offset;
        let end = base + bytes.len() as u64;
        self.next = end.div_ceil(4096) * 4096 + 4096;
        self.buffers.push(Buffer { base, bytes });
        base
    }

    /// Places `bytes` at a random `align`-aligned offset inside a fresh page, so that bursts
    /// meet 4 KiB boundaries at every phase; returns the address.
    pub(super) fn place(&mut self, h: &mut Harness, bytes: Vec<u8>, align: u64) -> u64 {
        let slots = 4096 / align;
        let offset = h.rng().random_range(0..slots) * align;
        self.alloc(bytes, offset)
    }

    /// The `len` bytes at `addr`, if they lie inside one buffer.
    pub(super) fn find(&mut self, addr: u64, len: u64) -> Option<&mut [u8]> {
        self.buffers.iter_mut().find_map(|b| {
            let end = b.base + b.bytes.len() as u64;
            (addr >= b.base && addr + len <= end).then(|| {
                let at = (addr - b.base) as usize;
                &mut b.bytes[at..at + len as usize]
            })
        })
    }
}

struct Burst {
    addr: u64,
    beats: u64,
    done: u64,
    ready_at: u64,
    /// RRESP of every beat, or the BRESP of the burst.
    resp: u8,
}

/// Which bursts of one master an armed fault answers with an error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FaultSel {
    /// The `n`-th burst (from 0) the master accepts after arming.
    Burst(u64),
    /// The `n`-th write burst (from 0) the master accepts after arming.
    WriteBurst(u64),
    /// Every burst that touches a byte of `start..end`.
    Addr(u64, u64),
}

/// The AR or AW attributes that must be constant: (signal, expected value).
fn attributes(bytes: u64) -> [(&'static str, u64); 7] {
    [
        ("id", axi::ID),
        ("size", u64::from(bytes.trailing_zeros())),
        ("burst", axi::BURST_INCR),
        ("lock", axi::LOCK),
        ("cache", axi::CACHE),
        ("prot", axi::PROT),
        ("qos", axi::QOS),
    ]
}

/// The ports of one AXI4 master, `<master>_<signal>`.
struct AxiPorts {
    awvalid: PortId,
    awready: PortId,
    awaddr: PortId,
    awlen: PortId,
    /// AW attributes, in [`attributes`] order.
    aw_attrs: Vec<PortId>,
    wvalid: PortId,
    wready: PortId,
    wdata: PortId,
    wstrb: PortId,
    wlast: PortId,
    bvalid: PortId,
    bready: PortId,
    bid: PortId,
    bresp: PortId,
    arvalid: PortId,
    arready: PortId,
    araddr: PortId,
    arlen: PortId,
    /// AR attributes, in [`attributes`] order.
    ar_attrs: Vec<PortId>,
    rvalid: PortId,
    rready: PortId,
    rdata: PortId,
    rlast: PortId,
    rid: PortId,
    rresp: PortId,
}

/// One AXI4 master of the kernel and the memory side's state for it.
pub(super) struct Master {
    name: String,
    /// Bytes of one beat.
    pub(super) bytes: u64,
    p: AxiPorts,
    reads: VecDeque<Burst>,
    writes: VecDeque<Burst>,
    /// Write responses: (cycle from which it may be offered, BRESP).
    responses: VecDeque<(u64, u8)>,
    /// Armed faults and the code each answers with.
    faults: Vec<(FaultSel, u8)>,
    /// Bursts accepted since the faults were armed.
    bursts: u64,
    /// Write bursts accepted since the faults were armed.
    write_bursts: u64,
    held_ar: Option<(u64, u64)>,
    held_aw: Option<(u64, u64)>,
    held_w: Option<Vec<u32>>,
    r_offered: bool,
    w_ready: bool,
    b_offered: bool,
}

impl Master {
    /// The memory side of `master`, its ports resolved in `h`.
    pub(super) fn new(h: &Harness, master: &AxiMaster) -> Result<Self> {
        let port = |sig: &str| h.port(&format!("{}_{sig}", master.name));
        let bytes = u64::from(master.data_bits / 8);
        let attrs = |dir: &str| {
            attributes(bytes)
                .iter()
                .map(|(sig, _)| port(&format!("{dir}{sig}")))
                .collect::<Result<Vec<_>>>()
        };
        Ok(Self {
            name: master.name.clone(),
            bytes,
            p: AxiPorts {
                awvalid: port("awvalid")?,
                awready: port("awready")?,
                awaddr: port("awaddr")?,
                awlen: port("awlen")?,
                aw_attrs: attrs("aw")?,
                wvalid: port("wvalid")?,
                wready: port("wready")?,
                wdata: port("wdata")?,
                wstrb: port("wstrb")?,
                wlast: port("wlast")?,
                bvalid: port("bvalid")?,
                bready: port("bready")?,
                bid: port("bid")?,
                bresp: port("bresp")?,
                arvalid: port("arvalid")?,
                arready: port("arready")?,
                araddr: port("araddr")?,
                arlen: port("arlen")?,
                ar_attrs: attrs("ar")?,
                rvalid: port("rvalid")?,
                rready: port("rready")?,
                rdata: port("rdata")?,
                rlast: port("rlast")?,
                rid: port("rid")?,
                rresp: port("rresp")?,
            },
            reads: VecDeque::new(),
            writes: VecDeque::new(),
            responses: VecDeque::new(),
            faults: Vec::new(),
            bursts: 0,
            write_bursts: 0,
            held_ar: None,
            held_aw: None,
            held_w: None,
            r_offered: false,
            w_ready: false,
            b_offered: false,
        })
    }

    /// Answers the bursts `faults` selects with their codes from now on, counting bursts
    /// from 0 again; an empty list answers everything OKAY.
    pub(super) fn arm(&mut self, faults: Vec<(FaultSel, u8)>) {
        self.faults = faults;
        self.bursts = 0;
        self.write_bursts = 0;
    }

    /// The response code of the burst of `beats` at `addr`, the next one accepted.
    fn response(&mut self, addr: u64, beats: u64, write: bool) -> u8 {
        let n = self.bursts;
        self.bursts += 1;
        let nw = self.write_bursts;
        self.write_bursts += u64::from(write);
        let end = addr + beats * self.bytes;
        self.faults
            .iter()
            .find(|(sel, _)| match *sel {
                FaultSel::Burst(i) => i == n,
                FaultSel::WriteBurst(i) => write && i == nw,
                FaultSel::Addr(lo, hi) => addr < hi && lo < end,
            })
            .map_or(axi::OKAY, |&(_, resp)| resp)
    }

    /// Checks the constant attributes of a valid AR (`dir` "ar") or AW ("aw").
    fn check_attributes(&self, h: &Harness, dir: &str) -> Result<()> {
        let ports = if dir == "ar" {
            &self.p.ar_attrs
        } else {
            &self.p.aw_attrs
        };
        for ((sig, want), &port) in attributes(self.bytes).iter().zip(ports) {
            let got = h.get(port);
            if got != *want {
                return Err(self.protocol(h, format!("{dir}{sig} = {got:#x}, expected {want:#x}")));
            }
        }
        Ok(())
    }

    fn protocol(&self, h: &Harness, what: String) -> SimError {
        SimError::Protocol {
            cycle: h.cycle(),
            what: format!("{}: {what}", self.name),
        }
    }

    /// Drives the memory side for this cycle: address and data readiness as the stalls
    /// allow, read data of the oldest burst once its latency has passed, write responses.
    pub(super) fn drive(&mut self, h: &mut Harness, mem: &mut DeviceMemory) {
        let stalls = h.stalls();
        let ar_ready = h.chance(stalls.output_ready);
        let aw_ready = h.chance(stalls.output_ready);
        let w_ready = h.chance(stalls.output_ready);
        let r_try = h.chance(stalls.input_valid);
        let b_try = h.chance(stalls.input_valid);
        let cycle = h.cycle();
        h.set(self.p.arready, u64::from(ar_ready));
        h.set(self.p.awready, u64::from(aw_ready));
        // Data is taken only for a burst whose address was accepted.
        self.w_ready = w_ready && !self.writes.is_empty();
        h.set(self.p.wready, u64::from(self.w_ready));
        self.r_offered = false;
        if let Some(b) = self.reads.front() {
            if r_try && b.ready_at <= cycle {
                let (addr, last) = (b.addr + b.done * self.bytes, b.done + 1 == b.beats);
                let data = mem
                    .find(addr, self.bytes)
                    .expect("bursts are checked when accepted")
                    .chunks(4)
                    .map(|c| u32::from_le_bytes(c.try_into().expect("4-byte words")))
                    .collect::<Vec<_>>();
                h.set_words(self.p.rdata, &data);
                h.set(self.p.rlast, u64::from(last));
                h.set(self.p.rresp, u64::from(b.resp));
                self.r_offered = true;
            }
        }
        h.set(self.p.rvalid, u64::from(self.r_offered));
        h.set(self.p.rid, axi::ID);
        if !self.r_offered {
            h.set(self.p.rresp, u64::from(axi::OKAY));
        }
        self.b_offered = b_try && self.responses.front().is_some_and(|&(t, _)| t <= cycle);
        h.set(self.p.bvalid, u64::from(self.b_offered));
        h.set(self.p.bid, axi::ID);
        let bresp = self.responses.front().filter(|_| self.b_offered);
        h.set(
            self.p.bresp,
            u64::from(bresp.map_or(axi::OKAY, |&(_, r)| r)),
        );
    }

    fn check_burst(&self, h: &Harness, mem: &mut DeviceMemory, addr: u64, len: u64) -> Result<()> {
        let beats = len + 1;
        let bytes = beats * self.bytes;
        if !addr.is_multiple_of(self.bytes) {
            return Err(self.protocol(
                h,
                format!("address {addr:#x} not aligned to {} bytes", self.bytes),
            ));
        }
        if addr % 4096 + bytes > 4096 {
            return Err(self.protocol(
                h,
                format!("burst at {addr:#x} of {beats} beats crosses 4 KiB"),
            ));
        }
        if mem.find(addr, bytes).is_none() {
            return Err(self.protocol(
                h,
                format!("burst at {addr:#x} of {beats} beats is outside every buffer"),
            ));
        }
        Ok(())
    }

    /// Takes this cycle's handshakes of the settled kernel: accepted bursts are checked and
    /// queued, read beats retired, written beats stored, responses retired.
    pub(super) fn sample(&mut self, h: &mut Harness, mem: &mut DeviceMemory) -> Result<()> {
        let latency = h.rng().random_range(1..=6);
        let p = &self.p;
        // AR: payload stable while waiting; accepted bursts are checked and queued.
        if h.get(p.arvalid) == 1 {
            self.check_attributes(h, "ar")?;
            let p = &self.p;
            let ar = (h.get(p.araddr), h.get(p.arlen));
            if self.held_ar.is_some_and(|held| held != ar) {
                return Err(self.protocol(h, "AR changed while waiting".into()));
            }
            if h.get(p.arready) == 1 {
                self.check_burst(h, mem, ar.0, ar.1)?;
                let resp = self.response(ar.0, ar.1 + 1, false);
                self.reads.push_back(Burst {
                    addr: ar.0,
                    beats: ar.1 + 1,
                    done: 0,
                    ready_at: h.cycle() + latency,
                    resp,
                });
                self.held_ar = None;
            } else {
                self.held_ar = Some(ar);
            }
        }
        let p = &self.p;
        if self.r_offered && h.get(p.rready) == 1 {
            let b = self.reads.front_mut().expect("offered from a burst");
            b.done += 1;
            if b.done == b.beats {
                self.reads.pop_front();
            }
        }
        // AW.
        if h.get(p.awvalid) == 1 {
            self.check_attributes(h, "aw")?;
            let p = &self.p;
            let aw = (h.get(p.awaddr), h.get(p.awlen));
            if self.held_aw.is_some_and(|held| held != aw) {
                return Err(self.protocol(h, "AW changed while waiting".into()));
            }
            if h.get(p.awready) == 1 {
                self.check_burst(h, mem, aw.0, aw.1)?;
                let resp = self.response(aw.0, aw.1 + 1, true);
                self.writes.push_back(Burst {
                    addr: aw.0,
                    beats: aw.1 + 1,
                    done: 0,
                    ready_at: 0,
                    resp,
                });
                self.held_aw = None;
            } else {
                self.held_aw = Some(aw);
            }
        }
        // W: data into memory, WLAST exactly on the last beat, then a response.
        let p = &self.p;
        if h.get(p.wvalid) == 1 {
            let data = h.get_words(p.wdata);
            let strb = h.get_words(p.wstrb);
            let last = h.get(p.wlast) == 1;
            if self.held_w.as_ref().is_some_and(|held| *held != data) {
                return Err(self.protocol(h, "W data changed while waiting".into()));
            }
            if self.w_ready {
                let bytes = self.bytes;
                let b = self.writes.front_mut().expect("wready needs a burst");
                let addr = b.addr + b.done * bytes;
                b.done += 1;
                let (done, beats, resp) = (b.done, b.beats, b.resp);
                let end = done == beats;
                if last != end {
                    return Err(
                        self.protocol(h, format!("WLAST = {last} on beat {done} of {beats}"))
                    );
                }
                // A burst answered with an error leaves memory as it was.
                // Only the bytes whose strobe is set are written.
                if !axi::is_error(resp) {
                    let dst = mem.find(addr, bytes).expect("checked when accepted");
                    let src = data.iter().flat_map(|w| w.to_le_bytes());
                    for (i, (d, b)) in dst.iter_mut().zip(src).enumerate() {
                        if strb[i / 32] >> (i % 32) & 1 == 1 {
                            *d = b;
                        }
                    }
                }
                if end {
                    self.writes.pop_front();
                    self.responses.push_back((h.cycle() + latency, resp));
                }
                self.held_w = None;
            } else {
                self.held_w = Some(data);
            }
        } else if self.held_w.is_some() {
            return Err(self.protocol(h, "WVALID dropped before WREADY".into()));
        }
        if self.b_offered && h.get(self.p.bready) == 1 {
            self.responses.pop_front();
        }
        Ok(())
    }
}
