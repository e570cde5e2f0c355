//! The host's AXI4-Lite master on the kernel's control interface: one register write or read
//! at a time, address and data raised until the kernel takes them, responses always accepted.

use crate::error::Result;
use crate::harness::{Harness, PortId};

/// The ports of the control interface, `<control>_<signal>`.
struct LitePorts {
    awvalid: PortId,
    awready: PortId,
    awaddr: PortId,
    wvalid: PortId,
    wready: PortId,
    wdata: PortId,
    wstrb: PortId,
    bvalid: PortId,
    bready: PortId,
    arvalid: PortId,
    arready: PortId,
    araddr: PortId,
    rvalid: PortId,
    rready: PortId,
    rdata: PortId,
}

/// The access in flight and how far it got.
#[derive(Default)]
struct Access {
    write: Option<(u32, u32)>,
    aw_sent: bool,
    w_sent: bool,
    read: Option<u32>,
    ar_sent: bool,
    got_b: bool,
    got_r: Option<u32>,
}

/// An AXI4-Lite master with at most one access in flight.
pub(super) struct LiteMaster {
    p: LitePorts,
    access: Access,
}

impl LiteMaster {
    /// The master of control interface `control`, its ports resolved in `h`.
    pub(super) fn new(h: &Harness, control: &str) -> Result<Self> {
        let port = |sig: &str| h.port(&format!("{control}_{sig}"));
        Ok(Self {
            p: LitePorts {
                awvalid: port("awvalid")?,
                awready: port("awready")?,
                awaddr: port("awaddr")?,
                wvalid: port("wvalid")?,
                wready: port("wready")?,
                wdata: port("wdata")?,
                wstrb: port("wstrb")?,
                bvalid: port("bvalid")?,
                bready: port("bready")?,
                arvalid: port("arvalid")?,
                arready: port("arready")?,
                araddr: port("araddr")?,
                rvalid: port("rvalid")?,
                rready: port("rready")?,
                rdata: port("rdata")?,
            },
            access: Access::default(),
        })
    }

    /// Starts writing `value` to register `offset` (dropping any access in flight).
    pub(super) fn start_write(&mut self, offset: u32, value: u32) {
        self.access = Access {
            write: Some((offset, value)),
            ..Access::default()
        };
    }

    /// Starts reading register `offset` (dropping any access in flight).
    pub(super) fn start_read(&mut self, offset: u32) {
        self.access = Access {
            read: Some(offset),
            ..Access::default()
        };
    }

    /// Whether the write in flight got its response; the master is idle again if so.
    pub(super) fn write_done(&mut self) -> bool {
        let done = self.access.got_b;
        if done {
            self.access = Access::default();
        }
        done
    }

    /// The data of the read in flight once it came back; the master is idle again if so.
    pub(super) fn read_data(&mut self) -> Option<u32> {
        let data = self.access.got_r;
        if data.is_some() {
            self.access = Access::default();
        }
        data
    }

    /// Drives the master's side for this cycle.
    pub(super) fn drive(&self, h: &mut Harness) {
        let (p, a) = (&self.p, &self.access);
        let (aw, w) = match a.write {
            Some((addr, data)) => {
                h.set(p.awaddr, u64::from(addr));
                h.set(p.wdata, u64::from(data));
                (!a.aw_sent, !a.w_sent)
            }
            None => (false, false),
        };
        h.set(p.awvalid, u64::from(aw));
        h.set(p.wvalid, u64::from(w));
        h.set(p.wstrb, 0xf);
        h.set(p.bready, 1);
        let ar = match a.read {
            Some(addr) => {
                h.set(p.araddr, u64::from(addr));
                !a.ar_sent
            }
            None => false,
        };
        h.set(p.arvalid, u64::from(ar));
        h.set(p.rready, 1);
    }

    /// Takes this cycle's handshakes of the settled kernel.
    pub(super) fn sample(&mut self, h: &Harness) {
        let (p, a) = (&self.p, &mut self.access);
        let high = |port| h.get(port) == 1;
        if a.write.is_some() {
            if !a.aw_sent && high(p.awready) {
                a.aw_sent = true;
            }
            if !a.w_sent && high(p.wready) {
                a.w_sent = true;
            }
            if high(p.bvalid) {
                a.got_b = true;
            }
        }
        if a.read.is_some() {
            if !a.ar_sent && high(p.arready) {
                a.ar_sent = true;
            } else if a.ar_sent && high(p.rvalid) {
                a.got_r = Some(h.get(p.rdata) as u32);
            }
        }
    }
}
