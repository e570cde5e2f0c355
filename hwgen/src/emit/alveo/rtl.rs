//! Views of the RTL kernel's Verilog: `kvpq_krnl` (top), its AXI4-Lite control slave and
//! the AXI4 burst reader and writer.

use askama::Template;

use super::{KernelArg, KernelInterface, CONTROL};
use crate::emit::verilog::header::header;
use crate::spec::{ceil_log2, Accelerator};

/// Direction of a kernel port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortDir {
    /// Driven by the shell.
    In,
    /// Driven by the kernel.
    Out,
}

/// One port of `kvpq_krnl`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelPort {
    /// Verilog name, `<interface>_<signal>` for AXI ports.
    pub name: String,
    /// Direction.
    pub dir: PortDir,
    /// Width in bits.
    pub width: u32,
}

impl KernelPort {
    fn declaration(&self) -> String {
        let dir = match self.dir {
            PortDir::In => "input  wire",
            PortDir::Out => "output wire",
        };
        let range = if self.width > 1 {
            format!("[{}:0]", self.width - 1)
        } else {
            String::new()
        };
        format!("{dir} {range:<8} {}", self.name)
    }
}

/// AXI4 master signals Vitis requires of an RTL kernel, as (signal, direction, width).
pub fn axi_master_signals(data_bits: u32) -> Vec<(&'static str, PortDir, u32)> {
    use PortDir::{In, Out};
    vec![
        ("awvalid", Out, 1),
        ("awready", In, 1),
        ("awaddr", Out, 64),
        ("awlen", Out, 8),
        ("wvalid", Out, 1),
        ("wready", In, 1),
        ("wdata", Out, data_bits),
        ("wstrb", Out, data_bits / 8),
        ("wlast", Out, 1),
        ("bvalid", In, 1),
        ("bready", Out, 1),
        ("arvalid", Out, 1),
        ("arready", In, 1),
        ("araddr", Out, 64),
        ("arlen", Out, 8),
        ("rvalid", In, 1),
        ("rready", Out, 1),
        ("rdata", In, data_bits),
        ("rlast", In, 1),
    ]
}

/// AXI4-Lite slave signals of the control interface, as (signal, direction, width).
pub fn axi_lite_signals() -> Vec<(&'static str, PortDir, u32)> {
    use PortDir::{In, Out};
    vec![
        ("awvalid", In, 1),
        ("awready", Out, 1),
        ("awaddr", In, 12),
        ("wvalid", In, 1),
        ("wready", Out, 1),
        ("wdata", In, 32),
        ("wstrb", In, 4),
        ("bvalid", Out, 1),
        ("bready", In, 1),
        ("bresp", Out, 2),
        ("arvalid", In, 1),
        ("arready", Out, 1),
        ("araddr", In, 12),
        ("rvalid", Out, 1),
        ("rready", In, 1),
        ("rdata", Out, 32),
        ("rresp", Out, 2),
    ]
}

/// Every port of `kvpq_krnl`, in declaration order.
pub fn kernel_ports(iface: &KernelInterface) -> Vec<KernelPort> {
    let port = |name: String, dir, width| KernelPort { name, dir, width };
    let mut ports = vec![
        port("ap_clk".into(), PortDir::In, 1),
        port("ap_rst_n".into(), PortDir::In, 1),
        port("interrupt".into(), PortDir::Out, 1),
    ];
    for (sig, dir, width) in axi_lite_signals() {
        ports.push(port(format!("{CONTROL}_{sig}"), dir, width));
    }
    for m in &iface.masters {
        for (sig, dir, width) in axi_master_signals(m.data_bits) {
            ports.push(port(format!("{}_{sig}", m.name), dir, width));
        }
    }
    ports
}

/// Whether an AXI master signal belongs to the write side (AW, W, B channels).
pub fn is_write_signal(signal: &str) -> bool {
    signal.starts_with("aw") || signal.starts_with('w') || signal.starts_with('b')
}

/// Whether the kernel writes through `master` (gmem2) rather than reads (gmem0, gmem1).
pub fn master_writes(master: &str) -> bool {
    master == "m_axi_gmem2"
}

/// Verilog lines tying off the side of each master the kernel does not use.
fn tie_offs(iface: &KernelInterface) -> Vec<String> {
    let mut lines = Vec::new();
    for m in &iface.masters {
        let writes = master_writes(m.name);
        let mut unused_inputs = Vec::new();
        for (sig, dir, width) in axi_master_signals(m.data_bits) {
            if is_write_signal(sig) == writes {
                continue;
            }
            let name = format!("{}_{sig}", m.name);
            match dir {
                // Ready outputs accept anything; everything else stays idle.
                PortDir::Out => lines.push(format!(
                    "assign {name} = {width}'d{};",
                    u8::from(sig.ends_with("ready"))
                )),
                PortDir::In => unused_inputs.push(name),
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
#[template(path = "verilog/kvpq_krnl.v")]
pub struct KernelTopV {
    header: String,
    ports: Vec<String>,
    args: Vec<KernelArg>,
    tie_offs: Vec<String>,
    sub: u32,
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
            ports: kernel_ports(iface)
                .iter()
                .map(KernelPort::declaration)
                .collect(),
            args: iface.args.clone(),
            tie_offs: tie_offs(iface),
            sub: w.sub_dim,
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
            shift_w: w.shift_bits,
            max_tokens: c.engine.max_tokens,
            k_max: c.topk.k_max,
        }
    }
}

/// Template data of `kvpq_axi_lite_ctrl.v`.
#[derive(Template)]
#[template(path = "verilog/kvpq_axi_lite_ctrl.v")]
pub struct ControlV {
    header: String,
    args: Vec<KernelArg>,
}

impl ControlV {
    /// Derives the template data.
    pub fn new(acc: &Accelerator, iface: &KernelInterface) -> Self {
        Self {
            header: header(acc, "kvpq_axi_lite_ctrl"),
            args: iface.args.clone(),
        }
    }
}

/// Template data of `kvpq_axi_reader.v`.
#[derive(Template)]
#[template(path = "verilog/kvpq_axi_reader.v")]
pub struct ReaderV {
    header: String,
}

/// Template data of `kvpq_axi_writer.v`.
#[derive(Template)]
#[template(path = "verilog/kvpq_axi_writer.v")]
pub struct WriterV {
    header: String,
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
            }
            .render(),
        )?,
        file(
            "kvpq_axi_writer",
            WriterV {
                header: header(acc, "kvpq_axi_writer"),
            }
            .render(),
        )?,
        file("kvpq_axi_lite_ctrl", ControlV::new(acc, iface).render())?,
        file("kvpq_krnl", KernelTopV::new(acc, iface).render())?,
    ])
}
