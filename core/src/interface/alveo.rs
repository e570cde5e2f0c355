//! The Alveo kernel's interface: AXI ports, kernel arguments, the control register map and
//! the ap_ctrl bits, the result layout. The RTL kernel, `kernel.xml`, the connectivity
//! config, the HLS pragmas, the simulated host and the runtime all read this one table.

use serde::{Deserialize, Serialize};

use super::ports::{Direction, Port};
use crate::spec::{Accelerator, AcceleratorConfig, CodeLayout, Platform};

/// Name of the packaged RTL kernel (and of its top module).
pub const RTL_KERNEL: &str = "kvpq_krnl";
/// Name of the HLS kernel (and of its top function).
pub const HLS_KERNEL: &str = "pq_topk_kernel";
/// Name of the AXI4-Lite control interface.
pub const CONTROL: &str = "s_axi_control";
/// Bytes of the control register space (a 12-bit address).
pub const CONTROL_RANGE: u32 = 0x1000;
/// Words of the result header written at the start of `out`: `{shift, count}`.
pub const OUT_HEADER_WORDS: u32 = 1;
/// Byte offset of the first argument register (ap_ctrl_hs owns `0x00..0x10`).
pub const ARGS_BASE: u32 = 0x10;
/// Bytes between argument registers: every argument gets a 64-bit slot.
pub const ARG_STRIDE: u32 = 8;
/// Bits of the control interface's byte address.
pub const CONTROL_ADDR_BITS: u32 = 12;

/// Byte offsets of the ap_ctrl_hs registers in the control space.
pub mod reg {
    /// ap_ctrl: start, done, idle, ready ([`super::ap_ctrl`]).
    pub const CTRL: u32 = 0x00;
    /// Global interrupt enable (bit 0).
    pub const GIE: u32 = 0x04;
    /// IP interrupt enable: bit 0 done, bit 1 ready.
    pub const IER: u32 = 0x08;
    /// IP interrupt status: bit 0 done, bit 1 ready; writing 1 toggles a bit.
    pub const ISR: u32 = 0x0c;
}

/// Bits of the ap_ctrl register (XRT's ap_ctrl_hs convention).
pub mod ap_ctrl {
    /// Written 1 by the host to start a run; cleared by the kernel when it takes the run.
    pub const START: u32 = 1 << 0;
    /// The run ended; cleared when the host reads ap_ctrl.
    pub const DONE: u32 = 1 << 1;
    /// No run in flight.
    pub const IDLE: u32 = 1 << 2;
    /// The kernel can take new arguments; cleared when the host reads ap_ctrl.
    pub const READY: u32 = 1 << 3;
}

/// One AXI4 master of the kernel; each maps to one HBM pseudo-channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AxiMaster {
    /// Interface name, e.g. `m_axi_gmem0` (ports are `<name>_<signal>`).
    pub name: String,
    /// HLS bundle name (`gmem0`).
    pub bundle: String,
    /// Data width in bits.
    pub data_bits: u32,
    /// HBM pseudo-channel the connectivity config maps it to.
    pub hbm_channel: u32,
    /// Whether the kernel writes through it (stripe 0 of each engine) or only reads.
    #[serde(default)]
    pub writes: bool,
    /// What travels on it.
    pub doc: String,
}

/// How an argument is passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArgKind {
    /// A device buffer: a 64-bit address register; the data moves over `master`.
    Buffer,
    /// A 32-bit scalar register.
    Scalar,
}

/// One kernel argument, in XRT's argument order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelArg {
    /// Argument name (also the register name).
    pub name: String,
    /// Position in `xrtRunSetArg` / `kernel.xml`.
    pub id: u32,
    /// Buffer or scalar.
    pub kind: ArgKind,
    /// Byte offset of its register in the control space.
    pub offset: u32,
    /// Register bytes: 8 for buffers, 4 for scalars.
    pub size: u32,
    /// AXI master of a buffer (`None` for scalars).
    pub master: Option<String>,
    /// C type in `kernel.xml`.
    pub c_type: String,
    /// C++ type in the HLS kernel's signature.
    pub hls_type: String,
    /// Layout of the buffer or meaning of the scalar.
    pub doc: String,
}

/// The kernel interface of one accelerator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelInterface {
    /// Platform it was generated for.
    pub platform: Platform,
    /// Vitis platform (shell) name the Makefile defaults to.
    pub vitis_platform: String,
    /// Vivado part of the packaging project.
    pub part: String,
    /// RTL kernel name.
    pub rtl_kernel: String,
    /// HLS kernel name.
    pub hls_kernel: String,
    /// AXI4-Lite control interface (ap_ctrl_hs).
    pub control: String,
    /// AXI4 masters.
    pub masters: Vec<AxiMaster>,
    /// Arguments, in order.
    pub args: Vec<KernelArg>,
    /// Control-register layout: `0x00` ap_ctrl (bit 0 ap_start, 1 ap_done (clear on read),
    /// 2 ap_idle, 3 ap_ready (clear on read)), `0x04` global interrupt enable, `0x08` IP
    /// interrupt enable (bit 0 done, bit 1 ready), `0x0c` IP interrupt status (write 1 to
    /// toggle); then the arguments.
    pub control_doc: String,
    /// Layout of `out`.
    pub out_doc: String,
}

/// Why a kernel interface cannot be built for an accelerator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KernelError {
    /// The platform is not an Alveo card.
    #[error("target.platform = {0}: the Vitis project needs an Alveo platform (u280 or u55c)")]
    NotAlveo(Platform),
    /// The code beat is wider than an AXI4 master may be in Vitis.
    #[error(
        "engine.beat_bits = {0}: the Alveo kernel reads one beat per AXI transfer and Vitis \
         AXI4 masters are at most 1024 bits wide"
    )]
    BeatTooWide(u32),
}

/// Widest AXI4 data bus Vitis accepts on a kernel master.
pub const MAX_AXI_BITS: u32 = 1024;

impl KernelInterface {
    /// The interface of `acc` on `platform`.
    pub fn new(acc: &Accelerator, platform: Platform) -> Result<Self, KernelError> {
        let (vitis_platform, part) = match platform {
            Platform::U280 => (
                "xilinx_u280_gen3x16_xdma_1_202211_1",
                "xcu280-fsvh2892-2L-e",
            ),
            Platform::U55c => (
                "xilinx_u55c_gen3x16_xdma_3_202210_1",
                "xcu55c-fsvh2892-2L-e",
            ),
            other => return Err(KernelError::NotAlveo(other)),
        };
        let beat = acc.config().engine.beat_bits;
        if beat > MAX_AXI_BITS {
            return Err(KernelError::BeatTooWide(beat));
        }
        let masters = kernel_masters(acc);
        let args = kernel_args(acc.config().target.engines(), code_stripes(acc.config()));
        Ok(Self {
            platform,
            vitis_platform: vitis_platform.into(),
            part: part.into(),
            rtl_kernel: RTL_KERNEL.into(),
            hls_kernel: HLS_KERNEL.into(),
            control: CONTROL.into(),
            masters,
            args,
            control_doc: "0x00 ap_ctrl: bit 0 ap_start, bit 1 ap_done (clear on read), bit 2 \
                          ap_idle, bit 3 ap_ready (clear on read); 0x04 global interrupt \
                          enable; 0x08 interrupt enable (bit 0 done, bit 1 ready); 0x0c \
                          interrupt status (write 1 to toggle); arguments from 0x10, 8 bytes \
                          apart (buffers: low word, then high word)"
                .into(),
            out_doc:
                "at each job's out offset in its engine's lane buffer: out[0] = count | shift \
                      << 32 | request_error << 61 | write_error << 62 | read_error << 63; \
                      out[1 + i] = index | (uint32)score << 32 for i < count, in ascending \
                      token index (docs/design.md section 3). read_error: a codebook, job or \
                      code read answered SLVERR/DECERR, so no results were written and count \
                      is 0; write_error: a result write answered SLVERR/DECERR; \
                      request_error: the job's head is not below engine.heads, so no results \
                      were written and count is 0. The HLS kernel cannot see AXI responses: \
                      bits 62 and 63 are always 0 there"
                    .into(),
        })
    }

    /// The argument called `name`.
    pub fn arg(&self, name: &str) -> Option<&KernelArg> {
        self.args.iter().find(|a| a.name == name)
    }

    /// The master called `name`.
    pub fn master(&self, name: &str) -> Option<&AxiMaster> {
        self.masters.iter().find(|m| m.name == name)
    }
}

/// The master that reads the codebooks and the jobs.
pub const JOB_MASTER: &str = "m_axi_gmem0";

/// Bytes per second one HBM pseudo-channel of a U55C or U280 delivers: 460 GB/s over 32
/// channels (AMD DS963).
pub const HBM_CHANNEL_BYTES_PER_S: f64 = 14.375e9;
/// HBM pseudo-channels of a U55C or U280: the kernel's masters map one each.
pub const HBM_CHANNELS: u32 = 32;

/// Pseudo-channels an engine's codes are striped over: the smallest power of two whose
/// channels deliver the code bytes the engine scans per second (a beat of `beat_bits` every
/// ceil(tokens_per_beat / lanes) cycles at `target.clock_mhz`). Beat b of a job lies in stripe
/// b % stripes, at the job's codes offset + (b / stripes) beats.
pub fn code_stripes(cfg: &AcceleratorConfig) -> u32 {
    let layout = CodeLayout::new(cfg.pq.m, cfg.pq.code_bits, cfg.engine.beat_bits);
    let cycles_per_beat = layout
        .tokens_per_beat
        .div_ceil(cfg.scanner.lanes.max(1))
        .max(1);
    let bytes_per_s = f64::from(cfg.engine.beat_bits.max(64) / 8) * cfg.target.clock_mhz * 1e6
        / f64::from(cycles_per_beat);
    let need = (bytes_per_s / HBM_CHANNEL_BYTES_PER_S).ceil().max(1.0) as u32;
    need.next_power_of_two()
}

/// The AXI4 master of stripe `s` of engine `e` when engines have `stripes` stripes:
/// `m_axi_gmem{1 + e * stripes + s}`.
pub fn engine_master(e: u32, s: u32, stripes: u32) -> String {
    format!("m_axi_gmem{}", 1 + e * stripes + s)
}

/// The buffer argument of stripe `s` of engine `e`: `lane{e}` (stripe 0: its jobs' results
/// and their beats 0, S, 2S, ...), `lane{e}_{s}` (beats s, S + s, ...).
pub fn engine_arg(e: u32, s: u32) -> String {
    if s == 0 {
        format!("lane{e}")
    } else {
        format!("lane{e}_{s}")
    }
}

/// The AXI4 masters of the kernel (RTL and HLS alike) for `acc`: the job reader, then one
/// per stripe of each engine, each on its own HBM pseudo-channel.
pub fn kernel_masters(acc: &Accelerator) -> Vec<AxiMaster> {
    let c = acc.config();
    let beat = c.engine.beat_bits;
    let stripes = code_stripes(c);
    let mut masters = vec![AxiMaster {
        name: JOB_MASTER.into(),
        bundle: "gmem0".into(),
        data_bits: 32,
        hbm_channel: 0,
        writes: false,
        doc: "reads the codebooks and the jobs (32-bit words)".into(),
    }];
    for e in 0..c.target.engines() {
        for s in 0..stripes {
            let n = 1 + e * stripes + s;
            masters.push(AxiMaster {
                name: engine_master(e, s, stripes),
                bundle: format!("gmem{n}"),
                // Beats are stored as whole 64-bit words (manifest.packing), so a 32-bit beat
                // travels as one 64-bit transfer whose high half is padding.
                data_bits: beat.max(64),
                hbm_channel: n,
                writes: s == 0,
                doc: if s == 0 {
                    format!(
                        "engine {e}: reads its jobs' code beats of stripe 0 of {stripes}, one \
                         beat per transfer, and writes their results (64-bit words packed \
                         into beats, byte strobes at the ends)"
                    )
                } else {
                    format!("engine {e}: reads its jobs' code beats of stripe {s} of {stripes}")
                },
            });
        }
    }
    masters
}

/// Most jobs one call takes; `n_jobs` is clamped to it (so the job stream's word count
/// fits 32 bits).
pub const MAX_JOBS: u32 = 65_535;

/// Words of a job before its query (`job::*` name them).
pub const JOB_HEADER_WORDS: u32 = 8;

/// Int32 words of one job in the `jobs` buffer: the header, then the query.
pub fn job_words(head_dim: u32) -> u32 {
    JOB_HEADER_WORDS + head_dim
}

/// Word positions inside a job of the `jobs` buffer. Job `j` runs on engine `j %
/// target.engines`; its offsets are bytes into that engine's `lane` buffer.
pub mod job {
    /// Tokens to scan (clamped to `engine.max_tokens`).
    pub const N_TOKENS: usize = 0;
    /// Results wanted (clamped to `topk.k_max`).
    pub const K: usize = 1;
    /// Codebook the query's LUT is built from (below `engine.heads`, else a request error).
    pub const HEAD: usize = 2;
    /// Ignored (written 0): keeps the offsets 8-byte aligned.
    pub const RESERVED: usize = 3;
    /// Byte offset of the code beats in the lane buffer, low and high word (beat aligned).
    pub const CODES: usize = 4;
    /// Byte offset of the results in the lane buffer, low and high word (8-byte aligned).
    pub const OUT: usize = 6;
}

/// The kernel's arguments for `engines` engines of `stripes` stripes each, in order.
pub fn kernel_args(engines: u32, stripes: u32) -> Vec<KernelArg> {
    use ArgKind::{Buffer, Scalar};
    let arg =
        |name: &str, id, kind, master: Option<&str>, c_type: &str, hls_type: &str, doc: &str| {
            KernelArg {
                name: name.into(),
                id,
                kind,
                // ap_ctrl_hs registers take 0x00..0x10; every argument gets an 8-byte slot.
                offset: ARGS_BASE + ARG_STRIDE * id,
                size: if kind == Buffer { 8 } else { 4 },
                master: master.map(String::from),
                c_type: c_type.into(),
                hls_type: hls_type.into(),
                doc: doc.into(),
            }
        };
    let mut args = vec![
        arg(
            "codebooks",
            0,
            Buffer,
            Some(JOB_MASTER),
            "int*",
            "const int32_t*",
            "engine.heads x M*K*SUB int32 centroid integers, [head][m][c][j]; read into every \
             engine only when load_codebook != 0 (they stay on chip)",
        ),
        arg(
            "jobs",
            1,
            Buffer,
            Some(JOB_MASTER),
            "int*",
            "const int32_t*",
            "n_jobs x (8 + head_dim) int32 words: n_tokens, k, head, 0, codes offset (lo, hi), \
             out offset (lo, hi), then the head_dim quantized query integers; job j runs on \
             engine j % engines, its offsets are bytes into that engine's lane buffers",
        ),
    ];
    let mut id = 2;
    for e in 0..engines {
        for st in 0..stripes {
            let master = engine_master(e, st, stripes);
            let doc = if st == 0 {
                format!(
                    "engine {e}'s memory: its jobs' packed code beats of stripe 0 (beats 0, \
                     {stripes}, ... of each job; manifest.packing, words_per_beat uint64 words \
                     per beat) and their results (1 + min(k, n_tokens) uint64 words: out[0] = \
                     count | shift << 32 | flags (bits 61..63), out[1 + i] = index | \
                     (uint32)score << 32)"
                )
            } else {
                format!(
                    "engine {e}'s code beats of stripe {st} (beats {st}, {stripes} + {st}, ... of \
                     each job, at the job's codes offset)"
                )
            };
            // Stripes past 0 are only read.
            let hls_type = if st == 0 {
                "uint64_t*"
            } else {
                "const uint64_t*"
            };
            args.push(arg(
                &engine_arg(e, st),
                id,
                Buffer,
                Some(&master),
                "unsigned long*",
                hls_type,
                &doc,
            ));
            id += 1;
        }
    }
    args.push(arg(
        "n_jobs",
        id,
        Scalar,
        None,
        "uint",
        "uint32_t",
        "jobs in the call (clamped to 65,535)",
    ));
    args.push(arg(
        "load_codebook",
        id + 1,
        Scalar,
        None,
        "uint",
        "uint32_t",
        "non-zero: read every head's codebook into the engines before the jobs",
    ));
    args
}

/// Bits of the AXI4 ID signals (AWID, BID, ARID, RID): the kernel issues one ID, 0.
pub const AXI_ID_BITS: u32 = 1;

/// Constant values of the AXI4 master outputs the kernel never varies.
pub mod axi {
    /// AxBURST: INCR.
    pub const BURST_INCR: u64 = 0b01;
    /// AxLOCK: normal access.
    pub const LOCK: u64 = 0;
    /// AxCACHE: normal non-cacheable bufferable (what Vitis HLS masters issue).
    pub const CACHE: u64 = 0b0011;
    /// AxPROT: unprivileged, secure, data.
    pub const PROT: u64 = 0b000;
    /// AxQOS: no QoS scheme.
    pub const QOS: u64 = 0;
    /// AxID: one ID for every transaction.
    pub const ID: u64 = 0;
    /// xRESP OKAY.
    pub const OKAY: u8 = 0b00;
    /// xRESP EXOKAY (never asked for: the kernel issues no exclusive access).
    pub const EXOKAY: u8 = 0b01;
    /// xRESP SLVERR: the slave signalled an error.
    pub const SLVERR: u8 = 0b10;
    /// xRESP DECERR: no slave at the address.
    pub const DECERR: u8 = 0b11;
    /// Whether a response code is an error (SLVERR or DECERR: bit 1 set).
    pub const fn is_error(resp: u8) -> bool {
        resp & 0b10 != 0
    }
}

/// Bits of the result header `out[0]` above `count | shift << 32`: what went wrong in a job.
pub mod out_flags {
    /// Bit 63: a read of the codebooks, the job or its codes answered SLVERR or DECERR (a
    /// codebook or job read error also marks every later job of the call); the results were
    /// computed from bad data, so none were written and `count` is 0.
    pub const READ_ERROR: u64 = 1 << 63;
    /// Bit 62: a write of the results answered SLVERR or DECERR; `count` and `shift` are
    /// right, but `out[1..=count]` may not hold the results.
    pub const WRITE_ERROR: u64 = 1 << 62;
    /// Both memory error bits.
    pub const MEMORY_ERROR: u64 = READ_ERROR | WRITE_ERROR;
    /// Bit 61: the job named a head at or above `engine.heads`; no results were written and
    /// `count` is 0.
    pub const REQUEST_ERROR: u64 = 1 << 61;
    /// Every flag bit.
    pub const ALL: u64 = MEMORY_ERROR | REQUEST_ERROR;
}

/// AXI4 master signals of an RTL kernel, the full set Vitis documents for `m_axi`
/// interfaces (`<interface>_<signal>`, lower case), as (signal, direction seen from the
/// kernel, width). Outputs the kernel never varies are constants ([`axi`]); SIZE is
/// log2 of the bytes per beat.
pub fn axi_master_signals(data_bits: u32) -> Vec<(&'static str, Direction, u32)> {
    use Direction::{Input as In, Output as Out};
    vec![
        ("awid", Out, AXI_ID_BITS),
        ("awaddr", Out, 64),
        ("awlen", Out, 8),
        ("awsize", Out, 3),
        ("awburst", Out, 2),
        ("awlock", Out, 1),
        ("awcache", Out, 4),
        ("awprot", Out, 3),
        ("awqos", Out, 4),
        ("awvalid", Out, 1),
        ("awready", In, 1),
        ("wdata", Out, data_bits),
        ("wstrb", Out, data_bits / 8),
        ("wlast", Out, 1),
        ("wvalid", Out, 1),
        ("wready", In, 1),
        ("bid", In, AXI_ID_BITS),
        ("bresp", In, 2),
        ("bvalid", In, 1),
        ("bready", Out, 1),
        ("arid", Out, AXI_ID_BITS),
        ("araddr", Out, 64),
        ("arlen", Out, 8),
        ("arsize", Out, 3),
        ("arburst", Out, 2),
        ("arlock", Out, 1),
        ("arcache", Out, 4),
        ("arprot", Out, 3),
        ("arqos", Out, 4),
        ("arvalid", Out, 1),
        ("arready", In, 1),
        ("rid", In, AXI_ID_BITS),
        ("rdata", In, data_bits),
        ("rresp", In, 2),
        ("rlast", In, 1),
        ("rvalid", In, 1),
        ("rready", Out, 1),
    ]
}

/// AXI4-Lite slave signals of the control interface, as (signal, direction seen from the
/// kernel, width).
pub fn axi_lite_signals() -> Vec<(&'static str, Direction, u32)> {
    use Direction::{Input as In, Output as Out};
    vec![
        ("awvalid", In, 1),
        ("awready", Out, 1),
        ("awaddr", In, CONTROL_ADDR_BITS),
        ("wvalid", In, 1),
        ("wready", Out, 1),
        ("wdata", In, 32),
        ("wstrb", In, 4),
        ("bvalid", Out, 1),
        ("bready", In, 1),
        ("bresp", Out, 2),
        ("arvalid", In, 1),
        ("arready", Out, 1),
        ("araddr", In, CONTROL_ADDR_BITS),
        ("rvalid", Out, 1),
        ("rready", In, 1),
        ("rdata", Out, 32),
        ("rresp", Out, 2),
    ]
}

/// Whether an AXI master signal belongs to the write side (AW, W, B channels).
pub fn is_write_signal(signal: &str) -> bool {
    signal.starts_with("aw") || signal.starts_with('w') || signal.starts_with('b')
}

impl KernelInterface {
    /// Every port of the RTL kernel, in declaration order.
    pub fn ports(&self) -> Vec<Port> {
        let port = |name: String, direction, width| Port {
            name,
            direction,
            width,
            registered: false,
            doc: String::new(),
        };
        let mut ports = vec![
            port("ap_clk".into(), Direction::Input, 1),
            port("ap_rst_n".into(), Direction::Input, 1),
            port("interrupt".into(), Direction::Output, 1),
        ];
        for (sig, dir, width) in axi_lite_signals() {
            ports.push(port(format!("{}_{sig}", self.control), dir, width));
        }
        for m in &self.masters {
            for (sig, dir, width) in axi_master_signals(m.data_bits) {
                ports.push(port(format!("{}_{sig}", m.name), dir, width));
            }
        }
        ports
    }
}
