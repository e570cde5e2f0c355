//! Vitis HLS C++ of the engine: a parameter header, the kernel, and a C simulation harness
//! that compiles with g++ (the kernel uses plain fixed-width integers).

use askama::Template;

use super::verilog::SourceFile;
use super::EmitError;
use kvpq_core::interface::alveo::{
    code_stripes, engine_arg, job, job_words, kernel_args, kernel_masters, out_flags,
    JOB_HEADER_WORDS, MAX_JOBS,
};
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
    /// Codebooks held on chip (`engine.heads`).
    heads: u32,
    /// Int32 words of one codebook: M * K * SUB.
    cb_words: u32,
    /// Engines of the kernel (`target.engines`): `stripes` lane buffers each.
    engines: u32,
    /// Buffers (and masters) an engine's code beats are striped over (`alveo::code_stripes`).
    stripes: u32,
    /// Stripe 0 of each engine, `lane0` .. `lane{E-1}`: it also takes the results.
    lane_names: Vec<String>,
    /// `stripe_names[s][e]`: the buffer of stripe `s` of engine `e`.
    stripe_names: Vec<Vec<String>>,
    /// Every engine buffer in argument order (engine by engine, stripes within).
    code_names: Vec<String>,
    /// Most jobs per call.
    max_jobs: u32,
    /// Int32 words per job, header included.
    job_words: u32,
    /// Int32 words of a job's header (before its query).
    job_header_words: u32,
    /// Word positions inside a job (`alveo::job`): n_tokens, k, head, codes and out offsets.
    job_n_tokens: usize,
    job_k: usize,
    job_head: usize,
    job_codes: usize,
    job_out: usize,
    /// The request error flag of `out[0]`, as a C hex literal without its suffix.
    request_error: String,
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
        let engines = c.target.engines();
        let stripes = code_stripes(c);
        let args = kernel_args(engines, stripes);
        let masters = kernel_masters(acc);
        let lane_names: Vec<String> = (0..engines).map(|e| engine_arg(e, 0)).collect();
        let stripe_names: Vec<Vec<String>> = (0..stripes)
            .map(|s| (0..engines).map(|e| engine_arg(e, s)).collect())
            .collect();
        let code_names: Vec<String> = (0..engines)
            .flat_map(|e| (0..stripes).map(move |s| engine_arg(e, s)))
            .collect();
        let cb_words = c.pq.m * w.codebook_size * w.sub_dim;
        // Elements each buffer holds in HLS co-simulation (Vitis sizes its testbench memories
        // by `depth`): every codebook, one job per engine, and per engine one job's codes of
        // max_tokens (every stripe holds at most ceil(beats / S) of them), with its results
        // in stripe 0.
        let stripe_depth = d
            .layout
            .beats_for(c.engine.max_tokens as usize)
            .div_ceil(stripes as usize)
            * d.layout.words_per_beat();
        let depth = |name: &str| match name {
            "codebooks" => Some(c.engine.heads() as usize * cb_words as usize),
            "jobs" => Some(engines as usize * job_words(c.pq.head_dim) as usize),
            lane if lane_names.iter().any(|l| l == lane) => {
                Some(stripe_depth + 1 + c.topk.k_max as usize)
            }
            lane if code_names.iter().any(|l| l == lane) => Some(stripe_depth),
            _ => None,
        };
        let pragmas = args
            .iter()
            .map(|a| match a.master.as_deref() {
                Some(master) => {
                    let bundle = masters
                        .iter()
                        .find(|m| m.name == master)
                        .map_or(master, |m| m.bundle.as_str());
                    let depth = depth(&a.name).map_or(String::new(), |d| format!(" depth={d}"));
                    format!("m_axi port={} offset=slave bundle={bundle}{depth}", a.name)
                }
                None => format!("s_axilite port={}", a.name),
            })
            .collect();
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
            heads: c.engine.heads(),
            cb_words,
            engines,
            stripes,
            lane_names,
            stripe_names,
            code_names,
            max_jobs: MAX_JOBS,
            job_words: job_words(c.pq.head_dim),
            job_header_words: JOB_HEADER_WORDS,
            job_n_tokens: job::N_TOKENS,
            job_k: job::K,
            job_head: job::HEAD,
            job_codes: job::CODES,
            job_out: job::OUT,
            request_error: format!("{:#x}", out_flags::REQUEST_ERROR),
            beat_ii: d.layout.tokens_per_beat.div_ceil(c.scanner.lanes),
            args: args
                .iter()
                .map(|a| HlsArg {
                    c_decl: format!("{} {}", a.hls_type, a.name),
                    doc: a.doc.clone(),
                })
                .collect(),
            pragmas,
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
