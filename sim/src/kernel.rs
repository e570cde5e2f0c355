//! Drives the Alveo RTL kernel `kvpq_krnl` as XRT and the shell would: ap_ctrl_hs over
//! AXI4-Lite (argument registers, ap_start, polling ap_done, the interrupt), and device memory
//! behind the kernel's AXI4 masters with random latency and stalls. The memory checks the
//! AXI4 rules the kernel must keep: bursts of at most 256 beats that do not cross 4 KiB,
//! aligned addresses inside an allocated buffer, stable payloads while valid waits for
//! ready, full write strobes and WLAST on the last beat.

use std::collections::{HashMap, VecDeque};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::build::BuiltModel;
use crate::error::{Result, SimError};
use crate::harness::Stalls;
use crate::model::Model;
use kvpq_core::golden::{Hit, QuantCodebook, QueryResult};
use kvpq_core::interface::alveo::{
    ap_ctrl, axi_lite_signals, axi_master_signals, reg, ArgKind, KernelInterface,
};
use kvpq_core::spec::Accelerator;

/// Poison the result buffer is filled with, to see words the kernel did not write.
const POISON: u8 = 0xa5;

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

/// What one run returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelOutcome {
    /// Results read back from `out`, and the shift from its header.
    pub result: QueryResult,
    /// Count from the header.
    pub count: u32,
    /// Cycles from the ap_start write to the poll that saw ap_done.
    pub cycles: u64,
}

struct Buffer {
    base: u64,
    bytes: Vec<u8>,
}

/// Device memory: buffers at fixed addresses, with a free page between neighbours.
#[derive(Default)]
struct DeviceMemory {
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

    fn find(&mut self, addr: u64, len: u64) -> Option<&mut [u8]> {
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
}

/// One AXI4 master of the kernel and the memory side's state for it.
struct Master {
    name: String,
    bytes: u64,
    port: HashMap<&'static str, usize>,
    reads: VecDeque<Burst>,
    writes: VecDeque<Burst>,
    responses: VecDeque<u64>,
    held_ar: Option<(u64, u64)>,
    held_aw: Option<(u64, u64)>,
    held_w: Option<Vec<u32>>,
    r_offered: bool,
    w_ready: bool,
    b_offered: bool,
}

#[derive(Default)]
struct Lite {
    write: Option<(u32, u32)>,
    aw_sent: bool,
    w_sent: bool,
    read: Option<u32>,
    ar_sent: bool,
    got_b: bool,
    got_r: Option<u32>,
}

/// The kernel model with the host and memory around it.
pub struct KernelSim {
    model: Model,
    iface: KernelInterface,
    head_dim: usize,
    k_max: u32,
    max_tokens: u32,
    tokens_per_beat: u64,
    words_per_beat: usize,
    rng: ChaCha8Rng,
    stalls: Stalls,
    cycle: u64,
    mem: DeviceMemory,
    masters: Vec<Master>,
    lite_port: HashMap<&'static str, usize>,
    lite: Lite,
    rst_n: usize,
    interrupt: usize,
    interrupt_seen: bool,
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
        let model = Model::load(built)?;
        let mut masters = Vec::new();
        for m in &iface.masters {
            let mut port = HashMap::new();
            for (sig, _, _) in axi_master_signals(m.data_bits) {
                port.insert(sig, model.port(&format!("{}_{sig}", m.name))?);
            }
            masters.push(Master {
                name: m.name.to_string(),
                bytes: u64::from(m.data_bits / 8),
                port,
                reads: VecDeque::new(),
                writes: VecDeque::new(),
                responses: VecDeque::new(),
                held_ar: None,
                held_aw: None,
                held_w: None,
                r_offered: false,
                w_ready: false,
                b_offered: false,
            });
        }
        let mut lite_port = HashMap::new();
        for (sig, _, _) in axi_lite_signals() {
            lite_port.insert(sig, model.port(&format!("{}_{sig}", iface.control))?);
        }
        let d = acc.derived();
        let mut sim = Self {
            rst_n: model.port("ap_rst_n")?,
            interrupt: model.port("interrupt")?,
            model,
            iface,
            head_dim: acc.config().pq.head_dim as usize,
            k_max: acc.config().topk.k_max,
            max_tokens: acc.config().engine.max_tokens,
            tokens_per_beat: u64::from(d.layout.tokens_per_beat),
            words_per_beat: d.layout.words_per_beat(),
            rng: ChaCha8Rng::seed_from_u64(seed),
            stalls,
            cycle: 0,
            mem: DeviceMemory::default(),
            masters,
            lite_port,
            lite: Lite::default(),
            interrupt_seen: false,
        };
        sim.reset()?;
        Ok(sim)
    }

    /// Cycles simulated so far.
    pub fn cycle(&self) -> u64 {
        self.cycle
    }

    /// Writes a VCD trace of everything from now on.
    pub fn trace(&mut self, path: &std::path::Path) -> Result<()> {
        self.model.trace(path)
    }

    /// Holds ap_rst_n low for a few cycles (the loaded codebook is lost).
    pub fn reset(&mut self) -> Result<()> {
        self.model.set_u64(self.rst_n, 0);
        for _ in 0..4 {
            self.step()?;
        }
        self.model.set_u64(self.rst_n, 1);
        for _ in 0..2 {
            self.step()?;
        }
        Ok(())
    }

    fn chance(&mut self, p: f64) -> bool {
        p >= 1.0 || self.rng.random_bool(p.max(0.0))
    }

    fn protocol(&self, what: String) -> SimError {
        SimError::Protocol {
            cycle: self.cycle,
            what,
        }
    }

    /// One clock cycle: the memory and the host drive their inputs, the kernel settles,
    /// handshakes are taken, the clock ticks.
    fn step(&mut self) -> Result<()> {
        // Drive the memory side of every master.
        for i in 0..self.masters.len() {
            let ar_ready = self.chance(self.stalls.output_ready);
            let aw_ready = self.chance(self.stalls.output_ready);
            let w_ready = self.chance(self.stalls.output_ready);
            let r_try = self.chance(self.stalls.input_valid);
            let b_try = self.chance(self.stalls.input_valid);
            let cycle = self.cycle;
            let m = &mut self.masters[i];
            self.model.set_u64(m.port["arready"], u64::from(ar_ready));
            self.model.set_u64(m.port["awready"], u64::from(aw_ready));
            // Data is taken only for a burst whose address was accepted.
            m.w_ready = w_ready && !m.writes.is_empty();
            self.model.set_u64(m.port["wready"], u64::from(m.w_ready));
            m.r_offered = false;
            if let Some(b) = m.reads.front() {
                if r_try && b.ready_at <= cycle {
                    let (addr, last) = (b.addr + b.done * m.bytes, b.done + 1 == b.beats);
                    let data = self
                        .mem
                        .find(addr, m.bytes)
                        .expect("bursts are checked when accepted")
                        .chunks(4)
                        .map(|c| u32::from_le_bytes(c.try_into().expect("4-byte words")))
                        .collect::<Vec<_>>();
                    self.model.set(m.port["rdata"], &data);
                    self.model.set_u64(m.port["rlast"], u64::from(last));
                    m.r_offered = true;
                }
            }
            self.model.set_u64(m.port["rvalid"], u64::from(m.r_offered));
            m.b_offered = b_try && m.responses.front().is_some_and(|&t| t <= cycle);
            self.model.set_u64(m.port["bvalid"], u64::from(m.b_offered));
        }
        self.drive_lite();
        self.model.eval();
        for i in 0..self.masters.len() {
            self.sample_master(i)?;
        }
        self.sample_lite();
        if self.model.get_u64(self.interrupt) == 1 {
            self.interrupt_seen = true;
        }
        self.model.tick();
        self.cycle += 1;
        Ok(())
    }

    fn check_burst(&mut self, master: usize, addr: u64, len: u64) -> Result<()> {
        let m = &self.masters[master];
        let beats = len + 1;
        let bytes = beats * m.bytes;
        let what = if !addr.is_multiple_of(m.bytes) {
            Some(format!(
                "address {addr:#x} not aligned to {} bytes",
                m.bytes
            ))
        } else if addr % 4096 + bytes > 4096 {
            Some(format!("burst at {addr:#x} of {beats} beats crosses 4 KiB"))
        } else {
            None
        };
        let name = m.name.clone();
        if let Some(w) = what {
            return Err(self.protocol(format!("{name}: {w}")));
        }
        if self.mem.find(addr, bytes).is_none() {
            return Err(self.protocol(format!(
                "{name}: burst at {addr:#x} of {beats} beats is outside every buffer"
            )));
        }
        Ok(())
    }

    fn sample_master(&mut self, i: usize) -> Result<()> {
        let get = |s: &Self, sig: &str| s.model.get_u64(s.masters[i].port[sig]);
        let latency = self.rng.random_range(1..=6);
        // AR: payload stable while waiting; accepted bursts are checked and queued.
        if get(self, "arvalid") == 1 {
            let ar = (get(self, "araddr"), get(self, "arlen"));
            if let Some(held) = self.masters[i].held_ar {
                if held != ar {
                    let name = self.masters[i].name.clone();
                    return Err(self.protocol(format!("{name}: AR changed while waiting")));
                }
            }
            if get(self, "arready") == 1 {
                self.check_burst(i, ar.0, ar.1)?;
                let ready_at = self.cycle + latency;
                let m = &mut self.masters[i];
                m.reads.push_back(Burst {
                    addr: ar.0,
                    beats: ar.1 + 1,
                    done: 0,
                    ready_at,
                });
                m.held_ar = None;
            } else {
                self.masters[i].held_ar = Some(ar);
            }
        }
        if self.masters[i].r_offered && get(self, "rready") == 1 {
            let m = &mut self.masters[i];
            let b = m.reads.front_mut().expect("offered from a burst");
            b.done += 1;
            if b.done == b.beats {
                m.reads.pop_front();
            }
        }
        // AW.
        if get(self, "awvalid") == 1 {
            let aw = (get(self, "awaddr"), get(self, "awlen"));
            if let Some(held) = self.masters[i].held_aw {
                if held != aw {
                    let name = self.masters[i].name.clone();
                    return Err(self.protocol(format!("{name}: AW changed while waiting")));
                }
            }
            if get(self, "awready") == 1 {
                self.check_burst(i, aw.0, aw.1)?;
                let m = &mut self.masters[i];
                m.writes.push_back(Burst {
                    addr: aw.0,
                    beats: aw.1 + 1,
                    done: 0,
                    ready_at: 0,
                });
                m.held_aw = None;
            } else {
                self.masters[i].held_aw = Some(aw);
            }
        }
        // W: data into memory, WLAST exactly on the last beat, then a response.
        if get(self, "wvalid") == 1 {
            let words = self.masters[i].bytes as usize / 4;
            let mut data = vec![0u32; words.max(1)];
            self.model.get(self.masters[i].port["wdata"], &mut data);
            let strb = get(self, "wstrb");
            let last = get(self, "wlast") == 1;
            let name = self.masters[i].name.clone();
            if let Some(held) = &self.masters[i].held_w {
                if *held != data {
                    return Err(self.protocol(format!("{name}: W data changed while waiting")));
                }
            }
            if self.masters[i].w_ready {
                let bytes = self.masters[i].bytes;
                if strb != (1u64 << bytes) - 1 {
                    return Err(self.protocol(format!("{name}: partial write strobe {strb:#x}")));
                }
                let b = self.masters[i]
                    .writes
                    .front_mut()
                    .expect("wready needs a burst");
                let addr = b.addr + b.done * bytes;
                b.done += 1;
                let (done, beats) = (b.done, b.beats);
                let end = done == beats;
                if last != end {
                    return Err(
                        self.protocol(format!("{name}: WLAST = {last} on beat {done} of {beats}"))
                    );
                }
                let dst = self.mem.find(addr, bytes).expect("checked when accepted");
                for (chunk, w) in dst.chunks_mut(4).zip(&data) {
                    chunk.copy_from_slice(&w.to_le_bytes());
                }
                let m = &mut self.masters[i];
                if end {
                    m.writes.pop_front();
                    m.responses.push_back(self.cycle + latency);
                }
                m.held_w = None;
            } else {
                self.masters[i].held_w = Some(data);
            }
        } else if self.masters[i].held_w.is_some() {
            let name = self.masters[i].name.clone();
            return Err(self.protocol(format!("{name}: WVALID dropped before WREADY")));
        }
        if self.masters[i].b_offered && get(self, "bready") == 1 {
            self.masters[i].responses.pop_front();
        }
        Ok(())
    }

    fn drive_lite(&mut self) {
        let p = &self.lite_port;
        let (aw, w) = match self.lite.write {
            Some((addr, data)) => {
                self.model.set_u64(p["awaddr"], u64::from(addr));
                self.model.set_u64(p["wdata"], u64::from(data));
                (!self.lite.aw_sent, !self.lite.w_sent)
            }
            None => (false, false),
        };
        self.model.set_u64(p["awvalid"], u64::from(aw));
        self.model.set_u64(p["wvalid"], u64::from(w));
        self.model.set_u64(p["wstrb"], 0xf);
        self.model.set_u64(p["bready"], 1);
        let ar = match self.lite.read {
            Some(addr) => {
                self.model.set_u64(p["araddr"], u64::from(addr));
                !self.lite.ar_sent
            }
            None => false,
        };
        self.model.set_u64(p["arvalid"], u64::from(ar));
        self.model.set_u64(p["rready"], 1);
    }

    fn sample_lite(&mut self) {
        let p = &self.lite_port;
        let get = |sig: &str| self.model.get_u64(p[sig]) == 1;
        if self.lite.write.is_some() {
            if !self.lite.aw_sent && get("awready") {
                self.lite.aw_sent = true;
            }
            if !self.lite.w_sent && get("wready") {
                self.lite.w_sent = true;
            }
            if get("bvalid") {
                self.lite.got_b = true;
            }
        }
        if self.lite.read.is_some() {
            if !self.lite.ar_sent && get("arready") {
                self.lite.ar_sent = true;
            } else if self.lite.ar_sent && get("rvalid") {
                self.lite.got_r = Some(self.model.get_u64(p["rdata"]) as u32);
            }
        }
    }

    /// Writes a control register over AXI4-Lite.
    pub fn write_reg(&mut self, offset: u32, value: u32) -> Result<()> {
        self.lite = Lite {
            write: Some((offset, value)),
            ..Lite::default()
        };
        for _ in 0..100 {
            self.step()?;
            if self.lite.got_b {
                self.lite = Lite::default();
                return Ok(());
            }
        }
        Err(SimError::Timeout {
            cycles: self.cycle,
            what: format!("write response of control register {offset:#x}"),
        })
    }

    /// Reads a control register over AXI4-Lite.
    pub fn read_reg(&mut self, offset: u32) -> Result<u32> {
        self.lite = Lite {
            read: Some(offset),
            ..Lite::default()
        };
        for _ in 0..100 {
            self.step()?;
            if let Some(v) = self.lite.got_r {
                self.lite = Lite::default();
                return Ok(v);
            }
        }
        Err(SimError::Timeout {
            cycles: self.cycle,
            what: format!("read data of control register {offset:#x}"),
        })
    }

    /// Address for a new buffer, at a random aligned offset inside its first page so that
    /// bursts meet 4 KiB boundaries at every phase.
    fn place(&mut self, bytes: Vec<u8>, align: u64) -> u64 {
        let slots = 4096 / align;
        let offset = self.rng.random_range(0..slots) * align;
        self.mem.alloc(bytes, offset)
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
        let start = self.cycle;
        self.write_reg(reg::CTRL, ap_ctrl::START)?;
        let budget = 50_000
            + 40 * (words as u64
                + (self.head_dim as u64)
                + call.codebook.map_or(0, |c| c.values.len() as u64)
                + u64::from(call.k.min(self.k_max))
                + n_clamped);
        let budget = (budget as f64
            / self
                .stalls
                .input_valid
                .min(self.stalls.output_ready)
                .max(0.05)) as u64;
        loop {
            let ctrl = self.read_reg(reg::CTRL)?;
            if ctrl & ap_ctrl::DONE != 0 {
                break;
            }
            if self.cycle - start > budget {
                return Err(SimError::Timeout {
                    cycles: self.cycle,
                    what: format!("ap_done (ap_ctrl {ctrl:#x})"),
                });
            }
        }
        let cycles = self.cycle - start;
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
        if self.model.get_u64(self.interrupt) != 0 {
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
        let count = header as u32;
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
            cycles,
        })
    }
}
