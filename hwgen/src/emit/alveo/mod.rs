//! The Alveo kernel: one interface table (AXI ports, kernel arguments, register map) from
//! which the RTL kernel, `kernel.xml`, the connectivity config, the HLS pragmas and the
//! drivers are all rendered, so they agree by construction.

pub mod rtl;
pub mod vitis;

use serde::Serialize;

use crate::spec::{Accelerator, Platform};

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

/// One AXI4 master of the kernel; each maps to one HBM pseudo-channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AxiMaster {
    /// Interface name, e.g. `m_axi_gmem0` (ports are `<name>_<signal>`).
    pub name: &'static str,
    /// HLS bundle name (`gmem0`).
    pub bundle: &'static str,
    /// Data width in bits.
    pub data_bits: u32,
    /// HBM pseudo-channel the connectivity config maps it to.
    pub hbm_channel: u32,
    /// What travels on it.
    pub doc: &'static str,
}

/// How an argument is passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ArgKind {
    /// A device buffer: a 64-bit address register; the data moves over `master`.
    Buffer,
    /// A 32-bit scalar register.
    Scalar,
}

/// One kernel argument, in XRT's argument order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KernelArg {
    /// Argument name (also the register name).
    pub name: &'static str,
    /// Position in `xrtRunSetArg` / `kernel.xml`.
    pub id: u32,
    /// Buffer or scalar.
    pub kind: ArgKind,
    /// Byte offset of its register in the control space.
    pub offset: u32,
    /// Register bytes: 8 for buffers, 4 for scalars.
    pub size: u32,
    /// AXI master of a buffer (`None` for scalars).
    pub master: Option<&'static str>,
    /// C type in `kernel.xml`.
    pub c_type: &'static str,
    /// C++ type in the HLS kernel's signature.
    pub hls_type: &'static str,
    /// Layout of the buffer or meaning of the scalar.
    pub doc: &'static str,
}

/// The kernel interface of one accelerator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KernelInterface {
    /// Platform it was generated for.
    pub platform: Platform,
    /// Vitis platform (shell) name the Makefile defaults to.
    pub vitis_platform: &'static str,
    /// Vivado part of the packaging project.
    pub part: &'static str,
    /// RTL kernel name.
    pub rtl_kernel: &'static str,
    /// HLS kernel name.
    pub hls_kernel: &'static str,
    /// AXI4-Lite control interface (ap_ctrl_hs).
    pub control: &'static str,
    /// AXI4 masters.
    pub masters: Vec<AxiMaster>,
    /// Arguments, in order.
    pub args: Vec<KernelArg>,
    /// Control-register layout: `0x00` ap_ctrl (bit 0 ap_start, 1 ap_done (clear on read),
    /// 2 ap_idle, 3 ap_ready (clear on read)), `0x04` global interrupt enable, `0x08` IP
    /// interrupt enable (bit 0 done, bit 1 ready), `0x0c` IP interrupt status (write 1 to
    /// toggle); then the arguments.
    pub control_doc: &'static str,
    /// Layout of `out`.
    pub out_doc: &'static str,
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

/// Verilog files the RTL kernel is packaged from, leaves first: every generated file but the
/// open-board top.
pub fn kernel_rtl_files(design: &crate::emit::Design) -> Vec<String> {
    design
        .sources
        .iter()
        .filter(|f| f.module != "kvpq_board_top")
        .map(|f| f.file_name.clone())
        .collect()
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
        let args = kernel_args();
        Ok(Self {
            platform,
            vitis_platform,
            part,
            rtl_kernel: RTL_KERNEL,
            hls_kernel: HLS_KERNEL,
            control: CONTROL,
            masters,
            args,
            control_doc: "0x00 ap_ctrl: bit 0 ap_start, bit 1 ap_done (clear on read), bit 2 \
                          ap_idle, bit 3 ap_ready (clear on read); 0x04 global interrupt \
                          enable; 0x08 interrupt enable (bit 0 done, bit 1 ready); 0x0c \
                          interrupt status (write 1 to toggle); arguments from 0x10, 8 bytes \
                          apart (buffers: low word, then high word)",
            out_doc: "out[0] = count | shift << 32; out[1 + i] = index | (uint32)score << 32 for \
                      i < count, best first (DESIGN.md section 3 order)",
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

/// The AXI4 masters of the kernel (RTL and HLS alike) for `acc`.
pub fn kernel_masters(acc: &Accelerator) -> Vec<AxiMaster> {
    let beat = acc.config().engine.beat_bits;
    vec![
        AxiMaster {
            name: "m_axi_gmem0",
            bundle: "gmem0",
            data_bits: 32,
            hbm_channel: 0,
            doc: "reads the codebook and the query (32-bit words)",
        },
        AxiMaster {
            name: "m_axi_gmem1",
            bundle: "gmem1",
            // Beats are stored as whole 64-bit words (manifest.packing), so a 32-bit beat
            // travels as one 64-bit transfer whose high half is padding.
            data_bits: beat.max(64),
            hbm_channel: 1,
            doc: "reads the packed code beats, one beat per transfer",
        },
        AxiMaster {
            name: "m_axi_gmem2",
            bundle: "gmem2",
            data_bits: 64,
            hbm_channel: 2,
            doc: "writes the results (64-bit words)",
        },
    ]
}

/// The kernel's arguments, in order (the same for every accelerator; sizes live in the
/// manifest).
pub fn kernel_args() -> Vec<KernelArg> {
    use ArgKind::{Buffer, Scalar};
    let arg = |name, id, kind, master, c_type, hls_type, doc| KernelArg {
        name,
        id,
        kind,
        // ap_ctrl_hs registers take 0x00..0x10; every argument gets an 8-byte slot.
        offset: 0x10 + 8 * id,
        size: if kind == Buffer { 8 } else { 4 },
        master,
        c_type,
        hls_type,
        doc,
    };
    vec![
        arg(
            "codebook",
            0,
            Buffer,
            Some("m_axi_gmem0"),
            "int*",
            "const int32_t*",
            "M*K*SUB int32 centroid integers, [m][c][j]; read only when load_codebook != 0",
        ),
        arg(
            "query",
            1,
            Buffer,
            Some("m_axi_gmem0"),
            "int*",
            "const int32_t*",
            "head_dim int32 quantized query integers",
        ),
        arg(
            "codes",
            2,
            Buffer,
            Some("m_axi_gmem1"),
            "unsigned long*",
            "const uint64_t*",
            "packed code beats as manifest.packing lays them out (words_per_beat uint64 words \
             per beat), ceil(n_tokens / tokens_per_beat) beats",
        ),
        arg(
            "out",
            3,
            Buffer,
            Some("m_axi_gmem2"),
            "unsigned long*",
            "uint64_t*",
            "1 + k_max uint64 words: out[0] = count | shift << 32, out[1 + i] = index | \
             (uint32)score << 32",
        ),
        arg(
            "n_tokens",
            4,
            Scalar,
            None,
            "uint",
            "uint32_t",
            "tokens to scan (clamped to engine.max_tokens)",
        ),
        arg(
            "k",
            5,
            Scalar,
            None,
            "uint",
            "uint32_t",
            "results wanted (clamped to topk.k_max)",
        ),
        arg(
            "load_codebook",
            6,
            Scalar,
            None,
            "uint",
            "uint32_t",
            "non-zero: read the codebook into the engine before the query (once per head)",
        ),
    ]
}
