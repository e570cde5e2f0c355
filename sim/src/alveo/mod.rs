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
use kvpq_core::interface::alveo::{
    ap_ctrl, code_stripes, engine_arg, job, out_flags, reg, ArgKind, KernelInterface,
    JOB_HEADER_WORDS, MAX_JOBS,
};
use kvpq_core::spec::Accelerator;
use lite::LiteMaster;
use memory::{DeviceMemory, FaultSel, Master};
use rand::Rng;

/// Poison the result buffer is filled with, to see words the kernel did not write.
const POISON: u8 = 0xa5;

/// Cycles a control register access may take: the host never stalls the control interface,
/// so only a kernel that stopped answering needs more.
const REGISTER_CYCLES: u64 = 100;

/// One query of a kernel call: its job in the `jobs` buffer and its code beats.
#[derive(Debug, Clone, Copy)]
pub struct KernelJob<'a> {
    /// Codebook its LUT is built from (the kernel flags one at or above `engine.heads`).
    pub head: u32,
    /// Quantized query (head_dim values).
    pub query: &'a [i32],
    /// Packed code words; the kernel may read only the first ceil(n_tokens / tokens_per_beat)
    /// beats, so its engine's buffer holds exactly those.
    pub beats: &'a [u64],
    /// Tokens to scan (the kernel clamps it to max_tokens).
    pub n_tokens: u32,
    /// Results wanted (the kernel clamps it to k_max).
    pub k: u32,
}

/// One kernel run: a batch of jobs, job j on engine j % engines.
#[derive(Debug, Clone, Copy)]
pub struct KernelCall<'a> {
    /// The `engine.heads` codebooks to load first (`load_codebook = 1`), or `None` to keep
    /// the loaded ones.
    pub codebooks: Option<&'a [QuantCodebook]>,
    /// The queries.
    pub jobs: &'a [KernelJob<'a>],
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
    /// The `n`-th write burst (from 0) that `master` accepts in the run.
    WriteBurst {
        /// AXI master name.
        master: String,
        /// Write burst number within the run, from 0.
        n: u64,
    },
    /// Every burst touching a byte of `bytes` (offsets into the buffer) of argument `arg`.
    Range {
        /// Buffer argument name (`codebooks`, `jobs`, `lane0`, ...).
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

/// What one job of a run returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelJobOutcome {
    /// Results read back from its out area, and the shift from its header.
    pub result: QueryResult,
    /// Count from the header.
    pub count: u32,
    /// Header bit 63: a read answered with an error (no results, count 0).
    pub read_error: bool,
    /// Header bit 62: a result write answered with an error.
    pub write_error: bool,
    /// Header bit 61: the job's head is not below engine.heads (no results, count 0).
    pub request_error: bool,
}

/// What one run returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelOutcome {
    /// One outcome per job, in order.
    pub jobs: Vec<KernelJobOutcome>,
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
    engines: u32,
    /// Stripes of an engine's codes (`alveo::code_stripes`).
    stripes: u32,
    heads: u32,
    /// Bytes of an engine master's beat.
    beat_bytes: u64,
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
            engines: acc.config().target.engines(),
            stripes: code_stripes(acc.config()),
            heads: acc.config().engine.heads(),
            beat_bytes: u64::from(acc.config().engine.beat_bits.max(64) / 8),
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
            FaultAt::Burst { master, .. } | FaultAt::WriteBurst { master, .. } => {
                self.iface.master(master).is_some()
            }
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
    fn arm_faults(&mut self, addrs: &[(String, u64)]) {
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
                    FaultAt::WriteBurst { master, n } if *master == m.name => {
                        sel.push((FaultSel::WriteBurst(*n), f.resp));
                    }
                    FaultAt::Burst { .. } | FaultAt::WriteBurst { .. } => {}
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

    fn refuse(what: String) -> SimError {
        SimError::Interface {
            module: "kvpq_krnl".into(),
            what,
        }
    }

    /// The code bytes of `job` (exactly the beats the kernel reads) and its clamped n.
    fn job_codes(&self, job: &KernelJob) -> Result<(Vec<u8>, u64)> {
        if job.query.len() != self.head_dim {
            return Err(Self::refuse(format!(
                "query of {} values, head_dim is {}",
                job.query.len(),
                self.head_dim
            )));
        }
        let n_clamped = u64::from(job.n_tokens).min(u64::from(self.max_tokens));
        let beats = n_clamped.div_ceil(self.tokens_per_beat) as usize;
        let words = beats * self.words_per_beat;
        let codes = job
            .beats
            .get(..words)
            .ok_or_else(|| {
                Self::refuse(format!(
                    "{} code words given, {words} needed",
                    job.beats.len()
                ))
            })?
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect();
        Ok((codes, n_clamped))
    }

    /// Runs a batch of jobs like a host would through XRT, and reads every job's results
    /// back. Each engine's buffers hold its jobs' code beats, striped, and then (stripe 0)
    /// their out areas, each
    /// at a random 8-byte phase within a beat so that the result writes start and end on
    /// partial beats.
    pub fn call(&mut self, call: &KernelCall) -> Result<KernelOutcome> {
        let le32 = |v: &[i32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let engines = self.engines as usize;
        let heads = self.heads as usize;
        let codebooks_addr = match call.codebooks {
            Some(cbs) => {
                if cbs.len() != heads {
                    return Err(Self::refuse(format!(
                        "{} codebooks given, engine.heads is {heads}",
                        cbs.len()
                    )));
                }
                let words: Vec<i32> = cbs.iter().flat_map(|c| c.values.iter().copied()).collect();
                self.place(le32(&words), 4)
            }
            None => 0, // never read: address 0 lies outside every buffer
        };
        if call.jobs.len() > MAX_JOBS as usize {
            return Err(Self::refuse(format!(
                "{} jobs, at most {MAX_JOBS}",
                call.jobs.len()
            )));
        }
        // Lay out every engine's buffers, one per stripe: codes (beat aligned, beat b of a
        // job in stripe b % stripes at the job's codes offset + b / stripes beats, every
        // stripe's buffer grown alike), then the out areas in stripe 0.
        let beat_bytes = self.beat_bytes;
        let bb = beat_bytes as usize;
        let stripes = self.stripes as usize;
        let out_len = 8 * (1 + self.k_max as u64);
        let mut lanes: Vec<Vec<Vec<u8>>> = vec![vec![Vec::new(); stripes]; engines];
        let mut offsets = Vec::with_capacity(call.jobs.len());
        let mut moved = 0u64;
        for (j, job) in call.jobs.iter().enumerate() {
            let (codes, n) = self.job_codes(job)?;
            let lane = &mut lanes[j % engines];
            let codes_off = lane[0].len().next_multiple_of(bb);
            let beats = codes.len() / bb;
            let end = codes_off + beats.div_ceil(stripes) * bb;
            for buf in lane.iter_mut() {
                buf.resize(end, 0);
            }
            for (b, beat) in codes.chunks(bb).enumerate() {
                let at = codes_off + (b / stripes) * bb;
                lane[b % stripes][at..at + bb].copy_from_slice(beat);
            }
            moved += beats as u64 + self.head_dim as u64 + n;
            offsets.push(codes_off as u64);
        }
        let mut outs = Vec::with_capacity(call.jobs.len());
        for (j, job) in call.jobs.iter().enumerate() {
            let lane = &mut lanes[j % engines][0];
            let phase = 8 * self.h.rng().random_range(0..beat_bytes / 8);
            let start = lane.len().next_multiple_of(bb) as u64 + phase;
            // Whole beats around the area: the writer's first and last beats are partial.
            let end = (start + out_len).next_multiple_of(beat_bytes);
            lane.resize(end as usize, POISON);
            outs.push(start);
            moved += u64::from(job.k.min(self.k_max));
        }
        // lane_addrs[e][s]: the buffer of stripe s of engine e.
        let lane_addrs: Vec<Vec<u64>> = lanes
            .into_iter()
            .map(|bufs| {
                bufs.into_iter()
                    .map(|bytes| {
                        let bytes = if bytes.is_empty() { vec![0; 8] } else { bytes };
                        self.place(bytes, beat_bytes)
                    })
                    .collect()
            })
            .collect();
        let mut words =
            Vec::with_capacity(call.jobs.len() * (JOB_HEADER_WORDS as usize + self.head_dim));
        for (j, job) in call.jobs.iter().enumerate() {
            let mut w = [0u32; JOB_HEADER_WORDS as usize];
            w[job::N_TOKENS] = job.n_tokens;
            w[job::K] = job.k;
            w[job::HEAD] = job.head;
            w[job::CODES] = offsets[j] as u32;
            w[job::CODES + 1] = (offsets[j] >> 32) as u32;
            w[job::OUT] = outs[j] as u32;
            w[job::OUT + 1] = (outs[j] >> 32) as u32;
            words.extend(w.iter().map(|&x| x as i32));
            words.extend_from_slice(job.query);
        }
        let jobs_addr = self.place(le32(&words), 4);

        let mut addrs = vec![
            ("codebooks".to_string(), codebooks_addr),
            ("jobs".to_string(), jobs_addr),
        ];
        for (e, bufs) in lane_addrs.iter().enumerate() {
            for (st, &addr) in bufs.iter().enumerate() {
                addrs.push((engine_arg(e as u32, st as u32), addr));
            }
        }
        self.arm_faults(&addrs);
        for (name, addr) in &addrs {
            self.set_arg(name, *addr)?;
        }
        self.set_arg("n_jobs", call.jobs.len() as u64)?;
        self.set_arg("load_codebook", u64::from(call.codebooks.is_some()))?;
        self.write_reg(reg::GIE, 1)?;
        self.write_reg(reg::IER, 1)?;
        let ctrl = self.read_reg(reg::CTRL)?;
        if ctrl & ap_ctrl::IDLE == 0 {
            return Err(self.protocol(format!("ap_idle low before ap_start (ap_ctrl {ctrl:#x})")));
        }
        self.interrupt_seen = false;
        let start = self.h.cycle();
        // Every word moved, 40 cycles each stretched by the stalls, and the wrapper's cycles.
        moved += words.len() as u64
            + call
                .codebooks
                .map_or(0, |c| c.iter().map(|c| c.values.len() as u64).sum());
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
        let jobs = (0..call.jobs.len())
            .map(|j| self.read_out(j, lane_addrs[j % engines][0] + outs[j], out_len))
            .collect::<Result<Vec<_>>>()?;
        Ok(KernelOutcome { jobs, cycles })
    }

    /// Job `j`'s header and results from its out area at `addr`, checked: no count with an
    /// error that withholds results, none above k_max, nothing written past the results.
    fn read_out(&mut self, j: usize, addr: u64, out_len: u64) -> Result<KernelJobOutcome> {
        let out = self
            .mem
            .find(addr, out_len)
            .expect("allocated by call")
            .to_vec();
        let word =
            |i: usize| u64::from_le_bytes(out[8 * i..8 * i + 8].try_into().expect("8 bytes"));
        let header = word(0);
        let flag = |f: u64| header & f != 0;
        let (read_error, write_error, request_error) = (
            flag(out_flags::READ_ERROR),
            flag(out_flags::WRITE_ERROR),
            flag(out_flags::REQUEST_ERROR),
        );
        let header = header & !out_flags::ALL;
        let count = header as u32;
        if (read_error || request_error) && count != 0 {
            return Err(self.protocol(format!(
                "job {j}: results withheld (flags {:#x}) with count {count}",
                word(0) >> 61
            )));
        }
        if count > self.k_max {
            return Err(self.protocol(format!("job {j}: header count {count} exceeds k_max")));
        }
        let poison = u64::from_le_bytes([POISON; 8]);
        let hits = (1..=count as usize)
            .map(|i| Hit {
                index: word(i) as u32,
                score: (word(i) >> 32) as u32 as i32,
            })
            .collect();
        if let Some(i) = (count as usize + 1..=self.k_max as usize).find(|&i| word(i) != poison) {
            return Err(self.protocol(format!(
                "job {j}: out[{i}] written beyond the {count} results"
            )));
        }
        Ok(KernelJobOutcome {
            result: QueryResult {
                hits,
                shift: (header >> 32) as u32,
            },
            count,
            read_error,
            write_error,
            request_error,
        })
    }
}
