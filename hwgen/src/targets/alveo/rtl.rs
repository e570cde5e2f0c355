//! Views of the RTL kernel's Verilog: `kvpq_krnl` (top), its AXI4-Lite control slave and
//! the AXI4 burst reader and writer.

use askama::Template;

use super::{
    ap_ctrl, axi_master_signals, code_stripes, engine_arg, engine_master, is_write_signal, job,
    job_words, reg, KernelArg, KernelInterface, JOB_HEADER_WORDS, JOB_MASTER, MAX_JOBS,
};
use crate::emit::verilog::declaration;
use crate::emit::verilog::header::header;
use kvpq_core::interface::alveo::{axi, AXI_ID_BITS};
use kvpq_core::interface::{Direction, Port};
use kvpq_core::spec::{ceil_log2, unsigned_bits, Accelerator};

/// Verilog lines tying off the write side of each master the kernel only reads through
/// (the job reader and the code stripes past 0); every master reads.
fn tie_offs(iface: &KernelInterface) -> Vec<String> {
    let mut lines = Vec::new();
    for m in iface.masters.iter().filter(|m| !m.writes) {
        let mut unused_inputs = Vec::new();
        for (sig, dir, width) in axi_master_signals(m.data_bits) {
            if !is_write_signal(sig) {
                continue;
            }
            let name = format!("{}_{sig}", m.name);
            match dir {
                // Ready outputs accept anything; everything else stays idle.
                Direction::Output => lines.push(format!(
                    "assign {name} = {width}'d{};",
                    u8::from(sig.ends_with("ready"))
                )),
                Direction::Input => unused_inputs.push(name),
            }
        }
        lines.push(format!(
            "wire unused_{}_inputs = &{{ {} }};",
            m.bundle,
            unused_inputs.join(", ")
        ));
    }
    lines
}

/// One engine's lane in the kernel top: its number and its masters' connections, as (lane
/// port without `m_`, kernel port) pairs.
pub struct LaneInst {
    e: u32,
    bases: String,
    conns: Vec<(String, String)>,
}

/// The lane's name for AXI signal `sig` of stripe `st`: `awaddr` for stripe 0 (port
/// `m_awaddr`), `s1_araddr` for stripe 1 (port `m_s1_araddr`).
fn lane_port(st: u32, sig: &str) -> String {
    if st == 0 {
        sig.to_string()
    } else {
        format!("s{st}_{sig}")
    }
}

/// `(signal, port)` pairs connecting a unit's `m_<signal>` ports to `master`'s ports, for
/// the signals of the sides it uses.
fn master_conns(
    master: &str,
    data_bits: u32,
    reads: bool,
    writes: bool,
) -> Vec<(&'static str, String)> {
    axi_master_signals(data_bits)
        .into_iter()
        .filter(|(sig, _, _)| if is_write_signal(sig) { writes } else { reads })
        .map(|(sig, _, _)| (sig, format!("{master}_{sig}")))
        .collect()
}

/// Template data of `kvpq_krnl.v`.
#[derive(Template)]
#[template(path = "alveo/rtl/kvpq_krnl.v")]
pub struct KernelTopV {
    header: String,
    ports: Vec<String>,
    args: Vec<KernelArg>,
    tie_offs: Vec<String>,
    rd_conns: Vec<(&'static str, String)>,
    lanes: Vec<LaneInst>,
    engines: u32,
    eng_w: u32,
    sub: u32,
    head_w: u32,
    cbb: u32,
    head_dim: u32,
    qb: u32,
    heads: u32,
    cents: u32,
    cb_all: u32,
    job_words: u32,
    job_header: u32,
    w_n: usize,
    w_k: usize,
    w_head: usize,
    w_codes: usize,
    w_out: usize,
    tpb: u32,
    count_w: u32,
    k_w: u32,
    max_tokens: u32,
    k_max: u32,
    max_jobs: u32,
}

impl KernelTopV {
    /// Derives the template data.
    pub fn new(acc: &Accelerator, iface: &KernelInterface) -> Self {
        let c = acc.config();
        let d = acc.derived();
        let w = &d.widths;
        let engines = c.target.engines();
        let stripes = code_stripes(c);
        let cents = c.pq.m * w.codebook_size;
        Self {
            header: header(acc, "kvpq_krnl"),
            ports: iface.ports().iter().map(|p| declaration(p, 8)).collect(),
            args: iface.args.clone(),
            tie_offs: tie_offs(iface),
            rd_conns: master_conns(JOB_MASTER, 32, true, false),
            lanes: (0..engines)
                .map(|e| LaneInst {
                    e,
                    // Stripe 0's buffer lowest.
                    bases: format!(
                        "{{ {} }}",
                        (0..stripes)
                            .rev()
                            .map(|st| format!("arg_{}", engine_arg(e, st)))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    conns: (0..stripes)
                        .flat_map(|st| {
                            let name = engine_master(e, st, stripes);
                            let bits = iface.master(&name).map_or(64, |m| m.data_bits);
                            // Stripe 0 also writes the results; the others only read.
                            master_conns(&name, bits, true, st == 0)
                                .into_iter()
                                .map(move |(sig, port)| (lane_port(st, sig), port))
                        })
                        .collect(),
                })
                .collect(),
            engines,
            eng_w: ceil_log2(u64::from(engines)).max(1),
            sub: w.sub_dim,
            head_w: w.head_bits,
            cbb: w.centroid_bits,
            head_dim: c.pq.head_dim,
            qb: w.query_bits,
            heads: c.engine.heads(),
            cents,
            cb_all: c.engine.heads() * cents * w.sub_dim,
            job_words: job_words(c.pq.head_dim),
            job_header: JOB_HEADER_WORDS,
            w_n: job::N_TOKENS,
            w_k: job::K,
            w_head: job::HEAD,
            w_codes: job::CODES,
            w_out: job::OUT,
            tpb: d.layout.tokens_per_beat,
            count_w: w.count_bits,
            k_w: w.k_bits,
            max_tokens: c.engine.max_tokens,
            k_max: c.topk.k_max,
            max_jobs: MAX_JOBS,
        }
    }
}

/// One stripe's reader in the lane: its number and its ports' prefix after `m_`.
pub struct StripeInst {
    n: u32,
    prefix: String,
}

/// Template data of `kvpq_krnl_lane.v`.
#[derive(Template)]
#[template(path = "alveo/rtl/kvpq_krnl_lane.v")]
pub struct LaneV {
    header: String,
    master_ports: Vec<String>,
    stripe_list: Vec<StripeInst>,
    read_sigs: Vec<&'static str>,
    stripes: u32,
    stripe_w: u32,
    stripe_log2: u32,
    sub: u32,
    cbb: u32,
    head_w: u32,
    head_dim: u32,
    qb: u32,
    count_w: u32,
    k_w: u32,
    index_w: u32,
    score_w: u32,
    shift_w: u32,
    beat: u32,
    axi_w: u32,
    axi_size_log2: u32,
    slots: u32,
    slot_w: u32,
    slot_log2: u32,
    word_pad: String,
    strb_pad: String,
    win_pad: String,
    in_pad: String,
    win_strb_pad: String,
    in_strb_pad: String,
    res_lanes: u32,
    res_n_w: u32,
}

impl LaneV {
    /// Derives the template data; every engine's master has the same width.
    pub fn new(acc: &Accelerator, iface: &KernelInterface) -> Self {
        let c = acc.config();
        let w = &acc.derived().widths;
        let axi_w = iface
            .masters
            .iter()
            .find(|m| m.name != JOB_MASTER)
            .map_or(c.engine.beat_bits.max(64), |m| m.data_bits);
        let slots = axi_w / 64;
        let slot_log2 = ceil_log2(u64::from(slots));
        let pad = |bits: u32| {
            if bits == 0 {
                String::new()
            } else {
                format!("{bits}'d0, ")
            }
        };
        let stripes = code_stripes(c);
        // Stripe 0 reads and writes; stripes 1.. only read.
        let master_ports = (0..stripes)
            .flat_map(|st| {
                axi_master_signals(axi_w)
                    .into_iter()
                    .filter(move |(sig, _, _)| st == 0 || !is_write_signal(sig))
                    .map(move |(sig, direction, width)| {
                        declaration(
                            &Port {
                                name: format!("m_{}", lane_port(st, sig)),
                                direction,
                                width,
                                registered: false,
                                doc: String::new(),
                            },
                            8,
                        )
                    })
            })
            .collect();
        Self {
            header: header(acc, "kvpq_krnl_lane"),
            master_ports,
            stripe_list: (0..stripes)
                .map(|n| StripeInst {
                    n,
                    prefix: lane_port(n, ""),
                })
                .collect(),
            read_sigs: axi_master_signals(axi_w)
                .into_iter()
                .filter(|(sig, _, _)| !is_write_signal(sig))
                .map(|(sig, _, _)| sig)
                .collect(),
            stripes,
            stripe_w: ceil_log2(u64::from(stripes)).max(1),
            stripe_log2: ceil_log2(u64::from(stripes)),
            sub: w.sub_dim,
            cbb: w.centroid_bits,
            head_w: w.head_bits,
            head_dim: c.pq.head_dim,
            qb: w.query_bits,
            count_w: w.count_bits,
            k_w: w.k_bits,
            index_w: w.index_bits,
            score_w: w.score_bits,
            shift_w: w.shift_bits,
            beat: c.engine.beat_bits,
            axi_w,
            axi_size_log2: ceil_log2(u64::from(axi_w / 8)),
            slots,
            slot_w: slot_log2.max(1),
            slot_log2,
            word_pad: pad(axi_w - 64),
            strb_pad: pad(axi_w / 8 - 8),
            // The packer's window is two master beats; the engine's beat is at most one.
            win_pad: pad(axi_w),
            in_pad: pad(2 * axi_w - 64 * w.result_lanes),
            win_strb_pad: pad(axi_w / 8),
            in_strb_pad: pad(2 * axi_w / 8 - 8 * w.result_lanes),
            res_lanes: w.result_lanes,
            res_n_w: unsigned_bits(u64::from(w.result_lanes)),
        }
    }
}

/// The ap_ctrl register as the control slave reads it back: each signal at its bit of
/// `kvpq_core::interface::alveo::ap_ctrl`, zeros above, e.g.
/// `{28'd0, ready_q, ap_idle, done_q, ap_start}`.
fn ctrl_read() -> String {
    let signals = [
        (ap_ctrl::START, "ap_start"),
        (ap_ctrl::DONE, "done_q"),
        (ap_ctrl::IDLE, "ap_idle"),
        (ap_ctrl::READY, "ready_q"),
    ];
    let mut parts = Vec::new();
    let mut zeros = 0;
    for bit in (0..32).rev() {
        match signals.iter().find(|(mask, _)| *mask == 1 << bit) {
            Some((_, name)) => {
                if zeros > 0 {
                    parts.push(format!("{zeros}'d0"));
                    zeros = 0;
                }
                parts.push(name.to_string());
            }
            None => zeros += 1,
        }
    }
    if zeros > 0 {
        parts.push(format!("{zeros}'d0"));
    }
    format!("{{{}}}", parts.join(", "))
}

/// Template data of `kvpq_axi_lite_ctrl.v`.
#[derive(Template)]
#[template(path = "alveo/rtl/kvpq_axi_lite_ctrl.v")]
pub struct ControlV {
    header: String,
    args: Vec<KernelArg>,
    reg_ctrl: u32,
    reg_gie: u32,
    reg_ier: u32,
    reg_isr: u32,
    start_bit: u32,
    ctrl_read: String,
}

impl ControlV {
    /// Derives the template data.
    pub fn new(acc: &Accelerator, iface: &KernelInterface) -> Self {
        Self {
            header: header(acc, "kvpq_axi_lite_ctrl"),
            args: iface.args.clone(),
            reg_ctrl: reg::CTRL,
            reg_gie: reg::GIE,
            reg_ier: reg::IER,
            reg_isr: reg::ISR,
            start_bit: ap_ctrl::START.trailing_zeros(),
            ctrl_read: ctrl_read(),
        }
    }
}

/// The AXI4 address-channel attributes the reader and the writer never vary, as Verilog
/// literals of `kvpq_core::interface::alveo::axi` (which the simulator's memory checks).
pub struct AxiFixed {
    id: String,
    burst: String,
    lock: String,
    cache: String,
    prot: String,
    qos: String,
}

impl AxiFixed {
    fn new() -> Self {
        let lit = |bits: u32, v: u64| format!("{bits}'b{v:0w$b}", w = bits as usize);
        Self {
            id: lit(AXI_ID_BITS, axi::ID),
            burst: lit(2, axi::BURST_INCR),
            lock: lit(1, axi::LOCK),
            cache: lit(4, axi::CACHE),
            prot: lit(3, axi::PROT),
            qos: lit(4, axi::QOS),
        }
    }
}

/// Template data of `kvpq_axi_reader.v`.
#[derive(Template)]
#[template(path = "alveo/rtl/kvpq_axi_reader.v")]
pub struct ReaderV {
    header: String,
    ax: AxiFixed,
}

/// Template data of `kvpq_axi_writer.v`.
#[derive(Template)]
#[template(path = "alveo/rtl/kvpq_axi_writer.v")]
pub struct WriterV {
    header: String,
    ax: AxiFixed,
}

/// Renders the RTL kernel's modules, leaves first (the engine's files come before them).
pub fn render(
    acc: &Accelerator,
    iface: &KernelInterface,
) -> Result<Vec<crate::emit::verilog::SourceFile>, askama::Error> {
    use crate::emit::verilog::SourceFile;
    let file = |module: &str, text: Result<String, askama::Error>| {
        Ok::<_, askama::Error>(SourceFile {
            module: module.to_string(),
            file_name: format!("{module}.v"),
            text: text? + "\n",
        })
    };
    Ok(vec![
        file(
            "kvpq_axi_reader",
            ReaderV {
                header: header(acc, "kvpq_axi_reader"),
                ax: AxiFixed::new(),
            }
            .render(),
        )?,
        file(
            "kvpq_axi_writer",
            WriterV {
                header: header(acc, "kvpq_axi_writer"),
                ax: AxiFixed::new(),
            }
            .render(),
        )?,
        file("kvpq_axi_lite_ctrl", ControlV::new(acc, iface).render())?,
        file("kvpq_krnl_lane", LaneV::new(acc, iface).render())?,
        file("kvpq_krnl", KernelTopV::new(acc, iface).render())?,
    ])
}
