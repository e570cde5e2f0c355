//! Drives the Alveo RTL kernel `kvpq_krnl` as XRT and the shell would: ap_ctrl_hs over
//! AXI4-Lite (argument registers, ap_start, polling ap_done, the interrupt; `lite`), and
//! device memory behind the kernel's AXI4 masters with random latency and stalls, checking
//! the AXI4 rules (`memory`). This module is the host call that uses both.

mod lite;
mod memory;

use crate::build::BuiltModel;
use crate::error::{Result, SimError};
use crate::harness::{Harness, PortId, Stalls};
use kvpq_core::golden::{Hit, QuantCodebook, QueryResult};
use kvpq_core::interface::alveo::{ap_ctrl, out_flags, reg, ArgKind, KernelInterface};
use kvpq_core::spec::Accelerator;
use lite::LiteMaster;
use memory::{DeviceMemory, FaultSel, Master};

/// Poison the result buffer is filled with, to see words the kernel did not write.
const POISON: u8 = 0xa5;

/// Cycles a control register access may take: the host never stalls the control interface,
/// so only a kernel that stopped answering needs more.
const REGISTER_CYCLES: u64 = 100;

/// One kernel run: the buffers and scalars of a query.
#[derive(Debug, Clone, Copy)]
pub struct KernelCall<'a> {
    /// Codebook to load first (`load_codebook = 1`), or `None` to keep the loaded one.
    pub codebook: Option<&'a QuantCodebook>,
    /// Quantized query (head_dim values).
    pub query: &'a [i32],
    /// Packed code words; the kernel may read only the first ceil(n_tokens / tokens_per_beat)
    /// beats, so the buffer holds exactly those.
    pub beats: &'a [u64],
    /// Tokens to scan (the kernel clamps it to max_tokens).
    pub n_tokens: u32,
    /// Results wanted (the kernel clamps it to k_max).
    pub k: u32,
}

/// Where an injected memory error strikes (see [`KernelSim::inject`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultAt {
    /// The `n`-th burst (from 0) that `master` (e.g. `m_axi_gmem1`) accepts in the run.
    Burst {
        /// AXI master name.
        master: String,
        /// Burst number within the run, from 0.
        n: u64,
    },
    /// Every burst touching a byte of `bytes` (offsets into the buffer) of argument `arg`.
    Range {
        /// Buffer argument name (`codebook`, `query`, `codes`, `out`).
        arg: String,
        /// Byte offsets into that buffer.
        bytes: std::ops::Range<u64>,
    },
}

/// An error response of device memory, injected for one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// Where it strikes.
    pub at: FaultAt,
    /// The RRESP/BRESP code (`axi::SLVERR` or `axi::DECERR`).
    pub resp: u8,
}

/// What one run returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelOutcome {
    /// Results read back from `out`, and the shift from its header.
    pub result: QueryResult,
    /// Count from the header.
    pub count: u32,
    /// Header bit 63: a read answered with an error (no results, count 0).
    pub read_error: bool,
    /// Header bit 62: a result write answered with an error.
    pub write_error: bool,
    /// Cycles from the ap_start write to the poll that saw ap_done.
    pub cycles: u64,
}

/// The kernel model with the host and memory around it.
pub struct KernelSim {
    h: Harness,
    iface: KernelInterface,
    head_dim: usize,
    k_max: u32,
    max_tokens: u32,
    tokens_per_beat: u64,
    words_per_beat: usize,
    mem: DeviceMemory,
    masters: Vec<Master>,
    lite: LiteMaster,
    rst_n: PortId,
    interrupt: PortId,
    interrupt_seen: bool,
    faults: Vec<Fault>,
}

impl KernelSim {
    /// Loads a model of `kvpq_krnl` built for `acc` (an Alveo target) and resets it.
    pub fn new(built: &BuiltModel, acc: &Accelerator, seed: u64, stalls: Stalls) -> Result<Self> {
        let iface = KernelInterface::new(acc, acc.config().target.platform).map_err(|e| {
            SimError::Interface {
                module: built.top.clone(),
                what: e.to_string(),
            }
        })?;
        let h = Harness::new(built, &iface.ports(), seed, stalls)?;
        let masters = iface
            .masters
            .iter()
            .map(|m| Master::new(&h, m))
            .collect::<Result<Vec<_>>>()?;
        let d = acc.derived();
        let mut sim = Self {
            rst_n: h.port("ap_rst_n")?,
            interrupt: h.port("interrupt")?,
            lite: LiteMaster::new(&h, &iface.control)?,
            h,
            iface,
            head_dim: acc.config().pq.head_dim as usize,
            k_max: acc.config().topk.k_max,
            max_tokens: acc.config().engine.max_tokens,
            tokens_per_beat: u64::from(d.layout.tokens_per_beat),
            words_per_beat: d.layout.words_per_beat(),
            mem: DeviceMemory::default(),
            masters,
            interrupt_seen: false,
            faults: Vec::new(),
        };
        sim.reset()?;
        Ok(sim)
    }

    /// Cycles simulated so far.
    pub fn cycle(&self) -> u64 {
        self.h.cycle()
    }

    /// Writes a VCD trace of everything from now on.
    pub fn trace(&mut self, path: &std::path::Path) -> Result<()> {
        self.h.trace(path)
    }

    /// Holds ap_rst_n low for a few cycles (the loaded codebook is lost).
    pub fn reset(&mut self) -> Result<()> {
        self.h.set(self.rst_n, 0);
        for _ in 0..4 {
            self.step()?;
        }
        self.h.set(self.rst_n, 1);
        for _ in 0..2 {
            self.step()?;
        }
        Ok(())
    }

    fn protocol(&self, what: String) -> SimError {
        SimError::Protocol {
            cycle: self.h.cycle(),
            what,
        }
    }

    /// One clock cycle: the memory and the host drive their inputs, the kernel settles,
    /// handshakes are taken, the clock ticks.
    fn step(&mut self) -> Result<()> {
        for m in &mut self.masters {
            m.drive(&mut self.h, &mut self.mem);
        }
        self.lite.drive(&mut self.h);
        self.h.eval();
        for m in &mut self.masters {
            m.sample(&mut self.h, &mut self.mem)?;
        }
        self.lite.sample(&self.h);
        if self.h.get(self.interrupt) == 1 {
            self.interrupt_seen = true;
        }
        self.h.tick();
        Ok(())
    }

    /// Writes a control register over AXI4-Lite.
    pub fn write_reg(&mut self, offset: u32, value: u32) -> Result<()> {
        self.lite.start_write(offset, value);
        for _ in 0..REGISTER_CYCLES {
            self.step()?;
            if self.lite.write_done() {
                return Ok(());
            }
        }
        Err(SimError::Timeout {
            cycles: self.h.cycle(),
            what: format!("write response of control register {offset:#x}"),
        })
    }

    /// Reads a control register over AXI4-Lite.
    pub fn read_reg(&mut self, offset: u32) -> Result<u32> {
        self.lite.start_read(offset);
        for _ in 0..REGISTER_CYCLES {
            self.step()?;
            if let Some(v) = self.lite.read_data() {
                return Ok(v);
            }
        }
        Err(SimError::Timeout {
            cycles: self.h.cycle(),
            what: format!("read data of control register {offset:#x}"),
        })
    }

    /// Makes memory answer the next [`Self::call`] with `fault.resp` where `fault.at`
    /// says; faults are forgotten after that run.
    pub fn inject(&mut self, fault: Fault) -> Result<()> {
        let known = match &fault.at {
            FaultAt::Burst { master, .. } => self.iface.master(master).is_some(),
            FaultAt::Range { arg, .. } => self
                .iface
                .arg(arg)
                .is_some_and(|a| a.kind == ArgKind::Buffer),
        };
        if !known {
            return Err(SimError::Interface {
                module: "kvpq_krnl".into(),
                what: format!("no master or buffer argument for the fault {:?}", fault.at),
            });
        }
        self.faults.push(fault);
        Ok(())
    }

    /// Arms the injected faults on their masters, given the buffers' addresses by argument.
    fn arm_faults(&mut self, addrs: &[(&str, u64)]) {
        let faults = std::mem::take(&mut self.faults);
        for (i, m) in self.iface.masters.iter().enumerate() {
            let mut sel = Vec::new();
            for f in &faults {
                match &f.at {
                    FaultAt::Burst { master, n } if *master == m.name => {
                        sel.push((FaultSel::Burst(*n), f.resp));
                    }
                    FaultAt::Range { arg, bytes } => {
                        let on_m = self
                            .iface
                            .arg(arg)
                            .is_some_and(|a| a.master.as_deref() == Some(m.name.as_str()));
                        if let Some(&(_, base)) = addrs.iter().find(|(a, _)| a == arg) {
                            if on_m {
                                let sel_at = FaultSel::Addr(base + bytes.start, base + bytes.end);
                                sel.push((sel_at, f.resp));
                            }
                        }
                    }
                    FaultAt::Burst { .. } => {}
                }
            }
            self.masters[i].arm(sel);
        }
    }

    /// Address for a new buffer, at a random aligned offset inside its first page.
    fn place(&mut self, bytes: Vec<u8>, align: u64) -> u64 {
        self.mem.place(&mut self.h, bytes, align)
    }

    fn set_arg(&mut self, name: &str, value: u64) -> Result<()> {
        let arg = self
            .iface
            .arg(name)
            .cloned()
            .ok_or_else(|| SimError::Interface {
                module: "kvpq_krnl".into(),
                what: format!("no argument `{name}`"),
            })?;
        self.write_reg(arg.offset, value as u32)?;
        if arg.kind == ArgKind::Buffer {
            self.write_reg(arg.offset + 4, (value >> 32) as u32)?;
        }
        Ok(())
    }

    /// Runs one query like a host would through XRT, and reads the results back.
    pub fn call(&mut self, call: &KernelCall) -> Result<KernelOutcome> {
        let le32 = |v: &[i32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let codebook_addr = match call.codebook {
            Some(cb) => {
                let words: Vec<i32> = cb.values.iter().copied().collect();
                self.place(le32(&words), 4)
            }
            None => 0, // never read: address 0 lies outside every buffer
        };
        if call.query.len() != self.head_dim {
            return Err(SimError::Interface {
                module: "kvpq_krnl".into(),
                what: format!(
                    "query of {} values, head_dim is {}",
                    call.query.len(),
                    self.head_dim
                ),
            });
        }
        let query_addr = self.place(le32(call.query), 4);
        let n_clamped = u64::from(call.n_tokens).min(u64::from(self.max_tokens));
        let beats = n_clamped.div_ceil(self.tokens_per_beat) as usize;
        let words = beats * self.words_per_beat;
        let codes: Vec<u8> = call
            .beats
            .get(..words)
            .ok_or_else(|| SimError::Interface {
                module: "kvpq_krnl".into(),
                what: format!("{} code words given, {words} needed", call.beats.len()),
            })?
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect();
        let beat_bytes = self.masters[1].bytes;
        let codes_addr = self.place(codes, beat_bytes);
        let out_len = 8 * (1 + self.k_max as usize);
        let out_addr = self.place(vec![POISON; out_len], 8);

        self.arm_faults(&[
            ("codebook", codebook_addr),
            ("query", query_addr),
            ("codes", codes_addr),
            ("out", out_addr),
        ]);
        self.set_arg("codebook", codebook_addr)?;
        self.set_arg("query", query_addr)?;
        self.set_arg("codes", codes_addr)?;
        self.set_arg("out", out_addr)?;
        self.set_arg("n_tokens", u64::from(call.n_tokens))?;
        self.set_arg("k", u64::from(call.k))?;
        self.set_arg("load_codebook", u64::from(call.codebook.is_some()))?;
        self.write_reg(reg::GIE, 1)?;
        self.write_reg(reg::IER, 1)?;
        let ctrl = self.read_reg(reg::CTRL)?;
        if ctrl & ap_ctrl::IDLE == 0 {
            return Err(self.protocol(format!("ap_idle low before ap_start (ap_ctrl {ctrl:#x})")));
        }
        self.interrupt_seen = false;
        let start = self.h.cycle();
        // 40 cycles per word moved and 50 000 for the wrapper, stretched by the stalls.
        let moved = words as u64
            + (self.head_dim as u64)
            + call.codebook.map_or(0, |c| c.values.len() as u64)
            + u64::from(call.k.min(self.k_max))
            + n_clamped;
        let deadline = self.h.deadline(2 * moved + 2_000);
        self.write_reg(reg::CTRL, ap_ctrl::START)?;
        loop {
            let ctrl = self.read_reg(reg::CTRL)?;
            if ctrl & ap_ctrl::DONE != 0 {
                break;
            }
            self.h
                .check(deadline, || format!("ap_done (ap_ctrl {ctrl:#x})"))?;
        }
        let cycles = self.h.cycle() - start;
        self.arm_faults(&[]);
        // ap_done is clear-on-read; the kernel is idle again; the interrupt fired and the
        // status register acknowledges it.
        let ctrl = self.read_reg(reg::CTRL)?;
        let all = ap_ctrl::START | ap_ctrl::DONE | ap_ctrl::IDLE | ap_ctrl::READY;
        if ctrl & all != ap_ctrl::IDLE {
            return Err(self.protocol(format!("ap_ctrl {ctrl:#x} after ap_done was read")));
        }
        if !self.interrupt_seen || self.read_reg(reg::ISR)? != 1 {
            return Err(self.protocol("no done interrupt".into()));
        }
        self.write_reg(reg::ISR, 1)?;
        if self.h.get(self.interrupt) != 0 {
            return Err(self.protocol("interrupt still high after the ISR toggle".into()));
        }

        let out = self
            .mem
            .find(out_addr, out_len as u64)
            .expect("allocated above")
            .to_vec();
        let word =
            |i: usize| u64::from_le_bytes(out[8 * i..8 * i + 8].try_into().expect("8 bytes"));
        let header = word(0);
        let (read_error, write_error) = (
            header & out_flags::READ_ERROR != 0,
            header & out_flags::WRITE_ERROR != 0,
        );
        let header = header & !out_flags::MEMORY_ERROR;
        let count = header as u32;
        if read_error && count != 0 {
            return Err(self.protocol(format!("read error flagged with count {count}")));
        }
        if count > self.k_max {
            return Err(self.protocol(format!("header count {count} exceeds k_max")));
        }
        let poison = u64::from_le_bytes([POISON; 8]);
        let hits = (1..=count as usize)
            .map(|i| Hit {
                index: word(i) as u32,
                score: (word(i) >> 32) as u32 as i32,
            })
            .collect();
        if let Some(i) = (count as usize + 1..=self.k_max as usize).find(|&i| word(i) != poison) {
            return Err(self.protocol(format!("out[{i}] written beyond the {count} results")));
        }
        Ok(KernelOutcome {
            result: QueryResult {
                hits,
                shift: (header >> 32) as u32,
            },
            count,
            read_error,
            write_error,
            cycles,
        })
    }
}
