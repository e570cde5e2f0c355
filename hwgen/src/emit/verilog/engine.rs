//! View of `pq_topk_engine.v`.

use askama::Template;

use super::header::header;
use kvpq_core::interface::{engine_ports, Streams};
use kvpq_core::spec::{unsigned_bits, Accelerator};

/// Template data of the engine.
#[derive(Template)]
#[template(path = "verilog/pq_topk_engine.v")]
pub struct EngineV {
    header: String,
    ports: Vec<(String, String)>,
    strategy: String,
    res_lanes: u32,
    count_w: u32,
    k_w: u32,
    index_w: u32,
    score_bits: u32,
    shift_w: u32,
    max_tokens: u32,
    clamp_n: bool,
    clamp_k: bool,
    k_max: u32,
    m_w: u32,
    code_bits: u32,
    lut_bits: u32,
    lanes: u32,
    heads: u32,
}

impl EngineV {
    /// Derives the template data from a validated accelerator.
    pub fn new(acc: &Accelerator) -> Self {
        let c = acc.config();
        let w = &acc.derived().widths;
        Self {
            header: header(acc, "pq_topk_engine"),
            ports: engine_ports(&Streams::of(acc))
                .iter()
                .map(|p| (super::declaration(p, 10), p.doc.clone()))
                .collect(),
            strategy: c.topk.strategy.to_string(),
            res_lanes: acc.derived().widths.result_lanes,
            count_w: w.count_bits,
            k_w: w.k_bits,
            index_w: w.index_bits,
            score_bits: w.score_bits,
            shift_w: w.shift_bits,
            max_tokens: c.engine.max_tokens,
            // A clamp is needed only when the port can hold values above the limit.
            clamp_n: u64::from(c.engine.max_tokens) < (1u64 << w.count_bits) - 1,
            clamp_k: u64::from(c.topk.k_max) < (1u64 << w.k_bits) - 1,
            k_max: c.topk.k_max,
            m_w: unsigned_bits(u64::from(c.pq.m - 1)),
            code_bits: c.pq.code_bits,
            lut_bits: w.lut_bits,
            lanes: c.scanner.lanes,
            heads: c.engine.heads(),
        }
    }
}
