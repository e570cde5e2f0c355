//! Vitis HLS C++ of the engine: a parameter header, the kernel, and a C simulation harness
//! that compiles with g++ (the kernel uses plain fixed-width integers).

use askama::Template;

use super::verilog::SourceFile;
use super::EmitError;
use kvpq_core::interface::alveo::{kernel_args, kernel_masters};
use kvpq_core::spec::Accelerator;

/// Folder (inside the design's) the HLS files are written into.
pub const DIR: &str = "hls";

/// Numbers every HLS file is rendered from.
#[derive(Debug, Clone)]
pub struct HlsParams {
    name: String,
    version: &'static str,
    head_dim: u32,
    m: u32,
    sub: u32,
    code_bits: u32,
    k: u32,
    query_bits: u32,
    centroid_bits: u32,
    lut_bits: u32,
    score_bits: u32,
    lanes: u32,
    beat_bits: u32,
    words_per_beat: usize,
    tokens_per_beat: u32,
    max_tokens: u32,
    k_max: u32,
    radix_bits: u32,
    /// Initiation interval of the scan per beat: tokens_per_beat / lanes.
    beat_ii: u32,
    /// Kernel arguments in order (the RTL kernel's), as C++ declarations with their doc.
    args: Vec<HlsArg>,
    /// `#pragma HLS INTERFACE` bodies, one per argument.
    pragmas: Vec<String>,
}

/// One argument of the HLS kernel's signature.
#[derive(Debug, Clone)]
pub struct HlsArg {
    c_decl: String,
    doc: String,
}

impl HlsParams {
    /// Derives the parameters from a validated accelerator.
    pub fn new(acc: &Accelerator) -> Self {
        let c = acc.config();
        let d = acc.derived();
        let w = &d.widths;
        let args = kernel_args();
        let masters = kernel_masters(acc);
        // Elements each buffer holds at most (C simulation and co-simulation sizes).
        let depth = |name: &str| match name {
            "codebook" => Some((c.pq.m * w.codebook_size * w.sub_dim) as usize),
            "query" => Some(c.pq.head_dim as usize),
            "codes" => {
                Some(d.layout.beats_for(c.engine.max_tokens as usize) * d.layout.words_per_beat())
            }
            "out" => Some(1 + c.topk.k_max as usize),
            _ => None,
        };
        Self {
            name: c.name.clone(),
            version: env!("CARGO_PKG_VERSION"),
            head_dim: c.pq.head_dim,
            m: c.pq.m,
            sub: w.sub_dim,
            code_bits: c.pq.code_bits,
            k: w.codebook_size,
            query_bits: w.query_bits,
            centroid_bits: w.centroid_bits,
            lut_bits: w.lut_bits,
            score_bits: w.score_bits,
            lanes: c.scanner.lanes,
            beat_bits: c.engine.beat_bits,
            words_per_beat: d.layout.words_per_beat(),
            tokens_per_beat: d.layout.tokens_per_beat,
            max_tokens: c.engine.max_tokens,
            k_max: c.topk.k_max,
            radix_bits: d.cycles.radix_bits,
            beat_ii: d.layout.tokens_per_beat.div_ceil(c.scanner.lanes),
            args: args
                .iter()
                .map(|a| HlsArg {
                    c_decl: format!("{} {}", a.hls_type, a.name),
                    doc: a.doc.clone(),
                })
                .collect(),
            pragmas: args
                .iter()
                .map(|a| match (a.master.as_deref(), depth(&a.name)) {
                    (Some(master), Some(depth)) => {
                        let bundle = masters
                            .iter()
                            .find(|m| m.name == master)
                            .map_or(master, |m| m.bundle.as_str());
                        format!(
                            "m_axi port={} offset=slave bundle={bundle} depth={depth}",
                            a.name
                        )
                    }
                    _ => format!("s_axilite port={}", a.name),
                })
                .collect(),
        }
    }
}

#[derive(Template)]
#[template(path = "hls/kvpq_params.h")]
struct ParamsH<'a> {
    p: &'a HlsParams,
}

#[derive(Template)]
#[template(path = "hls/pq_topk_kernel.cpp")]
struct KernelCpp<'a> {
    p: &'a HlsParams,
}

#[derive(Template)]
#[template(path = "hls/csim_main.cpp")]
struct CsimCpp<'a> {
    p: &'a HlsParams,
}

fn file(
    module: &str,
    name: &str,
    text: Result<String, askama::Error>,
) -> Result<SourceFile, askama::Error> {
    Ok(SourceFile {
        module: module.to_string(),
        file_name: name.to_string(),
        text: text? + "\n",
    })
}

/// Renders the HLS kernel, its parameter header and the C simulation harness.
pub fn render(acc: &Accelerator) -> Result<Vec<SourceFile>, askama::Error> {
    let p = HlsParams::new(acc);
    Ok(vec![
        file("kvpq_params", "kvpq_params.h", ParamsH { p: &p }.render())?,
        file(
            "pq_topk_kernel",
            "pq_topk_kernel.cpp",
            KernelCpp { p: &p }.render(),
        )?,
        file("csim_main", "csim_main.cpp", CsimCpp { p: &p }.render())?,
    ])
}

/// [`render`]'s files as `(path inside the design folder, text)`, under [`DIR`].
pub fn files(acc: &Accelerator) -> Result<Vec<(String, String)>, EmitError> {
    Ok(render(acc)?
        .into_iter()
        .map(|f| (format!("{DIR}/{}", f.file_name), f.text))
        .collect())
}
