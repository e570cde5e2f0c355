//! Views of the RTL kernel's Verilog: `kvpq_krnl` (top), its AXI4-Lite control slave and
//! the AXI4 burst reader and writer.

use askama::Template;

use super::{
    ap_ctrl, axi_master_signals, is_write_signal, master_writes, reg, KernelArg, KernelInterface,
};
use crate::emit::verilog::declaration;
use crate::emit::verilog::header::header;
use kvpq_core::interface::alveo::{axi, AXI_ID_BITS};
use kvpq_core::interface::Direction;
use kvpq_core::spec::{ceil_log2, unsigned_bits, Accelerator};

/// Verilog lines tying off the side of each master the kernel does not use.
fn tie_offs(iface: &KernelInterface) -> Vec<String> {
    let mut lines = Vec::new();
    for m in &iface.masters {
        let writes = master_writes(&m.name);
        let mut unused_inputs = Vec::new();
        for (sig, dir, width) in axi_master_signals(m.data_bits) {
            if is_write_signal(sig) == writes {
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

/// Template data of `kvpq_krnl.v`.
#[derive(Template)]
#[template(path = "alveo/rtl/kvpq_krnl.v")]
pub struct KernelTopV {
    header: String,
    ports: Vec<String>,
    args: Vec<KernelArg>,
    tie_offs: Vec<String>,
    sub: u32,
    head_w: u32,
    cbb: u32,
    head_dim: u32,
    qb: u32,
    cb_words: u32,
    tpb: u32,
    beat: u32,
    code_axi: u32,
    code_size_log2: u32,
    count_w: u32,
    k_w: u32,
    index_w: u32,
    score_w: u32,
    res_lanes: u32,
    res_n_w: u32,
    shift_w: u32,
    max_tokens: u32,
    k_max: u32,
}

impl KernelTopV {
    /// Derives the template data.
    pub fn new(acc: &Accelerator, iface: &KernelInterface) -> Self {
        let c = acc.config();
        let d = acc.derived();
        let w = &d.widths;
        let code_bits = iface
            .master("m_axi_gmem1")
            .map_or(c.engine.beat_bits, |m| m.data_bits);
        Self {
            header: header(acc, "kvpq_krnl"),
            ports: iface.ports().iter().map(|p| declaration(p, 8)).collect(),
            args: iface.args.clone(),
            tie_offs: tie_offs(iface),
            sub: w.sub_dim,
            head_w: w.head_bits,
            cbb: w.centroid_bits,
            head_dim: c.pq.head_dim,
            qb: w.query_bits,
            cb_words: c.pq.m * w.codebook_size * w.sub_dim,
            tpb: d.layout.tokens_per_beat,
            beat: c.engine.beat_bits,
            code_axi: code_bits,
            code_size_log2: ceil_log2(u64::from(code_bits / 8)),
            count_w: w.count_bits,
            k_w: w.k_bits,
            index_w: w.index_bits,
            score_w: w.score_bits,
            res_lanes: w.result_lanes,
            res_n_w: unsigned_bits(u64::from(w.result_lanes)),
            shift_w: w.shift_bits,
            max_tokens: c.engine.max_tokens,
            k_max: c.topk.k_max,
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
        file("kvpq_krnl", KernelTopV::new(acc, iface).render())?,
    ])
}
